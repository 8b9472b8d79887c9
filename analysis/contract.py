"""The raw exports contract: what the warehouse accepts from the EDC, the sequencing core and the
mass-spectrometry core.

This module is the single source of truth for the contract. The simulator writes to it, the loaders
check against it, and ``docs/raw_exports.md`` describes it for people. A test keeps the three in step.

Landing folder layout (any file may also arrive gzipped, ``<name>.gz``)::

    <landing>/
      crf/<form>.csv                      one CSV per CRF form (CDASH names); also <form>_<anything>.csv
      sequencing/<batch>/<table>          one feature table per batch: .biom (JSON 1.0 or HDF5 2.1), .qza,
                                          .shared (+ .cons.taxonomy), or classic .tsv/.txt (#OTU ID ... taxonomy)
      sequencing/<batch>/manifest.csv     sequencing sample id -> specimen barcode and sample role
      sequencing/<batch>/taxonomy.tsv     optional: Feature ID, Taxon[, Confidence] (QIIME 2 style)
      sequencing/<batch>/tree.nwk         optional: phylogeny of the features (Newick .nwk/.tre/.tree/.newick, or a
                                          QIIME 2 rooted-tree.qza); every feature of the table must be a tip
      metabolomics/<batch>/features.csv   wide feature table: annotation columns + one intensity column per injection
      metabolomics/<batch>/injections.csv injection list: which column is a sample, a pooled QC or a blank

The randomisation list (the arm) is never in the landing folder: it lives in a restricted location
(``unblinding/randomisation_list.csv``) that only an explicitly unblinded run reads.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

STUDY_ID = "HCC-GUT-01"

#: Columns every CRF form carries.
CRF_KEY_COLUMNS: tuple[str, ...] = ("STUDYID", "SITEID", "SUBJID")

#: Values that mean "missing" in CRF exports; staging maps them to NULL (raw keeps them as delivered).
MISSING_MARKERS: tuple[str, ...] = ("", "ND", "NA", "N/A", "UNK", "NK", "NOT DONE")

# ---------------------------------------------------------------------------------------------- hostile input

#: Text encodings of every text export (CRF CSV, manifests, .shared, TSV, taxonomy, metabolomics tables):
#: UTF-8 (a byte-order mark is tolerated) or UTF-16 *with* its byte-order mark. GBK/GB18030 (Chinese
#: Windows exports) is never guessed from content, since such bytes also decode as Latin-1 or damaged UTF-8:
#: it is read only when the file name declares it with one of these tokens (``ae.gb18030.csv``,
#: ``manifest_gbk.csv``). Anything else is rejected naming the first undecodable byte and its line.
TEXT_ENCODING_TOKENS: dict[str, str] = {"gb18030": "gb18030", "gbk": "gb18030", "gb2312": "gb18030", "cp936": "gb18030"}
#: Decompression limits (gzip, QIIME 2 zip, HDF5 datasets): a file may not expand beyond this many bytes
#: (checked on declared sizes before anything is decompressed, and again while decompressing).
MAX_DECOMPRESSED_BYTES: int = 2 * 1024**3
#: A .qza member larger than 1 MiB may not declare more than this many times its compressed size (zip bomb).
MAX_COMPRESSION_RATIO: int = 200


@dataclass(frozen=True)
class CrfForm:
    """One CRF form as the EDC exports it: one CSV file per form, header row with CDASH names."""

    code: str
    title: str
    grain: str
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    #: Direct identifiers: required in the file (the agreed export), but their values are never stored, not even
    #: in ``raw`` (the columns exist there and are always NULL; ``analysis.ingest.deidentify``).
    identifiers: tuple[str, ...] = ()
    #: Columns the loader derives from the delivered values and stores in ``raw`` beside them (name -> SQL type);
    #: not part of the file.
    derived: dict[str, str] = field(default_factory=dict)
    #: Coded values as the EDC's data dictionary defines them (exports may vary in case and spacing).
    codelists: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def columns(self) -> tuple[str, ...]:
        return self.required + self.optional

    @property
    def raw_columns(self) -> tuple[str, ...]:
        """Columns of the raw table besides lineage: the contract's, then the derived ones."""
        return self.columns + tuple(self.derived)

    @property
    def raw_table(self) -> str:
        return f"crf_{self.code}"


