"""The ``ddc`` command line: the main job (``ddc demo``) and the pipeline's steps.

The command line is the top of the house: it drives the estimators and the simulations, and
nothing imports it (the ``ddc`` console script points at :func:`main`). ``ddc --help`` lists the
commands; each has ``--help`` with an example. The commands import the heavy packages when they
run, so that ``ddc --help`` answers at once.

Arguments are checked before any work: counts must be positive, seeds non-negative, and an
output (``--out``) must be writable, so that a long run never fails at its last step. User
errors (a missing file, a bad column, an unknown option value, an operating-system error such as
a full or read-only disk, running out of memory) print one line ``ddc <command>: error: ...`` on
stderr and exit with status 1 (2 for usage errors, as :mod:`argparse` does); they never print a
traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = ["main", "build_parser", "CLIError"]

MODELS = ("membership", "rust_bus")
#: Command-line names of the estimators -> their class in :mod:`estimators`: the keys of the
#: estimator registry (``estimators.ESTIMATORS``, checked equal in the tests), spelled out here so
#: that ``ddc --help`` does not import the estimators.
ESTIMATORS = {"nfxp": "NFXP", "ccp": "CCP", "npl": "NPL", "pqr": "PQR", "maxent": "MaxEntIRL"}
#: Models of ``ddc montecarlo`` (the bus models with Rust's conventions, and the Su-Judd design).
MC_MODELS = ("membership", "rust_bus", "su_judd")
#: Estimators of ``ddc montecarlo``.
MC_ESTIMATORS = ("nfxp", "ccp", "npl")
DEMO_DEFAULTS = {"customers": 20_000, "periods": 36, "draws": 200}
DEMO_QUICK = {"customers": 2_000, "periods": 24, "draws": 50}


class CLIError(Exception):
    """A user error: printed as one line, exit status ``code``."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


# ------------------------------------------------------------------------------ helpers


def _say(text: str = "") -> None:
    print(text, flush=True)


class _Step:
    """Prints ``[i/n] what ...`` and, on exit, the time taken."""

    def __init__(self, i: int, n: int, what: str):
        self.label = f"[{i}/{n}] {what}"

    def __enter__(self) -> _Step:
        print(f"{self.label} ...", end="", flush=True)
        self.start = time.perf_counter()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            print(f" done ({time.perf_counter() - self.start:.1f} s)", flush=True)
        else:
            print(" failed", flush=True)


def _make_model(name: str, n_states: int = 90, beta: float | None = None):
    import ddc

    if name == "membership":
        return ddc.models.membership() if beta is None else ddc.models.membership(beta=beta)
    if name == "rust_bus":
        kwargs = {"n_states": n_states}
        if beta is not None:
            kwargs["beta"] = beta
        return ddc.models.rust_bus(**kwargs)
    raise CLIError(f"unknown model {name!r}; choose one of {list(MODELS)}")


def _estimator_class(key: str):
    """The estimator class for a command-line name."""
    import estimators

    key = key.lower()
    if key not in ESTIMATORS:
        raise CLIError(f"unknown estimator {key!r}; choose one of {list(ESTIMATORS)}")
    return estimators.get_estimator(key)  # the one registry (estimators.ESTIMATORS)


def _read_frame(data: str, model_name: str, n_states: int):
    """A long panel from CSV or Parquet, or Rust's data for ``rust``."""
    import pandas as pd

    if data == "rust":
        if model_name != "rust_bus":
            raise CLIError("DATA 'rust' (Rust's 1987 bus data) goes with --model rust_bus")
        import ddc

        return ddc.datasets.load_rust_bus(groups=(1, 2, 3, 4), n_states=n_states)
    path = Path(data)
    if not path.exists():
        raise CLIError(f"data file {data!r} not found (give a CSV or Parquet long panel"
                       + (", or 'rust' for Rust's bus data" if model_name == "rust_bus" else "")
                       + ")")
    if path.is_dir():
        raise CLIError(f"data {data!r} is a folder; give a CSV or Parquet file")
    ext = path.suffix.lower()
    if ext == ".csv":
        try:
            return pd.read_csv(path)
        except pd.errors.EmptyDataError:
            raise CLIError(f"{data!r} is empty (no header, no rows); give a CSV long panel "
                           "with a header line") from None
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise CLIError(f"cannot read {data!r} as CSV: {exc}") from None
    if ext in (".parquet", ".pq"):
        try:
            import pyarrow as pa
        except ImportError:
            raise CLIError("reading Parquet needs pyarrow (pip install pyarrow); or give a "
                           "CSV file") from None
        try:  # page checksums verified where the writer stored them
            return pd.read_parquet(path, page_checksum_verification=True)
        except (OSError, ValueError, IndexError, pa.lib.ArrowException) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise CLIError(f"cannot read {data!r} as Parquet ({first}): the file is "
                           "truncated, corrupted or not Parquet; write it again from its "
                           "source") from None
    got = repr(ext) if ext else "no extension"
    raise CLIError(f"data file {data!r} must end in .csv, .parquet or .pq (got {got})")


