"""Small, hand-written reference tables the simulator draws from.

Nothing here is a database dump: the adverse-event list is the handful of CTCAE 5.0 terms that dominate
lenvatinib + PD-1 toxicity, the genus list is a few dozen common gut genera with their SILVA 138-style
lineage, and the metabolite list is about thirty textbook compounds with their well-known identifiers.
"""

from __future__ import annotations

from dataclasses import dataclass

# ---------------------------------------------------------------------------------------------- people

#: Common Chinese surnames and given names in pinyin; names are combined at random (fake people).
SURNAMES: tuple[str, ...] = (
    "WANG", "LI", "ZHANG", "LIU", "CHEN", "YANG", "HUANG", "ZHAO", "WU", "ZHOU", "XU", "SUN", "MA", "ZHU",
    "HU", "GUO", "HE", "GAO", "LIN", "LUO", "ZHENG", "LIANG", "XIE", "SONG", "TANG", "HAN", "FENG", "DENG",
    "CAO", "PENG", "ZENG", "XIAO", "TIAN", "DONG", "PAN", "YUAN", "CAI", "JIANG", "YU", "DU",
)  # fmt: skip
GIVEN_NAMES_M: tuple[str, ...] = (
    "Wei", "Qiang", "Lei", "Jun", "Yong", "Jie", "Tao", "Ming", "Chao", "Jianhua", "Jianguo", "Zhiqiang",
    "Hao", "Peng", "Bin", "Gang", "Hui", "Xin", "Jianjun", "Haitao", "Dong", "Liang", "Guoqing", "Wenbin",
)  # fmt: skip
GIVEN_NAMES_F: tuple[str, ...] = (
    "Fang", "Na", "Min", "Jing", "Li", "Yan", "Xiuying", "Guiying", "Haiyan", "Hong", "Juan", "Xia",
    "Ping", "Lan", "Yun", "Mei", "Ling", "Qin", "Xiaohong", "Yuqin",
)  # fmt: skip

# ---------------------------------------------------------------------------------------------- adverse events


@dataclass(frozen=True)
class AeTerm:
    """One CTCAE 5.0 term with the incidence and behaviour the simulator gives it."""

    decod: str
    soc: str
    verbatims: tuple[str, ...]
    #: Probability a patient on treatment for ~6 months has at least one episode.
    incidence: float
    #: Probabilities of CTCAE grades 1..4.
    grades: tuple[float, float, float, float]
    onset_median_days: float
    duration_median_days: float
    #: Which study drugs the investigator would plausibly blame (lenvatinib, PD-1, capsules).
    by_lenvatinib: bool = False
    by_pd1: bool = False
    by_capsule: bool = False
    immune: bool = False
    #: Multiplier of the incidence in the capsule arm (truth: a mild gastrointestinal signal).
    capsule_incidence_ratio: float = 1.0


