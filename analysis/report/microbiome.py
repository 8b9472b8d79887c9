"""Microbiome figures of the trial report (issue 8): alpha diversity, ordinations, top genera, rarefaction and
differential abundance, read from the warehouse's ``analysis`` and ``marts`` tables.

Entry point: :func:`figures` ``(con, ctx) -> list[ReportFigure | ReportTable]``. Every figure needs the tables in
:data:`FIGURE_TABLES` (``schema.table``); a figure whose tables are missing or empty is left out (nothing is
raised) and :func:`missing_tables` tells the report builder which tables it lacked. The builder functions
(``alpha_figure``, ``ordination_figure``, ...) are pure: DataFrames + :class:`ReportContext` in, figures out.

**Blinding.** A blinded context (``ctx.unblinded`` False) never reads ``marts.adsl.arm_code`` and groups by
visit only (no arm colour, legend, split or label anywhere); an unblinded one adds arm panels/colours
(:data:`analysis.report.style.ARM_COLOURS`). Responder status is an outcome, not a treatment, and appears in both.

Figures (slug: content)

* ``mb_alpha_by_visit``: rarefied Shannon, Chao1, inverse Simpson and observed richness per sample as box plots
  (median, quartiles, whiskers to 1.5 IQR) with every sample as a strip point (deterministic jitter), per visit
  (unblinded: per visit and arm). Tests from ``analysis.alpha_group_tests``: Kruskal–Wallis by visit in the panel
  title; unblinded, the per-visit Wilcoxon rank-sum p between arms above each visit. Table ``mb_alpha_tests``:
  the Kruskal–Wallis by visit, the signed-rank change from baseline per visit (``analysis.alpha_change_tests``)
  and, unblinded, the arm rank-sum per visit.
* ``mb_pcoa_braycurtis``, ``mb_nmds_braycurtis``, ``mb_pca_clr``: ordination scores (axes 1–2) of
  ``analysis.ordination_coordinates`` coloured by visit (unblinded: a second panel coloured by arm), each group
  with its 95 % ellipse; PERMANOVA (``analysis.beta_group_tests``, same metric: Bray–Curtis for PCoA/NMDS,
  Aitchison for the CLR PCA) by visit, by response (and by arm, unblinded) in the caption; NMDS stress from
  ``analysis.ordination_axes``.

  *Ellipses* are vegan ``ordiellipse(kind = "sd", conf = 0.95)`` (Oksanen et al., vegan 2.6 ``R/ordiellipse.R``):
  the normal-theory region expected to hold 95 % of a group's points,
  ``{x : (x − x̄)ᵀ S⁻¹ (x − x̄) ≤ χ²₂(0.95)}``, with ``x̄`` the group mean and ``S`` its sample covariance
  (divisor n − 1, R ``cov.wt`` with equal weights), i.e. the unit ellipse ``x̄ + √χ²₂(0.95) · L (cos t, sin t)``
  with ``L Lᵀ = S``; ``χ²₂(0.95) = 5.991``. They describe the spread of the samples, not the uncertainty of the
  centroid (that would be ``kind = "se"``: ``S / n``).
* ``mb_top_genera_samples`` / ``mb_top_genera_groups``: relative abundance at genus rank per sample (stacked bars,
  faceted by visit; unblinded: rows by arm) and the mean per visit (unblinded: per visit and arm), computed in
  DuckDB from ``marts.taxa_counts`` + ``marts.taxonomy`` (:data:`GENUS_SQL`): one library per specimen (the deepest,
  ties: first batch, as :func:`analysis.microbiome.pipeline.feature_matrix`), ``share = reads of the genus /
  reads of the library``; the 10 genera with the largest mean share over all samples are shown, every other genus
  and the reads without a genus assignment are pooled as ``Other``, so each sample's bar sums to 1.
* ``mb_rarefaction_curves``: expected observed richness per sample against depth (``analysis.rarefaction_curves``,
  Hurlbert 1971), coloured by sequencing batch (mothur OTU and ASV batches differ in richness), with the chosen
  rarefaction depth (``analysis.rarefaction_depth``); right panel: median and interquartile band per visit
  (unblinded: per arm) over the samples that reach each depth.
* ``mb_da_volcano``: genus-level differential abundance (``analysis.differential_abundance``,
  ``responder_pooled``: per-patient mean CLR, responders vs non-responders): effect in log2 units (CLR difference
  / ln 2) against −log10 BH q, lines at q = :data:`Q_THRESHOLD` and |log2 effect| = 1, the most significant genera
  labelled (labels stacked apart vertically, :func:`label_points`). Unblinded ``mb_da_volcano_arm``: capsules vs
  placebo, per-patient mean CLR over the on-treatment visits and its change from baseline (``arm_on_treatment``,
  ``arm_x_visit_pooled``).
* ``mb_da_effects``: dot plot of the paired CLR change from baseline (log2) per visit for the genera with the
  smallest q (``change_from_baseline``); unblinded ``mb_da_effects_arm``: the arm difference in change from
  baseline per visit (``arm_x_visit``). Colour = effect, size = −log10 q, black edge = q < :data:`Q_THRESHOLD`.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterable, Sequence

import duckdb
import numpy as np
import pandas as pd
from matplotlib import colors as mcolors
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, NullFormatter
from matplotlib.transforms import ScaledTranslation
from scipy import stats

from analysis.report import style
from analysis.report.figure import ReportContext, ReportFigure, ReportTable

SECTION = "microbiome"
#: False-discovery threshold of the differential-abundance plots (BH q; the integration step uses the same 0.1).
Q_THRESHOLD = 0.1
#: Genera shown in the stacked bars (the rest are pooled as "Other").
TOP_GENERA = 10
#: Ellipse coverage and kind (vegan ``ordiellipse(kind = "sd", conf = 0.95)``).
ELLIPSE_CONF = 0.95
#: Median/IQR rarefaction curves stop at the last depth at least this many samples of the group reach.
MIN_CURVE_SAMPLES = 10
#: ... and at least this share of the group's samples.
MIN_CURVE_SHARE = 0.25
#: Seed of the strip-plot jitter (deterministic figures).
JITTER_SEED = 20240501
ARMS: tuple[str, ...] = ("CAPSULE", "PLACEBO")
#: Alpha indices plotted: column of ``analysis.alpha_diversity_rarefied`` -> axis label.
ALPHA_INDICES: dict[str, str] = {
    "shannon": "Shannon H′ (natural log)",
    "chao": "Chao1 richness",
    "invsimpson": "Inverse Simpson 1/D",
    "sobs": "Observed OTUs/ASVs",
}
ORDINATIONS: dict[str, tuple[str, str, str]] = {
    # slug: (method, metric of its PERMANOVA, title)
    "mb_pcoa_braycurtis": ("pcoa", "braycurtis", "PCoA of Bray–Curtis dissimilarities (genus level)"),
    "mb_nmds_braycurtis": ("nmds", "braycurtis", "NMDS of Bray–Curtis dissimilarities (genus level)"),
    "mb_pca_clr": ("pca", "aitchison", "PCA of CLR-transformed genus counts (Aitchison geometry)"),
}
METRIC_NAMES: dict[str, str] = {"braycurtis": "Bray–Curtis", "aitchison": "Aitchison", "jaccard": "Jaccard"}

#: Tables each figure reads (``schema.table``); the report builder lists the missing ones.
FIGURE_TABLES: dict[str, tuple[str, ...]] = {
    "mb_alpha_by_visit": ("analysis.alpha_diversity_rarefied", "analysis.alpha_group_tests"),
    "mb_alpha_tests": ("analysis.alpha_group_tests", "analysis.alpha_change_tests"),
    **{
        slug: ("analysis.ordination_coordinates", "analysis.ordination_axes", "analysis.beta_group_tests")
        for slug in ORDINATIONS
    },
    "mb_top_genera_samples": ("marts.taxa_counts", "marts.taxonomy", "marts.samples"),
    "mb_top_genera_groups": ("marts.taxa_counts", "marts.taxonomy", "marts.samples"),
    "mb_rarefaction_curves": ("analysis.rarefaction_curves", "analysis.rarefaction_depth", "analysis.alpha_diversity"),
    "mb_da_volcano": ("analysis.differential_abundance",),
    "mb_da_volcano_arm": ("analysis.differential_abundance",),
    "mb_da_effects": ("analysis.differential_abundance",),
    "mb_da_effects_arm": ("analysis.differential_abundance",),
}
#: Every table this section reads (unblinded runs also read ``marts.adsl`` for the arm).
REQUIRED_TABLES: tuple[str, ...] = tuple(dict.fromkeys(t for ts in FIGURE_TABLES.values() for t in ts))
#: Figures that exist only in unblinded runs.
UNBLINDED_ONLY: frozenset[str] = frozenset({"mb_da_volcano_arm", "mb_da_effects_arm"})

#: Genus relative abundance per specimen (one library per specimen; see the module docstring). ``?`` = top n.
GENUS_SQL = """
with lib as (
    select batch_id, sample_id as library_id, specimen_barcode, sum(read_count) as reads
    from marts.taxa_counts
    where read_count > 0
    group by batch_id, sample_id, specimen_barcode
),
kept as (
    select * from lib
    qualify row_number() over (partition by specimen_barcode order by reads desc, batch_id, library_id) = 1
),
tax as (
    select batch_id, feature_id, min(genus) as genus from marts.taxonomy group by batch_id, feature_id
),
share as (
    select k.specimen_barcode, t.genus, sum(c.read_count) / any_value(k.reads) as share
    from marts.taxa_counts as c
    join kept as k on c.batch_id = k.batch_id and c.sample_id = k.library_id
    left join tax as t on c.batch_id = t.batch_id and c.feature_id = t.feature_id
    where c.read_count > 0
    group by k.specimen_barcode, t.genus
),
top as (
    select genus, row_number() over (order by sum(share) desc, genus) as genus_rank
    from share
    where genus is not null
    group by genus
    order by genus_rank
    limit ?
)
select
    s.specimen_barcode as sample_id,
    s.subject_id,
    s.nominal_visit as visit,
    s.nominal_visit_order as visit_order,
    coalesce(top.genus, 'Other') as genus,
    coalesce(top.genus_rank, 999) as genus_rank,
    sum(share.share) as share
