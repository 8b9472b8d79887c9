"""Generating parameters of the demo trial and the summary ``generate_trial`` returns.

Every number the simulator uses lives in :class:`SimulationParams`, so ``truth/params.json`` is a complete
record of how a demo landing folder was made, and tests can change one knob at a time.
"""

from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class SimulationParams:
    """Knobs of the simulation. Defaults describe the protocol; scale knobs exist for benchmarks."""

    n_patients: int = 120
    seed: int = 20240501
    start_date: date = date(2024, 3, 1)
    #: Enrolment is staggered uniformly over this many days.
    enrolment_days: int = 183
    #: Data cut-off: this many days after the last patient is randomised.
    followup_days_after_lpi: int = 365
    site_id: str = "01"

    # -- survival model (days from randomisation). Hazards are proportional on the PFS scale: the arm and
    # covariate multipliers apply to both progression and death without progression.
    pfs_hr_capsule: float = 0.65
    hr_albi_grade_2plus: float = 1.45
    hr_bclc_c: float = 1.5
    hr_afp_400: float = 1.4
    hr_ecog_1: float = 1.2
    #: Weibull time to progression for a reference patient (placebo, ALBI 1, BCLC B, AFP < 400, ECOG 0).
    progression_weibull_shape: float = 1.3
    progression_median_ref_days: float = 420.0
    death_without_progression_median_ref_days: float = 2400.0
    #: Exponential survival after progression (covariates act at half strength, the arm not at all).
    post_progression_median_days: float = 300.0
    withdrawal_rate: float = 0.04
    lost_to_followup_rate: float = 0.02

    # -- tumour response
    responder_logit_placebo: float = -1.3
    responder_logit_capsule_shift: float = 0.45
    complete_response_share: float = 0.08
    measurement_cv: float = 0.06
    investigator_discordance_rate: float = 0.03
    ct_visit_missed_rate: float = 0.04
    ct_visit_late_rate: float = 0.04
    unscheduled_scan_rate: float = 0.12

    # -- treatment
    weight_band_kg: float = 60.0
    lenvatinib_low_mg: int = 8
    lenvatinib_high_mg: int = 12
    pd1_dose_mg: int = 200
    cycle_days: int = 21
    capsule_courses: int = 4
    capsule_days_per_course: int = 10
    capsules_per_day: int = 6
    dose_band_deviation_rate: float = 0.02

    # -- labs and CRF mess
    #: The hospital lab switched its bilirubin method (and unit, mg/dL -> umol/L) on this date.
    bilirubin_unit_change_days_after_start: int = 200
    partial_date_rate: float = 0.03
    missing_marker_rate: float = 0.015
    code_format_mess_rate: float = 0.02
    duplicate_row_rate: float = 0.004

    # -- biospecimens and sequencing
    #: None: faeces at baseline, end of each capsule course and progression. An integer N: baseline, the
    #: four course ends, then 3-weekly follow-up collections up to N scheduled collections (benchmarks).
    faecal_samples_per_patient: int | None = None
    specimen_missed_rate: float = 0.04
    n_asvs: int = 800
    n_seq_batches: int = 5
    library_size_median: float = 25000.0
    library_size_min: int = 5000
    library_size_max: int = 80000
    dirichlet_precision: float = 150.0
    negative_controls_per_batch: int = 2

    # -- metabolomics
    n_faecal_features: int = 400
    n_serum_features: int = 300
    mtb_batch_size: int = 200
    mtb_qc_every: int = 10

    @property
    def bilirubin_unit_change_date(self) -> date:
        return self.start_date + timedelta(days=self.bilirubin_unit_change_days_after_start)

    def to_json_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in asdict(self).items():
            out[key] = value.isoformat() if isinstance(value, date) else value
        out["bilirubin_unit_change_date"] = self.bilirubin_unit_change_date.isoformat()
        return out


def rng_for(seed: int, stream: str) -> np.random.Generator:
    """An independent generator per named stream, so that changing e.g. the ASV count leaves the clinical
    data of the same seed unchanged (CRC32 is stable across runs, unlike ``hash()``)."""
    return np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(stream.encode())]))


@dataclass
class TrialSummary:
    """What ``generate_trial`` wrote (small: safe to print or log)."""

    out_dir: Path
    n_patients: int
    n_capsule: int
    n_placebo: int
    cutoff_date: date
    n_landing_files: int
    n_crf_rows: dict[str, int] = field(default_factory=dict)
    n_faecal_specimens: int = 0
    n_serum_specimens: int = 0
    n_sequenced_samples: int = 0
    n_asvs: int = 0
    seq_batches: dict[str, str] = field(default_factory=dict)
    n_metabolomics_injections: int = 0
    n_faecal_features: int = 0
    n_serum_features: int = 0
    mtb_batches: list[str] = field(default_factory=list)
