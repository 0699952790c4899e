"""Benchmarks of the IRL estimators next to the structural ones, on the default membership panel.

Run with::

    python -m pytest tests/benchmarks/test_bench_estimators_irl.py --benchmark-only

(the default test run skips them: ``--benchmark-skip`` is in the pytest ``addopts``). Every fit
runs in process from zero starting values, after a warm-up round (numba kernels compiled). Each
benchmark checks its estimate (convergence and |z| < 4.4 against the truth, or agreement with
NFXP on Rust's data); none asserts a time.

Groups (pytest-benchmark prints one table per group, so the estimators appear side by side):

* ``membership-20000x36-all``: NFXP, CCP, NPL, PQR (frequency P-step, tabular Q-step, the
  delta-method covariance), PQR for large state spaces (logit P-step, LSTD Q-step), PQR with a
  50-resample bootstrap, MaxEntIRL (the causal likelihood, equal to NFXP's estimate) and its
  textbook feature-matching variant, on 20,000 customers x 36 months (720,000 rows; the panel of
  tests/test_estimators.py and tests/benchmarks/test_bench_estimators.py). Every ``fit`` includes
  coding the panel (about 0.4 s of it here) and computing the covariance.
* ``membership-cross-validate``: :func:`estimators.crossval.cross_validate` with the five
  default estimators, the comparison tables included.
* ``rust-90-irl``: NFXP (stage 2), MaxEntIRL and PQR (logit P-step) on Rust's groups 1-4.
"""

from __future__ import annotations

import numpy as np
import pytest

import ddc
from estimators.ccp import CCP, NPL
from estimators.crossval import cross_validate
from estimators.maxent import MaxEntIRL
from estimators.nfxp import NFXP
from estimators.pqr import PQR
from simulations import simulate

Z_MAX = 4.4

ESTIMATORS = {
    "NFXP": lambda m: NFXP(m),
    "CCP": lambda m: CCP(m),
    "NPL": lambda m: NPL(m),
    "PQR": lambda m: PQR(m),
    "PQR-logit-lstd": lambda m: PQR(m, policy="logit", q_step="features"),
    "PQR-bootstrap-50": lambda m: PQR(m, bootstrap=50),
    "MaxEntIRL": lambda m: MaxEntIRL(m),
    "MaxEntIRL-horizon": lambda m: MaxEntIRL(m, feature_counts="horizon"),
}


@pytest.fixture(scope="module")
def membership_panel():
    model = ddc.models.membership()
    return model, simulate(model, model.true_params, n_customers=20_000, n_periods=36, seed=11)


@pytest.mark.benchmark(group="membership-20000x36-all")
@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_membership_estimators(benchmark, membership_panel, name):
    model, panel = membership_panel
    estimator = ESTIMATORS[name](model)
    res = benchmark.pedantic(estimator.fit, args=(panel,), rounds=3, warmup_rounds=1)
    assert res.converged
    z = (res.params - model.true_params[res.params.index]) / res.std_errors
    assert np.all(np.abs(z) < Z_MAX), z.to_dict()
    benchmark.extra_info.update(rows=len(panel), cov_type=res.cov_type,
                                **{f"se_{k}": float(v) for k, v in res.std_errors.items()})


@pytest.mark.benchmark(group="membership-cross-validate")
def test_membership_cross_validate(benchmark, membership_panel):
    model, panel = membership_panel
    cv = benchmark.pedantic(cross_validate, args=(model, panel),
                            kwargs={"truth": model.true_params}, rounds=2, warmup_rounds=1)
    assert cv.summary["converged"].all()
    assert (cv.table["z"].abs() < Z_MAX).all()
    benchmark.extra_info.update(
        seconds={k: float(v) for k, v in cv.summary["seconds"].items()})


@pytest.fixture(scope="module")
def rust():
    data = ddc.datasets.load_rust_bus(groups=(1, 2, 3, 4), n_states=90)
    model = ddc.models.rust_bus(n_states=90, beta=0.9999)
    return model, data, NFXP(model, full_information=False).fit(data)


RUST = {
    "NFXP-stage-2": lambda m: NFXP(m, full_information=False),
    "MaxEntIRL": lambda m: MaxEntIRL(m),
    "PQR-logit": lambda m: PQR(m, policy="logit"),
}


@pytest.mark.benchmark(group="rust-90-irl")
@pytest.mark.parametrize("name", list(RUST))
def test_rust_estimators(benchmark, rust, name):
    model, data, nfxp = rust
    res = benchmark.pedantic(RUST[name](model).fit, args=(data,), rounds=10, warmup_rounds=1)
    assert res.converged
    if name == "PQR-logit":
        scale = np.sqrt(res.std_errors**2 - nfxp.std_errors**2)  # Hausman
    else:
        scale = 1e-3 * nfxp.std_errors
    assert np.all(np.abs(res.params - nfxp.params) < Z_MAX * scale)
