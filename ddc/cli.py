"""The ``ddc`` command line: the main job (``ddc demo``) and the pipeline's steps.

``ddc --help`` lists the commands; each has ``--help`` with an example. The commands import the
``estimators`` and ``simulations`` packages lazily (the model layer does not depend on them).
User errors (a missing file, a bad column, an unknown option value) print one line
``ddc <command>: error: ...`` on stderr and exit with status 1 (2 for usage errors, as
:mod:`argparse` does); they never print a traceback.
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
ESTIMATORS = {"nfxp": "NFXP", "ccp": "CCP", "npl": "NPL", "pqr": "PQR", "maxent": "MaxEntIRL"}
#: Where an estimator lives if the ``estimators`` package does not export it (yet).
ESTIMATOR_MODULES = {"PQR": "estimators.pqr", "MaxEntIRL": "estimators.maxent"}
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
    """The estimator class for a CLI name, or a CLIError if this version does not have it."""
    key = key.lower()
    if key not in ESTIMATORS:
        raise CLIError(f"unknown estimator {key!r}; choose one of {list(ESTIMATORS)}")
    name = ESTIMATORS[key]
    cls = _optional("estimators", name, ESTIMATOR_MODULES.get(name))
    if cls is None:
        raise CLIError(f"the estimator {key!r} ({ESTIMATORS[key]}) is not available in this "
                       f"version of ddc-econ; available: {', '.join(_available_estimators())}")
    return cls


def _available_estimators() -> list[str]:
    return [k for k, name in ESTIMATORS.items()
            if _optional("estimators", name, ESTIMATOR_MODULES.get(name)) is not None]


def _read_panel(data: str, model_name: str, n_states: int):
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
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise CLIError(f"cannot read {data!r} as CSV: {exc}") from None
    if ext in (".parquet", ".pq"):
        try:
            return pd.read_parquet(path)
        except ImportError:
            raise CLIError("reading Parquet needs pyarrow (pip install pyarrow); or give a "
                           "CSV file") from None
        except (OSError, ValueError) as exc:
            raise CLIError(f"cannot read {data!r} as Parquet: {exc}") from None
    got = repr(ext) if ext else "no extension"
    raise CLIError(f"data file {data!r} must end in .csv, .parquet or .pq (got {got})")


def _atomic_file(path: str, write: Callable[[str], None]) -> Path:
    """Write a file through a temporary file in the same folder, renamed into place."""
    target = Path(os.path.abspath(path))
    if not target.parent.is_dir():
        raise CLIError(f"cannot write {path!r}: the folder {str(target.parent)!r} does not "
                       "exist")
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.",
                               suffix=target.suffix)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return target


def _write_table(frame, path: str) -> Path:
    ext = Path(path).suffix.lower()
    if ext == ".csv":
        return _atomic_file(path, lambda tmp: frame.to_csv(tmp, index=False))
    if ext in (".parquet", ".pq"):
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise CLIError("writing Parquet needs pyarrow (pip install pyarrow); or write "
                           ".csv") from None
        return _atomic_file(path, lambda tmp: frame.to_parquet(tmp, index=False))
    raise CLIError(f"--out {path!r} must end in .csv, .parquet or .pq")


def _fit(model, panel, key: str):
    import warnings

    cls = _estimator_class(key)
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        return cls(model).fit(panel)


# ------------------------------------------------------------------------------ commands


def cmd_demo(args: argparse.Namespace) -> int:
    """The main job: simulate, fit every estimator, cross-check, counterfactuals, report."""
    import ddc
    import estimators
    from simulations import counterfactual, simulate
    from simulations.report import atomic_directory

    start = time.perf_counter()
    defaults = DEMO_QUICK if args.quick else DEMO_DEFAULTS
    n = args.customers or defaults["customers"]
    T = args.periods or defaults["periods"]
    draws = defaults["draws"] if args.draws is None else args.draws
    for name, value in (("--customers", n), ("--periods", T)):
        if value < 1:
            raise CLIError(f"{name} must be a positive integer, got {value}")
    if draws < 0:
        raise CLIError(f"--draws must be >= 0, got {draws}")
    out = Path(args.out)
    _check_output_dir(out)
    names = _available_estimators()
    missing = [ESTIMATORS[k] for k in ESTIMATORS if k not in names]
    steps = 5
    _say(f"ddc demo: the membership model (MEMBERSHIP_MODEL.md), {n:,} customers x {T} months, "
         f"seed {args.seed}")
    model = ddc.models.membership()
    truth = model.true_params
    with _Step(1, steps, f"simulating the panel at the true parameters ({n * T:,} rows)"):
        panel = simulate(model, truth, n_customers=n, n_periods=T, seed=args.seed)
    results = {}
    with _Step(2, steps, f"fitting {', '.join(ESTIMATORS[k] for k in names)}"):
        for key in names:
            results[ESTIMATORS[key]] = _fit(model, panel, key)
    if missing:
        _say(f"      (not in this version: {', '.join(missing)})")
    table = estimators.compare(results)
    _say()
    _say(table.as_text())
    _say()
    cross_validate = _optional("estimators", "cross_validate", "estimators.crossval")
    if cross_validate is not None:
        with _Step(3, steps, "cross-validating the estimators (against the truth and each "
                             "other)"):
            cross = cross_validate(model, panel, estimators=results, truth=truth)
        keep = [c for c in ("converged", "max_abs_z", "wald", "reward_max_z", "ccp_max_error",
                            "loglik_choice") if c in cross.summary.columns]
        _say(cross.summary[keep].to_string(float_format=lambda x: f"{x:.4g}"))
    else:
        cross = None
        _say(f"[3/{steps}] cross-validation: estimators.cross_validate is not in this version; "
             "the comparison above is the cross-validation, and against the truth:")
        _say(_cross_check(results, truth).to_string(float_format=lambda x: f"{x:.2f}"))
    _say()
    report = None
    base = results.get("NFXP") or next(iter(results.values()))
    with _Step(4, steps, f"default counterfactuals from the {base.estimator} estimate "
                         f"({draws} bootstrap draws)"):
        progress = _progress_bar(5)
        try:
            report = counterfactual(model, base, scenarios="default", n_draws=draws,
                                    seed=args.seed, progress=progress.update_named)
        finally:
            progress.close()
    with _Step(5, steps, f"writing the report to {out}"):
        with atomic_directory(out) as tmp:
            written = report.write_files(tmp)
            (tmp / "results").mkdir()
            for name, res in results.items():
                res.save(tmp / "results" / f"{name.lower()}.json")
            (tmp / "estimates.md").write_text(table.as_markdown(), encoding="utf-8")
            table.to_csv(tmp / "estimates.csv")
            if cross is not None:
                (tmp / "cross_validation.md").write_text(cross.to_markdown(), encoding="utf-8")
                cross.to_csv(tmp / "cross_validation.csv")
            else:
                _cross_check(results, truth).to_csv(tmp / "cross_validation.csv",
                                                    float_format="%.6g")
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


def _optional(package: str, name: str, module: str | None = None):
    """``package.name`` if this version has it (else ``module.name``), or None."""
    import importlib

    found = getattr(importlib.import_module(package), name, None)
    if found is None and module is not None:
        try:
            found = getattr(importlib.import_module(module), name, None)
        except ImportError:
            found = None
    return found


def _dollars(x: float) -> str:
    return f"{'-' if x < 0 else '+'}${abs(x):,.2f}"


def _check_output_dir(out: Path) -> None:
    """Fail before the work if ``out`` cannot be written (see atomic_directory)."""
    from simulations.report import MANIFEST, _is_output_dir

    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not _is_output_dir(out))):
        raise CLIError(f"--out {str(out)!r} exists and is not a ddc-econ output folder (no "
                       f"{MANIFEST}); choose a new or empty folder")


def _cross_check(results: dict, truth):
    import pandas as pd

    rows = {}
    ref = results.get("NFXP")
    for name, res in results.items():
        common = [p for p in res.params.index if p in truth.index]
        z = ((res.params[common] - truth[common]) / res.std_errors[common]).abs()
        row = {"max |z| vs truth": float(z.max()), "parameter": str(z.idxmax())}
        if ref is not None:
            both = [p for p in common if p in ref.params.index]
            gap = ((res.params[both] - ref.params[both]) / ref.std_errors[both]).abs()
            row["max gap to NFXP (NFXP s.e.)"] = float(gap.max())
        row["converged"] = bool(res.converged)
        rows[name] = row
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "estimator"
    return frame


class _progress_bar:
    """A tqdm bar over the counterfactual models (silent when stderr is not a terminal)."""

    def __init__(self, total: int):
        try:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc="      models", leave=False, disable=None,
                            file=sys.stderr)
        except ImportError:  # pragma: no cover - tqdm is a dependency
            self.bar = None

    def update_named(self, name: str) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(name)
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def cmd_estimate(args: argparse.Namespace) -> int:
    """Fit one estimator to a panel and print (and save) the results."""
    model = _make_model(args.model, args.n_states)
    _estimator_class(args.estimator)  # fail early on an unavailable estimator
    panel = _read_panel(_data_arg(args), args.model, args.n_states)
    res = _fit(model, panel, args.estimator)
    _say(str(res.summary()))
    if args.out:
        target = Path(args.out)
        if target.suffix.lower() != ".json":
            raise CLIError(f"--out {args.out!r}: results are saved as JSON; use a .json name")
        if not Path(os.path.abspath(target)).parent.is_dir():
            raise CLIError(f"cannot write {args.out!r}: its folder does not exist")
        res.save(target)
        _say(f"results saved to {target}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """Fit every available estimator and print them side by side."""
    import estimators

    model = _make_model(args.model, args.n_states)
    keys = _available_estimators() if not args.estimators else \
        [k.strip().lower() for k in args.estimators.split(",") if k.strip()]
    for k in keys:
        _estimator_class(k)
    panel = _read_panel(_data_arg(args), args.model, args.n_states)
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
            table.to_csv(args.out)
        elif ext in (".md", ".tex", ".html"):
            text = {".md": table.as_markdown, ".tex": table.as_latex,
                    ".html": table.as_html}[ext]()
            _atomic_file(args.out, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
        else:
            raise CLIError(f"--out {args.out!r} must end in .md, .csv, .tex or .html")
        _say(f"table saved to {args.out}")
    return 0


def cmd_counterfactual(args: argparse.Namespace) -> int:
    """Counterfactual report from saved estimation results."""
    from ddc.models.membership import DEFAULT_SCENARIOS
    from estimators import load_results
    from simulations import counterfactual

    path = Path(args.results)
    if not path.is_file():
        raise CLIError(f"results file {args.results!r} not found (write one with ddc estimate "
                       "... --out FILE.json)")
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
    out = Path(args.out)
    _check_output_dir(out)
    report = counterfactual(model, res, scenarios=scenarios, n_draws=args.draws, seed=args.seed,
                            cov_type=args.cov_type)
    _say(report.as_text())
    report.save(out)
    _say()
    _say(f"report saved to {out} (report.html, report.md, figures and CSV tables)")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    """Simulate a long panel at the model's true parameters."""
    from simulations import simulate

    model = _make_model(args.model, args.n_states)
    if args.n_customers < 1 or args.n_periods < 1:
        raise CLIError("--n-customers and --n-periods must be positive integers")
    ext = Path(args.out).suffix.lower()
    if ext not in (".csv", ".parquet", ".pq"):
        raise CLIError(f"--out {args.out!r} must end in .csv, .parquet or .pq")
    panel = simulate(model, model.true_params, n_customers=args.n_customers,
                     n_periods=args.n_periods, seed=args.seed)
    _write_table(panel, args.out)
    _say(f"{len(panel):,} rows ({args.n_customers:,} units x {args.n_periods} periods) of the "
         f"{args.model} model at its true parameters written to {args.out}")
    return 0


