"""What a memo on the membership model says beyond the numbers: the parameters' meanings and
units, and the caveats of the default scenarios' figures.

``ddc demo`` writes them into its report (:func:`simulations.memo`); they describe the model of
docs/membership.rst.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PARAMETERS", "caveats"]

#: Meaning and unit of each utility parameter (flow utilities are per month, in utils; the
#: logit shocks have scale 1).
PARAMETERS: dict[str, tuple[str, str]] = {
    "theta_0": ("value of membership to a customer with the lowest engagement (ship 0, "
                "video 0)", "utils a month"),
    "theta_ship": ("extra value of membership per level of shipping engagement (0-2)",
                   "utils a month per level"),
    "theta_video": ("extra value of membership to a video user", "utils a month"),
    "theta_annual": ("bonus of buying the annual plan, in the month of purchase",
                     "utils, once"),
    "alpha_price": ("marginal utility of money: the utils one dollar of price costs",
                    "utils per USD"),
    "kappa_join": ("cost of joining from no plan (a switching cost)", "utils, once"),
}


def _figure(report: Any, scenario: str, col: str) -> float | None:
    s = report.summary
    if scenario not in s.index or col not in s.columns:
        return None
    return float(s.loc[scenario, col])


def caveats(report: Any) -> list[str]:
    """Where a figure of the default scenarios moves mechanically or means less than it seems.

    Parameters
    ----------
    report : simulations.report.CounterfactualReport
        A membership report (the default scenarios; a scenario it lacks is not discussed).

    Returns
    -------
    list of str
        One paragraph per caveat, quoting the report's own figures.
    """
    out = []
    base_ret = _figure(report, "baseline", "retention_12m")
    ret = _figure(report, "no_monthly", "retention_12m")
    if base_ret is not None and ret is not None:
        share0 = _figure(report, "baseline", "member_share")
        share1 = _figure(report, "no_monthly", "member_share")
        cv = _figure(report, "no_monthly", report.cv_column)
        direction = "raises" if ret > base_ret else "changes"
        out.append(
            f"**Retention without the monthly plan is mechanical.** Removing the monthly plan "
            f"{direction} 12-month retention ({100 * base_ret:.1f}% to {100 * ret:.1f}%) because "
            "every joiner is then on the annual plan, locked in for 12 months: S(k) = 1 up to "
            "month 11 by construction, and the annual share of members is 100% for the same "
            f"reason. Fewer customers join (member share {100 * share0:.1f}% to "
            f"{100 * share1:.1f}%) and customers lose {_usd(-cv)} each: the higher retention "
            "is a composition effect of the lock, not a sign that customers are better off. "
            "This scenario changes the choice set, so its figures also rest on the "
            "normalization u(none) = 0 (see Identification).")
    rev0 = _figure(report, "baseline", "revenue_per_customer_month")
    rev_up = _figure(report, "monthly_price_up", "revenue_per_customer_month")
    if rev0 is not None and rev_up is not None and rev_up < rev0:
        out.append(
            "**A higher monthly price lowers revenue here.** The annual plan is cheaper per "
            "month than the monthly one in every market, so members who switch to it and "
            f"customers who leave cost more than the higher price brings in (revenue per "
            f"customer-month {_usd(rev0, sign=False)} to {_usd(rev_up, sign=False)}).")
    if "video_benefit" in report.summary.index:
        out.append(
            "**The video benefit's revenue gain is gross.** The scenario gives members who use "
            "video 0.1 utils a month more; what providing the better benefit costs the "
            "business is not in the model, so its revenue figure is not a profit.")
    out.append(
        "**Steady states, not transitions.** Every share, rate and revenue figure describes the "
        "scenario's own long-run steady state (once the policy has been in place for long), "
        "not the months right after the change. The CV is a one-time amount in present value "
        f"at the monthly discount factor {report.beta:g}; times {1 - report.beta:.2f} it is "
        "a dollar amount per month.")
    if report.has_intervals:
        out.append(
            "**The intervals are for estimation error only.** They assume the model is right "
            "(the demo's data were simulated from it, so here it is); with real data, a wrong "
            "specification would move the figures by more than the intervals show.")
    return out


def _usd(x: float, sign: bool = False) -> str:
    return f"{'-' if x < 0 else ('+' if sign else '')}${abs(x):,.2f}"
