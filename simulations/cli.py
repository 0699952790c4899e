"""The ``ddc`` command line: the main job (``ddc demo``) and the pipeline's steps.

The command line is the top of the house: it drives the estimators and the simulations, and
nothing imports it (the ``ddc`` console script points at :func:`main`). ``ddc --help`` lists the
commands; each has ``--help`` with an example. The commands import the heavy packages when they
run, so that ``ddc --help`` answers at once.

Every command that takes ``--model`` works for any model: a name of the model registry
(:data:`ddc.models.REGISTRY`) or a user's factory as ``package.module:function``, with the
factory's options as ``--option KEY=VALUE`` (typed by its signature); estimators are the keys
of the estimator registry (:data:`estimators.ESTIMATORS`). The command line keeps no list of
its own. ``ddc counterfactual`` rebuilds the model of saved results from the registry name and
options they recorded, checks it against their model fingerprint and runs the scenarios the
model declares.

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
import time
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = ["main", "build_parser", "CLIError"]

#: Estimators of ``ddc montecarlo`` when ``--estimators`` is left out (keys of the estimator
#: registry, :data:`estimators.ESTIMATORS`; any registered key is accepted).
MC_ESTIMATORS = ("nfxp", "ccp", "npl")
#: Shortcut flags for common model options: ``--n-states 175`` is ``--option n_states=175``.
MODEL_SHORTCUTS = {"n_states": "--n-states", "beta": "--beta", "cost": "--cost"}
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


def _option_text(args: argparse.Namespace) -> dict[str, object]:
    """The model options of ``--option KEY=VALUE`` (text) and the shortcut flags (typed)."""
    options: dict[str, object] = {}
    for item in getattr(args, "option", None) or []:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise CLIError(f"--option {item!r}: give KEY=VALUE, e.g. --option beta=0.95")
        if key in options:
            raise CLIError(f"--option names {key!r} twice")
        options[key] = value.strip()
    for key, flag in MODEL_SHORTCUTS.items():
        value = getattr(args, key, None)
        if value is None:
            continue
        if key in options:
            raise CLIError(f"{flag} and --option {key}=... are the same option; give one")
        options[key] = value
    return options


def _build_model(name: str, options: dict[str, object], where: str = "--model"):
    """The model ``name`` from the model registry (:func:`ddc.models.get_model`) or a user's
    ``package.module:factory``, with options converted against the factory's signature."""
    import ddc

    if ":" in name and os.getcwd() not in sys.path:  # a user's module in the current folder
        sys.path.append(os.getcwd())
    try:
        typed = ddc.models.parse_options(name, options)
    except KeyError as exc:
        raise CLIError(f"{where}: {exc.args[0]}; list them with ddc models") from None
    except ImportError as exc:
        raise CLIError(f"{where}: {exc}") from None
    except TypeError as exc:
        raise CLIError(f"{exc} (give options with --option KEY=VALUE; ddc models lists "
                       "each model's options)") from None
    try:
        return ddc.models.get_model(name, **typed)
    except TypeError as exc:
        raise CLIError(f"{where} {name!r}: {exc}") from None


def _model(args: argparse.Namespace):
    """The model of ``--model`` and its options; a :class:`ddc.Mixture` of it with
    ``--types K`` (``--by-type``, ``--shares-by``)."""
    return _mixture_of(_build_model(args.model, _option_text(args)), args)


def _names(text: str | None) -> list[str]:
    return [] if not text else [t.strip() for t in text.split(",") if t.strip()]


def _share_covariates(items: list[str] | None) -> dict[str, list | None] | None:
    """``--share-covariate NAME[=v1,v2,...]`` (repeatable) as ``share_covariates``: a
    categorical covariate with its declared values (the first is the base level; values that
    are all integers are read as integers, as a CSV column of integers is), a numeric one
    without; ``None`` when not given."""
    if not items:
        return None
    out: dict[str, list | None] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not name:
            raise CLIError(f"--share-covariate {item!r}: give NAME (numeric) or "
                           "NAME=v1,v2,... (categorical, first the base level)")
        if name in out:
            raise CLIError(f"--share-covariate names {name!r} twice")
        if not sep:
            out[name] = None
            continue
        values = _names(text)
        if not values:
            raise CLIError(f"--share-covariate {item!r}: no values after '='; give "
                           f"{name}=v1,v2,... (categorical) or {name} alone (numeric)")
        try:
            out[name] = [int(v) for v in values]
        except ValueError:
            out[name] = values
    return out