AE_TERMS: tuple[AeTerm, ...] = (
    AeTerm("Hypertension", "Vascular disorders", ("Hypertension", "High blood pressure", "Elevated BP"),
           0.45, (0.25, 0.45, 0.28, 0.02), 14, 120, by_lenvatinib=True),
    AeTerm("Diarrhea", "Gastrointestinal disorders", ("Diarrhoea", "Loose stools", "Diarrhea"),
           0.35, (0.60, 0.30, 0.09, 0.01), 30, 10, by_lenvatinib=True, by_capsule=True,
           capsule_incidence_ratio=1.25),
    AeTerm("Fatigue", "General disorders and administration site conditions", ("Fatigue", "Tiredness"),
           0.32, (0.50, 0.40, 0.10, 0.00), 20, 45, by_lenvatinib=True, by_pd1=True),
    AeTerm("Palmar-plantar erythrodysesthesia syndrome", "Skin and subcutaneous tissue disorders",
           ("Hand-foot skin reaction", "HFSR", "Palmar-plantar erythrodysaesthesia"),
           0.30, (0.45, 0.40, 0.15, 0.00), 21, 45, by_lenvatinib=True),
    AeTerm("Proteinuria", "Renal and urinary disorders", ("Proteinuria", "Protein in urine"),
           0.25, (0.50, 0.35, 0.15, 0.00), 45, 60, by_lenvatinib=True),
    AeTerm("Hypothyroidism", "Endocrine disorders", ("Hypothyroidism", "Low thyroid function"),
           0.22, (0.40, 0.58, 0.02, 0.00), 70, 180, by_lenvatinib=True, by_pd1=True, immune=True),
    AeTerm("Alanine aminotransferase increased", "Investigations", ("ALT increased", "Raised ALT"),
           0.22, (0.60, 0.25, 0.13, 0.02), 40, 21, by_lenvatinib=True, by_pd1=True),
    AeTerm("Aspartate aminotransferase increased", "Investigations", ("AST increased", "Raised AST"),
           0.24, (0.60, 0.25, 0.13, 0.02), 40, 21, by_lenvatinib=True, by_pd1=True),
    AeTerm("Immune-mediated hepatitis", "Hepatobiliary disorders", ("Immune hepatitis", "Immune-related hepatitis"),
           0.05, (0.10, 0.30, 0.50, 0.10), 60, 30, by_pd1=True, immune=True),
    AeTerm("Anorexia", "Metabolism and nutrition disorders", ("Decreased appetite", "Poor appetite"),
           0.25, (0.60, 0.32, 0.08, 0.00), 30, 40, by_lenvatinib=True),
    AeTerm("Rash maculo-papular", "Skin and subcutaneous tissue disorders", ("Rash", "Maculopapular rash"),
           0.15, (0.60, 0.30, 0.10, 0.00), 35, 21, by_pd1=True, immune=True),
    AeTerm("Platelet count decreased", "Investigations", ("Thrombocytopenia", "Low platelets"),
           0.18, (0.55, 0.30, 0.12, 0.03), 30, 30, by_lenvatinib=True),
    AeTerm("Weight loss", "Investigations", ("Weight loss", "Weight decreased"),
           0.15, (0.70, 0.28, 0.02, 0.00), 60, 90, by_lenvatinib=True),
    AeTerm("Hoarseness", "Respiratory, thoracic and mediastinal disorders", ("Hoarseness", "Dysphonia"),
           0.10, (0.85, 0.15, 0.00, 0.00), 40, 60, by_lenvatinib=True),
    AeTerm("Blood bilirubin increased", "Investigations", ("Bilirubin increased", "Hyperbilirubinaemia"),
           0.12, (0.50, 0.35, 0.13, 0.02), 50, 30, by_lenvatinib=True, by_pd1=True),
    AeTerm("Pruritus", "Skin and subcutaneous tissue disorders", ("Itching", "Pruritus"),
           0.10, (0.75, 0.23, 0.02, 0.00), 30, 30, by_pd1=True),
    AeTerm("Abdominal pain", "Gastrointestinal disorders", ("Abdominal pain", "RUQ pain"),
           0.15, (0.60, 0.32, 0.08, 0.00), 45, 14),
    AeTerm("Nausea", "Gastrointestinal disorders", ("Nausea",),
           0.12, (0.70, 0.27, 0.03, 0.00), 15, 10, by_lenvatinib=True),
    AeTerm("Bloating", "Gastrointestinal disorders", ("Bloating", "Abdominal distension", "Flatulence"),
           0.08, (0.85, 0.15, 0.00, 0.00), 10, 10, by_capsule=True, capsule_incidence_ratio=1.5),
    AeTerm("Pneumonitis", "Respiratory, thoracic and mediastinal disorders", ("Pneumonitis",),
           0.03, (0.30, 0.40, 0.25, 0.05), 90, 40, by_pd1=True, immune=True),
)  # fmt: skip

