"""Benchmarks of the counterfactual engine's bootstrap: 200 draws of the membership model's
baseline and four default scenarios (the report of ``ddc demo``), batched against one by one.

Run with::

    python -m pytest tests/benchmarks/test_bench_counterfactual.py --benchmark-only

Groups:

* ``counterfactual-draws``: :func:`simulations.counterfactual` with 200 draws (batched:
  :func:`ddc.solver.solve_batch`, :func:`ddc.stationary.stationary_batch`, vectorized outcomes)
  and with 0 draws (the point estimates only: five solves, stationary distributions, outcomes);
  and the same 200 draws with the batch disabled (every draw solved on its own by
  :func:`ddc.solver.solve_arrays` and :func:`ddc.stationary.stationary_from_policy`), the
  baseline the batch is measured against. Each asserts that every draw was used; none asserts a
  time.
"""

from __future__ import annotations

import pytest

import ddc
import ddc.solver
from estimators import NFXP
from simulations import counterfactual, simulate


@pytest.fixture(scope="module")
def fitted():
    model = ddc.models.membership()
    panel = simulate(model, model.true_params, n_customers=3000, n_periods=24, seed=11)
    return model, NFXP(model).fit(panel)


@pytest.mark.benchmark(group="counterfactual-draws")
@pytest.mark.parametrize("n_draws", [0, 200], ids=["point-only", "200-draws-batched"])
def test_bench_counterfactual(benchmark, fitted, n_draws):
    model, res = fitted
    rep = benchmark.pedantic(counterfactual, args=(model, res), kwargs={"n_draws": n_draws},
                             rounds=3, iterations=1, warmup_rounds=1)
    assert rep.n_used == n_draws


@pytest.mark.benchmark(group="counterfactual-draws")
def test_bench_counterfactual_one_by_one(benchmark, fitted, monkeypatch):
    model, res = fitted
    monkeypatch.setattr(ddc.solver, "BATCH_MAX_ITER", 1)  # no draw converges in the batch
    rep = benchmark.pedantic(counterfactual, args=(model, res), kwargs={"n_draws": 200},
                             rounds=2, iterations=1)
    assert rep.n_used == 200 and any("one by one" in n for n in rep.notes)
