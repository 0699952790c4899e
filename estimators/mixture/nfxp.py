"""Nested fixed point maximum likelihood of a finite mixture of types: EM, then direct ML.

Steps of :meth:`MixtureNFXP.fit`:

1. **Data and first stage**, as for the one-type model (:func:`estimators.data.setup`, the
   same ``transitions=`` options): fixed transition tables are estimated by cell frequencies,
   transition parameters by maximum likelihood (or both declared known with
   ``transitions="known"``); every type is solved with the estimated transitions. The per-unit
   choice counts :math:`n_i(s, a)` are built once
   (:func:`estimators.mixture.likelihood.unit_counts`).
2. **One-type estimate** :math:`\\hat\\theta_1` (the NFXP two-step estimate, from zeros).
3. **Starting values**: type :math:`k`'s type-specific parameters start at
   :math:`\\hat\\theta_{1,j} + c_k \\sigma_m d_j` with :math:`c_k` evenly spaced in
   :math:`[-1, 1]`, :math:`d_j = \\max(|\\hat\\theta_{1,j}| / 2, 1/2)` and a sign pattern
   :math:`\\sigma_m \\in \\{\\pm 1\\}^J` per start (all +, alternating, then seeded random
   patterns); shared parameters at :math:`\\hat\\theta_1`; equal shares.
4. **EM** (Dempster, Laird and Rubin 1977; Arcidiacono and Jones 2003) from each start: the
   E-step computes the posteriors :math:`q_{ik}` (one pass over the units' counts); the M-step
   sets :math:`w_k = \\frac{1}{N}\\sum_i q_{ik}` and takes a few BHHH steps on
   :math:`\\sum_k \\sum_{s,a} N_k(s,a) \\log\\pi_k(a \\mid s; \\theta)` with the weighted
   counts :math:`N_k = \\sum_i q_{ik} n_i`, warm-starting each type's fixed point. With
   type-specific transitions (``transitions_by_type``) the E-step includes each type's
   transition likelihood and the M-step sets each type's tables to the posterior-weighted cell
   frequencies (:mod:`estimators.mixture.transitions`; they start at the pooled first stage).
5. **Direct maximization** of the mixture log-likelihood from the EM point (BHHH on the
   per-unit scores, then BFGS updates), with the analytic gradient of
   :mod:`estimators.mixture.likelihood`, to the exact MLE. The start with the highest
   likelihood wins. With type-specific tables this step maximizes jointly in the parameters
   and the tables' free cells (the tables enter both the transition likelihood and each type's
   value function, so the EM's closed-form table update -- the transition part alone -- is
   only a starting point; :mod:`estimators.mixture.table_inference`): the exact MLE in the
   parameters, shares and type tables, the shared first-stage tables held.
6. **Labels** ordered by a fixed rule: types sorted by their first ``by_type`` parameter,
   ascending (type 0 has the smallest).
7. **Inference** from the mixture likelihood: the Hessian, analytic by Louis' identity
   (:meth:`estimators.mixture.likelihood.MixtureLikelihood.hessian`: each type's second
   derivatives of the log CCPs on its posterior-weighted counts, the share logits' curvature
   and the posterior covariance of the complete-data scores; no fixed point solved again), and
   the per-unit scores, transformed from the logit parametrisation of the shares to the shares
   themselves (the delta method), so that every covariance kind (Hessian, OPG, sandwich,
   cluster by unit) is available. A first stage shared by all types is accounted for as in
   the one-type NFXP (Murphy and Topel 1985, :func:`estimators.first_stage.murphy_topel`):
   the cross derivative :math:`C = \\partial^2 \\ell / \\partial x \\partial\\psi'` of the
   mixture log-likelihood in the internal parameters :math:`x` and the first-stage parameters
   :math:`\\psi` (free transition parameters, or the free cells of the estimated tables),
   analytic by the same identity
   (:meth:`~estimators.mixture.likelihood.MixtureLikelihood.cross_hessian`), carried to the
   reported parameters like the Hessian. With type-specific tables the covariance is the
   inverse of the joint information of the parameters and the tables' free cells
   (:mod:`estimators.mixture.table_inference`, still central differences of the analytic
   joint gradient; the cells' standard errors in ``res.type_table_std_errors``), with the
   same correction for the shared first-stage tables on top.

With ``n_types=1`` steps 3-5 are skipped: the estimate is the one-type estimate of step 2,
which is what ``NFXP(model, full_information=False)`` computes (with the same first stage and
the same standard errors).
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ddc.mixture import Mixture
from ddc.solver import ConvergenceError, ConvergenceWarning, Solver, small_blas
from estimators.data import choice_data, setup
from estimators.first_stage import (
    MAX_CORRECTED,
    TransitionOptions,
    _cell_parts,
    first_stage_view,
    murphy_topel,
)
from estimators.inference import group_sums
from estimators.likelihood import ChoiceLikelihood, maximize_utility
from estimators.mixture.likelihood import MixtureLikelihood, unit_counts
from estimators.mixture.results import MixtureResults, TypesNotSeparatedWarning
from estimators.mixture.table_inference import (
    cell_derivatives,
    cell_layout,
    joint_scores,
    joint_table_covariances,
)
from estimators.mixture.transitions import TypeTransitions
from estimators.optimize import Optimizer, maximize

__all__ = ["MixtureNFXP", "check_separation", "mixture_results", "one_type_start",
           "order_types", "split_starts"]

SHARE_NEAR_ZERO = 0.02
FLAT_ENTROPY = 0.9


def mapped_data(mix: Mixture, data, drop_first: bool | None, **mapping):
    """``data`` coded with the column ``mapping`` (:func:`estimators.data.choice_data`) when
    one is given, else ``data`` as is."""
    given = {k: v for k, v in mapping.items() if v is not None}
    return choice_data(mix.model, data, drop_first, **given) if given else data


def one_type_start(mix: Mixture, theta1: np.ndarray) -> np.ndarray:
    """A full mixture vector with every type at the one-type parameters ``theta1`` (over
    ``mix.model.param_names``) and equal shares (zero logit coefficients when they vary)."""
    full = np.empty(len(mix.param_names))
    for k in range(mix.n_types):
        full[mix.type_index[k]] = np.asarray(theta1, dtype=float)
    if mix.varying_shares:
        full[-len(mix.share_names):] = 0.0
    elif mix.n_types > 1:
        full[-(mix.n_types - 1):] = 1.0 / mix.n_types
    return full


def split_starts(mix: Mixture, theta1: pd.Series, full: np.ndarray, n_starts: int, seed: int,
                 internal) -> list[np.ndarray]:
    """Starting points split from the one-type estimate ``theta1`` (see the module docstring);
    ``full`` supplies the other entries, ``internal`` maps a full vector to the optimizer's."""
    K, J = mix.n_types, len(mix.by_type)
    c = np.linspace(-1.0, 1.0, K)
    patterns = [np.ones(J), np.where(np.arange(J) % 2 == 0, 1.0, -1.0)]
    rng = np.random.default_rng(seed)
    while len(patterns) < n_starts:
        patterns.append(rng.choice([-1.0, 1.0], size=J))
    starts = []
    for sigma in patterns[:n_starts]:
        vec = full.copy()
        for j, p in enumerate(mix.by_type):
            d = max(abs(theta1[p]) / 2.0, 0.5)
            for k in range(K):
                vec[mix.param_names.index(f"{p}[{k}]")] = theta1[p] + c[k] * sigma[j] * d
        starts.append(internal(vec))
    return starts