def _montecarlo_module():
    """:mod:`simulations.montecarlo` if this version has it with its command-line hooks
    (``add_arguments``, ``run_from_args``), else None."""
    try:
        import simulations.montecarlo as mc
    except ImportError:
        return None
    if callable(getattr(mc, "add_arguments", None)) and callable(getattr(mc, "run_from_args",
                                                                         None)):
        return mc
    return None


def cmd_montecarlo_unavailable(args: argparse.Namespace) -> int:
    """``ddc montecarlo`` in a version without :mod:`simulations.montecarlo`."""
    raise CLIError("ddc montecarlo is not available in this version of ddc-econ "
                   "(simulations.monte_carlo is not implemented yet)", code=2)


def cmd_montecarlo(args: argparse.Namespace) -> int:
    """Monte Carlo study: :func:`simulations.montecarlo.run_from_args`."""
    return _montecarlo_module().run_from_args(args)


def _data_arg(args: argparse.Namespace) -> str:
    given = [d for d in (args.data, args.data_option) if d is not None]
    if not given:
        raise CLIError("give the DATA file (CSV or Parquet long panel), or 'rust' for Rust's "
                       "bus data with --model rust_bus")
    if len(given) == 2 and given[0] != given[1]:
        raise CLIError("give DATA once (either as the argument or with --data)")
    return given[0]


