"""Look at the Dagster UI as a user would, headless, and save screenshots.

Starts ``dagster dev`` (the command ``make ui`` runs) on a built warehouse with a ``DAGSTER_HOME`` that holds at
least one completed ``refresh_all`` run (one is recorded with ``guttrial build`` if there is none), opens with
Playwright driving Debian's Chromium:

1. the global asset lineage (groups as boxes: raw -> staging -> intermediate -> marts -> endpoints, microbiome, ...),
2. the same lineage searched for the path from a raw CRF table to ``analysis/adtte`` (the PFS/OS dataset),
3. the page of the latest completed ``refresh_all`` run,
4. the ``refresh_all`` launchpad (cut-off and blinding prefilled and documented),
5. ``analysis/survival_summary`` (key figures in the materialisation metadata),
6. the automation page (nightly schedule and landing sensor, both stopped),

saves one PNG per page, checks what each page must show (page text, and the lineage raw -> marts -> endpoints
through the webserver's GraphQL API), prints a JSON summary and exits non-zero when a check fails. The server is
stopped at the end (its process group only).

    .venv/bin/python scripts/ui_screenshots.py --out data/ui_screenshots            # demo warehouse (make demo)
    .venv/bin/python scripts/ui_screenshots.py --workdir /tmp/ui --patients 20       # small fresh trial
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CHROMIUM = Path("/usr/bin/chromium")
LOCATION = "orchestration.definitions"
JOB = "refresh_all"
VIEWPORT = {"width": 1600, "height": 900}
#: The lineage a user must be able to follow: a raw CRF table, through the marts, to an endpoint table.
LINEAGE = ("raw/crf_tr", "marts/tumor_measurements", "analysis/adtte")


@dataclass
class Outcome:
    screenshots: dict[str, str] = field(default_factory=dict)
    checks: dict[str, bool] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def check(self, name: str, passed: bool) -> None:
        self.checks[name] = bool(passed)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(self.checks.values())


# ------------------------------------------------------------------------------------------------ set-up


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare_home(home: Path) -> None:
    """A DAGSTER_HOME with the project's dagster.yaml (telemetry off, pool ``duckdb`` limited to 1)."""
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")


def latest_completed_run(home: Path) -> str | None:
    """The id of the newest successful ``refresh_all`` run recorded in ``home``, if any."""
    import dagster as dg
    from dagster._core.instance.ref import InstanceRef

    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        runs = instance.get_runs(filters=dg.RunsFilter(job_name=JOB, statuses=[dg.DagsterRunStatus.SUCCESS]), limit=1)
        return runs[0].run_id if runs else None