def order_types(mix: Mixture, ml, x: np.ndarray) -> np.ndarray:
    """Relabel the types of internal ``x``: ascending in the first ``by_type`` parameter (type
    specific transition tables held by ``ml`` are relabelled alike)."""
    K = mix.n_types
    if K == 1:
        return x
    first = mix.by_type[0]
    pos = {n: i for i, n in enumerate(ml.struct)}
    values = [x[pos[f"{first}[{k}]"]] for k in range(K)]
    perm = np.argsort(values, kind="stable")  # new type j is old type perm[j]
    y = x.copy()
    for p in mix.by_type:
        for j in range(K):
            y[pos[f"{p}[{j}]"]] = x[pos[f"{p}[{perm[j]}]"]]
    if getattr(ml, "tables", None) is not None:  # type-specific transition tables
        ml.set_type_tables(ml.type_trans, [ml.tables[j] for j in perm])
    P = len(ml.struct)
    if ml.Zc is not None:  # logit coefficients relative to the new type 0
        G = np.vstack([np.zeros((1, ml.Zc.shape[1])), x[P:].reshape(K - 1, -1)])[perm]
        y[P:] = (G[1:] - G[0]).ravel()
        return y
    w = ml.weights(x)[perm]
    y[P:] = np.log(w[1:] / w[0])
    return y


