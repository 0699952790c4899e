"""The docs pages show the printed output of scripts in docs/examples/, which compute their numbers.

Each script prints what its page shows in ``.. code-block:: text`` blocks marked
``:class: output-<script name>``; this test runs the script as ``python docs/examples/NAME.py``
would (fixed seeds, so the output is deterministic) and checks that

- the page's marked blocks, in order, are exactly the printed output, so a change of the code
  that moves a number fails here instead of leaving a stale page;
- the figures the prose quotes are the script's (formatted from its variables).

The scripts that fit several estimators to 720,000 rows or run 100 fits are ``slow``
(``pytest -m slow``); the fast one takes a few seconds. The pattern is tests/test_tutorial.py's
(docs/own_model.rst).
"""

from __future__ import annotations

import contextlib
import io
import re
import runpy
import warnings
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"


def run(script: str) -> tuple[dict, str]:
    """Run ``docs/examples/<script>`` as ``__main__``; its globals and printed output."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        namespace = runpy.run_path(str(DOCS / "examples" / script), run_name="__main__")
    return namespace, out.getvalue()


def output_blocks(rst: str, script: str) -> list[str]:
    """The page's ``.. code-block:: text`` blocks marked ``:class: output-<script stem>``, in
    order, their three-space indent removed."""
    cls = "output-" + Path(script).stem.replace("_", "-")
    pattern = (r"^\.\. code-block:: text\n   :class: " + re.escape(cls)
               + r"\n\n((?:(?:   .*)?\n)+)")
    return ["\n".join(line[3:] for line in m.group(1).split("\n")).strip("\n")
            for m in re.finditer(pattern, rst, re.M)]


def check_page_shows_output(script: str, page: str, printed: str) -> None:
    blocks = output_blocks((DOCS / page).read_text(), script)
    assert blocks, f"docs/{page} has no block marked as the output of {script}"
    lines = [line.rstrip() for line in printed.strip("\n").split("\n")]
    expected = [line.rstrip() for line in "\n\n".join(blocks).split("\n")]
    assert lines == expected


def check_prose(page: str, quotes: list[str]) -> None:
    text = " ".join((DOCS / page).read_text().split())  # prose wraps lines anywhere
    missing = [q for q in quotes if q not in text]
    assert not missing, f"docs/{page} does not quote the script's figures: {missing}"


# --- docs/counterfactuals.rst: the default scenarios at the truth, interval coverage -----------
@pytest.fixture(scope="module")
def counterfactuals_truth():
    return run("counterfactuals_truth.py")


def test_counterfactuals_page_shows_the_figures_at_the_truth(counterfactuals_truth):
    check_page_shows_output("counterfactuals_truth.py", "counterfactuals.rst",
                            counterfactuals_truth[1])


def test_counterfactuals_prose_quotes_the_figures_at_the_truth(counterfactuals_truth):
    ns, _ = counterfactuals_truth
    s, m, shares = ns["summary"], ns["by_market"], ns["shares"]
    cv = s["cv_per_customer"]

    def pct(x: float) -> str:
        return f"{100 * x:.1f}%"

    quotes = [
        f"costs the average customer ${-cv['monthly_price_up']:.2f}",
        f"{pct(shares.loc['baseline', 'monthly'])} of customer-months spent on the monthly plan",
        f"is worth ${cv['annual_discount']:.2f} per customer",
        f"{pct(ns['purchases'])} of customer-months with an annual purchase",
        f"(market 1: +${m.loc[('annual_discount', 1), 'cv_per_customer']:.2f})",
        f"(+${m.loc[('annual_discount', 2), 'cv_per_customer']:.2f})",
        f"-${-cv['no_monthly']:.2f} per customer",
        f"is worth ${cv['video_benefit']:.2f} per customer",
        f"from {pct(ns['fast'].loc['baseline', 'member_share'])} to "
        f"{pct(ns['fast'].loc['video_engagement', 'member_share'])} and is worth "
        f"${ns['fast'].loc['video_engagement', 'cv_per_customer']:.2f} per customer",
        f"(:math:`S(1) = {pct(ns['retention'].loc[1, 'monthly'])[:-1]}\\%`) and "
        f"{pct(ns['retention'].loc[12, 'monthly'])} are still members",
        f"{pct(ns['retention'].loc[12, 'annual'])} at the first renewal",
        "For the monthly increase the CVs are " + ", ".join(
            f"-${-m.loc[('monthly_price_up', k), 'cv_per_customer']:.2f}" for k in (0, 1))
        + f" and -${-m.loc[('monthly_price_up', 2), 'cv_per_customer']:.2f}",
        "for the video benefit they are " + ", ".join(
            f"+${m.loc[('video_benefit', k), 'cv_per_customer']:.2f}" for k in (0, 1))
        + f" and +${m.loc[('video_benefit', 2), 'cv_per_customer']:.2f}",
    ]
    check_prose("counterfactuals.rst", quotes)


# --- docs/irl.rst: Rust's bus, where the anchor is rarely chosen -------------------------------
def test_irl_page_shows_the_bus_table():
    ns, printed = run("irl_rust.py")
    check_page_shows_output("irl_rust.py", "irl.rst", printed)
    nfxp = ns["results"]["NFXP (Rust 1987, Table IX)"]
    for name, res in ns["results"].items():  # the prose: theta_11 within two own s.e. of NFXP
        if name.startswith(("two-step PQR", "PQR")):
            assert abs(res.params["theta_11"] - nfxp.params["theta_11"]) < 2 * res.std_errors[
                "theta_11"], name
    assert ns["results"]["PQR fixed point, logit"].converged  # the prose says it converges


# --- the slow ones -----------------------------------------------------------------------------
@pytest.mark.slow
def test_counterfactuals_page_shows_the_estimates_and_intervals():
    ns, printed = run("counterfactuals_estimates.py")
    check_page_shows_output("counterfactuals_estimates.py", "counterfactuals.rst", printed)
    check_prose("counterfactuals.rst", [
        f"Every estimator recovers the truth within {max(ns['z'].values()):.2f} standard errors"])


@pytest.mark.slow
def test_irl_page_shows_the_cross_validation():
    """Every fit converges, the textbook MaxEntIRL (feature_counts="horizon") included: its
    root-finder stops for lack of progress at a root whose moments are at their rounding level,
    which the page describes (it was reported as not converged before that rule)."""
    import ddc

    with warnings.catch_warnings():
        warnings.simplefilter("error", ddc.ConvergenceWarning)
        ns, printed = run("irl_crossval.py")
    horizon = ns["more"].results["MaxEntIRL horizon"]
    assert horizon.converged
    assert "rounding level" in horizon.extra["message"]
    # the prose: NFXP, NPL and MaxEntIRL are one estimate (below 1e-4 NFXP s.e.)
    assert max(ns["in_mle_se"]("NPL"), ns["in_mle_se"]("MaxEntIRL")) < 1e-4
    check_page_shows_output("irl_crossval.py", "irl.rst", printed)


@pytest.mark.slow
def test_estimation_page_shows_the_information_matrix_test():
    ns, printed = run("rust_information_matrix.py")
    check_page_shows_output("rust_information_matrix.py", "estimation.rst", printed)
    ratio = ns["data_ratio"]
    check_prose("estimation.rst", [f"the data's {ratio['RC']:.2f} and {ratio['theta_11']:.2f} "
                                   f"exceed all {len(ns['ratios'])} simulated ratios"])
    assert (ns["ratios"] < ratio).all().all()