#: The fatal event given to a few patients who die on treatment (grade 5, outcome FATAL).
FATAL_AE = AeTerm(
    "Hepatic failure", "Hepatobiliary disorders", ("Liver failure", "Hepatic failure"), 0.0, (0, 0, 0, 0), 0, 0
)

SUBSEQUENT_THERAPIES: tuple[str, ...] = (
    "REGORAFENIB", "SORAFENIB", "APATINIB", "DONAFENIB", "CABOZANTINIB", "TACE", "RADIOTHERAPY",
    "CAMRELIZUMAB + APATINIB", "FOLFOX4 (HAIC)", "RAMUCIRUMAB",
)  # fmt: skip

# ---------------------------------------------------------------------------------------------- taxonomy


@dataclass(frozen=True)
class Genus:
    """A genus with its SILVA 138-style lineage (domain .. family) and a few species epithets."""

    lineage: tuple[str, str, str, str, str]  # domain, phylum, class, order, family
    name: str
    species: tuple[str, ...] = ()
    #: Relative number of ASVs the genus gets (ASV richness varies a lot between gut genera).
    richness: float = 1.0
    #: Typical log relative abundance offset of the genus in stool.
    abundance: float = 0.0


_FIRM_CLOS = ("Bacteria", "Firmicutes", "Clostridia")
_LACHNO = (*_FIRM_CLOS, "Lachnospirales", "Lachnospiraceae")
_RUMINO = (*_FIRM_CLOS, "Oscillospirales", "Ruminococcaceae")
_OSCILLO = (*_FIRM_CLOS, "Oscillospirales", "Oscillospiraceae")
_BACT = ("Bacteria", "Bacteroidota", "Bacteroidia", "Bacteroidales")
_ENTERO = ("Bacteria", "Proteobacteria", "Gammaproteobacteria", "Enterobacterales", "Enterobacteriaceae")
_LACTO = ("Bacteria", "Firmicutes", "Bacilli", "Lactobacillales")