from share
left join top on share.genus = top.genus
join marts.samples as s on share.specimen_barcode = s.specimen_barcode
group by all
order by visit_order, sample_id, genus_rank
"""


# ================================================================================================ shared helpers
# (used by the metabolomics and integration sections too)


def table_exists(con: duckdb.DuckDBPyConnection, qualified: str) -> bool:
    schema, table = qualified.split(".", 1)
    row = con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?", [schema, table]
    ).fetchone()
    return bool(row and row[0])


def existing_tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Every ``schema.table`` of the warehouse (one catalogue query instead of one per table)."""
    rows = con.execute("select table_schema, table_name from information_schema.tables").fetchall()
    return {f"{schema}.{name}" for schema, name in rows}


def missing_tables(con: duckdb.DuckDBPyConnection, figure_tables: dict[str, tuple[str, ...]]) -> dict[str, list[str]]:
    """Per slug, the tables it needs that the warehouse lacks (slugs with none missing are left out)."""
    present = existing_tables(con)
    out: dict[str, list[str]] = {}
    for slug, tables in figure_tables.items():
        lacking = [t for t in tables if t not in present]
        if lacking:
            out[slug] = lacking
    return out


def read_table(con: duckdb.DuckDBPyConnection, qualified: str, where: str = "") -> pd.DataFrame:
    return con.execute(f"select * from {qualified} {where}").df()


def read_arms(con: duckdb.DuckDBPyConnection, ctx: ReportContext) -> pd.Series:
    """``subject_id -> arm`` (CAPSULE/PLACEBO) in unblinded runs; an empty Series in blinded runs (never read)."""
    if not ctx.unblinded or not table_exists(con, "marts.adsl"):
        return pd.Series(dtype="object")
    arm = con.execute("select subject_id, arm_code from marts.adsl where arm_code in (?, ?)", list(ARMS)).df()
    return arm.drop_duplicates("subject_id").set_index("subject_id")["arm_code"]


def has_arms(frame: pd.DataFrame, ctx: ReportContext, column: str = "arm") -> bool:
    """Whether ``frame`` may and can be split by arm: unblinded context and both arms present."""
    return bool(ctx.unblinded and column in frame.columns and set(ARMS) <= set(frame[column].dropna()))


def visit_levels(frame: pd.DataFrame, visit: str = "visit", order: str = "visit_order") -> list[str]:
    """Visits in protocol order (``visit_order``, then name)."""
    v = frame.dropna(subset=[visit]).sort_values([order, visit], kind="stable")
    return list(dict.fromkeys(v[visit].astype(str)))


def visit_colours(visits: Sequence[str]) -> dict[str, str]:
    """Okabe–Ito colours (report style cycle without yellow) for up to 8 visits, else a viridis ramp in visit
    order (serum has 14 scheduled draws)."""
    palette = [c for c in style.CYCLE if c != style.OKABE_ITO["yellow"]]
    if len(visits) <= len(palette):
        return {v: palette[i] for i, v in enumerate(visits)}
    from matplotlib import colormaps

    ramp = colormaps["viridis"](np.linspace(0.0, 0.92, len(visits)))
    return {v: mcolors.to_hex(ramp[i]) for i, v in enumerate(visits)}


def arm_colour(arm: str, ctx: ReportContext) -> str:
    return style.group_colour(arm, ctx.unblinded)  # raises BlindingError in a blinded context


def arm_label(arm: str, ctx: ReportContext) -> str:
    return style.group_label(arm, ctx.unblinded)


def short_visit(visit: str) -> str:
    """Compact visit label for crowded axes (``END OF COURSE 2`` -> ``EOC 2``, ``CYCLE 3 DAY 1`` -> ``C3D1``)."""
    text = str(visit)
    if text.startswith("END OF COURSE "):
        return "EOC " + text.removeprefix("END OF COURSE ")
    if text.startswith("CYCLE ") and text.endswith(" DAY 1"):
        return "C" + text.removeprefix("CYCLE ").removesuffix(" DAY 1") + "D1"
    return {"BASELINE": "Baseline", "PROGRESSION": "Progression"}.get(text, text)


def fmt_p(p: float) -> str:
    if p is None or not np.isfinite(p):
        return "NA"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def confidence_ellipse(
    xy: np.ndarray, conf: float = ELLIPSE_CONF, kind: str = "sd", n_points: int = 101
) -> np.ndarray | None:
    """Outline (``n_points`` x 2) of vegan ``ordiellipse(kind, conf)`` for the points ``xy`` (see module doc).

    ``kind="sd"``: covariance S (divisor n − 1); ``kind="se"``: S / n (the centroid's). Scale ``√χ²₂(conf)``.
    None for fewer than 3 points or a singular covariance (no ellipse drawn).
    """
    xy = np.asarray(xy, dtype=float)
    xy = xy[np.isfinite(xy).all(axis=1)]
    if len(xy) < 3:
        return None
    cov = np.cov(xy, rowvar=False, ddof=1)
    if kind == "se":
        cov = cov / len(xy)
    elif kind != "sd":
        raise ValueError(f"kind must be 'sd' or 'se', not {kind!r}")
    try:
        chol = np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        return None
    scale = float(np.sqrt(stats.chi2.ppf(conf, 2)))
    t = np.linspace(0.0, 2.0 * np.pi, n_points)
    circle = np.vstack([np.cos(t), np.sin(t)])
    return (xy.mean(axis=0)[:, None] + scale * chol @ circle).T


