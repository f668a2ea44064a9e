"""The paper's pipeline: no number typed by hand, and the small build compiles to a PDF with pages.

The small build runs every stage of ``paper/build.py`` at the toy sizes of
``experiments/paper/paper.toml`` (under a minute on two cores) into a temporary directory.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

PAPER = Path(__file__).resolve().parents[1] / "paper"
sys.path.insert(0, str(PAPER))

from lint import ALLOWED, check_sources, swallowed_semicolons, typed_numbers  # noqa: E402


def test_sources_have_no_typed_numbers():
    """Every number in the paper's .typ sources comes from a generated file."""
    sources = sorted(PAPER.glob("*.typ"))
    assert sources, "no Typst sources in paper/"
    found = {p.name: [str(f) for f in typed_numbers(p.read_text())] for p in sources}
    assert found == {p.name: [] for p in sources}


def test_scan_flags_numbers_typed_into_prose_raw_math_and_code():
    """The companion: a source with hand-typed figures in each mode is caught, token by token."""
    text = ("The AUC is 0.97 after 236 s. Run `bench_footfall.py --events 20000000`.\n"
            "#text(size: 10pt)[about 3% error] #(0.47) $x = 3.5$\n"
            "#figure(image(\"a.png\", width: 82%), caption: [AUC 0.8])\n")
    tokens = [(f.token, f.where) for f in typed_numbers(text)]
    assert tokens == [("0.97", "prose"), ("236", "prose"), ("20000000", "raw"), ("3", "prose"),
                      ("0.47", "code"), ("3.5", "math"), ("0.8", "prose")]


def test_scan_allows_generated_values_layout_labels_and_formula_constants():
    text = ('#let n = json("generated/numbers.json")\n#set heading(numbering: "1.1")\n'
            '#set page(margin: (x: 2.1cm, top: 2.2cm))\n#table(columns: 2)[a]\n'
            'AUC #r("mia.k20.m1000.auc") @demontjoye2013 <tab-mia> $L_0$, $(e^epsilon - 1)/(e^epsilon + 1)$,\n'
            'the 2010 Census // 99 in a comment\n/* 42 */\n')
    assert typed_numbers(text) == []


def test_sources_have_no_swallowed_semicolons():
    assert check_sources(PAPER) == {}


def test_swallowed_semicolon_is_caught():
    """Typst ends ``#r("x");`` at the semicolon and drops it; the escaped form is fine."""
    assert [f.token for f in swallowed_semicolons('AUC #r("a.b"); then #r("c")\\; and #raw(r("d"));')] == [
        '#r("a.b");', '#raw(r("d"));']


def test_every_allowed_token_has_a_reason():
    assert all(pattern and len(reason) > 20 for pattern, reason in ALLOWED)


def test_small_build_compiles_a_pdf_with_pages(tmp_path):
    pytest.importorskip("typst")
    pdfium = pytest.importorskip("pypdfium2")
    import build

    pdf = build.build("small", tmp_path, log=lambda m: None)
    assert pdf == tmp_path / "privagg.pdf" and pdf.stat().st_size > 50_000
    doc = pdfium.PdfDocument(str(pdf))
    assert len(doc) >= 5
    text = "".join(doc[i].get_textpage().get_text_range() for i in range(len(doc)))
    numbers = json.loads((tmp_path / "generated" / "numbers.json").read_text())
    # generated values reach the PDF: the membership AUC on raw aggregates and the build's own code hash
    assert numbers["mia.raw.mmin.auc"] in text and numbers["build.code"] in text
    # every key the text asks for exists (Typst would also fail on a missing key)
    keys = set(re.findall(r'#r\("([^"]+)"\)', (PAPER / "privagg.typ").read_text()))
    assert keys and keys <= set(numbers)
    for figure in ("frontier-membership_inference.png", "accuracy-wre.png"):
        assert (tmp_path / "generated" / figure).stat().st_size > 10_000
    # a rebuild with nothing changed reuses every stage
    log: list[str] = []
    build.build("small", tmp_path, log=log.append)
    assert sum("cached" in line for line in log) == len(build.STAGES)
