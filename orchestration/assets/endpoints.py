"""Clinical endpoints: Python assets that read the dbt marts and write DuckDB schema ``analysis``.

Four multi-assets (group ``endpoints``), one per domain of :mod:`analysis.endpoints`, each computing its tables
together and replacing them in one transaction (:func:`orchestration.analysis_io.write_tables`):

* ``endpoints_efficacy``: RECIST 1.1/mRECIST time-point responses, BOR, concordance with the investigator, ADTTE,
  KM estimates, survival summary and arm comparisons, ORR/DCR and their differences, the run record;
* ``endpoints_safety``: TEAE overview and SOC/PT tables, CTCAE lab grades and worst grades, Hy's law, exposure;
* ``endpoints_qol``: QLQ-C30 scores, change from baseline, time to deterioration;
* ``endpoints_hepatic``: ALBI and Child-Pugh over time.

Every asset key is ``analysis/<table>``, downstream of the mart keys ``marts/<name>`` it reads. Settings come from
the ``settings`` resource: warehouse, data cut-off (``settings.cutoff``; nothing after it is used) and blinding
(``settings.is_unblinded``). A blinded run computes pooled estimates only and carries no arm anywhere (the arm
column is dropped from ADSL before anything is derived, and the comparison tables are written empty, replacing
any arm-level table an earlier unblinded run may have left in the same file). Configuration: the
:class:`~analysis.endpoint_config.EndpointConfig` defaults (recorded in ``analysis.endpoint_run``).
"""

import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import dagster as dg
import pandas as pd

from analysis import endpoints as ep
from analysis.endpoint_config import DEFAULT_CONFIG, EndpointConfig
from orchestration.analysis_io import ANALYSIS_SCHEMA, read_marts, table_metadata, write_tables
from orchestration.assets.raw import DUCKDB_POOL
from orchestration.groups import group_owners
from orchestration.resources import TrialSettings

ENDPOINTS_GROUP = "endpoints"
OWNERS = group_owners(ENDPOINTS_GROUP)

TABLE_DESCRIPTIONS: dict[str, str] = {
    "recist_timepoint_responses": "Derived time-point responses from lesion measurements, one row per subject, "
    "post-baseline visit and criterion (RECIST 1.1; mRECIST where viable diameters are recorded): SOD, baseline, "
    "nadir, % change, target/non-target/new-lesion and overall response.",
    "best_overall_response": "Best overall response per subject, criterion, evaluator (DERIVED/INVESTIGATOR) and "
    "confirmation (admiralonco rules; SD >= 42 days, confirmation >= 28 days).",
    "response_concordance": "Derived RECIST 1.1 vs investigator: agreement and Cohen's kappa per visit, patient BOR "
    "and patient confirmed BOR.",
    "response_concordance_by_patient": "Per patient BOR and confirmed BOR from both sources with agreement flags.",
    "response_discordant_visits": "QA listing: every visit where the derived and the investigator's overall "
    "response differ (or exist on one side only), with both readings' components.",
    "adtte": "Time-to-event analysis dataset (ADTTE shape), one row per subject per parameter: PFS/OS/DOR/TTR "
    "(derived RECIST 1.1), *_MR (mRECIST), *_INV (investigator); CNSR codes in analysis.tte.",
    "km_estimates": "Kaplan-Meier estimates per parameter and group at every observed time: numbers at risk, "
    "events, survival and pointwise 95% CI (log transform, as R survfit).",
    "survival_summary": "Per parameter and group: n, events, median with Brookmeyer-Crowley 95% CI (days), "
    "6- and 12-month KM rates with CIs.",
    "survival_comparisons": "CAPSULE vs PLACEBO (unblinded runs only): log-rank chi2/p unstratified and stratified "
    "by randomisation stratum, Cox HR (Efron) with Wald 95% CI, for PFS, PFS_MR, PFS_INV and OS.",
    "response_rates": "ORR and DCR with Clopper-Pearson 95% CI per criterion, evaluator, confirmation, population "
    "(ITT, RESPONSE-EVALUABLE) and group.",
    "response_rate_differences": "ORR/DCR differences vs PLACEBO with Miettinen-Nurminen 95% CI, unstratified and "
    "stratified (CMH weights); unblinded runs only.",
    "endpoint_run": "The endpoint computation: cut-off, blinding, NACT source, configuration (JSON), row counts.",
    "ae_summary": "TEAE overview: subjects with >= 1 TEAE per category (any, related, grade >= 3, serious, fatal, "
    "action taken per drug, immune-related) over the safety population.",
    "ae_by_soc_term": "TEAEs by SOC and preferred term, subjects counted once at their maximum grade, per grade "
    "group (chevron AET04 layout).",
    "lab_grades": "Every lab draw (safety population) with baseline, BNRIND and CTCAE v5 grade (baseline-dependent "
    "for ALT/AST/bilirubin/ALP/GGT).",
    "lab_toxicity": "Baseline and worst post-baseline CTCAE grade per subject and test, with the shift.",
    "lab_toxicity_summary": "Per test and group: subjects by worst post-baseline grade (0-4) and grade >= 3.",
    "hys_law": "Hy's law screen per subject: ALT/AST >= 3x reference with bilirubin >= 2x reference within 14 days "
    "(reference ULN, and max(ULN, baseline) as a variant).",
    "dose_intensity": "Per subject and drug: duration, cumulative and planned dose, relative dose intensity, "
    "capsule compliance.",
    "exposure_summary": "Descriptive statistics of exposure per drug and group, and capsule-compliant subjects.",
    "qol_scores": "EORTC QLQ-C30 scale scores (0-100) and summary score per subject and visit, with baseline and "
    "change from baseline.",
    "qol_change_summary": "Per scale, visit and group: n, mean score and mean change from baseline.",
    "qol_deterioration": "Time to deterioration (>= 10 points) per QLQ-C30 scale, ADTTE shape (PARAMCD TTD_<scale>).",
    "qol_deterioration_summary": "KM summary of time to deterioration per scale and group.",
    "hepatic_function": "ALBI score/grade (and modified ALBI) and Child-Pugh per subject and draw; Child-Pugh at the "
    "baseline draw only (ascites/encephalopathy are recorded at baseline).",
}

