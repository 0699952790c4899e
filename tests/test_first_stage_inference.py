"""The analytic first-stage corrections of the standard errors against their numerical oracles.

* CCP's derivative of the estimate in the transition cells (implicit function theorem on the
  pseudo-score, :meth:`estimators.CCP._estimate_jacobian`) against central differences of
  complete re-estimations (:func:`estimators.first_stage._reestimated_jacobian`, the generic
  path every other estimator takes);
* the derivative of the pseudo-score in the first-stage CCPs
  (:meth:`estimators.ccp.PseudoLikelihood.ccp_score_derivative`) against central differences
  of the score (a relative step of 1e-3 of the smaller probability moved: the score is strongly
  curved in small probabilities);
* the cell-level shortcuts (per-row scores gathered through the flat cell index; group sums by
  segments on sorted units) against the per-row computations they replace.

Tolerances: 1e-6 of the largest entry (the central differences are accurate to about 1e-8 of
it at these steps; measured on the panel below).
"""

import numpy as np
import pytest

import ddc
from estimators import CCP
from estimators.first_stage import _cell_parts, _reestimated_jacobian
from estimators.inference import group_sums, row_scores
from simulations import simulate


@pytest.fixture(scope="module")
def ccp_fit():
    model = ddc.models.membership()
    panel = simulate(model, model.true_params, n_customers=400, n_periods=12, seed=4)
    est = CCP(model)
    prep = est._prepare(panel, {})
    fit = est._estimate(prep, prep.params.copy())
    return model, est, prep, fit


def test_ccp_estimate_jacobian_matches_reestimation(ccp_fit):
    model, est, prep, fit = ccp_fit
    view = _cell_parts(prep.transitions, None)
    analytic = est._estimate_jacobian(prep, fit, view.derivatives())
    assert analytic.shape == (len(model.utility_params), len(view.psi))
    some = slice(None, None, 4)  # every fourth cell (two re-estimations each)
    numeric = _reestimated_jacobian(est, prep, fit, view, view.psi, list(model.utility_params),
                                    list(view.psi.index[some]))
    np.testing.assert_allclose(analytic[:, some], numeric, rtol=0,
                               atol=1e-6 * np.abs(numeric).max())


def test_ccp_score_derivative_matches_differences(ccp_fit):
    model, est, prep, fit = ccp_fit
    pl, p = fit.state["pl"], fit.state["p"]
    theta = fit.params[model.utility_params].to_numpy()
    counts, feas = prep.data.counts, model.feasible
    ref = feas.shape[1] - 1 - np.argmax(feas[:, ::-1], axis=1)
    N = counts.sum(axis=1)
    free = [(s, a) for s in np.flatnonzero((N > 0) & (feas.sum(axis=1) > 1))
            for a in np.flatnonzero(feas[s]) if a != ref[s]]
    analytic = pl.ccp_score_derivative(p, theta, counts, free, ref)

    def score(pp):
        Z, e = pl.linearize(pp)
        q = pl.choice_probs(Z, e, theta)
        D = np.where(feas[:, :, None], Z - np.einsum("sa,sak->sk", q, Z)[:, None, :], 0.0)
        return np.einsum("sa,sak->k", counts, D)

    for j, (s, b) in list(enumerate(free))[::10]:  # every tenth probability
        h = 1e-3 * min(p[s, b], p[s, ref[s]])
        up, dn = p.copy(), p.copy()
        up[s, b] += h
        up[s, ref[s]] -= h
        dn[s, b] -= h
        dn[s, ref[s]] += h
        numeric = (score(up) - score(dn)) / (2 * h)
        np.testing.assert_allclose(analytic[:, j], numeric, rtol=0,
                                   atol=1e-6 * np.abs(analytic).max(), err_msg=str((s, b)))


