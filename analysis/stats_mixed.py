"""Linear mixed model with a random intercept per patient, fitted for many outcomes at once (REML or ML).

Shared by the metabolomics (:func:`analysis.metabolomics.differential.mixed_model`) and microbiome
(:func:`analysis.microbiome.differential.clr_lmm`) analyses. For every outcome column ``y`` of ``Y``:

``y_ij = x_ijᵀβ + b_i + ε_ij``, ``b_i ~ N(0, γσ²)`` (patient ``i``), ``ε ~ N(0, σ²)``; rows with a missing
outcome are dropped per column.

**Fit** (:func:`random_intercept_reml`). With ``V_i = σ²(I + γ11ᵀ)`` for patient i (n_i rows),
``c_i = γ/(1 + γn_i)``, ``s_i = X_iᵀ1``, ``t_i = 1ᵀy_i``::

    A(γ) = Σ X_iᵀX_i − c_i s_i s_iᵀ        b(γ) = Σ X_iᵀy_i − c_i s_i t_i        β̂ = A⁻¹b
    r(γ) = Σ y_iᵀy_i − c_i t_i² − bᵀβ̂
    −2ℓ_REML(γ) = (N − p)·log r(γ) + Σ log(1 + γn_i) + log|A(γ)|   (+ const)     σ̂² = r/(N − p)

(ML: ``N`` instead of ``N − p`` and no ``log|A|``). ``γ ≥ 0`` is found by a grid over ``log γ`` (and γ = 0) refined
by golden-section search to ``tol`` in ``log γ``; every column is optimised at once (numpy batched linear
algebra), so thousands of outcomes cost about as much as a few statsmodels fits. Complete data (no missing
outcome) share the group sizes and ``s_i`` of every column, so ``Σ_i c_i s_i s_iᵀ`` needs one ``B_m = Σ_{n_i = m}
s_i s_iᵀ`` per distinct group size m.

**Covariance of β̂**, two choices:

* ``"gls"`` (default): ``Cov(β̂) = σ̂²A(γ̂)⁻¹``, the GLS covariance that R ``nlme``/``lme4`` report;
* ``"observed"``: statsmodels ``MixedLM``'s: the inverse of the observed Hessian of the profile log-likelihood
  (σ² profiled out) in ``(β, γ)`` — statsmodels ``MixedLM.hessian`` parameterises the random-intercept variance
  as ``γ = cov_re/scale``, not its square root. With ``fac = N − p`` (REML) or ``N``, residuals ``e_i = y_i − X_iβ̂``,
  ``u_i = 1ᵀe_i``, ``w_i = 1/(1 + γn_i)``::

      H_ββ = −fac·A/r
      H_βγ = −fac/r · Σ_i w_i² s_i u_i
      H_γγ = ½Σ_i n_i²w_i² − ½fac·(r''/r − r'²/r²) [+ ½(tr(A⁻¹A'A⁻¹A') − tr(A⁻¹A''))  REML only]
      r' = −Σ_i w_i²u_i²,  r'' = 2Σ_i n_i w_i³ u_i²,  A' = −Σ_i w_i² s_i s_iᵀ,  A'' = 2Σ_i n_i w_i³ s_i s_iᵀ

  and ``Cov(β̂, γ̂) = (−H)⁻¹`` (statsmodels' ``cov_params()``; its β block is ``σ̂²A⁻¹`` plus the β–γ cross term,
  so the two choices differ in the 3rd–4th digit). These are the terms of statsmodels' general Hessian code
  (``mixed_linear_model.py``, ``MixedLM.hessian``) for ``dV/dγ = 11ᵀ``, written in closed form.

Wald z ``β̂/se`` with a two-sided normal p, as statsmodels. :func:`statsmodels_random_intercept` fits the same
model with statsmodels, one column at a time (the reference the tests compare with).
"""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
import pandas as pd

__all__ = ["random_intercept_reml", "statsmodels_random_intercept"]


def statsmodels_random_intercept(
    Y: np.ndarray, exog: np.ndarray, groups: np.ndarray, *, reml: bool = True
) -> dict[str, np.ndarray]:
    """statsmodels ``MixedLM(y, exog, groups).fit(reml=...)`` one column of ``Y`` at a time (reference engine).

    Returns the keys of :func:`random_intercept_reml` (``beta, cov, group_var, resid_var, converged``).
    """
    from statsmodels.regression.mixed_linear_model import MixedLM
    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    n_feat, k = Y.shape[1], exog.shape[1]
    beta = np.full((n_feat, k), np.nan)
    cov = np.full((n_feat, k, k), np.nan)
    group_var = np.full(n_feat, np.nan)
    resid_var = np.full(n_feat, np.nan)
    converged = np.zeros(n_feat, dtype=bool)
    for f in range(n_feat):
        ok = np.isfinite(Y[:, f])
        with warnings.catch_warnings():
            for category in (ConvergenceWarning, RuntimeWarning, UserWarning):
                warnings.simplefilter("ignore", category)
            try:
                result = MixedLM(Y[ok, f], exog[ok], groups=groups[ok]).fit(reml=reml, method=["lbfgs", "bfgs", "cg"])
            except (np.linalg.LinAlgError, ValueError):
                continue
        beta[f] = np.asarray(result.fe_params, dtype="float64")
        cov[f] = np.asarray(result.cov_params(), dtype="float64")[:k, :k]
        group_var[f] = float(np.asarray(result.cov_re).ravel()[0])
        resid_var[f] = float(result.scale)
        converged[f] = bool(getattr(result, "converged", True))
    return {"beta": beta, "cov": cov, "group_var": group_var, "resid_var": resid_var, "converged": converged}


