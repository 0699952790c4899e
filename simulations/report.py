"""The counterfactual report: tables, figures, Markdown and HTML, saved completely or not at all.

:class:`CounterfactualReport` is what :func:`simulations.counterfactual` returns, for any model:
welfare, choice and state shares, the model's declared outcomes and curves, by block of the
permanent state variables, with intervals. Its tables are pandas DataFrames;
:meth:`~CounterfactualReport.to_markdown` and :meth:`~CounterfactualReport.to_html` render one
document (the same blocks in both formats);
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
from typing import Any

import numpy as np
import pandas as pd

from ddc.io import MANIFEST, atomic_directory
from estimators.tables import Table
from simulations.figures import changes_figure, welfare_figure

__all__ = [
    "CounterfactualReport",
    "atomic_directory",
    "MANIFEST",
]


CURVE_STEPS = (1, 3, 6, 12, 24, 36)
"""Steps of declared curves shown in the report's tables (those within the horizon)."""


# ------------------------------------------------------------------------------ formatting


def _number(unit: str, x: float, change: bool = False, signed: bool = False,
            bare: bool = False) -> str:
    """A figure for display by its unit: ``"share"`` in percent (percentage points for
    changes), ``"USD"`` in dollars, another currency with its code, ``"utils"`` and the rest as
    plain numbers. ``bare``: the number only (interval ends)."""
    if not np.isfinite(x):
        return "n/a"
    sign = "-" if x < 0 else ("+" if (signed or change) and x > 0 else "")
    if unit == "share":
        if bare:
            return f"{100 * x:+.2f}" if change else f"{100 * x:.1f}"
        return f"{100 * x:+.2f} pp" if change else f"{100 * x:.1f}%"
    if unit == "USD":
        return f"{x:,.2f}" if bare else f"{sign}${abs(x):,.2f}"
    if unit in ("utils", ""):
        text = f"{x:.4g}" if not (signed or change) else f"{x:+.4g}"
        return text if bare or unit == "" else f"{text} utils"
    return f"{x:,.2f}" if bare else f"{sign}{abs(x):,.2f} {unit}"


# ------------------------------------------------------------------------------ documents

