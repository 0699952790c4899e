"""Cross-validation of estimators: each against the truth and against each other.

:func:`cross_validate` fits several estimators (by default NFXP, CCP, NPL, PQR and MaxEntIRL)
to one panel and compares, for every pair and against the truth when it is known:

* **parameters**, each with its standard error: :math:`z = (\\hat\\theta - \\theta_0) /
  \\widehat{se}` and whether the confidence interval covers :math:`\\theta_0`; between two
  estimators :math:`\\Delta / \\sqrt{se_a^2 + se_b^2}` (a conservative scale: estimators fitted
  to the same data are positively correlated, so the difference is usually far smaller), and
  the Hausman scale :math:`\\Delta / \\sqrt{|se_a^2 - se_b^2|}`, the right one when one of the
  two is efficient (maximum likelihood);
* **rewards, state by state**: the anchor-normalized, bundled rewards
  :math:`\\tilde X(s,a)\\hat\\theta` implied by every estimate (:func:`estimators.pqr.
  anchor_rewards`: what PQR recovers nonparametrically, and PQR's own R-step rewards next to
  them), over the observed choice cells; against the truth also in standard errors, the largest
  over the cells being a Scheffé statistic, below :math:`\\sqrt{\\chi^2_K}` quantiles;
* **implied choice probabilities**, from the model solved at every estimate, over the observed
  choice states, and the choice log-likelihood at every estimate.

The result, :class:`CrossValidation`, holds the tables and writes them (Markdown, LaTeX, CSV and a
figure of the estimates with their 95% intervals), atomically.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import chdtri, ndtri  # chi2 / normal quantiles without scipy.stats

from ddc.io import atomic_directory, write_text
from ddc.model import Model
from ddc.panel import Panel
from ddc.utility import LinearUtility
from estimators.base import ESTIMATORS, get_estimator
from estimators.data import choice_data
from estimators.first_stage import transition_model
from estimators.inference import NotAvailableError
from estimators.results import EstimationResults
from estimators.tables import Table, format_number, markdown_escape

__all__ = ["CrossValidation", "cross_validate", "ESTIMATOR_NAMES"]

#: Names accepted in ``estimators=`` (case-insensitive), and the class each one builds: the
#: estimator registry (:data:`estimators.base.ESTIMATORS`) by key and by name.
ESTIMATOR_NAMES = {**{k: c.name for k, c in ESTIMATORS.items()},
                   **{c.name.lower(): c.name for c in ESTIMATORS.values()}}
DEFAULT_ESTIMATORS = tuple(c.name for c in ESTIMATORS.values())


def _build(name: str, model: Model):
    try:
        cls = get_estimator(name)
    except KeyError:
        raise ValueError(f"unknown estimator {name!r}; accepted names: "
                         f"{sorted(c.name for c in ESTIMATORS.values())} (case-insensitive) "
                         f"or their keys {sorted(ESTIMATORS)} in the estimator registry, "
                         "estimator objects with fit(panel), or fitted "
                         "EstimationResults") from None
    return cls.name, cls(model)


def _resolve(model: Model, estimators) -> dict[str, Any]:
    """A dict name -> estimator object or fitted results."""
    if estimators is None:
        out = {}
        for name in (c.name for c in ESTIMATORS.values()):  # read when called: the registry
                                                            # may have grown since import
            if name == "PQR" and (model.anchor is None
                                  or not isinstance(model.utility, LinearUtility)):
                continue
            if name in ("CCP", "NPL", "MaxEntIRL") and not isinstance(model.utility,
                                                                      LinearUtility):
                continue
            out[name] = _build(name, model)[1]
        return out
    if isinstance(estimators, Mapping):
        items = [(str(k), v) for k, v in estimators.items()]
    elif isinstance(estimators, Sequence) and not isinstance(estimators, (str, bytes)):
        items = []
        for e in estimators:
            if isinstance(e, str):
                items.append(_build(e, model))
            elif isinstance(e, EstimationResults):
                items.append((e.estimator, e))
            else:
                items.append((getattr(e, "name", type(e).__name__), e))
    else:
        raise TypeError("estimators must be None (the defaults), a list of names or estimator "
                        "objects, or a dict {column name: estimator or EstimationResults}; got "
                        f"{type(estimators).__name__}")
    out: dict[str, Any] = {}
    for name, e in items:
        if isinstance(e, str):
            e = _build(e, model)[1]
        if not isinstance(e, EstimationResults) and not callable(getattr(e, "fit", None)):
            raise TypeError(f"estimator {name!r} is a {type(e).__name__}: it has no fit(panel) "
                            "method and is not an EstimationResults")
        base, k = name, 2
        while name in out:
            name = f"{base} ({k})"
            k += 1
        out[name] = e
    if not out:
        raise ValueError("no estimator to cross-validate")
    return out


def _full_params(model: Model, res: EstimationResults) -> pd.Series:
    given = {**res.fixed_params.to_dict(), **res.params.to_dict()}
    return model.params_series({k: v for k, v in given.items() if k in model.param_names})


def _chi2_bound(k: int, alpha: float = 1e-4) -> float:
    """:math:`\\sqrt{\\chi^2_k(1 - \\alpha)}`: a bound on a Scheffé statistic."""
    return float(np.sqrt(chdtri(k, alpha)))


def cross_validate(model: Model, panel: pd.DataFrame | Panel, estimators=None, truth=None,
                   level: float = 0.95) -> CrossValidation:
    """Fit several estimators to one panel and compare them with the truth and each other.

    Parameters
    ----------
    model : ddc.Model
        The model.
    panel : pandas.DataFrame or ddc.panel.Panel
        The long panel.
    estimators : list or dict, optional
        By default NFXP, CCP, NPL, PQR and MaxEntIRL with their default options (those that
        apply to the model). A list of names (``"nfxp"``, ``"ccp"``, ``"npl"``, ``"pqr"``,
        ``"maxent"``) or estimator objects, or a dict ``{column name: estimator or fitted
        EstimationResults}``.
    truth : pandas.Series or mapping, optional
        The true parameters (a simulation's), at least the utility ones; transition parameters
        not given take the model's defaults. Without it only the estimators are compared.
    level : float
        Confidence level of the intervals.

    Returns
    -------
    CrossValidation

    Examples
    --------
    >>> import ddc
    >>> from simulations import simulate
    >>> model = ddc.models.membership()
    >>> panel = simulate(model, model.true_params, n_customers=2_000, n_periods=24, seed=0)
    >>> cv = cross_validate(model, panel, truth=model.true_params)      # doctest: +SKIP
    >>> cv.table.loc[("PQR", "alpha_price"), ["estimate", "std_error", "truth"]]  # doctest: +SKIP
    >>> cv.save("cv/")                                                   # doctest: +SKIP
    """
    if not isinstance(model, Model):
        raise TypeError(f"model must be a ddc.Model, got {type(model).__name__}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    todo = _resolve(model, estimators)
    truth_full = None if truth is None else model.params_series(
        truth if isinstance(truth, (pd.Series, Mapping)) else truth)
    results: dict[str, EstimationResults] = {}
    seconds: dict[str, float] = {}
    for name, e in todo.items():
        if isinstance(e, EstimationResults):
            results[name] = e
            continue
        t0 = time.perf_counter()
        results[name] = e.fit(panel)
        seconds[name] = time.perf_counter() - t0
    return CrossValidation(model, panel, results, truth_full, level, seconds)


class CrossValidation:
    """Estimators compared with the truth and with each other (see :func:`cross_validate`).

    Attributes
    ----------
    results : dict of str to EstimationResults
        The fits, by column name.
    truth : pandas.Series or None
        All true parameters (utility and transition), if known.
    table : pandas.DataFrame
        One row per (estimator, parameter): ``estimate``, ``std_error``, ``ci_lower``,
        ``ci_upper``, ``truth``, ``error`` (estimate - truth), ``z`` (error / std_error),
        ``covered`` (the interval covers the truth).
    summary : pandas.DataFrame
        One row per estimator: ``seconds``, ``converged``, ``cov_type``, ``loglik_choice`` (the
        choice log-likelihood at the estimate, all on the same footing), and against the truth
        ``max_abs_z``, ``wald`` (:math:`(\\hat\\theta - \\theta_0)' \\hat V^{-1} (\\hat\\theta -
        \\theta_0)`, :math:`\\chi^2_K` under the truth), ``reward_rmse`` and ``reward_max_error``
        (count-weighted RMS and largest error of the implied rewards over the observed choice
        cells), ``reward_max_z`` (their largest error in standard errors: a Scheffé statistic,
        at most :math:`\\sqrt{\\text{wald}}`), ``ccp_max_error`` and ``ccp_rmse`` (implied choice
        probabilities on the observed choice states), ``ccp_max_z`` (their largest error in
        delta-method standard errors, again a Scheffé statistic to first order) and
        ``ccp_max_error_data`` (against the observed frequencies).
    pairwise : pandas.DataFrame
        One row per pair of estimators: ``max_abs_diff`` (parameters), ``max_z_diff``
        (:math:`|\\Delta| / \\sqrt{se_a^2 + se_b^2}`), ``max_hausman_z``
        (:math:`|\\Delta| / \\sqrt{|se_a^2 - se_b^2|}`, infinite when the variances are equal and
        the estimates are not), ``reward_max_diff``, ``ccp_max_diff`` and ``loglik_diff``.
    rewards : pandas.DataFrame
        States x (source, action): the anchor-normalized rewards of the truth, of every estimate
        and PQR's own R-step (``"<name> (R-step)"``); observed choice states only (NaN
        elsewhere), the anchor's column zero.
    ccps : pandas.DataFrame
        States x (source, action): implied choice probabilities (truth, every estimate) and the
        observed frequencies (``"data"``), on the observed choice states.

    Notes
    -----
    ``seconds`` is the wall time of each ``fit`` as timed here (or the results' own record for
    results passed in already fitted).
    """

    def __init__(self, model: Model, panel, results: Mapping[str, EstimationResults],
                 truth: pd.Series | None, level: float = 0.95,
                 seconds: Mapping[str, float] | None = None):
        self.model = model
        self._seconds = dict(seconds or {})
        self.results = dict(results)
        self.truth = truth
        self.level = level
        self.notes: list[str] = []
        cd = choice_data(model, panel)
        self.counts = cd.counts
        N = cd.counts.sum(axis=1)
        multi = model.feasible.sum(axis=1) > 1
        self._states = (N > 0) & multi
        self._build(cd)

    # ------------------------------------------------------------------ computation
    def _solve(self, params: pd.Series, model: Model | None = None):
        return (model or self.model).solve(params)

    def _build(self, cd) -> None:
        model, truth = self.model, self.truth
        util = model.utility_params
        names = list(self.results)
        z_crit = ndtri(0.5 + self.level / 2)
        full = {n: _full_params(model, r) for n, r in self.results.items()}
        # each estimate with its own model: it carries the transitions estimated in the first
        # stage (the user's model's tables are the defaults, not the data's)
        sols = {n: self._solve(p, transition_model(self.results[n])) for n, p in full.items()}
        pis = {n: s.pi for n, s in sols.items()}
        pi_true = self._solve(truth).pi if truth is not None else None
        counts = self.counts
        mask = counts > 0
        N = counts.sum(axis=1)

        # rewards (anchor-normalized, bundled) over the observed choice cells
        self._cells = None
        rew: dict[str, np.ndarray] = {}
        rew_se: dict[str, np.ndarray] = {}
        nonparametric: dict[str, np.ndarray] = {}
        if model.anchor is not None and isinstance(model.utility, LinearUtility):
            from estimators.pqr import anchor_features, anchor_structure

            st = anchor_structure(model)
            cells = model.feasible & (self._states & st.choice)[:, None]
            self._shown = cells.copy()  # the anchor's column (zero) is shown, not compared
            cells[:, st.anchor] = False
            self._cells = cells
            feats = {}

            def features(p, m=model):
                key = (id(m), tuple(p.to_numpy()[len(util):]))
                if key not in feats:
                    feats[key] = np.nan_to_num(anchor_features(m, p))
                return feats[key]

            if truth is not None:
                rew["truth"] = features(truth) @ truth.to_numpy()[: len(util)]
            for n, r in self.results.items():
                Xt = features(full[n], transition_model(r))
                rew[n] = Xt @ full[n].to_numpy()[: len(util)]
                try:
                    cov = r.cov.loc[util, util].to_numpy()
                    rew_se[n] = np.sqrt(np.einsum("sak,kl,sal->sa", Xt, cov, Xt))
                except (NotAvailableError, KeyError, ValueError):
                    pass
                if "rewards" in r.extra and isinstance(r.extra["rewards"], pd.DataFrame):
                    nonparametric[f"{n} (R-step)"] = r.extra["rewards"].to_numpy()
        else:
            self.notes.append("no reward comparison: the model has no anchor action or no "
                              "linear utility")

        # parameter table
        rows = []
        for n, r in self.results.items():
            try:
                se = r.std_errors
            except NotAvailableError:
                se = pd.Series(np.nan, index=r.params.index)
            for k, est in r.params.items():
                s = float(se.get(k, np.nan))
                t = float(truth[k]) if truth is not None and k in truth.index else np.nan
                err = est - t
                rows.append({"estimator": n, "parameter": k, "estimate": est, "std_error": s,
                             "ci_lower": est - z_crit * s, "ci_upper": est + z_crit * s,
                             "truth": t, "error": err, "z": err / s if s > 0 else np.nan,
                             "covered": bool(abs(err) <= z_crit * s) if np.isfinite(t) and s > 0
                             else None})
        self.table = pd.DataFrame(rows).set_index(["estimator", "parameter"])

        # per-estimator summary
        summ = []
        for n, r in self.results.items():
            with np.errstate(divide="ignore"):
                ll = float(np.sum(counts[mask] * np.log(pis[n][mask])))
            row: dict[str, Any] = {"estimator": n,
                                   "seconds": self._seconds.get(n, r.seconds),
                                   "converged": r.converged, "cov_type": r.cov_type,
                                   "loglik_choice": ll}
            if truth is not None:
                common = [k for k in r.params.index if k in truth.index]
                d = (r.params[common] - truth[common]).to_numpy()
                zz = self.table.loc[n, "z"].reindex(common).to_numpy(dtype=float)
                row["max_abs_z"] = float(np.nanmax(np.abs(zz))) if zz.size else np.nan
                try:
                    V = r.cov.loc[common, common].to_numpy()
                    row["wald"] = float(d @ np.linalg.solve(V, d))
                except (NotAvailableError, np.linalg.LinAlgError):
                    row["wald"] = np.nan
                if self._cells is not None and n in rew:
                    c = self._cells
                    e = (rew[n] - rew["truth"])[c]
                    w = counts[c]
                    row["reward_rmse"] = float(np.sqrt(np.sum(w * e**2) / w.sum()))
                    row["reward_max_error"] = float(np.abs(e).max())
                    if n in rew_se:
                        with np.errstate(divide="ignore", invalid="ignore"):
                            zr = np.abs(e) / rew_se[n][c]
                        row["reward_max_z"] = float(np.nanmax(zr))
                s = self._states
                diff = (pis[n] - pi_true)[s]
                row["ccp_max_error"] = float(np.abs(diff).max())
                try:
                    V = r.cov.loc[util, util].to_numpy()
                    D = sols[n].dccp_dtheta()[s]
                    se = np.sqrt(np.einsum("sak,kl,sal->sa", D, V, D))
                    ok = model.feasible[s] & (se > 0)
                    row["ccp_max_z"] = float(np.max(np.abs(diff[ok]) / se[ok]))
                except (NotAvailableError, KeyError):
                    pass
                row["ccp_rmse"] = float(np.sqrt(np.sum(N[s][:, None] * diff**2)
                                                 / N[s].sum()))
            freq = np.where(N[:, None] > 0, counts / np.maximum(N, 1)[:, None], 0.0)
            row["ccp_max_error_data"] = float(np.abs(pis[n] - freq)[self._states].max())
            summ.append(row)
        self.summary = pd.DataFrame(summ).set_index("estimator")

        # pairs
        pairs = []
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                ra, rb = self.results[a], self.results[b]
                common = [k for k in ra.params.index if k in rb.params.index]
                d = (ra.params[common] - rb.params[common]).abs().to_numpy()
                sa = self.table.loc[a, "std_error"].reindex(common).to_numpy(dtype=float)
                sb = self.table.loc[b, "std_error"].reindex(common).to_numpy(dtype=float)
                with np.errstate(divide="ignore", invalid="ignore"):
                    zsum = d / np.sqrt(sa**2 + sb**2)
                    zh = np.where(d == 0, 0.0, d / np.sqrt(np.abs(sa**2 - sb**2)))
                row = {"a": a, "b": b, "max_abs_diff": float(d.max()) if d.size else np.nan,
                       "max_z_diff": float(np.nanmax(zsum)) if d.size else np.nan,
                       "max_hausman_z": float(np.nanmax(zh)) if d.size else np.nan}
                if self._cells is not None and a in rew and b in rew:
                    row["reward_max_diff"] = float(np.abs(rew[a] - rew[b])[self._cells].max())
                row["ccp_max_diff"] = float(np.abs(pis[a] - pis[b])[self._states].max())
                row["loglik_diff"] = (self.summary.loc[a, "loglik_choice"]
                                      - self.summary.loc[b, "loglik_choice"])
                pairs.append(row)
        self.pairwise = (pd.DataFrame(pairs).set_index(["a", "b"]) if pairs
                         else pd.DataFrame(columns=["max_abs_diff"]))

        # states x (source, action) frames
        index, acts = model.space.index, list(model.actions)

        def frame(arrays: dict[str, np.ndarray], where: np.ndarray) -> pd.DataFrame:
            parts = {k: pd.DataFrame(np.where(where, v, np.nan), index=index, columns=acts)
                     for k, v in arrays.items()}
            if not parts:
                return pd.DataFrame(index=index)
            return pd.concat(parts, axis=1, names=["source", "action"])

        if self._cells is not None:
            self.rewards = frame({**rew, **nonparametric}, self._shown)
        else:
            self.rewards = pd.DataFrame(index=index)
        ccp = {} if pi_true is None else {"truth": pi_true}
        ccp.update(pis)
        ccp["data"] = np.where(N[:, None] > 0, counts / np.maximum(N, 1)[:, None], 0.0)
        states = self._states[:, None] & model.feasible
        self.ccps = frame(ccp, states)
        self.reward_bound = _chi2_bound(len(util))

    # ------------------------------------------------------------------ presentation
    def wide(self) -> pd.DataFrame:
        """Parameters x estimators, cells ``"estimate (s.e.)"``, with the truth first."""
        cols = {}
        params = list(dict.fromkeys(self.table.index.get_level_values("parameter")))
        if self.truth is not None:
            cols["truth"] = [format_number(self.truth[k]) if k in self.truth.index else ""
                             for k in params]
        for n in self.results:
            sub = self.table.loc[n]
            cells = []
            for k in params:
                if k in sub.index:
                    est, se = sub.loc[k, "estimate"], sub.loc[k, "std_error"]
                    cells.append(f"{format_number(est)} ({format_number(se)})"
                                 if np.isfinite(se) else format_number(est))
                else:
                    cells.append("")
            cols[n] = cells
        return pd.DataFrame(cols, index=pd.Index(params, name="parameter"))

    def _summary_rows(self) -> pd.DataFrame:
        keep = [c for c in ("seconds", "converged", "cov_type", "loglik_choice", "max_abs_z",
                            "wald", "reward_rmse", "reward_max_z", "ccp_max_error", "ccp_max_z")
                if c in self.summary.columns]
        return self.summary[keep]

    def as_markdown(self) -> str:
        """A Markdown report: estimates (standard errors), the summary and the pairs.

        Returns
        -------
        str
        """
        out = [f"## Cross-validation: {self.model.name}", "",
               "Estimates with standard errors in parentheses"
               + (", the truth first." if self.truth is not None else "."), "",
               _markdown(self.wide()), "", "### Against the truth and the data", "",
               _markdown(self._summary_rows()), ""]
        if len(self.pairwise):
            out += ["### Between estimators", "", _markdown(self.pairwise), ""]
        if self.truth is not None and "reward_max_z" in self.summary.columns:
            k = len(self.model.utility_params)
            out += [f"reward_max_z is a Scheffé statistic: under the truth it stays below "
                    f"{self.reward_bound:.2f} (sqrt of the chi-square({k}) 1 - 1e-4 quantile).",
                    ""]
        out += [f"- {markdown_escape(n)}" for n in self.notes]
        return "\n".join(out).rstrip() + "\n"

    def as_latex(self) -> str:
        """The estimates table (parameters x estimators) as a LaTeX ``tabular`` (booktabs).

        Returns
        -------
        str
        """
        w = self.wide()
        rows = [[str(k), *row] for k, row in zip(w.index, w.itertuples(index=False),
                                                   strict=True)]
        for stat, label in (("loglik_choice", "Log-likelihood (choice)"),
                            ("seconds", "Seconds")):
            vals = [format_number(self.summary.loc[n, stat], 2)
                    if n in self.summary.index and self.summary.loc[n, stat] is not None
                    else "" for n in self.results]
            lead = [""] if self.truth is not None else []
            rows.append([label, *lead, *vals])
        return Table(["Parameter", *w.columns], rows, breaks=[len(w)]).as_latex(float_env=False)

    def to_markdown(self) -> str:
        """Same as :meth:`as_markdown` (the name of earlier versions)."""
        return self.as_markdown()

    def to_latex(self) -> str:
        """Same as :meth:`as_latex` (the name of earlier versions)."""
        return self.as_latex()

    def to_csv(self, path: str | os.PathLike) -> Path:
        """Write :attr:`table` (full precision) to a CSV file, completely or not at all.

        Parameters
        ----------
        path : str or os.PathLike
            The file; its folder must exist.

        Returns
        -------
        pathlib.Path
        """
        return write_text(path, lambda fh: self.table.to_csv(fh))

    def figure(self, ncols: int = 3):
        """Estimates with their intervals, one panel per parameter, the truth marked.

        Parameters
        ----------
        ncols : int
            Panels per row.

        Returns
        -------
        matplotlib.figure.Figure
        """
        from matplotlib.figure import Figure

        params = list(dict.fromkeys(self.table.index.get_level_values("parameter")))
        names = list(self.results)
        nrows = max(1, math.ceil(len(params) / ncols))
        fig = Figure(figsize=(4.0 * min(ncols, len(params)), 0.45 * len(names) * nrows + 1.2
                              * nrows), layout="constrained")
        axes = fig.subplots(nrows, min(ncols, len(params)), squeeze=False)
        y = np.arange(len(names))[::-1]
        for i, k in enumerate(params):
            ax = axes[i // ncols][i % ncols]
            for j, n in enumerate(names):
                if (n, k) not in self.table.index:
                    continue
                row = self.table.loc[(n, k)]
                err = row["ci_upper"] - row["estimate"]
                ax.errorbar(row["estimate"], y[j], xerr=err if np.isfinite(err) else None,
                            fmt="o", color=f"C{j}", capsize=3)
            if self.truth is not None and k in self.truth.index:
                ax.axvline(self.truth[k], color="k", linestyle="--", linewidth=1,
                           label="truth")
            ax.set_yticks(y, names)
            ax.set_title(k)
            ax.grid(axis="x", alpha=0.3)
        for i in range(len(params), nrows * min(ncols, len(params))):
            axes[i // ncols][i % ncols].set_visible(False)
        fig.suptitle(f"{self.model.name}: estimates with {self.level:.0%} intervals"
                     + (" (dashed: truth)" if self.truth is not None else ""))
        return fig

    def save(self, directory: str | os.PathLike) -> Path:
        """Write the report to ``directory``, completely or not at all.

        Files: ``report.md``, ``table.tex``, ``table.csv`` (the long :attr:`table`),
        ``summary.csv``, ``pairwise.csv``, ``rewards.csv``, ``ccps.csv`` and ``estimates.png``.
        Written through :func:`ddc.io.atomic_directory`: into a temporary folder next to
        ``directory``, which takes its place once complete, with a ``MANIFEST.json`` listing the
        files. An existing folder is replaced only if it is empty or its manifest lists every
        file in it; otherwise nothing is changed and the files not written by ddc-econ are named.

        Parameters
        ----------
        directory : str or os.PathLike
            The report folder (created, with missing parent folders).

        Returns
        -------
        pathlib.Path

        Raises
        ------
        ddc.io.UnsafeOverwriteError
            If ``directory`` holds files ddc-econ did not write (named in the message).
        """
        with atomic_directory(directory) as tmp:
            (tmp / "report.md").write_text(self.as_markdown(), encoding="utf-8")
            (tmp / "table.tex").write_text(self.as_latex(), encoding="utf-8")
            self.table.to_csv(tmp / "table.csv")
            self.summary.to_csv(tmp / "summary.csv")
            self.pairwise.to_csv(tmp / "pairwise.csv")
            self.rewards.to_csv(tmp / "rewards.csv")
            self.ccps.to_csv(tmp / "ccps.csv")
            self.figure().savefig(tmp / "estimates.png", dpi=120)
        return Path(directory)

    def __repr__(self) -> str:
        return (f"CrossValidation({self.model.name}: {list(self.results)}, "
                f"truth={'yes' if self.truth is not None else 'no'})")

    def __str__(self) -> str:
        return self.as_markdown()


def _markdown(df: pd.DataFrame) -> str:
    """A DataFrame as a Markdown pipe table (numbers formatted with 4 decimals)."""
    return Table.from_frame(df).as_markdown().rstrip()