def random_intercept_reml(
    Y: np.ndarray,
    exog: np.ndarray,
    groups: np.ndarray,
    *,
    reml: bool = True,
    tol: float = 1e-10,
    covariance: Literal["gls", "observed"] = "gls",
) -> dict[str, np.ndarray]:
    """Random-intercept REML/ML for every column of ``Y`` at once (formulas in the module docstring).

    ``Y``: rows x outcomes (NaN = missing), ``exog``: rows x p fixed-effects design, ``groups``: patient per row.
    Returns ``beta`` (F x p), ``cov`` (F x p x p), ``group_var`` (γσ²), ``resid_var`` (σ²), ``gamma`` and
    ``converged`` (False where the fit is undefined, e.g. a singular design for that column's rows).
    """
    n, n_feat = Y.shape
    k = exog.shape[1]
    codes, _ = pd.factorize(pd.Series(groups, dtype="str"))
    n_groups = int(codes.max()) + 1
    G = np.zeros((n, n_groups))
    G[np.arange(n), codes] = 1.0
    M = np.isfinite(Y).astype("float64")
    Y0 = np.where(M > 0, Y, 0.0)
    n_i = (G.T @ M).T  # F x groups
    P = np.einsum("nf,np,nq->fpq", M, exog, exog, optimize=True)  # X'MX
    # per-group column sums s_i = Σ_{n in i} M[n, f]·x_n: rows sorted by group, summed per group block
    # (an einsum over the n x groups indicator builds an n x F x groups intermediate: seconds, not ms)
    order = np.argsort(codes, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(codes[order]) != 0])
    S = np.add.reduceat(M[order][:, :, None] * exog[order][:, None, :], starts, axis=0).transpose(1, 0, 2)
    t = (G.T @ Y0).T  # F x groups
    u = Y0.T @ exog  # F x k
    yy = (Y0**2).sum(axis=0)
    N = M.sum(axis=0)
    dof = N - k if reml else N

    # Complete data (e.g. imputed): every feature has the same group sizes and group sums, so Σ_i c_i s_i s_iᵀ
    # only needs B_m = Σ_{i: n_i = m} s_i s_iᵀ per distinct group size m (a few, instead of one per patient).
    complete = n_feat > 0 and bool(M.all())
    if complete:
        sizes, size_of = np.unique(n_i[0], return_inverse=True)
        size_count = np.bincount(size_of, minlength=len(sizes))
        S0 = S[0]
        B = np.stack([S0[size_of == m].T @ S0[size_of == m] for m in range(len(sizes))]).reshape(len(sizes), k * k)

    def pieces(gamma: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if complete:
            c_m = gamma[:, None] / (1.0 + gamma[:, None] * sizes)
            c = c_m[:, size_of]
            A = P - (c_m @ B).reshape(len(gamma), k, k)
            b = u - (c * t) @ S0
            return c, A, b, (np.log1p(gamma[:, None] * sizes) * size_count).sum(axis=1), yy - (c * t**2).sum(axis=1)
        c = gamma[:, None] / (1.0 + gamma[:, None] * n_i)
        # Σ_i c_i s_i s_iᵀ as one batched matrix product (BLAS), Σ_i c_i t_i s_i as one contraction
        A = P - np.matmul(np.swapaxes(S * c[..., None], 1, 2), S)
        b = u - np.einsum("fgp,fg->fp", S, c * t)
        return c, A, b, np.log1p(gamma[:, None] * n_i).sum(axis=1), yy - (c * t**2).sum(axis=1)

    def objective(gamma: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        _, A, b, logdet_v, ywy = pieces(gamma)
        sign, logdet_a = np.linalg.slogdet(A)
        beta = np.full((len(gamma), k), np.nan)
        good = sign > 0
        beta[good] = np.linalg.solve(A[good], b[good][..., None])[..., 0]
        r = ywy - np.einsum("fp,fp->f", b, beta)
        with np.errstate(divide="ignore", invalid="ignore"):
            value = dof * np.log(r) + logdet_v + (logdet_a if reml else 0.0)
        value[~good | ~(r > 0)] = np.inf
        return value, beta, A, r

    # coarse grid on log(gamma) plus gamma = 0, then golden-section search in the best bracket
    grid = np.concatenate([[-np.inf], np.linspace(np.log(1e-6), np.log(1e6), 49)])
    values = np.stack([objective(np.full(n_feat, np.exp(g)))[0] for g in grid])
    best = np.argmin(values, axis=0)
    step = grid[2] - grid[1]
    lo = np.where(best <= 1, grid[1] - step, grid[np.maximum(best - 1, 1)])
    hi = np.where(best == 0, grid[1] + step, grid[np.minimum(best + 1, len(grid) - 1)])
    ratio = (np.sqrt(5.0) - 1.0) / 2.0
    a, b_ = lo.copy(), hi.copy()
    x1, x2 = b_ - ratio * (b_ - a), a + ratio * (b_ - a)
    f1, f2 = objective(np.exp(x1))[0], objective(np.exp(x2))[0]
    for _ in range(200):
        if np.all(b_ - a < tol):
            break
        left = f1 <= f2  # minimum in [a, x2]
        b_ = np.where(left, x2, b_)
        a = np.where(left, a, x1)
        new_x1 = np.where(left, b_ - ratio * (b_ - a), x2)
        new_x2 = np.where(left, x1, a + ratio * (b_ - a))
        f_new = objective(np.exp(np.where(left, new_x1, new_x2)))[0]
        f1, f2 = np.where(left, f_new, f2), np.where(left, f1, f_new)
        x1, x2 = new_x1, new_x2
    log_gamma = (a + b_) / 2.0
    gamma = np.exp(log_gamma)
    value, _, _, _ = objective(gamma)
    zero_value = values[0]
    gamma = np.where(zero_value <= value, 0.0, gamma)  # boundary: no patient variance
    value, beta, A, r = objective(gamma)
    sigma2 = r / dof
    cov = np.full((n_feat, k, k), np.nan)
    ok = np.isfinite(value)
    if covariance == "observed":
        if ok.any():
            cov[ok] = _observed_covariance(
                gamma[ok],
                beta[ok],
                A[ok],
                r[ok],
                dof[ok],
                reml=reml,
                n_i=n_i[ok],
                S=None if complete else S[ok],
                S0=S0 if complete else None,
                t=t[ok],
            )
    elif covariance == "gls":
        cov[ok] = np.linalg.inv(A[ok]) * sigma2[ok, None, None]
    else:
        raise ValueError("covariance must be 'gls' or 'observed'")
    beta[~ok] = np.nan
    return {
        "beta": beta,
        "cov": cov,
        "group_var": np.where(ok, gamma * sigma2, np.nan),
        "resid_var": np.where(ok, sigma2, np.nan),
        "gamma": np.where(ok, gamma, np.nan),
        "converged": ok,
    }


def _observed_covariance(
    gamma: np.ndarray,
    beta: np.ndarray,
    A: np.ndarray,
    r: np.ndarray,
    fac: np.ndarray,
    *,
    reml: bool,
    n_i: np.ndarray,
    S: np.ndarray | None,
    S0: np.ndarray | None,
    t: np.ndarray,
) -> np.ndarray:
    """β block of ``(−H)⁻¹``, H the observed Hessian of the profile log-likelihood in (β, γ) (module docstring).

    ``S`` (F x groups x p) holds the per-group design sums of each column, or ``S0`` (groups x p) the shared ones
    (complete data). Groups without observations (n_i = 0) contribute nothing.
    """
    k = beta.shape[1]
    w = 1.0 / (1.0 + gamma[:, None] * n_i)  # F x groups
    if S is None:
        resid_sums = t - beta @ S0.T  # u_i = 1ᵀ(y_i − X_iβ̂)
        h_bg = -(fac / r)[:, None] * ((w**2 * resid_sums) @ S0)
        d_a = -np.einsum("fg,gp,gq->fpq", w**2, S0, S0, optimize=True)
        d2_a = 2.0 * np.einsum("fg,gp,gq->fpq", n_i * w**3, S0, S0, optimize=True)
    else:
        resid_sums = t - np.einsum("fgp,fp->fg", S, beta)
        h_bg = -(fac / r)[:, None] * np.einsum("fg,fgp->fp", w**2 * resid_sums, S)
        d_a = -np.einsum("fg,fgp,fgq->fpq", w**2, S, S, optimize=True)
        d2_a = 2.0 * np.einsum("fg,fgp,fgq->fpq", n_i * w**3, S, S, optimize=True)
    d_r = -(w**2 * resid_sums**2).sum(axis=1)
    d2_r = 2.0 * (n_i * w**3 * resid_sums**2).sum(axis=1)
    h_gg = 0.5 * (n_i**2 * w**2).sum(axis=1) - 0.5 * fac * (d2_r / r - d_r**2 / r**2)
    if reml:
        a_inv_da = np.linalg.solve(A, d_a)
        h_gg += 0.5 * (
            np.einsum("fij,fji->f", a_inv_da, a_inv_da) - np.trace(np.linalg.solve(A, d2_a), axis1=1, axis2=2)
        )
    hess = np.zeros((len(gamma), k + 1, k + 1))
    hess[:, :k, :k] = -(fac / r)[:, None, None] * A
    hess[:, :k, k] = h_bg
    hess[:, k, :k] = h_bg
    hess[:, k, k] = h_gg
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        cov = np.full_like(hess, np.nan)
        good = np.isfinite(hess).all(axis=(1, 2)) & (np.abs(np.linalg.det(-hess)) > 0)
        cov[good] = np.linalg.inv(-hess[good])
    return cov[:, :k, :k]
