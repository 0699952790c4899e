"""The counterfactual report's generic figures, for any model.

- :func:`changes_figure`: each scenario's change in every summary figure (the CV and the
  declared outcomes) relative to the baseline, with intervals;
- :func:`welfare_figure`: the CV overall and by block of the permanent state variables.

Applications add their own figures through :attr:`ddc.Hooks.figures` (e.g. the membership
model's retention curves, :mod:`ddc.models.membership.figures`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["changes_figure", "welfare_figure"]


def _scale(unit: str) -> tuple[float, str]:
    if unit == "share":
        return 100.0, "percentage points"
    if unit == "USD":
        return 1.0, "$"
    return 1.0, unit or "level"


def changes_figure(report: Any):
    """Changes relative to the baseline, one panel per summary figure, with intervals.

    Parameters
    ----------
    report : simulations.CounterfactualReport

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure

    cols = report.figure_names
    units, labels = report.units(), report.labels()
    ncol = min(3, len(cols))
    nrow = int(np.ceil(len(cols) / ncol))
    fig = Figure(figsize=(4.4 * ncol, 0.6 + 2.6 * nrow + 0.15 * len(report.changes)))
    axes = np.atleast_1d(fig.subplots(nrow, ncol, squeeze=False).ravel())
    names = list(report.changes.index)
    colors = report.colors()
    y = np.arange(len(names))[::-1]
    for ax, col in zip(axes, cols, strict=False):
        scale, unit = _scale(units[col])
        x = report.changes[col].to_numpy(dtype=float) * scale
        for i, s in enumerate(names):
            err = None
            if f"{col}_lower" in report.changes.columns:
                lo = float(report.changes.loc[s, f"{col}_lower"]) * scale
                hi = float(report.changes.loc[s, f"{col}_upper"]) * scale
                if np.isfinite(lo) and np.isfinite(hi):
                    err = [[max(x[i] - lo, 0.0)], [max(hi - x[i], 0.0)]]
            if np.isfinite(x[i]):
                ax.errorbar(x[i], y[i], xerr=err, fmt="o", color=colors[s], capsize=4)
        ax.axvline(0.0, color="grey", lw=0.8)
        ax.set_yticks(y)
        ax.set_yticklabels(names, fontsize=8)
        level = "level, " if col == report.cv_column else ""
        ax.set_title(f"{labels[col]} ({level}{unit})", fontsize=10)
        ax.grid(alpha=0.3, axis="x")
    for ax in axes[len(cols):]:
        ax.set_visible(False)
    band = f" ({100 * report.level:.0f}% intervals)" if report.has_intervals else ""
    fig.suptitle(f"Changes relative to the baseline{band}")
    fig.tight_layout()
    return fig


def welfare_figure(report: Any):
    """The CV per unit overall and within each block of the permanent state variables.

    Parameters
    ----------
    report : simulations.CounterfactualReport
        A report whose model has permanent state variables (``report.by_block``).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    col = report.cv_column
    fig = Figure(figsize=(8, 0.9 + 0.9 * max(len(report.changes), 1)))
    ax = fig.subplots()
    names = list(report.changes.index)
    var = ", ".join(report.block_names)
    keys = list(dict.fromkeys(tuple(k) if len(k) > 1 else k[0]
                              for _, *k in report.by_block.index))
    groups = ["overall", *[f"{var} {k}" for k in keys]]
    width = 0.8 / len(groups)
    cmap = colormaps["tab10"]
    for g, label in enumerate(groups):
        xs, lows, highs = [], [], []
        for s in names:
            frame, key = ((report.summary, s) if g == 0 else
                          (report.by_block, (s, *np.atleast_1d(keys[g - 1]))))
            xs.append(float(frame.loc[key, col]))
            if f"{col}_lower" in frame.columns:
                lows.append(float(frame.loc[key, f"{col}_lower"]))
                highs.append(float(frame.loc[key, f"{col}_upper"]))
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
    unit = report.units()[col]
    ax.set_xlabel(f"CV per {report.unit}, {'$' if unit == 'USD' else unit} (present value; "
                  "positive = gain)")
    ax.grid(alpha=0.3, axis="x")
    ax.legend(fontsize=8, loc="best")
    band = f" ({100 * report.level:.0f}% intervals)" if report.has_intervals else ""
    ax.set_title(f"Welfare by {var}{band}")
    fig.tight_layout()
    return fig