def _columns(args: argparse.Namespace):
    """The column mapping of ``--id-col``, ``--time-col``, ``--action-col``, ``--column`` and
    ``--time-format`` (None when none is given)."""
    from ddc.panel import Columns

    states = {}
    for item in args.column or []:
        var, sep, col = item.partition("=")
        if not sep or not var.strip() or not col.strip():
            raise CLIError(f"--column {item!r}: give VARIABLE=COLUMN, e.g. --column plan=tier")
        if var.strip() in states:
            raise CLIError(f"--column names the state variable {var.strip()!r} twice")
        states[var.strip()] = col.strip()
    given = dict(id_col=args.id_col, time_col=args.time_col, action_col=args.action_col,
                 time_format=args.time_format)
    if not states and all(v is None for v in given.values()):
        return None
    return Columns(states=states, **given)


def _read_panel(args: argparse.Namespace, model):
    """The DATA argument read and, with column options, renamed to the model's columns."""
    from ddc.panel import PanelError, standardize

    frame = _read_frame(_data_arg(args), args.model, args.n_states)
    columns = _columns(args)
    if columns is None:
        return frame
    try:
        return standardize(model, frame, columns)
    except PanelError as exc:
        raise CLIError(str(exc)) from None


def _check_writable(path: str | Path, option: str = "--out", folder: bool = False) -> Path:
    """Fail before any work if ``path`` cannot be written.

    A file is written through a temporary file in its folder, which must exist; a folder is
    written through a temporary folder beside it (missing parents are created). The nearest
    existing folder is probed by creating and removing a file in it, which also catches
    read-only file systems and full disks that permission bits do not show.
    """
    target = Path(os.path.abspath(path))
    if not folder and target.is_dir():
        raise CLIError(f"{option} {str(path)!r} is a folder; give a file name")
    where = target.parent
    if not folder and not where.is_dir():
        raise CLIError(f"cannot write {option} {str(path)!r}: the folder {str(where)!r} does not "
                       "exist")
    while not where.exists():
        where = where.parent
    if not where.is_dir():
        raise CLIError(f"cannot write {option} {str(path)!r}: {str(where)!r} is not a folder")
    try:
        fd, probe = tempfile.mkstemp(dir=where, prefix=".ddc-write-check.")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise CLIError(f"cannot write {option} {str(path)!r}: {exc.strerror or exc} in "
                       f"{str(where)!r}; choose a writable location") from None
    return target


def _atomic_file(path: str, write: Callable[[str], None]) -> Path:
    """Write a file completely or not at all (:func:`ddc.io.atomic_path`)."""
    from ddc.io import atomic_path

    _check_writable(path)
    try:
        with atomic_path(path) as tmp:
            write(str(tmp))
    except OSError as exc:
        if exc.filename is None and exc.strerror:  # ddc.io's message names the file
            raise CLIError(exc.strerror) from None
        raise CLIError(f"cannot write {path!r}: {exc.strerror or exc}") from None
    return Path(os.path.abspath(path))


TABLE_SUFFIXES = (".csv", ".parquet", ".pq")


def _check_table_out(path: str) -> None:
    ext = Path(path).suffix.lower()
    if ext not in TABLE_SUFFIXES:
        raise CLIError(f"--out {path!r} must end in .csv, .parquet or .pq")
    if ext != ".csv":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise CLIError("writing Parquet needs pyarrow (pip install pyarrow); or write "
                           ".csv") from None
    _check_writable(path)


