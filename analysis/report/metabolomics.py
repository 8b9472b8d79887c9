"""Metabolomics figures of the trial report (issue 8): PCA scores with the pooled QCs, loadings, volcano plots,
top KEGG-annotated metabolites and QC RSD, for each matrix (faecal, serum), read from the warehouse.

Entry point: :func:`figures` ``(con, ctx)``; :data:`FIGURE_TABLES` lists the tables of every figure (a figure whose
tables are missing or empty is left out, :func:`analysis.report.microbiome.missing_tables` names them). The
inputs are the tables of :mod:`orchestration.assets.metabolomics` (recipe in :mod:`analysis.metabolomics.study`):
QC-based LOWESS drift correction, missing-value filter, LOD imputation, PQN, glog10, Pareto scaling for the PCA
(R ``prcomp(center = TRUE, scale. = FALSE)``), differential tests on the unscaled glog10 values.

Figures (``<m>`` = ``faeces`` / ``serum``)

* ``mtb_pca_scores_<m>``: PC1/PC2 scores of the study samples (model on all visits, scope ``ALL``) coloured by
  visit (unblinded: a second panel coloured by arm), with the pooled QC injections projected onto the same model
  (yellow diamonds): a tight QC cluster in the middle of the samples means technical variation is small next to
  biological variation. Bottom panel: PC1 score against injection order (batches in turn, ``run_order`` within
  a batch), QCs highlighted and joined per batch, so residual drift or a batch shift is visible.
* ``mtb_pca_loadings_<m>``: PC1/PC2 loadings (the rotation), annotated features in colour, the 10 annotated
  features farthest from the origin labelled.
* ``mtb_volcano_<m>``: linear-mixed-model (patient random intercept) log2 fold change against −log10 BH q:
  each visit vs baseline (the within-patient change; points coloured by visit), responders vs non-responders
  over all visits, and, unblinded, the arm × visit interaction per visit (difference between the arms in change
  from baseline). When a contrast has no mixed-model estimate, the Welch log2 FC and q are used (stated in the
  panel title). Lines at q = :data:`~analysis.report.microbiome.Q_THRESHOLD` and |log2 FC| = 1.
* ``mtb_top_kegg_<m>`` (figure) and ``mtb_top_kegg`` (table): the KEGG-annotated metabolites (validated KEGG
  COMPOUND ids carried by the vendor export, never a KEGG list of ours) with the smallest q in the joint visit
  test, the responder test (and, unblinded, the joint arm × visit test); dot matrix of their log2 fold change per
  visit vs baseline (and, unblinded, of the arm × visit interaction per visit).
* ``mtb_qc_rsd``: empirical distribution of the pooled-QC RSD (%) per feature before and after drift
  correction, per matrix, with the RSD filter threshold of the recipe (``analysis.metabolomics_steps``).
"""

from __future__ import annotations

import json
import textwrap

import duckdb
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import NullFormatter

from analysis.report import style
from analysis.report.figure import ReportContext, ReportFigure, ReportTable
from analysis.report.microbiome import (
    ARMS,
    Q_THRESHOLD,
    arm_colour,
    arm_label,
    effect_dotplot,
    has_arms,
    label_points,
    missing_tables,
    new_figure,
    read_arms,
    read_table,
    short_visit,
    size_legend,
    visit_colours,
    visit_levels,
    volcano,
)

__all__ = ["FIGURE_TABLES", "REQUIRED_TABLES", "figures", "missing_tables"]

SECTION = "metabolomics"
MATRICES: dict[str, str] = {"FAECES": "faecal", "SERUM": "serum"}
TOP_KEGG = 12
N_LOADING_LABELS = 10
#: Pooled QCs: yellow diamonds with a black edge (yellow is kept out of the visit palette, so QCs never share a
#: colour with a visit or an arm).
QC_COLOUR = style.OKABE_ITO["yellow"]
QC_MARKER: dict[str, object] = {"marker": "D", "markersize": 4, "mfc": QC_COLOUR, "mec": "black", "mew": 0.6}
JOINT_VISIT = "any visit vs {baseline} (joint)"
RESPONDER_ALL = "RESPONDER vs NON-RESPONDER (all visits)"
ARM_JOINT = "CAPSULE vs PLACEBO: arm x visit interaction (joint)"

