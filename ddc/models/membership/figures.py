"""The membership report's own figure: retention curves by plan joined, one line per scenario.

Declared as :attr:`ddc.Hooks.figures`; the counterfactual report adds it to its generic figures.
"""

from __future__ import annotations

from typing import Any

__all__ = ["report_figures"]

_TITLES = {"all": "All joiners", "monthly": "Joined on the monthly plan",
           "annual": "Joined on the annual plan"}


def report_figures(report: Any) -> dict:
    """``{"retention.png": figure}``: :math:`S(k)` of all joiners and by plan joined.

    Parameters
    ----------
    report : simulations.CounterfactualReport
        A counterfactual report on a membership model (its curve ``retention``, with bands when
        it carries intervals).

    Returns
    -------
    dict of str to matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure

    table = report.curves["retention"]
    cohorts = list(dict.fromkeys(table.index.get_level_values("joined")))
    fig = Figure(figsize=(4.4 * len(cohorts), 4.4), layout="constrained")
    axes = fig.subplots(1, len(cohorts), sharey=True, squeeze=False)[0]
    colors = report.colors()
    scen = table.index.get_level_values("scenario")
    joined_of = table.index.get_level_values("joined")
    for ax, joined in zip(axes, cohorts, strict=True):
        for s in report.summary.index:
            part = table[(scen == s) & (joined_of == joined)].droplevel(["scenario", "joined"])
            if part["retention"].isna().all():
                continue
            k = part.index.to_numpy()
            ax.plot(k, part["retention"], color=colors[s], lw=1.8 if s == "baseline" else 1.3,
                    label=s)
            if "retention_lower" in part.columns:
                ax.fill_between(k, part["retention_lower"], part["retention_upper"],
                                color=colors[s], alpha=0.3, lw=0)
        ax.set_title(_TITLES.get(joined, joined))
        ax.set_xlabel("months since joining, k")
        ax.set_xlim(0, report.horizon)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("S(k): share still a member")
    axes[0].legend(fontsize=8, loc="upper right")
    band = ""
    if report.has_intervals and "retention_lower" in table.columns:
        width = float((table["retention_upper"] - table["retention_lower"]).max(skipna=True))
        band = (f"\n{100 * report.level:.0f}% bands shaded, at most {100 * width:.1f} "
                "percentage points wide" + (" (within the width of the lines where not visible)"
                                            if width < 0.02 else ""))
    fig.suptitle(f"Retention of a cohort joining at the steady state{band}")
    return {"retention.png": fig}