def label_points(
    ax: Axes,
    x: Sequence[float],
    y: Sequence[float],
    labels: Sequence[str],
    *,
    min_gap: float = 0.055,
    fontsize: float = 7,
) -> list[tuple[float, float]]:
    """Label points without overlapping labels (simple offset strategy).

    Points right of the x-axis midpoint get their label to the right, the others to the left, so the two label
    columns never cross. On each side the labels are placed top-down in order of the points' height, each at the
    point's height or, if that is within ``min_gap`` (fraction of the y-range) of the label above, just below it;
    a thin leader line joins label and point. The x-limits are widened until every label fits inside the axes
    (label widths estimated at 0.55 em per character). Returns the label positions (data coordinates).
    """
    if not len(labels):
        return []
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    gap = min_gap * (y1 - y0)
    mid = (x0 + x1) / 2.0
    axes_inches = max(ax.get_position().width * ax.get_figure().get_figwidth(), 0.5)
    # long names go on two lines (width = the longest line)
    wrapped = [textwrap.fill(str(t), 16, break_long_words=False, break_on_hyphens=False) for t in labels]
    pts = sorted(zip(x, y, wrapped, strict=True), key=lambda p: -p[1])
    for _ in range(4):  # widening the axis shrinks the data scale, so the label widths in data units change
        dx = 0.03 * (x1 - x0)
        per_char = fontsize * 0.55 / 72.0 * (x1 - x0) / axes_inches
        right_edge = max([px + dx + per_char * _longest(t) for px, _, t in pts if px >= mid], default=x1)
        left_edge = min([px - dx - per_char * _longest(t) for px, _, t in pts if px < mid], default=x0)
        if right_edge <= x1 and left_edge >= x0:
            break
        x0, x1 = min(x0, left_edge - dx), max(x1, right_edge + dx)
    ax.set_xlim(x0, x1)
    positions: list[tuple[float, float]] = []
    leaders: list[list[tuple[float, float]]] = []
    last: dict[bool, float] = {True: np.inf, False: np.inf}
    # labels sit 2 points beside the end of their leader line (plain texts and one LineCollection: an annotation
    # arrow clips itself against the text box at every draw, which costs more than the rest of the panel)
    fig = ax.get_figure()
    gap_pt = ScaledTranslation(2 / 72, 0, fig.dpi_scale_trans)  # type: ignore[union-attr]
    for px, py, text in pts:
        right = px >= mid
        ly = min(py, last[right] - gap)
        last[right] = ly
        lx = px + dx if right else px - dx
        ax.text(
            lx,
            ly,
            text,
            ha="left" if right else "right",
            va="center",
            fontsize=fontsize,
            transform=ax.transData + (gap_pt if right else gap_pt.inverted()),
        )
        leaders.append([(px, py), (lx, ly)])
        positions.append((lx, ly))
    ax.add_collection(LineCollection(leaders, colors="0.4", linewidths=0.5, gid="leaders"), autolim=False)
    lowest = min(p[1] for p in positions)
    if lowest < y0:
        ax.set_ylim(lowest - gap, y1)
    return positions


def _longest(text: str) -> int:
    return max(len(line) for line in text.split("\n"))


def volcano(
    ax: Axes,
    effect: np.ndarray,
    q: np.ndarray,
    labels: Sequence[str],
    *,
    title: str,
    xlabel: str,
    q_threshold: float = Q_THRESHOLD,
    effect_threshold: float = 1.0,
    n_labels: int = 8,
    colour_by: Sequence[str] | None = None,
    palette: dict[str, str] | None = None,
) -> int:
    """A volcano plot on ``ax``: ``effect`` vs −log10 ``q`` with threshold lines and labels of the most
    significant points (q below threshold, up to ``n_labels``, each label once). Points: grey when not significant, else
    coloured (by ``colour_by`` with ``palette``, or black). Returns the number of significant points."""
    effect = np.asarray(effect, dtype=float)
    q = np.asarray(q, dtype=float)
    ok = np.isfinite(effect) & np.isfinite(q)
    neglog = -np.log10(np.clip(q, 1e-300, 1.0))
    sig = ok & (q < q_threshold)
    ax.scatter(effect[ok & ~sig], neglog[ok & ~sig], s=10, color="0.75", lw=0, gid="points", zorder=2)
    if colour_by is not None and palette is not None:
        groups = np.asarray(colour_by, dtype=object)
        for g, col in palette.items():
            m = sig & (groups == g)
            if m.any():
                ax.scatter(effect[m], neglog[m], s=16, color=col, lw=0, gid="points", zorder=3, label=g)
    else:
        ax.scatter(effect[sig], neglog[sig], s=16, color=style.OKABE_ITO["black"], lw=0, gid="points", zorder=3)
    ax.axhline(-np.log10(q_threshold), color="0.3", lw=0.7, ls="--")
    for v in (-effect_threshold, effect_threshold):
        ax.axvline(v, color="0.3", lw=0.7, ls=":")
    ax.axvline(0.0, color="0.6", lw=0.5)
    lim = max(float(np.nanmax(np.abs(effect[ok]))) if ok.any() else 1.0, effect_threshold) * 1.2
    ax.set_xlim(-lim, lim)
    top = max(float(np.nanmax(neglog[ok])) if ok.any() else 1.0, -np.log10(q_threshold)) * 1.1
    ax.set_ylim(0.0, top)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("−log10 q (BH)")
    ax.set_title(title, loc="left", wrap=False)
    idx = np.flatnonzero(sig)
    idx = idx[np.argsort(q[idx], kind="stable")]
    # a feature tested at several visits is labelled once, at its most significant point
    first = pd.Series([str(labels[i]) for i in idx]).duplicated().to_numpy()
    idx = idx[~first][:n_labels]
    label_points(ax, effect[idx], neglog[idx], [str(labels[i]) for i in idx])
    return int(sig.sum())


def effect_dotplot(
    ax: Axes,
    frame: pd.DataFrame,
    *,
    row: str,
    col: str,
    effect: str,
    q: str,
    rows: Sequence[str],
    cols: Sequence[str],
    col_labels: Sequence[str] | None = None,
    q_threshold: float = Q_THRESHOLD,
    vmax: float | None = None,
) -> object:
    """Dot matrix: rows x cols, colour = ``effect`` (diverging, symmetric), size = −log10 ``q``, black edge when
    ``q`` < threshold. Returns the scatter (for a colour bar)."""
    r_pos = {r: i for i, r in enumerate(rows)}
    c_pos = {c: i for i, c in enumerate(cols)}
    d = frame[frame[row].isin(r_pos) & frame[col].isin(c_pos)].dropna(subset=[effect])
    xs = d[col].map(c_pos).to_numpy(dtype=float)
    ys = d[row].map(r_pos).to_numpy(dtype=float)
    val = d[effect].to_numpy(dtype=float)
    qq = d[q].to_numpy(dtype=float)
    size = 12.0 + 28.0 * np.clip(-np.log10(np.clip(np.nan_to_num(qq, nan=1.0), 1e-300, 1.0)), 0, 6)
    vmax = vmax or (float(np.nanmax(np.abs(val))) if len(val) else 1.0) or 1.0
    edge = np.where(qq < q_threshold, "black", "none")
    sc = ax.scatter(
        xs, ys, c=val, s=size, cmap="RdBu_r", vmin=-vmax, vmax=vmax, edgecolors=edge, linewidths=0.8, gid="points"
    )
    ax.set_xticks(range(len(cols)), col_labels if col_labels is not None else list(cols), rotation=45, ha="right")
    ax.set_yticks(range(len(rows)), list(rows))
    ax.set_xlim(-0.6, len(cols) - 0.4)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.grid(True, color="0.92", lw=0.5)
    ax.set_axisbelow(True)
    return sc


def size_legend(fig: Figure, q_threshold: float = Q_THRESHOLD) -> None:
    """Legend of the dot sizes of :func:`effect_dotplot` (below the plot, one row)."""
    handles = [
        Line2D([], [], ls="", marker="o", color="0.5", markersize=np.sqrt(12.0 + 28.0 * k), label=f"q = 1e-{k}")
        for k in (1, 2, 4)
    ]
    handles.append(
        Line2D([], [], ls="", marker="o", mfc="white", mec="black", markersize=6, label=f"q < {q_threshold:g}")
    )
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=7)