def _write_table(frame, path: str) -> Path:
    _check_table_out(path)
    if Path(path).suffix.lower() == ".csv":
        return _atomic_file(path, lambda tmp: frame.to_csv(tmp, index=False))
    return _atomic_file(path, lambda tmp: frame.to_parquet(tmp, index=False,
                                                         write_page_checksum=True))


def _fit(model, panel, key: str):
    import warnings

    cls = _estimator_class(key)
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        return cls(model).fit(panel)


# ------------------------------------------------------------------------------ commands


def cmd_demo(args: argparse.Namespace) -> int:
    """The main job: simulate, fit every estimator, cross-check, counterfactuals, report."""
    defaults = DEMO_QUICK if args.quick else DEMO_DEFAULTS
    n = defaults["customers"] if args.customers is None else args.customers
    T = defaults["periods"] if args.periods is None else args.periods
    draws = defaults["draws"] if args.draws is None else args.draws
    out = Path(args.out)
    _check_output_dir(out)

    import ddc
    import estimators
    from ddc.io import atomic_directory
    from simulations import counterfactual, simulate

    start = time.perf_counter()
    names = list(ESTIMATORS)
    steps = 5
    _say(f"ddc demo: the membership model (docs/membership.rst), {n:,} customers x {T} months, "
         f"seed {args.seed}")
    model = ddc.models.membership()
    truth = model.true_params
    with _Step(1, steps, f"simulating the panel at the true parameters ({n * T:,} rows)"):
        panel = simulate(model, truth, n_customers=n, n_periods=T, seed=args.seed)
    results = {}
    with _Step(2, steps, f"fitting {', '.join(ESTIMATORS[k] for k in names)}"):
        for key in names:
            results[ESTIMATORS[key]] = _fit(model, panel, key)
    table = estimators.compare(results)
    _say()
    _say(table.as_text())
    _say()
    with _Step(3, steps, "cross-validating the estimators (against the truth and each other)"):
        cross = estimators.cross_validate(model, panel, estimators=results, truth=truth)
    keep = [c for c in ("converged", "max_abs_z", "wald", "reward_max_z", "ccp_max_error",
                        "loglik_choice") if c in cross.summary.columns]
    _say(cross.summary[keep].to_string(float_format=lambda x: f"{x:.4g}"))
    _say()
    base = results["NFXP"]
    with _Step(4, steps, f"default counterfactuals from the {base.estimator} estimate "
                         f"({draws} bootstrap draws)"):
        progress = _progress_bar(5)
        try:
            report = counterfactual(model, base, scenarios="default", n_draws=draws,
                                    seed=args.seed, progress=progress.update_named)
        finally:
            progress.close()
    _memo_sections(report, model, results, cross, n, T, args.seed)
    with _Step(5, steps, f"writing the report to {out}"):
        with atomic_directory(out) as tmp:
            written = report.write_files(tmp)
            (tmp / "results").mkdir()
            for name, res in results.items():
                res.save(tmp / "results" / f"{name.lower()}.json")
            (tmp / "estimates.md").write_text(table.as_markdown(), encoding="utf-8")
            table.to_csv(tmp / "estimates.csv")
            (tmp / "cross_validation.md").write_text(cross.to_markdown(), encoding="utf-8")
            cross.to_csv(tmp / "cross_validation.csv")
    _say()
    _say(report.as_text())
    _say()
    cv = report.summary["cv_per_customer"]
    lines = []
    for s in report.summary.index[1:]:
        ms = report.changes.loc[s, "member_share"]
        lines.append(f"  {s}: CV {_dollars(cv[s])} per customer, member share "
                     f"{100 * ms:+.1f} pp, revenue "
                     f"{_dollars(report.changes.loc[s, 'revenue_per_customer_month'])} "
                     "per customer-month")
    _say("Welfare and membership relative to the baseline:")
    _say("\n".join(lines))
    _say()
    files = sorted(written) + ["estimates.md", "estimates.csv", "cross_validation.*",
                               "results/*.json"]
    _say(f"Report: {out / 'report.html'} (also report.md); files: {', '.join(files)}")
    _say(f"Total time {time.perf_counter() - start:.1f} s")
    return 0


