"""Variance components of per-(subject, seed) differences scored by fold models
(:func:`variance_components`): the subject, model and residual parts of the variance of their mean,
its degrees of freedom and skewness, for :mod:`study.subject_level`'s verdicts and
:mod:`study.calibration`'s simulations (vectorised over simulated studies).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

MAX_COMPONENT_SWEEPS = 200  # label-propagation sweeps when counting connected designs (≤ H needed)


def _components_count(fold: np.ndarray) -> np.ndarray:
    """Connected components of the subject–model graph per study: subjects linked when one fold
    model scored both. fold (S, H, R); returns (S,). 1 when folds are re-dealt every seed (almost
    surely), K when each subject stays in one of K folds in every seed."""
    s, h, r = fold.shape
    k = int(fold.max()) + 1
    onehot = fold[..., None] == np.arange(k)  # (S, H, R, K)
    label = np.broadcast_to(np.arange(h, dtype=float), (s, h)).copy()
    for _ in range(MAX_COMPONENT_SWEEPS):
        model_min = np.where(onehot, label[:, :, None, None], np.inf).min(axis=1)  # (S, R, K)
        new = np.take_along_axis(model_min, np.swapaxes(fold, 1, 2), axis=2).min(axis=1)  # (S, H)
        if np.array_equal(new, label):
            break
        label = new
    return (label == np.arange(h)).sum(axis=1)


@dataclass(frozen=True)
class Components:
    """Vectorised variance components of differences d (S, H, R) scored by fold models (S, H, R).

    Model: d[h, r] = Δ + u_h + c_m(h, r) + e_hr with u ~ (0, τ²) the subject's own true difference,
    c ~ (0, σ_m²) the (seed, fold) model pair's noise shared by the subjects it scored, e ~ (0, σ_e²)
    the rest. Var(mean) = τ²/H + σ_m² Σ n_m²/N² + σ_e²/N (N = H·R, n_m subjects per model)."""

    mean: np.ndarray
    se: np.ndarray
    df: np.ndarray
    tau2: np.ndarray  # unbiased, may be negative
    model2: np.ndarray
    resid2: np.ndarray
    tau2_high: np.ndarray  # upper (1 − α/2) bounds: the subject and model sums of squares inflated
    model2_high: np.ndarray
    models_per_seed: np.ndarray  # M / R
    seed_excess: np.ndarray  # H·S²(seed means) − its expectation without a seed-shared part, over H
    skew: np.ndarray  # skewness of the mean: k3(subject means) / (H² · se³), 0 below 3 subjects


def variance_components(d: np.ndarray, fold: np.ndarray | None = None, alpha: float = 0.05) -> Components:
    """Henderson's method I (Searle, Casella & McCulloch 1992, "Variance Components", §5.2) on the
    subject, model and total sums of squares; the variance of the mean from the unbiased components;
    Welch–Satterthwaite degrees of freedom over the subject (H − c), model (M − c) and residual
    (N − H − M + c) pieces, c the connected components of the design (1 when folds are re-dealt,
    K when they are fixed), at most H − 1. Needs R ≥ 2. Without fold labels every seed is one model.
    """
    d = np.asarray(d, dtype=float)
    if d.ndim == 2:
        d = d[None]
    fold = np.zeros(d.shape, dtype=np.int64) if fold is None else np.asarray(fold, dtype=np.int64)
    fold = np.broadcast_to(fold.reshape((-1, *d.shape[-2:])), d.shape)
    s, h, r = d.shape
    n = h * r
    mean = d.mean(axis=(1, 2))
    s_t = ((d - mean[:, None, None]) ** 2).sum(axis=(1, 2))
    s_a = r * ((d.mean(axis=2) - mean[:, None]) ** 2).sum(axis=1)
    seed_means = d.mean(axis=1)
    onehot = fold[..., None] == np.arange(int(fold.max()) + 1)  # (S, H, R, K)
    n_m = onehot.sum(axis=1)  # (S, R, K) subjects per model
    model_means = np.einsum("shr,shrk->srk", d, onehot) / np.maximum(n_m, 1)
    s_m = (n_m * (model_means - mean[:, None, None]) ** 2).sum(axis=(1, 2))
    q = (n_m**2).sum(axis=(1, 2)).astype(float)
    m = (n_m > 0).sum(axis=(1, 2)).astype(float)
    c = _components_count(fold).astype(float)
    one = np.ones(s)
    # E[S] = C @ (τ², σ_m², σ_e²) for S = (S_T, S_A, S_M): each subject once per seed, in R models.
    coef = np.stack(
        [
            np.stack([(n - r) * one, n - q / n, (n - 1) * one], axis=1),
            np.stack([(n - r) * one, h - q / n, (h - 1) * one], axis=1),
            np.stack([m - r, n - q / n, m - 1], axis=1),
        ],
        axis=1,
    )
    inv = np.linalg.pinv(coef)  # (S, 3, 3); pinv: a design with no residual df stays finite

    def solve(s_a_, s_m_):
        return np.einsum("sij,sj->si", inv, np.stack([s_t, s_a_, s_m_], axis=1))

    comp = solve(s_a, s_m)
    weights = np.stack([one / h, q / n**2, one / n], axis=1)
    var = (comp * weights).sum(axis=1)
    lam = np.einsum("si,sij->sj", weights, inv)  # var = lam · (S_T, S_A, S_M)
    nu = np.stack([h - c, m - c, n - h - m + c], axis=1)
    pieces = np.stack(
        [(lam[:, 1] + lam[:, 0]) * s_a, (lam[:, 2] + lam[:, 0]) * s_m, lam[:, 0] * (s_t - s_a - s_m)], 1
    )
    scale = np.maximum(np.abs(mean), 1.0)
    var = np.maximum(var, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        denom = np.where(nu > 0, pieces**2 / np.where(nu > 0, nu, 1.0), 0.0).sum(axis=1)
        df = np.where((denom > 0) & (var > (1e-12 * scale) ** 2), var**2 / denom, float(h - 1))
    df = np.clip(df, 1.0, float(h - 1))
    inflate = lambda ss, dof: ss * dof / sps.chi2.ppf(alpha / 2, np.maximum(dof, 1))  # noqa: E731
    high = solve(inflate(s_a, nu[:, 0]), inflate(s_m, nu[:, 1]))
    expected_seed = (comp[:, 1] * q / (r * h) + comp[:, 2]) if r >= 2 else np.zeros(s)
    seed_excess = (h * seed_means.var(axis=1, ddof=1) - expected_seed) / h if r >= 2 else np.full(s, np.nan)
    se = np.sqrt(var)
    return Components(
        mean,
        se,
        df,
        comp[:, 0],
        comp[:, 1],
        comp[:, 2],
        np.maximum(high[:, 0], 0.0),
        np.maximum(high[:, 1], 0.0),
        m / r,
        seed_excess,
        mean_skewness(d.mean(axis=2), se),
    )


def mean_skewness(subject_means: np.ndarray, se: np.ndarray) -> np.ndarray:
    """Skewness of the grand mean, (studies,): the subjects' third cumulant (unbiased k-statistic of
    the subject means; training noise is symmetric and adds none) over H², divided by se³. 0 with
    fewer than 3 subjects or a zero standard error."""
    x = np.atleast_2d(np.asarray(subject_means, dtype=float))
    h = x.shape[1]
    se = np.broadcast_to(np.asarray(se, dtype=float), x.shape[:1])
    if h < 3:
        return np.zeros(x.shape[0])
    k3 = h / ((h - 1) * (h - 2)) * ((x - x.mean(axis=1, keepdims=True)) ** 3).sum(axis=1)
    scale = np.maximum(1.0, np.abs(x).max(axis=1))
    ok = se > 1e-12 * scale
    return np.where(ok, k3 / h**2 / np.where(ok, se, 1.0) ** 3, 0.0)