def jitter(n: int, width: float = 0.28, seed: int = JITTER_SEED) -> np.ndarray:
    """Seeded uniform horizontal jitter for strip points (same input, same figure)."""
    return np.random.default_rng(seed).uniform(-width, width, n)


def new_figure(height: float, width: float = style.FIGURE_WIDTH_IN) -> Figure:
    """The report style's figure with matplotlib's constrained layout (axes, legends and colour bars fit)."""
    fig = style.new_figure(height_in=height, width_in=width)
    fig.set_layout_engine("constrained")
    return fig


def population_text(frame: pd.DataFrame, what: str = "sequenced faecal samples") -> tuple[str, str]:
    """(population, n) for captions: samples and the patients they come from."""
    n_samples = len(frame)
    n_patients = frame["subject_id"].nunique() if "subject_id" in frame.columns else None
    pop = f"all patients with {what} (one library per specimen)"
    n = f"{n_samples} samples" + (f" from {n_patients} patients" if n_patients is not None else "")
    return pop, n


# ================================================================================================ alpha diversity


def _alpha_test(tests: pd.DataFrame, index: str, factor: str, visit: str, test: str) -> pd.Series | None:
    sel = tests[
        (tests["source"] == "rarefied")
        & (tests["index"] == index)
        & (tests["factor"] == factor)
        & (tests["visit"] == visit)
        & (tests["test"] == test)
    ]
    return None if sel.empty else sel.iloc[0]


def alpha_figure(alpha: pd.DataFrame, tests: pd.DataFrame, ctx: ReportContext) -> ReportFigure:
    """Box + strip plots of the rarefied alpha indices per visit (unblinded: per visit and arm)."""
    alpha = alpha.dropna(subset=["visit"])
    visits = visit_levels(alpha)
    split = has_arms(alpha, ctx)
    depth = int(alpha["depth"].iloc[0]) if "depth" in alpha.columns and len(alpha) else None
    key_values: dict[str, str] = {}
    with style.report_style():
        fig = new_figure(6.4)
        axes = fig.subplots(2, 2, sharex=True).ravel()
        for ax, (index, label) in zip(axes, ALPHA_INDICES.items(), strict=True):
            groups: list[tuple[float, str, np.ndarray]] = []
            for i, v in enumerate(visits):
                sub = alpha[alpha["visit"] == v]
                if split:
                    for k, arm in enumerate(ARMS):
                        values = sub.loc[sub["arm"] == arm, index].dropna().to_numpy(float)
                        groups.append((i + (k - 0.5) * 0.4, arm_colour(arm, ctx), values))
                else:
                    groups.append((float(i), style.OKABE_ITO["blue"], sub[index].dropna().to_numpy(float)))
            width = 0.34 if split else 0.55
            # one boxplot() and one scatter() per colour (arm) for all visits: a call per box costs more than its
            # drawing (jitter still seeded per box, so the points are the same)
            for colour in dict.fromkeys(c for _, c, _ in groups):
                boxes = [(pos, values) for pos, c, values in groups if c == colour and len(values)]
                if not boxes:
                    continue
                ax.boxplot(
                    [values for _, values in boxes],
                    positions=[pos for pos, _ in boxes],
                    widths=width,
                    showfliers=False,
                    patch_artist=True,
                    boxprops={"facecolor": mcolors.to_rgba(colour, 0.18), "edgecolor": colour, "lw": 1.0},
                    medianprops={"color": colour, "lw": 1.6},
                    whiskerprops={"color": colour, "lw": 0.9},
                    capprops={"color": colour, "lw": 0.9},
                )
                ax.scatter(
                    np.concatenate(
                        [pos + jitter(len(v), width * 0.4, JITTER_SEED + int(pos * 100)) for pos, v in boxes]
                    ),
                    np.concatenate([v for _, v in boxes]),
                    s=5,
                    color=colour,
                    alpha=0.55,
                    lw=0,
                    gid="points",
                    zorder=3,
                )
            kw = _alpha_test(tests, index, "visit", "ALL", "kruskal")
            kw_text = f"Kruskal–Wallis by visit p = {fmt_p(float(kw['p_value']))}" if kw is not None else ""
            if kw is not None:
                key_values[f"{index} Kruskal–Wallis by visit p"] = fmt_p(float(kw["p_value"]))
            ax.set_title(f"{label}\n{kw_text}", loc="left", fontsize=8.5)
            if split:
                top = ax.get_ylim()[1]
                for i, v in enumerate(visits):
                    wt = _alpha_test(tests, index, "arm", v, "wilcoxon_ranksum")
                    if wt is not None:
                        ax.text(i, top, f"p={fmt_p(float(wt['p_value']))}", ha="center", va="bottom", fontsize=6.5)
                ax.set_ylim(top=top + 0.08 * (top - ax.get_ylim()[0]))
            ax.set_xticks(range(len(visits)), [short_visit(v) for v in visits], rotation=30, ha="right")
        if split:
            handles = [Patch(facecolor=arm_colour(a, ctx), label=arm_label(a, ctx)) for a in ARMS]
            fig.legend(handles=handles, loc="outside upper right", ncols=2)
    n_by_visit = alpha.groupby("visit").size().reindex(visits)
    pop, n = population_text(alpha, "faecal samples sequenced to at least the rarefaction depth")
    n += " (" + ", ".join(f"{short_visit(v)} {int(c)}" for v, c in n_by_visit.items()) + ")"
    text = (
        f"Alpha diversity per visit, rarefied to {depth} reads (mean over the seeded subsamples): boxes show median "
        "and quartiles, whiskers 1.5 IQR, points single samples. Kruskal–Wallis test across visits (samples of "
        "the same patient at different visits are treated as independent)"
    )
    if split:
        text += "; above each visit the Wilcoxon rank-sum p between the arms"
    return ReportFigure(
        slug="mb_alpha_by_visit",
        section=SECTION,
        title="Alpha diversity by visit" + (" and arm" if split else ""),
        caption=ctx.caption(text, pop, n),
        figure=fig,
        key_values=key_values,
    )


def alpha_tests_table(group_tests: pd.DataFrame, change_tests: pd.DataFrame, ctx: ReportContext) -> ReportTable:
    """The alpha-diversity tests behind :func:`alpha_figure` (rarefied): Kruskal–Wallis by visit, signed-rank
    change from baseline per visit and, unblinded, arm rank-sum per visit."""
    indices = list(ALPHA_INDICES)
    g = group_tests[(group_tests["source"] == "rarefied") & group_tests["index"].isin(indices)]
    rows = []
    kw = g[(g["factor"] == "visit") & (g["test"] == "kruskal")]
    for r in kw.itertuples():
        rows.append(("Kruskal–Wallis across visits", r.index, "all visits", int(r.n_a), r.statistic, r.p_value, None))
    c = change_tests[
        (change_tests["source"] == "rarefied") & change_tests["index"].isin(indices) & (change_tests["factor"] == "all")
    ]
    for r in c.itertuples():
        rows.append(
            ("Signed-rank: change from baseline", r.index, r.visit, int(r.n), r.statistic, r.p_value, r.q_value)
        )
    if ctx.unblinded:
        a = g[(g["factor"] == "arm") & (g["test"] == "wilcoxon_ranksum")]
        for r in a.itertuples():
            label = f"Rank-sum: {arm_label(str(r.group_b), ctx)} vs {arm_label(str(r.group_a), ctx)}"
            rows.append((label, r.index, r.visit, int(r.n_a + r.n_b), r.statistic, r.p_value, r.q_value))
    frame = pd.DataFrame(rows, columns=["test", "index", "visit", "n", "statistic", "p", "q (BH)"])
    frame["index"] = pd.Categorical(frame["index"], indices, ordered=True)
    frame = frame.sort_values(["index", "test"], kind="stable").reset_index(drop=True)
    frame["index"] = frame["index"].astype(str)
    n = int(kw["n_a"].max()) if len(kw) else 0
    return ReportTable(
        slug="mb_alpha_tests",
        section=SECTION,
        title="Alpha-diversity tests (rarefied)",
        caption=ctx.caption(
            "Tests of alpha diversity on the rarefied indices: Kruskal–Wallis across visits, Wilcoxon signed-rank "
            "of the within-patient change from baseline per visit (BH over visits and indices)"
            + ("; Wilcoxon rank-sum between arms per visit" if ctx.unblinded else ""),
            "all patients with faecal samples sequenced to at least the rarefaction depth",
            f"{n} samples",
        ),
        frame=frame,
    )


