"""Study choices ("[SAP]" items) of the clinical endpoint derivations, in one frozen configuration object.

Every rule that ``/work/shared/reference/clinical-endpoints.md`` (the endpoint spec, "the spec" below) marks
"[SAP]" is a field here with its default and the reason for that default, so an analysis run records exactly which
choices it used (``EndpointConfig().as_dict()``) and a sensitivity analysis is one ``dataclasses.replace`` away::

    from dataclasses import replace
    cfg = replace(DEFAULT_CONFIG, pfs_apply_missed_assessment_rule=False)   # FDA App. 3 sensitivity (a)

Rules that are fixed by RECIST 1.1, CTCAE v5, the EORTC scoring manual or the statistics conventions are not
configurable and live in the modules (``recist``, ``response``, ``tte``, ``survival``, ``safety``, ``qol``,
``hepatic``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

CiTransform = Literal["log", "log-log", "plain"]


@dataclass(frozen=True)
class EndpointConfig:
    """Configuration of the endpoint derivations. Defaults follow the spec; each field says where it comes from."""

    # ------------------------------------------------------------------------------------------ RECIST / mRECIST
    recist_pd_min_increase_mm: float = 5.0
    """RECIST 1.1 target PD also needs an absolute sum increase of at least this many mm over the nadir (§1.3)."""

    mrecist_pd_min_increase_mm: float = 0.0
    """mRECIST (Lencioni & Llovet 2010) has no absolute floor for PD; set 5.0 to borrow RECIST 1.1's (§2)."""

    percent_decimals: int | None = None
    """[SAP] Round PCHG/PCHGNAD to this many decimals before comparing with -30 % / +20 %. ``None`` compares unrounded
    values (with a 1e-9 tolerance on the percent scale so that 72 mm vs a 60 mm nadir is exactly +20 %) (§1.3)."""

    too_small_to_measure_mm: float = 5.0
    """Value given to a lesion recorded as "TOO SMALL TO MEASURE" (EORTC clarification; CDISC TRSTRESN = 5) (§1.2)."""

    timepoint_pr_after_response: Literal["threshold", "sticky"] = "threshold"
    """[SAP: choose one] (§1.6, EORTC FAQ "Managing PR when TP measurements change slightly"). ``"threshold"``
    (most sponsor algorithms): a visit is PR only if its sum is >= 30 % below baseline, so 100 -> 70 -> 80 labels the
    -20 % visit SD. ``"sticky"``: once a target PR/CR was recorded, a later target SD (PD not met) stays PR, as in the
    FAQ table. The best overall response is the same under both."""

    reappearance_after_cr_is_pd: bool = True
    """After an overall CR, reappearance of any lesion (non-nodal target > 0 mm, target node >= 10 mm short axis,
    non-target present again) is PD (EORTC FAQ "Does a new lesion always result in PD?") (§1.3)."""

    nonpd_response_date: Literal["latest", "earliest"] = "latest"
    """[SAP] Date of a non-PD time-point response when a visit's scans span several dates (§1.5). A PD takes the
    earliest date of a scan that shows the progression."""

    mrecist_new_lesion_min_mm: float = 10.0
    """mRECIST: a new (intrahepatic) lesion counts as unequivocal only once it is >= 10 mm; smaller ones are equivocal
    and back-dated when they grow (§2)."""

    # ------------------------------------------------------------------------------------------ BOR / ORR / DCR
    sd_min_days: int = 42
    """[SAP] SD and NON-CR/NON-PD count for the BOR only when ``ADT >= RANDDT + sd_min_days`` (admiralonco default 42;
    RECIST: "in general not less than 6-8 weeks") (§3.2)."""

    confirmation_days: int = 28
    """[SAP] A CR/PR is confirmed by a CR (or CR/PR) at least this many days later, no +1 (RECIST Table 3; admiralonco
    predefined objects; the adrs vignette's 21 is an inconsistency) (§3.3)."""

    confirmation_max_ne: int = 1
    """At most this many NE assessments between a response and its confirmation (admiralonco ``max_nr_ne = 1``)."""

    confirmation_accept_sd: bool = False
    """Allow one SD between a PR and its confirmation (deprecated admiralonco ``accept_sd``); default no SD (§3.3)."""

    cbor_cr_then_sd_is_pd: bool = False
    """[SAP] RECIST Table 3: "CR then SD or PD -> PD when the SD minimum is not met". ``False`` follows admiralonco,
    which returns NE there unless a PD record exists (§3.3, pitfall 10)."""

    # ------------------------------------------------------------------------------------------ time to event
    pfs_apply_missed_assessment_rule: bool = True
    """FDA App. 3: PD/death after >= ``pfs_missed_assessments`` missed scheduled assessments is censored at the last
    adequate assessment (CNSR 3). ``False`` is sensitivity analysis (a) (§4.2)."""

    pfs_missed_assessments: int = 2
    """Number of consecutive missed scheduled assessments that triggers censoring (§4.2)."""

    pfs_scan_interval_days: int = 42
    """[SAP] Tumour-assessment interval (every 6 weeks = 2 cycles of 21 days) up to ``pfs_interval_switch_day``."""

    pfs_scan_interval_late_days: int = 63
    """[SAP] Assessment interval after ``pfs_interval_switch_day`` (every 9 weeks after week 48)."""

    pfs_interval_switch_day: int = 336
    """[SAP] Study day (days after randomisation) of the last assessment on the early schedule (week 48)."""

    pfs_visit_window_days: int = 7
    """[SAP] Visit window W: a scheduled assessment counts as missed once ``day > scheduled + W`` passed without an
    adequate assessment (§4.2)."""

    pfs_ne_counts_as_missed: bool = True
    """[SAP] An NE assessment does not stop the missed-assessment clock (the gap is measured from the last *adequate*
    assessment). ``False`` measures it from the last assessment of any result (§4.2)."""

    pfs_apply_nact_rule: bool = True
    """Censor PFS/DOR at the last adequate assessment before new anti-cancer therapy (CNSR 2). ``False`` is
    sensitivity analysis (b) (§4.2)."""

    os_censor_at_cutoff_when_known_alive: bool = False
    """[SAP] ``False`` (spec §0/§4.1): alive dates after the cut-off are dropped and OS is censored at the last known
    alive date on or before it. ``True``: a subject known alive after the cut-off (death or contact after it) is
    censored at the cut-off date itself."""

    # ------------------------------------------------------------------------------------------ survival statistics
    conf_level: float = 0.95
    """Two-sided confidence level of every interval."""

    ci_transform: CiTransform = "log"
    """[SAP] Pointwise KM band and Brookmeyer-Crowley median CI transform: ``"log"`` (R survfit default), ``"log-log"``
    (SAS PROC LIFETEST and lifelines default) or ``"plain"`` (tern default) (§8.1)."""

    landmark_months: tuple[float, ...] = (6.0, 12.0)
    """Landmark KM rates are reported at these months (§8.2)."""

    days_per_month: float = 30.4375
    """Months = days / 30.4375 (admiralonco adtte.Rmd) (§0). A landmark of m months is the KM estimate at
    ``m * days_per_month`` days (6 months = 182.625 d, i.e. S(182) for integer-day data)."""

    # ------------------------------------------------------------------------------------------ safety
    teae_window_days: int = 30
    """TEAE end window after the last dose (admiral ADAE template ``end_window = 30``) (§5.1)."""

    teae_window_days_extended: int = 90
    """[SAP] Extended window for serious and immune-mediated AEs common in PD-1 trials (§5.1); used by the
    ``trtemfl_extended`` flag."""

    related_causalities: tuple[str, ...] = ("POSSIBLE", "PROBABLE", "DEFINITE", "RELATED", "Y")
    """[SAP] Investigator causality values that count as "related" (the CRF collects a 5-point scale)."""

    ae_missing_grade: Literal["exclude", "impute"] = "exclude"
    """[SAP] AEs with a missing grade: excluded from by-grade rows (chevron) while still counted in "any AE" rows,
    or imputed as ``ae_missing_grade_imputed`` (§5.2)."""

    ae_missing_grade_imputed: int = 3
    """[SAP] Grade given to AEs with a missing grade when ``ae_missing_grade = "impute"``."""

    hys_law_alt_ast_uln: float = 3.0
    """Hy's law screen: ALT or AST >= this multiple of ULN (§5.3)."""

    hys_law_bili_uln: float = 2.0
    """Hy's law screen: total bilirubin >= this multiple of ULN (§5.3)."""

    hys_law_window_days: int = 14
    """Hy's law screen: the bilirubin value lies 0-14 days after the transaminase elevation (§5.3)."""

    capsules_per_day: int = 6
    """Protocol capsule dose: 6 capsules a day."""

    capsule_days_per_course: int = 10
    """Protocol capsule dosing days in each 21-day course."""

    compliance_threshold_pct: float = 80.0
    """[SAP] Capsule compliance >= this percent is "compliant"."""

    # ------------------------------------------------------------------------------------------ quality of life
    qol_min_answered_fraction: float = 0.5
    """EORTC scoring manual / PROscorer ``okmiss``: a multi-item scale is scored when at least half its items are
    answered (§6.1)."""

    deterioration_threshold: float = 10.0
    """[SAP] Minimal important difference for deterioration in QLQ-C30 points (Osoba 1998) (§6.3)."""

    deterioration_definition: Literal["first", "confirmed", "definitive"] = "first"
    """[SAP] ``first`` worsening; ``confirmed`` = a second worsening >= ``deterioration_confirm_days`` later (or
    worsening at the last assessment followed by death); ``definitive`` = worsening at every later assessment (§6.3)."""

    deterioration_confirm_days: int = 7
    """Minimum days between a worsening and the worsening that confirms it (§6.3)."""

    # ------------------------------------------------------------------------------------------ hepatic
    albi_albumin_coef: float = 0.085
    """[SAP] ALBI albumin coefficient: 0.085 (Johnson 2015 as usually printed) or 0.0852 (some calculators) (§7)."""

    albi_bili_coef: float = 0.66
    """ALBI bilirubin coefficient on log10(µmol/L) (Johnson 2015)."""

    child_pugh_clinical_window_days: int = 7
    """[SAP] Ascites/encephalopathy assessed up to this many days before a lab draw are combined with it into a
    Child-Pugh score (the CRF records them at clinic visits, the labs at blood draws)."""

    def as_dict(self) -> dict[str, Any]:
        """The configuration as a plain dict (for run metadata)."""
        return asdict(self)


#: The configuration every derivation uses unless told otherwise.
DEFAULT_CONFIG = EndpointConfig()