FIGURE_TABLES: dict[str, tuple[str, ...]] = {
    **{
        f"mtb_pca_scores_{m.lower()}": ("analysis.metabolomics_pca_scores", "analysis.metabolomics_pca_importance")
        for m in MATRICES
    },
    **{
        f"mtb_pca_loadings_{m.lower()}": ("analysis.metabolomics_pca_loadings", "analysis.metabolomics_pca_importance")
        for m in MATRICES
    },
    **{f"mtb_volcano_{m.lower()}": ("analysis.differential_metabolites",) for m in MATRICES},
    **{f"mtb_top_kegg_{m.lower()}": ("analysis.differential_metabolites",) for m in MATRICES},
    "mtb_top_kegg": ("analysis.differential_metabolites",),
    "mtb_qc_rsd": ("analysis.metabolomics_qc_rsd",),
}
REQUIRED_TABLES: tuple[str, ...] = tuple(dict.fromkeys(t for ts in FIGURE_TABLES.values() for t in ts))


def _matrix_name(matrix: str) -> str:
    return MATRICES.get(matrix, matrix.lower())


def _population(matrix: str) -> str:
    return f"all patients with {_matrix_name(matrix)} metabolomics profiles (study samples; pooled QCs shown apart)"


# ================================================================================================ PCA


def _axis_labels(importance: pd.DataFrame, matrix: str) -> tuple[str, str]:
    imp = importance[(importance["matrix"] == matrix) & (importance["scope"] == "ALL")].set_index("pc")
    labels = []
    for pc in (1, 2):
        share = float(imp.loc[pc, "proportion_of_variance"]) if pc in imp.index else np.nan
        labels.append(f"PC{pc} ({100 * share:.1f} %)" if np.isfinite(share) else f"PC{pc}")
    return labels[0], labels[1]


def injection_sequence(scores: pd.DataFrame) -> pd.Series:
    """Position of every injection in acquisition order over all batches: batches by id, ``run_order`` within."""
    order = scores.sort_values(["batch_id", "run_order", "injection_id"], kind="stable").index
    return pd.Series(np.arange(len(order)), index=order).reindex(scores.index)