def _memo_sections(report, model, results: dict, cross, n: int, T: int, seed: int) -> None:
    """The demo's report as a memo: the data, the parameters, the estimators compared and
    cross-validated, and the caveats of the membership scenarios' figures."""
    from ddc.models.membership import memo as membership_memo
    from simulations.memo import comparison_blocks, data_blocks, parameter_blocks

    report.add_section("The data", data_blocks(
        n, T, seed, unit="customer", period="month",
        how="Customers start from the steady state of their market, equal numbers per "
            "market, and the engagement transitions are the model's."))
    report.add_section("The estimates", parameter_blocks(
        cross, report.source.split(" ")[0], money=model.hooks.money,
        meanings=membership_memo.PARAMETERS))
    report.add_section("Estimators compared", comparison_blocks(cross, results))
    report.add_section("Caveats", [("list", membership_memo.caveats(report))], where="end")


def _dollars(x: float) -> str:
    return f"{'-' if x < 0 else '+'}${abs(x):,.2f}"


def _check_output_dir(out: Path) -> None:
    """Fail before the work if ``out`` cannot be written (see atomic_directory)."""
    from ddc.io import UnsafeOverwriteError, check_folder_target

    try:
        check_folder_target(out)
    except UnsafeOverwriteError as exc:
        raise CLIError(f"--out is not a ddc-econ output folder: {exc}") from None
    except OSError as exc:
        raise CLIError(f"--out: {exc.strerror or exc}") from None
    _check_writable(out, folder=True)


class _progress_bar:
    """A tqdm bar over the counterfactual models (silent when stderr is not a terminal)."""

    def __init__(self, total: int):
        from tqdm import tqdm

        self.bar = tqdm(total=total, desc="      models", leave=False, disable=None,
                        file=sys.stderr)

    def update_named(self, name: str) -> None:
        self.bar.set_postfix_str(name)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def cmd_estimate(args: argparse.Namespace) -> int:
    """Fit one estimator to a panel and print (and save) the results."""
    if args.out:
        if Path(args.out).suffix.lower() != ".json":
            raise CLIError(f"--out {args.out!r}: results are saved as JSON; use a .json name")
        _check_writable(args.out)
    model = _make_model(args.model, args.n_states)
    _estimator_class(args.estimator)
    panel = _read_panel(args, model)
    res = _fit(model, panel, args.estimator)
    _say(str(res.summary()))
    if args.out:
        res.save(args.out)
        _say(f"results saved to {args.out}")
    return 0


COMPARE_SUFFIXES = (".md", ".csv", ".tex", ".html")