def _transitions_by_type(text: str | None) -> list[str] | bool:
    """``--transitions-by-type VAR[,VAR]|all``: the variables whose transition tables differ
    by type (``all``: every random factor)."""
    if text is not None and text.strip().lower() == "all":
        return True
    names = _names(text)
    if text is not None and not names:
        raise CLIError(f"--transitions-by-type {text!r}: give VAR[,VAR] (state variables with "
                       "a transition factor) or all")
    return names


def _mixture_of(model, args: argparse.Namespace, recorded: dict | None = None):
    """``model`` itself, or the mixture of ``--types``/``--by-type``/``--shares-by``/
    ``--share-covariate``/``--transitions-by-type`` (else of the mixture ``recorded`` in a
    results file); errors name the option at fault."""
    import ddc

    types = getattr(args, "types", None)
    by_type, shares_by = _names(getattr(args, "by_type", None)), \
        _names(getattr(args, "shares_by", None))
    cov_items = getattr(args, "share_covariate", None) or []
    typed_text = getattr(args, "transitions_by_type", None)
    if types is None:
        given = [flag for flag, v in (("--by-type", by_type), ("--shares-by", shares_by),
                                      ("--share-covariate", cov_items),
                                      ("--transitions-by-type", typed_text)) if v]
        if given:
            raise CLIError(f"{' and '.join(given)} need --types K (the number of unobserved "
                           "types)")
        if not recorded:
            return model
        types, by_type = recorded["n_types"], list(recorded["by_type"])
        shares_by = list(recorded.get("shares_by") or [])
        share_covariates = recorded.get("share_covariates") or None
        by_type_tables = list(recorded.get("transitions_by_type") or [])
        where = "the mixture the results recorded"
    else:
        share_covariates = _share_covariates(cov_items)
        by_type_tables = _transitions_by_type(typed_text)
        where = "--by-type"
        if not by_type:
            raise CLIError(f"--types {types} needs --by-type p1,p2: the parameters that differ "
                           f"by type (the model's parameters: {list(model.utility_params)})")
    bad = [p for p in by_type if p not in model.param_names]
    if bad:
        raise CLIError(f"{where} names {bad}, which are not parameters of the model "
                       f"{model.name!r}; choose among {list(model.utility_params)}")
    bad = [v for v in shares_by if v not in model.space.names]
    if bad:
        raise CLIError(f"--shares-by names {bad}, which are not state variables of the model "
                       f"{model.name!r}; choose among {list(model.space.names)}")
    try:
        return ddc.Mixture(model, int(types), by_type, shares_by=shares_by,
                           share_covariates=share_covariates,
                           transitions_by_type=by_type_tables)
    except (KeyError, ValueError, TypeError) as exc:
        msg = exc.args[0] if exc.args else str(exc)
        options = f"--types {types} --by-type {','.join(by_type)}"
        if shares_by:
            options += f" --shares-by {','.join(shares_by)}"
        options += "".join(f" --share-covariate {c}" for c in cov_items)
        if typed_text:
            options += f" --transitions-by-type {typed_text}"
        raise CLIError(f"{options}: {msg}") from None


def _estimator_class(key: str):
    """The estimator class for a command-line name (a key of :data:`estimators.ESTIMATORS`)."""
    import estimators

    try:
        return estimators.get_estimator(key.strip().lower())
    except KeyError:
        raise CLIError(f"unknown estimator {key!r}; choose one of "
                       f"{list(estimators.ESTIMATORS)}") from None


