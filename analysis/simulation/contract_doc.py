"""Render the per-form and per-file tables of ``docs/raw_exports.md`` from ``analysis.contract``.

The prose of the document is written by hand; the tables between the ``BEGIN GENERATED`` and
``END GENERATED`` markers come from :func:`render_contract_markdown`, so the document cannot drift from the
contract (``tests/test_simulation.py`` compares them). Regenerate after changing the contract with::

    .venv/bin/python -m analysis.simulation doc docs/raw_exports.md
"""

from __future__ import annotations

from pathlib import Path

from analysis import contract

BEGIN = "<!-- BEGIN GENERATED: python -m analysis.simulation doc (do not edit by hand) -->"
END = "<!-- END GENERATED -->"


def _code_list(values: tuple[str, ...]) -> str:
    return ", ".join(f"`{v}`" for v in values) if values else ""


def _form_section(form: contract.CrfForm) -> list[str]:
    lines = [
        f"#### `{form.code}`: {form.title}",
        "",
        f"File `crf/{form.code}.csv` (or `{form.code}_<anything>.csv`, optionally `.gz`); raw table "
        f"`{form.raw_table}`; grain: {form.grain}.",
        "",
        "| Column | Required | Direct identifier | Codelist |",
        "| --- | --- | --- | --- |",
    ]
    for column in form.columns:
        required = "yes" if column in form.required else "optional"
        ident = "**yes: value never stored** (NULL in raw)" if column in form.identifiers else ""
        lines.append(f"| `{column}` | {required} | {ident} | {_code_list(form.codelists.get(column, ()))} |")
    for column, dtype in form.derived.items():
        lines.append(f"| `{column}` | not in the file: derived by the loader ({dtype}) |  |  |")
    lines.append("")
    return lines


def _table(rows: list[tuple[str, str]], head: tuple[str, str] = ("Column", "Required")) -> list[str]:
    lines = [f"| {head[0]} | {head[1]} |", "| --- | --- |"]
    lines += [f"| `{a}` | {b} |" for a, b in rows]
    return [*lines, ""]


def render_contract_markdown() -> str:
    """The generated part of ``docs/raw_exports.md`` (markers included), from ``analysis.contract``."""
    out = [BEGIN, "", "### CRF forms", ""]
    out.append(f"Study id (`STUDYID`): `{contract.STUDY_ID}`. Every form starts with "
               f"{_code_list(contract.CRF_KEY_COLUMNS)}.")  # fmt: skip
    out.append("")
    out.append("| Form | Title | Grain | Required columns | Optional columns |")
    out.append("| --- | --- | --- | --- | --- |")
    for form in contract.CRF_FORMS.values():
        out.append(f"| `{form.code}` | {form.title} | {form.grain} | {len(form.required)} | {len(form.optional)} |")
    out.append("")
    for form in contract.CRF_FORMS.values():
        out += _form_section(form)
    out += [
        "Direct identifiers (required in the file, but their values are never stored, not even in `raw`, and never "
        f"reach a mart, report, log or Data Docs): {_code_list(contract.DIRECT_IDENTIFIERS)}.",
        "",
        "Missing-value markers (kept as delivered in `raw`, NULL from staging on): "
        + ", ".join(f"`{m}`" if m else "the empty cell" for m in contract.MISSING_MARKERS)
        + ".",
        "",
        "### Sequencing: `sequencing/<batch>/manifest.csv`",
        "",
    ]
    out += _table(
        [(c, "yes") for c in contract.SEQ_MANIFEST_REQUIRED] + [(c, "optional") for c in contract.SEQ_MANIFEST_OPTIONAL]
    )
    out += [
        f"`sample_role` codelist: {_code_list(contract.SEQ_SAMPLE_ROLES)}. Controls (`NEGATIVE_CONTROL`, `MOCK`) "
        "have an empty `specimen_barcode`.",
        "",
        "Feature-table file endings, in the order the loader tries them (gzip allowed on text formats):",
        "",
    ]
    out += _table(list(contract.SEQ_TABLE_SUFFIXES.items()), head=("Ending", "Reader"))
    out += [f"Taxonomy files: {_code_list(contract.SEQ_TAXONOMY_FILES)}.", ""]
    out += [
        "Phylogeny (optional, for UniFrac): Newick, file ending "
        f"{_code_list(tuple(contract.SEQ_TREE_SUFFIXES))} (gzip allowed), or a QIIME 2 artifact named "
        f"`*{contract.SEQ_TREE_QZA_SUFFIX}` of type {_code_list(tuple(contract.SEQ_TREE_QZA_TYPES))}; "
        "every feature of the batch's table must be a tip.",
        "",
    ]
    out += ["### Metabolomics: `metabolomics/<batch>/features.csv`", ""]
    out += _table(
        [(c, "yes") for c in contract.MTB_FEATURE_REQUIRED] + [(c, "optional") for c in contract.MTB_FEATURE_OPTIONAL]
    )
    out += [
        f"`ion_mode` codelist: {_code_list(contract.MTB_ION_MODES)}. Every other column is one injection: its "
        "name is an `injection_id` of the injection list.",
        "",
        "### Metabolomics: `metabolomics/<batch>/injections.csv`",
        "",
    ]
    out += _table(
        [(c, "yes") for c in contract.MTB_INJECTION_REQUIRED]
        + [(c, "optional") for c in contract.MTB_INJECTION_OPTIONAL]
    )
    out += [
        f"`sample_type` codelist: {_code_list(contract.MTB_SAMPLE_TYPES)}; `matrix` codelist: "
        f"{_code_list(contract.MTB_MATRICES)}.",
        "",
        "### Randomisation list: `unblinding/randomisation_list.csv` (restricted, outside landing)",
        "",
    ]
    out += _table([(c, "yes") for c in contract.RANDOMISATION_LIST_REQUIRED])
    out += [f"`ARM` codelist: {_code_list(contract.ARMS)}.", "", END]
    return "\n".join(out) + "\n"


def update_contract_doc(path: Path) -> bool:
    """Replace the generated block of ``path`` (append it if absent). Returns True if the file changed."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    block = render_contract_markdown()
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1].lstrip("\n")
        new = head + block + ("\n" + tail if tail else "")
    else:
        new = text + ("\n" if text and not text.endswith("\n") else "") + block
    if new != text:
        path.write_text(new, encoding="utf-8")
        return True
    return False


def generated_block(text: str) -> str:
    """The generated block (markers included) found in a document's text, or ``""``."""
    if BEGIN not in text or END not in text:
        return ""
    return BEGIN + text.split(BEGIN, 1)[1].split(END, 1)[0] + END + "\n"