def cmd_compare(args: argparse.Namespace) -> int:
    """Fit every estimator (or those of ``--estimators``) and print them side by side."""
    if args.out:
        if Path(args.out).suffix.lower() not in COMPARE_SUFFIXES:
            raise CLIError(f"--out {args.out!r} must end in .md, .csv, .tex or .html")
        _check_writable(args.out)
    keys = list(ESTIMATORS) if not args.estimators else \
        [k.strip().lower() for k in args.estimators.split(",") if k.strip()]
    for k in keys:
        _estimator_class(k)
    model = _make_model(args.model, args.n_states)
    panel = _read_panel(args, model)

    import estimators

    results = {}
    for k in keys:
        with _Step(len(results) + 1, len(keys), f"fitting {ESTIMATORS[k]}"):
            results[ESTIMATORS[k]] = _fit(model, panel, k)
    table = estimators.compare(results)
    _say()
    _say(table.as_text())
    if args.out:
        ext = Path(args.out).suffix.lower()
        if ext == ".csv":
            _atomic_file(args.out, lambda tmp: table.to_csv(tmp))
        else:
            text = {".md": table.as_markdown, ".tex": table.as_latex,
                    ".html": table.as_html}[ext]()
            _atomic_file(args.out, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
        _say(f"table saved to {args.out}")
    return 0


def cmd_counterfactual(args: argparse.Namespace) -> int:
    """Counterfactual report from saved estimation results."""
    out = Path(args.out)
    _check_output_dir(out)
    path = Path(args.results)
    if not path.is_file():
        raise CLIError(f"results file {args.results!r} not found (write one with ddc estimate "
                       "... --out FILE.json)")
    from ddc.models.membership import DEFAULT_SCENARIOS
    from estimators import load_results
    from simulations import counterfactual

    res = load_results(path)
    info = res.model_info or {}
    name = info.get("name")
    if name != "membership":
        raise CLIError(f"{args.results!r} holds results for the model {name!r}; the "
                       "counterfactual report is defined for the membership model")
    beta = info.get("beta")
    model = _make_model("membership", beta=float(beta) if beta is not None else None)
    if info.get("param_names") and list(info["param_names"]) != model.param_names:
        raise CLIError(f"{args.results!r} has parameters {info['param_names']}; the membership "
                       f"model has {model.param_names}")
    scenarios = []
    for item in args.scenario or ["default"]:
        scenarios += [s.strip() for s in item.split(",") if s.strip()]
    bad = [s for s in scenarios if s != "default" and s not in DEFAULT_SCENARIOS]
    if bad:
        raise CLIError(f"unknown scenario(s) {bad}; choose from default, "
                       f"{', '.join(DEFAULT_SCENARIOS)}")
    if "default" in scenarios:
        scenarios = list(dict.fromkeys(
            [*DEFAULT_SCENARIOS, *[s for s in scenarios if s != "default"]]))
    scenarios = list(dict.fromkeys(scenarios))
    report = counterfactual(model, res, scenarios=scenarios, n_draws=args.draws, seed=args.seed,
                            cov_type=args.cov_type)
    _say(report.as_text())
    report.save(out)
    _say()
    _say(f"report saved to {out} (report.html, report.md, figures and CSV tables)")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    """Simulate a long panel at the model's true parameters."""
    _check_table_out(args.out)
    model = _make_model(args.model, args.n_states)
    columns = _columns(args)
    from simulations import simulate

    panel = simulate(model, model.true_params, n_customers=args.n_customers,
                     n_periods=args.n_periods, seed=args.seed, columns=columns)
    _write_table(panel, args.out)
    _say(f"{len(panel):,} rows ({args.n_customers:,} units x {args.n_periods} periods) of the "
         f"{args.model} model at its true parameters written to {args.out}")
    return 0


def _data_arg(args: argparse.Namespace) -> str:
    given = [d for d in (args.data, args.data_option) if d is not None]
    if not given:
        raise CLIError("give the DATA file (CSV or Parquet long panel), or 'rust' for Rust's "
                       "bus data with --model rust_bus")
    if len(given) == 2 and given[0] != given[1]:
        raise CLIError("give DATA once (either as the argument or with --data)")
    return given[0]


# ------------------------------------------------------------------------------ montecarlo


def _montecarlo_setup(args: argparse.Namespace):
    """The model, truth, estimators, panel size and extra arguments of ``ddc montecarlo``."""
    import functools

    import numpy as np

    import ddc
    import estimators

    names = MC_ESTIMATORS if args.estimators is None else \
        tuple(s.strip().lower() for s in args.estimators.split(",") if s.strip())
    bad = [n for n in names if n not in MC_ESTIMATORS]
    if bad or not names:
        raise CLIError(f"--estimators: unknown estimator(s) {bad or [args.estimators]}; choose "
                       f"from {','.join(MC_ESTIMATORS)}")
    classes = {n: estimators.get_estimator(n) for n in names}
    extra: dict = {}
    if args.model == "membership":
        model = ddc.models.membership()
        n, T = args.n_customers or 2_000, args.n_periods or 24
        if args.beta is not None:
            model = model.replace(beta=args.beta)
        ests = {n_.upper(): classes[n_] for n_ in names}
    else:
        from simulations.studies import add_bus_increments, su_judd_model

        if args.model == "su_judd":
            model = su_judd_model(args.beta if args.beta is not None else 0.975)
            new_engines = np.zeros(model.n_states)
            new_engines[0] = 1.0
            extra["simulate_kwargs"] = {"initial": new_engines}
        else:
            model = ddc.models.rust_bus(n_states=90, beta=args.beta or 0.9999)
        n, T = args.n_customers or 50, args.n_periods or 120
        ests = {n_.upper(): functools.partial(classes[n_], drop_first=False) for n_ in names}
        extra["prepare"] = add_bus_increments
    return model, model.true_params, ests, n, T, extra


def cmd_montecarlo(args: argparse.Namespace) -> int:
    """Run a Monte Carlo study: print the summary; ``--out`` writes the table and summary."""
    import pandas as pd

    from ddc.executor import resolve_scheduler
    from simulations.montecarlo import monte_carlo

    if args.out:
        _check_table_out(args.out)
    resolve_scheduler(args.scheduler)
    model, truth, ests, n, T, extra = _montecarlo_setup(args)
    mc = monte_carlo(model, truth, ests, reps=args.reps, n_customers=n, n_periods=T,
                     seed=args.seed, scheduler=args.scheduler, n_workers=args.workers,
                     progress=False if args.no_progress else None, **extra)
    _say(repr(mc))
    summary = mc.summary()
    cols = [c for c in ("truth", "n", "excluded", "mean", "bias", "rmse", "sd", "mean_se",
                        "coverage", "convergence_rate", "median_seconds") if c in summary]
    with pd.option_context("display.width", 120, "display.max_columns", 20):
        _say(summary[cols].round(4).to_string())
    note = mc.exclusions()
    if note:
        _say(note)
    if len(mc.failures):
        _say(f"\n{len(mc.failures)} failed fit(s); first: {mc.failures['error'].iloc[0]}")
    if args.out:
        path = mc.save(args.out)
        spath = path.with_name(f"{path.stem}_summary.csv")
        _atomic_file(str(spath), lambda tmp: summary.to_csv(tmp))
        _say(f"wrote {path} and {spath}")
    return 0


# ------------------------------------------------------------------------------ parser


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    pass


def _positive(text: str) -> int:
    """argparse type: an integer > 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer (> 0), got {value}")
    return value


def _non_negative(text: str) -> int:
    """argparse type: an integer >= 0 (seeds, bootstrap draws)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {value}")
    return value


def _n_states(text: str) -> int:
    value = _positive(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"needs at least 2 mileage bins, got {value}")
    return value


def _beta(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1), got {text!r}") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {value}")
    return value