def mixture_results(estimator: str, mix: Mixture, ml, x: np.ndarray, cd, ts, *, notes: list,
                    converged: bool, message: str, on_failure: str, iterations: int,
                    seconds: float, extra: dict, loglik_label: str = "choice",
                    cov_note: str | None = None, extra_covs: dict | None = None,
                    cov_type: str = "hessian",
                    transitions_corrected: bool = False) -> MixtureResults:
    """Inference and the results object at the (labelled) internal estimate ``x``.

    The Hessian and per-unit scores of ``ml`` (a :class:`MixtureLikelihood` or a likelihood
    with the same ``evaluate``) in the internal parameters :math:`x = (\\theta, \\gamma)` are
    carried to the reported ones :math:`(\\theta, w_1, \\dots, w_{K-1})` with the Jacobian
    :math:`J = \\partial(\\theta, w) / \\partial(\\theta, \\gamma)`,
    :math:`\\partial w_j / \\partial\\gamma_l = w_j (1[j = l] - w_l)`:
    :math:`H_w = J^{-T} H_x J^{-1}` (exact at a maximum, where the gradient is zero) and
    :math:`G_w = G_x J^{-1}`, so every covariance kind is the delta-method one. An estimator
    may add covariances it computed itself over the reported parameters (``extra_covs``) and
    make one of them the default (``cov_type``); ``transitions_corrected`` says that they account
    for the transitions' first stage.
    """
    K = mix.n_types
    t0 = time.perf_counter()
    ev = ml.evaluate(x, True)
    if any(getattr(lik, "inner_failures", 0) for lik in ml.liks):
        notes.append("the inner fixed point failed at some trial parameters (treated as "
                     "infeasible points)")
    if ev.solutions is not None and not all(s.converged for s in ev.solutions):
        converged = False
        notes.append("a type's fixed point did not converge at the estimate")
    if not np.isfinite(ev.loglik):
        raise ConvergenceError(f"{estimator}(mixture): the likelihood is not finite at the "
                               "estimate")
    if not converged:
        msg = f"{estimator}(mixture) did not converge: {message}"
        if on_failure == "raise":
            raise ConvergenceError(msg)
        warnings.warn(msg, ConvergenceWarning, stacklevel=4)
        notes.append(msg)
    Hx, ev = ml.hessian(x)
    P = len(ml.struct)
    J = np.eye(P + ml.n_share)
    if K > 1 and ml.Zc is None:  # shares reported as probabilities; logit coefficients as is
        w = ml.weights(x)
        J[P:, P:] = np.diag(w[1:]) - np.outer(w[1:], w[1:])
    Jinv = np.linalg.inv(J)
    H = Jinv.T @ Hx @ Jinv
    G = ev.unit_scores @ Jinv
    names = ml.struct + mix.share_names
    params = pd.Series(ml.full(x), index=mix.param_names)
    trans = list(mix.model.transition_params.index)
    notes.extend(str(n) for n in (getattr(ts, "notes", None) or []))
    covs: dict = {}
    table_se = None
    estimated = ts is not None and (len(ts.params) or ts.tables)
    if type(ml) is MixtureLikelihood and ml.tables is None and ts is not None:
        covs, fs_notes = _first_stage_covariances(mix, ml, x, ts, cd, H, G, Jinv)
        notes.extend(fs_notes)
    elif ml.tables is not None and estimated:
        notes.append(f"transitions of {list(mix.transitions_by_type)} by type: each type's "
                     "tables estimated by posterior-weighted cell frequencies inside the EM "
                     "(res.type_tables, res.type_table_std_errors)")
        covs, table_se, fs_notes = joint_table_covariances(ml, x, ts, cd.panel, J)
        notes.extend(fs_notes)
    elif ml.tables is not None:
        notes.append(f"transitions of {list(mix.transitions_by_type)} by type: the mixture's "
                     "type tables declared known")
    if estimated and not covs and not transitions_corrected:
        notes.append("transitions from the first stage, shared by all types and held fixed; "
                     "standard errors treat them as known")
    if cov_note:
        notes.append(cov_note)
    panel = cd.panel
    posteriors = pd.DataFrame(ev.posteriors, index=pd.Index(panel.ids, name=panel.id_col),
                              columns=pd.RangeIndex(K, name="type"))
    if K > 1 and ml.Zc is not None:
        notes.append(f"{K} types, labelled in ascending order of {mix.by_type[0]}; shares a "
                     f"multinomial logit in {mix.shares_depend_on()} (gamma[k]: coefficients of "
                     "type k against type 0); type_shares averages them over the estimation "
                     "sample's units (delta-method standard errors, the units' characteristics "
                     "held fixed)")
    elif K > 1:
        notes.append(f"{K} types, labelled in ascending order of {mix.by_type[0]}; shares "
                     "estimated as a multinomial logit, standard errors by the delta method")
    if K > 1:
        q = ev.posteriors
        notes.append(f"classification: {np.mean(q.max(axis=1) > 0.9):.1%} of units with a "
                     f"posterior above 0.9; mean largest posterior {q.max(axis=1).mean():.3f}")
    # the transition part of the likelihood: the first stage's, or (types with their own
    # tables, whose part is inside ev.loglik) the factors shared by all types
    ll_t = ts.loglik if ml.tables is None else \
        ml.type_trans.other_loglik(ml.mix.model, cd.panel)
    extra = {**extra, "message": message, "transitions": ts}
    res = MixtureResults(
        n_types=K, posteriors=posteriors, type_solutions=ev.solutions, share_design=ml.Zc,
        first_states=ml.counts.first_states,
        model=mix, estimator=estimator, params=params[names], hessian=H, scores=G,
        groups=np.arange(ml.counts.n_units), loglik=ev.loglik + ll_t,
        loglik_parts={loglik_label: ev.loglik, "transition": ll_t}, nobs=cd.nobs,
        n_units=cd.n_units, converged=bool(converged), iterations=iterations,
        function_evals=ml.n_evaluations, seconds=seconds + time.perf_counter() - t0,
        cov_type=cov_type, fixed_params=params[trans] if trans else None, notes=notes,
        extra=extra, extra_covs={**covs, **(extra_covs or {})} or None,
        transition_mixture=ml.transition_mixture,
    )
    res.type_table_std_errors = table_se
    if K > 1:
        check_separation(mix, res)
    return res