def test_row_scores_gather_the_cell_scores():
    rng = np.random.default_rng(1)
    cell = rng.normal(size=(7, 3, 2))
    state, action = rng.integers(0, 7, 50), rng.integers(0, 3, 50)
    for rows, n_rows in [(np.arange(50), 50), (np.sort(rng.choice(80, 50, replace=False)), 80)]:
        expected = np.zeros((n_rows, 2))
        expected[rows] = cell[state, action]
        np.testing.assert_array_equal(row_scores(cell, rows, state, action, n_rows), expected)


@pytest.mark.parametrize("order", ["sorted", "shuffled"])
def test_group_sums_equal_per_column_bincounts(order):
    rng = np.random.default_rng(2)
    groups = np.sort(rng.integers(0, 40, 500))  # some of the 45 groups have no rows
    if order == "shuffled":
        groups = rng.permutation(groups)
    scores = rng.normal(size=(500, 3))
    expected = np.stack([np.bincount(groups, weights=scores[:, k], minlength=45)
                         for k in range(3)], axis=1)
    np.testing.assert_allclose(group_sums(groups, scores, 45), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("drop_first", [False, True], ids=["all-rows", "drop-first"])
def test_murphy_topel_by_kinds_of_rows_equals_by_rows(drop_first):
    """The corrected covariances from the kinds of rows (cell scores, no per-row arrays) equal
    those from the per-row scores."""
    from estimators import NFXP
    from estimators.first_stage import first_stage_covariances
    from estimators.likelihood import mle_inference

    model = ddc.models.membership()
    panel = simulate(model, model.true_params, n_customers=300, n_periods=10, seed=6)
    est = NFXP(model, drop_first=drop_first)
    prep = est._prepare(panel, {})
    fit = est._estimate(prep, prep.params.copy())
    cd = prep.data
    rows = np.flatnonzero(cd.used)
    H, scores, ev = mle_inference(fit.state["lik"], (rows, cd.state, cd.action), cd.panel.nobs,
                                  fit.params, fit.state["ev"])
    args = (prep.transitions, cd.counts, est.solver, fit.params, H, scores, cd.panel.unit,
            cd.panel)
    by_rows, _ = first_stage_covariances(*args, solution=ev.solution)
    by_kinds, _ = first_stage_covariances(*args, solution=ev.solution,
                                          cell_scores=ev.cell_scores, used=cd.used)
    assert sorted(by_rows) == sorted(by_kinds) == ["cluster", "hessian", "opg", "sandwich"]
    for kind in by_rows:
        np.testing.assert_allclose(by_kinds[kind], by_rows[kind], rtol=1e-10,
                                   atol=1e-13 * np.abs(by_rows[kind]).max(), err_msg=kind)


def test_keyed_group_sums_kernel_equals_its_twin():
    from estimators import _kernels, _kernels_numpy

    rng = np.random.default_rng(3)
    groups = rng.integers(0, 30, 400)
    keys = rng.integers(0, 12, 400)
    table = rng.normal(size=(12, 4))
    out, twin = np.zeros((30, 4)), np.zeros((30, 4))
    _kernels.keyed_group_sums(groups, keys, table, out)
    _kernels_numpy.keyed_group_sums(groups, keys, table, twin)
    np.testing.assert_allclose(out, twin, rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", ["opg", "sandwich", "cluster"])
def test_covariance_from_kinds_of_rows_equals_from_rows(kind):
    from estimators.inference import Ingredients, covariance

    rng = np.random.default_rng(8)
    table = rng.normal(size=(9, 3))
    table[-1] = 0.0  # rows outside the sample
    key = rng.integers(0, 9, 600)
    groups = np.sort(rng.integers(0, 50, 600))
    a = rng.normal(size=(3, 3))
    common = dict(names=["a", "b", "c"], hessian=-(a @ a.T + 3 * np.eye(3)),
                  scores=table[key], group_codes=groups, n_groups=50)
    by_rows = covariance(kind, Ingredients(**common))
    by_kinds = covariance(kind, Ingredients(**common, score_kinds=(key, table)))
    np.testing.assert_allclose(by_kinds, by_rows, rtol=1e-12, atol=1e-15)