def _read_frame(data: str, model_name: str, model):
    """A long panel from CSV or Parquet, or Rust's data for ``rust``."""
    import pandas as pd

    if data == "rust":
        if model_name != "rust_bus":
            raise CLIError("DATA 'rust' (Rust's 1987 bus data) goes with --model rust_bus")
        import ddc

        return ddc.datasets.load_rust_bus(groups=(1, 2, 3, 4), n_states=model.n_states)
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

    frame = _read_frame(_data_arg(args), args.model, model)
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
    from ddc.io import probe_folder

    try:
        probe_folder(where)
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
    registry = dict(estimators.ESTIMATORS)  # every registered estimator
    steps = 5
    _say(f"ddc demo: the membership model (docs/membership.rst), {n:,} customers x {T} months, "
         f"seed {args.seed}")
    model = ddc.models.get_model("membership")
    truth = model.true_params
    with _Step(1, steps, f"simulating the panel at the true parameters ({n * T:,} rows)"):
        panel = simulate(model, truth, n_customers=n, n_periods=T, seed=args.seed)
    results = {}
    with _Step(2, steps, f"fitting {', '.join(c.name for c in registry.values())}"):
        for key, cls in registry.items():
            results[cls.name] = _fit(model, panel, key)
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
            "market; their engagement moves by the model's transitions, which the estimators "
            "estimate from the panel (cell frequencies) rather than take as known."))
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
    _estimator_class(args.estimator)
    model = _model(args)
    panel = _read_panel(args, model)
    try:
        res = _fit(model, panel, args.estimator)
    except (TypeError, NotImplementedError) as exc:
        if getattr(args, "types", None) is None:
            raise
        raise CLIError(f"--estimator {args.estimator} with --types {args.types}: "
                       f"{exc}") from None
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
    import estimators

    keys = list(estimators.ESTIMATORS) if not args.estimators else \
        [k.strip().lower() for k in args.estimators.split(",") if k.strip()]
    classes = {k: _estimator_class(k) for k in keys}
    model = _model(args)
    panel = _read_panel(args, model)

    results = {}
    for k, cls in classes.items():
        with _Step(len(results) + 1, len(keys), f"fitting {cls.name}"):
            results[cls.name] = _fit(model, panel, k)
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
    from estimators import ModelMismatchError, load_results
    from simulations import counterfactual

    res = load_results(path)
    model, how = _results_model(args, res)
    try:
        res.check_model(model)
    except ModelMismatchError as exc:
        raise CLIError(f"{exc} ({how}; give the model it was estimated with as --model NAME "
                       "with its --option KEY=VALUE, and for a mixture --types K --by-type "
                       "p1,p2)") from None
    res = load_results(path, model)  # with the model: the saved first stage is attached
    base = getattr(model, "model", model)  # a mixture's scenarios are its model's
    scenarios = _scenario_names(args.scenario or ["default"], base)
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
    model = _model(args)
    columns = _columns(args)
    from simulations import simulate

    if model.true_params is None:  # e.g. rust_bus with a cost that has no published estimates
        import json

        example = {**dict.fromkeys(model.utility_params, 1.0),
                   **model.transition_params.round(4).to_dict()}
        raise CLIError(f"the {args.model} model with these options has no default true "
                       f"parameters; give all of {model.param_names} with --option "
                       f"true_params='{json.dumps(example)}' (your values)")
    panel = simulate(model, model.true_params, n_customers=args.n_customers,
                     n_periods=args.n_periods, seed=args.seed, columns=columns)
    _write_table(panel, args.out)
    _say(f"{len(panel):,} rows ({args.n_customers:,} units x {args.n_periods} periods) of the "
         f"{args.model} model at its true parameters written to {args.out}")
    return 0


def _results_model(args: argparse.Namespace, res):
    """The model of saved results: ``--model`` with its options, else the registry name and
    options the results recorded, else (older files) their model's name with default options.
    Returns the model and a phrase saying where it came from."""
    import ddc

    info = res.model_info or {}
    recorded = info.get("mixture")
    if args.model is not None:
        model = _mixture_of(_build_model(args.model, _option_text(args)), args, recorded)
        return model, f"the model given, --model {args.model}"
    if _option_text(args):
        raise CLIError("model options were given without --model; give --model NAME with them")
    if getattr(args, "types", None) is not None:
        raise CLIError("--types was given without --model; give --model NAME with it (or "
                       "neither: the results record their mixture)")
    spec = info.get("registry")
    if recorded and not spec and recorded.get("registry"):  # a mixture of a registered model
        spec = ddc.models.ModelSpec.from_dict(recorded["registry"]).to_dict()
        base = _build_model(spec["name"], dict(spec["options"]),
                            where=f"{args.results!r} records the model {spec['name']!r}")
        opts = " ".join(f"--option {k}={v}" for k, v in spec["options"].items())
        return (_mixture_of(base, args, recorded),
                f"rebuilt as --model {spec['name']} {opts} --types {recorded['n_types']} "
                f"--by-type {','.join(recorded['by_type'])}".replace("  ", " "))
    if spec:
        try:
            spec = ddc.models.ModelSpec.from_dict(spec)
        except ValueError as exc:
            raise CLIError(f"{args.results!r}: {exc}") from None
        where = f"{args.results!r} records the model {spec.name!r}"
        model = _build_model(spec.name, dict(spec.options), where=where)
        opts = " ".join(f"--option {k}={v}" for k, v in spec.options.items())
        return model, f"rebuilt as --model {spec.name} {opts}".rstrip()
    name = info.get("name")
    if name in ddc.models.REGISTRY:
        return _build_model(name, {}), f"rebuilt as --model {name} with its default options"
    raise CLIError(f"{args.results!r} records the model {name!r} but not how to build it (the "
                   "model was not built by ddc.models.get_model, or the file is older); give it "
                   "as --model NAME or --model package.module:factory, with --option KEY=VALUE")