# ------------------------------------------------------------------------------ parser


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    pass


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", nargs="?", metavar="DATA",
                   help="long panel, CSV or Parquet (one row per unit and period); for "
                        "--model rust_bus also 'rust': Rust's (1987) data, groups 1-4")
    p.add_argument("--data", dest="data_option", metavar="DATA", default=None,
                   help="the same as the DATA argument")
    p.add_argument("--model", choices=MODELS, required=True, help="the model")
    p.add_argument("--n-states", type=int, default=90,
                   help="rust_bus: mileage bins (90: Rust's Table IX; 175: Table X)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``ddc`` command.

    Returns
    -------
    argparse.ArgumentParser
    """
    parser = argparse.ArgumentParser(
        prog="ddc", formatter_class=_Formatter,
        description="Dynamic discrete choice models: simulate, estimate, compare, and "
                    "counterfactual welfare and retention reports.",
        epilog="The main job:\n  ddc demo --out out/demo\n\nEvery command has --help.")
    from ddc import __version__

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
    p.add_argument("--customers", type=int, default=None,
                   help=f"customers (default {DEMO_DEFAULTS['customers']:,}; "
                        f"--quick {DEMO_QUICK['customers']:,})")
    p.add_argument("--periods", type=int, default=None,
                   help=f"months per customer (default {DEMO_DEFAULTS['periods']}; --quick "
                        f"{DEMO_QUICK['periods']})")
    p.add_argument("--draws", type=int, default=None,
                   help=f"bootstrap draws (default {DEMO_DEFAULTS['draws']}; --quick "
                        f"{DEMO_QUICK['draws']})")
    p.add_argument("--seed", type=int, default=0, help="seed of the panel and the draws")
    p.add_argument("--quick", action="store_true", help="a small panel and fewer draws")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "estimate", formatter_class=_Formatter, help="fit one estimator to a panel",
        description="Fit one estimator to a long panel and print its summary; --out saves the "
                    "results as JSON (for ddc counterfactual).",
        epilog="examples:\n  ddc estimate panel.csv --model membership --estimator nfxp "
               "--out nfxp.json\n  ddc estimate rust --model rust_bus --estimator nfxp")
    _add_data_args(p)
    p.add_argument("--estimator", choices=list(ESTIMATORS), default="nfxp", help="estimator")
    p.add_argument("--out", default=None, metavar="FILE", help="save the results (.json)")
    p.set_defaults(func=cmd_estimate)

    p = sub.add_parser(
        "compare", formatter_class=_Formatter, help="all estimators side by side",
        description="Fit every available estimator (or those of --estimators) to a panel and "
                    "print the estimates side by side.",
        epilog="example:\n  ddc compare panel.csv --model membership --out estimates.md")
    _add_data_args(p)
    p.add_argument("--estimators", default=None,
                   help="comma-separated subset, e.g. nfxp,ccp (default: all available)")
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
    p.add_argument("--draws", type=int, default=200, help="bootstrap draws (0: none)")
    p.add_argument("--seed", type=int, default=0, help="seed of the draws")
    p.add_argument("--cov-type", default=None, help="covariance kind of the results to draw "
                                                     "from (default: the results' own)")
    p.set_defaults(func=cmd_counterfactual)

    p = sub.add_parser(
        "simulate", formatter_class=_Formatter, help="simulate a panel at the true parameters",
        description="Simulate a long panel from a built-in model at its true parameters.",
        epilog="example:\n  ddc simulate --model membership --n-customers 10000 "
               "--n-periods 36 --seed 0 --out panel.csv")
    p.add_argument("--model", choices=MODELS, required=True, help="the model")
    p.add_argument("--n-states", type=int, default=90, help="rust_bus: mileage bins")
    p.add_argument("--n-customers", type=int, default=10_000, help="units")
    p.add_argument("--n-periods", type=int, default=36, help="periods per unit")
    p.add_argument("--seed", type=int, default=0, help="seed")
    p.add_argument("--out", required=True, metavar="FILE", help=".csv, .parquet or .pq")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser(
        "montecarlo", formatter_class=_Formatter, help="Monte Carlo study of the estimators",
        description="Repeated simulate-and-estimate at the true parameters: bias, RMSE, "
                    "standard-error accuracy and coverage of every estimator.",
        epilog="example:\n  ddc montecarlo --model membership --reps 100\n"
               "  ddc montecarlo --model rust_bus --reps 20 --scheduler processes")
    mc = _montecarlo_module()
    if mc is not None:
        mc.add_arguments(p)
        p.set_defaults(func=cmd_montecarlo)
    else:
        p.add_argument("--model", choices=MODELS, default="membership", help="the model")
        p.add_argument("--reps", type=int, default=100, help="replications")
        p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="dask.distributed scheduler address")
        p.set_defaults(func=cmd_montecarlo_unavailable)
    return parser


# ------------------------------------------------------------------------------ entry point


USER_ERRORS = (CLIError, ValueError, KeyError, FileNotFoundError, FileExistsError,
               IsADirectoryError, NotADirectoryError, PermissionError)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``ddc`` command.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments (``sys.argv[1:]`` by default).

    Returns
    -------
    int
        The exit status: 0 on success, 1 for a user error (its message on stderr), 2 for a usage
        error or a command not available in this version.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        print(f"ddc {args.command}: error: {message}", file=sys.stderr, flush=True)
        return exc.code if isinstance(exc, CLIError) else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