GENERA: tuple[Genus, ...] = (
    Genus(_RUMINO, "Faecalibacterium", ("prausnitzii",), 3.0, 2.0),
    Genus(_RUMINO, "Ruminococcus", ("bromii",), 2.0, 0.8),
    Genus(_RUMINO, "Subdoligranulum", ("variabile",), 1.5, 0.8),
    Genus(_OSCILLO, "Oscillibacter", (), 2.0, 0.0),
    Genus(_LACHNO, "Blautia", ("obeum", "wexlerae"), 4.0, 1.2),
    Genus(_LACHNO, "Roseburia", ("intestinalis", "inulinivorans"), 2.0, 0.8),
    Genus(_LACHNO, "Coprococcus", ("comes",), 1.5, 0.3),
    Genus(_LACHNO, "Dorea", ("longicatena",), 1.0, 0.3),
    Genus(_LACHNO, "Fusicatenibacter", ("saccharivorans",), 1.0, 0.5),
    Genus(_LACHNO, "Anaerostipes", ("hadrus",), 1.0, 0.3),
    Genus(_LACHNO, "Agathobacter", ("rectalis",), 1.5, 1.0),
    Genus(_LACHNO, "Lachnoclostridium", (), 2.0, 0.0),
    Genus(_LACHNO, "[Eubacterium]_hallii_group", (), 1.0, 0.5),
    Genus(_LACHNO, "[Ruminococcus]_gnavus_group", ("gnavus",), 1.0, 0.0),
    Genus(_LACHNO, "Lachnospiraceae_NK4A136_group", (), 2.0, 0.0),
    Genus(_LACHNO, "Tyzzerella", (), 0.8, -0.5),
    Genus((*_FIRM_CLOS, "Peptostreptococcales-Tissierellales", "Peptostreptococcaceae"), "Romboutsia",
          ("ilealis",), 1.0, 0.0),
    Genus((*_FIRM_CLOS, "Peptostreptococcales-Tissierellales", "Peptostreptococcaceae"), "Intestinibacter",
          ("bartlettii",), 0.8, -0.5),
    Genus((*_FIRM_CLOS, "Clostridiales", "Clostridiaceae"), "Clostridium_sensu_stricto_1", ("perfringens",),
          1.0, -0.3),
    Genus((*_FIRM_CLOS, "Christensenellales", "Christensenellaceae"), "Christensenellaceae_R-7_group", (),
          1.5, -0.5),
    Genus((*_LACTO, "Lactobacillaceae"), "Lactobacillus", ("acidophilus", "gasseri"), 1.5, -1.5),
    Genus((*_LACTO, "Streptococcaceae"), "Streptococcus", ("salivarius", "parasanguinis"), 2.0, 0.0),
    Genus((*_LACTO, "Streptococcaceae"), "Lactococcus", ("lactis",), 0.5, -1.5),
    Genus((*_LACTO, "Enterococcaceae"), "Enterococcus", ("faecalis", "faecium"), 1.0, -1.0),
    Genus(("Bacteria", "Firmicutes", "Bacilli", "Erysipelotrichales", "Erysipelotrichaceae"), "Holdemanella",
          ("biformis",), 0.8, -0.5),
    Genus(("Bacteria", "Firmicutes", "Bacilli", "Erysipelotrichales", "Erysipelotrichaceae"), "Turicibacter",
          ("sanguinis",), 0.5, -1.0),
    Genus(("Bacteria", "Firmicutes", "Negativicutes", "Veillonellales-Selenomonadales", "Veillonellaceae"),
          "Veillonella", ("parvula", "atypica"), 1.0, -0.5),
    Genus(("Bacteria", "Firmicutes", "Negativicutes", "Veillonellales-Selenomonadales", "Veillonellaceae"),
          "Dialister", ("invisus",), 0.8, 0.0),
    Genus(("Bacteria", "Firmicutes", "Negativicutes", "Veillonellales-Selenomonadales", "Veillonellaceae"),
          "Megasphaera", (), 0.6, -0.5),
    Genus(("Bacteria", "Firmicutes", "Negativicutes", "Acidaminococcales", "Acidaminococcaceae"),
          "Phascolarctobacterium", ("faecium",), 0.8, 0.3),
    Genus(("Bacteria", "Firmicutes", "Bacilli", "Staphylococcales", "Staphylococcaceae"), "Staphylococcus",
          ("aureus", "epidermidis"), 0.4, -3.0),
    Genus(("Bacteria", "Firmicutes", "Bacilli", "Bacillales", "Listeriaceae"), "Listeria", ("monocytogenes",),
          0.2, -5.0),
    Genus(("Bacteria", "Firmicutes", "Bacilli", "Bacillales", "Bacillaceae"), "Bacillus", ("subtilis",),
          0.3, -4.0),
    Genus((*_BACT, "Bacteroidaceae"), "Bacteroides", ("fragilis", "vulgatus", "uniformis", "ovatus"), 5.0, 2.0),
    Genus((*_BACT, "Prevotellaceae"), "Prevotella_9", ("copri",), 2.0, 0.5),
    Genus((*_BACT, "Rikenellaceae"), "Alistipes", ("putredinis", "onderdonkii"), 2.0, 0.5),
    Genus((*_BACT, "Tannerellaceae"), "Parabacteroides", ("distasonis", "merdae"), 1.5, 0.3),
    Genus((*_BACT, "Barnesiellaceae"), "Barnesiella", ("intestinihominis",), 0.8, -0.3),
    Genus((*_BACT, "Marinifilaceae"), "Odoribacter", ("splanchnicus",), 0.6, -0.5),
    Genus(("Bacteria", "Actinobacteriota", "Actinobacteria", "Bifidobacteriales", "Bifidobacteriaceae"),
          "Bifidobacterium", ("longum", "adolescentis", "breve"), 1.5, -0.3),
    Genus(("Bacteria", "Actinobacteriota", "Coriobacteriia", "Coriobacteriales", "Coriobacteriaceae"),
          "Collinsella", ("aerofaciens",), 1.0, 0.0),
    Genus(("Bacteria", "Actinobacteriota", "Coriobacteriia", "Coriobacteriales", "Eggerthellaceae"),
          "Eggerthella", ("lenta",), 0.5, -1.0),
    Genus(("Bacteria", "Actinobacteriota", "Actinobacteria", "Propionibacteriales", "Propionibacteriaceae"),
          "Cutibacterium", ("acnes",), 0.2, -5.0),
    Genus(_ENTERO, "Escherichia-Shigella", ("coli",), 1.0, 0.0),
    Genus(_ENTERO, "Klebsiella", ("pneumoniae",), 0.8, -1.0),
    Genus(_ENTERO, "Salmonella", ("enterica",), 0.2, -5.0),
    Genus(_ENTERO, "Enterobacter", ("cloacae",), 0.4, -2.0),
    Genus(("Bacteria", "Proteobacteria", "Gammaproteobacteria", "Burkholderiales", "Sutterellaceae"),
          "Sutterella", ("wadsworthensis",), 0.6, -0.5),
    Genus(("Bacteria", "Proteobacteria", "Gammaproteobacteria", "Burkholderiales", "Sutterellaceae"),
          "Parasutterella", ("excrementihominis",), 0.5, -0.8),
    Genus(("Bacteria", "Proteobacteria", "Gammaproteobacteria", "Pseudomonadales", "Pseudomonadaceae"),
          "Pseudomonas", ("aeruginosa",), 0.3, -4.0),
    Genus(("Bacteria", "Proteobacteria", "Gammaproteobacteria", "Burkholderiales", "Burkholderiaceae"),
          "Ralstonia", ("pickettii",), 0.2, -5.0),
    Genus(("Bacteria", "Proteobacteria", "Alphaproteobacteria", "Rhizobiales", "Xanthobacteraceae"),
          "Bradyrhizobium", (), 0.2, -5.0),
    Genus(("Bacteria", "Proteobacteria", "Alphaproteobacteria", "Sphingomonadales", "Sphingomonadaceae"),
          "Sphingomonas", (), 0.2, -5.0),
    Genus(("Bacteria", "Proteobacteria", "Gammaproteobacteria", "Pasteurellales", "Pasteurellaceae"),
          "Haemophilus", ("parainfluenzae",), 0.6, -1.0),
    Genus(("Bacteria", "Verrucomicrobiota", "Verrucomicrobiae", "Verrucomicrobiales", "Akkermansiaceae"),
          "Akkermansia", ("muciniphila",), 0.8, -0.5),
    Genus(("Bacteria", "Desulfobacterota", "Desulfovibrionia", "Desulfovibrionales", "Desulfovibrionaceae"),
          "Desulfovibrio", ("piger",), 0.6, -1.0),
    Genus(("Bacteria", "Desulfobacterota", "Desulfovibrionia", "Desulfovibrionales", "Desulfovibrionaceae"),
          "Bilophila", ("wadsworthia",), 0.5, -1.0),
    Genus(("Bacteria", "Fusobacteriota", "Fusobacteriia", "Fusobacteriales", "Fusobacteriaceae"),
          "Fusobacterium", ("nucleatum", "varium"), 0.5, -1.5),
    Genus(("Archaea", "Euryarchaeota", "Methanobacteria", "Methanobacteriales", "Methanobacteriaceae"),
          "Methanobrevibacter", ("smithii",), 0.4, -1.5),
)  # fmt: skip

