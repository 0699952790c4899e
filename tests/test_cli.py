"""Tests of the ``ddc`` command line (``simulations.cli.main``), run in-process.

Every command is run end to end on small inputs in a temporary folder; user errors must exit
non-zero with one line on stderr naming the fault, and no traceback.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import estimators
from simulations.cli import build_parser, main

COMMANDS = ["demo", "estimate", "compare", "counterfactual", "simulate", "montecarlo", "models"]


MIXTURE_ESTIMATE = ["estimate", "panel.txt", "--model", "membership", "--types", "2",
                    "--by-type", "theta_ship"]


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
    # every estimator of the one registry (estimators.ESTIMATORS), none spelled out in the CLI
    assert saved == {cls.name.lower() for cls in estimators.ESTIMATORS.values()}
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
    pytest.param(["counterfactual", "bus.json"], "records the model None but not how to build "
                 "it", id="results-without-a-model"),
    pytest.param(["counterfactual", "cf.json", "--beta", "0.95"], "give --model NAME",
                 id="options-without-model"),
    pytest.param(["counterfactual", "cf.json", "--model", "membership", "--beta", "0.95"],
                 "beta: 0.99 vs 0.95", id="results-of-another-model"),
    pytest.param(["estimate", "panel.txt", "--model", "cars"], "unknown model 'cars'; registered",
                 id="unknown-model"),
    pytest.param(["simulate", "--model", "no_such_module_xyz:build", "--out", "p.csv"],
                 "cannot import the module 'no_such_module_xyz'", id="model-import"),
    pytest.param(["simulate", "--model", "models_entry:no_such_factory", "--out", "p.csv"],
                 "has no attribute 'no_such_factory'", id="model-attribute"),
    pytest.param(["simulate", "--model", "membership", "--n-states", "5", "--out", "p.csv"],
                 "takes no option 'n_states'", id="option-not-taken"),
    pytest.param(["simulate", "--model", "rust_bus", "--option", "n_states=ten", "--out",
                  "p.csv"], "n_states='ten': give an integer", id="option-type"),
    pytest.param(["simulate", "--model", "rust_bus", "--option", "beta", "--out", "p.csv"],
                 "give KEY=VALUE", id="option-syntax"),
    pytest.param(["simulate", "--model", "rust_bus", "--n-states", "20", "--option",
                  "n_states=30", "--out", "p.csv"], "are the same option", id="option-twice"),
    pytest.param(["estimate", "panel.txt", "--model", "membership", "--estimator", "ols"],
                 "unknown estimator 'ols'", id="unknown-estimator"),
    pytest.param(["counterfactual", "cf.json", "--scenario", "free_lunch"], "free_lunch",
                 id="unknown-scenario"),
    pytest.param(["simulate", "--model", "membership", "--out", "panel.xlsx"], "must end in",
                 id="simulate-extension"),
    pytest.param(["estimate", "panel.txt", "--model", "membership", "--by-type", "theta_ship"],
                 "--by-type need --types K", id="by-type-without-types"),
    pytest.param(["estimate", "panel.txt", "--model", "membership", "--types", "2"],
                 "--types 2 needs --by-type p1,p2", id="types-without-by-type"),
    pytest.param(["estimate", "panel.txt", "--model", "membership", "--types", "2",
                  "--by-type", "theta_shipping"], "--by-type names ['theta_shipping']",
                 id="by-type-unknown"),
    pytest.param(["estimate", "panel.txt", "--model", "membership", "--types", "2",
                  "--by-type", "theta_ship", "--shares-by", "region"],
                 "--shares-by names ['region']", id="shares-by-unknown"),
    pytest.param(["estimate", "panel.txt", "--model", "membership", "--share-covariate",
                  "channel=a,b"], "--share-covariate need --types K",
                 id="share-covariate-without-types"),
    pytest.param([*MIXTURE_ESTIMATE, "--share-covariate", "=a,b"],
                 "--share-covariate '=a,b': give NAME",
                 id="share-covariate-no-name"),
    pytest.param([*MIXTURE_ESTIMATE, "--share-covariate", "channel="], "no values after '='",
                 id="share-covariate-no-values"),
    pytest.param([*MIXTURE_ESTIMATE, "--share-covariate", "age", "--share-covariate", "age=1,2"],
                 "--share-covariate names 'age' twice", id="share-covariate-twice"),
    pytest.param([*MIXTURE_ESTIMATE, "--share-covariate", "market"],
                 "--share-covariate market: share_covariates names 'market', a state variable",
                 id="share-covariate-state"),
    pytest.param([*MIXTURE_ESTIMATE, "--share-covariate", "channel=web"],
                 "needs at least two values",
                 id="share-covariate-one-value"),
    pytest.param([*MIXTURE_ESTIMATE, "--transitions-by-type", "colour"],
                 "--transitions-by-type colour: ",
                 id="transitions-by-type-unknown"),
    pytest.param([*MIXTURE_ESTIMATE, "--transitions-by-type", ","],
                 "--transitions-by-type ',': give VAR",
                 id="transitions-by-type-empty"),
    pytest.param(["counterfactual", "cf.json", "--types", "2", "--by-type", "theta_ship"],
                 "--types was given without --model", id="types-without-model"),
    pytest.param(["counterfactual", "cf.json", "--model", "membership", "--types", "2",
                  "--by-type", "theta_ship"], "n_types", id="results-of-one-type"),
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
    pytest.param(["estimate", "p.csv", "--model", "membership", "--types", "0", "--by-type",
                  "theta_ship"], "--types: must be a positive integer", id="types-0"),
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
    import os

    ro = tmp_path / "ro"
    ro.mkdir()
    real = os.open

    def create(path, flags, *args, **kwargs):
        if flags & os.O_CREAT and str(path).startswith(str(ro)):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", create)
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
        main(["estimate", "panel.csv"])  # --model is required
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2
    assert build_parser().prog == "ddc"


# ------------------------------------------------------------------------------ any model


def test_models_lists_the_registry_and_its_options(capsys):
    import ddc

    code, out, err = run(capsys, "models")
    assert code == 0, err
    for name in ddc.models.REGISTRY:
        assert f"{name}: " in out
    assert "--option cost=linear" in out and "nfxp (NFXP)" in out
    code, out, err = run(capsys, "models", "models_entry:entry_model")
    assert code == 0, err
    assert out.startswith("models_entry:entry_model: The entry/exit model") and "beta=0.95" in out


def test_model_options_reach_the_factory(capsys, tmp_path):
    """--option KEY=VALUE, typed by the factory's signature, and the shortcut flags build the
    same model as ddc.models.get_model with those options."""
    import ddc

    path = tmp_path / "bus.csv"
    code, out, err = run(capsys, "simulate", "--model", "rust_bus", "--option", "n_states=12",
                         "--beta", "0.9", "--option", "theta_3=[0.5, 0.5]", "--n-customers",
                         "5", "--n-periods", "4", "--out", str(path))
    assert code == 0, err
    frame = pd.read_csv(path)
    assert len(frame) == 20 and frame["mileage"].max() < 12
    from simulations import simulate

    model = ddc.models.get_model("rust_bus", n_states=12, beta=0.9, theta_3=[0.5, 0.5])
    expected = simulate(model, model.true_params, n_customers=5, n_periods=4, seed=0)
    pd.testing.assert_frame_equal(frame, expected.astype({"action": str}), check_dtype=False,
                                  check_categorical=False)


def test_simulate_without_default_true_parameters_says_which_option_to_give(capsys, tmp_path):
    """rust_bus with a non-linear cost has no published estimates to simulate at: the error
    names ``--option true_params=...`` with every parameter, and that option works."""
    out = str(tmp_path / "bus.csv")
    args = ["simulate", "--model", "rust_bus", "--option", "cost=quadratic", "--n-customers",
            "5", "--n-periods", "4", "--out", out]
    code, _, err = run(capsys, *args)
    assert code != 0
    assert "no default true parameters" in err
    given = err.split("--option ", 1)[1].split(" (your values)")[0]
    assert given.startswith("true_params=")
    truth = json.loads(given.split("=", 1)[1].strip("'"))
    assert list(truth) == ["RC", "theta_11", "theta_12", "theta_30", "theta_31"]
    code, _, err = run(capsys, *args, "--option", given.replace("'", ""))
    assert code == 0, err
    assert len(pd.read_csv(out)) == 20


def test_a_users_model_from_simulate_to_counterfactual(capsys, tmp_path, monkeypatch):
    """A user's model (tests/models_entry.py) named as module:factory goes through simulate,
    estimate and counterfactual; the results record how to rebuild it (registry name and
    options) and the counterfactual checks it against their fingerprint."""
    from simulations import CounterfactualReport

    monkeypatch.setattr(CounterfactualReport, "figure_pngs", lambda self, dpi=110: {})
    monkeypatch.chdir(tmp_path)
    model = ["--model", "models_entry:entry_model_with_scenarios", "--option", "beta=0.9"]
    code, out, err = run(capsys, "simulate", *model, "--n-customers", "400", "--n-periods",
                         "20", "--seed", "2", "--out", "entry.csv")
    assert code == 0, err
    assert list(pd.read_csv("entry.csv").columns) == ["firm", "year", "incumbent", "demand",
                                                      "action"]
    code, out, err = run(capsys, "estimate", "entry.csv", *model, "--estimator", "nfxp",
                         "--out", "entry.json")
    assert code == 0, err
    loaded = estimators.load_results("entry.json")
    assert loaded.model_info["registry"] == {
        "name": "models_entry:entry_model_with_scenarios", "options": {"beta": 0.9}}
    assert loaded.fingerprint["beta"] == 0.9
    # the model rebuilt from what the results recorded, scenarios by the names it declares
    code, out, err = run(capsys, "counterfactual", "entry.json", "--scenario", "entry_cost_up",
                         "--draws", "10", "--out", "cf")
    assert code == 0, err
    assert "entry_cost_up" in out and "tax_on_in" not in out and "utils" in out
    summary = pd.read_csv(tmp_path / "cf" / "summary.csv", index_col="scenario")
    assert list(summary.index) == ["baseline", "entry_cost_up"]
    assert summary.loc["entry_cost_up", "cv_per_firm"] < 0  # entry dearer: a loss
    # all declared scenarios by default, the model given again on the command line
    code, out, err = run(capsys, "counterfactual", "entry.json", *model, "--draws", "0",
                         "--out", "cf2")
    assert code == 0, err
    summary = pd.read_csv(tmp_path / "cf2" / "summary.csv", index_col="scenario")
    assert list(summary.index) == ["baseline", "entry_cost_up", "tax_on_in"]
    # the model given with other options: refused by the fingerprint, the difference named
    code, out, err = run(capsys, "counterfactual", "entry.json", "--model",
                         "models_entry:entry_model_with_scenarios", "--out", "cf3")
    assert code == 1 and "beta: 0.9 vs 0.95" in err
    # a model declaring no scenarios: none available, said so
    code, out, err = run(capsys, "estimate", "entry.csv", "--model", "models_entry:entry_model",
                         "--option", "beta=0.9", "--estimator", "ccp", "--out", "plain.json")
    assert code == 0, err
    code, out, err = run(capsys, "counterfactual", "plain.json", "--out", "cf4")
    assert code == 1 and "declares no scenarios" in err and "Traceback" not in err


def test_a_registered_model_is_reachable_by_name(capsys, tmp_path, monkeypatch):
    from models_entry import entry_model

    import ddc

    monkeypatch.setitem(ddc.models.REGISTRY, "entry", entry_model)
    with pytest.raises(ValueError, match="already registered"):
        ddc.models.register("entry", lambda: None)
    code, out, err = run(capsys, "simulate", "--model", "entry", "--beta", "0.9",
                         "--n-customers", "10", "--n-periods", "3", "--out",
                         str(tmp_path / "e.csv"))
    assert code == 0, err
    spec = ddc.models.spec_of(ddc.models.get_model("entry", beta=0.9))
    assert spec == ddc.models.ModelSpec("entry", {"beta": 0.9})
    assert spec.build().fingerprint() == entry_model(beta=0.9).fingerprint()
    assert ddc.models.spec_of(entry_model()) is None  # not built by the registry


def test_monte_carlo_reads_the_registries():
    """monte_carlo takes a registered model's name and estimator keys."""
    import ddc
    from simulations.montecarlo import monte_carlo

    model = ddc.models.get_model("membership")
    mc = monte_carlo("membership", model.true_params, ["npl", "CCP"], reps=1,
                     n_customers=200, n_periods=8, seed=0, progress=False)
    assert list(dict.fromkeys(mc.table["estimator"])) == ["NPL", "CCP"]
    with pytest.raises(ValueError, match="no estimator 'gmm'"):
        monte_carlo(model, model.true_params, ["gmm"], reps=1, n_customers=10, n_periods=2)