def _first_stage_covariances(mix: Mixture, ml: MixtureLikelihood, x: np.ndarray, ts, cd,
                             H: np.ndarray, G: np.ndarray, Jinv: np.ndarray
                             ) -> tuple[dict[str, np.ndarray], list[str]]:
    """Murphy-Topel covariances of the mixture estimate for a first stage shared by all types
    (module docstring, step 7): :func:`estimators.first_stage.murphy_topel` with the cross
    derivative of the mixture log-likelihood and the first stage's scores summed by unit."""
    panel = cd.panel
    # estimated tables: the per-row scores are not materialized (_unit_cell_scores)
    view = first_stage_view(ts, None if ts.tables else panel)
    if view is None:
        return {}, []
    pmodel, psi, Vpsi, S_rows, what = view
    if len(psi) > MAX_CORRECTED:
        return {}, [f"standard errors do not account for the {what} (more than "
                    f"{MAX_CORRECTED}: the correction is not computed); they treat the "
                    "transitions as known"]
    # the same mixture over the model whose transition parameters are the first stage's
    mix_p = Mixture(pmodel, mix.n_types, mix.by_type, shares_by=mix.shares_by,
                    share_covariates=mix.share_covariates or None)
    given = pd.Series(ml.full(x), index=mix.param_names)
    full = pd.Series([given[n] if n in given.index else psi[n] for n in mix_p.param_names],
                     index=mix_p.param_names)
    ml_p = MixtureLikelihood(mix_p, ml.counts, full.to_numpy(), ml.solver)
    Cx = _cross_derivative(ml_p, x, list(psi.index), ts)
    C = Jinv.T @ Cx
    S = _unit_cell_scores(ts, panel, ml.counts.n_units) if ts.tables else \
        group_sums(panel.unit, S_rows, ml.counts.n_units)
    covs = murphy_topel(H, G, np.arange(ml.counts.n_units), C, Vpsi, S)
    # dtheta/dpsi' in the reported coordinates, for counterfactual draws of the first stage
    ts.sensitivity = pd.DataFrame(np.linalg.solve(-np.asarray(H), C),
                                  index=ml.struct + mix.share_names, columns=list(psi.index))
    return covs, [f"standard errors account for the {what} (Murphy-Topel, the mixture "
                  "log-likelihood's cross derivative)"]