#: Genera the capsules contain (up in the capsule arm after each course) and genera pushed down.
CAPSULE_GENERA_UP: dict[str, float] = {"Bifidobacterium": 2.0, "Lactobacillus": 2.5, "Akkermansia": 1.5}
CAPSULE_GENERA_DOWN: dict[str, float] = {"Escherichia-Shigella": -1.0}
#: Genera more abundant in true responders at every time point (log2 fold change).
RESPONDER_GENERA: dict[str, float] = {"Faecalibacterium": 0.8, "Ruminococcus": 0.7}
#: Ramp of the capsule effect by time point: after course k (1..4) and after treatment ("post").
CAPSULE_RAMP: dict[str, float] = {"baseline": 0.0, "1": 0.6, "2": 0.8, "3": 1.0, "4": 1.0, "post": 0.5}

#: ZymoBIOMICS-like mock community: theoretical 16S composition by genus (fractions sum to 1).
MOCK_COMMUNITY: dict[str, float] = {
    "Pseudomonas": 0.042,
    "Escherichia-Shigella": 0.101,
    "Salmonella": 0.104,
    "Lactobacillus": 0.184,
    "Enterococcus": 0.099,
    "Staphylococcus": 0.155,
    "Listeria": 0.141,
    "Bacillus": 0.174,
}
#: Reagent contaminants that dominate negative controls ("kitome").
CONTAMINANT_GENERA: tuple[str, ...] = ("Ralstonia", "Bradyrhizobium", "Sphingomonas", "Pseudomonas", "Cutibacterium")