# ================================================================================================ ordinations


def permanova_text(tests: pd.DataFrame, metric: str, ctx: ReportContext) -> tuple[str, dict[str, str]]:
    """Caption sentence and key values of the PERMANOVA rows (visit ALL) of ``metric``: visit, response, arm."""
    perm = tests[(tests["test"] == "PERMANOVA") & (tests["metric"] == metric) & (tests["visit"] == "ALL")]
    names = {"visit": "visit", "responder": "response", "arm": "arm"}
    parts: list[str] = []
    key: dict[str, str] = {}
    for factor in ("visit", "responder", "arm"):
        if factor == "arm" and not ctx.unblinded:
            continue
        row = perm[perm["factor"] == factor]
        if row.empty:
            continue
        r = row.iloc[0]
        scheme = "permutations within patients" if factor == "visit" else "whole-patient permutations"
        stat = f"F = {r['statistic']:.3f}, R² = {r['r2']:.4f}, p = {r['p_value']:.3f}"
        parts.append(f"by {names[factor]} {stat} ({scheme}, {int(r['permutations'])} permutations)")
        key[f"PERMANOVA {METRIC_NAMES.get(metric, metric)} ~ {names[factor]}"] = stat
    if not parts:
        return "", key
    return f"PERMANOVA ({METRIC_NAMES.get(metric, metric)}): " + "; ".join(parts), key


def _scatter_groups(
    ax: Axes,
    coords: pd.DataFrame,
    group: str,
    levels: Sequence[str],
    palette: dict[str, str],
    labels: dict[str, str],
) -> None:
    for level in levels:
        sub = coords[coords[group] == level]
        if sub.empty:
            continue
        xy = sub[["axis1", "axis2"]].to_numpy(float)
        colour = palette[level]
        ax.scatter(
            xy[:, 0],
            xy[:, 1],
            s=9,
            color=colour,
            alpha=0.65,
            lw=0,
            gid="points",
            label=f"{labels[level]} (n={len(sub)})",
        )
        outline = confidence_ellipse(xy)
        if outline is not None:
            ax.plot(outline[:, 0], outline[:, 1], color=colour, lw=1.3, gid="ellipse")
            centre = xy.mean(axis=0)
            ax.plot(*centre, marker="+", color=colour, markersize=9, mew=1.8)
    ax.axhline(0, color="0.85", lw=0.5, zorder=0)
    ax.axvline(0, color="0.85", lw=0.5, zorder=0)


def ordination_figure(
    slug: str, coordinates: pd.DataFrame, axes: pd.DataFrame, tests: pd.DataFrame, ctx: ReportContext
) -> ReportFigure:
    """Scores on axes 1–2 of one ordination, coloured by visit (and by arm unblinded), 95 % ellipses."""
    method, metric, title = ORDINATIONS[slug]
    # one ordination = method and metric (PCoA also runs on UniFrac when a tree was delivered)
    coords = coordinates[(coordinates["method"] == method) & (coordinates["metric"] == metric)].copy()
    ax_info = axes[(axes["method"] == method) & (axes["metric"] == metric)].sort_values("axis")
    names = list(ax_info["name"].head(2)) or ["Axis 1", "Axis 2"]
    labels_xy = []
    for k, name in enumerate(names):
        share = ax_info["proportion_explained"].iloc[k] if len(ax_info) > k else np.nan
        labels_xy.append(f"{name} ({100 * share:.1f} %)" if np.isfinite(share) else name)
    stress = float(ax_info["stress"].dropna().iloc[0]) if ax_info["stress"].notna().any() else None
    visits = visit_levels(coords)
    split = has_arms(coords, ctx)
    key: dict[str, str] = {}
    with style.report_style():
        fig = new_figure(5.0 if split else 5.6, style.FIGURE_WIDTH_IN if split else 5.6)
        panels = fig.subplots(1, 2 if split else 1, sharex=True, sharey=True, squeeze=False).ravel()
        _scatter_groups(panels[0], coords, "visit", visits, visit_colours(visits), {v: short_visit(v) for v in visits})
        panels[0].set_title("By visit", loc="left")
        if split:
            present = [a for a in ARMS if (coords["arm"] == a).any()]
            _scatter_groups(
                panels[1],
                coords,
                "arm",
                present,
                {a: arm_colour(a, ctx) for a in present},
                {a: arm_label(a, ctx) for a in present},
            )
            panels[1].set_title("By arm", loc="left")
        for ax in panels:
            ax.set_xlabel(labels_xy[0])
            # legends below the panels: beside them they squeeze two panels to half their width
            ax.legend(
                loc="upper center",
                bbox_to_anchor=(0.5, -0.13),
                ncols=3 if not split else 2,
                fontsize=7,
                markerscale=1.5,
                handletextpad=0.2,
                columnspacing=0.8,
            )
        panels[0].set_ylabel(labels_xy[1])
        if stress is not None:
            panels[0].text(0.02, 0.02, f"stress = {stress:.4f}", transform=panels[0].transAxes, fontsize=7.5)
    perm_text, perm_key = permanova_text(tests, metric, ctx)
    key.update(perm_key)
    text = f"{title}: samples on the first two axes; ellipses: 95 % normal-theory ellipses of each group"
    text += " (vegan ordiellipse kind = 'sd': group covariance scaled by √χ²₂(0.95)), crosses: group centroids"
    if stress is not None:
        text += f". NMDS stress (Kruskal stress-1, 2 dimensions) = {stress:.4f}"
        key["NMDS stress"] = f"{stress:.4f}"
    if perm_text:
        text += f". {perm_text}"
    pop, n = population_text(coords)
    return ReportFigure(
        slug=slug, section=SECTION, title=title, caption=ctx.caption(text, pop, n), figure=fig, key_values=key
    )


# ================================================================================================ top genera


def read_genus_shares(con: duckdb.DuckDBPyConnection, ctx: ReportContext, top: int = TOP_GENERA) -> pd.DataFrame:
    """Long ``sample_id, subject_id, visit, visit_order, genus, genus_rank, share`` (:data:`GENUS_SQL`); with
    ``arm`` added only in unblinded runs."""
    frame = con.execute(GENUS_SQL, [top]).df()
    arms = read_arms(con, ctx)
    if len(arms):
        frame["arm"] = frame["subject_id"].map(arms)
    return frame


def _genus_palette(genera: Sequence[str]) -> dict[str, str]:
    from matplotlib import colormaps

    tab = colormaps["tab10"].colors
    out = {g: mcolors.to_hex(tab[i % 10]) for i, g in enumerate([g for g in genera if g != "Other"])}
    out["Other"] = "#D9D9D9"
    return out


def _genus_order(shares: pd.DataFrame) -> list[str]:
    order = shares.drop_duplicates("genus").sort_values(["genus_rank", "genus"])["genus"].tolist()
    return [g for g in order if g != "Other"] + (["Other"] if "Other" in order else [])


