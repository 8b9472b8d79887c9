"""The GX runner reports failures with their columns and the offending rows' lineage."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from expectations import QualityRunner
from expectations.suites import raw_suites


def test_raw_crf_suite_names_failing_rows(tmp_path: Path) -> None:
    spec = raw_suites()["crf_rand"]
    frame = pd.DataFrame(
        {
            "STUDYID": ["HCC", "HCC", "HCC"],
            "SITEID": ["01", "01", "01"],
            "SUBJID": ["001", "", "003"],
            "RANDNO": ["R1", "R2", "R3"],
            "RANDDTC": ["2024-01-01", "2024-01-02", "2024-01-03"],
            "_source_file": ["crf/rand.csv"] * 3,
            "_row_number": [2, 3, 4],
            "_file_sha256": ["x"] * 3,
        }
    )
    runner = QualityRunner(tmp_path / "quality")
    summary = runner.validate(spec, frame)
    assert not summary.success and summary.critical
    [failure] = summary.failed
    assert failure.column == "SUBJID" and failure.unexpected_count == 1
    # The sample names the row by its lineage and shows the offending value.
    assert failure.sample == [{"SUBJID": "", "_source_file": "crf/rand.csv", "_row_number": 3}]
    assert runner.validate(spec, frame.assign(SUBJID=["001", "002", "003"])).success
    index = runner.build_docs()
    assert index.exists() and "raw.crf_rand" in index.read_text()