#: Marts (asset keys ``marts/<name>``) each domain reads (NACTDT comes with ``adsl.nact_date``).
DOMAIN_DEPS: dict[str, list[dg.AssetKey]] = {
    domain: [dg.AssetKey(["marts", m]) for m in marts] for domain, marts in ep.DOMAIN_MARTS.items()
}

Compute = Callable[[Mapping[str, pd.DataFrame], EndpointConfig, Any, bool], dict[str, pd.DataFrame]]
COMPUTE: dict[str, Compute] = {
    "efficacy": ep.compute_efficacy,
    "safety": ep.compute_safety,
    "qol": ep.compute_qol,
    "hepatic": ep.compute_hepatic,
}
DESCRIPTIONS: dict[str, str] = {
    "efficacy": "Efficacy endpoints (RECIST 1.1/mRECIST, BOR/ORR/DCR, PFS/OS/DOR, KM, log-rank, Cox) from the marts.",
    "safety": "Safety endpoints (TEAE tables, CTCAE lab grades, Hy's law, exposure) from the marts.",
    "qol": "Quality of life (QLQ-C30 scores, change from baseline, time to deterioration) from the marts.",
    "hepatic": "Hepatic function (ALBI, Child-Pugh) over time from the marts.",
}


def analysis_key(table: str) -> dg.AssetKey:
    return dg.AssetKey([ANALYSIS_SCHEMA, table])


# ------------------------------------------------------------------------------------------------ metadata


def _ci(est: float | None, lo: float | None, hi: float | None, digits: int = 1, scale: float = 1.0) -> str:
    def s(v: float | None) -> str:
        return "NE" if v is None else f"{v * scale:.{digits}f}"

    return f"{s(est)} ({s(lo)}-{s(hi)})"