def stacked_bars(
    ax: Axes, shares: np.ndarray, colours: Sequence[str], names: Sequence[str], x: np.ndarray | None = None
) -> None:
    """One stacked bar per row of ``shares`` (samples x categories), width 1, centred at ``x`` (default 0, 1, ...).

    Drawn as one PolyCollection of rectangles per category (``gid = "bar:<name>"``) instead of ``ax.bar``: a
    Rectangle artist per sample and genus makes 600 samples take 20 s to draw and save. The caller sets the axis
    limits (the collections do not update them).
    """
    n = shares.shape[0]
    x0 = (np.arange(n, dtype=float) if x is None else np.asarray(x, dtype=float)) - 0.5
    bottom = np.zeros(n)
    for k, (colour, name) in enumerate(zip(colours, names, strict=True)):
        top = bottom + shares[:, k]
        verts = np.stack(
            [
                np.column_stack([x0, bottom]),
                np.column_stack([x0 + 1, bottom]),
                np.column_stack([x0 + 1, top]),
                np.column_stack([x0, top]),
            ],
            axis=1,
        )
        ax.add_collection(
            PolyCollection(verts, facecolors=colour, edgecolors="none", gid=f"bar:{name}", rasterized=True),
            autolim=False,
        )
        bottom = top


#: Gap between the visit blocks of the per-sample bars, in bar widths.
VISIT_GAP = 3.0


def top_genera_samples_figure(shares: pd.DataFrame, ctx: ReportContext) -> ReportFigure:
    """Stacked bars per sample, in one block per visit (unblinded: one row of blocks per arm).

    The visit blocks share one axes per row (a gap of :data:`VISIT_GAP` bars between them, the visit above and
    ``n`` below each block): an axes per visit would cost more to lay out and draw than the bars themselves."""
    genera = _genus_order(shares)
    palette = _genus_palette(genera)
    wide = shares.pivot_table(index="sample_id", columns="genus", values="share", aggfunc="sum", fill_value=0.0)
    wide = wide.reindex(columns=genera, fill_value=0.0)
    meta = shares.drop_duplicates("sample_id").set_index("sample_id")
    visits = visit_levels(meta.reset_index())
    split = has_arms(meta, ctx)
    row_levels: list[str | None] = [a for a in ARMS if (meta["arm"] == a).any()] if split else [None]
    lead = genera[0]
    colours = [palette[g] for g in genera]
    with style.report_style():
        fig = new_figure(3.2 + 1.8 * len(row_levels))
        axes = fig.subplots(len(row_levels), 1, squeeze=False)[:, 0]
        # one block per visit, as wide as its largest row (arms), so the blocks of the rows line up
        selections = {
            (arm, v): meta[(meta["visit"] == v) & ((meta["arm"] == arm) if arm is not None else True)].index
            for arm in row_levels
            for v in visits
        }
        widths = [max(max(len(selections[(arm, v)]) for arm in row_levels), 1) for v in visits]
        starts = np.concatenate([[0.0], np.cumsum(np.asarray(widths, dtype=float) + VISIT_GAP)[:-1]])
        centres = starts + (np.asarray(widths, dtype=float) - 1) / 2
        for r, (ax, arm) in enumerate(zip(axes, row_levels, strict=True)):
            counts = []
            for v, centre in zip(visits, centres, strict=True):
                block = wide.reindex(selections[(arm, v)]).fillna(0.0)
                block = block.assign(_id=block.index).sort_values([lead, "_id"], ascending=[False, True])
                block = block.drop(columns="_id")
                counts.append(len(block))
                if len(block):
                    x = centre - (len(block) - 1) / 2 + np.arange(len(block), dtype=float)
                    stacked_bars(ax, block[genera].to_numpy(float), colours, genera, x)
            ax.set_xlim(-0.5 - VISIT_GAP / 2, starts[-1] + widths[-1] - 0.5 + VISIT_GAP / 2)
            ax.set_ylim(0, 1)
            ax.set_xticks(centres, [f"n={n}" for n in counts], fontsize=7)
            ax.tick_params(axis="x", length=0, pad=2)
            ax.spines["bottom"].set_visible(False)
            if r == 0:
                for centre, v in zip(centres, visits, strict=True):
                    ax.text(
                        centre,
                        1.01,
                        short_visit(v),
                        transform=ax.get_xaxis_transform(),
                        ha="center",
                        va="bottom",
                        fontsize=8,
                    )
            ax.set_ylabel((arm_label(arm, ctx) + "\n" if arm is not None else "") + "relative abundance")
        handles = [Patch(facecolor=palette[g], label=g) for g in genera]
        fig.legend(handles=handles, loc="outside lower center", ncols=6, fontsize=7)
    pop, n = population_text(meta.reset_index())
    text = (
        f"Relative abundance of the {len(genera) - 1} most abundant genera (largest mean share over all samples) in "
        "every sample; all other genera and reads without a genus assignment are pooled as Other. One bar per "
        f"sample, sorted within each visit by the share of {lead}"
    )
    return ReportFigure(
        slug="mb_top_genera_samples",
        section=SECTION,
        title="Top genera per sample",
        caption=ctx.caption(text, pop, n),
        figure=fig,
        key_values={"genera shown": ", ".join(genera[:-1] if genera[-1] == "Other" else genera)},
    )


