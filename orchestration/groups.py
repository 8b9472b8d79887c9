"""The asset groups of the code location: one per layer, each with a description and owning team.

Dagster shows a group only by its name, so the group's description and owners travel with every asset: the
definitions apply :func:`with_group_defaults` to all assets, which

* gives an asset whose definition names no owner the owners of its group (dbt models, for instance), and
* adds the definition metadata ``layer`` ("<group>: <description>"), shown on every asset's page, so a data
  engineer or QA reviewer clicking any node learns what the layer is for without reading code.

Owners already set on an asset are kept. Asset modules that want their owners explicit can write
``owners=group_owners("reports")``. A new group must be added to :data:`GROUPS`; ``tests/test_definitions.py``
fails for an asset whose group is missing here or is Dagster's ``default``.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import dagster as dg

#: Definition-metadata key that carries the group's description on every asset.
LAYER_METADATA_KEY = "layer"


@dataclass(frozen=True)
class AssetGroup:
    name: str
    description: str
    owners: tuple[str, ...]


_GROUP_LIST: tuple[AssetGroup, ...] = (
    AssetGroup(
        "raw",
        "Landing-folder exports (EDC CRFs, 16S, metabolomics) loaded as delivered into schema `raw`, with lineage "
        "columns; `raw/current_files` names the current version of every file.",
        ("team:data-engineering",),
    ),
    AssetGroup(
        "restricted",
        "The randomisation list, loaded only by an explicitly unblinded run into a warehouse whose file name "
        "contains 'unblinded'; blinded warehouses never hold it.",
        ("team:data-engineering",),
    ),
    AssetGroup(
        "staging",
        "dbt: typed, cleaned and deduplicated copies of the raw tables, one model per source table.",
        ("team:data-engineering",),
    ),
    AssetGroup(
        "intermediate",
        "dbt: joins and derivations between staging and the marts (subjects, visits, samples).",
        ("team:data-engineering",),
    ),
    AssetGroup(
        "marts",
        "dbt: the analysis-ready tables analysts query (ADSL, tumour measurements, AEs, labs, QoL, samples, taxa, "
        "metabolites).",
        ("team:data-engineering",),
    ),
    AssetGroup(
        "endpoints",
        "Clinical endpoints in schema `analysis`: RECIST/mRECIST responses, PFS/OS, KM, ORR/DCR, safety, QoL, "
        "hepatic function (pooled in blinded runs).",
        ("team:biostatistics",),
    ),
    AssetGroup(
        "microbiome",
        "16S analyses in schema `analysis`: QC, alpha/beta diversity, ordinations, group tests, differential "
        "abundance.",
        ("team:bioinformatics",),
    ),
    AssetGroup(
        "metabolomics",
        "Metabolomics analyses in schema `analysis`: drift correction, PCA, annotation, differential metabolites, "
        "genus-metabolite correlations.",
        ("team:biostatistics",),
    ),
    AssetGroup(
        "quality",
        "great-expectations validation of marts and analysis tables, and the Data Docs site QA reviews.",
        ("team:qa",),
    ),
    AssetGroup(
        "reports",
        "Trial reports (HTML, one folder per run date) built from the analysis tables.",
        ("team:biostatistics",),
    ),
    AssetGroup(
        "publish",
        "The published read-only copy of the warehouse analysts query, and the audit trail of runs.",
        ("team:data-engineering",),
    ),
)

GROUPS: dict[str, AssetGroup] = {g.name: g for g in _GROUP_LIST}


def group_owners(name: str) -> list[str]:
    """The owners of group ``name`` (``KeyError`` for a group that is not declared here)."""
    return list(GROUPS[name].owners)


def group_description(name: str) -> str:
    return GROUPS[name].description


def apply_group_defaults(spec: dg.AssetSpec) -> dg.AssetSpec:
    """``spec`` with its group's owners (if it has none) and the group's description as metadata ``layer``."""
    group = GROUPS.get(spec.group_name or "")
    if group is None:
        # An undeclared group is a test failure, not a load failure: the UI must keep loading.
        return spec
    if not spec.owners:
        spec = spec.replace_attributes(owners=list(group.owners))
    if LAYER_METADATA_KEY not in spec.metadata:
        spec = spec.merge_attributes(metadata={LAYER_METADATA_KEY: f"{group.name}: {group.description}"})
    return spec


def with_group_defaults(
    assets: Iterable[dg.AssetsDefinition | dg.AssetSpec],
) -> Sequence[dg.AssetsDefinition | dg.AssetSpec]:
    """Every asset of ``assets`` with :func:`apply_group_defaults` applied to each of its specs."""
    return dg.map_asset_specs(apply_group_defaults, list(assets))


def groups_markdown() -> str:
    """The groups as a markdown list (job description, README)."""
    return "\n".join(f"* **{g.name}** ({', '.join(g.owners)}): {g.description}" for g in _GROUP_LIST)