def _unit_cell_scores(ts, panel, n_units: int) -> np.ndarray:
    """The first stage's scores in its free cells summed by unit, ``(n_units, cells)``: a row's
    scores depend on its :math:`(s, a, s')` only (:func:`estimators.first_stage._cell_parts`),
    so the sums are the units' counts of each observed triple times the triples' scores (one
    sparse product; the ``rows x cells`` matrix is never formed)."""
    cv = _cell_parts(ts, panel)
    M = sp.csr_matrix((np.ones(panel.nobs), (panel.unit, cv.triple)),
                      shape=(n_units, len(cv.triple_scores)))
    return np.asarray(M @ cv.triple_scores)


def _cross_derivative(ml_p: MixtureLikelihood, x: np.ndarray, names: list[str], ts
                      ) -> np.ndarray:
    """:math:`C = \\partial^2 \\ell / \\partial x \\partial \\psi'`, analytic
    (:meth:`~estimators.mixture.likelihood.MixtureLikelihood.cross_hessian`: Louis' identity
    with the types' cross second derivatives of the log CCPs). The tables' derivatives in
    their cells are exact (:func:`estimators.mixture.table_inference.cell_derivatives`, one set
    for all types); transition parameters' come from the transition function at each type's
    solution."""
    model = ml_p.mix.model
    if ts.tables:
        layout = cell_layout(ts.model, ts.tables, ts.counts)
        if layout.names != names:
            raise RuntimeError("the first stage's cells are not in the expected order")
        cells = cell_derivatives(model, ts.model.transitions(), [layout])

        def dtrans_of(k, sol):
            return cells
    else:
        def dtrans_of(k, sol):
            return ml_p.liks[k].transition_derivatives(sol, names)
    return ml_p.cross_hessian(x, dtrans_of)