@pytest.fixture(scope="module")
def segments_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("seg") / "segments.csv"
    assert main(["simulate", "--model", "membership_segments", "--n-customers", "600",
                 "--n-periods", "24", "--seed", "1", "--out", str(path)]) == 0
    return path


def test_a_mixture_from_fit_to_counterfactual(capsys, segments_csv, tmp_path):
    """ddc fit --types 2 --by-type ... saves a mixture's results that record how to rebuild the
    mixture; ddc counterfactual rebuilds it, checks the fingerprint and writes the report by
    type and pooled; the same mixture given on the command line works too, another one is
    refused naming the difference."""
    import ddc

    target = tmp_path / "mix.json"
    code, out, err = run(capsys, "fit", str(segments_csv), "--model", "membership",
                         "--types", "2", "--by-type", "theta_ship,theta_video",
                         "--out", str(target))
    assert code == 0, err
    assert "theta_ship[1]" in out and "share[1]" in out
    mix = ddc.Mixture(ddc.models.membership(), 2, ["theta_ship", "theta_video"])
    loaded = estimators.load_results(target, mix)  # the fingerprint check passes
    assert list(loaded.params.index) == mix.param_names
    assert loaded.model_info["mixture"]["by_type"] == ["theta_ship", "theta_video"]
    with pytest.raises(estimators.ModelMismatchError, match="by_type"):
        estimators.load_results(target, ddc.Mixture(ddc.models.membership(), 2,
                                                     ["theta_ship"]))
    out_dir = tmp_path / "cf"
    code, out, err = run(capsys, "counterfactual", str(target), "--scenario", "video_benefit",
                         "--draws", "8", "--out", str(out_dir))
    assert code == 0, err
    assert "Figures by type" in out and "(pooled over the types)" in out
    names = {p.name for p in out_dir.iterdir()}
    assert {"by_type.csv", "summary.csv", "by_market.csv", "retention.csv", "report.md",
            "report.html"} <= names
    by_type = pd.read_csv(out_dir / "by_type.csv", index_col=[0, 1])
    assert sorted(by_type.index.get_level_values(0).unique()) == [0, 1]
    # the same mixture spelled out on the command line
    code, out, err = run(capsys, "counterfactual", str(target), "--model", "membership",
                         "--types", "2", "--by-type", "theta_ship,theta_video",
                         "--scenario", "video_benefit", "--draws", "0",
                         "--out", str(tmp_path / "cf2"))
    assert code == 0, err
    # another mixture is refused, naming the difference and the options
    code, out, err = run(capsys, "counterfactual", str(target), "--model", "membership",
                         "--types", "2", "--by-type", "theta_ship", "--draws", "0",
                         "--out", str(tmp_path / "cf3"))
    assert code == 1 and "by_type" in err and "--types K --by-type" in err