def pca_scores_figure(
    scores: pd.DataFrame, importance: pd.DataFrame, matrix: str, ctx: ReportContext, arms: pd.Series | None = None
) -> ReportFigure:
    """PC1/PC2 scores (samples by visit, unblinded also by arm) with projected QCs, and PC1 vs injection order."""
    sc = scores[(scores["matrix"] == matrix) & (scores["scope"] == "ALL")].copy()
    sc["visit_order"] = pd.to_numeric(sc["visit_order"], errors="coerce")
    samples = sc[sc["sample_type"] == "SAMPLE"].copy()
    qcs = sc[sc["sample_type"] == "QC"]
    if arms is not None and len(arms):
        samples["arm"] = samples["subject_id"].map(arms)
    split = has_arms(samples, ctx)
    visits = visit_levels(samples)
    palette = visit_colours(visits)
    xlab, ylab = _axis_labels(importance, matrix)
    with style.report_style():
        fig = new_figure(7.4)
        grid = fig.add_gridspec(2, 2 if split else 1, height_ratios=[1.6, 1.0])
        top = [fig.add_subplot(grid[0, 0])]
        if split:
            top.append(fig.add_subplot(grid[0, 1], sharex=top[0], sharey=top[0]))
        for v in visits:
            sub = samples[samples["visit"] == v]
            top[0].scatter(
                sub["PC1"],
                sub["PC2"],
                s=8,
                color=palette[v],
                alpha=0.7,
                lw=0,
                gid="points",
                label=f"{short_visit(v)} ({len(sub)})",
            )
        top[0].set_title("Study samples by visit, pooled QCs projected", loc="left", fontsize=9)
        if split:
            for a in ARMS:
                sub = samples[samples["arm"] == a]
                top[1].scatter(
                    sub["PC1"],
                    sub["PC2"],
                    s=8,
                    color=arm_colour(a, ctx),
                    alpha=0.6,
                    lw=0,
                    gid="points",
                    label=f"{arm_label(a, ctx)} ({len(sub)})",
                )
            top[1].set_title("Study samples by arm", loc="left", fontsize=9)
        for ax in top:
            ax.scatter(
                qcs["PC1"],
                qcs["PC2"],
                s=24,
                marker="D",
                color=QC_COLOUR,
                edgecolors="black",
                lw=0.6,
                gid="qc",
                label=f"pooled QC ({len(qcs)})",
                zorder=4,
            )
            ax.set_xlabel(xlab)
            ax.axhline(0, color="0.85", lw=0.5, zorder=0)
            ax.axvline(0, color="0.85", lw=0.5, zorder=0)
            ax.legend(
                loc="upper left",
                bbox_to_anchor=(1.0, 1.0),
                fontsize=6.5,
                markerscale=1.4,
                ncols=2 if len(visits) > 9 and not split else 1,
                handletextpad=0.2,
            )
        top[0].set_ylabel(ylab)
        drift = fig.add_subplot(grid[1, :])
        pos = injection_sequence(sc)
        is_qc = (sc["sample_type"] == "QC").to_numpy()
        drift.scatter(pos[~is_qc], sc.loc[~is_qc, "PC1"], s=5, color="0.65", lw=0, label="study sample")
        for _batch, part in sc[is_qc].assign(_pos=pos[is_qc]).groupby("batch_id", sort=True):
            part = part.sort_values("_pos")
            drift.plot(part["_pos"], part["PC1"], color="black", lw=0.7, **QC_MARKER)
        drift.plot([], [], color="black", lw=0.7, label="pooled QC (joined per batch)", **QC_MARKER)
        batches = sc.assign(_pos=pos).groupby("batch_id")["_pos"].agg(["min", "max"]).sort_values("min")
        for k, (batch, row) in enumerate(batches.iterrows()):
            if k:
                drift.axvline(row["min"] - 0.5, color="0.3", lw=0.6, ls="--")
            drift.text(
                (row["min"] + row["max"]) / 2,
                1.0,
                str(batch),
                transform=drift.get_xaxis_transform(),
                ha="center",
                va="bottom",
                fontsize=7,
            )
        drift.set_xlabel("injection order (batches in turn)")
        drift.set_ylabel(xlab.split(" ")[0] + " score")
        drift.legend(loc="lower left", fontsize=7, ncols=2, frameon=True, framealpha=0.9, edgecolor="none")
    n_samples, n_patients = len(samples), samples["subject_id"].nunique()
    text = (
        f"PCA of the {_matrix_name(matrix)} metabolome (QC-based drift correction, imputation, PQN, glog10, Pareto "
        "scaling; R prcomp on all visits): scores of the study samples and of the pooled QC injections projected "
        "onto the model. Bottom: PC1 score by injection order across batches; QCs highlighted to show residual "
        "drift or batch shifts"
    )
    return ReportFigure(
        slug=f"mtb_pca_scores_{matrix.lower()}",
        section=SECTION,
        title=f"PCA scores, {_matrix_name(matrix)} metabolome",
        caption=ctx.caption(
            text,
            _population(matrix),
            f"{n_samples} samples from {n_patients} patients, {len(qcs)} pooled QC injections",
        ),
        figure=fig,
        key_values={
            "PC1 / PC2 variance": f"{xlab.split('(')[-1].rstrip(')')} / {ylab.split('(')[-1].rstrip(')')}",
            "QC injections": str(len(qcs)),
        },
    )


