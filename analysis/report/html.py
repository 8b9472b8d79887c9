"""The trial report as one self-contained HTML file, with the figure files and CSV tables beside it.

Layout of a report folder::

    index.html            the report: inline CSS, figures as inline SVG, tables as HTML; no external URL at all
    figures/<slug>.svg    each figure as SVG (deterministic bytes, see ``style``), the same bytes the page inlines
    figures/<slug>.png    and as PNG when asked for (``png_dpi``; off by default: a second full draw per figure)
    tables/<slug>.csv     each table, formula-injection safe
    manifest.json         what the report holds: context, sections, figures (SHA-256 of the files), key values

Safety of the output:

* every text that comes from data or code is escaped with :func:`html.escape`;
* the inline SVGs lose their XML prolog, DOCTYPE, RDF metadata and namespace URIs (the HTML parser needs none) and
  their ids get the figure's slug as prefix, so the ids of several figures never collide in one document; the
  page therefore holds no ``http://`` / ``https://`` reference and opens offline;
* CSV text cells starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return are prefixed with ``'`` (OWASP
  "CSV injection"), so a spreadsheet shows them as text instead of evaluating a formula. Numeric cells stay numbers
  (a number is never a formula).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import html
import io
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.report.figure import ReportContext, ReportFigure, ReportTable
from analysis.report.style import render
from analysis.safe_csv import neutralise

SECTION_TITLES: dict[str, str] = {
    "efficacy": "Efficacy",
    "safety": "Safety",
    "microbiome": "Microbiome",
    "metabolomics": "Metabolomics",
    "integration": "Microbiome-metabolome integration",
}


@dataclass
class Section:
    """One report section: its items, or why it is not available."""

    name: str
    items: list[ReportFigure | ReportTable] = field(default_factory=list)
    #: ``ok``; ``unavailable`` (input tables missing, module absent); ``failed`` (an error while building it).
    status: str = "ok"
    message: str = ""

    @property
    def title(self) -> str:
        return SECTION_TITLES.get(self.name, self.name.capitalize())


@dataclass(frozen=True)
class ReportMeta:
    """Provenance printed in the report header."""

    warehouse: str = ""
    warehouse_sha256: str = ""
    run_id: str = ""
    generated_at: str = ""


# ------------------------------------------------------------------------------------------------ CSV


#: Report tables use the warehouse-wide CSV-injection rule.
neutralise_cell = neutralise


def safe_csv(frame: pd.DataFrame) -> str:
    """The frame as CSV text with every text cell (and header) neutralised against formula injection."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([neutralise_cell(str(c)) for c in frame.columns])
    for row in frame.itertuples(index=False, name=None):
        writer.writerow(
            ["" if _is_missing(v) else neutralise_cell(v if isinstance(v, str) else _plain(v)) for v in row]
        )
    return buf.getvalue()


def _is_missing(v: Any) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _plain(v: Any) -> Any:
    """Numbers stay numbers; anything else becomes text (and is then neutralised)."""
    if isinstance(v, bool) or (hasattr(v, "dtype") and getattr(v.dtype, "kind", "") == "b"):
        return str(bool(v))
    if isinstance(v, int | float) or (hasattr(v, "dtype") and getattr(v.dtype, "kind", "") in "iuf"):
        return v
    return str(v)


# ------------------------------------------------------------------------------------------------ SVG


_PROLOG = re.compile(r"<\?xml[^>]*\?>\s*|<!DOCTYPE[^>]*>\s*", re.S)
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.S)
_XMLNS = re.compile(r'\s+xmlns(?::\w+)?="[^"]*"')
_ID = re.compile(r'\bid="([^"]+)"')
_HREF = re.compile(r'(xlink:href|href)="#([^"]+)"')
_URL = re.compile(r"url\(#([^)]+)\)")


def inline_svg(svg: bytes | str, prefix: str) -> str:
    """An SVG file turned into an element for inline use in HTML (see module docstring)."""
    text = svg.decode("utf-8") if isinstance(svg, bytes) else svg
    text = _PROLOG.sub("", text)
    text = _METADATA.sub("", text)
    text = _XMLNS.sub("", text)
    p = re.sub(r"[^A-Za-z0-9_-]", "_", prefix)
    text = _ID.sub(lambda m: f'id="{p}-{m.group(1)}"', text)
    text = _HREF.sub(lambda m: f'{m.group(1)}="#{p}-{m.group(2)}"', text)
    text = _URL.sub(lambda m: f"url(#{p}-{m.group(1)})", text)
    return text.replace("<svg ", f'<svg role="img" aria-labelledby="{p}-title" ', 1).strip()


# ------------------------------------------------------------------------------------------------ HTML