def test_mixture_options_map_to_the_mixture():
    """--share-covariate and --transitions-by-type give ddc.Mixture's share_covariates and
    transitions_by_type (integers read as integers, all for every random factor)."""
    import argparse

    import ddc
    from simulations.cli import _mixture_of

    model = ddc.models.membership()

    def mixture(**kw):
        args = argparse.Namespace(types=2, by_type="theta_ship", shares_by=None,
                                  share_covariate=None, transitions_by_type=None)
        return _mixture_of(model, argparse.Namespace(**{**vars(args), **kw}))

    mix = mixture(share_covariate=["channel=store,web,referral", "age", "region=1,2"])
    assert mix.share_covariates == {"channel": ("store", "web", "referral"), "age": None,
                                    "region": (1, 2)}
    assert mixture(transitions_by_type="video").transitions_by_type == ["video"]
    everything = ddc.Mixture(model, 2, ["theta_ship"], transitions_by_type=True)
    assert mixture(transitions_by_type="all").transitions_by_type == \
        everything.transitions_by_type


def test_covariate_shares_from_fit_to_counterfactual(capsys, segments_csv, tmp_path):
    """ddc fit --share-covariate saves a mixture whose shares vary over customers; the file
    keeps their covariates, so ddc counterfactual pools the types with the units' own
    shares."""
    frame = pd.read_csv(segments_csv)
    ids = frame["customer_id"].unique()
    channel = dict(zip(ids, np.random.default_rng(0).choice(["store", "web"], len(ids)),
                       strict=True))
    frame["channel"] = frame["customer_id"].map(channel)
    data = tmp_path / "panel.csv"
    frame.to_csv(data, index=False)
    target = tmp_path / "mix.json"
    code, out, err = run(capsys, "fit", str(data), "--model", "membership", "--types", "2",
                         "--by-type", "theta_ship,theta_video", "--share-covariate",
                         "channel=store,web", "--out", str(target))
    assert code == 0, err
    assert "gamma[1]:channel=web" in out
    code, out, err = run(capsys, "counterfactual", str(target), "--scenario", "video_benefit",
                         "--draws", "4", "--out", str(tmp_path / "cf"))
    assert code == 0, err
    assert "mean share over the 600 estimation units" in (tmp_path / "cf" / "report.md"
                                                          ).read_text()
