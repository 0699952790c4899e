"""One table renderer: text, HTML, LaTeX, Markdown and CSV from one :class:`Table`.

Every table of the package is a :class:`Table` of formatted cells -- the estimation summary,
:func:`~estimators.compare`, the cross-validation tables and the counterfactual report's tables --
rendered by the same methods, one name per format:

==================  =================================================================
method              output
==================  =================================================================
``as_text()``       plain text, aligned columns, rules between sections (also ``str``)
``as_html()``       an HTML ``<table>`` with caption (also ``_repr_html_``)
``as_latex()``      a booktabs ``tabular`` (in a ``table`` float with caption by default)
``as_markdown()``   a pipe table; HTML and Markdown's special characters escaped
``as_csv()``        CSV text; ``to_csv(path)`` writes it atomically (:mod:`ddc.io`)
==================  =================================================================

Cells are plain text, escaped for every format (a scenario called ``<script>`` stays text).
"""

from __future__ import annotations

import csv
import html
import io
import math
import os
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ddc.io import write_text

__all__ = [
    "Table",
    "TableView",
    "format_number",
    "format_pvalue",
    "format_seconds",
    "latex_escape",
    "markdown_escape",
]


# ------------------------------------------------------------------------------------ numbers


def format_number(x: float, digits: int = 4) -> str:
    """Format a number for a results table.

    Fixed point with ``digits`` decimals for magnitudes in :math:`[10^{-digits}, 10^6)` (and for
    zero), scientific notation with ``digits`` decimals otherwise.

    Parameters
    ----------
    x : float
        The number; NaN is shown as ``"nan"`` and infinities as ``"inf"``/``"-inf"``.
    digits : int, default 4
        Decimals shown.

    Returns
    -------
    str
        The formatted number.
    """
    x = float(x)
    if not math.isfinite(x):
        return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    ax = abs(x)
    if ax == 0 or 10.0 ** (-digits) <= ax < 1e6:
        return f"{x:.{digits}f}"
    return f"{x:.{digits}e}"


def format_pvalue(p: float) -> str:
    """A p-value with three decimals (``"nan"`` if undefined)."""
    return "nan" if not math.isfinite(p) else f"{p:.3f}"


def format_seconds(s: float) -> str:
    """A duration in seconds, minutes or hours."""
    if s < 60:
        return f"{s:.2f} s"
    if s < 3600:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.2f} h"


# ------------------------------------------------------------------------------------ escaping

_LATEX_ESCAPES = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "<": r"\textless{}", ">": r"\textgreater{}",
}

