"""The counterfactual report: tables, figures, Markdown and HTML, saved completely or not at all.

:class:`CounterfactualReport` is what :func:`simulations.counterfactual` returns. Its tables are
pandas DataFrames; :meth:`~CounterfactualReport.to_markdown` and
:meth:`~CounterfactualReport.to_html` render one document (the same blocks in both formats);
:meth:`~CounterfactualReport.save` writes the document, the PNG figures and the CSV tables into a
folder through :func:`atomic_directory`: everything is written into a temporary sibling folder,
which is renamed into place only once complete.
"""

from __future__ import annotations

import base64
import html
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ddc.io import MANIFEST, atomic_directory
from estimators.tables import Table
from simulations.figures import FIGURE_NAMES

__all__ = [
    "CounterfactualReport",
    "atomic_directory",
    "FIGURES",
    "COHORTS",
    "IDENTIFICATION_NOTE",
    "MANIFEST",
]

FIGURES = ("cv_per_customer", *FIGURE_NAMES)
"""The report's figures, in column order."""

COHORTS = ("all", "monthly", "annual")
"""The retention cohorts: all joiners, and those joining on each plan."""

IDENTIFICATION_NOTE = (
    "Price and flow-utility changes are identified under the normalization u(none) = 0: they "
    "change the utility of the plans by known amounts, and their effects do not depend on which "
    "normalization is used. Removing a plan (or changing the lock length) depends on that "
    "normalization: the data identify utilities only relative to u(none), and a counterfactual "
    "that changes the choice set or the transitions takes the normalization literally "
    "(Kalouptsidi, Scott and Souza-Rodrigues 2021)."
)
"""The identification note of every report (``MEMBERSHIP_MODEL.md``)."""


LABELS = {
    "cv_per_customer": "CV per customer",
    "member_share": "member share",
    "annual_share": "annual share of members",
    "lapse_rate": "lapse rate",
    "retention_12m": "12-month retention",
    "revenue_per_customer_month": "revenue per customer-month",
}
"""Human-readable names of the figures."""

_MONEY = ("cv_per_customer", "revenue_per_customer_month")
RETENTION_MONTHS = (1, 3, 6, 12, 24, 36)
"""Months of the retention curve shown in the report's table."""


# ------------------------------------------------------------------------------ formatting


def _money(x: float, signed: bool = False) -> str:
    if not np.isfinite(x):
        return "n/a"
    sign = "-" if x < 0 else ("+" if signed and x > 0 else "")
    return f"{sign}${abs(x):,.2f}"


def _format(col: str, x: float, change: bool = False) -> str:
    """A figure for display: dollars, or percent (percentage points for changes)."""
    if not np.isfinite(x):
        return "n/a"
    if col in _MONEY:
        return _money(x, signed=change or col == "cv_per_customer")
    if change:
        return f"{100 * x:+.2f} pp"
    return f"{100 * x:.1f}%"


def _bare(col: str, x: float, change: bool = False) -> str:
    """The number of an interval end, without units."""
    if not np.isfinite(x):
        return "n/a"
    if col in _MONEY:
        return f"{x:,.2f}"
    return f"{100 * x:+.2f}" if change else f"{100 * x:.1f}"


def _cell(frame: pd.DataFrame, key, col: str, change: bool = False) -> str:
    text = _format(col, float(frame.loc[key, col]), change)
    lo, hi = f"{col}_lower", f"{col}_upper"
    if lo in frame.columns and np.isfinite(frame.loc[key, lo]):
        text += (f" [{_bare(col, float(frame.loc[key, lo]), change)}, "
                 f"{_bare(col, float(frame.loc[key, hi]), change)}]")
    return text


# ------------------------------------------------------------------------------ documents

# A document is a list of blocks, rendered to Markdown or HTML:
# ("h1"|"h2"|"p", text), ("list", [text, ...]), ("table", caption, header, rows),
# ("img", alt, file name).


def _md_inline(text: str) -> str:
    """Text for Markdown: HTML escaped (no tag in a name survives); ``**bold**`` and
    ```code``` markup kept."""
    return html.escape(text, quote=False)


def _table(block: tuple) -> Table:
    """The :class:`~estimators.tables.Table` of a table block."""
    _, caption, header, rows = block[:4]
    return Table(header, rows, title=caption, align=_alignment(block, len(header)))