def key_figures(tables: Mapping[str, pd.DataFrame], config: EndpointConfig = DEFAULT_CONFIG) -> dict[str, Any]:
    """Per-table metadata with the headline figures: PFS/OS medians (months) with CI per group, HR with CI
    (stratified, unblinded runs), ORR/DCR (confirmed, derived RECIST 1.1, ITT) with CI, and the summary text."""
    out: dict[str, dict[str, Any]] = {}
    if "survival_summary" not in tables:
        return out
    figs = ep.efficacy_summary(
        tables["survival_summary"],
        tables["survival_comparisons"],
        tables["response_rates"],
        tables["response_rate_differences"],
        config,
    )
    surv: dict[str, Any] = {}
    comp: dict[str, Any] = {}
    for r in figs["survival"]:
        if r["endpoint"] not in ("PFS", "OS"):
            continue
        tag = f"{r['endpoint']} [{r['group']}]"
        surv[f"{tag} median months (95% CI)"] = _ci(r["median_months"], r["median_lcl_months"], r["median_ucl_months"])
        if r["median_days"] is not None:
            surv[f"{tag} median days"] = dg.MetadataValue.float(r["median_days"])
        surv[f"{tag} events/n"] = f"{r['events']}/{r['n']}"
        if r.get("stratified_hr") is not None:
            comp[f"{r['endpoint']} HR {r['group']} vs {r['reference']} (stratified, 95% CI)"] = _ci(
                r["stratified_hr"], r["stratified_hr_lcl"], r["stratified_hr_ucl"], 3
            )
            comp[f"{r['endpoint']} HR {r['group']} vs {r['reference']}"] = dg.MetadataValue.float(r["stratified_hr"])
            comp[f"{r['endpoint']} stratified log-rank p"] = dg.MetadataValue.float(r["stratified_logrank_p"])
        if r.get("hr") is not None:
            comp[f"{r['endpoint']} HR {r['group']} vs {r['reference']} (unstratified, 95% CI)"] = _ci(
                r["hr"], r["hr_lcl"], r["hr_ucl"], 3
            )
    resp: dict[str, Any] = {}
    for r in figs["response"]:
        primary = r["criterion"] == "RECIST 1.1" and r["evaluator"] == ep.DERIVED and r["confirmed"]
        if primary and r["population"] == ep.ITT:
            tag = f"{r['endpoint']} confirmed ITT [{r['group']}]"
            resp[f"{tag} % (95% CI)"] = _ci(r["rate"], r["lcl"], r["ucl"], 1, 100.0)
            if r["rate"] is not None:
                resp[tag] = dg.MetadataValue.float(r["rate"])
    for r in figs["response_differences"]:
        if (
            r["criterion"] == "RECIST 1.1"
            and r["evaluator"] == ep.DERIVED
            and r["confirmed"]
            and r["population"] == ep.ITT
            and r["method"] == "Miettinen-Nurminen"
        ):
            resp[f"{r['endpoint']} difference {r['group']}-{r['reference']} % (MN 95% CI)"] = _ci(
                r["difference"], r["lcl"], r["ucl"], 1, 100.0
            )
    text = ep.format_efficacy_summary(figs, config)
    surv["efficacy summary"] = dg.MetadataValue.md(f"```\n{text}\n```")
    out["survival_summary"] = surv
    out["survival_comparisons"] = comp
    out["response_rates"] = resp
    return out


# ------------------------------------------------------------------------------------------------ assets


def _build_domain_asset(domain: str) -> dg.AssetsDefinition:
    tables = ep.TABLES[domain]

    @dg.multi_asset(
        name=f"endpoints_{domain}",
        specs=[
            dg.AssetSpec(
                analysis_key(t),
                description=TABLE_DESCRIPTIONS[t],
                group_name=ENDPOINTS_GROUP,
                kinds={"python", "duckdb"},
                owners=OWNERS,
                deps=DOMAIN_DEPS[domain],
            )
            for t in tables
        ],
        pool=DUCKDB_POOL,
        can_subset=False,
        description=DESCRIPTIONS[domain] + " Writes DuckDB schema `analysis` in one transaction.",
    )
    def _endpoints(context: dg.AssetExecutionContext, settings: TrialSettings) -> Iterator[dg.MaterializeResult]:
        blinded = not settings.is_unblinded
        cutoff = settings.cutoff
        config = DEFAULT_CONFIG
        started = time.perf_counter()
        with settings.connect() as con:
            marts = read_marts(con, ep.DOMAIN_MARTS[domain])
        read_s = time.perf_counter() - started
        if domain == "efficacy" and "nact_date" not in marts["adsl"].columns:
            therapy = marts.get("subsequent_therapy")
            context.log.warning(
                "adsl has no nact_date: "
                + (
                    f"NACT dates derived from {therapy.attrs.get('source')}"
                    if therapy is not None
                    else "the NACT censoring rule cannot be applied"
                )
            )
        out = COMPUTE[domain](marts, config, cutoff, blinded)
        compute_s = time.perf_counter() - started - read_s
        # The file is opened again only to write, so the write lock is held for the transaction alone.
        with settings.connect() as con:
            write_tables(con, out)
        write_s = time.perf_counter() - started - read_s - compute_s
        context.log.info(
            f"{domain}: wrote {len(out)} tables to {ANALYSIS_SCHEMA} "
            f"({'blinded, pooled' if blinded else 'UNBLINDED, by arm'}; cut-off {cutoff or 'none'}) "
            f"- read {read_s:.1f} s, compute {compute_s:.1f} s, write {write_s:.1f} s"
        )
        extra = key_figures(out, config) if domain == "efficacy" else {}
        if domain == "efficacy" and blinded:
            # Say why there is no HR, so nobody reads an empty comparison table as a failed computation.
            for name in ("survival_comparisons", "response_rate_differences"):
                extra.setdefault(name, {})["arm comparison"] = "not computed: blinded run (pooled estimates only)"
        for name in tables:
            frame = out[name]
            yield dg.MaterializeResult(
                asset_key=analysis_key(name),
                metadata={
                    **table_metadata(frame),
                    "blinded": blinded,
                    "cutoff": cutoff.isoformat() if cutoff else "none",
                    **extra.get(name, {}),
                },
            )

    return _endpoints


endpoint_assets: list[dg.AssetsDefinition] = [_build_domain_asset(d) for d in ep.TABLES]