_MARKDOWN_ESCAPES = {
    "\\": "\\\\", "|": "\\|", "*": "\\*", "`": "\\`",
    "&": "&amp;", "<": "&lt;", ">": "&gt;",
}


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters in ``text``.

    Parameters
    ----------
    text : str
        Plain text (a parameter name, a note).

    Returns
    -------
    str
        The text with ``\\ & % $ # _ { } ~ ^ < >`` escaped.
    """
    return "".join(_LATEX_ESCAPES.get(ch, ch) for ch in str(text))


def markdown_escape(text: str) -> str:
    """Escape ``text`` for a Markdown table cell: HTML (``< > &`` as entities, so that no tag
    survives) and Markdown's table, emphasis and code characters (``| * ` \\``).

    Parameters
    ----------
    text : str
        Plain text.

    Returns
    -------
    str
    """
    return "".join(_MARKDOWN_ESCAPES.get(ch, ch) for ch in str(text))


def _latex_cell(text: str) -> str:
    """A cell for LaTeX: escaped, significance stars as a superscript."""
    base = text.rstrip("*")
    stars = text[len(base):]
    return latex_escape(base) + (f"$^{{{stars}}}$" if stars and base else latex_escape(stars))


# ------------------------------------------------------------------------------------ the table


@dataclass
class Table:
    """A table of formatted cells, rendered to text, HTML, LaTeX, Markdown or CSV.

    Parameters
    ----------
    columns : sequence of str
        Column labels, the first one over the row labels (often ``""``).
    rows : sequence of sequence of str
        The cells, one list per row, each as long as ``columns``.
    title : str, optional
        Shown above the table (the caption in HTML and LaTeX, a bold line in Markdown).
    align : str, optional
        ``"l"`` or ``"r"`` per column; by default the first column left and the others right.
    breaks : sequence of int, optional
        Rows that start a new section (a rule is drawn above them).
    info : sequence of (str, str), optional
        Label-value pairs shown with the table (above it in text, HTML and Markdown; below the
        rows in LaTeX), e.g. the header of an estimation summary, in two columns.
    info_split : int, optional
        The first pair of the right column (by default half of them are on the left).
    notes : sequence of str, optional
        Notes under the table.
    numbered_notes : bool, default False
        Number the notes ``[1]``, ``[2]``, ...
    css_class : str, optional
        The HTML ``class`` of the table.
    min_width : int, default 0
        The least width of the text rendering (rules and title).

    Examples
    --------
    >>> t = Table(["", "estimate"], [["RC", "9.7573"], ["theta", "2.6274"]], title="NFXP")
    >>> print(t.as_markdown())
    **NFXP**
    <BLANKLINE>
    | | estimate |
    |:---|---:|
    | RC | 9.7573 |
    | theta | 2.6274 |
    <BLANKLINE>
    """

    columns: Sequence[str]
    rows: Sequence[Sequence[str]]
    title: str = ""
    align: str = ""
    breaks: Sequence[int] = ()
    info: Sequence[tuple[str, str]] = ()
    info_split: int | None = None
    notes: Sequence[str] = ()
    numbered_notes: bool = False
    css_class: str | None = None
    min_width: int = 0
    _align: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.columns = [str(c) for c in self.columns]
        n = len(self.columns)
        self.rows = [[str(c) for c in row] for row in self.rows]
        for i, row in enumerate(self.rows):
            if len(row) != n:
                raise ValueError(f"row {i} of the table has {len(row)} cells, but there are "
                                 f"{n} columns {self.columns}")
        align = self.align or ("l" + "r" * (n - 1))
        if len(align) != n or set(align) - {"l", "r"}:
            raise ValueError(f"align must give 'l' or 'r' for each of the {n} columns, got "
                             f"{self.align!r}")
        self._align = align
        self.breaks = sorted(set(int(b) for b in self.breaks))
        self.info = [(str(a), str(b)) for a, b in self.info]
        self.notes = [str(x) for x in self.notes]

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_frame(cls, frame: pd.DataFrame, *, index: bool = True,
                   formatter: Callable[[Any], str] | None = None, **kwargs: Any) -> Table:
        """A table of a DataFrame: the index levels (named in the header), then its columns.

        Parameters
        ----------
        frame : pandas.DataFrame
            The data.
        index : bool, default True
            Show the index.
        formatter : callable, optional
            Cell formatter; by default numbers with :func:`format_number`, booleans as
            ``yes``/``no``, missing values empty.
        **kwargs
            Other :class:`Table` arguments (``title``, ``notes``, ...).

        Returns
        -------
        Table
        """
        fmt = formatter or _default_cell
        names = [n or "" for n in frame.index.names] if index else []
        columns = names + [str(c) for c in frame.columns]
        rows = []
        for key, row in zip(frame.index, frame.itertuples(index=False), strict=True):
            keys = (key if isinstance(key, tuple) else (key,)) if index else ()
            rows.append([*(str(k) for k in keys), *(fmt(v) for v in row)])
        kwargs.setdefault("align", "l" * len(names) + "r" * len(frame.columns))
        return cls(columns, rows, **kwargs)

    # ------------------------------------------------------------------ text
    def as_text(self) -> str:
        """The table as plain text, columns aligned.

        Returns
        -------
        str
        """
        n = len(self.columns)
        cells = [self.columns, *self.rows]
        widths = [max(len(r[j]) for r in cells) for j in range(n)]
        widths[0] = max(widths[0], 8) + 2
        widths[1:] = [w + 3 for w in widths[1:]]
        width = max(sum(widths), self.min_width)
        if self.info:
            pair_w = max(len(a) + len(b) + 2 for a, b in self.info)
            width = max(width, 2 * pair_w + 4)

        def line(row: Sequence[str]) -> str:
            out = []
            for j, (c, w) in enumerate(zip(row, widths, strict=True)):
                out.append(c.ljust(w) if self._align[j] == "l" else c.rjust(w))
            return "".join(out).rstrip()

        lines = []
        if self.title:
            lines.append(self.title.center(width).rstrip())
        lines.append("=" * width)
        if self.info:
            left, right = self._halves()
            half = max(len(left), len(right))
            col = width // 2

            def pair(label: str, value: str, w: int) -> str:
                return label + " " * max(1, w - len(label) - len(value)) + value

            for i in range(half):
                a = pair(*left[i], col - 4) if i < len(left) else ""
                b = pair(*right[i], width - col) if i < len(right) else ""
                lines.append((a.ljust(col) + b).rstrip())
            lines.append("=" * width)
        lines.append(line(self.columns))
        lines.append("-" * width)
        for i, row in enumerate(self.rows):
            if i in self.breaks and i > 0:
                lines.append("-" * width)
            lines.append(line(row))
        lines.append("=" * width)
        if self.notes:
            if self.numbered_notes:
                lines.append("Notes:")
            lines.extend(textwrap.fill(note, width, subsequent_indent="    "
                                       if self.numbered_notes else "", break_on_hyphens=False)
                         for note in self._notes())
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.as_text()

    def _halves(self) -> tuple[list, list]:
        split = (len(self.info) + 1) // 2 if self.info_split is None else self.info_split
        return list(self.info[:split]), list(self.info[split:])

    def _notes(self) -> list[str]:
        if self.numbered_notes:
            return [f"[{i}] {note}" for i, note in enumerate(self.notes, 1)]
        return list(self.notes)

    # ------------------------------------------------------------------ HTML
    def as_html(self) -> str:
        """The table as HTML (every cell escaped).

        Returns
        -------
        str
            A ``<table>`` (preceded by one of the ``info`` pairs, if any) and the notes.
        """
        esc = html.escape
        cls = f' class="{esc(self.css_class)}"' if self.css_class else ""
        caption = f"<caption>{esc(self.title)}</caption>" if self.title else ""
        out = []
        if self.info:
            out += [f"<table{cls}>", caption] if caption else [f"<table{cls}>"]
            left, right = self._halves()
            for i in range(max(len(left), len(right))):
                cells = [f"<th>{esc(left[i][0])}</th><td>{esc(left[i][1])}</td>"
                         if i < len(left) else "<th></th><td></td>"]
                cells.append(f"<th>{esc(right[i][0])}</th><td>{esc(right[i][1])}</td>"
                             if i < len(right) else "<th></th><td></td>")
                out.append("<tr>" + "".join(cells) + "</tr>")
            out.append("</table>")
            caption = ""
        out.append(f"<table{cls}>")
        if caption:
            out.append(caption)

        def cell(tag: str, text: str, j: int) -> str:
            style = ' style="text-align:left"' if j > 0 and self._align[j] == "l" else ""
            return f"<{tag}{style}>{esc(text)}</{tag}>"

        out.append("<tr>" + "".join(cell("th", c, j) for j, c in enumerate(self.columns))
                   + "</tr>")
        for i, row in enumerate(self.rows):
            rule = ' style="border-top: 1px solid"' if i in self.breaks and i > 0 else ""
            out.append(f"<tr{rule}>" + "".join(cell("th" if j == 0 else "td", c, j)
                                               for j, c in enumerate(row)) + "</tr>")
        out.append("</table>")
        if self.notes:
            if self.numbered_notes:
                out.append("<p>Notes:</p><ol>" + "".join(f"<li>{esc(x)}</li>"
                                                          for x in self.notes) + "</ol>")
            else:
                out.append("".join(f"<p>{esc(x)}</p>" for x in self.notes))
        return "\n".join(out)

    def _repr_html_(self) -> str:
        return self.as_html()

    # ------------------------------------------------------------------ LaTeX
    def as_latex(self, float_env: bool = True) -> str:
        """The table as a booktabs ``tabular``.

        Parameters
        ----------
        float_env : bool, default True
            Wrap it in a ``table`` float with the title as caption and the notes below; else
            the bare ``tabular``.

        Returns
        -------
        str
            LaTeX source; needs ``\\usepackage{booktabs}``.
        """
        n = len(self.columns)
        lines = []
        if float_env:
            lines += [r"\begin{table}[htbp]", r"\centering"]
            if self.title:
                lines.append(rf"\caption{{{latex_escape(self.title)}}}")
        lines += [rf"\begin{{tabular}}{{{self._align}}}", r"\toprule",
                  " & ".join(latex_escape(c) for c in self.columns) + r" \\", r"\midrule"]
        for i, row in enumerate(self.rows):
            if i in self.breaks and i > 0:
                lines.append(r"\midrule")
            lines.append(" & ".join([latex_escape(row[0])] + [_latex_cell(c) for c in row[1:]])
                         + r" \\")
        if self.info:
            lines.append(r"\midrule")
            for label, value in self.info:
                label = label.rstrip(":")
                label = (r"\quad " + latex_escape(label.strip()) if label.startswith("  ")
                         else latex_escape(label))
                lines.append(rf"{label} & \multicolumn{{{n - 1}}}{{r}}{{{latex_escape(value)}}}"
                             r" \\")
        lines += [r"\bottomrule", r"\end{tabular}"]
        if float_env:
            if self.notes:
                lines += [r"\par\smallskip", r"{\footnotesize "
                          + " ".join(latex_escape(x) for x in self._notes()) + "}"]
            lines.append(r"\end{table}")
        return "\n".join(lines) + ("" if float_env else "\n")

    # ------------------------------------------------------------------ Markdown
    def as_markdown(self) -> str:
        """The table as a Markdown pipe table (title in bold above, notes below).

        Every cell is escaped (:func:`markdown_escape`): no HTML tag or Markdown markup in a
        name survives into the document.

        Returns
        -------
        str
        """
        def line(row: Sequence[str]) -> str:
            return "|" + "|".join(f" {markdown_escape(c)} " if c else " " for c in row) + "|"

        out = []
        if self.title:
            out += [f"**{markdown_escape(self.title)}**", ""]
        if self.info:
            out += [f"- {markdown_escape(a.strip().rstrip(':'))}: {markdown_escape(b)}"
                    for a, b in self.info] + [""]
        out.append(line(self.columns))
        out.append("|" + "|".join(":---" if a == "l" else "---:" for a in self._align) + "|")
        out += [line(row) for row in self.rows]
        if self.notes:
            out.append("")
            out += [markdown_escape(x) + "  " for x in self._notes()]
        return "\n".join(out).rstrip() + "\n"

    # ------------------------------------------------------------------ CSV
    def as_csv(self) -> str:
        """The table as CSV text: the header, then the rows (cells as displayed).

        Returns
        -------
        str
        """
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(self.columns)
        w.writerows(self.rows)
        return buf.getvalue()

    def to_csv(self, path: str | os.PathLike) -> Path:
        """Write :meth:`as_csv` to a file, completely or not at all.

        Parameters
        ----------
        path : str or os.PathLike
            The file; its folder must exist.

        Returns
        -------
        pathlib.Path
        """
        return write_text(path, self.as_csv())


def _default_cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return "" if math.isnan(v) else format_number(v)
    return str(v)


class TableView:
    """Renderings of an object that builds one :class:`Table` (:meth:`as_table`): text, HTML,
    LaTeX, Markdown and CSV, written once for every summary and comparison."""

    def as_table(self) -> Table:  # pragma: no cover - supplied by the subclass
        raise NotImplementedError

    def as_text(self) -> str:
        """The table as plain text.

        Returns
        -------
        str
        """
        return self.as_table().as_text()

    def __str__(self) -> str:
        return self.as_text()

    def __repr__(self) -> str:
        return self.as_text()

    def as_html(self) -> str:
        """The table as HTML (for notebooks): the header, the rows and the notes.

        Returns
        -------
        str
        """
        return self.as_table().as_html()

    def _repr_html_(self) -> str:
        return self.as_html()

    def as_latex(self) -> str:
        """The table as a LaTeX ``table`` with a booktabs ``tabular``.

        Returns
        -------
        str
            LaTeX source; needs ``\\usepackage{booktabs}``.
        """
        return self.as_table().as_latex()

    def as_markdown(self) -> str:
        """The table as Markdown: the header as a list, the rows as a pipe table, the notes below.

        Returns
        -------
        str
        """
        return self.as_table().as_markdown()

    def to_csv(self, path: str | os.PathLike) -> Path:
        """Write the table as displayed to a CSV file, completely or not at all.

        Parameters
        ----------
        path : str or os.PathLike
            The file; its folder must exist.

        Returns
        -------
        pathlib.Path
        """
        return self.as_table().to_csv(path)