def _alignment(block: tuple, n: int) -> str:
    """Column alignment of a table block: its fifth element (``"l"``/``"r"`` per column), else
    the first two columns left (labels) and the rest right (numbers)."""
    if len(block) > 4 and block[4]:
        return block[4]
    return "l" + "r" * (n - 1)


def _html_inline(text: str) -> str:
    out = html.escape(text, quote=False)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)


def _render_markdown(blocks: list, image_dir: str | None) -> str:
    lines: list[str] = []
    for block in blocks:
        kind = block[0]
        if kind == "h1":
            lines += [f"# {_md_inline(block[1])}", ""]
        elif kind == "h2":
            lines += [f"## {_md_inline(block[1])}", ""]
        elif kind == "p":
            lines += [_md_inline(block[1]), ""]
        elif kind == "list":
            lines += [f"- {_md_inline(item)}" for item in block[1]] + [""]
        elif kind == "table":
            lines += [_table(block).as_markdown(), ""]
        elif kind == "img" and image_dir is not None:
            prefix = "" if image_dir in ("", ".") else image_dir.rstrip("/") + "/"
            lines += [f"![{block[1]}]({prefix}{block[2]})", ""]
    return "\n".join(lines).rstrip() + "\n"


_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 70em;
       margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.92em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.3em 0.7em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