CRF_FORMS: dict[str, CrfForm] = {
    f.code: f
    for f in [
        CrfForm(
            "dm",
            "Demographics",
            "one row per enrolled patient",
            (*CRF_KEY_COLUMNS, "MRN", "PATNAME", "INITIALS", "BRTHDTC", "SEX", "RFICDTC"),
            ("ETHNIC",),
            identifiers=("MRN", "PATNAME", "INITIALS", "BRTHDTC"),
            # BRTHDTC is replaced at load by the age at informed consent (RFICDTC) in completed years, partial birth
            # dates imputed (day missing -> 15th 'D', month missing -> 1 July 'M', year missing -> NULL 'Y').
            derived={"AGE_AT_CONSENT": "INTEGER", "AGE_IMPUTATION_FLAG": "VARCHAR"},
            codelists={"SEX": ("M", "F")},
        ),
        CrfForm(
            "rand",
            "Randomisation",
            "one row per randomised patient (the arm is not in the EDC export)",
            (*CRF_KEY_COLUMNS, "RANDNO", "RANDDTC"),
            ("RANDSTRAT",),
        ),
        CrfForm(
            "bl",
            "Baseline disease characteristics",
            "one row per patient",
            (*CRF_KEY_COLUMNS, "VISIT", "DIAGDTC", "BCLC", "AETIOL", "ECOG", "ASCITES", "ENCEPH"),
            ("MVI", "EHS"),
            codelists={
                "BCLC": ("A", "B", "C"),
                "AETIOL": ("HBV", "HCV", "ALCOHOL", "NASH", "OTHER"),
                "ECOG": ("0", "1", "2"),
                "ASCITES": ("NONE", "MILD", "MODERATE-SEVERE"),
                "ENCEPH": ("NONE", "GRADE 1-2", "GRADE 3-4"),
                "MVI": ("Y", "N"),
                "EHS": ("Y", "N"),
            },
        ),
        CrfForm(
            "vs",
            "Vital signs (weight, height)",
            "one row per patient per visit per test",
            (*CRF_KEY_COLUMNS, "VISIT", "VSDTC", "VSTESTCD", "VSORRES", "VSORRESU"),
            codelists={"VSTESTCD": ("WEIGHT", "HEIGHT"), "VSORRESU": ("kg", "cm")},
        ),
        CrfForm(
            "ex",
            "Exposure",
            "one row per patient per drug per dosing record (constant-dose period, infusion or capsule course)",
            (*CRF_KEY_COLUMNS, "VISIT", "EXTRT", "EXSTDTC", "EXENDTC", "EXDOSE", "EXDOSU", "EXDOSFRQ"),
            ("EXADJ", "EXCAPTKN"),
            codelists={
                "EXTRT": ("LENVATINIB", "PD-1 ANTIBODY", "STUDY CAPSULES"),
                "EXDOSU": ("mg", "capsule"),
                "EXDOSFRQ": ("QD", "Q3W"),
                "EXADJ": ("ADVERSE EVENT", "DOSE REDUCED", "DRUG INTERRUPTED", "DRUG WITHDRAWN"),
            },
        ),
        CrfForm(
            "tr",
            "Tumour lesion measurements",
            "one row per lesion per assessment",
            (
                *CRF_KEY_COLUMNS,
                "VISIT",
                "TRDTC",
                "TRMETHOD",
                "TRLNKID",
                "TRCAT",
                "TRLOC",
                "TRNODE",
                "TRAXIS",
                "TRDIAM",
                "TRNTSTAT",
            ),
            ("TRVIABDIAM",),
            codelists={
                "TRMETHOD": ("CT", "MRI", "ULTRASOUND"),
                "TRCAT": ("TARGET", "NON-TARGET", "NEW"),
                "TRNODE": ("Y", "N"),
                "TRAXIS": ("LONG", "SHORT"),
                "TRNTSTAT": ("PRESENT", "ABSENT", "UNEQUIVOCAL PROGRESSION"),
            },
        ),
        CrfForm(
            "rs",
            "Investigator's response assessment",
            "one row per patient per assessment",
            (*CRF_KEY_COLUMNS, "VISIT", "RSDTC", "RSTLRESP", "RSNTRESP", "RSNLRESP", "RSOVRLRESP"),
            codelists={
                "RSTLRESP": ("CR", "PR", "SD", "PD", "NE", "NA"),
                "RSNTRESP": ("CR", "NON-CR/NON-PD", "PD", "NE", "NA"),
                "RSNLRESP": ("Y", "N"),
                "RSOVRLRESP": ("CR", "PR", "SD", "NON-CR/NON-PD", "PD", "NE"),
            },
        ),
        CrfForm(
            "ae",
            "Adverse events (CTCAE 5.0)",
            "one row per adverse event",
            (
                *CRF_KEY_COLUMNS,
                "AESPID",
                "AETERM",
                "AEDECOD",
                "AEBODSYS",
                "AESTDTC",
                "AEENDTC",
                "AETOXGR",
                "AESER",
                "AERELLEN",
                "AERELPD1",
                "AERELCAP",
                "AEACNLEN",
                "AEACNPD1",
                "AEOUT",
            ),
            ("AEIRAE",),
            codelists={
                "AETOXGR": ("1", "2", "3", "4", "5"),
                "AESER": ("Y", "N"),
                "AERELLEN": ("NOT RELATED", "UNLIKELY", "POSSIBLE", "PROBABLE", "DEFINITE"),
                "AERELPD1": ("NOT RELATED", "UNLIKELY", "POSSIBLE", "PROBABLE", "DEFINITE"),
                "AERELCAP": ("NOT RELATED", "UNLIKELY", "POSSIBLE", "PROBABLE", "DEFINITE"),
                "AEACNLEN": ("DOSE NOT CHANGED", "DOSE REDUCED", "DRUG INTERRUPTED", "DRUG WITHDRAWN"),
                "AEACNPD1": ("DOSE NOT CHANGED", "DRUG INTERRUPTED", "DRUG WITHDRAWN"),
                "AEOUT": ("RECOVERED", "RECOVERING", "NOT RECOVERED", "FATAL"),
                "AEIRAE": ("Y", "N"),
            },
        ),
        CrfForm(
            "lb",
            "Laboratory results (local lab, as reported)",
            "one row per patient per test per draw",
            (*CRF_KEY_COLUMNS, "VISIT", "LBDTC", "LBTESTCD", "LBORRES", "LBORRESU"),
            ("LBORNRLO", "LBORNRHI"),
            codelists={"LBTESTCD": ("ALT", "AST", "BILI", "ALB", "PLAT", "INR", "AFP", "CREAT")},
        ),
        CrfForm(
            "qs",
            "EORTC QLQ-C30 items",
            "one row per patient per visit per item",
            (*CRF_KEY_COLUMNS, "VISIT", "QSDTC", "QSTESTCD", "QSORRES"),
            codelists={"QSTESTCD": tuple(f"QLQ{i:02d}" for i in range(1, 31))},
        ),
        CrfForm(
            "cm",
            "Subsequent anti-cancer therapy",
            "one row per therapy",
            (*CRF_KEY_COLUMNS, "CMTRT", "CMCAT", "CMSTDTC"),
            codelists={"CMCAT": ("SUBSEQUENT ANTI-CANCER THERAPY",)},
        ),
        CrfForm(
            "ds",
            "Disposition, death and last contact",
            "one row per patient per disposition event",
            (*CRF_KEY_COLUMNS, "DSCAT", "DSDECOD", "DSSTDTC"),
            ("DSTERM",),
            codelists={
                "DSCAT": ("END OF TREATMENT", "END OF STUDY", "DEATH", "LAST CONTACT"),
                "DSDECOD": (
                    "COMPLETED",
                    "PROGRESSIVE DISEASE",
                    "ADVERSE EVENT",
                    "DEATH",
                    "WITHDRAWAL BY SUBJECT",
                    "LOST TO FOLLOW-UP",
                    "ONGOING",
                    "ALIVE",
                ),
            },
        ),
        CrfForm(
            "bs",
            "Biospecimen log",
            "one row per collected specimen",
            (*CRF_KEY_COLUMNS, "VISIT", "BSREFID", "BSSPEC", "BSDTC"),
            codelists={"BSSPEC": ("FAECES", "SERUM")},
        ),
    ]
}

