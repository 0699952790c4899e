"""The parametric first stage: maximum likelihood of the transition parameters over the
observed transitions, simplex groups in softmax coordinates, BHHH then Newton steps."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ddc.model import Model
from ddc.panel import Panel
from ddc.solver import ConvergenceError
from ddc.transitions import FactoredTransitions
from estimators.first_stage.cells import _given_rows
from estimators.first_stage.estimate import (
    BOUNDARY,
    FD_MARGIN,
    INTERIOR_MIX,
    TransitionEstimate,
    TransitionOptions,
)
from estimators.first_stage.transition_likelihood import (
    _base_params,
    _family,
    _transition_counts,
    transition_log_probs,
)


# ---------------------------------------------------------------------- parametric
class _Coordinates:
    """The map from unconstrained coordinates :math:`z` to transition parameters :math:`\\psi`:
    softmax within each simplex group (reference: the largest starting probability, logit 0),
    identity elsewhere."""

    def __init__(self, names: list[str], groups: list[list[str]], start: pd.Series):
        self.names = names
        self.groups = []  # (positions of the free probabilities in names, reference index)
        in_group = set()
        z_parts = []
        self.fixed_zero: set[str] = set()
        for g in groups:
            pos = [names.index(n) for n in g]
            p = np.append(start[g].to_numpy(), max(0.0, 1.0 - start[g].sum()))
            p = (1 - INTERIOR_MIX) * p / p.sum() + INTERIOR_MIX / len(p)
            ref = int(np.argmax(p))
            self.groups.append((pos, ref))
            z_parts.append(np.log(np.delete(p, ref) / p[ref]))
            in_group.update(pos)
        self.plain = [i for i in range(len(names)) if i not in in_group]
        self.z0 = np.concatenate([*z_parts, start.to_numpy()[self.plain]]) if names else \
            np.zeros(0)
        self.zero_mask = np.zeros(len(self.z0), dtype=bool)  # boundary coordinates (p = 0)

    def psi(self, z: np.ndarray) -> np.ndarray:
        out = np.empty(len(self.names))
        k = 0
        for pos, ref in self.groups:
            m = len(pos)
            zz = z[k:k + m].copy()
            zz[self.zero_mask[k:k + m]] = -np.inf
            full = np.insert(zz, ref, 0.0)
            e = np.exp(full - full.max())
            p = e / e.sum()
            out[pos] = p[:-1]
            k += m
        out[self.plain] = z[k:]
        return out

    def jacobian(self, z: np.ndarray) -> np.ndarray:
        """:math:`\\partial \\psi / \\partial z` (analytic softmax derivative)."""
        J = np.zeros((len(self.names), len(z)))
        k = 0
        psi = self.psi(z)
        for pos, ref in self.groups:
            m = len(pos)
            p = np.append(psi[pos], 1.0 - psi[pos].sum())
            # d p_i / d z_l = p_i (1[i = l] - p_l), over the non-reference outcomes l
            others = [i for i in range(m + 1) if i != ref]
            for c, l in enumerate(others):
                d = p * ((np.arange(m + 1) == l) - p[l])
                J[pos, k + c] = d[:-1]
            k += m
        for c, i in enumerate(self.plain):
            J[i, k + c] = 1.0
        return J

    def rebase(self, z: np.ndarray) -> np.ndarray:
        """The same point with each group's reference the largest probability (a reference
        heading for zero would send the other logits to infinity)."""
        psi = self.psi(z)
        parts, mask = [], []
        for j, (pos, _) in enumerate(self.groups):
            p = np.append(psi[pos], 1.0 - psi[pos].sum())
            ref = int(np.argmax(p))
            self.groups[j] = (pos, ref)
            others = np.delete(p, ref)
            zero = others <= 0
            with np.errstate(divide="ignore"):
                parts.append(np.where(zero, 0.0, np.log(np.where(zero, 1.0, others) / p[ref])))
            mask.append(zero)
        k = sum(len(pos) for pos, _ in self.groups)
        self.zero_mask = np.concatenate([*mask, self.zero_mask[k:]]) if mask else self.zero_mask
        return np.concatenate([*parts, z[k:]]) if parts else z

    def boundary_names(self, z: np.ndarray) -> list[str]:
        """Free probabilities at the boundary, and the coordinates to fix there."""
        psi = self.psi(z)
        out = []
        k = 0
        for pos, ref in self.groups:
            m = len(pos)
            p = np.append(psi[pos], 1.0 - psi[pos].sum())
            others = [i for i in range(m + 1) if i != ref]
            for c, i in enumerate(others):
                if p[i] < BOUNDARY:
                    self.zero_mask[k + c] = True
                    if i < m:
                        out.append(self.names[pos[i]])
            k += m
        return out


def _triple_log_probs(model: Model, params: np.ndarray, s: np.ndarray, a: np.ndarray,
                      s_next: np.ndarray) -> np.ndarray:
    """:math:`\\log P(s' \\mid s, a)` at full parameters ``params``, read from the factor tables
    the transition function returns (no compilation: the first stage evaluates it often)."""
    trans = model.transitions(params)
    if not isinstance(trans, FactoredTransitions):
        return transition_log_probs(model, params, s, a, s_next)
    space = model.space
    out = np.zeros(len(s))
    covered = set()
    with np.errstate(divide="ignore"):
        for factor in trans.factors:
            K = factor.table.shape[-1]
            rows = _given_rows(model, factor, s, a)
            p = factor.table.reshape(-1, K)[rows, space.code_of(factor.variable)[s_next]]
            out += np.log(p)
            covered.add(factor.variable)
    for name in space.names:
        if name not in covered:
            out[space.code_of(name)[s] != space.code_of(name)[s_next]] = -np.inf
    return out


def _parametric(model: Model, panel: Panel | None, stats, n_rows: int,
                options: TransitionOptions) -> TransitionEstimate:
    """Maximum likelihood over the observed transitions in unconstrained coordinates.

    BHHH steps with a backtracking line search (the per-triple Jacobian of
    :math:`\\log P` by central differences gives the gradient :math:`J'n` and the information
    :math:`J' \\mathrm{diag}(n) J`), then Newton steps with the Hessian (central differences of
    the gradient) until the Newton decrement is below ``tol`` and the Hessian is negative
    definite, which decide convergence."""
    names = list(model.transition_params.index)
    fam = _family(model)
    groups = fam.simplex_groups(model) if fam is not None else []
    tc = _transition_counts(panel, stats)
    if len(tc.n) == 0:
        raise ValueError("no observed transitions: the transition parameters cannot be "
                         "estimated (pass transitions='known' to use the model's)")
    base = _base_params(model)
    base_vec = base.to_numpy().copy()
    K = len(model.utility_params)
    coords = _Coordinates(names, groups, model.transition_params)
    n = tc.n.astype(np.float64)

    cache: dict[bytes, np.ndarray | None] = {}

    def logp(psi: np.ndarray) -> np.ndarray | None:
        key = np.asarray(psi, dtype=np.float64).tobytes()
        if key in cache:
            return cache[key]
        vec = base_vec.copy()
        vec[K:] = psi
        try:
            lp = _triple_log_probs(model, vec, tc.s, tc.a, tc.s_next)
        except (ValueError, FloatingPointError):
            lp = None  # the transition function refuses these parameters
        if lp is not None and not np.all(np.isfinite(lp)):
            lp = None
        if len(cache) > 256:
            cache.clear()
        cache[key] = lp
        return lp

    def ll(z: np.ndarray) -> float:
        lp = logp(coords.psi(z))
        return -np.inf if lp is None else float(n @ lp)

    def free_idx() -> np.ndarray:
        return np.flatnonzero(~coords.zero_mask)

    def jac(z: np.ndarray) -> np.ndarray:
        """Per-triple derivatives of log P in the free coordinates: central differences, or
        one-sided where the transition function refuses one side (a parameter outside its
        domain: declare it with SimplexParameters to avoid this)."""
        idx = free_idx()
        J = np.zeros((len(n), len(idx)))
        mid = logp(coords.psi(z))
        for c, k in enumerate(idx):
            h = 1e-5 * max(1.0, abs(z[k]))
            e = np.zeros(len(z))
            e[k] = h
            up, dn = logp(coords.psi(z + e)), logp(coords.psi(z - e))
            if up is not None and dn is not None:
                J[:, c] = (up - dn) / (2 * h)
            elif up is not None and mid is not None:
                J[:, c] = (up - mid) / h
            elif dn is not None and mid is not None:
                J[:, c] = (mid - dn) / h
            else:
                raise ConvergenceError(
                    f"the transition function refuses both sides of {names[k]!r} = "
                    f"{coords.psi(z)[k]!r}; declare the parameter's constraint (e.g. "
                    "SimplexParameters) so the first stage can stay inside its domain")
        return J

    def grad(z: np.ndarray) -> np.ndarray:
        return jac(z).T @ n

    def hess(z: np.ndarray) -> np.ndarray:
        idx = free_idx()
        H = np.zeros((len(idx), len(idx)))
        for c, k in enumerate(idx):
            h = 1e-4 * max(1.0, abs(z[k]))
            e = np.zeros(len(z))
            e[k] = h
            H[:, c] = (grad(z + e) - grad(z - e)) / (2 * h)
        return 0.5 * (H + H.T)

    z = coords.z0.copy()
    if not np.isfinite(ll(z)):
        raise ValueError(
            "the observed transitions have probability zero (or the transition function "
            "refuses the parameters) at the starting transition parameters "
            f"{dict(zip(names, coords.psi(z).round(6), strict=True))}; declare the "
            "probabilities with ddc.transition_families.SimplexParameters so the first stage "
            "starts inside the simplex, or give defaults under which the data are possible")

    def step_from(z, direction, slope, f0):
        lam = 1.0
        for _ in range(60):
            trial = z.copy()
            trial[free_idx()] += lam * direction
            f = ll(trial)
            if np.isfinite(f) and f >= f0 + 1e-4 * lam * slope:
                return trial, f
            lam *= 0.5
        return None, f0

    boundary: list[str] = []
    f = ll(z)
    decrement, H, stage, it, done = np.inf, None, "BHHH", 0, False
    for it in range(1, options.max_iter + 1):  # noqa: B007
        J = jac(z)
        g = J.T @ n
        if stage == "BHHH":
            info = J.T @ (n[:, None] * J)
        else:
            H = hess(z)
            info = -H
        try:
            d = np.linalg.solve(info, g)
        except np.linalg.LinAlgError:
            d = np.linalg.lstsq(info, g, rcond=None)[0]
        decrement = float(g @ d)
        if decrement < options.tol:
            if stage == "Newton":
                done = True
                break
            stage = "Newton"
            continue
        new, f_new = step_from(z, d, decrement, f)
        if new is None:
            if stage == "BHHH":
                stage = "Newton"
                continue
            break
        z, f = coords.rebase(new), f_new
        fixed_before = coords.zero_mask.sum()
        boundary += coords.boundary_names(z)
        if coords.zero_mask.sum() > fixed_before:
            f, stage = ll(z), "BHHH"
    if not done:  # the checks below use the Hessian at the last point
        H, g = hess(z), grad(z)
        try:
            decrement = float(g @ np.linalg.solve(-H, g))
        except np.linalg.LinAlgError:
            decrement = np.inf
    eig = np.linalg.eigvalsh(-H) if H.size else np.ones(1)
    if not (np.isfinite(decrement) and decrement < options.tol and np.all(eig > 0)):
        raise ConvergenceError(
            f"first-stage maximum likelihood of the transition parameters {names} did not reach "
            f"a maximum in {it} iterations: Newton decrement {decrement:.3g} (must be < "
            f"{options.tol:g}), smallest eigenvalue of the negative Hessian {eig.min():.3g} "
            "(must be > 0). Declare probabilities with SimplexParameters, check that the data "
            "identify every parameter (a conditioning value never observed does not), or give "
            "better defaults")
    psi = coords.psi(z)
    idx = free_idx()
    Jz = coords.jacobian(z)[:, idx]
    cov = Jz @ np.linalg.inv(-H) @ Jz.T
    est = pd.Series(psi, index=names)
    boundary = [nm for nm in names if nm in set(boundary)]
    # a group whose implied last probability is on the boundary cannot move in a joint stage
    held = set(boundary)
    for g_ in groups:
        if 1.0 - est[g_].sum() < FD_MARGIN:
            held.update(g_)
    free = [nm for nm in names if nm not in held]
    where = [names.index(nm) for nm in free]
    # these groups are held whole (this first stage's central differences cannot step along
    # the boundary, unlike a family's closed-form likelihood): when that holds every transition
    # parameter, a joint stage is the two-step estimator and must say so
    fallback = ""
    if held - set(boundary) and not free:
        fallback = ("the implied last probability of the simplex group(s) "
                    f"{[g_ for g_ in groups if 1.0 - est[g_].sum() < FD_MARGIN]} is on the "
                    "boundary (that outcome was never observed), and a parametric first stage "
                    "holds such a group whole, so no transition parameter can move")
    notes = []
    if boundary:
        notes.append(f"transition parameter(s) {boundary} estimated on the simplex boundary "
                     "(an outcome never observed): set to 0 and held there")
    if held - set(boundary):
        notes.append(f"transition parameter(s) {sorted(held - set(boundary))} whose implied "
                     "last probability is on the boundary are held at their first-stage values "
                     "in a joint likelihood")

    # full-information hooks: log-likelihood, gradient and row scores in the free parameters
    in_group = {names.index(nm): g for g in groups for nm in g}

    def step(psi_: np.ndarray, k: int) -> float:
        """A central-difference step that keeps a probability and its group's last one
        inside [0, 1]."""
        h = 1e-6 * max(1.0, abs(psi_[k]))
        if k in in_group:
            last = 1.0 - sum(psi_[names.index(m)] for m in in_group[k])
            h = min(h, 0.5 * psi_[k], 0.5 * last)
        return h

    def loglik_fn(params: pd.Series):
        psi_ = params[names].to_numpy()
        lp = logp(psi_)
        if lp is None or not np.all(np.isfinite(lp[n > 0])):
            return -np.inf, np.zeros(len(free))
        g = np.zeros(len(free))
        for c, k in enumerate(where):
            h = step(psi_, k)
            up, dn = psi_.copy(), psi_.copy()
            up[k] += h
            dn[k] -= h
            lu, ld = logp(up), logp(dn)
            if lu is None or ld is None:
                return -np.inf, g
            g[c] = float(n @ (lu - ld)) / (2 * h)
        return float(n @ lp), g

    def scores_fn(params: pd.Series):
        out = np.zeros((n_rows, len(free)))
        if panel is None:
            return out
        has = panel.next_state >= 0
        s, a, sn = panel.state[has], panel.action[has], panel.next_state[has]
        vec = params.to_numpy().copy()
        for c, k in enumerate(where):
            h = step(vec[K:], k)
            up, dn = vec.copy(), vec.copy()
            up[K + k] += h
            dn[K + k] -= h
            out[has, c] = (transition_log_probs(model, up, s, a, sn)
                           - transition_log_probs(model, dn, s, a, sn)) / (2 * h)
        return out

    full = base.copy()
    full[names] = psi
    row_scores = np.zeros((n_rows, len(names)))
    row_scores[:, where] = scores_fn(full)
    method = "maximum likelihood over observed transitions" + \
        (f" ({len(groups)} simplex group(s), softmax)" if groups else "")
    return TransitionEstimate(est, cov, f, int(n.sum()), row_scores, method, model=model,
                              boundary=boundary, free=free, notes=notes,
                              joint_fallback=fallback,
                              _loglik_fn=loglik_fn, _scores_fn=scores_fn)
