"""The summary of one estimation: a header, a coefficient table and notes, as one table.

:meth:`EstimationResults.summary <estimators.results.EstimationResults.summary>` builds it;
:meth:`Summary.as_table` gives the :class:`~estimators.tables.Table` behind every rendering.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pandas as pd

from estimators.inference import COV_DESCRIPTIONS, NotAvailableError
from estimators.tables import Table, TableView, format_number, format_pvalue, format_seconds

if TYPE_CHECKING:  # pragma: no cover - typing only
    from estimators.results import EstimationResults

__all__ = ["Summary"]


class Summary(TableView):
    """The summary of one estimation: a header, a coefficient table and notes.

    One object feeds the text (``str``), HTML and LaTeX renderings. Build it with
    :meth:`EstimationResults.summary`.

    Parameters
    ----------
    results : EstimationResults
        The results summarized.
    cov_type : str
        The covariance kind of the standard errors shown.

    Attributes
    ----------
    title : str
        The title line.
    header : list of tuple of str
        ``(label, value)`` pairs of the header, in two columns (left entries first).
    table : pandas.DataFrame
        Numeric coefficient table: ``estimate``, ``std_error``, ``tstat``, ``pvalue``,
        ``lower``, ``upper``, ``fixed``; NaN inference if standard errors are unavailable.
    notes : list of str
        Notes printed under the table.
    """

    def __init__(self, results: EstimationResults, cov_type: str):
        self.results = results
        self.cov_type = cov_type
        self.title = f"{results.estimator} estimation results"
        notes = []
        conv = results.convergence
        if not results.converged:
            notes.append("The estimator did NOT converge: the estimates are not a maximum and "
                         "their standard errors are not valid"
                         + (f" ({conv.describe()})." if conv is not None else "."))
        try:
            table = results.to_frame(cov_type)
            notes.extend(f"Warning: {m}" for m in results._cov_warnings.get(cov_type, []))
            self.se_available = True
        except NotAvailableError as exc:
            table = pd.DataFrame({"estimate": results.params}).reindex(
                columns=["estimate", "std_error", "tstat", "pvalue", "lower", "upper"])
            table["fixed"] = False
            if len(results.fixed_params):
                fixed = pd.DataFrame({"estimate": results.fixed_params, "fixed": True})
                table = pd.concat([table, fixed.reindex(columns=table.columns)], axis=0)
                table["fixed"] = table["fixed"].astype(bool)
            notes.append(f"Standard errors are not available: {exc}")
            self.se_available = False
        self.table = table
        desc = COV_DESCRIPTIONS.get(cov_type)
        if self.se_available:
            if cov_type == "cluster" and results._n_groups is not None:
                desc = f"{desc}; {results._n_groups} units"
            elif desc is None:
                desc = "precomputed by the estimator"
            notes.append(f"Covariance {cov_type!r}: {desc}.")
        notes.extend(results.notes)
        self.notes = notes

        left: list[tuple[str, str]] = [("Estimator:", results.estimator)]
        if results.model_name is not None:
            left.append(("Model:", results.model_name))
        left.append(("No. observations:", str(results.nobs)))
        if results.n_units is not None:
            left.append(("No. units:", str(results.n_units)))
        if results.converged:
            left.append(("Converged:", "yes"))
        else:  # first, where it is seen
            left.insert(0, ("Converged:", "NO" + (f" ({', '.join(conv.failed)})"
                                                  if conv is not None else "")))
        if results.iterations is not None:
            left.append(("Iterations:", str(results.iterations)))
        if results.function_evals is not None:
            left.append(("Function evaluations:", str(results.function_evals)))
        if results.seconds is not None:
            left.append(("Time:", format_seconds(results.seconds)))
        right: list[tuple[str, str]] = [("Log-likelihood:", format_number(results.loglik))]
        for part, value in results.loglik_parts.items():
            right.append((f"  {part}:", format_number(value)))
        right += [("AIC:", format_number(results.aic)), ("BIC:", format_number(results.bic)),
                  ("No. parameters:", str(results.n_params) if results.df_model ==
                   results.n_params else f"{results.n_params} ({results.df_model} free)"),
                  ("Covariance:", cov_type)]
        self.left, self.right = left, right
        self.header = left + right

    # ------------------------------------------------------------------ cells
    _COLUMNS = ("estimate", "std. err.", "z", "P>|z|", "[0.025", "0.975]")

    def _rows(self) -> list[tuple[str, list[str]]]:
        rows = []
        for name, r in self.table.iterrows():
            if r["fixed"]:
                rows.append((str(name), [format_number(r["estimate"]), "(fixed)", "", "", "",
                                         ""]))
            elif not self.se_available:
                rows.append((str(name), [format_number(r["estimate"]), "", "", "", "", ""]))
            else:
                rows.append((str(name), [
                    format_number(r["estimate"]), format_number(r["std_error"]),
                    f"{r['tstat']:.3f}" if math.isfinite(r["tstat"]) else "nan",
                    format_pvalue(r["pvalue"]),
                    format_number(r["lower"]), format_number(r["upper"])]))
        return rows

    # ------------------------------------------------------------------ renderings
    def as_table(self) -> Table:
        """The summary as one :class:`~estimators.tables.Table`: the header pairs, the
        coefficient rows and the numbered notes (every rendering below is this table's)."""
        return Table(["", *self._COLUMNS], [[name, *cells] for name, cells in self._rows()],
                     title=self.title, info=self.left + self.right, info_split=len(self.left),
                     notes=self.notes, numbered_notes=True, css_class="simpletable ddc-summary",
                     min_width=78)