def pca_loadings_figure(
    loadings: pd.DataFrame, importance: pd.DataFrame, matrix: str, ctx: ReportContext
) -> ReportFigure:
    """PC1/PC2 loadings, annotated features coloured, the largest annotated ones labelled."""
    ld = loadings[(loadings["matrix"] == matrix) & (loadings["scope"] == "ALL")].copy()
    named = ld["name"].notna() & (ld["name"].astype(str).str.strip() != "")
    xlab, ylab = _axis_labels(importance, matrix)
    radius = np.hypot(ld["PC1"], ld["PC2"])
    top = ld[named].assign(_r=radius[named]).sort_values(["_r", "feature"], ascending=[False, True])
    top = top.head(N_LOADING_LABELS)
    # a name carried by features of both ion modes is labelled with its mode
    shared = ld.loc[named, "name"].astype(str).duplicated(keep=False)
    shared_names = set(ld.loc[named, "name"].astype(str)[shared])
    top = top.assign(
        label=[
            f"{n} ({m})" if n in shared_names else n
            for n, m in zip(top["name"].astype(str), top["ion_mode"], strict=True)
        ]
    )
    with style.report_style():
        fig = new_figure(5.2, 6.4)
        ax = fig.add_subplot()
        ax.scatter(
            ld.loc[~named, "PC1"],
            ld.loc[~named, "PC2"],
            s=7,
            color="0.7",
            lw=0,
            gid="points",
            label=f"unannotated ({int((~named).sum())})",
        )
        ax.scatter(
            ld.loc[named, "PC1"],
            ld.loc[named, "PC2"],
            s=12,
            color=style.OKABE_ITO["blue"],
            lw=0,
            gid="points",
            label=f"annotated ({int(named.sum())})",
        )
        ax.axhline(0, color="0.85", lw=0.5, zorder=0)
        ax.axvline(0, color="0.85", lw=0.5, zorder=0)
        lim = float(np.nanmax(np.abs(ld[["PC1", "PC2"]].to_numpy(float)))) * 1.25
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.set_xlabel(f"loading on {xlab}")
        ax.set_ylabel(f"loading on {ylab}")
        ax.legend(loc="lower left", fontsize=7)
        label_points(ax, top["PC1"].to_numpy(float), top["PC2"].to_numpy(float), top["label"].tolist())
    text = (
        f"PCA loadings of the {_matrix_name(matrix)} metabolome (same model as the score plot): each point a "
        f"feature; annotated features (name from the vendor export) in colour, the {N_LOADING_LABELS} farthest from "
        "the origin labelled"
    )
    return ReportFigure(
        slug=f"mtb_pca_loadings_{matrix.lower()}",
        section=SECTION,
        title=f"PCA loadings, {_matrix_name(matrix)} metabolome",
        caption=ctx.caption(text, _population(matrix), f"{len(ld)} features"),
        figure=fig,
        key_values={"top loadings": ", ".join(top["name"].astype(str).head(5))},
    )


# ================================================================================================ differential


def _effect_columns(frame: pd.DataFrame) -> tuple[str, str, str]:
    """(effect, q, label) columns of a contrast: the mixed model's where it has estimates, else Welch's."""
    if "lmm_log2fc" in frame.columns and frame["lmm_log2fc"].notna().any() and frame["lmm_q"].notna().any():
        return "lmm_log2fc", "lmm_q", "mixed model"
    return "log2fc", "welch_q", "Welch t"


def _display_name(frame: pd.DataFrame) -> pd.Series:
    name = frame["name"].astype(object).where(frame["name"].notna(), None)
    return name.fillna(frame["feature"]).astype(str)


def _baseline(diff: pd.DataFrame) -> str:
    ref = diff.loc[diff["analysis"] == "visit_vs_baseline", "reference_group"].dropna()
    return str(ref.iloc[0]) if len(ref) else "BASELINE"


def _visit_order(diff: pd.DataFrame, visit_order: dict[str, int] | None) -> list[str]:
    visits = diff["visit"].dropna().astype(str).unique().tolist()
    if visit_order:
        return sorted(visits, key=lambda v: (visit_order.get(v, 10**6), v))
    return sorted(visits)