def server_env(home: Path, landing: Path, warehouse: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUTTRIAL_")}
    env.update(
        DAGSTER_HOME=str(home),
        GUTTRIAL_LANDING=str(landing),
        GUTTRIAL_WAREHOUSE=str(warehouse),
        DBT_SEND_ANONYMOUS_USAGE_STATS="false",
        GX_ANALYTICS_ENABLED="false",
    )
    return env


def record_run(home: Path, landing: Path, warehouse: Path, iterations: int) -> None:
    """``guttrial build`` with DAGSTER_HOME set records the run where the UI reads it."""
    env = server_env(home, landing, warehouse)
    env["GUTTRIAL_MICROBIOME_ITERATIONS"] = str(iterations)
    subprocess.run(
        [str(BIN / "guttrial"), "build", "--quiet", "--landing", str(landing), "--warehouse", str(warehouse)],
        env=env,
        check=True,
    )


@contextmanager
def dagster_dev(home: Path, landing: Path, warehouse: Path, port: int, log: Path) -> Iterator[subprocess.Popen]:
    """``dagster dev`` as ``make ui`` starts it, in its own process group (stopped by group id on exit)."""
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [str(BIN / "dagster"), "dev", "-m", LOCATION, "-h", "127.0.0.1", "-p", str(port)],
            cwd=ROOT,
            env=server_env(home, landing, warehouse),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield proc
        finally:
            # Ctrl-C is how `dagster dev` expects to be stopped; on a loaded machine its services may take longer
            # than we wait, so the group (the webserver, daemon and code servers it started) is then killed.
            try:
                os.killpg(proc.pid, signal.SIGINT)
                proc.wait(timeout=30)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def graphql(base: str, query: str, variables: dict[str, Any] | None = None, timeout: float = 30) -> dict[str, Any]:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(f"{base}/graphql", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        payload = json.loads(response.read())
    if payload.get("errors"):
        raise RuntimeError(f"GraphQL errors: {payload['errors']}")
    return payload["data"]


WORKSPACE_QUERY = """
{ workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus
    locationOrLoadError { __typename ... on PythonError { message } } } } } }
"""


def wait_until_loaded(base: str, proc: subprocess.Popen, timeout: float) -> None:
    """Wait for the webserver to answer and the code location to finish loading (or fail)."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"dagster dev exited with code {proc.returncode}")
        try:
            data = graphql(base, WORKSPACE_QUERY, timeout=10)
            entries = data["workspaceOrError"].get("locationEntries", [])
            entry = next((e for e in entries if e["name"] == LOCATION), None)
            if entry and entry["loadStatus"] == "LOADED":
                loaded = entry["locationOrLoadError"] or {}
                if loaded.get("__typename") == "PythonError":
                    raise RuntimeError(f"code location failed to load: {loaded.get('message')}")
                return
            last = f"location {entry['loadStatus'] if entry else 'absent'}"
        except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError) as exc:
            last = str(exc)
        time.sleep(2)
    raise TimeoutError(f"the UI was not ready after {timeout:.0f} s ({last})")


ASSET_NODES_QUERY = """
{ assetNodes { assetKey { path } groupName dependencyKeys { path } } }
"""


def upstream_closure(nodes: list[dict[str, Any]], start: str) -> set[str]:
    parents = {"/".join(n["assetKey"]["path"]): ["/".join(d["path"]) for d in n["dependencyKeys"]] for n in nodes}
    seen: set[str] = set()
    todo = [start]
    while todo:
        for parent in parents.get(todo.pop(), []):
            if parent not in seen:
                seen.add(parent)
                todo.append(parent)
    return seen


AUTOMATION_QUERY = """
{ repositoriesOrError { ... on RepositoryConnection { nodes {
    schedules { name scheduleState { status } } sensors { name sensorState { status } } } } } }
"""


def check_automation_api(base: str, outcome: Outcome) -> None:
    """The nightly schedule and the landing sensor exist and are stopped until someone turns them on."""
    states: dict[str, str] = {}
    for repo in graphql(base, AUTOMATION_QUERY)["repositoriesOrError"]["nodes"]:
        states.update({s["name"]: s["scheduleState"]["status"] for s in repo["schedules"]})
        states.update({s["name"]: s["sensorState"]["status"] for s in repo["sensors"]})
    outcome.notes["automation"] = states
    outcome.check(
        "api: schedule and sensor stopped by default",
        states.get("nightly_refresh") == "STOPPED" and states.get("landing_folder_sensor") == "STOPPED",
    )


def check_lineage_api(base: str, outcome: Outcome) -> None:
    """The served definitions link raw -> marts -> endpoints (what the graph draws as edges)."""
    nodes = graphql(base, ASSET_NODES_QUERY)["assetNodes"]
    groups: dict[str, int] = {}
    for node in nodes:
        groups[node["groupName"]] = groups.get(node["groupName"], 0) + 1
    outcome.notes["groups"] = groups
    raw, mart, endpoint = LINEAGE
    upstream_of_endpoint = upstream_closure(nodes, endpoint)
    outcome.check("api: raw -> marts -> endpoints lineage", {raw, mart} <= upstream_of_endpoint)
    outcome.check("api: marts downstream of raw", raw in upstream_closure(nodes, mart))
    outcome.check("api: no asset in group 'default'", "default" not in groups)


# ------------------------------------------------------------------------------------------------ pages


def _settle(page: Any, text: str, timeout_ms: float) -> None:
    """Wait for ``text`` to be visible, then for the layout to stop moving (graphs animate into place)."""
    page.get_by_text(text, exact=True).first.wait_for(state="visible", timeout=timeout_ms)
    page.wait_for_load_state("networkidle", timeout=timeout_ms)
    page.wait_for_timeout(1500)


def _first_visit(page: Any, base: str, timeout_ms: float) -> None:
    """Open the UI once as a new user does: skip the community sign-up dialog (shown once per instance, about a
    second after the first page loads) and collapse the navigation so the pages get the width."""
    page.goto(f"{base}/overview", wait_until="domcontentloaded")
    page.get_by_text("Hide navigation").wait_for(state="visible", timeout=timeout_ms)
    try:
        page.get_by_text("Join the Dagster community").wait_for(state="visible", timeout=5000)
        page.get_by_text("Skip", exact=True).click()
    except PlaywrightTimeout:
        pass  # already dismissed on this instance
    page.get_by_text("Hide navigation").click()


def shoot(page: Any, out_dir: Path, name: str, outcome: Outcome, full_page: bool = False) -> None:
    path = out_dir / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    outcome.screenshots[name] = str(path)


#: Groups in the order the layers run, as drawn on the global lineage.
LAYER_ORDER = ("raw", "staging", "intermediate", "marts", "endpoints", "microbiome", "metabolomics")
#: A path a QA reviewer follows: one raw CRF table to the PFS/OS analysis dataset (every asset between them).
PATH_SELECTION = f'key:"{LINEAGE[0]}"+ and +key:"{LINEAGE[-1]}"'


def _hide_group_list(page: Any) -> None:
    """Fold the group list beside the graph (the toggle right of 'Jump to…'), giving the graph the width."""
    page.locator("input[placeholder='Jump to…']").locator("xpath=following::button[1]").click()
    page.wait_for_timeout(500)


def _center_graph(page: Any, labels: tuple[str, ...]) -> dict[str, float]:
    """Drag the canvas so the nodes labelled ``labels`` sit in the middle of the graph area (the global graph opens
    at a fixed zoom, anchored left); returns their extent."""
    viewport = page.viewport_size
    boxes = []
    for label in labels:
        for node in page.get_by_text(label, exact=True).all():
            box = node.bounding_box()
            if box and box["x"] > 80 and box["y"] > 110:  # on the canvas, not in the navigation or the header
                boxes.append(box)
    if not boxes:
        return {}
    x0, x1 = min(b["x"] for b in boxes), max(b["x"] + b["width"] for b in boxes)
    y0, y1 = min(b["y"] for b in boxes), max(b["y"] + b["height"] for b in boxes)
    target_x, target_y = 80 + (viewport["width"] - 140) / 2, 110 + (viewport["height"] - 110) / 2
    grab_x, grab_y = (x0 + x1) / 2, y1 + 80  # empty canvas just below the nodes
    page.mouse.move(grab_x, grab_y)
    page.mouse.down()
    page.mouse.move(target_x, grab_y + target_y - (y0 + y1) / 2, steps=12)
    page.mouse.up()
    page.wait_for_timeout(1500)  # the dotted background redraws after a pan
    return {"x0": x0, "x1": x1, "y0": y0, "y1": y1}


def _wait_for_statuses(page: Any, seconds: float = 60) -> None:
    """Give the graph time to fetch the materialisation statuses it draws on each node (best effort: the screenshot
    is still useful without them)."""
    with suppress(PlaywrightTimeout):
        page.wait_for_function(
            "() => !document.body.innerText.includes('fetching statuses') && "
            "!document.body.innerText.includes('Loading')",
            timeout=seconds * 1000,
        )
    page.wait_for_timeout(1500)


def _page_global_lineage(page: Any, base: str, run_id: str, timeout_ms: float, outcome: Outcome) -> bool:
    """The global lineage: every group as a box, edges from raw through the marts to the analyses."""
    page.goto(f"{base}/asset-groups", wait_until="domcontentloaded")
    _settle(page, "endpoints", timeout_ms)
    _hide_group_list(page)
    extent = _center_graph(page, (*LAYER_ORDER, "reports", "publish", "restricted"))
    outcome.check("global lineage draws the group boxes", bool(extent))
    # Drawn left to right in layer order: each layer's box starts right of the one it reads from.
    lefts = {}
    for group in LAYER_ORDER[:5]:
        box = page.get_by_text(group, exact=True).last.bounding_box()
        lefts[group] = box["x"] if box else None
    outcome.notes["global lineage x"] = lefts
    xs = [lefts[g] for g in LAYER_ORDER[:5]]
    outcome.check(
        "global lineage runs raw -> staging -> intermediate -> marts -> endpoints",
        None not in xs and xs == sorted(xs),
    )
    return False


def _page_path_lineage(page: Any, base: str, run_id: str, timeout_ms: float, outcome: Outcome) -> bool:
    """The assets between one raw CRF table and the PFS/OS dataset, typed into the lineage search as a user does."""
    page.goto(f"{base}/asset-groups", wait_until="domcontentloaded")
    _settle(page, "endpoints", timeout_ms)
    _hide_group_list(page)  # (it lists every group, whatever the graph shows)
    page.locator(".CodeMirror").first.click()
    page.keyboard.type(PATH_SELECTION)
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/asset-groups~"), timeout=timeout_ms)  # the selection is now in the URL
    page.wait_for_function(
        "() => !document.body.innerText.includes('microbiome')", timeout=timeout_ms
    )  # the graph has re-laid out without the groups off the path
    page.wait_for_load_state("networkidle", timeout=timeout_ms)
    text = page.inner_text("body")
    shown = [g for g in ("raw", "staging", "intermediate", "marts", "endpoints") if g in text.split()]
    outcome.notes["path lineage groups"] = shown
    outcome.check(
        "path lineage shows raw, staging, marts, endpoints", {"raw", "staging", "marts", "endpoints"} <= set(shown)
    )
    outcome.check("path lineage has no omics", "microbiome" not in text.split() and "metabolomics" not in text.split())
    xs = [page.get_by_text(g, exact=True).last.bounding_box() for g in ("raw", "staging", "marts", "endpoints")]
    outcome.check("path lineage runs left to right", all(xs) and [b["x"] for b in xs] == sorted(b["x"] for b in xs))
    # Open the groups (the graph's "Expand all groups", Alt+E) to show the tables themselves, with their status.
    page.locator(".CodeMirror textarea").first.blur()
    page.keyboard.press("Alt+e")
    last_table = LINEAGE[-1].split("/")[-1]
    page.get_by_text(last_table, exact=True).first.wait_for(state="visible", timeout=timeout_ms)
    _wait_for_statuses(page)
    text = page.inner_text("body")
    tables = [key.split("/")[-1] for key in LINEAGE]
    outcome.check("path lineage shows the tables raw -> mart -> endpoint", all(t in text for t in tables))
    return False


def _page_run(page: Any, base: str, run_id: str, timeout_ms: float, outcome: Outcome) -> bool:
    """The page of a completed refresh: status, steps over time, event log."""
    page.goto(f"{base}/runs/{run_id}", wait_until="domcontentloaded")
    # The header says Success before the event log has streamed in; RUN_SUCCESS is its last event.
    _settle(page, "RUN_SUCCESS", timeout_ms)
    text = page.inner_text("body")
    outcome.check("run page shows success", "Success" in text and "RUN_SUCCESS" in text)
    outcome.check("run page shows the job", JOB in text)
    outcome.check("run page shows no errored step", "Errored (0)" in text)
    return False


def _page_launchpad(page: Any, base: str, run_id: str, timeout_ms: float, outcome: Outcome) -> bool:
    """The launchpad of refresh_all: the settings prefilled; with the cursor on cutoff_date, the side panel
    documents every field."""
    page.goto(f"{base}/locations/__repository__@{LOCATION}/jobs/{JOB}/playground", wait_until="domcontentloaded")
    page.locator(".CodeMirror-line", has_text="cutoff_date").first.wait_for(state="visible", timeout=timeout_ms)
    page.wait_for_timeout(1000)
    page.locator(".CodeMirror-line", has_text="cutoff_date").first.click()
    page.keyboard.press("End")
    page.get_by_text("YYYY-MM-DD", exact=False).first.wait_for(state="visible", timeout=timeout_ms)
    page.wait_for_timeout(1000)
    text = page.inner_text("body")
    for name in ("cutoff_date", "unblinded", "randomisation_list", "warehouse_path"):
        outcome.check(f"launchpad shows {name}", name in text)
    outcome.check("launchpad documents the cut-off", "Data cut-off date, YYYY-MM-DD" in text)
    outcome.check("launchpad documents the blinding switch", "Blinding switch" in text)
    outcome.check("launchpad config is valid as prefilled", "No errors" in text)
    return False


def _page_survival_summary(page: Any, base: str, run_id: str, timeout_ms: float, outcome: Outcome) -> bool:
    """An endpoint table's page: description, owner, and the key figures of its last materialisation."""
    page.goto(f"{base}/assets/analysis/survival_summary", wait_until="domcontentloaded")
    figure = page.get_by_text("PFS [POOLED] median months (95% CI)", exact=True).first
    figure.wait_for(state="attached", timeout=timeout_ms)
    page.wait_for_load_state("networkidle", timeout=timeout_ms)
    figure.scroll_into_view_if_needed()
    page.mouse.wheel(0, -250)  # keep the metadata table's header in view
    page.wait_for_timeout(1500)
    text = page.inner_text("body")
    outcome.check("asset page shows the owner", "biostatistics" in text)
    outcome.check("asset page shows the group description", "endpoints: Clinical endpoints" in text)
    outcome.check("asset page shows the pooled PFS median", "PFS [POOLED] median months (95% CI)" in text)
    outcome.check("asset page shows the row count", "Row count" in text)
    return False


def _page_automation(page: Any, base: str, run_id: str, timeout_ms: float, outcome: Outcome) -> bool:
    """Automation: the nightly schedule and the landing sensor, both off until someone turns them on."""
    page.goto(f"{base}/automation", wait_until="domcontentloaded")
    _settle(page, "landing_folder_sensor", timeout_ms)
    text = page.inner_text("body")
    outcome.check("automation shows the schedule", "nightly_refresh" in text)
    outcome.check("automation shows the sensor", "landing_folder_sensor" in text)
    return False


#: Screenshot name -> page visit (which returns whether to capture the full page).
PAGES = {
    "01_global_asset_lineage": _page_global_lineage,
    "02_raw_to_endpoint_lineage": _page_path_lineage,
    "03_run": _page_run,
    "04_launchpad": _page_launchpad,
    "05_asset_survival_summary": _page_survival_summary,
    "06_automation": _page_automation,
}


def visit_pages(base: str, run_id: str, out_dir: Path, outcome: Outcome, timeout_ms: float) -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            # 1.5x device pixels: graph labels stay legible in the PNGs.
            page = browser.new_page(viewport=VIEWPORT, device_scale_factor=1.5)
            page.set_default_timeout(timeout_ms)
            _first_visit(page, base, timeout_ms)
            for name, visit in PAGES.items():
                started = time.perf_counter()
                full_page = False
                try:
                    full_page = visit(page, base, run_id, timeout_ms, outcome)
                except PlaywrightError as exc:  # includes timeouts: keep going, keep the evidence
                    outcome.check(f"{name} rendered", False)
                    outcome.notes.setdefault("errors", {})[name] = str(exc).splitlines()[0]
                shoot(page, out_dir, name, outcome, full_page=full_page)
                outcome.seconds[name] = round(time.perf_counter() - started, 1)
        finally:
            browser.close()


# ------------------------------------------------------------------------------------------------ main


def run(args: argparse.Namespace) -> Outcome:
    outcome = Outcome()
    started = time.perf_counter()
    workdir = args.workdir.resolve() if args.workdir else None
    if workdir is not None:
        landing = workdir / "demo" / "landing"
        warehouse = workdir / "warehouse.duckdb"
        home = workdir / "dagster_home"
        if not landing.is_dir():
            subprocess.run(
                [str(BIN / "guttrial"), "demo", "--out", str(workdir / "demo"), "--patients", str(args.patients)],
                check=True,
            )
    else:
        landing, warehouse, home = args.landing.resolve(), args.warehouse.resolve(), args.dagster_home.resolve()
    out_dir = (args.out or (workdir or ROOT / "data") / "ui_screenshots").resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    prepare_home(home)

    run_id = latest_completed_run(home)
    if run_id is None or not warehouse.exists():
        record_run(home, landing, warehouse, args.iterations)
        run_id = latest_completed_run(home)
        outcome.seconds["build (recorded run)"] = round(time.perf_counter() - started, 1)
    if run_id is None:
        raise RuntimeError(f"no completed {JOB} run in {home}")
    outcome.notes["run_id"] = run_id

    if args.url:  # a UI that is already running (e.g. `make ui`) on the same DAGSTER_HOME
        base = args.url.rstrip("/")
        check_lineage_api(base, outcome)
        check_automation_api(base, outcome)
        visit_pages(base, run_id, out_dir, outcome, args.timeout * 1000)
    else:
        port = args.port or free_port()
        base = f"http://127.0.0.1:{port}"
        server_started = time.perf_counter()
        with dagster_dev(home, landing, warehouse, port, out_dir / "dagster_dev.log") as proc:
            wait_until_loaded(base, proc, args.timeout)
            outcome.seconds["dagster dev ready"] = round(time.perf_counter() - server_started, 1)
            check_lineage_api(base, outcome)
            check_automation_api(base, outcome)
            visit_pages(base, run_id, out_dir, outcome, args.timeout * 1000)
    outcome.seconds["total"] = round(time.perf_counter() - started, 1)
    return outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--landing", type=Path, default=ROOT / "demo" / "landing")
    parser.add_argument("--warehouse", type=Path, default=ROOT / "data" / "warehouse.duckdb")
    parser.add_argument("--dagster-home", type=Path, default=ROOT / ".dagster_home")
    parser.add_argument(
        "--workdir", type=Path, help="generate a small trial here and use its own warehouse and DAGSTER_HOME instead"
    )
    parser.add_argument("--patients", type=int, default=20, help="patients of the --workdir trial")
    parser.add_argument("--iterations", type=int, default=20, help="rarefaction iterations of a recorded build")
    parser.add_argument("--out", type=Path, help="where the PNGs go (default: <workdir or data>/ui_screenshots)")
    parser.add_argument("--port", type=int, default=0, help="webserver port (default: a free one)")
    parser.add_argument("--url", help="use a UI already running on this DAGSTER_HOME instead of starting one")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for the UI or a page")
    args = parser.parse_args(argv)
    if not CHROMIUM.exists():
        print(f"error: {CHROMIUM} not found (apt-get install chromium)", file=sys.stderr)
        return 2
    outcome = run(args)
    print(
        json.dumps(
            {
                "ok": outcome.ok,
                "checks": outcome.checks,
                "screenshots": outcome.screenshots,
                "seconds": outcome.seconds,
                **outcome.notes,
            },
            indent=2,
        )
    )
    return 0 if outcome.ok else 1


if __name__ == "__main__":
    sys.exit(main())
