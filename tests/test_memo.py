"""The memo sections of a counterfactual report (``ddc demo``'s report): sections added where
asked, refused when malformed; the membership caveats quote the report's own figures."""

from __future__ import annotations

import pytest
from models_entry import entry_model

import ddc
from simulations import counterfactual


@pytest.fixture(scope="module")
def entry_report():
    model = entry_model()
    return counterfactual(model, model.true_params, scenarios=[
        ddc.scenarios.ParameterChange("FC", factor=1.5, name="entry_cost_up")])


def test_sections_render_where_asked(entry_report):
    rep = entry_report
    rep.sections.clear()
    rep.add_section("The data", [("p", "Simulated **firms**."), ("h3", "Sizes"),
                                 ("table", "Sizes", ["what", "n"], [["firms", "10"]])])
    rep.add_section("Caveats", [("list", ["Steady states only."])], where="end")
    md = rep.to_markdown()
    assert md.index("## The data") < md.index("## Scenarios") < md.index("## Results") \
        < md.index("## Caveats") < md.index("## How to read")
    assert "### Sizes" in md and "| firms | 10 |" in md and "- Steady states only." in md
    html = rep.to_html(images={})
    assert "<h3>Sizes</h3>" in html and "<strong>firms</strong>" in html
    rep.sections.clear()


@pytest.mark.parametrize("blocks, where, match", [
    pytest.param([("h1", "x")], "start", "unknown kind", id="kind"),
    pytest.param(["text"], "start", "unknown kind", id="not-a-block"),
    pytest.param([("p", "x")], "middle", "where must be", id="where"),
])
def test_bad_sections_are_refused(entry_report, blocks, where, match):
    with pytest.raises(ValueError, match=match):
        entry_report.add_section("Bad", blocks, where=where)


def test_section_figure_names_must_be_new(entry_report):
    with pytest.raises(ValueError, match=r"figure name\(s\) \['changes.png'\] already used"):
        entry_report.add_section("Figures", [], figures={"changes.png": object()})


def test_membership_caveats_quote_the_figures():
    from ddc.models.membership import memo

    model = ddc.models.membership()
    rep = counterfactual(model, model.true_params, scenarios="default")
    text = "\n".join(memo.caveats(rep))
    s = rep.summary
    base, no_monthly = s.loc["baseline"], s.loc["no_monthly"]
    # at the truth, docs/counterfactuals.rst: 12-month retention 46.3% -> 63.0%, member share
    # 56.0% -> 31.5%, CV -$164.84
    assert no_monthly["retention_12m"] > base["retention_12m"]
    assert (f"raises 12-month retention ({100 * base['retention_12m']:.1f}% to "
            f"{100 * no_monthly['retention_12m']:.1f}%)") in text
    assert f"customers lose ${-no_monthly['cv_per_customer']:,.2f} each" in text
    assert "composition effect of the lock" in text
    assert "not a profit" in text and "Steady states, not transitions" in text
    assert "estimation error only" not in text  # no intervals without a covariance