def volcano_figure(
    diff: pd.DataFrame, matrix: str, ctx: ReportContext, visit_order: dict[str, int] | None = None
) -> ReportFigure | None:
    """Volcano panels of one matrix: visit vs baseline (per visit), responder (all visits), arm x visit."""
    d = diff[diff["matrix"] == matrix].copy()
    if d.empty:
        return None
    d["label"] = _display_name(d)
    baseline = _baseline(d)
    panels: list[tuple[str, pd.DataFrame, bool]] = []
    per_visit = d[(d["analysis"] == "visit_vs_baseline") & d["visit"].notna()]
    if len(per_visit):
        panels.append(("Each visit vs baseline", per_visit, True))
    resp = d[d["contrast"] == RESPONDER_ALL]
    if len(resp) and resp["lmm_log2fc"].notna().any():
        panels.append(("Responders vs non-responders, all visits", resp, False))
    if ctx.unblinded:
        arm = d[(d["analysis"] == "arm_x_visit") & d["visit"].notna() & (d["visit"] != baseline)]
        if len(arm):
            panels.append(("Capsules vs placebo: arm × visit", arm, True))
    if not panels:
        return None
    visits = _visit_order(d[d["visit"] != baseline], visit_order)
    palette = visit_colours(visits)
    key: dict[str, str] = {}
    n_features = d["feature"].nunique()
    with style.report_style():
        fig = new_figure(4.6, style.FIGURE_WIDTH_IN if len(panels) > 1 else 6.2)
        axes = fig.subplots(1, len(panels), squeeze=False).ravel()
        for ax, (title, frame, by_visit) in zip(axes, panels, strict=True):
            eff, qcol, model = _effect_columns(frame)
            n_sig = volcano(
                ax,
                frame[eff].to_numpy(float),
                frame[qcol].to_numpy(float),
                frame["label"].tolist(),
                title=textwrap.fill(f"{title} [{model}]", 22 if len(panels) > 2 else 40),
                xlabel="log2 fold change",
                colour_by=frame["visit"].astype(str).tolist() if by_visit else None,
                palette={v: palette[v] for v in visits} if by_visit else None,
                n_labels=6 if len(panels) > 2 else 8,
            )
            ax.title.set_fontsize(8)
            key[f"{title}: features with q < {Q_THRESHOLD:g}"] = str(n_sig)
        handles = [Line2D([], [], ls="", marker="o", color=palette[v], label=short_visit(v)) for v in visits]
        if any(p[2] for p in panels):
            fig.legend(
                handles=handles,
                loc="outside lower center",
                ncols=min(len(handles), 8),
                fontsize=7,
                title="significant points coloured by visit",
                title_fontsize=7,
            )
    n_patients = int(d.loc[d["analysis"] == "visit_vs_baseline", "n_reference"].max() or 0)
    text = (
        f"Differential metabolites, {_matrix_name(matrix)} (glog10 values after drift correction, imputation and "
        "PQN): log2 fold change from a linear mixed model with a random intercept per patient (visit terms = "
        "within-patient change from baseline) against −log10 Benjamini–Hochberg q over features. Dashed line "
        f"q = {Q_THRESHOLD:g}, dotted lines |log2 FC| = 1; features with q below the threshold in colour, the most "
        "significant labelled (name from the vendor export, else feature id). A feature appears once per visit in the "
        "per-visit panels"
    )
    if any(title.startswith("Capsules") for title, _, _ in panels):
        text += (
            "; arm × visit panel: per visit the difference between the arms (capsules − placebo) in the change from "
            "baseline (interaction terms of the model y ~ arm × visit)"
        )
    return ReportFigure(
        slug=f"mtb_volcano_{matrix.lower()}",
        section=SECTION,
        title=f"Volcano plots, {_matrix_name(matrix)} metabolome",
        caption=ctx.caption(
            text, _population(matrix), f"{n_features} features; up to {n_patients} patients per baseline comparison"
        ),
        figure=fig,
        key_values=key,
    )