#: First day any trial procedure can be dated: the protocol's first approval (the first patient was screened after
#: it). One value for every layer: the raw suites (``expectations.suites.raw``) flag an earlier trial date in the
#: export, the mart suites check the cleaned dates against it. Birth and diagnosis dates are history, not trial.
STUDY_START: dt.date = dt.date(2024, 1, 1)

#: Every direct identifier in the CRF; no value of one is stored anywhere (raw included), logged or reported.
DIRECT_IDENTIFIERS: tuple[str, ...] = tuple(c for f in CRF_FORMS.values() for c in f.identifiers)

# ---------------------------------------------------------------------------------------------- sequencing

#: Columns of ``sequencing/<batch>/manifest.csv``.
SEQ_MANIFEST_REQUIRED: tuple[str, ...] = ("sample_id", "specimen_barcode", "sample_role")
SEQ_MANIFEST_OPTIONAL: tuple[str, ...] = ("run_id", "notes")
#: Negative controls and mock communities have no specimen barcode from the biospecimen log.
SEQ_SAMPLE_ROLES: tuple[str, ...] = ("SAMPLE", "NEGATIVE_CONTROL", "MOCK")

#: Feature-table file name endings, in the order the loader tries them (gzip allowed on text formats).
SEQ_TABLE_SUFFIXES: dict[str, str] = {
    ".biom": "biom",
    ".qza": "qza",
    ".shared": "shared",
    ".tsv": "tsv",
    ".txt": "tsv",
}
SEQ_TAXONOMY_FILES: tuple[str, ...] = (".cons.taxonomy", "taxonomy.tsv")
#: Optional phylogenetic tree of a batch's features (for UniFrac): Newick file endings (gzip allowed) ...
SEQ_TREE_SUFFIXES: dict[str, str] = {".nwk": "newick", ".tre": "newick", ".tree": "newick", ".newick": "newick"}
#: ... or a QIIME 2 tree artifact named ``*tree.qza`` (``rooted-tree.qza``), by type: True = rooted. Unrooted
#: trees are midpoint-rooted where used (``analysis.readers.tree``).
SEQ_TREE_QZA_SUFFIX: str = "tree.qza"
SEQ_TREE_QZA_TYPES: dict[str, bool] = {"Phylogeny[Rooted]": True, "Phylogeny[Unrooted]": False}

