"""The trial report's HTML, files and build machinery (issue 8): escaping, inline SVG without external references,
CSV formula-injection safety, deterministic figure bytes, missing and failing sections, blinding scan, atomic
publication, and a headless Chromium rendering of the report built by the Dagster asset.

The report warehouses come from ``test_report_clinical.report_warehouses`` (built once per session).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
import types
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from test_report_clinical import ReportWarehouses, report_warehouses

from analysis.report.build import build_report, collect_section, context_from_warehouse, scan_for_arms
from analysis.report.figure import ReportContext, ReportFigure, ReportTable
from analysis.report.html import ReportMeta as Meta
from analysis.report.html import Section, inline_svg, neutralise_cell, render_html, safe_csv
from analysis.report.style import (
    PNG_DPI,
    BlindingError,
    new_figure,
    png_bytes,
    render,
    report_style,
    svg_bytes,
)

CHROMIUM = Path("/usr/bin/chromium")
CTX = ReportContext(cutoff=dt.date(2025, 6, 30), unblinded=False, run_date=dt.date(2025, 7, 1))


@pytest.fixture(scope="module")
def wh(tmp_path_factory: pytest.TempPathFactory) -> ReportWarehouses:
    return report_warehouses(tmp_path_factory)


def small_figure():
    with report_style():
        fig = new_figure(height_in=2.5)
        ax = fig.add_subplot()
        ax.plot([0, 1, 2], [1, 0.6, 0.4], marker="o", label="curve <1>")
        ax.fill_between([0, 1, 2], [0.9, 0.5, 0.3], [1, 0.7, 0.5], alpha=0.2)
        ax.legend()
        ax.set_title("A & B")
    return fig


def fake_section(monkeypatch: pytest.MonkeyPatch, name: str, figures) -> None:
    module = types.ModuleType(f"analysis.report.{name}")
    module.figures = figures
    monkeypatch.setitem(sys.modules, f"analysis.report.{name}", module)


# ------------------------------------------------------------------------------------------------ units


def test_csv_cells_that_could_be_formulas_are_neutralised() -> None:
    frame = pd.DataFrame(
        {
            "=cmd": ['=HYPERLINK("x")', "+1+A1", "-2 (text)", "@SUM(A1)", "\tx", "plain", None],
            "number": [-1.5, 2.0, -3.0, 0.0, 1.0, np.nan, 4.0],
        }
    )
    text = safe_csv(frame)
    lines = text.splitlines()
    assert lines[0] == "'=cmd,number"
    assert lines[1].startswith('"\'=HYPERLINK(""x"")",-1.5')
    assert lines[2] == "'+1+A1,2.0"
    assert lines[3] == "'-2 (text),-3.0"  # text is neutralised, the negative number stays a number
    assert lines[4] == "'@SUM(A1),0.0"
    assert lines[6] == "plain,"
    assert lines[7] == ",4.0"
    assert neutralise_cell("-") == "'-" and neutralise_cell(-1) == -1 and neutralise_cell("a=b") == "a=b"
    assert neutralise_cell("+1") == "+1"  # a decimal literal is a number to a spreadsheet, not a formula


def test_inline_svg_has_no_external_reference_and_prefixed_ids() -> None:
    svg = svg_bytes(small_figure())
    assert b"http://" in svg  # the file itself carries namespace URIs and the DOCTYPE
    inline = inline_svg(svg, "fig one")
    assert not re.search(r"https?://", inline)
    assert inline.startswith("<svg ") and "<?xml" not in inline and "<!DOCTYPE" not in inline
    ids = set(re.findall(r'id="([^"]+)"', inline))
    assert ids and all(i.startswith("fig_one-") for i in ids)
    refs = set(re.findall(r'href="#([^"]+)"', inline)) | set(re.findall(r"url\(#([^)]+)\)", inline))
    assert refs and refs <= ids  # every internal reference still resolves
    assert "curve &lt;1&gt;" in inline and "A &amp; B" in inline  # matplotlib escapes the text it writes


def test_figure_bytes_are_deterministic() -> None:
    assert svg_bytes(small_figure()) == svg_bytes(small_figure())
    assert png_bytes(small_figure()) == png_bytes(small_figure())
    svg = svg_bytes(small_figure()).decode()
    assert "<dc:date>" not in svg and "Date" not in svg


def test_html_escapes_every_text_and_states_blinding() -> None:
    evil = "<script>alert('x')</script>"
    table = ReportTable(
        "t1", "safety", f"Title {evil}", CTX.caption(f"cap {evil}", "pop & co", 3), pd.DataFrame({evil: [evil, 1.5]})
    )
    fig = ReportFigure("f1", "efficacy", "Fig <i>", CTX.caption("Figure", "ITT", 10), small_figure(), {evil: evil})
    page = render_html(
        [
            Section("efficacy", [fig]),
            Section("safety", [table]),
            Section("microbiome", status="unavailable", message=f"not available: table {evil}"),
        ],
        CTX,
        Meta(warehouse="/w <x>.duckdb", warehouse_sha256="ab" * 32, run_id="r1"),
        {"f1": svg_bytes(fig.figure)},
    )
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "Fig &lt;i&gt;" in page and "/w &lt;x&gt;.duckdb" in page
    assert 'id="blinding-banner"' in page and "BLINDED" in page and "UNBLINDED" not in page
    assert "data cut-off 2025-06-30" in page and "2025-07-01" in page and "ab" * 32 in page
    assert not re.search(r"https?://", page)
    # table of contents links to every item and the unavailable section says why
    assert 'href="#f1"' in page and 'href="#t1"' in page and "not available: table &lt;script&gt;" in page


# ------------------------------------------------------------------------------------------------ build


def test_missing_tables_make_sections_unavailable_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "empty.duckdb"
    duckdb.connect(str(path)).close()
    with duckdb.connect(str(path), read_only=True) as con:
        ctx = context_from_warehouse(con, run_date=dt.date(2025, 7, 1))
        result = build_report(con, ctx, tmp_path / "reports", sections=("efficacy", "safety", "nosuchsection"))
    assert not ctx.unblinded
    status = {s.name: (s.status, s.message) for s in result.sections}
    assert status["efficacy"][0] == "unavailable" and "table analysis.km_estimates missing" in status["efficacy"][1]
    assert status["safety"][0] == "unavailable" and "table analysis.ae_summary missing" in status["safety"][1]
    assert status["nosuchsection"][0] == "unavailable"
    html = result.index.read_text()
    assert "not available: table analysis.km_estimates missing" in html
    assert result.index == tmp_path / "reports" / "2025-07-01" / "index.html"


def test_a_failing_section_is_reported_and_the_rest_is_built(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def boom(con, ctx):
        raise RuntimeError("kaputt")

    def ok(con, ctx):
        return [ReportTable("ok_table", "okay", "OK", ctx.caption("fine", "all", 1), pd.DataFrame({"a": [1]}))]

    fake_section(monkeypatch, "boomsection", boom)
    fake_section(monkeypatch, "oksection", ok)
    with duckdb.connect() as con:
        result = build_report(con, CTX, tmp_path, sections=("boomsection", "oksection"))
    assert [s.status for s in result.sections] == ["failed", "ok"]
    assert "RuntimeError: kaputt" in result.sections[0].message
    assert (result.index.parent / "tables" / "ok_table.csv").read_text() == "a\n1\n"


def test_arm_text_in_a_blinded_report_stops_publication(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def leaky(con, ctx):
        frame = pd.DataFrame({"group": ["PLACEBO"], "n": [3]})
        return [ReportTable("leak", "leaky", "Leak", ctx.caption("t", "all", 3), frame)]

    fake_section(monkeypatch, "leaky", leaky)
    with duckdb.connect() as con, pytest.raises(BlindingError, match="PLACEBO"):
        build_report(con, CTX, tmp_path, sections=("leaky",))
    assert list(tmp_path.iterdir()) == []  # nothing published, no temporary folder left
    # the same section is fine in an unblinded run
    unblinded = ReportContext(CTX.cutoff, True, CTX.run_date)
    with duckdb.connect() as con:
        result = build_report(con, unblinded, tmp_path, sections=("leaky",))
    assert scan_for_arms(result.index.parent)


def test_captions_without_the_mandatory_statement_are_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake_section(monkeypatch, "bare", lambda con, ctx: [ReportTable("b", "bare", "B", "no context", pd.DataFrame())])
    with duckdb.connect() as con, pytest.raises(ValueError, match="caption"):
        build_report(con, CTX, tmp_path, sections=("bare",))


def test_a_rebuild_replaces_the_days_report_atomically(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls = iter(["first", "second"])

    def section(con, ctx):
        return [ReportTable("t", "s", "T", ctx.caption(next(calls), "all", 1), pd.DataFrame({"a": [1]}))]

    fake_section(monkeypatch, "twice", section)
    with duckdb.connect() as con:
        build_report(con, CTX, tmp_path, sections=("twice",))
        result = build_report(con, CTX, tmp_path, sections=("twice",))
    assert [p.name for p in tmp_path.iterdir()] == ["2025-07-01"]
    assert "second" in result.index.read_text() and "first" not in result.index.read_text()


def test_context_comes_from_the_warehouse_and_must_match_the_run(wh: ReportWarehouses) -> None:
    with wh.connect(False) as con:
        ctx = context_from_warehouse(con)
        assert not ctx.unblinded and ctx.cutoff is None
        with pytest.raises(ValueError, match="blinded"):
            context_from_warehouse(con, expect_unblinded=True)
    with wh.connect(True) as con:
        assert context_from_warehouse(con).unblinded
        with pytest.raises(ValueError):
            context_from_warehouse(con, expect_unblinded=False)


def test_the_same_warehouse_gives_byte_identical_figures(wh: ReportWarehouses, tmp_path: Path) -> None:
    hashes = []
    for name in ("a", "b"):
        with wh.connect(False) as con:
            ctx = context_from_warehouse(con, run_date=dt.date(2025, 7, 1))
            result = build_report(con, ctx, tmp_path / name, sections=("efficacy", "safety"), png_dpi=PNG_DPI)
        folder = result.index.parent
        hashes.append(
            {
                p.relative_to(folder): p.read_bytes()
                for p in sorted(folder.rglob("*.*"))
                if p.suffix in {".png", ".svg", ".csv"}
            }
        )
    assert hashes[0].keys() == hashes[1].keys() and len(hashes[0]) >= 15
    assert all(hashes[0][k] == hashes[1][k] for k in hashes[0])


def test_each_figure_is_drawn_once_as_svg_and_as_png_only_on_request(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def section(con, ctx):
        with report_style():
            fig = new_figure(height_in=2.5)
            fig.set_layout_engine("constrained")
            fig.add_subplot().plot([0, 1], [0, 1])
        return [ReportFigure("f", "s", "F", ctx.caption("a figure", "all", 2), fig)]

    fake_section(monkeypatch, "onefig", section)
    with duckdb.connect() as con:
        svg_only = build_report(con, CTX, tmp_path / "svg", sections=("onefig",)).index
        both = build_report(con, CTX, tmp_path / "both", sections=("onefig",), png_dpi=100).index
    assert sorted(p.name for p in (svg_only.parent / "figures").iterdir()) == ["f.svg"]
    assert sorted(p.name for p in (both.parent / "figures").iterdir()) == ["f.png", "f.svg"]
    assert 'href="figures/f.png"' not in svg_only.read_text() and 'href="figures/f.png"' in both.read_text()
    assert 'href="figures/f.svg"' in svg_only.read_text()
    from PIL import Image

    with Image.open(both.parent / "figures" / "f.png") as image:
        assert image.size == (round(7.5 * 100), round(2.5 * 100))
    manifests = [json.loads((i.parent / "manifest.json").read_text()) for i in (svg_only, both)]
    assert [m["png_dpi"] for m in manifests] == [None, 100]
    assert "png_sha256" not in manifests[0]["items"][0] and len(manifests[1]["items"][0]["png_sha256"]) == 64
    # the same SVG either way (one layout, computed before either file is drawn)
    assert manifests[0]["items"][0]["svg_sha256"] == manifests[1]["items"][0]["svg_sha256"]


def test_render_fixes_the_layout_once() -> None:
    with report_style():
        fig = new_figure(height_in=2.5)
        fig.set_layout_engine("constrained")
        ax = fig.add_subplot()
        ax.plot([0, 1], [0, 1000000])
        ax.set_ylabel("a long y label")
    before = ax.get_position().bounds
    first = render(fig, png_dpi=72)
    assert type(fig.get_layout_engine()).__name__ == "PlaceHolderLayoutEngine"  # no engine re-runs at each save
    assert ax.get_position().bounds != before  # constrained layout made room for the labels
    again = render(fig, png_dpi=72)
    assert first == again and first.png is not None and first.png.startswith(b"\x89PNG")
    assert svg_bytes(fig) == first.svg


def test_collect_section_reports_a_missing_module() -> None:
    with duckdb.connect() as con:
        s = collect_section(con, CTX, "no_such_module_here")
    assert s.status == "unavailable" and "missing" in s.message


# ------------------------------------------------------------------------------------------------ Chromium


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium not installed at /usr/bin/chromium (apt install chromium)")
@pytest.mark.parametrize("unblinded", [False, True])
def test_report_renders_offline_in_headless_chromium(wh: ReportWarehouses, unblinded: bool, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed")
    index = wh.report(unblinded)
    n_figures = wh.runs["unblinded" if unblinded else "blinded"]["figures"]
    external: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 1500})
            page.on("request", lambda r: external.append(r.url) if not r.url.startswith("file:") else None)
            page.goto(index.as_uri())
            page.wait_for_load_state("load")
            banner = page.inner_text("#blinding-banner")
            boxes = page.evaluate(
                "Array.from(document.querySelectorAll('figure svg')).map(s => {"
                "const r = s.getBoundingClientRect(); return [r.width, r.height, s.querySelectorAll('path').length]; })"
            )
            toc_links = page.evaluate("document.querySelectorAll('nav a').length")
            broken = page.evaluate(
                "Array.from(document.querySelectorAll('nav a')).filter(a => "
                "!document.getElementById(a.getAttribute('href').slice(1))).length"
            )
            shot = tmp_path / f"report_{'unblinded' if unblinded else 'blinded'}.png"
            page.screenshot(path=str(shot), full_page=False)
            page.screenshot(path=str(tmp_path / "full.png"), full_page=True)
        finally:
            browser.close()
    assert external == []
    assert ("UNBLINDED" in banner) if unblinded else (banner.startswith("BLINDED") and "UNBLINDED" not in banner)
    assert len(boxes) == n_figures
    assert all(w > 300 and h > 150 and n_paths > 5 for w, h, n_paths in boxes), boxes
    assert toc_links >= n_figures and broken == 0
    from PIL import Image

    image = np.asarray(Image.open(shot).convert("RGB")).astype(float)
    assert image.shape[:2] == (1500, 1200)
    assert image.std() > 20  # not a blank page
    # the banner colour: red for unblinded, dark blue for blinded (top-left pixel row)
    r, g, b = image[5, 5]
    assert (r > 150 and g < 60) if unblinded else (b > r and b > 80)
    print(f"screenshot: {shot}")