def _kegg_candidates(d: pd.DataFrame, ctx: ReportContext, baseline: str) -> pd.DataFrame:
    """Per KEGG-annotated feature: q of the joint visit test, responder test, (arm x visit joint), and best q."""
    kegg = d[d["kegg_ids"].notna() & (d["kegg_ids"].astype(str).str.strip() != "")]
    contrasts = {JOINT_VISIT.format(baseline=baseline): "visit q (joint)", RESPONDER_ALL: "responder q"}
    if ctx.unblinded:
        contrasts[ARM_JOINT] = "arm × visit q (joint)"
    rows = kegg[kegg["contrast"].isin(contrasts)]
    if rows.empty:
        return pd.DataFrame()
    wide = rows.pivot_table(index="feature", columns="contrast", values="lmm_q", aggfunc="min")
    wide = wide.rename(columns=contrasts)
    info = kegg.drop_duplicates("feature").set_index("feature")[["name", "kegg_ids", "hmdb_ids"]]
    resp = rows[rows["contrast"] == RESPONDER_ALL].drop_duplicates("feature").set_index("feature")["lmm_log2fc"]
    out = info.join(wide, how="inner")
    out["responder log2 FC"] = resp.reindex(out.index)
    q_cols = [c for c in contrasts.values() if c in out.columns]
    out["best q"] = out[q_cols].min(axis=1)
    return out.sort_values(["best q", "name"], kind="stable")


def top_kegg_table(diff: pd.DataFrame, ctx: ReportContext, n: int = TOP_KEGG) -> ReportTable:
    """The top KEGG-annotated metabolites per matrix (see module docstring)."""
    parts = []
    for matrix in [m for m in MATRICES if (diff["matrix"] == m).any()]:
        d = diff[diff["matrix"] == matrix]
        cand = _kegg_candidates(d, ctx, _baseline(d)).head(n)
        if cand.empty:
            continue
        cand = cand.reset_index().rename(columns={"kegg_ids": "KEGG", "hmdb_ids": "HMDB", "name": "metabolite"})
        cand.insert(0, "matrix", _matrix_name(matrix))
        parts.append(cand)
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    return ReportTable(
        slug="mtb_top_kegg",
        section=SECTION,
        title="Top KEGG-annotated metabolites",
        caption=ctx.caption(
            f"KEGG-annotated metabolites (ids as exported by the vendor, validated) with the smallest mixed-model q, "
            f"top {n} per matrix: joint test of all visits vs baseline, responders vs non-responders over all visits"
            + ("; joint arm × visit interaction" if ctx.unblinded else ""),
            "all patients with metabolomics profiles (study samples)",
            f"{len(frame)} metabolites",
        ),
        frame=frame,
    )