caption { caption-side: top; text-align: left; font-weight: bold; padding-bottom: 0.3em; }
img { max-width: 100%; }
code { background: #f4f4f4; padding: 0 0.2em; }
"""


def _render_html(blocks: list, images: dict[str, bytes] | None) -> str:
    title = next((b[1] for b in blocks if b[0] == "h1"), "Report")
    out = ["<!DOCTYPE html>", "<html lang=\"en\">", "<head>", "<meta charset=\"utf-8\">",
           f"<title>{html.escape(title)}</title>", f"<style>{_CSS}</style>", "</head>",
           "<body>"]
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2"):
            out.append(f"<{kind}>{_html_inline(block[1])}</{kind}>")
        elif kind == "p":
            out.append(f"<p>{_html_inline(block[1])}</p>")
        elif kind == "list":
            out.append("<ul>" + "".join(f"<li>{_html_inline(i)}</li>" for i in block[1])
                       + "</ul>")
        elif kind == "table":
            out.append(_table(block).as_html())
        elif kind == "img" and images and block[2] in images:
            data = base64.b64encode(images[block[2]]).decode("ascii")
            out.append(f"<figure><img alt=\"{html.escape(block[1])}\" "
                       f"src=\"data:image/png;base64,{data}\"></figure>")
    out += ["</body>", "</html>"]
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------------ the report


@dataclass
class CounterfactualReport:
    """Welfare, membership and retention under counterfactual scenarios.

    Built by :func:`simulations.counterfactual`. The tables hold numbers (shares as fractions,
    money in dollars); the renderings format them.

    Attributes
    ----------
    summary : pandas.DataFrame
        One row per scenario (index ``scenario``, ``"baseline"`` first); columns
        ``cv_per_customer`` (USD), ``member_share``, ``annual_share``, ``lapse_rate``,
        ``retention_12m``, ``revenue_per_customer_month`` (USD), each followed by
        ``<col>_lower`` and ``<col>_upper`` when the parameters came with a covariance.
    changes : pandas.DataFrame
        The scenarios' figures minus the baseline's (``cv_per_customer`` is already a change),
        with intervals from the paired draws.
    by_market : pandas.DataFrame
        The same figures within each market; index ``(scenario, market)``.
    retention : pandas.DataFrame
        :math:`S(k)`; index ``(scenario, joined, k)`` with ``joined`` in ``all``, ``monthly``,
        ``annual`` and ``k = 0..horizon``; columns ``retention`` and, with intervals,
        ``retention_lower``, ``retention_upper`` (NaN for a plan nobody joins).
    draws : pandas.DataFrame or None
        The bootstrap draws of every figure (columns ``(scenario, figure)``), without intervals
        ``None``.
    param_draws : pandas.DataFrame or None
        The parameter draws behind them (one row per draw used, one column per parameter).
    scenarios : dict
        Scenario name to :class:`~simulations.scenarios.Scenario` (``None`` for the baseline).
    params : pandas.Series
        The parameters at which the figures are computed.
    std_errors : pandas.Series or None
        Their standard errors (from the covariance used for the draws).
    source : str
        Where the parameters come from (e.g. ``"NFXP estimate (720,000 observations)"``).
    model_name : str
        The model's name.
    beta : float
        Its discount factor.
    n_draws : int
        Bootstrap draws requested (0: no intervals).
    n_used : int
        Draws that solved and enter the intervals.
    seed : int or None
        Seed of the draws.
    level : float
        Coverage of the intervals.
    horizon : int
        Last month of the retention curves.
    price_param : str
        The price coefficient used to express welfare in dollars.
    identification_note : str
        What the scenarios' identification rests on.
    notes : list of str
        Other notes (failed draws, unavailable covariance, ...).
    seconds : float
        Time to compute the report.
    """

    summary: pd.DataFrame
    changes: pd.DataFrame
    by_market: pd.DataFrame
    retention: pd.DataFrame
    draws: pd.DataFrame | None
    param_draws: pd.DataFrame | None
    scenarios: dict
    params: pd.Series
    std_errors: pd.Series | None
    source: str
    model_name: str
    beta: float
    n_draws: int
    n_used: int
    seed: int | None
    level: float
    horizon: int
    price_param: str
    identification_note: str
    notes: list = field(default_factory=list)
    seconds: float = 0.0

    # ---------------------------------------------------------------- basics
    @property
    def has_intervals(self) -> bool:
        """Whether the figures carry intervals."""
        return "cv_per_customer_lower" in self.summary.columns

    def __repr__(self) -> str:
        return (f"CounterfactualReport({self.model_name!r}, scenarios="
                f"{list(self.summary.index)}, draws={self.n_used})")

    def __str__(self) -> str:
        return self.as_text()

    def _repr_html_(self) -> str:
        return _render_html(self._blocks(tables_only=True), None)

    def as_text(self) -> str:
        """A plain-text table of the summary (the figures with their intervals).

        Returns
        -------
        str
        """
        header = ["scenario", *[LABELS[c] for c in FIGURES]]
        rows = [[str(s), *[_cell(self.summary, s, c) for c in FIGURES]]
                for s in self.summary.index]
        return Table(header, rows).as_text()

    # ---------------------------------------------------------------- document
    def _interval_text(self) -> str:
        if not self.has_intervals:
            return ("No intervals: the parameters were given without a covariance (pass "
                    "estimation results for intervals).")
        return (f"{100 * self.level:.0f}% intervals in brackets: percentiles of a parametric "
                f"bootstrap, {self.n_used} draws of the parameters from the normal "
                f"approximation to the estimator (seed {self.seed}); every figure of every "
                "scenario is recomputed at each draw. Changes are computed draw by draw.")

    def _blocks(self, tables_only: bool = False) -> list:
        blocks: list = [("h1", "Counterfactual policies: welfare and retention")]
        if not tables_only:
            blocks.append(("p", f"Model `{self.model_name}` (monthly discount factor "
                                f"beta = {self.beta:g}); parameters: {self.source}. "
                                f"{self._interval_text()} Computed in {self.seconds:.1f} s."))
            blocks.append(("h2", "Scenarios"))
            rows = [["baseline", "the model as estimated", "-"]]
            for name, s in self.scenarios.items():
                if s is not None:
                    rows.append([name, s.describe(), s.identification])
            blocks.append(("table", "", ["scenario", "what changes", "identification"], rows,
                           "lll"))
        blocks.append(("h2", "Results"))
        blocks.append(("table", "Table 1. Figures by scenario",
                       ["scenario", *[LABELS[c] for c in FIGURES]],
                       [[str(s), *[_cell(self.summary, s, c) for c in FIGURES]]
                        for s in self.summary.index]))
        if len(self.changes):
            blocks.append(("table", "Table 2. Changes relative to the baseline",
                           ["scenario", *[LABELS[c] for c in FIGURES]],
                           [[str(s), *[_cell(self.changes, s, c, change=True)
                                       for c in FIGURES]] for s in self.changes.index]))
        if not tables_only:
            blocks.append(("img", "Changes relative to the baseline", "changes.png"))
        blocks.append(("h2", "By market"))
        market_rows = [[str(s), str(m), *[_cell(self.by_market, (s, m), c) for c in FIGURES]]
                       for s, m in self.by_market.index]
        blocks.append(("table", "Table 3. Figures by market", ["scenario", "market",
                                                              *[LABELS[c] for c in FIGURES]],
                       market_rows, "ll" + "r" * len(FIGURES)))
        if not tables_only:
            blocks.append(("img", "Welfare by market", "welfare_by_market.png"))
        blocks.append(("h2", "Retention"))
        months = [k for k in RETENTION_MONTHS if k <= self.horizon]
        ret_rows = []
        for s in self.summary.index:
            for joined in COHORTS:
                cells = [_cell(self.retention, (s, joined, k), "retention") for k in months]
                if all(c == "n/a" for c in cells):
                    continue
                ret_rows.append([str(s), joined, *cells])
        blocks.append(("table", "Table 4. Retention S(k): share of a cohort joining at the "
                                "steady state still a member k months after joining",
                       ["scenario", "joined", *[f"k = {k}" for k in months]], ret_rows,
                       "ll" + "r" * len(months)))
        if not tables_only:
            blocks.append(("img", "Retention curves", "retention.png"))
            blocks.append(("h2", "How to read the figures"))
            blocks.append(("list", [
                "**CV per customer**: the compensating variation, sum_s mu_base(s) (Vbar_cf(s) "
                "- Vbar_base(s)) / alpha_price, in dollars: the one-time payment (present value "
                "at the monthly discount factor) that leaves the average customer of the "
                "baseline steady state as well off as the scenario; positive is a gain. Vbar is "
                "the ex-ante value including Euler's constant.",
                "**member share**: share of customers holding a membership in a month (locked "
                "annual months count), under the scenario's own steady state.",
                "**annual share of members**: share of members on the annual plan.",
                "**lapse rate**: probability that a member whose paid coverage ends this month "
                "does not renew (P(none | plan = member)).",
                "**12-month retention**: S(12), the share of a cohort joining at the steady "
                "state that has held a membership in every month since, 12 months after "
                "joining; S(k) by plan joined in Table 4.",
                "**revenue per customer-month**: expected payments per customer and month at "
                "the scenario's prices (the annual price counts in the month of purchase).",
                "Markets are permanent price regimes with equal mass; shares and retention by "
                "market use the market's own steady state, CV by market the baseline's.",
            ]))
            blocks.append(("h2", "Identification"))
            blocks.append(("p", self.identification_note))
            blocks.append(("h2", "Parameters"))
            header = ["parameter", "value"] + (["std. error"] if self.std_errors is not None
                                                 else [])
            prow = []
            for name, value in self.params.items():
                row = [str(name), f"{value:.4f}"]
                if self.std_errors is not None:
                    se = self.std_errors.get(name, np.nan)
                    row.append(f"{se:.4f}" if np.isfinite(se) else "(fixed)")
                prow.append(row)
            blocks.append(("table", "", header, prow, "l" + "r" * (len(header) - 1)))
            if self.notes:
                blocks.append(("h2", "Notes"))
                blocks.append(("list", list(self.notes)))
        return blocks

    def to_markdown(self, image_dir: str | None = None) -> str:
        """The report as Markdown.

        Parameters
        ----------
        image_dir : str, optional
            Folder of the PNG figures relative to the Markdown file (``"."`` when saved by
            :meth:`save`); without it the figures are left out.

        Returns
        -------
        str
        """
        return _render_markdown(self._blocks(), image_dir)

    def to_html(self, images: dict[str, bytes] | None = None) -> str:
        """The report as a self-contained HTML page (figures embedded as PNG).

        Parameters
        ----------
        images : dict of str to bytes, optional
            PNG bytes by file name (as from :meth:`figure_pngs`); rendered here if not given.

        Returns
        -------
        str
        """
        if images is None:
            images = self.figure_pngs()
        return _render_html(self._blocks(), images)

    # ---------------------------------------------------------------- figures
    def figures(self) -> dict:
        """The report's figures as matplotlib Figures, by file name.

        ``retention.png`` (the curves :math:`S(k)` of all joiners and by plan joined, one line
        per scenario, with bands), ``changes.png`` (each scenario's change in every figure
        relative to the baseline, with intervals) and ``welfare_by_market.png`` (CV per
        customer overall and by market).

        Returns
        -------
        dict of str to matplotlib.figure.Figure
        """
        return {"retention.png": self._figure_retention(),
                "changes.png": self._figure_changes(),
                "welfare_by_market.png": self._figure_welfare()}

    def figure_pngs(self, dpi: int = 110) -> dict[str, bytes]:
        """The figures rendered as PNG bytes, by file name.

        Parameters
        ----------
        dpi : int
            Resolution.

        Returns
        -------
        dict of str to bytes
        """
        out = {}
        for name, fig in self.figures().items():
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
            out[name] = buf.getvalue()
        return out

    def _colors(self) -> dict:
        from matplotlib import colormaps

        cmap = colormaps["tab10"]
        return {s: ("black" if s == "baseline" else cmap(i % 10))
                for i, s in enumerate(self.summary.index)}

    def _figure_retention(self):
        from matplotlib.figure import Figure

        fig = Figure(figsize=(13, 4.2))
        axes = fig.subplots(1, 3, sharey=True)
        colors = self._colors()
        titles = {"all": "All joiners", "monthly": "Joined on the monthly plan",
                  "annual": "Joined on the annual plan"}
        for ax, joined in zip(axes, COHORTS, strict=True):
            idx = self.retention.index
            for s in self.summary.index:
                sel = (idx.get_level_values("scenario") == s) & \
                    (idx.get_level_values("joined") == joined)
                part = self.retention[sel].droplevel(["scenario", "joined"])
                if part["retention"].isna().all():
                    continue
                k = part.index.to_numpy()
                ax.plot(k, part["retention"], color=colors[s], lw=1.8 if s == "baseline" else 1.3,
                        label=s)
                if "retention_lower" in part.columns:
                    ax.fill_between(k, part["retention_lower"], part["retention_upper"],
                                    color=colors[s], alpha=0.18, lw=0)
            ax.set_title(titles[joined])
            ax.set_xlabel("months since joining, k")
            ax.set_xlim(0, self.horizon)
            ax.set_ylim(0, 1.02)
            ax.grid(alpha=0.3)
        axes[0].set_ylabel("S(k): share still a member")
        axes[0].legend(fontsize=8, loc="upper right")
        band = f" with {100 * self.level:.0f}% bands" if self.has_intervals else ""
        fig.suptitle(f"Retention of a cohort joining at the steady state{band}")
        return fig

    def _figure_changes(self):
        from matplotlib.figure import Figure

        fig = Figure(figsize=(13, 6.5))
        axes = fig.subplots(2, 3).ravel()
        names = list(self.changes.index)
        colors = self._colors()
        y = np.arange(len(names))[::-1]
        for ax, col in zip(axes, FIGURES, strict=True):
            scale = 1.0 if col in _MONEY else 100.0
            x = self.changes[col].to_numpy(dtype=float) * scale
            for i, s in enumerate(names):
                err = None
                if f"{col}_lower" in self.changes.columns:
                    lo = float(self.changes.loc[s, f"{col}_lower"]) * scale
                    hi = float(self.changes.loc[s, f"{col}_upper"]) * scale
                    if np.isfinite(lo) and np.isfinite(hi):
                        err = [[max(x[i] - lo, 0.0)], [max(hi - x[i], 0.0)]]
                if np.isfinite(x[i]):
                    ax.errorbar(x[i], y[i], xerr=err, fmt="o", color=colors[s], capsize=4)
            ax.axvline(0.0, color="grey", lw=0.8)
            ax.set_yticks(y)
            ax.set_yticklabels(names, fontsize=8)
            unit = "$" if col in _MONEY else "percentage points"
            ax.set_title(f"{LABELS[col]} ({'level, ' if col == 'cv_per_customer' else ''}"
                         f"{unit})", fontsize=10)
            ax.grid(alpha=0.3, axis="x")
        band = f" ({100 * self.level:.0f}% intervals)" if self.has_intervals else ""
        fig.suptitle(f"Changes relative to the baseline{band}")
        fig.tight_layout()
        return fig

    def _figure_welfare(self):
        from matplotlib.figure import Figure

        fig = Figure(figsize=(8, 0.9 + 0.9 * max(len(self.changes), 1)))
        ax = fig.subplots()
        names = list(self.changes.index)
        markets = list(dict.fromkeys(m for _, m in self.by_market.index))
        groups = ["all markets", *[f"market {m}" for m in markets]]
        width = 0.8 / len(groups)
        from matplotlib import colormaps

        cmap = colormaps["tab10"]
        for g, label in enumerate(groups):
            xs, lows, highs = [], [], []
            for s in names:
                frame, key = ((self.summary, s) if g == 0 else
                              (self.by_market, (s, markets[g - 1])))
                xs.append(float(frame.loc[key, "cv_per_customer"]))
                if "cv_per_customer_lower" in frame.columns:
                    lows.append(float(frame.loc[key, "cv_per_customer_lower"]))
                    highs.append(float(frame.loc[key, "cv_per_customer_upper"]))
            ypos = np.arange(len(names))[::-1] + 0.4 - (g + 0.5) * width
            err = None
            if lows:
                x = np.array(xs)
                err = np.vstack([np.clip(x - np.array(lows), 0, None),
                                 np.clip(np.array(highs) - x, 0, None)])
            ax.errorbar(xs, ypos, xerr=err, fmt="o" if g == 0 else "s", capsize=3,
                        color="black" if g == 0 else cmap(g - 1), label=label,
                        ms=6 if g == 0 else 4)
        ax.axvline(0.0, color="grey", lw=0.8)
        ax.set_yticks(np.arange(len(names))[::-1])
        ax.set_yticklabels(names)
        ax.set_xlabel("CV per customer, $ (present value; positive = gain)")
        ax.grid(alpha=0.3, axis="x")
        ax.legend(fontsize=8, loc="best")
        band = f" ({100 * self.level:.0f}% intervals)" if self.has_intervals else ""
        ax.set_title(f"Welfare by market{band}")
        fig.tight_layout()
        return fig

    # ---------------------------------------------------------------- saving
    def write_files(self, folder: str | os.PathLike) -> list[str]:
        """Write the report's files into an existing folder (not atomic; see :meth:`save`).

        Parameters
        ----------
        folder : str or os.PathLike
            An existing folder.

        Returns
        -------
        list of str
            The file names written.
        """
        folder = Path(folder)
        pngs = self.figure_pngs()
        written = []
        for name, data in pngs.items():
            (folder / name).write_bytes(data)
            written.append(name)
        (folder / "report.md").write_text(self.to_markdown(image_dir="."), encoding="utf-8")
        (folder / "report.html").write_text(self.to_html(pngs), encoding="utf-8")
        written += ["report.md", "report.html"]
        tables = {"summary.csv": self.summary, "changes.csv": self.changes,
                  "by_market.csv": self.by_market, "retention.csv": self.retention,
                  "params.csv": self._params_frame()}
        if self.draws is not None:
            tables["draws.csv"] = self.draws
            tables["param_draws.csv"] = self.param_draws
        for name, frame in tables.items():
            frame.to_csv(folder / name, float_format="%.10g")
            written.append(name)
        return written

    def _params_frame(self) -> pd.DataFrame:
        frame = self.params.rename("value").to_frame()
        frame.index.name = "parameter"
        if self.std_errors is not None:
            frame["std_error"] = self.std_errors.reindex(frame.index)
        return frame

    def save(self, path: str | os.PathLike) -> Path:
        """Save the report into a folder, completely or not at all.

        Writes ``report.md``, ``report.html`` (self-contained), the figures ``retention.png``,
        ``changes.png``, ``welfare_by_market.png``, the tables ``summary.csv``,
        ``changes.csv``, ``by_market.csv``, ``retention.csv``, ``params.csv`` (and, with
        intervals, the draws: ``draws.csv``, ``param_draws.csv``) and a ``MANIFEST.json``, through
        :func:`atomic_directory`: ``path`` must not exist, be empty, or be a folder written by
        an earlier save (which is replaced).

        Parameters
        ----------
        path : str or os.PathLike
            The folder.

        Returns
        -------
        pathlib.Path
            The folder.

        Raises
        ------
        FileExistsError
            If ``path`` holds other files.
        """
        with atomic_directory(path) as tmp:
            self.write_files(tmp)
        return Path(os.path.abspath(path))
