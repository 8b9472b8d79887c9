"""Unblinding: the restricted randomisation list (RANDNO -> ARM) as table ``restricted.randomisation_list``.

Who may run unblinded: only the unblinded statistician (or the DMC's independent statistician) named in the
unblinding plan, after database lock or for a DMC review, on a copy of the exports. Never on the team's
everyday (blinded) warehouse.

How: ``guttrial build --unblinded --randomisation-list <restricted path> --warehouse <...unblinded...>``, or
in the UI set the ``settings`` resource's ``unblinded: "true"`` and ``randomisation_list``. The guard below
refuses to load the list unless the warehouse file name contains ``unblinded`` (e.g.
``data/warehouse_unblinded.duckdb``): a blinded warehouse can therefore never receive the arm, and an
unblinded file is recognisable by its name wherever it is copied.

In a blinded run (the default) this asset never opens the list: it only makes sure the warehouse holds no
``restricted`` schema (e.g. left over from pointing a blinded run at an unblinded file), and dbt compiles
``adsl.arm_code`` as the placeholder ``BLINDED`` without referencing the restricted relation at all.
"""

from pathlib import Path

import dagster as dg
import pandas as pd

from analysis import contract
from orchestration.assets.raw import DUCKDB_POOL
from orchestration.resources import TrialSettings

RANDOMISATION_LIST_KEY = dg.AssetKey(["restricted", "randomisation_list"])
UNBLINDED_MARKER = "unblinded"


class UnblindingRefused(dg.Failure):
    """The run asked to unblind, but the warehouse or the list does not meet the rules."""


def check_unblinded_warehouse(warehouse: Path) -> None:
    """Refuse unless the warehouse file name says it is unblinded (keeps blinded warehouses arm-free)."""
    if UNBLINDED_MARKER not in warehouse.name.lower():
        raise UnblindingRefused(
            f"refusing to unblind into {warehouse}: an unblinded build must write its own warehouse file whose "
            f"name contains '{UNBLINDED_MARKER}' (e.g. {warehouse.with_name(warehouse.stem + '_unblinded.duckdb')}), "
            "so that a blinded warehouse never receives the randomised arm"
        )


def read_randomisation_list(path: Path) -> pd.DataFrame:
    """RANDNO and ARM from the restricted CSV, trimmed and upper-cased, checked against the contract."""
    if not path.is_file():
        raise UnblindingRefused(f"randomisation list {path} does not exist")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.columns = [c.strip().upper() for c in frame.columns]
    missing = [c for c in contract.RANDOMISATION_LIST_REQUIRED if c not in frame.columns]
    if missing:
        raise UnblindingRefused(f"randomisation list {path.name} lacks column(s) {', '.join(missing)}")
    out = pd.DataFrame(
        {
            "randno": frame["RANDNO"].str.strip().str.upper(),
            "arm": frame["ARM"].str.strip().str.upper(),
        }
    )
    bad = sorted(set(out["arm"]) - set(contract.ARMS))
    if bad:
        raise UnblindingRefused(f"randomisation list {path.name}: unknown arm value(s) {bad}; expected {contract.ARMS}")
    if out["randno"].eq("").any() or out["randno"].duplicated().any():
        raise UnblindingRefused(f"randomisation list {path.name}: RANDNO must be present and unique")
    return out


@dg.asset(
    key=RANDOMISATION_LIST_KEY,
    group_name="restricted",
    kinds={"duckdb", "python"},
    owners=["team:data-engineering"],
    pool=DUCKDB_POOL,
    description="Restricted randomisation list (RANDNO -> ARM). Loaded only by an explicitly unblinded run into a "
    "warehouse whose file name contains 'unblinded'; a blinded run leaves (and keeps) the warehouse without it.",
)
def randomisation_list(context: dg.AssetExecutionContext, settings: TrialSettings) -> dg.MaterializeResult:
    if not settings.is_unblinded:
        with settings.connect() as con:
            present = con.execute(
                "select count(*) from information_schema.schemata where schema_name = 'restricted'"
            ).fetchone()[0]
            if present:
                con.execute("drop schema restricted cascade")
                context.log.warning("blinded run: dropped schema 'restricted' found in the warehouse")
        context.log.info("blinded run: the randomisation list was not read")
        return dg.MaterializeResult(metadata={"unblinded": False, "dagster/row_count": 0})

    check_unblinded_warehouse(settings.warehouse)
    path = settings.randomisation_path
    if path is None:
        raise UnblindingRefused("unblinded run without a randomisation list (set randomisation_list)")
    frame = read_randomisation_list(path)
    with settings.connect() as con:
        con.execute("create schema if not exists restricted")
        con.register("_randomisation_list", frame)
        try:
            con.execute(
                "create or replace table restricted.randomisation_list as select randno, arm from _randomisation_list"
            )
        finally:
            con.unregister("_randomisation_list")
    context.log.warning(f"UNBLINDED run: loaded {len(frame)} randomisation numbers into {settings.warehouse}")
    return dg.MaterializeResult(
        metadata={"unblinded": True, "dagster/row_count": len(frame), "source": dg.MetadataValue.path(str(path))}
    )