def top_kegg_figure(
    diff: pd.DataFrame, matrix: str, ctx: ReportContext, visit_order: dict[str, int] | None = None, n: int = TOP_KEGG
) -> ReportFigure | None:
    """Dot matrix of per-visit log2 FC (vs baseline; unblinded also arm x visit) of the top KEGG metabolites."""
    d = diff[diff["matrix"] == matrix].copy()
    baseline = _baseline(d)
    cand = _kegg_candidates(d, ctx, baseline).head(n)
    if cand.empty:
        return None
    label = {f: f"{r['name']} ({r['kegg_ids']})" for f, r in cand.iterrows()}
    rows = [label[f] for f in cand.index]
    d = d[d["feature"].isin(cand.index)].assign(row=lambda x: x["feature"].map(label))
    visits = _visit_order(d[d["visit"].notna() & (d["visit"] != baseline)], visit_order)
    panels: list[tuple[str, pd.DataFrame, list[str]]] = [
        ("Change from baseline", d[(d["analysis"] == "visit_vs_baseline") & d["visit"].notna()], visits)
    ]
    if ctx.unblinded:
        arm = d[(d["analysis"] == "arm_x_visit") & d["visit"].notna() & (d["visit"] != baseline)]
        if len(arm):
            panels.append(("Capsules − placebo (change)", arm, visits))
    vmax = max(float(np.nanmax(np.abs(p[1]["lmm_log2fc"].to_numpy(float)))) for p in panels if len(p[1])) or 1.0
    with style.report_style():
        fig = new_figure(1.6 + 0.27 * len(rows), style.FIGURE_WIDTH_IN)
        axes = fig.subplots(1, len(panels), sharey=True, squeeze=False).ravel()
        sc = None
        for ax, (title, frame, cols) in zip(axes, panels, strict=True):
            sc = effect_dotplot(
                ax,
                frame,
                row="row",
                col="visit",
                effect="lmm_log2fc",
                q="lmm_q",
                rows=rows,
                cols=cols,
                col_labels=[short_visit(v) for v in cols],
                vmax=vmax,
            )
            ax.set_title(title, loc="left", fontsize=8.5)
        cbar = fig.colorbar(sc, ax=list(axes), shrink=0.8, aspect=25, pad=0.02)
        cbar.set_label("log2 fold change (mixed model)")
        size_legend(fig)
    text = (
        f"The {len(rows)} KEGG-annotated {_matrix_name(matrix)} metabolites with the smallest mixed-model q "
        "(joint visit test, responder test"
        + (", joint arm × visit test" if ctx.unblinded else "")
        + "): log2 fold change per visit vs baseline (within patient)"
        + ("; right: difference between the arms in that change" if len(panels) > 1 else "")
        + f". Size: −log10 q (BH); black edge: q < {Q_THRESHOLD:g}"
    )
    return ReportFigure(
        slug=f"mtb_top_kegg_{matrix.lower()}",
        section=SECTION,
        title=f"Top KEGG-annotated metabolites, {_matrix_name(matrix)}",
        caption=ctx.caption(text, _population(matrix), f"{len(rows)} metabolites"),
        figure=fig,
        key_values={"top metabolite": rows[0]},
    )


# ================================================================================================ QC RSD


def rsd_threshold(steps: pd.DataFrame | None, matrix: str) -> float | None:
    """The recipe's QC RSD filter threshold (%) from ``analysis.metabolomics_steps`` (``config`` JSON)."""
    if steps is None or steps.empty or "config" not in steps.columns:
        return None
    sel = steps.loc[steps["matrix"] == matrix, "config"].dropna()
    if sel.empty:
        return None
    try:
        value = json.loads(sel.iloc[0]).get("qc_rsd_threshold")
    except (TypeError, ValueError):
        return None
    return float(value) if value is not None else None


