"""Tests of the one table renderer (estimators.tables) and the escaping of names in every format."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import ddc
from estimators.tables import Table, latex_escape, markdown_escape

EVIL = "<script>alert('x')</script> | *a*"


@pytest.fixture
def table() -> Table:
    return Table(["", "est", "se"], [[EVIL, "1.0000***", "(0.1)"], ["b", "2.0000", ""],
                                     ["Log-likelihood", "-3.0", ""]],
                 title="T & <b>", breaks=[2], notes=["n < 1"], info=[("Model:", EVIL)])


def test_every_format_escapes_names(table):
    assert "<script>" not in table.as_markdown() and "&lt;script&gt;" in table.as_markdown()
    assert r"\| \*a\*" in table.as_markdown()
    assert "<script>" not in table.as_html() and "&lt;script&gt;" in table.as_html()
    assert "<b>" not in table.as_html()
    tex = table.as_latex()
    assert r"\textless{}script\textgreater{}" in tex and r"1.0000$^{***}$" in tex
    assert tex.startswith(r"\begin{table}[htbp]") and r"\caption{T \& \textless{}b" in tex
    assert table.as_latex(float_env=False).startswith(r"\begin{tabular}{lrr}")
    assert EVIL in table.as_text()  # plain text shows the name as it is


def test_text_layout_has_sections_and_aligned_columns(table):
    lines = table.as_text().splitlines()
    header = next(line for line in lines if line.split() == ["est", "se"])
    b = next(line for line in lines if line.startswith("b "))
    assert b.endswith("2.0000") and len(b) == header.index("est") + len("est")  # right-aligned
    ll = lines.index(next(line for line in lines if line.startswith("Log-likelihood")))
    assert set(lines[ll - 1]) == {"-"}  # a rule starts the statistics section


def test_csv_and_from_frame(tmp_path):
    frame = pd.DataFrame({"x": [1.5, np.nan], "ok": [True, False], "n": [3, 4]},
                         index=pd.Index(["a", "b"], name="name"))
    t = Table.from_frame(frame, title="F")
    assert t.columns == ["name", "x", "ok", "n"]
    assert t.rows == [["a", "1.5000", "yes", "3"], ["b", "", "no", "4"]]
    path = t.to_csv(tmp_path / "f.csv")
    back = pd.read_csv(path, keep_default_na=False, dtype=str)
    assert back.values.tolist() == t.rows


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match="row 1 of the table has 1 cells, but there are 2"):
        Table(["a", "b"], [["1", "2"], ["3"]])
    with pytest.raises(ValueError, match="align must give 'l' or 'r' for each of the 2"):
        Table(["a", "b"], [], align="lx")


def test_escape_helpers():
    assert latex_escape("a_b&c%") == r"a\_b\&c\%"
    assert markdown_escape("<i>|") == r"&lt;i&gt;\|"


def test_report_markdown_escapes_a_script_scenario_name():
    from simulations import counterfactual
    from simulations.scenarios import UtilityShift

    model = ddc.models.membership()
    evil = UtilityShift(0.1, name="<script>alert(1)</script>")
    report = counterfactual(model, model.true_params, scenarios=[evil], n_draws=0)
    md = report.to_markdown()
    assert "<script>" not in md and "&lt;script&gt;alert(1)&lt;/script&gt;" in md
    page = report.to_html(images={})
    assert "<script>" not in page