CSS = """
:root { --ink:#1b1b1b; --muted:#555; --rule:#d0d0d0; --blind:#0b4f6c; --unblind:#b00020; }
* { box-sizing: border-box; }
body { font-family: "DejaVu Sans", "Helvetica Neue", Arial, sans-serif; color: var(--ink); margin: 0;
       line-height: 1.45; font-size: 15px; background: #fff; }
header { padding: 18px 32px 12px; border-bottom: 1px solid var(--rule); }
h1 { font-size: 24px; margin: 4px 0 8px; }
h2 { font-size: 20px; margin: 32px 0 8px; padding-bottom: 4px; border-bottom: 2px solid var(--ink); }
h3 { font-size: 16px; margin: 24px 0 6px; }
.banner { font-weight: bold; font-size: 17px; letter-spacing: .02em; padding: 10px 32px; color: #fff; }
.banner.blinded { background: var(--blind); }
.banner.unblinded { background: var(--unblind); }
.meta { border-collapse: collapse; font-size: 13px; }
.meta th { text-align: left; padding: 2px 16px 2px 0; color: var(--muted); font-weight: normal; }
.meta td { padding: 2px 0; font-family: "DejaVu Sans Mono", monospace; word-break: break-all; }
main { padding: 0 32px 48px; max-width: 1100px; }
nav { background: #f6f6f6; padding: 10px 20px; margin: 16px 0; border-left: 4px solid var(--ink); }
nav ol { margin: 4px 0; padding-left: 22px; }
nav li { margin: 1px 0; }
nav a { color: var(--ink); }
figure { margin: 12px 0 28px; }
figure svg { width: 100%; max-width: 860px; height: auto; display: block; }
figcaption, .caption { font-size: 13px; color: var(--muted); max-width: 860px; margin-top: 6px; }
.files { font-size: 12px; }
.files a { color: var(--muted); margin-right: 10px; }
dl.kv { display: grid; grid-template-columns: max-content auto; gap: 2px 14px; font-size: 13px; margin: 8px 0; }
dl.kv dt { color: var(--muted); }
dl.kv dd { margin: 0; font-weight: bold; }
.table-wrap { overflow-x: auto; max-width: 100%; }
table.data { border-collapse: collapse; font-size: 12.5px; margin: 6px 0; }
table.data th { background: #f0f0f0; text-align: left; vertical-align: bottom; }
table.data th, table.data td { border: 1px solid var(--rule); padding: 3px 8px; }
table.data td.num { text-align: right; font-variant-numeric: tabular-nums; }
.unavailable { background: #fff4e5; border-left: 4px solid #e69f00; padding: 8px 14px; }
.failed { background: #fdecea; border-left: 4px solid var(--unblind); padding: 8px 14px; }
footer { font-size: 12px; color: var(--muted); padding: 16px 32px; border-top: 1px solid var(--rule); }
@media print { nav { display: none; } figure, table { page-break-inside: avoid; } }
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _anchor(slug: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", slug)


def _table_html(frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{_e(c)}</th>" for c in frame.columns)
    rows = []
    for row in frame.itertuples(index=False, name=None):
        cells = []
        for v in row:
            num = isinstance(v, int | float) and not isinstance(v, bool)
            shown = "" if _is_missing(v) else (f"{v:.4g}" if isinstance(v, float) else v)
            cells.append(f'<td class="num">{_e(shown)}</td>' if num else f"<td>{_e(shown)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (
        f'<div class="table-wrap"><table class="data"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _kv_html(kv: dict[str, str]) -> str:
    if not kv:
        return ""
    return '<dl class="kv">' + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in kv.items()) + "</dl>"


def render_html(
    sections: Sequence[Section],
    ctx: ReportContext,
    meta: ReportMeta,
    svgs: dict[str, bytes],
    pngs: Sequence[str] | None = None,
) -> str:
    """The report page. ``svgs`` maps figure slugs to their SVG bytes (the same bytes as the written files);
    ``pngs``: the slugs with a PNG file to link (default: every figure)."""
    banner_cls = "unblinded" if ctx.unblinded else "blinded"
    banner = (
        "UNBLINDED — treatment arms shown. Confidential: for the data monitoring committee and the unblinded "
        "statistician only; do not forward."
        if ctx.unblinded
        else "BLINDED — all analyses pooled over treatment arms; this report contains no treatment-arm information."
    )
    n_fig = sum(isinstance(i, ReportFigure) for s in sections for i in s.items)
    n_tab = sum(isinstance(i, ReportTable) for s in sections for i in s.items)
    meta_rows = [
        ("Study", ctx.study_id),
        ("Data cut-off", ctx.cutoff.isoformat() if ctx.cutoff else "none (all data received)"),
        ("Blinding", ctx.blinding_text),
        ("Run date", ctx.run_date.isoformat()),
        ("Warehouse", meta.warehouse or "—"),
        ("Warehouse SHA-256", meta.warehouse_sha256 or "—"),
        ("Run id", meta.run_id or "—"),
        ("Content", f"{n_fig} figures, {n_tab} tables"),
    ]
    toc, body = [], []
    for s in sections:
        sid = f"section-{_anchor(s.name)}"
        entries = "".join(f'<li><a href="#{_anchor(i.slug)}">{_e(i.title)}</a></li>' for i in s.items)
        status = "" if s.status == "ok" else f" — {_e(s.message)}"
        toc.append(
            f'<li><a href="#{sid}">{_e(s.title)}</a>{status}' + (f"<ol>{entries}</ol>" if entries else "") + "</li>"
        )
        body.append(f'<section id="{sid}"><h2>{_e(s.title)}</h2>')
        if s.status == "unavailable":
            body.append(f'<p class="unavailable">{_e(s.message)}</p>')
        elif s.status == "failed":
            body.append(f'<p class="failed">{_e(s.message)}</p>')
        for item in s.items:
            a = _anchor(item.slug)
            if isinstance(item, ReportFigure):
                svg = inline_svg(svgs[item.slug], a).replace(">", f'><title id="{a}-title">{_e(item.title)}</title>', 1)
                png = f'<a href="figures/{_e(item.slug)}.png">PNG</a>' if pngs is None or item.slug in pngs else ""
                body.append(
                    f'<figure id="{a}"><h3>{_e(item.title)}</h3>{svg}'
                    f"<figcaption>{_e(item.caption)}</figcaption>{_kv_html(item.key_values)}"
                    f'<div class="files">{png}'
                    f'<a href="figures/{_e(item.slug)}.svg">SVG</a></div></figure>'
                )
            else:
                body.append(
                    f'<div class="table-item" id="{a}"><h3>{_e(item.title)}</h3>'
                    f'<p class="caption">{_e(item.caption)}</p>{_table_html(item.frame)}'
                    f'<div class="files"><a href="tables/{_e(item.slug)}.csv">CSV</a></div></div>'
                )
        body.append("</section>")
    meta_html = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in meta_rows)
    title = f"{ctx.study_id} trial report — {ctx.run_date.isoformat()} ({'UNBLINDED' if ctx.unblinded else 'blinded'})"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>"
        f'<div class="banner {banner_cls}" id="blinding-banner">{_e(banner)}</div>'
        f"<header><h1>{_e(ctx.study_id)}: trial report</h1>"
        f'<table class="meta">{meta_html}</table></header>'
        f'<main><nav aria-label="Contents"><strong>Contents</strong><ol>{"".join(toc)}</ol></nav>'
        f"{''.join(body)}</main>"
        f"<footer>Generated {_e(meta.generated_at or ctx.run_date.isoformat())} by guttrial from the warehouse alone. "
        "Every figure caption states its population, n, data cut-off and blinding status.</footer>"
        "</body></html>\n"
    )


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_report(
    sections: Sequence[Section], ctx: ReportContext, out_dir: Path, meta: ReportMeta, png_dpi: int | None = None
) -> Path:
    """Write ``index.html``, the figure and table files and ``manifest.json`` into ``out_dir``; returns the HTML.

    Each figure is drawn once, as SVG (inlined in the page and written as ``figures/<slug>.svg``); with ``png_dpi``
    it is also written as ``figures/<slug>.png`` at that resolution (a second full draw per figure, so off by
    default)."""
    figs_dir, tabs_dir = out_dir / "figures", out_dir / "tables"
    figs_dir.mkdir(parents=True, exist_ok=True)
    tabs_dir.mkdir(parents=True, exist_ok=True)
    svgs: dict[str, bytes] = {}
    pngs: list[str] = []
    manifest_items: list[dict[str, Any]] = []
    seen: set[str] = set()
    for s in sections:
        for item in s.items:
            if item.slug in seen:
                raise ValueError(f"duplicate report slug {item.slug!r}")
            seen.add(item.slug)
            entry: dict[str, Any] = {"section": s.name, "slug": item.slug, "title": item.title, "caption": item.caption}
            if isinstance(item, ReportFigure):
                files = render(item.figure, png_dpi)
                (figs_dir / f"{item.slug}.svg").write_bytes(files.svg)
                svgs[item.slug] = files.svg
                entry |= {"kind": "figure", "key_values": item.key_values, "svg_sha256": _sha256(files.svg)}
                if files.png is not None:
                    (figs_dir / f"{item.slug}.png").write_bytes(files.png)
                    pngs.append(item.slug)
                    entry["png_sha256"] = _sha256(files.png)
            else:
                data = safe_csv(item.frame).encode("utf-8")
                (tabs_dir / f"{item.slug}.csv").write_bytes(data)
                entry |= {"kind": "table", "rows": len(item.frame), "csv_sha256": _sha256(data)}
            manifest_items.append(entry)
    page = render_html(sections, ctx, meta, svgs, pngs)
    index = out_dir / "index.html"
    index.write_text(page, encoding="utf-8")
    manifest = {
        "study_id": ctx.study_id,
        "cutoff": ctx.cutoff.isoformat() if ctx.cutoff else None,
        "unblinded": ctx.unblinded,
        "run_date": ctx.run_date.isoformat(),
        "warehouse": meta.warehouse,
        "warehouse_sha256": meta.warehouse_sha256,
        "run_id": meta.run_id,
        "png_dpi": png_dpi,
        "sections": [
            {"name": s.name, "status": s.status, "message": s.message, "items": len(s.items)} for s in sections
        ],
        "items": manifest_items,
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return index


def now_text() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