# ---------------------------------------------------------------------------------------------- metabolites


@dataclass(frozen=True)
class Metabolite:
    """A well-known compound the annotation step of the mass-spectrometry core can name."""

    name: str
    formula: str
    kegg: str
    hmdb: str
    compound_class: str
    #: Ion modes it is seen in (an adduct in each mode is a separate feature).
    modes: tuple[str, ...]
    matrices: tuple[str, ...]


METABOLITES: tuple[Metabolite, ...] = (
    Metabolite("Butyrate", "C4H8O2", "C00246", "HMDB0000039", "Short-chain fatty acids", ("NEG",), ("FAECES",)),
    Metabolite("Propionate", "C3H6O2", "C00163", "HMDB0000237", "Short-chain fatty acids", ("NEG",), ("FAECES",)),
    Metabolite("Acetate", "C2H4O2", "C00033", "HMDB0000042", "Short-chain fatty acids", ("NEG",),
               ("FAECES", "SERUM")),
    Metabolite("Indole-3-propionic acid", "C11H11NO2", "", "HMDB0002302", "Indoles", ("POS", "NEG"),
               ("FAECES", "SERUM")),
    Metabolite("Deoxycholic acid", "C24H40O4", "C04483", "HMDB0000626", "Bile acids", ("NEG",),
               ("FAECES", "SERUM")),
    Metabolite("Lithocholic acid", "C24H40O3", "C03990", "HMDB0000761", "Bile acids", ("NEG",), ("FAECES",)),
    Metabolite("Cholic acid", "C24H40O5", "C00695", "HMDB0000619", "Bile acids", ("NEG",), ("FAECES", "SERUM")),
    Metabolite("Chenodeoxycholic acid", "C24H40O4", "C02528", "HMDB0000518", "Bile acids", ("NEG",),
               ("FAECES", "SERUM")),
    Metabolite("L-Tryptophan", "C11H12N2O2", "C00078", "HMDB0000929", "Amino acids", ("POS", "NEG"),
               ("FAECES", "SERUM")),
    Metabolite("L-Kynurenine", "C10H12N2O3", "C00328", "HMDB0000684", "Amino acids", ("POS",), ("SERUM",)),
    Metabolite("Indole", "C8H7N", "C00463", "HMDB0000738", "Indoles", ("POS",), ("FAECES",)),
    Metabolite("Succinate", "C4H6O4", "C00042", "HMDB0000254", "Organic acids", ("NEG",), ("FAECES", "SERUM")),
    Metabolite("L-Lactate", "C3H6O3", "C00186", "HMDB0000190", "Organic acids", ("NEG",), ("FAECES", "SERUM")),
    Metabolite("D-Glucose", "C6H12O6", "C00031;C00267", "HMDB0000122", "Carbohydrates", ("NEG",),
               ("FAECES", "SERUM")),
    Metabolite("Taurine", "C2H7NO3S", "C00245", "HMDB0000251", "Amino acids", ("NEG",), ("FAECES", "SERUM")),
    Metabolite("Hippuric acid", "C9H9NO3", "C01586", "HMDB0000714", "Benzoic acids", ("POS", "NEG"),
               ("FAECES", "SERUM")),
    Metabolite("Trimethylamine N-oxide", "C3H9NO", "C01104", "HMDB0000925", "Amines", ("POS",), ("SERUM",)),
    Metabolite("Choline", "C5H13NO", "C00114", "HMDB0000097", "Amines", ("POS",), ("SERUM",)),
    Metabolite("Betaine", "C5H11NO2", "C00719", "HMDB0000043", "Amino acids", ("POS",), ("SERUM",)),
    Metabolite("Creatinine", "C4H7N3O", "C00791", "HMDB0000562", "Amino acids", ("POS",), ("SERUM",)),
    Metabolite("Citrate", "C6H8O7", "C00158", "HMDB0000094", "Organic acids", ("NEG",), ("SERUM",)),
    Metabolite("L-Glutamate", "C5H9NO4", "C00025", "HMDB0000148", "Amino acids", ("POS", "NEG"),
               ("FAECES", "SERUM")),
    Metabolite("L-Phenylalanine", "C9H11NO2", "C00079", "HMDB0000159", "Amino acids", ("POS",),
               ("FAECES", "SERUM")),
    Metabolite("L-Tyrosine", "C9H11NO3", "C00082", "HMDB0000158", "Amino acids", ("POS",), ("FAECES", "SERUM")),
    Metabolite("Serotonin", "C10H12N2O", "C00780", "HMDB0000259", "Indoles", ("POS",), ("SERUM",)),
    Metabolite("Indoxyl sulfate", "C8H7NO4S", "", "HMDB0000682", "Indoles", ("NEG",), ("SERUM",)),
    Metabolite("p-Cresol sulfate", "C7H8O4S", "", "HMDB0011635", "Phenols", ("NEG",), ("SERUM",)),
    Metabolite("Urea", "CH4N2O", "C00086", "HMDB0000294", "Amides", ("POS",), ("FAECES", "SERUM")),
)  # fmt: skip

