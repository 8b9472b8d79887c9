"""The Dagster UI as a user sees it: ``scripts/ui_screenshots.py`` on a small built trial, headless Chromium.

The trial, warehouse and recorded ``refresh_all`` run are a copy of the test session's reference build
(``tests/_reliability.py``: ``guttrial build`` of a 20-patient trial with its own ``DAGSTER_HOME``), so the UI test
does not build a trial of its own. The script starts ``dagster dev`` (as ``make ui`` does) on the copy, opens the
asset lineage, the run, the launchpad, an endpoint table and the automation page, and checks what each must show.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (/usr/bin/chromium)")
@pytest.mark.skipif(shutil.which("dagster", path=str(Path(sys.executable).parent)) is None, reason="no dagster CLI")
def test_ui_shows_lineage_run_launchpad_and_automation(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
    from _reliability import reference_build

    reference = reference_build(tmp_path_factory)
    # a private copy: dagster dev writes to its DAGSTER_HOME, and other tests read the reference's
    home, warehouse = tmp_path / "dagster_home", tmp_path / "warehouse.duckdb"
    shutil.copytree(reference.dagster_home, home)
    shutil.copyfile(reference.warehouse, warehouse)
    # No GUTTRIAL_* or DAGSTER_HOME from the caller: the script is given the copy's paths.
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUTTRIAL_") and k != "DAGSTER_HOME"}
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "ui_screenshots.py"),
            "--landing",
            str(reference.landing),
            "--warehouse",
            str(warehouse),
            "--dagster-home",
            str(home),
            "--out",
            str(tmp_path / "ui_screenshots"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    # The summary is the last thing printed: a JSON object starting on its own line.
    start = done.stdout.rfind("\n{\n") + 1 if not done.stdout.startswith("{") else 0
    assert done.stdout[start:].startswith("{"), f"no summary printed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    summary = json.loads(done.stdout[start:])
    failed = [name for name, passed in summary["checks"].items() if not passed]
    assert failed == [], f"{failed}\n{summary.get('errors')}\n(see {tmp_path / 'ui_screenshots'})"
    assert done.returncode == 0
    assert summary["checks"]["api: raw -> marts -> endpoints lineage"]
    assert set(summary["screenshots"]) == {
        "01_global_asset_lineage",
        "02_raw_to_endpoint_lineage",
        "03_run",
        "04_launchpad",
        "05_asset_survival_summary",
        "06_automation",
    }
    for path in summary["screenshots"].values():
        # A blank page compresses to a few kB; a rendered Dagster page is far larger.
        assert Path(path).stat().st_size > 30_000, path
    assert "default" not in summary["groups"]
    print(json.dumps(summary["seconds"]))