def qc_rsd_figure(rsd: pd.DataFrame, ctx: ReportContext, steps: pd.DataFrame | None = None) -> ReportFigure:
    """ECDF of the pooled-QC RSD per feature before and after drift correction, per matrix."""
    matrices = [m for m in MATRICES if (rsd["matrix"] == m).any()]
    key: dict[str, str] = {}
    with style.report_style():
        fig = new_figure(3.6)
        axes = fig.subplots(1, len(matrices), sharey=True, squeeze=False).ravel()
        for ax, matrix in zip(axes, matrices, strict=True):
            sub = rsd[rsd["matrix"] == matrix]
            for col, colour, name in (
                ("qc_rsd_before", "0.55", "before drift correction"),
                ("qc_rsd_after", style.OKABE_ITO["blue"], "after drift correction"),
            ):
                values = np.sort(sub[col].dropna().to_numpy(float))
                if not len(values):
                    continue
                ax.step(
                    values,
                    np.arange(1, len(values) + 1) / len(values),
                    where="post",
                    color=colour,
                    label=f"{name} (median {np.median(values):.1f} %)",
                )
                key[f"{_matrix_name(matrix)} median QC RSD {name}"] = f"{np.median(values):.1f} %"
            thr = rsd_threshold(steps, matrix)
            if thr is not None:
                ax.axvline(thr, color=style.OKABE_ITO["vermillion"], ls="--", lw=0.8)
                ax.text(thr, 0.03, f" filter {thr:g} %", color=style.OKABE_ITO["vermillion"], fontsize=7)
            ax.set_xscale("log")
            ticks = [t for t in (2, 5, 10, 20, 30, 50, 100) if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
            ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xlabel("pooled-QC RSD (%), log scale")
            ax.set_title(f"{_matrix_name(matrix).capitalize()} ({len(sub)} features)", loc="left", fontsize=9)
            # below the panel: inside it would cover the curves
            ax.legend(loc="upper left", bbox_to_anchor=(0.0, -0.2), fontsize=7)
        axes[0].set_ylabel("cumulative fraction of features")
    per_matrix = {m: int(rsd.loc[rsd["matrix"] == m, "n_qc"].max()) for m in matrices}
    n_qc = (
        f"{sum(per_matrix.values())} pooled-QC injections ("
        + ", ".join(f"{_matrix_name(m)} {k}" for m, k in per_matrix.items())
        + f"); {len(rsd)} features"
    )
    text = (
        "Relative standard deviation of every feature over the pooled QC injections, before and after QC-based "
        "LOWESS drift correction (per batch); dashed line: the RSD filter of the recipe"
    )
    return ReportFigure(
        slug="mtb_qc_rsd",
        section=SECTION,
        title="Pooled-QC RSD before and after drift correction",
        caption=ctx.caption(text, "pooled QC injections of all metabolomics batches", n_qc),
        figure=fig,
        key_values=key,
    )


# ================================================================================================ entry point


def _visit_order_map(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    rows = con.execute(
        "select nominal_visit, min(nominal_visit_order) from marts.samples where nominal_visit is not null "
        "group by nominal_visit"
    ).fetchall()
    return {str(v): int(o) for v, o in rows if o is not None}


def figures(con: duckdb.DuckDBPyConnection, ctx: ReportContext) -> list[ReportFigure | ReportTable]:
    """Every metabolomics figure/table the warehouse has the tables for (see :data:`FIGURE_TABLES`)."""
    lacking = missing_tables(con, FIGURE_TABLES)
    out: list[ReportFigure | ReportTable] = []
    arms = read_arms(con, ctx)
    try:
        order = _visit_order_map(con)
    except duckdb.Error:
        order = {}
    scores = loadings = importance = diff = None
    if "mtb_pca_scores_faeces" not in lacking:
        scores = read_table(con, "analysis.metabolomics_pca_scores")
        importance = read_table(con, "analysis.metabolomics_pca_importance")
    if "mtb_pca_loadings_faeces" not in lacking:
        loadings = read_table(con, "analysis.metabolomics_pca_loadings")
        importance = read_table(con, "analysis.metabolomics_pca_importance")
    if "mtb_volcano_faeces" not in lacking:
        diff = read_table(con, "analysis.differential_metabolites")
        if not ctx.unblinded and "analysis" in diff.columns:
            diff = diff[diff["analysis"] != "arm_x_visit"]  # defence in depth: blinded warehouses have none
    for matrix in MATRICES:
        if scores is not None and importance is not None and (scores.get("matrix") == matrix).any():
            out.append(pca_scores_figure(scores, importance, matrix, ctx, arms))
        if loadings is not None and importance is not None and (loadings.get("matrix") == matrix).any():
            out.append(pca_loadings_figure(loadings, importance, matrix, ctx))
        if diff is not None and "matrix" in diff and (diff["matrix"] == matrix).any():
            for fig in (volcano_figure(diff, matrix, ctx, order), top_kegg_figure(diff, matrix, ctx, order)):
                if fig is not None:
                    out.append(fig)
    if diff is not None and "matrix" in diff and len(diff):
        table = top_kegg_table(diff, ctx)
        if len(table.frame):
            out.append(table)
    if "mtb_qc_rsd" not in lacking:
        rsd = read_table(con, "analysis.metabolomics_qc_rsd")
        steps = (
            read_table(con, "analysis.metabolomics_steps")
            if not missing_tables(con, {"s": ("analysis.metabolomics_steps",)})
            else None
        )
        if "qc_rsd_before" in rsd.columns and len(rsd):
            out.append(qc_rsd_figure(rsd, ctx, steps))
    return out
