"""The Data Docs index QA opens: every run, every validation, links to GX's page of each validation.

GX renders one page per validation (and per suite); its own index page re-reads every stored result each
time it is built, so it gets slower with every run (measured ~3 ms per stored result, several seconds once a
few dozen runs are kept). This module keeps a ledger of validations (one JSON line each, beside the site)
and writes a static index from it in milliseconds:

* ``index.html``: the latest run in full (per layer, failures first) and the history of every run;
* ``runs/<run>.html``: one page per run with every validation of that run.

The ledger holds only what the index shows (suite, asset, status, counts, the failed rules and columns), never
row values, so nothing restricted can reach it.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import html
import json
import os
from collections import defaultdict
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from expectations.runner import ValidationSummary

LAYER_ORDER = ("raw", "staging", "intermediate", "marts", "analysis")
#: Runs shown in full on the index page; older runs are one line each (with their own page).
RUNS_IN_FULL = 1
_STATUS_RANK = {"failed": 0, "warning": 1, "passed": 2}


#: great-expectations' pages load Bootstrap and Font Awesome from CDNs, which an offline QA machine (and this build
#: machine) cannot reach: unstyled, they lose their layout and the pass/fail icons. This local stylesheet, linked
#: into every page this project renders, keeps them readable offline; online, it only hides GX's newsletter footer.
OFFLINE_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2433;margin:0;line-height:1.4}
a{color:#1b5fbf} footer{display:none} .navbar-brand img{display:none}
.container-fluid{padding:1rem 2rem;box-sizing:border-box}
.row{display:flex;flex-wrap:wrap} .col-12{flex:0 0 100%;max-width:100%} .col-6{flex:0 0 50%;max-width:50%}
@media (min-width:768px){.col-md-2{flex:0 0 16.6%;max-width:16.6%}.col-md-10{flex:0 0 83.3%;max-width:83.3%}
  .d-md-block{display:block!important}.d-md-inline-flex{display:inline-flex!important}}
.d-none{display:none} .d-flex{display:flex} .collapse:not(.show){display:none}
.card{border:1px solid #dfe3ea;border-radius:.4rem;margin-bottom:1rem;background:#fff}
.card-header{background:#f4f6fa;padding:.5rem .75rem;border-bottom:1px solid #dfe3ea} .card-body{padding:.75rem}
table{border-collapse:collapse} .table{width:100%;margin-bottom:1rem}
.table td,.table th,.table-sm td,.table-sm th{border-top:1px solid #e2e6ee;padding:.3rem .5rem;vertical-align:top}
.table-bordered td,.table-bordered th{border:1px solid #d5dae3;padding:.25rem .5rem} thead th{background:#f4f6fa}
.alert{padding:.5rem .75rem;border-radius:.3rem;margin:.5rem 0} .alert-secondary{background:#eef1f5}
.text-success{color:#146c2e} .text-danger{color:#b42318} .h6{font-weight:600} .lead{font-size:1.1rem}
.fas,.fa{font-style:normal;font-weight:700}
.fa-check-circle::before{content:"\\2714"} .fa-times::before{content:"\\2718"}
.badge{display:inline-block;padding:.1rem .5rem;border-radius:.6rem;background:#e2e6ee;font-size:.8rem}
.btn{display:inline-block;padding:.2rem .6rem;border:1px solid #1b5fbf;border-radius:.3rem;color:#1b5fbf}
.btn.active{background:#1b5fbf;color:#fff}
.navbar{display:flex;align-items:center;gap:1rem;padding:.5rem 1rem;border-bottom:1px solid #dfe3ea;background:#fff}
.sticky-top{position:sticky;top:0;z-index:10} .nav{list-style:none;padding-left:0;margin:0}
.breadcrumb{display:flex;list-style:none;gap:.5rem;padding:0;margin:0}
.breadcrumb-item+.breadcrumb-item::before{content:"/";padding-right:.5rem;color:#5b6578}
.show-scrollbars{overflow-x:auto}
"""
OFFLINE_CSS_PATH = Path("static") / "styles" / "guttrial_offline.css"