def group_means(shares: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Mean relative abundance per genus over the samples of each group (every sample weighs the same; a genus
    absent from a sample counts as 0)."""
    wide = shares.pivot_table(index="sample_id", columns="genus", values="share", aggfunc="sum", fill_value=0.0)
    meta = shares.drop_duplicates("sample_id").set_index("sample_id")[list(by)]
    return wide.join(meta).groupby(list(by), observed=True).mean()


def top_genera_groups_figure(shares: pd.DataFrame, ctx: ReportContext) -> ReportFigure:
    """Stacked bars of the mean relative abundance per visit (unblinded: per visit and arm)."""
    genera = _genus_order(shares)
    palette = _genus_palette(genera)
    meta = shares.drop_duplicates("sample_id")
    visits = visit_levels(meta)
    split = has_arms(meta, ctx)
    by = ["visit", "arm"] if split else ["visit"]
    means = group_means(shares[shares["arm"].isin(ARMS)] if split else shares, by)
    sizes = meta.groupby(by).size()
    bars: list[tuple[float, tuple[str, ...]]] = []
    for i, v in enumerate(visits):
        if split:
            bars += [(i + (k - 0.5) * 0.42, (v, a)) for k, a in enumerate(ARMS) if (v, a) in means.index]
        elif v in means.index:
            bars.append((float(i), (v,)))
    with style.report_style():
        fig = new_figure(4.4)
        ax = fig.add_subplot()
        width = 0.4 if split else 0.7
        # one bar() call per genus (all groups at once): the stacked heights are the cumulative means
        heights = np.array(
            [[float(means.loc[key if split else key[0]].get(g, 0.0)) for g in genera] for _, key in bars]
        ).reshape(len(bars), len(genera))
        bottoms = np.cumsum(heights, axis=1) - heights
        positions = [pos for pos, _ in bars]
        for k, g in enumerate(genera):
            ax.bar(
                positions,
                heights[:, k],
                bottom=bottoms[:, k],
                width=width,
                color=palette[g],
                lw=0.3,
                edgecolor="white",
                gid=f"bar:{g}",
            )
        for pos, key in bars:
            n = int(sizes.loc[key if split else key[0]])
            tag = f"{arm_label(key[1], ctx)[0]}\n" if split else ""
            ax.text(pos, 1.01, f"{tag}n={n}", ha="center", va="bottom", fontsize=6.5)
        ax.set_xticks(range(len(visits)), [short_visit(v) for v in visits])
        ax.set_ylim(0, 1.12)
        ax.set_ylabel("mean relative abundance")
        handles = [Patch(facecolor=palette[g], label=g) for g in genera]
        ax.legend(handles=handles[::-1], loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7)
    pop, n = population_text(meta)
    arms_text = (
        f" and arm (left bar of each visit: {arm_label(ARMS[0], ctx)}, right: {arm_label(ARMS[1], ctx)})"
        if split
        else ""
    )
    text = (
        f"Mean relative abundance of the {len(genera) - 1} most abundant genera per visit"
        + arms_text
        + "; every sample weighs the same, other genera and unassigned reads pooled as Other"
    )
    return ReportFigure(
        slug="mb_top_genera_groups",
        section=SECTION,
        title="Top genera per visit" + (" and arm" if split else ""),
        caption=ctx.caption(text, pop, n),
        figure=fig,
    )


# ================================================================================================ rarefaction


def rarefaction_figure(
    curves: pd.DataFrame, depth: pd.DataFrame, alpha: pd.DataFrame, ctx: ReportContext
) -> ReportFigure:
    """Per-sample rarefaction curves coloured by batch, and the median/IQR curve per visit (unblinded: arm)."""
    meta_cols = ["sample_id", "subject_id", "batch_id", "visit", "visit_order"] + (
        ["arm"] if ctx.unblinded and "arm" in alpha.columns else []
    )
    data = curves.merge(alpha[meta_cols], on="sample_id", how="left")
    chosen = int(depth["depth"].iloc[0])
    n_below = int(depth["n_below_depth"].iloc[0])
    batches = sorted(data["batch_id"].dropna().unique())
    cycle = [c for c in style.CYCLE if c != style.OKABE_ITO["yellow"]]
    batch_palette = {b: cycle[i % len(cycle)] for i, b in enumerate(batches)}
    split = has_arms(data, ctx)
    with style.report_style():
        fig = new_figure(4.0)
        left, right = fig.subplots(1, 2, sharey=True)
        ordered = data.sort_values(["batch_id", "sample_id", "depth"], kind="stable")
        for batch, part in ordered.groupby("batch_id", sort=True):
            # one LineCollection per batch: hundreds of curves without hundreds of Line2D artists (rows are sorted
            # by sample, so each sample's curve is a contiguous block)
            sample = part["sample_id"].to_numpy()
            cuts = np.flatnonzero(sample[1:] != sample[:-1]) + 1
            lines = np.split(part[["depth", "expected_sobs"]].to_numpy(float), cuts)
            left.add_collection(
                # rasterised in the SVG: hundreds of overlapping curves as one image instead of ~30 000 path points
                LineCollection(lines, colors=batch_palette[batch], linewidths=0.5, alpha=0.45, rasterized=True)
            )
        left.autoscale_view()
        for b in batches:
            left.plot([], [], color=batch_palette[b], lw=1.5, label=b)
        left.legend(title="sequencing batch", loc="upper left", fontsize=7, title_fontsize=7)
        if split:
            levels = [a for a in ARMS if (data["arm"] == a).any()]
            palette = {a: arm_colour(a, ctx) for a in levels}
            names = {a: arm_label(a, ctx) for a in levels}
            column = "arm"
        else:
            levels = visit_levels(data)
            palette = visit_colours(levels)
            names = {v: short_visit(v) for v in levels}
            column = "visit"
        for level in levels:
            sub = data[data[column] == level]
            # depths reached by too few samples give a jagged, meaningless tail
            reached = sub.groupby("depth")["sample_id"].nunique()
            need = max(MIN_CURVE_SAMPLES, MIN_CURVE_SHARE * sub["sample_id"].nunique())
            sub = sub[sub["depth"].isin(reached.index[reached >= need])]
            q = sub.groupby("depth")["expected_sobs"].quantile([0.25, 0.5, 0.75]).unstack()
            right.plot(q.index, q[0.5], color=palette[level], lw=1.4, label=names[level])
            right.fill_between(q.index, q[0.25], q[0.75], color=palette[level], alpha=0.12, lw=0)
        right.legend(loc="upper left", fontsize=7)
        for ax in (left, right):
            ax.set_xscale("log")
            # decade labels as 10², 10³, ... in plain text (the default 10^n labels go through mathtext, whose
            # parser costs more than the rest of the panel)
            ax.xaxis.set_major_formatter(FuncFormatter(_decade_label))
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.axvline(chosen, color="0.25", ls="--", lw=0.8)
            ax.set_xlabel("reads sampled (log scale)")
        left.text(chosen * 1.08, 0.02, f"depth\n{chosen:,}", transform=left.get_xaxis_transform(), fontsize=7)
        left.set_ylabel("expected observed OTUs/ASVs")
        left.set_title("Per sample", loc="left")
        right.set_title("Median and IQR by " + ("arm" if split else "visit"), loc="left")
    n_samples = data["sample_id"].nunique()
    pop = "all patients with sequenced faecal samples (one library per specimen)"
    n = f"{n_samples} samples from {data['subject_id'].nunique()} patients"
    text = (
        "Rarefaction curves: expected number of observed OTUs/ASVs when sampling reads without replacement "
        f"(Hurlbert 1971), per sample up to its library size; dashed line: rarefaction depth {chosen:,} reads "
        f"({n_below} samples below it are left out of the rarefied analyses). Right: median and interquartile "
        f"band over the samples reaching each depth (drawn while at least {MIN_CURVE_SAMPLES} samples and "
        f"{MIN_CURVE_SHARE:.0%} of the group reach it)"
    )
    return ReportFigure(
        slug="mb_rarefaction_curves",
        section=SECTION,
        title="Rarefaction curves",
        caption=ctx.caption(text, pop, n),
        figure=fig,
        key_values={"rarefaction depth": f"{chosen}", "samples below depth": f"{n_below}"},
    )


_SUPERSCRIPTS = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")


def _decade_label(value: float, _pos: int | None = None) -> str:
    """Tick label of a log axis: ``10³`` for a power of ten, else the plain number."""
    if value <= 0 or not np.isfinite(value):
        return ""
    exponent = np.log10(value)
    if abs(exponent - round(exponent)) < 1e-9:
        return "10" + str(int(np.rint(exponent))).translate(_SUPERSCRIPTS)
    return f"{value:g}"


# ======================================================================================== differential abundance

DA_TITLES: dict[str, str] = {
    "responder_pooled": "Responders vs non-responders (per-patient mean CLR, all visits)",
    "arm_on_treatment": "Capsules vs placebo (per-patient mean CLR, on-treatment visits)",
    "arm_x_visit_pooled": "Capsules vs placebo: change from baseline (per-patient mean, on treatment)",
}
DA_XLABEL = "effect, log2 units (CLR difference / ln 2)"


def _da_patients(da: pd.DataFrame) -> int:
    """Patients behind a differential analysis: both groups, or the pairs of a paired (change) analysis."""
    if da.empty:
        return 0
    paired = da["method"].astype(str).str.contains("paired").to_numpy()
    n = np.where(paired, da["n_ref"], da["n_ref"] + da["n_other"])
    return int(np.nanmax(n.astype(float)))


def da_volcano_figure(da: pd.DataFrame, ctx: ReportContext, analyses: Sequence[str], slug: str) -> ReportFigure:
    """Volcano plots (genus rank) of the pooled analyses ``analyses`` of ``analysis.differential_abundance``."""
    genus = da[(da["rank"] == "genus") & da["analysis"].isin(analyses)]
    present = [a for a in analyses if (genus["analysis"] == a).any()]
    key: dict[str, str] = {}
    with style.report_style():
        fig = new_figure(4.4, 6.2 if len(present) == 1 else style.FIGURE_WIDTH_IN)
        panels = fig.subplots(1, len(present), squeeze=False).ravel()
        for ax, analysis in zip(panels, present, strict=True):
            sub = genus[genus["analysis"] == analysis]
            n_sig = volcano(
                ax,
                sub["effect_log2"].to_numpy(float),
                sub["q_value"].to_numpy(float),
                sub["taxon"].tolist(),
                title=textwrap.fill(DA_TITLES.get(analysis, analysis), 38 if len(present) > 1 else 80),
                xlabel=DA_XLABEL,
            )
            ax.title.set_fontsize(8.5)
            key[f"{analysis}: genera with q < {Q_THRESHOLD:g}"] = f"{n_sig} of {len(sub)}"
    n_patients = max((_da_patients(genus[genus["analysis"] == a]) for a in present), default=0)
    text = (
        "Differential abundance at genus rank: per patient the mean centred log-ratio (CLR, pseudocount 0.5, genera "
        "in ≥ 10 % of samples) over the visits, compared between groups by Wilcoxon rank-sum; effect = difference "
        f"of group means in log2 units, q = Benjamini–Hochberg over genera. Dashed line q = {Q_THRESHOLD:g}, dotted "
        "lines |effect| = 1 (two-fold); genera with q below the threshold are labelled (up to 8, smallest q first)"
    )
    pop = "all patients with sequenced faecal samples" + (
        " and a best-overall-response assessment" if "responder_pooled" in present else ""
    )
    return ReportFigure(
        slug=slug,
        section=SECTION,
        title="Differential abundance of genera" + (" between arms" if slug.endswith("_arm") else ""),
        caption=ctx.caption(text, pop, f"{n_patients} patients, {genus['taxon'].nunique()} genera"),
        figure=fig,
        key_values=key,
    )


def da_effects_figure(
    da: pd.DataFrame, ctx: ReportContext, analysis: str, slug: str, n_top: int = 15
) -> ReportFigure | None:
    """Dot plot of per-visit effects (genus rank) of ``analysis`` for the ``n_top`` genera with the smallest q."""
    sub = da[(da["rank"] == "genus") & (da["analysis"] == analysis)].copy()
    if sub.empty:
        return None
    visits = _protocol_visits(sub["visit"].unique())
    best = sub.groupby("taxon")["q_value"].min().sort_values(kind="stable")
    taxa = best.head(n_top).index.tolist()
    with style.report_style():
        fig = new_figure(0.9 + 0.24 * len(taxa) + 0.8, 6.4)
        ax = fig.add_subplot()
        sc = effect_dotplot(
            ax,
            sub,
            row="taxon",
            col="visit",
            effect="effect_log2",
            q="q_value",
            rows=taxa,
            cols=visits,
            col_labels=[short_visit(v) for v in visits],
        )
        cbar = fig.colorbar(sc, ax=ax, shrink=0.7, aspect=25, location="right", pad=0.02)
        cbar.set_label(
            "log2 CLR change from baseline" if analysis == "change_from_baseline" else "difference in log2 CLR change"
        )
        size_legend(fig)
    n_sig = int((sub["q_value"] < Q_THRESHOLD).sum())
    if analysis == "change_from_baseline":
        text = (
            "Within-patient change of the CLR abundance (genus rank) from the patient's own baseline sample, per visit "
            "(Wilcoxon signed-rank, BH over genera per visit), pooled over all patients; the genera with the "
            f"smallest q at any visit. {n_sig} genus-visit pairs with q < {Q_THRESHOLD:g}"
        )
        title = "Change from baseline of genera"
    else:
        text = (
            "Difference between the arms (capsules minus placebo) in the within-patient CLR change from baseline, per "
            f"visit (Wilcoxon rank-sum, BH over genera per visit). {n_sig} genus-visit pairs with q < {Q_THRESHOLD:g}"
        )
        title = "Arm difference in change from baseline of genera"
    pop = "all patients with a baseline and a follow-up sequenced faecal sample"
    return ReportFigure(
        slug=slug,
        section=SECTION,
        title=title,
        caption=ctx.caption(text, pop, f"{_da_patients(sub)} patients (at most, per visit)"),
        figure=fig,
        key_values={"genus-visit pairs with q < 0.1": str(n_sig)},
    )


def _protocol_visits(visits: Iterable[str]) -> list[str]:
    """Visits of the differential table in protocol order (it carries no visit order): baseline first, numbered
    visits by number, progression last."""

    def key(v: str) -> tuple[int, float, str]:
        digits = "".join(ch if ch.isdigit() else " " for ch in v).split()
        if v == "BASELINE":
            return (0, 0.0, v)
        if v == "PROGRESSION" or not digits:
            return (2, 0.0, v)
        return (1, float(digits[0]), v)

    return sorted(set(visits), key=key)


# ================================================================================================ entry point

Builder = Callable[[], list[ReportFigure | ReportTable]]


def figures(con: duckdb.DuckDBPyConnection, ctx: ReportContext) -> list[ReportFigure | ReportTable]:
    """Every microbiome figure/table the warehouse has the tables for (see :data:`FIGURE_TABLES`)."""
    lacking = missing_tables(con, FIGURE_TABLES)
    out: list[ReportFigure | ReportTable] = []

    def ok(slug: str) -> bool:
        return slug not in lacking and (ctx.unblinded or slug not in UNBLINDED_ONLY)

    if ok("mb_alpha_by_visit"):
        alpha = _read_blind(con, "analysis.alpha_diversity_rarefied", ctx)
        tests = read_table(con, "analysis.alpha_group_tests")
        if len(alpha):
            out.append(alpha_figure(alpha, tests, ctx))
    if ok("mb_alpha_tests"):
        tests = read_table(con, "analysis.alpha_group_tests")
        changes = read_table(con, "analysis.alpha_change_tests")
        if len(tests) and len(changes):
            out.append(alpha_tests_table(_blind_rows(tests, ctx), _blind_rows(changes, ctx), ctx))
    if all(ok(s) for s in ORDINATIONS):  # the three share their tables
        coords = _read_blind(con, "analysis.ordination_coordinates", ctx)
        axes = read_table(con, "analysis.ordination_axes")
        tests = _blind_rows(read_table(con, "analysis.beta_group_tests"), ctx)
        for slug, (method, _metric, _title) in ORDINATIONS.items():
            if (coords.get("method", pd.Series(dtype=str)) == method).any():
                out.append(ordination_figure(slug, coords, axes, tests, ctx))
    if ok("mb_top_genera_samples"):
        shares = read_genus_shares(con, ctx)
        if len(shares):
            out.append(top_genera_samples_figure(shares, ctx))
            out.append(top_genera_groups_figure(shares, ctx))
    if ok("mb_rarefaction_curves"):
        curves = read_table(con, "analysis.rarefaction_curves")
        depth = read_table(con, "analysis.rarefaction_depth")
        alpha = _read_blind(con, "analysis.alpha_diversity", ctx)
        if len(curves) and len(depth):
            out.append(rarefaction_figure(curves, depth, alpha, ctx))
    if ok("mb_da_volcano"):
        da = _blind_rows(read_table(con, "analysis.differential_abundance"), ctx)
        if (da.get("analysis", pd.Series(dtype=str)) == "responder_pooled").any():
            out.append(da_volcano_figure(da, ctx, ["responder_pooled"], "mb_da_volcano"))
        fig = da_effects_figure(da, ctx, "change_from_baseline", "mb_da_effects")
        if fig is not None:
            out.append(fig)
        if ctx.unblinded and da["analysis"].isin(["arm_on_treatment", "arm_x_visit_pooled"]).any():
            out.append(da_volcano_figure(da, ctx, ["arm_on_treatment", "arm_x_visit_pooled"], "mb_da_volcano_arm"))
            fig = da_effects_figure(da, ctx, "arm_x_visit", "mb_da_effects_arm")
            if fig is not None:
                out.append(fig)
    return out


def _read_blind(con: duckdb.DuckDBPyConnection, qualified: str, ctx: ReportContext) -> pd.DataFrame:
    """A table, with any ``arm`` column dropped in a blinded context (defence in depth: blinded warehouses have
    none)."""
    frame = read_table(con, qualified)
    if not ctx.unblinded and "arm" in frame.columns:
        frame = frame.drop(columns="arm")
    return frame


def _blind_rows(frame: pd.DataFrame, ctx: ReportContext) -> pd.DataFrame:
    """Test tables minus their arm rows in a blinded context (defence in depth)."""
    if ctx.unblinded or frame.empty:
        return frame
    for column in ("factor", "analysis"):
        if column in frame.columns:
            frame = frame[~frame[column].astype(str).str.startswith("arm")]
    return frame