class MixtureNFXP:
    """NFXP for a :class:`ddc.Mixture`: EM, then direct maximum likelihood.

    ``NFXP(mix)`` with a mixture constructs this estimator.

    Parameters
    ----------
    mix : ddc.Mixture
        The mixture of types.
    solver : ddc.Solver, optional
        Inner fixed-point solver.
    optimizer : Optimizer, optional
        Optimizer of the direct maximization (BHHH by default, ``tol`` the Newton decrement).
    n_starts : int
        Starting values (see the module docstring), each run through EM and ML.
    em_max_iter : int
        Most EM iterations per start.
    em_tol : float
        EM stops when an iteration raises the log-likelihood by less than ``em_tol`` per unit
        (the direct maximization then finishes the job).
    m_step_iter : int
        BHHH iterations per M-step (a generalized EM step).
    seed : int
        Seed of the random sign patterns of starts beyond the second.
    drop_first : bool, optional
        As for :class:`~estimators.NFXP`.
    on_failure : {"warn", "raise"}
        What non-convergence does.
    transitions : {"estimate", "known"} or TransitionOptions
        The first stage of the transitions, as for :class:`~estimators.NFXP`: estimated from
        the data (default) or declared known (the model's, and with ``transitions_by_type``
        the mixture's type tables, held as given).
    """

    name = "NFXP"

    def __init__(self, mix: Mixture, solver: Solver | None = None,
                 optimizer: Optimizer | None = None, *, n_starts: int = 3, em_max_iter: int = 200,
                 em_tol: float = 1e-5, m_step_iter: int = 3, seed: int = 0,
                 drop_first: bool | None = None, on_failure: str = "warn", transitions=None,
                 **unsupported):
        if not isinstance(mix, Mixture):
            raise TypeError(f"MixtureNFXP needs a ddc.Mixture, got {type(mix).__name__}")
        if unsupported.pop("full_information", False) and len(mix.model.transition_params):
            raise ValueError("full_information=True is not available for a mixture: the "
                             "transitions are estimated in a first stage shared by all types "
                             "and held fixed; pass full_information=False")
        if unsupported:
            raise TypeError(f"NFXP(mixture) got unknown argument(s) {sorted(unsupported)}")
        if on_failure not in ("warn", "raise"):
            raise ValueError(f"on_failure must be 'warn' or 'raise', got {on_failure!r}")
        for label, value in (("n_starts", n_starts), ("em_max_iter", em_max_iter),
                             ("m_step_iter", m_step_iter)):
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{label} must be a positive integer, got {value!r}")
        if not em_tol > 0:
            raise ValueError(f"em_tol must be positive, got {em_tol!r}")
        self.mix = self.model = mix
        self.solver = solver or Solver()
        self.optimizer = optimizer or Optimizer()
        self.n_starts, self.em_max_iter, self.em_tol = int(n_starts), int(em_max_iter), em_tol
        self.m_step_iter, self.seed = int(m_step_iter), seed
        self.drop_first, self.on_failure = drop_first, on_failure
        self.transitions = TransitionOptions.of(transitions)

    def __repr__(self) -> str:
        return (f"NFXP({self.mix!r}, n_starts={self.n_starts}, solver={self.solver!r}, "
                f"optimizer={self.optimizer!r})")

    # ------------------------------------------------------------------ fit
    def fit(self, data, start=None, *, id_col: str | None = None, time_col: str | None = None,
            action_col: str | None = None, columns=None) -> MixtureResults:
        """Estimate the mixture on a long panel.

        Parameters
        ----------
        data : pandas.DataFrame or ddc.panel.Panel
            The panel (its rows are needed: sufficient statistics pooled over units cannot
            identify types).
        start : pandas.Series or mapping, optional
            One starting point over ``mix.param_names`` (shares strictly inside the simplex)
            instead of the default starts.
        id_col, time_col, action_col : str, optional
            Column names of the unit id, the period and the action (default: the model's
            layout).
        columns : ddc.panel.Columns or mapping, optional
            The column mapping, as for the one-type estimators' ``fit``; also maps a share
            covariate to the column holding it (``{"channel": "signup_channel"}``).

        Returns
        -------
        MixtureResults
        """
        data = mapped_data(self.mix, data, self.drop_first, id_col=id_col, time_col=time_col,
                           action_col=action_col, columns=columns)
        with small_blas(self.mix.model.n_states, self.solver):
            return self._fit(data, start)

    def _first_stage(self, data):
        mix, model = self.mix, self.mix.model
        cd, ts, base = setup(model, data, self.drop_first, "NFXP(mixture)", None,
                             needs_rows=True, transitions=self.transitions)
        lik = ChoiceLikelihood(ts.model, cd.counts, self.solver)
        theta1, one = maximize_utility(lik, base, self.optimizer)
        return cd, ts, theta1, one, one_type_start(mix, theta1.to_numpy())

    def _starts(self, ml: MixtureLikelihood, theta1: pd.Series, full: np.ndarray, start):
        mix = self.mix
        if start is not None:
            given = mix.params_series(start)
            trans = list(mix.model.transition_params.index)
            vec = given.to_numpy().copy()
            vec[[mix.param_names.index(n) for n in trans]] = full[
                [mix.param_names.index(n) for n in trans]]
            return [ml.internal(vec)]
        return split_starts(mix, theta1, full, self.n_starts, self.seed, ml.internal)

    def _em(self, ml: MixtureLikelihood, x: np.ndarray):
        P = len(ml.struct)
        N = ml.counts.n_units
        ev = ml.evaluate(x, False)
        if not np.isfinite(ev.loglik):
            return x, ev.loglik, 0, False
        ll = ev.loglik
        m_opt = Optimizer(self.optimizer.method if self.optimizer.method == "bhhh" else "bhhh",
                          tol=self.optimizer.tol, max_iter=self.m_step_iter)
        it, done = 0, False
        tables = self._estimates_tables(ml)
        for it in range(1, self.em_max_iter + 1):  # noqa: B007
            q = ev.posteriors
            gamma = ml.fit_shares(q, x)
            if tables:  # type tables: closed-form M-step, before the utility step uses them
                ml.set_type_tables(ml.type_trans, ml.type_trans.m_step(q, ml.tables))
            r = maximize(ml.m_step_objective(ml.weighted_counts(q)), x[:P], m_opt)
            x_new = np.concatenate([r.x, gamma])
            ev_new = ml.evaluate(x_new, False)
            if not np.isfinite(ev_new.loglik):
                break
            gain = ev_new.loglik - ll
            x, ev, ll = x_new, ev_new, ev_new.loglik
            if gain < self.em_tol * N:
                done = True
                break
        return x, ll, it, done

    def _estimates_tables(self, ml: MixtureLikelihood) -> bool:
        """Whether the fit estimates type-specific tables (not declared known)."""
        return ml.tables is not None and not self.transitions.known

    def _ml_with_tables(self, ml: MixtureLikelihood, x: np.ndarray, ts, panel):
        """Direct ML; with estimated type tables, jointly in the parameters and the tables'
        free cells (:func:`estimators.mixture.table_inference.joint_scores`: analytic per-unit
        scores, BHHH then BFGS), the shared first-stage tables held. Returns the run with
        ``x`` the internal parameters (the tables are left in ``ml``)."""
        if not self._estimates_tables(ml):
            return self._ml(ml, x)
        js = joint_scores(ml, x, ts, panel)
        n_a = int(js.phi_offsets[-1])
        psi0 = js.z0[n_a:]

        def objective(za, need):
            ll, G = js.evaluate(np.concatenate([za, psi0]))
            if G is None:
                return -np.inf, None, None
            Ga = G[:, :n_a]
            return ll, Ga.sum(axis=0), Ga.T @ Ga

        r = maximize(objective, js.z0[:n_a], self.optimizer)
        ml.set_type_tables(ml.type_trans, js.tables(np.concatenate([r.x, psi0])))
        return r._replace(x=r.x[:js.n_x])

    def _ml(self, ml: MixtureLikelihood, x: np.ndarray):
        def objective(z, need):
            ev = ml.evaluate(z, need)
            return ev.loglik, ev.grad, ev.bhhh

        return maximize(objective, x, self.optimizer)

    def _fit(self, data, start) -> MixtureResults:
        t0 = time.perf_counter()
        mix = self.mix
        K = mix.n_types
        cd, ts, theta1, one, full = self._first_stage(data)
        if not one.converged:
            warnings.warn(f"the one-type estimate that seeds the starting values did not "
                          f"converge ({one.message})", ConvergenceWarning, stacklevel=3)
        est_mix, tables0 = _estimation_mixture(mix, ts, self.transitions)
        ml = MixtureLikelihood(est_mix, unit_counts(mix, cd), full, self.solver)
        type_trans = TypeTransitions(est_mix, cd.panel) if mix.transitions_by_type else None
        notes: list[str] = []
        runs = []
        if K == 1 and start is None and type_trans is None:
            x = ml.internal(full)
            runs.append({"start": 0, "loglik": float(one.fun), "em_iterations": 0,
                         "converged": bool(one.converged), "x": x, "iterations": one.iterations,
                         "message": one.message, "tables": None})
        else:
            for m, x0 in enumerate(self._starts(ml, theta1, full, start)):
                if type_trans is not None:  # every start from the first-stage tables
                    ml.set_type_tables(type_trans, tables0)
                x_em, ll_em, it_em, _ = self._em(ml, x0) if K > 1 else (x0, None, 0, True)
                r = self._ml_with_tables(ml, x_em, ts, cd.panel)
                runs.append({"start": m, "loglik": float(r.fun), "em_iterations": it_em,
                             "converged": bool(r.converged), "x": r.x,
                             "iterations": r.iterations, "message": r.message,
                             "tables": ml.tables})
        finite = [r for r in runs if np.isfinite(r["loglik"])]
        if not finite:
            raise ConvergenceError("the mixture likelihood was not finite at any start; give "
                                   "starting values with start=...")
        best = max(finite, key=lambda r: r["loglik"])
        if best["tables"] is not None:
            ml.set_type_tables(type_trans, best["tables"])
        others = [r["loglik"] for r in finite if r is not best
                  and best["loglik"] - r["loglik"] > 1e-3]
        if others:
            notes.append(f"{len(others)} of {len(runs)} starts ended at a lower local maximum "
                         f"(log-likelihoods {', '.join(f'{v:.3f}' for v in others)}; best "
                         f"{best['loglik']:.3f})")
        x = order_types(mix, ml, best["x"])
        extra = {"optimizer": str(self.optimizer), "solver": str(self.solver),
                 "first_stage": ts.method, "one_type_loglik": float(one.fun) + ts.loglik,
                 "starts": [{k: v for k, v in r.items() if k not in ("x", "tables")}
                            for r in runs],
                 "em_iterations": int(sum(r["em_iterations"] for r in runs))}
        return mixture_results(self.name, mix, ml, x, cd, ts, notes=notes,
                               converged=best["converged"], message=best["message"],
                               on_failure=self.on_failure,
                               iterations=int(sum(r["iterations"] for r in runs)),
                               seconds=time.perf_counter() - t0, extra=extra)


