"""The vectorised mixed model's complete-data path (imputed matrices: group sums shared by every feature) gives
the fit of its general path (per-feature missingness) — both equal statsmodels (test_metabolomics_differential)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.metabolomics.differential import mixed_model


def test_complete_data_path_equals_the_general_path() -> None:
    rng = np.random.default_rng(0)
    n = 300
    patients = np.repeat(np.arange(60), 5)
    keep = rng.random(n) > 0.15  # unbalanced: several distinct patient group sizes
    design = pd.DataFrame(
        {
            "patient": patients.astype(str),
            "visit": rng.integers(0, 4, n).astype(str),
            "arm": np.where(patients % 2, "A", "B"),
        }
    )[keep].reset_index(drop=True)
    Y = rng.normal(size=(len(design), 30)) + rng.normal(size=(60, 30))[design["patient"].astype(int)]
    formula = "C(arm) * C(visit)"
    fast = mixed_model(Y, design, formula, joint={"interaction": ":"})
    # one missing value in an extra column sends the whole fit through the general path
    extra = np.c_[Y, Y[:, 0]]
    extra[0, -1] = np.nan
    general = mixed_model(extra, design, formula, joint={"interaction": ":"})
    general = general[general["feature"] < 30].reset_index(drop=True)
    for column in ("estimate", "se", "p", "chi2", "group_var", "resid_var"):
        np.testing.assert_allclose(fast[column], general[column], rtol=1e-5, atol=1e-8, err_msg=column)