# ---------------------------------------------------------------------------------------------- metabolomics

#: Annotation columns of the generic wide feature table (``metabolomics/<batch>/features.csv``). Every
#: other column is an injection (its name is an ``injection_id`` in the injection list).
MTB_FEATURE_REQUIRED: tuple[str, ...] = ("feature_id", "ion_mode", "mz", "rt_min")
MTB_FEATURE_OPTIONAL: tuple[str, ...] = ("name", "formula", "kegg_id", "hmdb_id", "compound_class", "evidence")
MTB_ION_MODES: tuple[str, ...] = ("POS", "NEG")

#: Columns of ``metabolomics/<batch>/injections.csv``.
MTB_INJECTION_REQUIRED: tuple[str, ...] = ("injection_id", "sample_type", "specimen_barcode", "matrix", "run_order")
MTB_INJECTION_OPTIONAL: tuple[str, ...] = ("batch",)
MTB_SAMPLE_TYPES: tuple[str, ...] = ("SAMPLE", "QC", "BLANK")
MTB_MATRICES: tuple[str, ...] = ("FAECES", "SERUM")

# ---------------------------------------------------------------------------------------------- unblinding

#: Columns of the restricted randomisation list (read only by explicitly unblinded runs).
RANDOMISATION_LIST_REQUIRED: tuple[str, ...] = ("RANDNO", "ARM")
ARMS: tuple[str, ...] = ("CAPSULE", "PLACEBO")