#: Classes given to features annotated only at class level (MSI level 3).
COMPOUND_CLASSES: tuple[str, ...] = (
    "Fatty acyls", "Glycerophospholipids", "Sphingolipids", "Bile acids", "Indoles", "Amino acids",
    "Peptides", "Carbohydrates", "Organic acids", "Steroids", "Flavonoids", "Benzenoids",
)  # fmt: skip

#: Metabolites with a true arm-by-time effect (log2 fold change, capsule vs placebo at full ramp).
METABOLITE_EFFECTS: dict[str, dict[str, float]] = {
    "FAECES": {"Butyrate": 0.8, "Indole-3-propionic acid": 1.0, "Deoxycholic acid": -0.7, "L-Lactate": 0.6},
    "SERUM": {"Indole-3-propionic acid": 0.6, "L-Kynurenine": -0.4, "Deoxycholic acid": -0.4},
}
#: How many unannotated features per matrix also carry a true effect (half up, half down).
N_UNNAMED_DIFFERENTIAL = 6

_MONO = {"C": 12.0, "H": 1.00782503207, "N": 14.0030740048, "O": 15.99491461956, "S": 31.97207100}
PROTON = 1.007276466812


def monoisotopic_mass(formula: str) -> float:
    """Monoisotopic mass of a simple formula such as ``C6H12O6`` (elements C, H, N, O, S only)."""
    mass, i = 0.0, 0
    while i < len(formula):
        element = formula[i]
        i += 1
        digits = ""
        while i < len(formula) and formula[i].isdigit():
            digits += formula[i]
            i += 1
        mass += _MONO[element] * (int(digits) if digits else 1)
    return mass
