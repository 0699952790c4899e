"""Tests of the ``ddc`` command line (``simulations.cli.main``), run in-process.

Every command is run end to end on small inputs in a temporary folder; user errors must exit
non-zero with one line on stderr naming the fault, and no traceback.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

import estimators
from simulations.cli import build_parser, main

COMMANDS = ["demo", "estimate", "compare", "counterfactual", "simulate", "montecarlo"]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for command in COMMANDS:
        assert command in out
    assert "ddc demo --out out/demo" in out


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(capsys, command):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "example" in out and f"ddc {command}" in out


def test_demo_quick_writes_the_report(capsys, tmp_path, monkeypatch):
    out_dir = tmp_path / "demo"
    code, out, err = run(capsys, "demo", "--quick", "--customers", "900", "--periods", "24",
                         "--draws", "20", "--out", str(out_dir))
    assert code == 0, err
    for step in ("[1/5]", "[2/5]", "[3/5]", "[4/5]", "[5/5]"):
        assert step in out
    assert "Comparison of estimates" in out and "cross-validat" in out.lower()
    assert "monthly_price_up: CV -$" in out and "video_benefit: CV +$" in out
    names = {p.name for p in out_dir.iterdir()}
    assert {"report.md", "report.html", "retention.png", "changes.png", "summary.csv",
            "estimates.md", "estimates.csv", "cross_validation.csv", "results",
            "MANIFEST.json"} <= names
    saved = {p.stem for p in (out_dir / "results").iterdir()}
    assert {"nfxp", "ccp", "npl"} <= saved
    from simulations.cli import ESTIMATORS

    assert saved == {name.lower() for name in ESTIMATORS.values()}
    summary = pd.read_csv(out_dir / "summary.csv", index_col="scenario")
    assert list(summary.index) == ["baseline", "monthly_price_up", "annual_discount",
                                   "no_monthly", "video_benefit"]
    assert "cv_per_customer_lower" in summary.columns
    assert (out_dir / "retention.png").read_bytes()[:4] == b"\x89PNG"
    # the report reads as a memo: the data, the parameters, the estimators, the caveats
    md = (out_dir / "report.md").read_text()
    order = [md.index(h) for h in ("## The data", "## The estimates", "## Estimators compared",
                                   "## Scenarios", "## Results", "## Caveats",
                                   "## How to read")]
    assert order == sorted(order)
    assert "**simulated, not observed**: a panel of 900 customers over 24 months" in md
    assert "seed 0" in md and "market 2: $16.99 a month or $159.00 a year" in md
    assert "| alpha_price | marginal utility of money" in md and "95% interval" in md
    assert "Each estimator against the truth" in md and "- `max_abs_z`: largest" in md
    assert "**Retention without the monthly plan is mechanical.**" in md
    # below, skip rendering the figures again (slow; checked above)
    from simulations import CounterfactualReport

    monkeypatch.setattr(CounterfactualReport, "figure_pngs", lambda self, dpi=110: dict.fromkeys(
        ["retention.png", "changes.png", "welfare_by_market.png"], b"\x89PNG"))
    # the saved NFXP results drive `ddc counterfactual`
    code, out, err = run(capsys, "counterfactual", str(out_dir / "results" / "nfxp.json"),
                         "--scenario", "no_monthly", "--draws", "10",
                         "--out", str(tmp_path / "cf"))
    assert code == 0, err
    assert "no_monthly" in out and "annual_discount" not in out
    assert (tmp_path / "cf" / "report.html").is_file()
    # running the demo again replaces its own folder
    code, _, err = run(capsys, "demo", "--quick", "--customers", "600", "--draws", "0",
                       "--out", str(out_dir))
    assert code == 0, err
    assert json.loads((out_dir / "MANIFEST.json").read_text())["format"]


@pytest.fixture(scope="module")
def panel_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "panel.csv"
    assert main(["simulate", "--model", "membership", "--n-customers", "800", "--n-periods",
                 "24", "--seed", "3", "--out", str(path)]) == 0
    return path


def test_simulate_writes_csv_and_parquet(capsys, panel_csv, tmp_path):
    frame = pd.read_csv(panel_csv)
    assert list(frame.columns) == ["customer_id", "month", "market", "plan", "ship", "video",
                                   "action"]
    assert len(frame) == 800 * 24
    pytest.importorskip("pyarrow")
    pq = tmp_path / "panel.parquet"
    code, out, err = run(capsys, "simulate", "--model", "membership", "--n-customers", "50",
                         "--n-periods", "12", "--out", str(pq))
    assert code == 0, err
    assert len(pd.read_parquet(pq)) == 600
    code, out, err = run(capsys, "estimate", str(pq), "--model", "membership",
                         "--estimator", "npl")
    assert code == 0, err and "NPL" in out


def test_estimate_and_save(capsys, panel_csv, tmp_path):
    target = tmp_path / "nfxp.json"
    code, out, err = run(capsys, "estimate", str(panel_csv), "--model", "membership",
                         "--estimator", "nfxp", "--out", str(target))
    assert code == 0, err
    assert "NFXP estimation results" in out and "alpha_price" in out
    loaded = estimators.load_results(target)
    assert loaded.estimator == "NFXP" and loaded.model_name == "membership"


def test_compare_writes_the_table(capsys, panel_csv, tmp_path):
    target = tmp_path / "table.md"
    code, out, err = run(capsys, "compare", str(panel_csv), "--model", "membership",
                         "--estimators", "nfxp,ccp", "--out", str(target))
    assert code == 0, err
    text = target.read_text()
    assert "NFXP" in text and "CCP" in text and "|" in text
    csv = tmp_path / "table.csv"
    assert main(["compare", "--data", str(panel_csv), "--model", "membership",
                 "--estimators", "npl", "--out", str(csv)]) == 0
    assert csv.is_file()


def test_estimate_rust_data(capsys):
    code, out, err = run(capsys, "estimate", "rust", "--model", "rust_bus", "--estimator",
                         "nfxp")
    assert code == 0, err
    assert "RC" in out and "theta_11" in out


@pytest.mark.parametrize("argv, message", [
    pytest.param(["estimate", "missing.csv", "--model", "membership"], "not found",
                 id="missing-file"),
    pytest.param(["estimate", "panel.txt", "--model", "membership"], "must end in",
                 id="bad-extension"),
    pytest.param(["estimate", "rust", "--model", "membership"], "rust_bus", id="rust-data"),
    pytest.param(["estimate", "--model", "membership"], "give the DATA", id="no-data"),
    pytest.param(["counterfactual", "nothing.json"], "not found", id="missing-results"),
    pytest.param(["counterfactual", "bus.json"], "membership", id="results-of-another-model"),
    pytest.param(["counterfactual", "cf.json", "--scenario", "free_lunch"], "free_lunch",
                 id="unknown-scenario"),
    pytest.param(["simulate", "--model", "membership", "--out", "panel.xlsx"], "must end in",
                 id="simulate-extension"),
    pytest.param(["demo", "--out", "mine"], "not a ddc-econ output folder", id="foreign-folder"),
    pytest.param(["estimate", "bad.csv", "--model", "membership"], "plan", id="bad-column"),
    pytest.param(["estimate", "empty.csv", "--model", "membership"], "'empty.csv' is empty",
                 id="empty-csv"),
    pytest.param(["estimate", "cut.parquet", "--model", "membership"], "truncated, corrupted",
                 id="truncated-parquet"),
])
def test_user_errors_exit_nonzero_without_traceback(capsys, tmp_path, monkeypatch, argv,
                                                    message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "panel.txt").write_text("x")
    (tmp_path / "empty.csv").write_bytes(b"")
    (tmp_path / "cut.parquet").write_bytes(b"PAR1" + b"\0" * 40)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    pd.DataFrame({"customer_id": [0, 0], "month": [0, 1], "market": [0, 0],
                  "plan": ["none", "platinum"], "ship": [0, 0], "video": [0, 0],
                  "action": ["none", "none"]}).to_csv(tmp_path / "bad.csv", index=False)
    res = estimators.EstimationResults(
        model=None, estimator="NFXP", params=pd.Series({"RC": 9.0, "theta_11": 2.0}),
        hessian=None, scores=None, groups=None, loglik=-1.0, nobs=10, converged=True)
    res.save(tmp_path / "bus.json")
    import ddc

    model = ddc.models.membership()
    good = estimators.EstimationResults(
        model=model, estimator="NFXP", params=model.true_params, hessian=None, scores=None,
        groups=None, loglik=-1.0, nobs=10, converged=True)
    good.save(tmp_path / "cf.json")
    code, out, err = run(capsys, *argv)
    assert code == 1
    assert message in err
    assert "Traceback" not in err and err.startswith(f"ddc {argv[0]}: error:")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_montecarlo_runs(capsys, tmp_path):
    code, out, err = run(capsys, "montecarlo", "--model", "membership", "--reps", "2",
                         "--n-customers", "300", "--n-periods", "12", "--estimators", "npl",
                         "--no-progress")
    assert code == 0, err
    assert "alpha_price" in out


@pytest.mark.parametrize("argv, message", [
    pytest.param(["demo", "--customers", "0"], "--customers: must be a positive integer (> 0), "
                 "got 0", id="demo-customers-0"),
    pytest.param(["demo", "--periods", "0"], "--periods: must be a positive integer", id="periods"),
    pytest.param(["demo", "--seed", "-1"], "--seed: must be an integer >= 0, got -1", id="seed"),
    pytest.param(["demo", "--draws", "-5"], "--draws: must be an integer >= 0", id="draws"),
    pytest.param(["simulate", "--model", "membership", "--n-customers", "0", "--out", "p.csv"],
                 "--n-customers: must be a positive integer", id="simulate-customers"),
    pytest.param(["simulate", "--model", "rust_bus", "--n-states", "1", "--out", "p.csv"],
                 "--n-states: needs at least 2", id="n-states"),
    pytest.param(["montecarlo", "--reps", "0"], "--reps: must be a positive integer",
                 id="reps"),
    pytest.param(["montecarlo", "--reps", "2", "--beta", "1.0"], "--beta: must be in [0, 1)",
                 id="beta"),
])
def test_bad_counts_and_seeds_are_refused(capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.fixture
def no_work(monkeypatch):
    """Fails the test if the command starts simulating (the work after the checks)."""
    import simulations

    def simulate(*args, **kwargs):
        raise AssertionError("the command started working before checking --out")

    monkeypatch.setattr(simulations, "simulate", simulate)


@pytest.mark.parametrize("argv", [
    pytest.param(["demo", "--quick", "--out", "{ro}/demo"], id="demo"),
    pytest.param(["simulate", "--model", "membership", "--out", "{ro}/p.csv"], id="simulate"),
    pytest.param(["estimate", "{csv}", "--model", "membership", "--out", "{ro}/r.json"],
                 id="estimate"),
    pytest.param(["compare", "{csv}", "--model", "membership", "--out", "{ro}/t.md"],
                 id="compare"),
    pytest.param(["montecarlo", "--reps", "1", "--out", "{ro}/mc.csv"], id="montecarlo"),
])
def test_unwritable_out_is_refused_before_any_work(capsys, tmp_path, monkeypatch, no_work,
                                                   argv):
    """A read-only file system (EROFS on every file created under it) is found before the work,
    reported in one line, exit 1."""
    import errno
    import tempfile

    ro = tmp_path / "ro"
    ro.mkdir()
    real = tempfile.mkstemp

    def mkstemp(*args, dir=None, **kwargs):
        if dir is not None and str(dir).startswith(str(ro)):
            raise OSError(errno.EROFS, "Read-only file system", str(dir))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    import estimators as est

    monkeypatch.setattr(est.NFXP, "fit", lambda *a, **k: pytest.fail("fitted before the check"))
    argv = [a.format(ro=ro, csv=tmp_path / "missing.csv") for a in argv]
    code, out, err = run(capsys, *argv)
    assert code == 1
    assert "Read-only file system" in err and "--out" in err, err
    assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("error, message", [
    pytest.param(OSError(28, "No space left on device", "panel.csv"), "No space left on device",
                 id="disk-full"),
    pytest.param(MemoryError(), "out of memory", id="memory"),
])
def test_os_and_memory_errors_are_one_line(capsys, tmp_path, monkeypatch, error, message):
    import simulations

    def simulate(*args, **kwargs):
        raise error

    monkeypatch.setattr(simulations, "simulate", simulate)
    code, out, err = run(capsys, "simulate", "--model", "membership", "--out",
                         str(tmp_path / "p.csv"))
    assert code == 1
    assert err.startswith("ddc simulate: error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_column_mapping_round_trip(capsys, tmp_path):
    """A panel written with other column names, and with YYYYMM periods, is read back with
    --id-col/--time-col/--action-col/--column/--time-format and gives the same estimates."""
    mapped = tmp_path / "mapped.csv"
    opts = ["--id-col", "client", "--time-col", "t", "--action-col", "choice", "--column",
            "plan=tier", "--column", "market=region"]
    code, out, err = run(capsys, "simulate", "--model", "membership", "--n-customers", "300",
                         "--n-periods", "12", "--seed", "5", "--out", str(mapped), *opts)
    assert code == 0, err
    frame = pd.read_csv(mapped)
    assert list(frame.columns) == ["client", "t", "region", "tier", "ship", "video", "choice"]
    code, out_mapped, err = run(capsys, "estimate", str(mapped), "--model", "membership",
                                "--estimator", "npl", *opts)
    assert code == 0, err
    # the same data with YYYYMM periods starting in November 2021
    frame["t"] = [int(p.strftime("%Y%m")) for p in pd.Period("2021-11", freq="M") + frame["t"]]
    frame.to_csv(tmp_path / "yyyymm.csv", index=False)
    code, out_yyyymm, err = run(capsys, "estimate", str(tmp_path / "yyyymm.csv"), "--model",
                                "membership", "--estimator", "npl", *opts, "--time-format",
                                "%Y%m")
    assert code == 0, err
    params = [line for line in out_mapped.splitlines() if line.startswith("theta_")]
    assert params and params == [line for line in out_yyyymm.splitlines()
                                 if line.startswith("theta_")]
    # without the format, the integers are periods with gaps, and the message says what to do
    code, out, err = run(capsys, "estimate", str(tmp_path / "yyyymm.csv"), "--model",
                         "membership", "--estimator", "npl", *opts)
    assert code == 1 and "gap" in err and "--time-format %Y%m" in err
    code, out, err = run(capsys, "estimate", str(mapped), "--model", "membership",
                         "--column", "plan")
    assert code == 1 and "give VARIABLE=COLUMN" in err


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["estimate", "panel.csv", "--model", "cars"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2
    assert build_parser().prog == "ddc"
