"""Tests of the seeded demo-trial simulator (``analysis.simulation``).

A 12-patient trial with a small microbiome is generated once per module; the hazard-ratio check uses a
400-patient trial with tiny omics. Nothing here reads ``/work/shared``.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import zipfile
from pathlib import Path

import biom
import numpy as np
import pandas as pd
import pytest

from analysis import contract
from analysis.simulation import generate_trial, render_contract_markdown
from analysis.simulation.contract_doc import generated_block
from analysis.simulation.trial import crf_file_name
from analysis.simulation.tumour import recist

SMALL = {"n_asvs": 100, "n_faecal_features": 60, "n_serum_features": 40}
REPO = Path(__file__).resolve().parents[1]


def _read(path: Path) -> pd.DataFrame:
    """A delivered CSV exactly as text (no NA guessing: 'NA' stays 'NA')."""
    return pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)


def _norm(values: pd.Series) -> pd.Series:
    return values.str.strip().str.upper()


@pytest.fixture(scope="module")
def trial(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("trial")
    summary = generate_trial(out, 12, seed=7, **SMALL)
    return out, summary


@pytest.fixture(scope="module")
def crf(trial) -> dict[str, pd.DataFrame]:
    out, _ = trial
    return {form: _read(out / "landing" / "crf" / crf_file_name(form)) for form in contract.CRF_FORMS}


@pytest.fixture(scope="module")
def mess_log(trial) -> pd.DataFrame:
    return _read(trial[0] / "truth" / "mess.csv")


def _digests(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# ---------------------------------------------------------------------------------------------- determinism


def test_same_seed_gives_identical_bytes(trial, tmp_path: Path) -> None:
    out, _ = trial
    again = generate_trial(tmp_path / "again", 12, seed=7, **SMALL)
    assert again.n_landing_files > 20
    first, second = _digests(out), _digests(tmp_path / "again")
    assert first.keys() == second.keys()
    assert [k for k in first if first[k] != second[k]] == []


def test_other_seed_differs_and_existing_output_is_protected(tmp_path: Path) -> None:
    tiny = {"n_asvs": 30, "n_faecal_features": 30, "n_serum_features": 30}
    generate_trial(tmp_path / "a", 4, seed=1, **tiny)
    generate_trial(tmp_path / "b", 4, seed=2, **tiny)
    a = (tmp_path / "a" / "landing" / "crf" / "dm.csv").read_bytes()
    assert a != (tmp_path / "b" / "landing" / "crf" / "dm.csv").read_bytes()
    with pytest.raises(FileExistsError):
        generate_trial(tmp_path / "b", 4, seed=1, **tiny)
    generate_trial(tmp_path / "b", 4, seed=1, overwrite=True, **tiny)
    assert _digests(tmp_path / "a") == _digests(tmp_path / "b")


def test_gzip_headers_carry_no_time_or_name(trial) -> None:
    for path in trial[0].rglob("*.gz"):
        head = path.read_bytes()[:10]
        assert head[:2] == b"\x1f\x8b"
        assert head[4:8] == b"\x00\x00\x00\x00", path  # mtime 0
        assert not head[3] & 0x08, path  # no FNAME field


# ---------------------------------------------------------------------------------------------- contract


def test_landing_layout(trial) -> None:
    out, summary = trial
    landing = out / "landing"
    assert sorted(p.name for p in (landing / "crf").iterdir()) == sorted(crf_file_name(f) for f in contract.CRF_FORMS)
    assert not any("randomisation" in p.name for p in landing.rglob("*"))
    assert (out / "unblinding" / "randomisation_list.csv").is_file()
    assert set(summary.seq_batches.values()) == {"biom-hdf5", "mothur", "tsv-gz", "biom-json", "qza"}
    for batch in summary.seq_batches:
        assert (landing / "sequencing" / batch / "manifest.csv").is_file()
    for batch in summary.mtb_batches:
        assert {p.name for p in (landing / "metabolomics" / batch).iterdir()} == {"features.csv", "injections.csv"}


def test_crf_headers_match_contract(crf) -> None:
    for form, df in crf.items():
        spec = contract.CRF_FORMS[form]
        assert list(df.columns) == list(spec.columns), form
        assert set(spec.required) <= set(df.columns)
        assert (df["STUDYID"] == contract.STUDY_ID).all()
        assert len(df) > 0, form


def test_coded_values_are_in_codelists_after_normalisation(crf, mess_log) -> None:
    allowed_mess = set(zip(mess_log["form"], mess_log["line"], mess_log["column"], strict=True))
    for form, df in crf.items():
        for column, codes in contract.CRF_FORMS[form].codelists.items():
            values = _norm(df[column])
            bad = df.index[(values != "") & ~values.isin([c.upper() for c in codes])]
            unexplained = [i for i in bad if (form, str(i + 2), column) not in allowed_mess]
            assert unexplained == [], f"{form}.{column}: {df.loc[unexplained, column].tolist()[:5]}"


def test_mess_log_points_at_the_written_cells(crf, mess_log) -> None:
    kinds = set(mess_log["kind"])
    assert {"partial_date", "code_format", "duplicate_row", "missing_marker", "orphan_sequencing_sample"} <= kinds
    for row in mess_log.itertuples(index=False):
        if row.form not in crf:
            continue
        df = crf[row.form]
        i = int(row.line) - 2
        if row.kind == "duplicate_row":
            original = int(row.note.rsplit(" ", 1)[1]) - 2
            assert df.iloc[i].tolist() == df.iloc[original].tolist()
        else:
            assert df.at[i, row.column] == row.written_value, row
    partial = mess_log[mess_log["kind"] == "partial_date"]
    assert partial["written_value"].str.match(r"^(\d{4}-UNK-UNK|\d{4}-\d{2}-UN|UN/[A-Z]{3}/\d{4})$").all()
    code = mess_log[mess_log["kind"] == "code_format"]
    assert (code["written_value"] != code["clean_value"]).all()
    assert (_norm(code["written_value"]) == _norm(code["clean_value"])).all()


def test_dates_are_iso_except_logged_partial_dates(crf, mess_log) -> None:
    partial = set(zip(mess_log["form"], mess_log["line"], mess_log["column"], strict=True))
    for form, df in crf.items():
        for column in [c for c in df.columns if c.endswith("DTC")]:
            ok = df[column].str.match(r"^\d{4}-\d{2}-\d{2}$") | (df[column] == "")
            bad = [i for i in df.index[~ok] if (form, str(i + 2), column) not in partial]
            assert bad == [], f"{form}.{column}"


def test_identifiers_are_present_only_in_dm(crf) -> None:
    dm = crf["dm"]
    assert dm["MRN"].str.fullmatch(r"\d{8}").all()
    assert dm["PATNAME"].str.fullmatch(r"[A-Z]+ [A-Z][a-z]+").all()
    assert dm["MRN"].is_unique
    for form, df in crf.items():
        if form != "dm":
            assert not set(contract.DIRECT_IDENTIFIERS) & set(df.columns)


def test_rand_has_no_arm_and_list_is_restricted(trial, crf) -> None:
    assert not {"ARM", "ARMCD"} & set(crf["rand"].columns)
    rl = _read(trial[0] / "unblinding" / "randomisation_list.csv")
    assert list(rl.columns) == list(contract.RANDOMISATION_LIST_REQUIRED)
    assert set(rl["ARM"]) <= set(contract.ARMS)
    assert set(crf["rand"]["RANDNO"]) <= set(rl["RANDNO"])
    assert rl["RANDNO"].is_unique


def test_sequencing_manifests_and_barcodes(trial, crf, mess_log) -> None:
    out, summary = trial
    bs_barcodes = set(crf["bs"]["BSREFID"])
    orphans = set(mess_log.loc[mess_log["kind"] == "orphan_sequencing_sample", "written_value"])
    assert len(orphans) == 1
    found_orphans, roles = set(), set()
    sample_ids: list[str] = []
    for batch in summary.seq_batches:
        man = _read(out / "landing" / "sequencing" / batch / "manifest.csv")
        assert set(contract.SEQ_MANIFEST_REQUIRED) <= set(man.columns)
        assert set(man.columns) <= set(contract.SEQ_MANIFEST_REQUIRED + contract.SEQ_MANIFEST_OPTIONAL)
        assert set(man["sample_role"]) <= set(contract.SEQ_SAMPLE_ROLES)
        roles |= set(man["sample_role"])
        samples = man[man["sample_role"] == "SAMPLE"]
        found_orphans |= set(samples["specimen_barcode"]) - bs_barcodes
        assert (man.loc[man["sample_role"] != "SAMPLE", "specimen_barcode"] == "").all()
        assert not (set(man["sample_id"]) & bs_barcodes)
        sample_ids += man["sample_id"].tolist()
    assert found_orphans == orphans
    assert roles == set(contract.SEQ_SAMPLE_ROLES)
    assert len(sample_ids) == len(set(sample_ids)) == summary.n_sequenced_samples


def _format_file(batch_dir: Path, fmt: str) -> Path:
    names = {"biom-hdf5": "feature-table.biom", "biom-json": "otu_table.biom", "tsv-gz": "feature-table.tsv.gz",
             "mothur": "final.opti_mcc.shared", "qza": "table.qza"}  # fmt: skip
    return batch_dir / names[fmt]


def test_feature_tables_follow_their_format(trial) -> None:
    out, summary = trial
    for batch, fmt in summary.seq_batches.items():
        batch_dir = out / "landing" / "sequencing" / batch
        path = _format_file(batch_dir, fmt)
        man = _read(batch_dir / "manifest.csv")
        if fmt in ("biom-hdf5", "biom-json"):
            table = biom.load_table(str(path))
            assert sorted(table.ids()) == sorted(man["sample_id"])
            tax = table.metadata(axis="observation")[0]["taxonomy"]
            assert tax[0] in ("d__Bacteria", "d__Archaea", "Unassigned")
            if fmt == "biom-json":
                doc = json.loads(path.read_text())
                assert doc["format"] == "Biological Observation Matrix 1.0.0"
            else:
                assert path.read_bytes()[:8] == b"\x89HDF\r\n\x1a\n"
        elif fmt == "tsv-gz":
            lines = gzip.decompress(path.read_bytes()).decode().splitlines()
            assert lines[0] == "# Constructed from biom file"
            header = lines[1].split("\t")
            assert header[0] == "#OTU ID" and header[-1] == "taxonomy"
            assert sorted(header[1:-1]) == sorted(man["sample_id"])
        elif fmt == "mothur":
            lines = path.read_text().splitlines()
            header = lines[0].split("\t")
            assert header[:3] == ["label", "Group", "numOtus"]
            n_otu = len(header) - 3
            assert header[3] == f"Otu{1:0{len(str(n_otu))}d}"
            rows = [line.split("\t") for line in lines[1:]]
            assert all(r[0] == "0.03" and r[2] == str(n_otu) for r in rows)
            groups = [r[1] for r in rows]
            assert groups == sorted(groups) and sorted(groups) == sorted(man["sample_id"])
            tax = (batch_dir / "final.opti_mcc.0.03.cons.taxonomy").read_text().splitlines()
            assert tax[0] == "OTU\tSize\tTaxonomy"
            otu, size, lineage = tax[1].split("\t")
            assert otu == header[3] and lineage.endswith(";") and lineage.count(";") == 6
            totals = np.array([[int(x) for x in r[3:]] for r in rows]).sum(axis=0)
            assert int(size) == totals[0]
        else:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
                root = names[0].split("/")[0]
                assert all(n.startswith(root + "/") for n in names)
                meta = zf.read(f"{root}/metadata.yaml").decode()
                assert "type: FeatureTable[Frequency]" in meta and "format: BIOMV210DirFmt" in meta
                assert f"uuid: {root}" in meta
                assert zf.read(f"{root}/data/feature-table.biom")[:4] == b"\x89HDF"
            tax = pd.read_csv(batch_dir / "taxonomy.tsv", sep="\t", dtype=str)
            assert list(tax.columns) == ["Feature ID", "Taxon", "Confidence"]


def test_metabolomics_tables_and_injections(trial, crf) -> None:
    out, summary = trial
    bs = set(crf["bs"]["BSREFID"])
    seen_modes = set()
    for batch in summary.mtb_batches:
        folder = out / "landing" / "metabolomics" / batch
        inj = _read(folder / "injections.csv")
        assert set(contract.MTB_INJECTION_REQUIRED) <= set(inj.columns)
        assert set(inj["sample_type"]) == set(contract.MTB_SAMPLE_TYPES)
        assert set(inj["matrix"]) <= set(contract.MTB_MATRICES) and inj["matrix"].nunique() == 1
        assert inj["run_order"].astype(int).tolist() == list(range(1, len(inj) + 1))
        assert set(inj.loc[inj["sample_type"] == "SAMPLE", "specimen_barcode"]) <= bs
        assert (inj.loc[inj["sample_type"] != "SAMPLE", "specimen_barcode"] == "").all()
        feats = _read(folder / "features.csv")
        annotation = list(contract.MTB_FEATURE_REQUIRED + contract.MTB_FEATURE_OPTIONAL)
        assert list(feats.columns[: len(annotation)]) == annotation
        assert list(feats.columns[len(annotation) :]) == inj["injection_id"].tolist()
        assert set(feats["ion_mode"]) <= set(contract.MTB_ION_MODES)
        seen_modes |= set(feats["ion_mode"])
        values = feats.iloc[:, len(annotation) :].replace("", np.nan).astype(float)
        assert values.isna().any().any() and (values.fillna(0) >= 0).all().all()
        kegg = feats["kegg_id"][feats["kegg_id"] != ""]
        assert kegg.str.fullmatch(r"C\d{5}(;C\d{5})*").all()
        hmdb = feats["hmdb_id"][feats["hmdb_id"] != ""]
        assert hmdb.str.fullmatch(r"HMDB(\d{7}|\d{5})(;HMDB(\d{7}|\d{5}))*").all()
    assert seen_modes == set(contract.MTB_ION_MODES)


# ---------------------------------------------------------------------------------------------- design facts


def test_arm_balance(trial, crf) -> None:
    out, summary = trial
    assert summary.n_capsule + summary.n_placebo == 12
    rl = _read(out / "unblinding" / "randomisation_list.csv")
    assert (rl["ARM"] == "CAPSULE").sum() == (rl["ARM"] == "PLACEBO").sum()  # complete blocks
    arms = crf["rand"].merge(rl, on="RANDNO")
    for _, stratum in arms.groupby("RANDSTRAT"):
        assert abs((stratum["ARM"] == "CAPSULE").sum() - (stratum["ARM"] == "PLACEBO").sum()) <= 3


def test_lenvatinib_dose_follows_weight_band(trial, crf) -> None:
    vs, ex = crf["vs"], crf["ex"]
    weight = vs[(vs["VISIT"] == "SCREENING") & (_norm(vs["VSTESTCD"]) == "WEIGHT")]
    weight = weight.drop_duplicates("SUBJID").set_index("SUBJID")["VSORRES"].astype(float)
    len_ex = ex[_norm(ex["EXTRT"]) == "LENVATINIB"].sort_values(["SUBJID", "EXSTDTC"])
    start = len_ex.drop_duplicates("SUBJID").set_index("SUBJID")["EXDOSE"].astype(int)
    expected = np.where(weight.loc[start.index] <= 60.0, 8, 12)
    mismatched = set(start.index[start.to_numpy() != expected])
    deviations = _read(trial[0] / "truth" / "protocol_deviations.csv")
    assert mismatched == set(deviations["SUBJID"])
    assert set(len_ex["EXDOSE"].astype(int)) <= {4, 8, 12}


def test_pd1_every_21_days_and_capsule_courses(crf) -> None:
    ex = crf["ex"]
    trt = _norm(ex["EXTRT"])
    pd1 = ex[trt == "PD-1 ANTIBODY"]
    assert (pd1["EXDOSE"] == "200").all() and (pd1["EXDOSU"] == "mg").all() and (pd1["EXDOSFRQ"] == "Q3W").all()
    assert (pd1["EXSTDTC"] == pd1["EXENDTC"]).all()
    caps = ex[trt == "STUDY CAPSULES"]
    for subj, rows in pd1.groupby("SUBJID"):
        days = pd.to_datetime(rows["EXSTDTC"]).sort_values().diff().dt.days.dropna()
        assert (days % 21 == 0).all() and (days > 0).all(), subj
        first = pd.to_datetime(rows["EXSTDTC"]).min()
        courses = caps[caps["SUBJID"] == subj].sort_values("EXSTDTC")
        assert 1 <= len(courses) <= 4
        starts = pd.to_datetime(courses["EXSTDTC"])
        ends = pd.to_datetime(courses["EXENDTC"])
        assert ((starts - first).dt.days == 21 * np.arange(len(courses))).all()
        assert ((ends - starts).dt.days <= 9).all()
        taken = courses["EXCAPTKN"].astype(int)
        assert ((taken >= 0) & (taken <= 6 * ((ends - starts).dt.days + 1))).all()
        assert (courses["EXDOSE"] == "6").all() and (_norm(courses["EXDOSU"]) == "CAPSULE").all()


def test_ct_schedule(trial, crf) -> None:
    visits = _read(trial[0] / "truth" / "visits.csv")
    rand = crf["rand"].set_index("SUBJID")["RANDDTC"]
    allowed = {6 * k for k in range(1, 9)} | {48 + 9 * k for k in range(1, 20)}
    tr = crf["tr"]
    scheduled = tr[tr["VISIT"].str.startswith("WEEK ")].drop_duplicates(["SUBJID", "VISIT"])
    assert len(scheduled) > 0
    status = visits.set_index(["SUBJID", "VISIT"])["status"]
    for row in scheduled.itertuples(index=False):
        week = int(row.VISIT.split()[1])
        assert week in allowed
        offset = (pd.Timestamp(row.TRDTC) - pd.Timestamp(rand[row.SUBJID])).days - 7 * week
        if status[(row.SUBJID, row.VISIT)] == "LATE":
            assert 7 < offset <= 21
        else:
            assert abs(offset) <= 7
    assert tr["VISIT"].str.fullmatch(r"SCREENING|WEEK \d+|UNSCHEDULED \d+").all()
    nodes = tr[(tr["TRNODE"] == "Y") & (_norm(tr["TRCAT"]) == "TARGET")]
    assert (nodes["TRAXIS"] == "SHORT").all()
    targets = tr[(_norm(tr["TRCAT"]) == "TARGET") & (tr["VISIT"] == "SCREENING")]
    per_patient = targets.groupby("SUBJID")
    assert per_patient.size().max() <= 5
    assert targets.groupby(["SUBJID", "TRLOC"]).size().max() <= 2


def test_investigator_responses_follow_recist_except_discordance(trial, crf) -> None:
    tr, rs = crf["tr"], crf["rs"]
    disc = _read(trial[0] / "truth" / "rs_discordance.csv")
    discordant = set(zip(disc["SUBJID"], disc["VISIT"], strict=True))
    tr = tr.assign(cat=_norm(tr["TRCAT"]))
    for subj, lesions in tr.groupby("SUBJID"):
        targets = lesions[lesions["cat"] == "TARGET"]
        base = targets[targets["VISIT"] == "SCREENING"]["TRDIAM"].astype(float).sum()
        nadir = base
        for visit in rs.loc[rs["SUBJID"] == subj, "VISIT"]:
            at = lesions[lesions["VISIT"] == visit]
            t = at[at["cat"] == "TARGET"]
            values = t["TRDIAM"].astype(float).to_numpy()
            nt = at.loc[at["cat"] == "NON-TARGET", "TRNTSTAT"].tolist()
            _, _, _, overall = recist(
                values, (t["TRNODE"] == "Y").to_numpy(), base, nadir, nt, (at["cat"] == "NEW").any()
            )
            recorded = _norm(rs[(rs["SUBJID"] == subj) & (rs["VISIT"] == visit)]["RSOVRLRESP"]).iloc[0]
            assert recorded == overall or (subj, visit) in discordant
            nadir = min(nadir, values.sum())


# ---------------------------------------------------------------------------------------------- truth


def test_truth_files(trial) -> None:
    truth = trial[0] / "truth"
    names = ["params.json", "patients.csv", "differential_taxa.csv", "differential_metabolites.csv", "mess.csv"]
    names += ["mock_community.csv", "taxa.csv", "feature_map.csv", "metabolite_drift.csv.gz", "visits.csv"]
    for name in names:
        assert (truth / name).is_file(), name
    params = json.loads((truth / "params.json").read_text())
    assert params["params"]["seed"] == 7 and params["params"]["n_patients"] == 12
    patients = _read(truth / "patients.csv")
    assert len(patients) == 12 and set(patients["arm"]) <= set(contract.ARMS)
    assert {"true_progression_date", "true_death_date", "responder", "albi_grade", "weight_kg"} <= set(patients.columns)
    mock = _read(truth / "mock_community.csv")
    assert abs(mock["expected_fraction"].astype(float).sum() - 1.0) < 1e-9
    taxa = _read(truth / "differential_taxa.csv")
    assert {"Bifidobacterium", "Lactobacillus", "Akkermansia"} <= set(taxa["taxon"])
    assert len(_read(truth / "differential_metabolites.csv")) > 0


def test_contract_doc_is_in_step() -> None:
    doc = (REPO / "docs" / "raw_exports.md").read_text(encoding="utf-8")
    assert generated_block(doc) == render_contract_markdown()
    for form in contract.CRF_FORMS.values():
        assert f"`{form.code}`" in doc
        for column in form.required:
            assert f"`{column}`" in doc
    for column in contract.SEQ_MANIFEST_REQUIRED + contract.MTB_INJECTION_REQUIRED + contract.MTB_FEATURE_REQUIRED:
        assert f"`{column}`" in doc


def test_pfs_hazard_ratio_is_recovered(tmp_path: Path) -> None:
    from lifelines import CoxPHFitter

    generate_trial(tmp_path / "big", 400, seed=11, n_asvs=20, n_faecal_features=40, n_serum_features=30)
    patients = pd.read_csv(tmp_path / "big" / "truth" / "patients.csv")
    data = pd.DataFrame(
        {
            "time": patients["true_pfs_days"],
            "event": patients["pfs_event"],
            "capsule": (patients["arm"] == "CAPSULE").astype(int),
        }
    )
    hr = float(np.exp(CoxPHFitter().fit(data, "time", "event").params_["capsule"]))
    assert 0.45 < hr < 0.9
    assert patients["pfs_event"].mean() > 0.5