def _scenario_names(items: Sequence[str], model) -> list[str]:
    """The scenario names of ``--scenario`` (``default``: all the model declares), checked
    against the model's :attr:`ddc.Hooks.default_scenarios`."""
    names: list[str] = []
    for item in items:
        names += [s.strip() for s in item.split(",") if s.strip()]
    hook = getattr(getattr(model, "hooks", None), "default_scenarios", None)
    if hook is None:
        raise CLIError(f"the model {model.name!r} declares no scenarios "
                       "(ddc.Hooks.default_scenarios), so none are available by name on the "
                       "command line; declare them in the model's hooks, or run "
                       "simulations.counterfactual(model, results, scenarios=[...]) in Python "
                       "with Scenario objects")
    declared = [s.name for s in hook(model)]
    bad = [s for s in names if s != "default" and s not in declared]
    if bad:
        raise CLIError(f"unknown scenario(s) {bad}; the model {model.name!r} declares "
                       f"{', '.join(declared)} (or default for all of them)")
    if "default" in names:
        names = [*declared, *[s for s in names if s != "default"]]
    return list(dict.fromkeys(names))
    return 0


def _data_arg(args: argparse.Namespace) -> str:
    given = [d for d in (args.data, args.data_option) if d is not None]
    if not given:
        raise CLIError("give the DATA file (CSV or Parquet long panel), or 'rust' for Rust's "
                       "bus data with --model rust_bus")
    if len(given) == 2 and given[0] != given[1]:
        raise CLIError("give DATA once (either as the argument or with --data)")
    return given[0]


def cmd_models(args: argparse.Namespace) -> int:
    """List the model registry (or one model): names, what they are, their options."""
    import inspect

    import ddc
    import estimators

    names = [args.name] if args.name else list(ddc.models.REGISTRY)
    for name in names:
        if ":" in name and os.getcwd() not in sys.path:
            sys.path.append(os.getcwd())
        try:
            factory = ddc.models.get_factory(name)
        except KeyError as exc:
            raise CLIError(exc.args[0]) from None
        except ImportError as exc:
            raise CLIError(str(exc)) from None
        doc = (inspect.getdoc(factory) or "").strip().split("\n\n")[0]
        _say(f"{name}: {' '.join(doc.split())}")
        try:
            params = inspect.signature(factory).parameters.values()
        except (TypeError, ValueError):
            params = []
        for p in params:
            if p.kind is inspect.Parameter.VAR_KEYWORD:
                _say(f"    --option KEY=VALUE  (passed on: **{p.name})")
            elif p.default is not inspect.Parameter.empty:
                _say(f"    --option {p.name}={_option_default(p.default)}")
    if not args.name:
        _say()
        keys = ", ".join(f"{k} ({c.name})" for k, c in estimators.ESTIMATORS.items())
        _say(f"estimators: {keys}")
        _say("your own model: --model package.module:function (a function returning a "
             "ddc.Model)")
    return 0


def _option_default(value) -> str:
    """A factory default as ``--option`` text: JSON for short sequences, ``...`` for long."""
    import json

    if isinstance(value, str):
        return value
    value = value.tolist() if hasattr(value, "tolist") else \
        list(value) if isinstance(value, tuple) else value
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        return "..."
    return text if len(text) <= 60 else "..."


# ------------------------------------------------------------------------------ montecarlo


def _montecarlo_setup(args: argparse.Namespace):
    """The model, truth, estimators, panel size and extra arguments of ``ddc montecarlo``."""
    import functools

    names = MC_ESTIMATORS if args.estimators is None else \
        tuple(s.strip().lower() for s in args.estimators.split(",") if s.strip())
    if not names:
        raise CLIError(f"--estimators {args.estimators!r}: give comma-separated estimator keys")
    classes = {n: _estimator_class(n) for n in names}
    model = _model(args)
    design = MC_DESIGNS.get(args.model, _default_study)(model)
    n = args.n_customers or design.pop("n_customers")
    T = args.n_periods or design.pop("n_periods")
    design.pop("n_customers", None)
    design.pop("n_periods", None)
    options = design.pop("estimator_options", {})
    ests = {cls.name: functools.partial(cls, **options) if options else cls
            for cls in classes.values()}
    return model, model.true_params, ests, n, T, design


