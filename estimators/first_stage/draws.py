"""Draws of a first-stage estimate from its sampling distribution (Dirichlet rows of cell
frequencies, normal transition parameters)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ddc.transitions import Factor, FactoredTransitions
from estimators.first_stage.cells import _cell_layout
from estimators.first_stage.estimate import TransitionEstimate


@dataclass
class FirstStageDraws:
    """Draws of a first-stage transition estimate from its sampling distribution
    (:func:`draw_first_stage`).

    Attributes
    ----------
    names : list of str
        The first stage's free coordinates :math:`\\psi`: the free cells of a nonparametric
        estimate (:func:`_cell_layout`) or the free transition parameters.
    estimate : numpy.ndarray
        :math:`\\hat\\psi`, shape (P,).
    delta : numpy.ndarray
        :math:`\\psi_d - \\hat\\psi`, shape (D, P).
    cov : numpy.ndarray
        :math:`V_\\psi`, the first stage's covariance of :math:`\\hat\\psi` (P, P).
    tables : list of dict or None
        Nonparametric: per draw, every estimated variable's drawn table (the estimate's shape).
    what : str
        A phrase naming what is drawn.
    """

    names: list[str]
    estimate: np.ndarray
    delta: np.ndarray
    cov: np.ndarray
    tables: list[dict[str, np.ndarray]] | None
    what: str

    @property
    def values(self) -> np.ndarray:
        """:math:`\\psi_d`, shape (D, P)."""
        return self.estimate[None, :] + self.delta

    def transitions(self, base: FactoredTransitions, d: int) -> FactoredTransitions:
        """``base`` with the estimated factors' tables of draw ``d`` (nonparametric)."""
        drawn = self.tables[d]
        return FactoredTransitions([Factor(f.variable, drawn[f.variable], given=f.given)
                                    if f.variable in drawn else f for f in base.factors])


def draw_first_stage(ts: TransitionEstimate, n_draws: int, seed=None
                     ) -> FirstStageDraws | None:
    """Draws of the first stage's estimate from its sampling distribution, or ``None`` when
    nothing was estimated.

    * Cell frequencies: each estimated row (its positive cells, with counts :math:`C_j`) is
      drawn from the Dirichlet distribution :math:`\\mathrm{Dir}(C_1, \\dots, C_J)`, the
      posterior of the multinomial cell probabilities under the improper prior
      :math:`\\prod_j p_j^{-1}`: mean :math:`\\hat p = C / N`, covariance
      :math:`(\\mathrm{diag}(\\hat p) - \\hat p \\hat p') / (N + 1)` (the estimate's
      :math:`/N` to first order), every draw a probability distribution; cells never observed
      stay zero and unvisited or deterministic rows at their value.
    * Transition parameters: :math:`\\psi_d \\sim N(\\hat\\psi, V_\\psi)` over the free
      parameters (the boundary ones held at zero). Draws outside the transition function's
      domain (a probability below zero) are for the caller to count and leave out.

    Parameters
    ----------
    ts : TransitionEstimate
    n_draws : int
    seed : int, numpy.random.SeedSequence or None
        Seed of :func:`numpy.random.default_rng`.
    """
    rng = np.random.default_rng(seed)
    if ts.tables:
        layout, names = _cell_layout(ts)
        P = len(names)
        est = np.zeros(P)
        delta = np.zeros((n_draws, P))
        drawn = {var: np.repeat(t.reshape(1, -1, t.shape[-1]), n_draws, axis=0)
                 for var, t in ts.tables.items()}
        # one gamma variate per positive cell of every estimated row, draw after draw (so the
        # first n of more draws are the n draws of the same seed)
        alpha = np.concatenate([ts.counts[var].reshape(-1, ts.tables[var].shape[-1])[r][
            [*free, last]] for var, r, free, last, _ in layout]).astype(float)
        gammas = rng.standard_gamma(np.broadcast_to(alpha, (n_draws, len(alpha))))
        at = 0
        blocks = []
        for var, r, free, last, start in layout:
            K = ts.tables[var].shape[-1]
            p = ts.tables[var].reshape(-1, K)[r]
            c = ts.counts[var].reshape(-1, K)[r]
            pos = [*free, last]
            g = gammas[:, at:at + len(pos)]
            at += len(pos)
            drawn[var][:, r, pos] = g / g.sum(axis=1, keepdims=True)
            est[start:start + len(free)] = p[free]
            delta[:, start:start + len(free)] = drawn[var][:, r, free] - p[free]
            pf = p[free]
            blocks.append((start, (np.diag(pf) - np.outer(pf, pf)) / c.sum()))
        cov = np.zeros((P, P))
        for start, b in blocks:
            cov[start:start + len(b), start:start + len(b)] = b
        tables = [{var: drawn[var][d].reshape(ts.tables[var].shape) for var in drawn}
                  for d in range(n_draws)]
        return FirstStageDraws(names, est, delta, cov, tables,
                               f"{P} estimated transition cells")
    if len(ts.params) and ts.free:
        where = [list(ts.params.index).index(n) for n in ts.free]
        V = ts.cov[np.ix_(where, where)]
        V = 0.5 * (V + V.T)
        w, Q = np.linalg.eigh(V)
        if w.min() < -1e-10 * max(1.0, w.max()):
            raise ValueError(f"the first stage's covariance is not positive semi-definite "
                             f"(smallest eigenvalue {w.min():.3g}); transitions cannot be drawn")
        z = rng.standard_normal((n_draws, len(where)))
        delta = (z * np.sqrt(np.clip(w, 0, None))) @ Q.T
        return FirstStageDraws(list(ts.free), ts.params[ts.free].to_numpy(dtype=float), delta,
                               V, None, f"{len(where)} first-stage transition parameters")
    return None
