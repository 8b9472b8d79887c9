"""Seeded demo-trial simulator: writes a landing folder that follows ``analysis.contract`` exactly, the
restricted randomisation list, and the truth (every generating parameter, latent value and injected mess)
that tests use to check the warehouse end to end.

Pure Python (numpy, pandas, scipy, biom-format, h5py); nothing here imports Dagster.
"""

from analysis.simulation.contract_doc import render_contract_markdown
from analysis.simulation.params import SimulationParams, TrialSummary
from analysis.simulation.trial import generate_trial

__all__ = ["SimulationParams", "TrialSummary", "generate_trial", "render_contract_markdown"]
