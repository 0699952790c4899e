"""The analytic Hessian of the mixture log-likelihood (Louis' identity,
:meth:`estimators.mixture.likelihood.MixtureLikelihood.hessian`) against Richardson-extrapolated
central differences of the analytic gradient.

Richardson's extrapolation :math:`(4 D(h/2) - D(h)) / 3` of the central difference
:math:`D(h)` of the gradient has error :math:`O(h^4)` plus rounding :math:`O(\\epsilon |g| / h)`;
at :math:`h = 10^{-4} \\max(1, |x_j|)` both are below :math:`10^{-9}` of the Hessian's scale on
these designs (measured: 1e-11 to 3e-9), so agreement to :math:`10^{-8}` checks every block of
the identity (the per-type second derivatives, the share logits' curvature, the posterior
covariance of the complete-data scores). Designs: the membership segments of
:func:`ddc.models.membership_segments` (our own design) and variants with three types, shares by
market and shares in unit covariates, with parameter values of our choosing, evaluated away
from any maximum (the identity holds everywhere, not only where the gradient is zero).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import ddc
from estimators.data import choice_data
from estimators.mixture.ccp import PseudoMixtureLikelihood
from estimators.mixture.likelihood import MixtureLikelihood, unit_counts
from simulations import simulate

CHANNELS = ["store", "web", "referral"]


def richardson_hessian(ml, x: np.ndarray, h0: float = 1e-4) -> np.ndarray:
    n = len(x)
    H = np.empty((n, n))
    for j in range(n):
        def diff(h, j=j):
            up, dn = x.copy(), x.copy()
            up[j] += h
            dn[j] -= h
            return (ml.evaluate(up).grad - ml.evaluate(dn).grad) / (2 * h)
        h = h0 * max(1.0, abs(x[j]))
        H[:, j] = (4 * diff(h / 2) - diff(h)) / 3
    return 0.5 * (H + H.T)


def _three_type_params() -> dict:
    seg = ddc.models.membership_segments().true_params
    p = {k: v for k, v in seg.items() if not k.endswith("]")}
    p.update({"theta_ship[0]": 0.2, "theta_ship[1]": 0.8, "theta_ship[2]": 1.4,
              "theta_video[0]": 1.2, "theta_video[1]": 0.6, "theta_video[2]": 0.1,
              "share[1]": 0.3, "share[2]": 0.4})
    return p


def _design(name: str):
    model = ddc.models.membership()
    if name == "two-types":
        mix = ddc.models.membership_segments()
        return mix, mix.true_params, None
    if name == "three-types":
        mix = ddc.Mixture(model, 3, ["theta_ship", "theta_video"])
        return mix, mix.params_series(_three_type_params()), None
    if name == "shares-by-market":
        mix = ddc.Mixture(model, 2, ["theta_ship", "theta_video"], shares_by=["market"])
        seg = ddc.models.membership_segments().true_params
        p = {k: v for k, v in seg.items() if k != "share[1]"}
        p.update({n: 0.3 for n in mix.share_names})
        return mix, mix.params_series(p), None
    mix = ddc.Mixture(model, 3, ["theta_ship"],
                      share_covariates={"channel": CHANNELS, "age": None})
    p = {k: v for k, v in _three_type_params().items()
         if not k.startswith(("theta_video", "share"))}
    p["theta_video"] = 0.5
    p.update({n: 0.2 * (-1) ** i for i, n in enumerate(mix.share_names)})
    rng = np.random.default_rng(5)
    units = pd.DataFrame({"channel": rng.choice(CHANNELS, 300),
                          "age": rng.normal(0.0, 1.0, 300).round(2)})
    return mix, mix.params_series(p), units


@pytest.fixture(scope="module", params=["two-types", "three-types", "shares-by-market",
                                        "share-covariates"])
def likelihood(request):
    mix, truth, units = _design(request.param)
    kw = {"covariates": units} if units is not None else {"n_customers": 300}
    panel = simulate(mix, truth, n_periods=24, seed=3, **kw)
    cd = choice_data(mix.model, panel)
    ml = MixtureLikelihood(mix, unit_counts(mix, cd), truth.to_numpy(), ddc.Solver())
    x = ml.internal(truth.to_numpy()) + 0.05 * np.linspace(-1.0, 1.0, len(ml.names))
    return ml, x


def _assert_agrees(H: np.ndarray, ref: np.ndarray, rtol: float = 1e-8) -> None:
    scale = np.abs(ref).max()
    np.testing.assert_allclose(H, ref, rtol=rtol, atol=rtol * 1e-3 * scale)
    assert np.abs(H - ref).max() <= rtol * scale


def test_hessian_matches_richardson_differences(likelihood):
    ml, x = likelihood
    H, ev = ml.hessian(x)
    _assert_agrees(H, richardson_hessian(ml, x))
    np.testing.assert_array_equal(H, H.T)
    # the evaluation returned with it is the one at x (the fixed point solved afresh, to its
    # tolerance)
    ref = ml.evaluate(x)
    assert ev.loglik == pytest.approx(ref.loglik, rel=1e-12)
    np.testing.assert_allclose(ev.grad, ref.grad, rtol=1e-9, atol=1e-9 * np.abs(ref.grad).max())


def test_pseudo_likelihood_hessian_matches_richardson_differences(likelihood):
    # CCP(mix)'s pseudo-likelihood: each type a logit in values Z_k theta + e_k (arbitrary
    # linearizations here: the identity does not depend on where they come from)
    ml, x = likelihood
    mix = ml.mix
    S, A, Pu = mix.model.n_states, mix.model.n_actions, len(mix.model.utility_params)
    rng = np.random.default_rng(0)
    Z = [rng.normal(0.0, 0.5, (S, A, Pu)) for _ in range(mix.n_types)]
    e = [rng.normal(0.0, 1.0, (S, A)) for _ in range(mix.n_types)]
    pml = PseudoMixtureLikelihood(mix, ml.counts, ml.base, ml.solver, Z, e)
    H, _ = pml.hessian(x)
    _assert_agrees(H, richardson_hessian(pml, x))


def test_cross_derivative_matches_richardson_differences():
    # Rust's bus (beta lowered to 0.95 for a small fast design) with two types of RC: the
    # cross derivative of the gradient in the internal parameters by the transition
    # parameters theta_30, theta_31 held in the likelihood's base vector (Murphy-Topel's C)
    bus = ddc.models.rust_bus(n_states=30, beta=0.95)
    mix = ddc.Mixture(bus, 2, ["RC"])
    truth = mix.params_series({"RC[0]": 6.0, "RC[1]": 10.0, "theta_11": 2.6275,
                               "theta_30": 0.3489, "theta_31": 0.6394, "share[1]": 0.4})
    panel = simulate(mix, truth, n_customers=200, n_periods=40, seed=4)
    cd = choice_data(bus, panel)
    base = truth.to_numpy()
    ml = MixtureLikelihood(mix, unit_counts(mix, cd), base, ddc.Solver())
    x = ml.internal(base) + 0.05 * np.linspace(-1.0, 1.0, len(ml.names))
    names = ["theta_30", "theta_31"]
    C = ml.cross_hessian(x, lambda k, sol: ml.liks[k].transition_derivatives(sol, names))
    ref = np.empty_like(C)
    for j, name in enumerate(names):
        pos = mix.param_names.index(name)

        def diff(h, pos=pos):
            ml.base[pos] = base[pos] + h
            up = ml.evaluate(x).grad
            ml.base[pos] = base[pos] - h
            dn = ml.evaluate(x).grad
            ml.base[pos] = base[pos]
            return (up - dn) / (2 * h)
        ref[:, j] = (4 * diff(5e-5) - diff(1e-4)) / 3
    _assert_agrees(C, ref)