def style_pages(site_dir: Path, pages: Sequence[Path]) -> None:
    """Link the offline stylesheet into freshly rendered GX pages (idempotent)."""
    css = site_dir / OFFLINE_CSS_PATH
    css.parent.mkdir(parents=True, exist_ok=True)
    if not css.exists() or css.read_text(encoding="utf-8") != OFFLINE_CSS:
        css.write_text(OFFLINE_CSS, encoding="utf-8")
    for page in pages:
        if not page.exists():
            continue
        text = page.read_text(encoding="utf-8")
        if OFFLINE_CSS_PATH.name in text or "</head>" not in text:
            continue
        href = Path(os.path.relpath(css, page.parent)).as_posix()
        text = text.replace("</head>", f'<link rel="stylesheet" href="{href}"/>\n</head>', 1)
        page.write_text(text, encoding="utf-8")


def ledger_path(site_dir: Path) -> Path:
    return site_dir.parent.parent / "quality_ledger.jsonl"


@contextmanager
def _locked(site_dir: Path):
    site_dir.mkdir(parents=True, exist_ok=True)
    with open(site_dir.parent.parent / ".quality_ledger.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _relative(page: Path | None, site_dir: Path) -> str:
    if page is None:
        return ""
    try:
        return page.resolve().relative_to(site_dir.resolve()).as_posix()
    except ValueError:
        return page.as_uri()


def entry(summary: ValidationSummary, site_dir: Path, *, layer: str, asset: str, blinded: bool | None) -> dict:
    return {
        "run": summary.run_name,
        "validated_at": (summary.validated_at or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds"),
        "layer": layer or summary.suite.split(".", 1)[0],
        "suite": summary.suite,
        "asset": asset,
        "status": summary.status,
        "critical": summary.critical,
        "rows": summary.n_rows,
        "evaluated": summary.evaluated,
        "failed": [
            {"severity": f.severity, "rule": f.rule or f.expectation, "column": f.column, "rows": f.unexpected_count}
            for f in summary.failed
        ],
        "error": summary.error,
        "seconds": summary.seconds,
        "page": _relative(summary.docs_page, site_dir),
        "blinded": blinded,
        "description": summary.description,
    }


def record(
    site_dir: Path,
    summaries: Sequence[ValidationSummary],
    *,
    layer: str = "",
    assets: dict[str, str] | None = None,
    blinded: bool | None = None,
) -> None:
    """Append the validations to the ledger (a re-run of a suite within the same run replaces its line)."""
    if not summaries:
        return
    assets = assets or {}
    with _locked(site_dir):
        path = ledger_path(site_dir)
        with open(path, "a", encoding="utf-8") as out:
            for summary in summaries:
                asset = assets.get(summary.suite) or summary.asset
                line = entry(summary, site_dir, layer=layer, asset=asset, blinded=blinded)
                out.write(json.dumps(line, default=str) + "\n")
            out.flush()
            os.fsync(out.fileno())


def read_ledger(site_dir: Path) -> list[dict]:
    """Ledger entries, the last one per (run, suite)."""
    path = ledger_path(site_dir)
    if not path.exists():
        return []
    latest: dict[tuple[str, str], dict] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            item = json.loads(line)
            latest[(item["run"], item["suite"])] = item
    return list(latest.values())


def runs(entries: list[dict]) -> list[tuple[str, list[dict]]]:
    """Entries grouped by run, newest run first (a run's time is its first validation)."""
    grouped: dict[str, list[dict]] = defaultdict(list)
    for item in entries:
        grouped[item["run"]].append(item)
    # Times are kept to the second: of two runs started in the same second, the one the ledger met later is newer.
    order = {run: i for i, run in enumerate(grouped)}
    return sorted(grouped.items(), key=lambda kv: (min(e["validated_at"] for e in kv[1]), order[kv[0]]), reverse=True)


def _counts(items: list[dict]) -> dict[str, int]:
    counts = {"passed": 0, "warning": 0, "failed": 0}
    for item in items:
        counts[item["status"]] = counts.get(item["status"], 0) + 1
    return counts


def _run_file(run: str) -> str:
    return "runs/" + "".join(c if c.isalnum() or c in "-_" else "_" for c in run) + ".html"


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem;color:#1d2433;max-width:1400px}
h1{font-size:1.6rem;margin-bottom:.2rem} h2{font-size:1.25rem;margin-top:2rem}
h3{font-size:1.05rem;margin:1.4rem 0 .4rem}
.muted{color:#5b6578} table{border-collapse:collapse;width:100%;margin:.4rem 0 1rem;font-size:.9rem}
th,td{border-bottom:1px solid #e2e6ee;padding:.35rem .5rem;text-align:left;vertical-align:top}
th{background:#f4f6fa;font-weight:600} td.num{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;border-radius:.7rem;padding:.05rem .6rem;font-size:.8rem;font-weight:600}
.passed{background:#dff3e4;color:#146c2e} .warning{background:#fff2cc;color:#7a5300}
.failed{background:#fbdada;color:#9b1c1c}
.summary span{margin-right:1rem} ul.fails{margin:0;padding-left:1.1rem} a{color:#1b5fbf}
.note{background:#f4f6fa;border-left:4px solid #9aa7bd;padding:.6rem .9rem;margin:1rem 0;font-size:.9rem}
"""


def _badge(status: str) -> str:
    label = {"failed": "FAILED (blocking)", "warning": "warning", "passed": "passed"}.get(status, status)
    return f'<span class="badge {html.escape(status)}">{html.escape(label)}</span>'


def _failures_html(item: dict) -> str:
    if item.get("error"):
        return f"<em>not validated: {html.escape(item['error'])}</em>"
    if not item["failed"]:
        return '<span class="muted">all expectations met</span>'
    parts = []
    for f in item["failed"]:
        column = f" <code>{html.escape(str(f['column']))}</code>" if f.get("column") else ""
        rows = f" — {f['rows']} rows" if f.get("rows") is not None else ""
        parts.append(f"<li>[{html.escape(f['severity'])}] {html.escape(str(f['rule']))}{column}{rows}</li>")
    return '<ul class="fails">' + "".join(parts) + "</ul>"


def _run_section(run: str, items: list[dict], prefix: str) -> str:
    counts = _counts(items)
    when = min(e["validated_at"] for e in items)
    blinded = {e.get("blinded") for e in items}
    mode = "blinded" if blinded == {True} else ("UNBLINDED" if blinded == {False} else "")
    out = [
        f'<p class="summary"><span>run <code>{html.escape(run)}</code></span><span>{html.escape(when)}</span>'
        f"<span>{html.escape(mode)}</span>"
        f"<span>{len(items)} validations: {counts['passed']} passed, {counts['warning']} with warnings, "
        f"{counts['failed']} failed (blocking)</span></p>"
    ]
    by_layer: dict[str, list[dict]] = defaultdict(list)
    for item in items:
        by_layer[item["layer"]].append(item)
    layers = sorted(by_layer, key=lambda x: (LAYER_ORDER.index(x) if x in LAYER_ORDER else 99, x))
    out.append('<table class="layers"><tr><th>layer</th><th>validations</th><th>passed</th><th>warnings</th>'
               "<th>failed (blocking)</th></tr>")  # fmt: skip
    for layer in layers:
        c = _counts(by_layer[layer])
        out.append(
            f'<tr><td><a href="#layer-{html.escape(layer)}">{html.escape(layer)}</a></td>'
            f"<td class='num'>{len(by_layer[layer])}</td><td class='num'>{c['passed']}</td>"
            f"<td class='num'>{c['warning']}</td><td class='num'>{c['failed']}</td></tr>"
        )
    out.append("</table>")
    attention = sorted(
        (e for e in items if e["status"] != "passed"),
        key=lambda e: (
            _STATUS_RANK.get(e["status"], 3),
            LAYER_ORDER.index(e["layer"]) if e["layer"] in LAYER_ORDER else 99,
        ),
    )
    if attention:
        out.append("<h3>Needs attention</h3>" + _table(attention, prefix, "attention"))
    for layer in layers:
        rows = sorted(by_layer[layer], key=lambda e: (_STATUS_RANK.get(e["status"], 3), e["suite"]))
        out.append(f'<h3 id="layer-{html.escape(layer)}">{html.escape(layer)}</h3>' + _table(rows, prefix, "layer"))
    return "\n".join(out)


def _table(rows: list[dict], prefix: str, kind: str) -> str:
    out = [
        f'<table class="{kind}"><tr><th>status</th><th>suite</th><th>asset</th><th>rows</th><th>expectations</th>'
        "<th>failed expectations</th><th>page</th></tr>"
    ]
    for e in rows:
        link = f'<a href="{html.escape(prefix + e["page"])}">validation page</a>' if e.get("page") else ""
        title = f' title="{html.escape(e["description"])}"' if e.get("description") else ""
        out.append(
            f"<tr><td>{_badge(e['status'])}</td><td{title}><code>{html.escape(e['suite'])}</code></td>"
            f"<td><code>{html.escape(e.get('asset') or '')}</code></td><td class='num'>{e['rows']:,}</td>"
            f"<td class='num'>{e['evaluated'] - len(e['failed'])}/{e['evaluated']}</td>"
            f"<td>{_failures_html(e)}</td><td>{link}</td></tr>"
        )
    out.append("</table>")
    return "".join(out)


def _page(title: str, body: str) -> str:
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_CSS}</style></head><body>{body}</body></html>"
    )


_NOTE = (
    '<div class="note">Each warehouse refresh validates every layer with great-expectations suites: '
    "<b>failed (blocking)</b> means a critical expectation failed and the assets downstream of that table did not "
    "run; <b>warning</b> means only non-blocking expectations failed, and the flagged rows are listed in the "
    "warehouse table <code>quality.quarantine</code> with the reason. Each validation page names the offending "
    "rows (file and line for raw tables, keys elsewhere). See docs/quality.md.</div>"
)


def write_index(site_dir: Path) -> Path:
    """(Re)write ``index.html`` and the page of every run from the ledger."""
    with _locked(site_dir):
        grouped = runs(read_ledger(site_dir))
        (site_dir / "runs").mkdir(parents=True, exist_ok=True)
        # <warehouse>_quality/gx/uncommitted/data_docs/local_site: name the index after the warehouse file.
        name = site_dir.parents[3].name.removesuffix("_quality") if len(site_dir.parents) > 3 else "warehouse"
        for position, (run, items) in enumerate(grouped):
            run_page = site_dir / _run_file(run)
            if position > 0 and run_page.exists():
                continue  # an older run's page does not change
            body = (
                f'<p><a href="../index.html">&larr; all runs</a></p><h1>Data quality — run {html.escape(run)}</h1>'
                + _run_section(run, items, "../")
            )
            run_page.write_text(_page(f"Data quality run {run}", body), encoding="utf-8")
        body = [f"<h1>Data quality — {html.escape(name)}</h1>", _NOTE]
        if not grouped:
            body.append("<p>No validations yet.</p>")
        for run, items in grouped[:RUNS_IN_FULL]:
            body.append("<h2>Latest run</h2>" + _run_section(run, items, ""))
        if grouped:
            body.append("<h2>History</h2><table><tr><th>run</th><th>started</th><th>validations</th>"
                        "<th>passed</th><th>warnings</th><th>failed (blocking)</th></tr>")  # fmt: skip
            for run, items in grouped:
                c = _counts(items)
                status = "failed" if c["failed"] else ("warning" if c["warning"] else "passed")
                body.append(
                    f'<tr><td><a href="{html.escape(_run_file(run))}"><code>{html.escape(run)}</code></a> '
                    f"{_badge(status)}</td><td>{html.escape(min(e['validated_at'] for e in items))}</td>"
                    f"<td class='num'>{len(items)}</td><td class='num'>{c['passed']}</td>"
                    f"<td class='num'>{c['warning']}</td><td class='num'>{c['failed']}</td></tr>"
                )
            body.append("</table>")
        index = site_dir / "index.html"
        tmp = index.with_suffix(".html.tmp")
        tmp.write_text(_page("Data quality", "\n".join(body)), encoding="utf-8")
        tmp.replace(index)
    return index


def latest_run(site_dir: Path) -> tuple[str, list[dict]] | None:
    grouped = runs(read_ledger(site_dir))
    return grouped[0] if grouped else None


def summary_of_run(site_dir: Path, run: str) -> dict[str, Any]:
    """Counts of one run's validations (for the build summary)."""
    items = [e for e in read_ledger(site_dir) if e["run"] == run]
    return {"validations": len(items), **_counts(items)}
