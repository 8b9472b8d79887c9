"""Small, fast survival fits for the report: Cox proportional hazards (Efron ties) and a Kaplan–Meier check.

The report fits a handful of Cox models on at most a few hundred patients (subgroup forest, diversity vs PFS).
lifelines' ``CoxPHFitter`` gives the same estimates but costs more to import (≈ 1–2 s CPU) than all the report's
fits together, so the models are fitted here with numpy:

* Partial likelihood with Efron's approximation for tied event times (R ``coxph`` default, lifelines'
  ``CoxPHFitter``): at each distinct event time ``t`` with ``d`` events ``D`` and risk set ``R``
  ``ℓ += Σ_{i∈D} x_i β − Σ_{l=0}^{d−1} log(Σ_{i∈R} r_i − l/d · Σ_{i∈D} r_i)``, ``r_i = exp(x_i β)``.
* Newton–Raphson from β = 0 with step halving when the likelihood decreases (as R ``coxph.fit``), iterated to a
  relative likelihood change below 1e-14 (much tighter than R's 1e-9, so the estimate is the MLE to ~1e-10 and
  agrees with R to < 1e-6; ``tests/test_report_*.py`` compare with R ``survival::coxph``).
* Standard errors from the inverse observed information (R's naive variance); covariates are centred first
  (the Efron likelihood is invariant to a shift of a covariate), which keeps ``exp`` in range.

A monotone likelihood (one group has all the events first) has no finite MLE: the iteration stops after
:data:`MAX_ITER` steps or once a coefficient passes :data:`DIVERGED`, and callers report the estimate as not
estimable (their ``|log HR| > 10`` rule).

:func:`km_product_limit` is an independent product-limit estimator used to check the stored KM tables.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Newton–Raphson iterations at most (R ``coxph.control(iter.max = 20)``; more here for the tight tolerance).
MAX_ITER = 60
#: Relative change of the log-likelihood that ends the iteration.
TOLERANCE = 1e-14
#: |coefficient| beyond which the fit is treated as diverging (monotone likelihood).
DIVERGED = 25.0


@dataclass(frozen=True)
class CoxFit:
    coef: np.ndarray
    se: np.ndarray
    log_likelihood: float
    null_log_likelihood: float
    iterations: int
    converged: bool


class _EfronData:
    """Per event time (with tie index ``l``) the index of the risk set start and the tied events."""

    def __init__(self, time: np.ndarray, event: np.ndarray, x: np.ndarray) -> None:
        order = np.argsort(-time, kind="stable")  # descending time: risk sets are prefixes
        self.t = time[order]
        self.e = event[order].astype(bool)
        self.x = x[order]
        n = len(self.t)
        # for each subject, the end (exclusive) of its risk set in the descending order: all with time >= t_i
        ends = np.searchsorted(-self.t, -self.t, side="right")
        ev_idx = np.flatnonzero(self.e)
        ev_times, first = np.unique(self.t[ev_idx], return_index=True)
        # group the events by distinct time
        groups = np.searchsorted(ev_times, self.t[ev_idx])
        self.n_times = len(ev_times)
        self.d = np.bincount(groups, minlength=self.n_times)
        self.risk_end = ends[ev_idx[first]]  # risk set of time j: indices [0, risk_end)
        self.ev_idx = ev_idx
        self.ev_group = groups
        # one row per (event time, l): fraction l / d
        self.row_group = np.repeat(np.arange(self.n_times), self.d)
        self.row_frac = np.concatenate([np.arange(k) / k for k in self.d]) if n else np.zeros(0)
        del first

    def evaluate(self, beta: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        """Log-likelihood, gradient and information (minus the Hessian) at ``beta``."""
        x = self.x
        eta = x @ beta
        r = np.exp(eta)
        rx = r[:, None] * x
        rxx = rx[:, :, None] * x[:, None, :]
        c0, c1, c2 = np.cumsum(r), np.cumsum(rx, axis=0), np.cumsum(rxx, axis=0)
        end = self.risk_end - 1
        s0, s1, s2 = c0[end], c1[end], c2[end]
        g = self.ev_group
        d0 = np.bincount(g, weights=r[self.ev_idx], minlength=self.n_times)
        p = x.shape[1]
        d1 = np.zeros((self.n_times, p))
        np.add.at(d1, g, rx[self.ev_idx])
        d2 = np.zeros((self.n_times, p, p))
        np.add.at(d2, g, rxx[self.ev_idx])
        j, f = self.row_group, self.row_frac
        den = s0[j] - f * d0[j]
        num1 = s1[j] - f[:, None] * d1[j]
        num2 = s2[j] - f[:, None, None] * d2[j]
        ll = float(eta[self.ev_idx].sum() - np.log(den).sum())
        grad = x[self.ev_idx].sum(axis=0) - (num1 / den[:, None]).sum(axis=0)
        mean = num1 / den[:, None]
        info = (num2 / den[:, None, None]).sum(axis=0) - np.einsum("ri,rj->ij", mean, mean)
        return ll, grad, info


def cox_efron(time, event, covariates, *, max_iter: int = MAX_ITER, tol: float = TOLERANCE) -> CoxFit:
    """Cox PH fit (Efron ties) of ``time``/``event`` (1 = event) on the columns of ``covariates`` (n x p)."""
    t = np.asarray(time, dtype=float)
    e = np.asarray(event, dtype=float)
    x = np.asarray(covariates, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    x = x - x.mean(axis=0)
    data = _EfronData(t, e, x)
    p = x.shape[1]
    beta = np.zeros(p)
    ll, grad, info = data.evaluate(beta)
    null_ll = ll
    converged = False
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 (it is reported)
        try:
            step = np.linalg.solve(info, grad)
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(info, grad, rcond=None)[0]
        new = beta + step
        new_ll, new_grad, new_info = data.evaluate(new)
        halvings = 0
        while (not math.isfinite(new_ll) or new_ll < ll - 1e-12 * abs(ll)) and halvings < 30:
            step = step / 2.0
            new = beta + step
            new_ll, new_grad, new_info = data.evaluate(new)
            halvings += 1
        done = abs(new_ll - ll) <= tol * max(abs(ll), 1.0) and float(np.max(np.abs(step))) < 1e-9
        beta, ll, grad, info = new, new_ll, new_grad, new_info
        if done:
            converged = True
            break
        if float(np.max(np.abs(beta))) > DIVERGED:
            break
    try:
        cov = np.linalg.inv(info)
        se = np.sqrt(np.where(np.diag(cov) > 0, np.diag(cov), np.nan))
    except np.linalg.LinAlgError:
        se = np.full(p, np.nan)
    return CoxFit(beta, se, ll, null_ll, it, converged)


def km_product_limit(time, event, at: np.ndarray) -> np.ndarray:
    """Kaplan–Meier survival S(t) (product-limit, right-continuous) at the times ``at``."""
    t = np.asarray(time, dtype=float)
    e = np.asarray(event, dtype=bool)
    times = np.unique(t[e])
    n_risk = len(t) - np.searchsorted(np.sort(t), times, side="left")
    deaths = np.bincount(np.searchsorted(times, t[e]), minlength=len(times))
    surv = np.cumprod(1.0 - deaths / n_risk)
    idx = np.searchsorted(times, np.asarray(at, dtype=float), side="right") - 1
    return np.where(idx >= 0, surv[np.clip(idx, 0, None)] if len(surv) else 1.0, 1.0)
