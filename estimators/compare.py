"""Several estimation results side by side (after linearmodels' ``compare``).

>>> table = compare({"NFXP": res_nfxp, "CCP": res_ccp})    # doctest: +SKIP
>>> print(table)                                            # doctest: +SKIP

One column per estimator: each parameter's estimate with its standard error in parentheses
below, then the log-likelihood, the number of observations and whether the estimator converged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from estimators.inference import NotAvailableError
from estimators.results import EstimationResults
from estimators.tables import Table, TableView, format_number

__all__ = ["Comparison", "compare"]

#: Significance stars: (threshold on the p-value, stars), most stars first.
STARS = ((0.01, "***"), (0.05, "**"), (0.1, "*"))


def _stars(p: float) -> str:
    if not math.isfinite(p):
        return ""
    for threshold, mark in STARS:
        if p < threshold:
            return mark
    return ""


def _column_names(results: Sequence[EstimationResults]) -> list[str]:
    """Estimator names, numbered where an estimator appears more than once."""
    names = [r.estimator for r in results]
    out = []
    for i, name in enumerate(names):
        if names.count(name) > 1:
            out.append(f"{name} ({names[:i + 1].count(name)})")
        else:
            out.append(name)
    return out


def compare(results: Mapping[str, EstimationResults] | Sequence[EstimationResults],
            cov_type: str | None = None, stars: bool = False) -> Comparison:
    """Put several estimation results side by side.

    Parameters
    ----------
    results : dict of str to EstimationResults, or list of EstimationResults
        The results, in column order. A dict's keys name the columns; a list's columns are named
        by the estimators (numbered, ``"NFXP (1)"``, ``"NFXP (2)"``, if one appears twice).
    cov_type : str, optional
        Covariance kind of every column's standard errors. If not given, each column uses its
        own default kind (shown in the "Covariance" row).
    stars : bool, default False
        Mark estimates with significance stars: ``*`` p < 0.1, ``**`` p < 0.05,
        ``***`` p < 0.01 (two-sided, normal).

    Returns
    -------
    Comparison
        The table: printable, with ``as_html()``, ``as_latex()``, ``as_markdown()``,
        ``to_csv(path)`` and the numbers as DataFrames (``params``, ``std_errors``, ...).

    Raises
    ------
    TypeError
        If an item is not an :class:`~estimators.results.EstimationResults`.
    NotAvailableError
        If ``cov_type`` is given and a column cannot compute it (the message names the column).

    See Also
    --------
    estimators.results.EstimationResults.summary : One result in full.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from estimators.results import EstimationResults
    >>> def fit(name, names, values):
    ...     return EstimationResults(
    ...         model=None, estimator=name, params=pd.Series(values, index=names),
    ...         hessian=-np.eye(len(names)) * 100, scores=None, groups=None, loglik=-50.0,
    ...         nobs=200, converged=True)
    >>> table = compare([fit("NFXP", ["RC", "theta"], [9.0, 2.5]), fit("CCP", ["RC"], [8.8])])
    >>> table.names
    ['NFXP', 'CCP']
    >>> table.params.loc["theta"].tolist()
    [2.5, nan]
    """
    if isinstance(results, Mapping):
        names = [str(k) for k in results]
        items = list(results.values())
    elif isinstance(results, Sequence) and not isinstance(results, (str, bytes)):
        items = list(results)
        names = None
    else:
        raise TypeError("results must be a dict {name: EstimationResults} or a list of "
                        f"EstimationResults; got {type(results).__name__}")
    for i, r in enumerate(items):
        if not isinstance(r, EstimationResults):
            where = repr(names[i]) if names is not None else str(i)
            raise TypeError(f"results[{where}] is a {type(r).__name__}, not EstimationResults")
    if not items:
        raise ValueError("compare() needs at least one EstimationResults")
    if names is None:
        names = _column_names(items)
    return Comparison(dict(zip(names, items, strict=True)), cov_type=cov_type, stars=stars)


class Comparison(TableView):
    """Estimation results side by side: one column per estimator.

    Build it with :func:`compare`. Rows: every parameter (in order of first appearance; blank
    where a column does not have it) with its standard error in parentheses below ("(fixed)" for
    a parameter held fixed), then the log-likelihood, the number of observations (and units),
    the number of estimated parameters, convergence and the covariance kind.

    Parameters
    ----------
    results : dict of str to EstimationResults
        The columns, in order.
    cov_type : str, optional
        Covariance kind of every column; each column's default if not given.
    stars : bool, default False
        Mark estimates with significance stars.

    Attributes
    ----------
    names : list of str
        Column names.
    results : dict of str to EstimationResults
        The results compared.
    cov_types : dict of str to str
        Covariance kind of each column.
    notes : list of str
        Notes printed under the table.
    """

    def __init__(self, results: Mapping[str, EstimationResults], cov_type: str | None = None,
                 stars: bool = False):
        self.results = dict(results)
        self.names = list(self.results)
        self.stars = bool(stars)
        self.cov_types: dict[str, str] = {}
        order: list[str] = []
        seen: set[str] = set()
        for r in self.results.values():
            for n in list(r.param_names) + list(r.fixed_params.index):
                if n not in seen:
                    seen.add(n)
                    order.append(n)
        index = pd.Index(order, dtype=object, name="parameter")
        params = pd.DataFrame(np.nan, index=index, columns=self.names)
        se = params.copy()
        pvals = params.copy()
        fixed = pd.DataFrame(False, index=index, columns=self.names)
        notes = []
        self._se_missing: dict[str, str] = {}
        for name, r in self.results.items():
            kind = r.cov_type if cov_type is None else cov_type
            self.cov_types[name] = kind
            params.loc[r.param_names, name] = r.params.to_numpy()
            if len(r.fixed_params):
                params.loc[list(r.fixed_params.index), name] = r.fixed_params.to_numpy()
                fixed.loc[list(r.fixed_params.index), name] = True
            try:
                col_se = r.std_errors_of(kind)
                col_p = r._pvalues_of(kind)
            except NotAvailableError as exc:
                if cov_type is not None:
                    raise NotAvailableError(f"column {name!r}: {exc}") from exc
                self._se_missing[name] = str(exc)
                notes.append(f"{name}: standard errors not available: {exc}")
                continue
            se.loc[r.param_names, name] = col_se.to_numpy()
            pvals.loc[r.param_names, name] = col_p.to_numpy()
        self._params, self._se, self._pvalues, self._fixed = params, se, pvals, fixed
        base = ["Standard errors in parentheses."]
        if self.stars:
            base.append("* p < 0.1, ** p < 0.05, *** p < 0.01.")
        self.notes = base + notes

    # ------------------------------------------------------------------ numbers
    @property
    def params(self) -> pd.DataFrame:
        """Parameter values (estimated or fixed), parameters x columns; NaN where absent."""
        return self._params.copy()

    @property
    def std_errors(self) -> pd.DataFrame:
        """Standard errors, parameters x columns; NaN where absent, fixed or unavailable."""
        return self._se.copy()

    @property
    def tstats(self) -> pd.DataFrame:
        """z statistics, parameters x columns; NaN where there is no standard error."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return self._params.where(self._se.notna()) / self._se

    @property
    def pvalues(self) -> pd.DataFrame:
        """Two-sided normal p-values, parameters x columns; NaN where there is none."""
        return self._pvalues.copy()

    @property
    def fixed(self) -> pd.DataFrame:
        """True where a column held the parameter fixed, parameters x columns."""
        return self._fixed.copy()

    @property
    def statistics(self) -> pd.DataFrame:
        """Fit statistics, one column per result.

        Rows ``loglik``, ``nobs``, ``n_units``, ``n_params``, ``aic``, ``bic``, ``converged``,
        ``iterations``, ``seconds``, ``cov_type`` (object dtype).
        """
        rows = ["loglik", "nobs", "n_units", "n_params", "aic", "bic", "converged",
                "iterations", "seconds", "cov_type"]
        data = {}
        for name, r in self.results.items():
            data[name] = [r.loglik, r.nobs, r.n_units, r.n_params, r.aic, r.bic, r.converged,
                          r.iterations, r.seconds, self.cov_types[name]]
        return pd.DataFrame(data, index=pd.Index(rows, name="statistic"), dtype=object)

    def to_frame(self) -> pd.DataFrame:
        """The numbers of the table.

        Returns
        -------
        pandas.DataFrame
            Parameters x (column, field), fields ``estimate``, ``std_error``, ``pvalue``,
            ``fixed``; NaN where a column does not have the parameter. Fit statistics are in
            :attr:`statistics`.
        """
        parts = {}
        for name in self.names:
            parts[name] = pd.DataFrame({
                "estimate": self._params[name], "std_error": self._se[name],
                "pvalue": self._pvalues[name],
                "fixed": self._fixed[name].where(self._params[name].notna()),
            })
        return pd.concat(parts, axis=1)

    # ------------------------------------------------------------------ cells
    def _rows(self) -> list[tuple[str, str, list[str]]]:
        """``(kind, label, cells)`` with kind "estimate", "se" or "stat"."""
        rows = []
        for p in self._params.index:
            est_cells, se_cells = [], []
            for name in self.names:
                value = self._params.at[p, name]
                if not math.isfinite(value) and math.isnan(value):
                    est_cells.append("")
                    se_cells.append("")
                    continue
                mark = _stars(self._pvalues.at[p, name]) if self.stars else ""
                est_cells.append(format_number(value) + mark)
                if self._fixed.at[p, name]:
                    se_cells.append("(fixed)")
                elif math.isnan(self._se.at[p, name]):
                    se_cells.append("(n/a)")
                else:
                    se_cells.append(f"({format_number(self._se.at[p, name])})")
            rows.append(("estimate", str(p), est_cells))
            rows.append(("se", "", se_cells))
        res = self.results.values()
        rows.append(("stat", "Log-likelihood", [format_number(r.loglik) for r in res]))
        rows.append(("stat", "Observations", [str(r.nobs) for r in res]))
        if any(r.n_units is not None for r in res):
            rows.append(("stat", "Units", ["" if r.n_units is None else str(r.n_units)
                                           for r in res]))
        rows.append(("stat", "Parameters", [str(r.n_params) for r in res]))
        rows.append(("stat", "Converged", ["yes" if r.converged else "NO" for r in res]))
        rows.append(("stat", "Covariance", [self.cov_types[n] for n in self.names]))
        return rows

    # ------------------------------------------------------------------ renderings
    def as_table(self) -> Table:
        """The comparison as one :class:`~estimators.tables.Table` (every rendering below is
        this table's): parameter rows with standard-error rows below, then the statistics."""
        rows = self._rows()
        first_stat = next((i for i, (kind, _, _) in enumerate(rows) if kind == "stat"),
                          len(rows))
        return Table(["", *self.names], [[label, *cells] for _, label, cells in rows],
                     title="Comparison of estimates", breaks=[first_stat], notes=self.notes,
                     css_class="simpletable ddc-compare", min_width=60)