def _estimation_mixture(mix: Mixture, ts, options: TransitionOptions):
    """The mixture the likelihood solves: ``mix`` over the first stage's model (the estimated
    tables), and with type-specific tables the types' starting tables -- the pooled first-stage
    estimates (or, with known transitions, the mixture's own type tables)."""
    if not mix.transitions_by_type:
        est = mix if ts.model is mix.model else mix.with_transitions(ts.model.transitions())
        return est, None
    if options.known:
        return mix, [mix.type_tables(k) for k in range(mix.n_types)]
    pooled = {f.variable: f.table for f in ts.model.transitions().factors
              if f.variable in mix.transitions_by_type}
    tables = [dict(pooled) for _ in range(mix.n_types)]
    return mix.with_transitions(ts.model.transitions(), type_transitions=tables), tables


def check_separation(mix: Mixture, res: MixtureResults) -> None:
    """Warn (:class:`TypesNotSeparatedWarning`) and note when the types do not separate: a
    share below 0.02, two types whose ``by_type`` parameters are all within two standard errors
    of each other, or flat posteriors (mean relative entropy above 0.9)."""
    K = mix.n_types
    problems = []
    shares = res.type_shares["share"].to_numpy()
    low = np.flatnonzero(shares < SHARE_NEAR_ZERO)
    if low.size:
        problems.append(f"type(s) {low.tolist()} have share(s) "
                        f"{np.round(shares[low], 4).tolist()} below {SHARE_NEAR_ZERO}: "
                        "(almost) no support in the data")
    try:
        V = res.cov
    except Exception:  # noqa: BLE001 - a singular Hessian is itself reported by cov
        V = None
    if V is not None:
        for a in range(K):
            for b in range(a + 1, K):
                z = []
                for p in mix.by_type:
                    i, j = f"{p}[{a}]", f"{p}[{b}]"
                    var = V.loc[i, i] + V.loc[j, j] - 2 * V.loc[i, j]
                    diff = res.params[i] - res.params[j]
                    z.append(abs(diff) / np.sqrt(var) if var > 0 else np.inf)
                if max(z) < 2.0:
                    problems.append(f"types {a} and {b} have the same {mix.by_type} within "
                                    "two standard errors")
    ent = res.classification["entropy"]
    if ent > FLAT_ENTROPY:
        problems.append(f"the posteriors are flat (mean relative entropy {ent:.2f} > "
                        f"{FLAT_ENTROPY}): the data hardly tell the types apart")
    for p in problems:
        warnings.warn(f"types not separated: {p}. Compare AIC/BIC with fewer types",
                      TypesNotSeparatedWarning, stacklevel=4)
        res._notes.append(f"types not separated: {p}")
