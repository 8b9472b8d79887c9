"""One matplotlib style for every figure of the trial report, and deterministic PNG/SVG writers.

* Backend ``Agg`` (headless; no display needed in Dagster or CI).
* Colours: the Okabe-Ito palette (Okabe & Ito, "Color Universal Design", 2008; Wong, Nat Methods 2011;8:441),
  distinguishable with the common colour-vision deficiencies. Arm colours (:data:`ARM_COLOURS`) may only be used in
  unblinded runs (:func:`group_colour` refuses an arm in a blinded context); pooled curves are black.
* Reproducibility (a later issue requires byte-identical files from the same warehouse): SVG ids are hashed with a
  fixed ``svg.hashsalt``, the SVG ``Date`` metadata and the PNG ``Software`` stamp are dropped, and text stays
  ``<text>`` (``svg.fonttype = none``) so the same figure always gives the same bytes and the SVG text is searchable
  (the blinding tests grep it for arm labels).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.layout_engine import PlaceHolderLayoutEngine

#: Okabe-Ito palette.
OKABE_ITO: dict[str, str] = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
    "grey": "#999999",
}
#: Cycle for generic categorical series (black first, yellow last: poor contrast on white).
CYCLE: list[str] = [
    OKABE_ITO[k]
    for k in ("black", "blue", "orange", "bluish_green", "vermillion", "reddish_purple", "sky_blue", "grey", "yellow")
]
#: Treatment arms (unblinded runs only).
ARM_COLOURS: dict[str, str] = {"CAPSULE": OKABE_ITO["blue"], "PLACEBO": OKABE_ITO["vermillion"]}
#: Display names of the arms (unblinded runs only).
#: Display names of the arms (unblinded runs only). Not "capsules": every patient takes capsules (active or placebo),
#: so the plain word names the study drug, never an arm.
ARM_LABELS: dict[str, str] = {"CAPSULE": "Capsule arm", "PLACEBO": "Placebo arm"}
POOLED_COLOUR = OKABE_ITO["black"]
POOLED_LABEL = "All patients (pooled)"
#: Best overall response colours (RECIST 1.1): response cool colours, progression warm.
BOR_COLOURS: dict[str, str] = {
    "CR": OKABE_ITO["bluish_green"],
    "PR": OKABE_ITO["blue"],
    "SD": OKABE_ITO["grey"],
    "NON-CR/NON-PD": OKABE_ITO["reddish_purple"],
    "PD": OKABE_ITO["vermillion"],
    "NE": "#D9D9D9",
    "MISSING": OKABE_ITO["yellow"],
}
BOR_ORDER: tuple[str, ...] = tuple(BOR_COLOURS)

#: Fixed salt for the ids matplotlib hashes into SVG files (clip paths, glyphs): same figure, same bytes.
SVG_HASHSALT = "guttrial-report"
FIGURE_WIDTH_IN = 7.5
PNG_DPI = 150

RC: dict[str, Any] = {
    "figure.figsize": (FIGURE_WIDTH_IN, 4.5),
    "figure.dpi": 100,
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
    "savefig.dpi": PNG_DPI,
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    # titles at the top of their axes, not moved at every draw to clear top tick labels or offset texts (the report
    # has neither; the automatic placement costs ~10 % of a draw measuring every sibling's tick labels)
    "axes.titley": 1.0,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": False,
    "axes.prop_cycle": matplotlib.cycler(color=CYCLE),
    "lines.linewidth": 1.5,
    "svg.hashsalt": SVG_HASHSALT,
    "svg.fonttype": "none",
    "path.simplify": True,
}


class BlindingError(RuntimeError):
    """An arm would appear in a blinded report."""


def group_colour(group: str, unblinded: bool) -> str:
    """Colour of a KM/plot group: the arm colour in unblinded runs, black for the pooled group."""
    if group in ARM_COLOURS:
        if not unblinded:
            raise BlindingError(f"arm {group!r} in a blinded report")
        return ARM_COLOURS[group]
    return POOLED_COLOUR


def group_label(group: str, unblinded: bool) -> str:
    """Display name of a group (arm names only in unblinded runs)."""
    if group in ARM_LABELS:
        if not unblinded:
            raise BlindingError(f"arm {group!r} in a blinded report")
        return ARM_LABELS[group]
    return POOLED_LABEL if group in ("POOLED", "", None) else str(group)


@contextmanager
def report_style() -> Iterator[None]:
    """Apply the report style for the figures built inside the block (restores the caller's rcParams)."""
    with matplotlib.rc_context(RC):
        yield


def new_figure(height_in: float = 4.5, width_in: float = FIGURE_WIDTH_IN) -> Figure:
    """A figure outside pyplot's global state (no figure manager, so nothing leaks between assets)."""
    with report_style():
        return Figure(figsize=(width_in, height_in), layout=None)


def svg_bytes(fig: Figure) -> bytes:
    """The figure as SVG without the date stamp (deterministic)."""
    buf = io.BytesIO()
    with report_style():
        fig.savefig(buf, format="svg", metadata={"Date": None})
    return buf.getvalue()


def png_bytes(fig: Figure, dpi: int = PNG_DPI) -> bytes:
    """The figure as PNG without the software stamp (deterministic for a given matplotlib)."""
    buf = io.BytesIO()
    with report_style():
        fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()


def freeze_layout(fig: Figure) -> None:
    """Run the figure's layout engine (constrained/tight) once and keep the result.

    A layout engine re-runs at every ``savefig`` and costs about half a draw (it measures every tick label, title
    and legend), so a figure written as SVG and PNG would pay it twice. The layout is computed at 72 dpi, the
    resolution of the SVG (as ``savefig(format="svg")`` did); afterwards the figure has no layout engine (positions
    fixed), so the SVG and any PNG show the same layout.
    """
    engine = fig.get_layout_engine()
    if engine is None or isinstance(engine, PlaceHolderLayoutEngine) or not fig.axes:
        return
    dpi = fig.dpi
    with report_style():
        try:
            fig.set_dpi(72)
            engine.execute(fig)
        except ValueError:  # as Figure.draw: a layout that cannot be applied leaves the positions as they are
            pass
        finally:
            fig.set_dpi(dpi)
    fig.set_layout_engine("none")


@dataclass(frozen=True)
class Rendered:
    """The files of one figure: SVG always (the HTML inlines it), PNG only when asked for."""

    svg: bytes
    png: bytes | None = None


def render(fig: Figure, png_dpi: int | None = None) -> Rendered:
    """SVG (and optionally PNG at ``png_dpi``) of a figure with one layout pass (:func:`freeze_layout`)."""
    freeze_layout(fig)
    return Rendered(svg_bytes(fig), png_bytes(fig, png_dpi) if png_dpi else None)


def save_figure(fig: Figure, directory: Path, slug: str) -> tuple[Path, Path]:
    """Write ``<slug>.png`` and ``<slug>.svg`` into ``directory``; returns both paths."""
    directory.mkdir(parents=True, exist_ok=True)
    png, svg = directory / f"{slug}.png", directory / f"{slug}.svg"
    out = render(fig, PNG_DPI)
    png.write_bytes(out.png or b"")
    svg.write_bytes(out.svg)
    return png, svg


def close(fig: Figure) -> None:
    """Release a figure (figures made with :func:`new_figure` are not registered with pyplot; this is for others)."""
    plt.close(fig)
