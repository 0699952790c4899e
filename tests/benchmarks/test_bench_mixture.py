"""Benchmarks of the mixture estimators on the two-segment membership panel.

Run with::

    python -m pytest tests/benchmarks/test_bench_mixture.py --benchmark-only

(skipped by default: ``--benchmark-skip`` is in the pytest ``addopts``). The panel is
:func:`ddc.models.membership_segments` simulated for 20,000 customers x 36 months (720,000
rows). Issue 12's targets: ``NFXP(mix)`` (EM from three starts, then direct maximum likelihood,
standard errors) under 10 s, ``CCP(mix)`` (CCP-EM) under 3 s on this machine. Everything
``fit`` does is timed: coding the panel, the per-unit counts, the one-type first stage, every
start, the Hessian and scores. Each benchmark checks its result (convergence, recovery of the
truth within four standard errors); none asserts a time.

``e-step-units`` times one E-step (posteriors from the per-unit counts at given type CCPs) on
the same panel: one sparse matrix-vector product per type over the units' nonzero cells, so its
cost does not grow with the number of rows per unit beyond that one pass.
"""

from __future__ import annotations

import numpy as np
import pytest

import ddc
from estimators import CCP, NFXP, NPL
from estimators.data import choice_data
from estimators.mixture.likelihood import MixtureLikelihood, unit_counts
from simulations import simulate

TARGET_S = {"NFXP": 10.0, "CCP": 3.0, "NPL": None, "CCP two-stage": None}


@pytest.fixture(scope="module")
def segments_panel():
    mix = ddc.models.membership_segments()
    return mix, simulate(mix, mix.true_params, n_customers=20_000, n_periods=36, seed=0)


ESTIMATORS = {
    "NFXP": lambda mix: NFXP(mix),
    "CCP": lambda mix: CCP(mix),
    "NPL": lambda mix: NPL(mix),
    "CCP two-stage": lambda mix: CCP(mix, two_stage=True),
}


@pytest.mark.benchmark(group="mixture-membership-20000x36")
@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_mixture_fit(benchmark, segments_panel, name):
    mix, panel = segments_panel
    estimator = ESTIMATORS[name](mix)
    res = benchmark.pedantic(estimator.fit, args=(panel,), rounds=3, warmup_rounds=1)
    benchmark.extra_info["target_s"] = TARGET_S[name]
    assert res.converged
    z = (res.params - mix.true_params[res.params.index]) / res.std_errors
    assert (z.abs() < 4).all(), z.round(2).to_dict()


@pytest.mark.benchmark(group="e-step-units")
def test_e_step(benchmark, segments_panel):
    mix, panel = segments_panel
    cd = choice_data(mix.model, panel)
    truth = mix.true_params.to_numpy()
    ml = MixtureLikelihood(mix, unit_counts(mix, cd), truth, ddc.Solver())
    x = ml.internal(truth)
    ev = benchmark.pedantic(ml.evaluate, args=(x, False), rounds=20, warmup_rounds=1)
    benchmark.extra_info["units"] = ml.counts.n_units
    benchmark.extra_info["nonzero_unit_cells"] = int(ml.counts.matrix.nnz)
    np.testing.assert_allclose(ev.posteriors.sum(axis=1), 1.0)