def _add_column_args(p: argparse.ArgumentParser, reading: bool) -> None:
    g = p.add_argument_group(
        "columns", "where the model's data are in DATA (default: the model's own names)"
        if reading else "the names of the written columns (default: the model's own names)")
    nodefault = "%(default).0s"
    g.add_argument("--id-col", default=None, metavar="COL",
                   help="the unit id column" + nodefault)
    g.add_argument("--time-col", default=None, metavar="COL",
                   help="the period column: integers, dates, pandas periods or strings such "
                        "as 2022-01" + nodefault)
    g.add_argument("--action-col", default=None, metavar="COL",
                   help="the action column" + nodefault)
    g.add_argument("--column", action="append", default=None, metavar="VAR=COL",
                   help="the column of a state variable, e.g. --column plan=tier (repeat)"
                        + nodefault)
    g.add_argument("--time-format", default=None, metavar="FORMAT",
                   help="strptime format of the period column, e.g. %%Y%%m for YYYYMM "
                        "integers" + nodefault)


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", nargs="?", metavar="DATA",
                   help="long panel, CSV or Parquet (one row per unit and period); for "
                        "--model rust_bus also 'rust': Rust's (1987) data, groups 1-4")
    p.add_argument("--data", dest="data_option", metavar="DATA", default=None,
                   help="the same as the DATA argument")
    p.add_argument("--model", choices=MODELS, required=True, help="the model")
    p.add_argument("--n-states", type=_n_states, default=90,
                   help="rust_bus: mileage bins (90: Rust's Table IX; 175: Table X)")
    _add_column_args(p, reading=True)