# A document is a list of blocks, rendered to Markdown or HTML:
# ("h1"|"h2"|"h3"|"p", text), ("list", [text, ...]), ("table", caption, header, rows),
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
        elif kind == "h3":
            lines += [f"### {_md_inline(block[1])}", ""]
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
        if kind in ("h1", "h2", "h3"):
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
    """Welfare, shares and declared outcomes of a model under counterfactual scenarios.

    Built by :func:`simulations.counterfactual`. The tables hold numbers (shares as fractions,
    money in its unit); the renderings format them. Every table with intervals has, after each
    figure ``x``, the columns ``x_lower`` and ``x_upper``.

    Attributes
    ----------
    summary : pandas.DataFrame
        One row per scenario (index ``scenario``, ``"baseline"`` first); columns
        ``cv_per_<unit>`` (the compensating variation per unit: in money when the model names
        its money parameter, else in utils) and the model's declared outcomes.
    welfare : pandas.DataFrame
        ``cv_utils`` and (with a money parameter) ``cv_money`` by scenario.
    changes : pandas.DataFrame
        The scenarios' figures minus the baseline's (the CV is already a change), with
        intervals from the paired draws.
    by_block : pandas.DataFrame or None
        The summary's figures within each block of the permanent state variables (index
        ``(scenario, <permanent variable>...)``; the outcomes under the block's own stationary
        distribution, the CV under the baseline's); ``None`` without permanent variables. Also
        available as ``by_<variable>`` (e.g. ``report.by_market``).
    choice_shares : pandas.DataFrame
        :math:`\\sum_s \\mu(s) \\pi(a \\mid s)` by scenario (rows) and action (columns).
    state_shares : pandas.DataFrame
        Share of each value of each state variable under each scenario's stationary
        distribution; index ``(scenario, variable, value)``, column ``share``.
    curves : dict of str to pandas.DataFrame
        The declared curves; index ``(scenario, <group name>, <step name>)``, column the
        curve's name. Also available as attributes (e.g. ``report.retention``).
    draws : pandas.DataFrame or None
        The bootstrap draws of every summary figure (columns ``(scenario, figure)``); ``None``
        without intervals.
    param_draws : pandas.DataFrame or None
        The parameter draws behind them (one row per draw used, one column per parameter).
    scenarios : dict
        Scenario name to :class:`~ddc.scenarios.Scenario` (``None`` for the baseline).
    params : pandas.Series
        The parameters at which the figures are computed.
    std_errors : pandas.Series or None
        Their standard errors (from the covariance used for the draws).
    source : str
        Where the parameters come from (e.g. ``"NFXP estimate (720,000 observations)"``).
    model : ddc.Model
        The baseline model.
    n_draws : int
        Bootstrap draws requested (0: no intervals).
    n_used : int
        Draws that solved and enter the intervals.
    seed : int or None
        Seed of the draws.
    level : float
        Coverage of the intervals.
    horizon : int
        Last step of the curves.
    money : ddc.Money or None
        The parameter that turned utils into money.
    block_names : tuple of str
        The permanent state variables.
    block_weights : numpy.ndarray
        Mass of each block in the stationary distributions.
    identification_note : str
        What the scenarios' identification rests on.
    notes : list of str
        Other notes (failed draws, unavailable covariance, ...).
    seconds : float
        Time to compute the report.
    sections : list
        Sections added by :meth:`add_section` (e.g. the data and the estimates, by
        ``ddc demo``): ``(title, blocks, figures, where)``.
    block_draws : dict or None
        The bootstrap draws of the by-block figures: scenario -> figure -> array (blocks,
        draws used), the draws in the order of :attr:`draws`' rows; ``None`` without intervals
        or blocks. (Pooling over the types of a mixture reads them.)
    curve_draws : dict or None
        The bootstrap draws of the curves: name -> array (scenarios, steps, groups, draws
        used); ``None`` without intervals.
    """

    summary: pd.DataFrame
    welfare: pd.DataFrame
    changes: pd.DataFrame
    by_block: pd.DataFrame | None
    choice_shares: pd.DataFrame
    state_shares: pd.DataFrame
    curves: dict
    draws: pd.DataFrame | None
    param_draws: pd.DataFrame | None
    scenarios: dict
    params: pd.Series
    std_errors: pd.Series | None
    source: str
    model: Any
    n_draws: int
    n_used: int
    seed: int | None
    level: float
    horizon: int
    money: Any
    block_names: tuple
    block_weights: np.ndarray
    identification_note: str
    notes: list = field(default_factory=list)
    seconds: float = 0.0
    sections: list = field(default_factory=list)
    block_draws: dict | None = field(default=None, repr=False)
    curve_draws: dict | None = field(default=None, repr=False)

    # ---------------------------------------------------------------- basics
    def add_section(self, title: str, blocks: list, figures: dict | None = None,
                    where: str = "start") -> None:
        """Add a section to the document.

        Parameters
        ----------
        title : str
            The section's heading.
        blocks : list
            Its content, as the document's blocks: ``("p", text)``, ``("list", [text, ...])``,
            ``("table", caption, header, rows)`` (optionally a fifth element, the alignment
            ``"l"``/``"r"`` per column), ``("h3", text)`` or ``("img", alt, file name)``, with
            ``**bold**`` and ```code``` markup in texts.
        figures : dict of str to matplotlib.figure.Figure, optional
            Figures the section shows by file name (saved with the report's own).
        where : {"start", "end"}
            After the introduction, before the scenarios (``"start"``), or after the results,
            before the notes on reading them (``"end"``).

        Raises
        ------
        ValueError
            A block of an unknown kind, or a figure name the report already uses.
        """
        if where not in ("start", "end"):
            raise ValueError(f"where must be 'start' or 'end'; got {where!r}")
        kinds = {"p", "list", "table", "h3", "img"}
        bad = [b[0] for b in blocks if not isinstance(b, tuple) or b[0] not in kinds]
        if bad:
            raise ValueError(f"section {title!r}: blocks of unknown kind {bad}; accepted "
                             f"{sorted(kinds)}")
        figures = dict(figures or {})
        taken = {n for sec in self.sections for n in sec[2]} | set(self._figure_files())
        clash = sorted(set(figures) & taken)
        if clash:
            raise ValueError(f"section {title!r}: figure name(s) {clash} already used")
        self.sections.append((title, list(blocks), figures, where))

    def _section_blocks(self, where: str) -> list:
        out: list = []
        for title, content, _, at in self.sections:
            if at == where:
                out += [("h2", title), *content]
        return out

    def __getattr__(self, name: str):
        # by_<permanent variable> and the declared curves by name (only called for attributes
        # that do not exist otherwise)
        if name.startswith("__") or name in ("curves", "block_names", "by_block"):
            raise AttributeError(name)
        if self.block_names and name == "by_" + "_".join(self.block_names):
            return self.by_block
        if name in self.curves:
            return self.curves[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def model_name(self) -> str:
        """The model's name."""
        return self.model.name

    @property
    def beta(self) -> float:
        """Its discount factor."""
        return self.model.beta

    @property
    def unit(self) -> str:
        """What one decision maker is called (:attr:`ddc.Hooks.unit`)."""
        return self.model.hooks.unit

    @property
    def cv_column(self) -> str:
        """Name of the welfare column of :attr:`summary` (``cv_per_<unit>``)."""
        return f"cv_per_{self.unit}"

    @property
    def figure_names(self) -> list[str]:
        """The summary's figures, in column order (without interval columns)."""
        return [self.cv_column, *[o.name for o in self.model.hooks.outcomes]]

    @property
    def has_intervals(self) -> bool:
        """Whether the figures carry intervals."""
        return f"{self.cv_column}_lower" in self.summary.columns

    def units(self) -> dict[str, str]:
        """The unit of each summary figure (``"share"``, a currency, ``"utils"``, ...)."""
        out = {self.cv_column: self.money.unit if self.money is not None else "utils"}
        for o in self.model.hooks.outcomes:
            out[o.name] = o.unit
        return out

    def labels(self) -> dict[str, str]:
        """Human-readable names of the summary figures."""
        out = {self.cv_column: f"CV per {self.unit}"}
        for o in self.model.hooks.outcomes:
            out[o.name] = o.label
        return out

    def colors(self) -> dict:
        """A color per scenario for figures (the baseline black)."""
        from matplotlib import colormaps

        cmap = colormaps["tab10"]
        return {s: ("black" if s == "baseline" else cmap(i % 10))
                for i, s in enumerate(self.summary.index)}

    def __repr__(self) -> str:
        return (f"CounterfactualReport({self.model_name!r}, scenarios="
                f"{list(self.summary.index)}, draws={self.n_used})")

    def __str__(self) -> str:
        return self.as_text()

    def _repr_html_(self) -> str:
        return _render_html(self._blocks(tables_only=True), None)

    def _cell(self, frame: pd.DataFrame, key, col: str, unit: str,
              change: bool = False) -> str:
        signed = col.startswith("cv")
        text = _number(unit, float(frame.loc[key, col]), change, signed)
        lo, hi = f"{col}_lower", f"{col}_upper"
        if lo in frame.columns and np.isfinite(frame.loc[key, lo]):
            text += (f" [{_number(unit, float(frame.loc[key, lo]), change, bare=True)}, "
                     f"{_number(unit, float(frame.loc[key, hi]), change, bare=True)}]")
        return text

    def as_text(self) -> str:
        """A plain-text table of the summary (the figures with their intervals).

        Returns
        -------
        str
        """
        units, labels = self.units(), self.labels()
        cols = self.figure_names
        header = ["scenario", *[labels[c] for c in cols]]
        rows = [[str(s), *[self._cell(self.summary, s, c, units[c]) for c in cols]]
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

    def _figure_files(self) -> list[str]:
        names = ["changes.png"]
        if self.by_block is not None:
            names.append(f"welfare_by_{'_'.join(self.block_names)}.png")
        return names

    def _blocks(self, tables_only: bool = False) -> list:
        units, labels = self.units(), self.labels()
        cols = self.figure_names
        hooks = self.model.hooks
        blocks: list = [("h1", f"Counterfactual policies: the {self.model_name} model")]
        if not tables_only:
            money = (f"; welfare in {self.money.unit} through {self.money.param}"
                     if self.money is not None else "; welfare in utils (the model names no "
                     "money parameter)")
            blocks.append(("p", f"Model `{self.model_name}` (discount factor "
                                f"beta = {self.beta:g}{money}); parameters: {self.source}. "
                                f"{self._interval_text()} Computed in {self.seconds:.1f} s."))
            if hooks.description:
                blocks.append(("p", hooks.description))
            blocks += self._section_blocks("start")
            blocks.append(("h2", "Scenarios"))
            rows = [["baseline", "the model as estimated", "-"]]
            for name, s in self.scenarios.items():
                if s is not None:
                    rows.append([name, s.describe(), s.identification])
            blocks.append(("table", "", ["scenario", "what changes", "identification"], rows,
                           "lll"))
        blocks.append(("h2", "Results"))
        blocks.append(("table", "Table 1. Figures by scenario",
                       ["scenario", *[labels[c] for c in cols]],
                       [[str(s), *[self._cell(self.summary, s, c, units[c]) for c in cols]]
                        for s in self.summary.index]))
        if len(self.changes):
            blocks.append(("table", "Table 2. Changes relative to the baseline",
                           ["scenario", *[labels[c] for c in cols]],
                           [[str(s), *[self._cell(self.changes, s, c, units[c], change=True)
                                       for c in cols]] for s in self.changes.index]))
        if not tables_only:
            blocks.append(("img", "Changes relative to the baseline", "changes.png"))
        wcols = list(self.welfare.columns[~self.welfare.columns.str.endswith(("_lower",
                                                                              "_upper"))])
        wunits = {"cv_utils": "utils",
                  "cv_money": self.money.unit if self.money is not None else ""}
        blocks.append(("table", f"Table 3. Welfare per {self.unit}: compensating variation",
                       ["scenario", *["in utils" if c == "cv_utils" else
                                      f"in {wunits[c]}" for c in wcols]],
                       [[str(s), *[self._cell(self.welfare, s, c, wunits[c]) for c in wcols]]
                        for s in self.welfare.index]))
        n = 4
        if self.by_block is not None:
            var = ", ".join(self.block_names)
            blocks.append(("h2", f"By {var}"))
            rows = [[str(s), ", ".join(str(x) for x in np.atleast_1d(k)),
                     *[self._cell(self.by_block, (s, *np.atleast_1d(k)), c, units[c])
                       for c in cols]]
                    for s, *k in self.by_block.index]
            blocks.append(("table", f"Table {n}. Figures by {var}",
                           ["scenario", var, *[labels[c] for c in cols]], rows,
                           "ll" + "r" * len(cols)))
            n += 1
            if not tables_only:
                blocks.append(("img", f"Welfare by {var}", self._figure_files()[1]))
        blocks.append(("h2", "Choices and states"))
        actions = list(self.model.actions)
        blocks.append(("table", f"Table {n}. Choice shares: share of {self.unit}-periods "
                                "choosing each action",
                       ["scenario", *actions],
                       [[str(s), *[self._cell(self.choice_shares, s, a, "share")
                                   for a in actions]] for s in self.choice_shares.index]))
        n += 1
        state_rows = []
        for (s, var, value) in self.state_shares.index:
            state_rows.append([str(s), var, value,
                               self._cell(self.state_shares, (s, var, value), "share",
                                          "share")])
        blocks.append(("table", f"Table {n}. State distribution: share of each value of each "
                                "state variable at the steady state",
                       ["scenario", "variable", "value", "share"], state_rows, "lllr"))
        n += 1
        app_figures = self._application_figure_names() if not tables_only else []
        for c in hooks.curves:
            frame = self.curves[c.name]
            steps = [k for k in CURVE_STEPS if k <= self.horizon] or [self.horizon]
            rows = []
            for s in self.summary.index:
                for g in c.groups:
                    cells = [self._cell(frame, (s, g, k), c.name, "share") for k in steps]
                    if all(x == "n/a" for x in cells):
                        continue
                    rows.append([str(s), g, *cells])
            blocks.append(("h2", c.name.replace("_", " ").capitalize()))
            blocks.append(("table", f"Table {n}. {c.description or c.name}",
                           ["scenario", c.group_name, *[f"{c.step_name} = {k}" for k in steps]],
                           rows, "ll" + "r" * len(steps)))
            n += 1
            if f"{c.name}.png" in app_figures:
                blocks.append(("img", f"{c.name.replace('_', ' ').capitalize()} curves",
                               f"{c.name}.png"))
        if not tables_only:
            curve_files = {f"{c.name}.png" for c in hooks.curves}
            for name in app_figures:
                if name not in curve_files:
                    blocks.append(("img", name.rsplit(".", 1)[0].replace("_", " "), name))
            blocks += self._section_blocks("end")
            blocks.append(("h2", "How to read the figures"))
            items = [
                f"**CV per {self.unit}**: the compensating variation, sum_s mu_base(s) "
                "(Vbar_cf(s) - Vbar_base(s))"
                + (f" / {self.money.param}, in {self.money.unit}" if self.money is not None
                   else ", in utils")
                + f": the one-time payment (present value at the discount factor) that leaves "
                f"the average {self.unit} of the baseline steady state as well off as the "
                "scenario; positive is a gain. Vbar is the ex-ante value including Euler's "
                "constant.",
            ]
            for o in hooks.outcomes:
                items.append(f"**{labels[o.name]}**: {o.description or o.name}, under the "
                             "scenario's own steady state.")
            items.append("**Choice shares** and the **state distribution** are those of each "
                         "scenario's own stationary distribution.")
            if self.by_block is not None:
                items.append(f"The values of {', '.join(self.block_names)} never change, so "
                             "the steady state gives each of them a fixed mass (equal unless "
                             "weights were given); figures by "
                             f"{', '.join(self.block_names)} use its own steady state, the CV "
                             "the baseline's.")
            blocks.append(("list", items))
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

    def as_markdown(self, image_dir: str | None = None) -> str:
        """Same as :meth:`to_markdown`: ``as_text``, ``as_markdown``, ``as_html`` are the names
        of the formats on every table and report of the package."""
        return self.to_markdown(image_dir)

    def as_html(self, images: dict[str, bytes] | None = None) -> str:
        """Same as :meth:`to_html`."""
        return self.to_html(images)

    # ---------------------------------------------------------------- figures
    def _application_figure_names(self) -> list[str]:
        hook = self.model.hooks.figures
        if hook is None:
            return []
        cached = self.__dict__.get("_app_figure_names")
        if cached is None:
            cached = list(hook(self))
            self.__dict__["_app_figure_names"] = cached
        return cached

    def figures(self) -> dict:
        """The report's figures as matplotlib Figures, by file name.

        ``changes.png`` (each scenario's change in every summary figure relative to the
        baseline, with intervals), ``welfare_by_<permanent variable>.png`` (the CV overall and
        by block, when the model has permanent variables) and the application's own figures
        (:attr:`ddc.Hooks.figures`, e.g. the membership model's ``retention.png``).

        Returns
        -------
        dict of str to matplotlib.figure.Figure
        """
        out = {"changes.png": changes_figure(self)}
        if self.by_block is not None:
            out[self._figure_files()[1]] = welfare_figure(self)
        for section in self.sections:
            out.update(section[2])
        hook = self.model.hooks.figures
        if hook is not None:
            extra = dict(hook(self))
            clash = sorted(set(extra) & set(out))
            if clash:
                raise ValueError(f"the model's figures hook returns {clash}, which the report "
                                 "already draws; rename them")
            out.update(extra)
        return out

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

    # ---------------------------------------------------------------- saving
    def tables(self) -> dict[str, pd.DataFrame]:
        """The report's tables by CSV file name."""
        out = {"summary.csv": self.summary, "welfare.csv": self.welfare,
               "changes.csv": self.changes, "choice_shares.csv": self.choice_shares,
               "state_shares.csv": self.state_shares}
        if self.by_block is not None:
            out[f"by_{'_'.join(self.block_names)}.csv"] = self.by_block
        for name, frame in self.curves.items():
            out[f"{name}.csv"] = frame
        out["params.csv"] = self._params_frame()
        if self.draws is not None:
            out["draws.csv"] = self.draws
            out["param_draws.csv"] = self.param_draws
        return out

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
        for name, frame in self.tables().items():
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

        Writes ``report.md``, ``report.html`` (self-contained), the figures (:meth:`figures`),
        the tables (:meth:`tables`: ``summary.csv``, ``welfare.csv``, ``changes.csv``,
        ``choice_shares.csv``, ``state_shares.csv``, ``by_<block>.csv``, one CSV per curve,
        ``params.csv`` and, with intervals, ``draws.csv`` and ``param_draws.csv``) and a
        ``MANIFEST.json``, through :func:`atomic_directory`: ``path`` must not exist, be empty,
        or be a folder written by an earlier save (which is replaced).

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