def _default_study(model) -> dict:
    """A Monte Carlo design for any model: 2,000 units x 24 periods from the stationary start."""
    return {"n_customers": 2_000, "n_periods": 24}


def _bus_study(model, new_engines: bool = False) -> dict:
    """Rust's bus models: 50 buses x 120 months; the increment column added to the simulated
    panel (:func:`simulations.studies.add_bus_increments`); the estimators keep each bus's
    first month (``drop_first=False``: the panel starts at a known state); with
    ``new_engines`` every bus starts at mileage bin 0 (the Su-Judd design)."""
    import numpy as np

    from simulations.studies import add_bus_increments

    design = {"n_customers": 50, "n_periods": 120, "prepare": add_bus_increments,
              "estimator_options": {"drop_first": False}}
    if new_engines:
        start = np.zeros(model.n_states)
        start[0] = 1.0
        design["simulate_kwargs"] = {"initial": start}
    return design


#: Monte Carlo designs of the registered models that need more than :func:`_default_study`
#: (registry name -> model -> design); any other model, a user's too, gets the default.
MC_DESIGNS = {"rust_bus": _bus_study, "su_judd": lambda model: _bus_study(model, True)}


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


def _integer_at_least(minimum: int, what: str):
    """argparse type: an integer >= ``minimum``, ``what`` naming the accepted values."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {what}, got {value}")
        return value

    return parse


_positive = _integer_at_least(1, "a positive integer (> 0)")
_non_negative = _integer_at_least(0, "an integer >= 0")  # seeds, bootstrap draws


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
    _add_model_args(p)
    _add_column_args(p, reading=True)


def _add_model_args(p: argparse.ArgumentParser, required: bool = True,
                    default: str | None = None, what: str = "") -> None:
    """``--model`` (a name of the model registry, or ``package.module:factory``), its options
    (``--option KEY=VALUE``, typed by the factory's signature) and the shortcut flags."""
    nodefault = "%(default).0s"
    g = p.add_argument_group(
        "model", "a registered model (ddc models lists them with their options) or your own "
                 "factory, a function returning a ddc.Model, as package.module:function"
                 + what)
    g.add_argument("--model", required=required, default=default, metavar="NAME",
                   help="membership, rust_bus, su_judd, ... or package.module:function"
                        + ("" if default else nodefault))
    g.add_argument("--option", action="append", default=None, metavar="KEY=VALUE",
                   help="an option of the model's factory, e.g. --option lock_months=6 "
                        "(repeat); typed by the factory's defaults, else read as JSON"
                        + nodefault)
    g.add_argument("--n-states", type=_n_states, default=None,
                   help="--option n_states=N (rust_bus: mileage bins; 90: Rust's Table IX; "
                        "175: Table X)" + nodefault)
    g.add_argument("--beta", type=_beta, default=None,
                   help="--option beta=B: the discount factor (the model's own when left out)"
                        + nodefault)
    g.add_argument("--cost", default=None, metavar="NAME",
                   help="--option cost=NAME (rust_bus: Rust's cost function, e.g. linear, "
                        "quadratic)" + nodefault)


def _add_mixture_args(p: argparse.ArgumentParser, what: str = "") -> None:
    """``--types K``, ``--by-type``, ``--shares-by``, ``--share-covariate``,
    ``--transitions-by-type``: a finite mixture of unobserved types of the model
    (:class:`ddc.Mixture`)."""
    g = p.add_argument_group(
        "unobserved types", "a finite mixture of K types of the model (ddc.Mixture; "
                            "docs/heterogeneity.rst)" + what)
    g.add_argument("--types", type=_positive, default=None, metavar="K",
                   help="number of types (1 reproduces the one-type fit)")
    g.add_argument("--by-type", default=None, metavar="P1,P2",
                   help="the parameters that differ by type, comma-separated")
    g.add_argument("--shares-by", default=None, metavar="V1,V2",
                   help="state variables of the first observed state that shift the type "
                        "shares (a multinomial logit; constant shares by default)")
    g.add_argument("--share-covariate", action="append", default=None,
                   metavar="NAME[=V1,V2,...]",
                   help="a time-invariant data column that shifts the type shares (repeat for "
                        "several): categorical with its values declared, the first the base "
                        "level (channel=store,web,referral), numeric without (age)")
    g.add_argument("--transitions-by-type", default=None, metavar="VAR[,VAR]|all",
                   help="state variables whose transition tables differ by type, estimated "
                        "by type in the EM (all: every random transition factor)")


def _add_montecarlo_args(parser: argparse.ArgumentParser) -> None:
    nodefault = "%(default).0s"
    _add_model_args(parser, required=False, default="membership",
                    what="; rust_bus and su_judd (the 175-state design of Su and Judd 2012, "
                         "new engines at the start) simulate 50 buses x 120 months with "
                         "Rust's increments")
    parser.add_argument("--reps", type=_positive, required=True,
                        help="replications" + nodefault)
    parser.add_argument("--estimators", default=None,
                        help="comma-separated keys of registered estimators (nfxp, ccp, npl, "
                             f"pqr, maxent, ...); {','.join(MC_ESTIMATORS)} when left out"
                             + nodefault)
    parser.add_argument("--n-customers", type=_positive, default=None,
                        help="units per data set; 2000 for membership, 50 buses for the bus "
                             "models when left out" + nodefault)
    parser.add_argument("--n-periods", type=_positive, default=None,
                        help="periods per unit; 24 for membership, 120 for the bus models when "
                             "left out" + nodefault)
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
               "--column plan=tier\n"
               "  ddc fit panel.csv --model membership --types 2 "
               "--by-type theta_ship,theta_video --out mix.json", aliases=["fit"])
    _add_data_args(p)
    p.add_argument("--estimator", default="nfxp",
                   help="a key of the estimator registry: nfxp, ccp, npl, pqr, maxent, ...")
    p.add_argument("--out", default=None, metavar="FILE", help="save the results (.json)")
    _add_mixture_args(p)
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
        description="Run the scenarios a model declares (ddc.Hooks.default_scenarios) at saved "
                    "estimation results (ddc estimate --out) and write the report, with "
                    "bootstrap intervals from the results' covariance. The model is rebuilt "
                    "from the registry name and options the results recorded (or from --model "
                    "and --option) and checked against the results' model fingerprint.",
        epilog="example:\n  ddc counterfactual nfxp.json --scenario default --out out/cf\n"
               "  ddc counterfactual nfxp.json --scenario monthly_price_up,no_monthly\n"
               "  ddc counterfactual entry.json --model mypkg.models:entry_model "
               "--option beta=0.9\n"
               "  ddc counterfactual mix.json --out out/mix   # a mixture: by type and pooled")
    p.add_argument("results", metavar="RESULTS", help="results JSON (ddc estimate --out)")
    p.add_argument("--scenario", action="append", default=None,
                   help="names of the model's scenarios (membership: monthly_price_up, "
                        "annual_discount, no_monthly, video_benefit), repeat or comma-separate; "
                        "default: all of them")
    p.add_argument("--out", default="out/counterfactual", help="output folder")
    p.add_argument("--draws", type=_non_negative, default=200, help="bootstrap draws (0: none)")
    p.add_argument("--seed", type=_non_negative, default=0, help="seed of the draws")
    p.add_argument("--cov-type", default=None, help="covariance kind of the results to draw "
                                                     "from (default: the results' own)")
    _add_model_args(p, required=False, what=" (default: the one the results recorded)")
    _add_mixture_args(p, " (default: the mixture the results recorded)")
    p.set_defaults(func=cmd_counterfactual)

    p = sub.add_parser(
        "simulate", formatter_class=_Formatter, help="simulate a panel at the true parameters",
        description="Simulate a long panel from a model at its true parameters "
                    "(model.true_params).",
        epilog="example:\n  ddc simulate --model membership --n-customers 10000 "
               "--n-periods 36 --seed 0 --out panel.csv\n"
               "  ddc simulate --model rust_bus --id-col bus --column mileage=odometer "
               "--out buses.parquet\n"
               "  ddc simulate --model mypkg.models:entry_model --option beta=0.9 "
               "--out entry.csv")
    _add_model_args(p)
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

    p = sub.add_parser(
        "models", formatter_class=_Formatter, help="the registered models and their options",
        description="List the model registry (ddc.models.REGISTRY): each model's name, what it "
                    "is and the options of its factory (--option KEY=VALUE), and the "
                    "registered estimators.",
        epilog="example:\n  ddc models\n  ddc models rust_bus\n"
               "  ddc models mypkg.models:entry_model")
    p.add_argument("name", nargs="?", default=None, metavar="NAME",
                   help="one model (a registered name or package.module:function)")
    p.set_defaults(func=cmd_models)
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