def _add_montecarlo_args(parser: argparse.ArgumentParser) -> None:
    nodefault = "%(default).0s"
    parser.add_argument("--model", choices=MC_MODELS, default="membership",
                        help="membership; rust_bus (Rust's Table IX model, 90 states); su_judd "
                             "(the 175-state design of Su and Judd 2012, new engines at the "
                             "start)")
    parser.add_argument("--reps", type=_positive, required=True,
                        help="replications" + nodefault)
    parser.add_argument("--estimators", default=None,
                        help=f"comma-separated, from {','.join(MC_ESTIMATORS)}; all when left "
                             "out" + nodefault)
    parser.add_argument("--n-customers", type=_positive, default=None,
                        help="units per data set; 2000 for membership, 50 buses for the bus "
                             "models when left out" + nodefault)
    parser.add_argument("--n-periods", type=_positive, default=None,
                        help="periods per unit; 24 for membership, 120 for the bus models when "
                             "left out" + nodefault)
    parser.add_argument("--beta", type=_beta, default=None,
                        help="discount factor; the model's (0.99 membership, 0.9999 rust_bus, "
                             "0.975 su_judd) when left out" + nodefault)
    parser.add_argument("--seed", type=_non_negative, default=0, help="root seed")
    parser.add_argument("--scheduler", default=None, metavar="SCHEDULER",
                        help="serial (when left out), processes, dask (a LocalCluster), or the "
                             "address tcp://host:port of a running dask scheduler" + nodefault)
    parser.add_argument("--workers", type=_positive, default=None,
                        help="processes of the pool (all cores) or workers of the LocalCluster "
                             "(2)" + nodefault)
    parser.add_argument("--out", default=None, metavar="FILE",
                        help="write the table of estimates here (.csv or .parquet), and the "
                             "summary next to it as <name>_summary.csv" + nodefault)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``ddc`` command.

    Returns
    -------
    argparse.ArgumentParser
    """
    from ddc import __version__

    parser = argparse.ArgumentParser(
        prog="ddc", formatter_class=_Formatter,
        description="Dynamic discrete choice models: simulate, estimate, compare, and "
                    "counterfactual welfare and retention reports.",
        epilog="The main job:\n  ddc demo --out out/demo\n\nEvery command has --help.")
    parser.add_argument("--version", action="version", version=f"ddc-econ {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "demo", formatter_class=_Formatter,
        help="the main job: simulate, fit every estimator, counterfactuals, report",
        description="Simulate the membership panel at the true parameters, fit every "
                    "estimator, cross-check them, run the default counterfactuals with "
                    "bootstrap intervals from the NFXP estimate, and write the report "
                    "(Markdown, HTML, PNG figures, CSV tables, results JSON) to --out.",
        epilog="example:\n  ddc demo --out out/demo\n  ddc demo --quick --out /tmp/demo")
    p.add_argument("--out", default="out/demo", help="output folder (new, empty, or an "
                                                     "earlier ddc output folder)")
    p.add_argument("--customers", type=_positive, default=None,
                   help=f"customers (default {DEMO_DEFAULTS['customers']:,}; "
                        f"--quick {DEMO_QUICK['customers']:,})")
    p.add_argument("--periods", type=_positive, default=None,
                   help=f"months per customer (default {DEMO_DEFAULTS['periods']}; --quick "
                        f"{DEMO_QUICK['periods']})")
    p.add_argument("--draws", type=_non_negative, default=None,
                   help=f"bootstrap draws (default {DEMO_DEFAULTS['draws']}; --quick "
                        f"{DEMO_QUICK['draws']}; 0: no intervals)")
    p.add_argument("--seed", type=_non_negative, default=0, help="seed of the panel and the draws")
    p.add_argument("--quick", action="store_true", help="a small panel and fewer draws")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "estimate", formatter_class=_Formatter, help="fit one estimator to a panel",
        description="Fit one estimator to a long panel and print its summary; --out saves the "
                    "results as JSON (for ddc counterfactual).",
        epilog="examples:\n  ddc estimate panel.csv --model membership --estimator nfxp "
               "--out nfxp.json\n  ddc estimate rust --model rust_bus --estimator nfxp\n"
               "  ddc estimate shop.csv --model membership --id-col client --time-col date "
               "--column plan=tier")
    _add_data_args(p)
    p.add_argument("--estimator", choices=list(ESTIMATORS), default="nfxp", help="estimator")
    p.add_argument("--out", default=None, metavar="FILE", help="save the results (.json)")
    p.set_defaults(func=cmd_estimate)

    p = sub.add_parser(
        "compare", formatter_class=_Formatter, help="all estimators side by side",
        description="Fit every estimator (or those of --estimators) to a panel and print the "
                    "estimates side by side.",
        epilog="example:\n  ddc compare panel.csv --model membership --out estimates.md")
    _add_data_args(p)
    p.add_argument("--estimators", default=None,
                   help="comma-separated subset, e.g. nfxp,ccp (default: all)")
    p.add_argument("--out", default=None, metavar="FILE",
                   help="save the table (.md, .csv, .tex or .html)")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser(
        "counterfactual", formatter_class=_Formatter,
        help="welfare and retention report from saved results",
        description="Run counterfactual scenarios of the membership model at saved estimation "
                    "results (ddc estimate --out) and write the report, with bootstrap "
                    "intervals from the results' covariance.",
        epilog="example:\n  ddc counterfactual nfxp.json --scenario default --out out/cf\n"
               "  ddc counterfactual nfxp.json --scenario monthly_price_up,no_monthly")
    p.add_argument("results", metavar="RESULTS", help="results JSON (ddc estimate --out)")
    p.add_argument("--scenario", action="append", default=None,
                   help="default, monthly_price_up, annual_discount, no_monthly, "
                        "video_benefit (repeat or comma-separate; default: default)")
    p.add_argument("--out", default="out/counterfactual", help="output folder")
    p.add_argument("--draws", type=_non_negative, default=200, help="bootstrap draws (0: none)")
    p.add_argument("--seed", type=_non_negative, default=0, help="seed of the draws")
    p.add_argument("--cov-type", default=None, help="covariance kind of the results to draw "
                                                     "from (default: the results' own)")
    p.set_defaults(func=cmd_counterfactual)

    p = sub.add_parser(
        "simulate", formatter_class=_Formatter, help="simulate a panel at the true parameters",
        description="Simulate a long panel from a built-in model at its true parameters.",
        epilog="example:\n  ddc simulate --model membership --n-customers 10000 "
               "--n-periods 36 --seed 0 --out panel.csv\n"
               "  ddc simulate --model rust_bus --id-col bus --column mileage=odometer "
               "--out buses.parquet")
    p.add_argument("--model", choices=MODELS, required=True, help="the model")
    p.add_argument("--n-states", type=_n_states, default=90, help="rust_bus: mileage bins")
    p.add_argument("--n-customers", type=_positive, default=10_000, help="units")
    p.add_argument("--n-periods", type=_positive, default=36, help="periods per unit")
    p.add_argument("--seed", type=_non_negative, default=0, help="seed")
    p.add_argument("--out", required=True, metavar="FILE", help=".csv, .parquet or .pq")
    _add_column_args(p, reading=False)
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser(
        "montecarlo", formatter_class=_Formatter, help="Monte Carlo study of the estimators",
        description="Repeated simulate-and-estimate at the true parameters: bias, RMSE, "
                    "standard-error accuracy and coverage of every estimator, with the "
                    "replications each summary leaves out counted.",
        epilog="example:\n  ddc montecarlo --model membership --reps 100\n"
               "  ddc montecarlo --model rust_bus --reps 20 --scheduler processes --out mc.csv")
    _add_montecarlo_args(p)
    p.set_defaults(func=cmd_montecarlo)
    return parser


# ------------------------------------------------------------------------------ entry point


#: Exceptions that are the user's to fix: printed as one line, exit status 1.
USER_ERRORS = (CLIError, ValueError, KeyError, OSError, MemoryError)


def _message(exc: BaseException) -> str:
    if isinstance(exc, MemoryError):
        return ("out of memory; try a smaller problem (fewer customers, periods or draws) or a "
                "machine with more memory")
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename!r}" if exc.filename else ""
        return f"{exc.strerror}{where} ({type(exc).__name__})"
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])
    text = str(exc).strip()
    return text or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``ddc`` command.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments (``sys.argv[1:]`` by default).

    Returns
    -------
    int
        The exit status: 0 on success, 1 for a user error or an operating-system error (its
        message on stderr, one line), 2 for a usage error (argparse), 130 when interrupted.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as exc:
        message = " ".join(_message(exc).split("\n")[0].split()) if isinstance(
            exc, (OSError, MemoryError)) else _message(exc)
        print(f"ddc {args.command}: error: {message}", file=sys.stderr, flush=True)
        return exc.code if isinstance(exc, CLIError) else 1
    except KeyboardInterrupt:
        print(f"ddc {args.command}: interrupted", file=sys.stderr, flush=True)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
