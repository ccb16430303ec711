"""The comparison about new subjects (:func:`subject_comparison`).

The fold-level test (:mod:`study.stats`) answers "would these arms differ on these same held-out
subjects if re-trained?"; users ask "is arm b better on NEW people?". When the true difference
varies from subject to subject (spread τ), seeds average out training noise but never the spread
over the H subjects that happen to be held out. :func:`subject_comparison` takes one difference
``d[h, r]`` per (held-out subject, seed), with the fold model that scored it, and treats three
sources of noise (Cameron, Gelbach & Miller 2011, "Robust inference with multiway clustering",
J. Bus. Econ. Stat. 29(2):238-249):

* the model d[h, r] = Δ + u_h + c_m(h, r) + e_hr: u the subject's own difference (sd τ), c the
  (seed, fold) model pair's noise shared by the subjects it scored (σ_m), e the rest (σ_e);
* the components by Henderson's method I (:mod:`study.variance_components`) on the subject, model and total sums of squares (Searle,
  Casella & McCulloch 1992, "Variance Components", §5.2), the variance of the mean from them
  (each counted once), degrees of freedom by Welch–Satterthwaite (Satterthwaite 1946, Biometrics
  Bull. 2(6):110-114) over the subject, model and residual pieces, which know whether folds were
  re-dealt every seed (one connected design) or kept (outer folds: K separate ones);
* the interval of τ: a 95% generalized confidence interval (Weerahandi 1993, "Generalized
  confidence intervals", JASA 88(423):899-905) of the two-way pivot, 4,000 draws from a fixed seed;
* skewness: a few subjects with a long tail make the mean's distribution skewed, and a symmetric t
  interval then misses mostly on one side (simulated with 6–20 subjects: coverage 0.87–0.92, false
  "better" up to 6.7% on one side). Each test of "the difference is c" is also made on Hall's
  transformation of the studentized mean (Hall 1992, "On the removal of skewness by
  transformation", JRSS B 54(1):221-228; :func:`skew_pivot`), with the mean's skewness from the
  subject means' third k-statistic; a hypothesis is rejected only when both the plain and the
  corrected pivot reject it, so the interval is the hull of the two (Hall's alone lost coverage with
  heavy-tailed t(3) subjects, whose sample skewness is mostly noise). No interval for a mean is valid
  for every distribution at a fixed H (Bahadur & Savage 1956, Ann. Math. Statist. 27(4):1115-1122):
  how far this one holds is what ``benchmarks/bench_calibration.py`` shows;
* verdicts, tests at level α: "a better" / "b better" when the (1 − α) interval lies wholly beyond
  ±rope on that side; else "practically equivalent" by two one-sided tests of the rope's edges at
  EQUIVALENCE_ALPHA (Schuirmann 1987, J. Pharmacokin. Biopharm. 15(6):657-680), i.e. the 90%
  interval inside ±rope; else "inconclusive". Several arms against one are decided at Holm-adjusted
  levels (:func:`family_verdicts`);
* one seed (R = 1): training noise and subject spread cannot be told apart: the estimate, no verdict;
* ``mde``: the smallest true difference the test of 0 detects with 80% power at this H and R.

Calibrated by simulation of the confirmation's designs in ``study/calibration.py``
(``tests/test_stats_calibration.py`` and ``benchmarks/bench_calibration.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from cmi_model.errors import InputError
from study.stats import DEFAULT_ROPE, EQUIVALENCE_ALPHA, POWER, VERDICTS, _is_constant, check_rope
from study.variance_components import variance_components

# Below this many held-out subjects a strongly skewed subject spread can tip a verdict (simulated: a
# false "better" in up to 3.7% of studies per side at 6 subjects, ≤ 2.35% from 12 on; BENCHMARKS.md):
# the report says so beside the verdict.
SKEW_SAFE_SUBJECTS = 12
DOMINANT = ("subjects", "training", "unknown")  # which part of the standard error is larger
TAU_DRAWS = 4000  # draws of the generalized pivot for the interval of subject_sd


def skew_pivot(t, skew):
    """Hall's (1992) transformation of a studentized mean, g(t) = t + a·t² + a²·t³/3 + a/2 with
    a = skew/3 ("On the removal of skewness by transformation", JRSS B 54(1):221-228): g(T) is
    close to t-distributed when the mean's own distribution is skewed, as it is when a few
    subjects carry a long tail. Monotone in t (g' = (1 + a·t)²); skew = 0 leaves t unchanged."""
    t, a = np.broadcast_arrays(np.asarray(t, dtype=float), np.asarray(skew, dtype=float) / 3.0)
    return t + a * t**2 + a**2 * t**3 / 3.0 + a / 2.0


def skew_quantile(y, skew):
    """The inverse of :func:`skew_pivot`: the t at which g(t) = y."""
    y, a = np.broadcast_arrays(np.asarray(y, dtype=float), np.asarray(skew, dtype=float) / 3.0)
    small = np.abs(a) < 1e-12
    safe = np.where(small, 1.0, a)
    return np.where(small, y - a / 2.0, (np.cbrt(1.0 + 3.0 * safe * (y - a / 2.0)) - 1.0) / safe)


def subject_decisions(
    mean: np.ndarray, se: np.ndarray, df: np.ndarray, rope: float, alpha: float, skew=0.0
) -> dict[str, np.ndarray]:
    """Vectorised p-value, interval, posterior probabilities, the two decision p-values and the
    verdict index (into VERDICTS) of one comparison on its own (no multiplicity).

    Every test of "the difference is c" uses the pivot g((mean − c)/se) of :func:`skew_pivot`
    against a t with df degrees of freedom (``skew`` = the mean's skewness, 0: the plain t).
    ``p_direction``: 2·min over sides of P(the difference is not beyond the rope on that side), the
    two-sided p-value of "beyond the rope" (≤ α ⇔ the (1 − α) interval lies wholly beyond ±rope);
    ``p_nonequivalence``: the two one-sided tests' p-value, the larger of P(diff < −rope) and
    P(diff > rope) (≤ EQUIVALENCE_ALPHA ⇔ the 90% interval lies inside ±rope ⇔ equivalent): a
    test of size EQUIVALENCE_ALPHA when the true difference is on the rope's edge.
    A zero (or round-off) standard error collapses the posterior onto the mean."""
    mean, se, df, skew = np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in (mean, se, df, skew)))
    scale = np.maximum(1.0, np.abs(mean))
    degenerate = se <= 1e-12 * scale
    safe_se = np.where(degenerate, 1.0, se)
    skew = np.where(degenerate, 0.0, skew)
    t = np.where(degenerate, 0.0, mean / safe_se)

    def below(c):  # P(pivot ≤ observed) under "the difference is c", the larger of the plain and
        # the skew-corrected pivot's (a one-sided test of "≥ c" rejects only when both do)
        z = (mean - c) / safe_se
        return np.maximum(sps.t.cdf(z, df), sps.t.cdf(skew_pivot(z, skew), df))

    def above(c):  # the same for a test of "≤ c"
        z = (mean - c) / safe_se
        return np.maximum(sps.t.sf(z, df), sps.t.sf(skew_pivot(z, skew), df))

    p_value = np.where(
        degenerate, np.where(mean == 0, 1.0, 0.0), np.minimum(1.0, 2.0 * np.minimum(below(0.0), above(0.0)))
    )
    q = sps.t.ppf(1.0 - alpha / 2.0, df)
    low = np.where(degenerate, mean, mean - safe_se * np.maximum(q, skew_quantile(q, skew)))
    high = np.where(degenerate, mean, mean - safe_se * np.minimum(-q, skew_quantile(-q, skew)))
    p_a = np.where(degenerate, (mean < -rope).astype(float), 1.0 - below(-rope))
    p_b = np.where(degenerate, (mean > rope).astype(float), 1.0 - above(rope))
    p_eq = np.maximum(0.0, 1.0 - p_a - p_b)
    mde = np.where(degenerate, 0.0, (q + sps.t.ppf(POWER, df)) * safe_se)
    p_direction = np.minimum(1.0, 2.0 * np.minimum(1.0 - p_a, 1.0 - p_b))
    out = {
        "p_value": np.minimum(1.0, p_value),
        "ci_low": low,
        "ci_high": high,
        "p_a_better": p_a,
        "p_equivalent": p_eq,
        "p_b_better": p_b,
        "p_direction": p_direction,
        "p_nonequivalence": np.maximum(p_a, p_b),
        "mde": mde,
        "t_stat": np.where(degenerate, np.where(mean == 0, 0.0, np.copysign(np.inf, mean)), t),
    }
    out["verdict"] = decide(p_direction, out["p_nonequivalence"], mean, alpha)
    return out


def decide(p_direction, p_nonequivalence, mean, alpha: float) -> np.ndarray:
    """Verdict indices (into VERDICTS) from decision p-values, plain or Holm-adjusted: a side when
    p_direction ≤ α (the side of the mean), else equivalent when p_nonequivalence ≤ EQUIVALENCE_ALPHA."""
    p_direction, p_nonequivalence, mean = np.broadcast_arrays(
        *(np.asarray(x, dtype=float) for x in (p_direction, p_nonequivalence, mean))
    )
    verdict = np.full(mean.shape, VERDICTS.index("inconclusive"))
    verdict = np.where(
        p_nonequivalence <= EQUIVALENCE_ALPHA, VERDICTS.index("practically equivalent"), verdict
    )
    side = np.where(mean > 0, VERDICTS.index("b better"), VERDICTS.index("a better"))
    return np.where(p_direction <= alpha, side, verdict)


def holm_matrix(p: np.ndarray) -> np.ndarray:
    """Holm's adjusted p-values along the last axis (vectorised :func:`holm`)."""
    p = np.asarray(p, dtype=float)
    m = p.shape[-1]
    order = np.argsort(p, axis=-1)
    ranked = np.take_along_axis(p, order, axis=-1) * (m - np.arange(m))
    ranked = np.minimum(1.0, np.maximum.accumulate(ranked, axis=-1))
    out = np.empty_like(ranked)
    np.put_along_axis(out, order, ranked, axis=-1)
    return out


def family_verdicts(p_direction, p_nonequivalence, mean, alpha: float) -> np.ndarray:
    """Verdicts of several comparisons (last axis) decided at Holm-adjusted levels: the family-wise
    rate of false directional verdicts, and of false equivalence verdicts, stays ≤ α / 0.05."""
    return decide(holm_matrix(p_direction), holm_matrix(p_nonequivalence), mean, alpha)


@dataclass(frozen=True)
class SubjectComparison:
    """Result of :func:`subject_comparison` (differences are b − a, target: the population of
    subjects the held-out ones were drawn from)."""

    mean_diff: float  # grand mean of b − a over the H × R (subject, seed) cells used
    ci_low: float  # (1 − alpha) interval, t with the Welch–Satterthwaite df
    ci_high: float
    p_value: float  # two-sided t-test of 0 (context: a verdict needs the interval beyond the rope)
    p_a_better: float  # t posterior: P(diff < −rope)
    p_equivalent: float  # P(−rope ≤ diff ≤ rope)
    p_b_better: float  # P(diff > rope)
    p_direction: float  # p-value of "beyond the rope" on the mean's side (Holm-adjust this one)
    p_nonequivalence: float  # two one-sided tests' p of "within the rope" (Holm-adjust this one)
    n: int  # H × R cells used
    verdict: str  # one of VERDICTS, for this comparison on its own (see family_verdicts)
    rope: float
    alpha: float
    df: float  # Welch–Satterthwaite degrees of freedom
    mde: float  # smallest true |difference| the test of 0 detects with 80% power at this H, R
    n_subjects: int  # H used
    n_seeds: int  # R used
    se: float  # standard error of mean_diff
    skew: float  # skewness of mean_diff (subjects' third cumulant): Hall's transformation corrects for it
    t_stat: float  # mean_diff / se (±inf when se = 0 and the mean is not)
    decidable: bool  # False with one seed: the estimate only, never a verdict
    models_per_seed: float  # fold models per seed (K); 1 when no fold labels were given
    seed_sd: float | None  # training noise of one (subject, seed) difference: sqrt(σ_m² + σ_e²)
    model_sd: float | None  # its part shared by the subjects one fold model scored: σ_m
    residual_sd: float | None  # the rest: σ_e
    seed_shared_sd: float | None  # noise shared by all of a seed's models beyond σ_m (assumed 0)
    subject_sd: float | None  # τ, spread of the true per-subject difference (method of moments, ≥ 0)
    subject_sd_low: float | None  # 95% generalized confidence interval of τ
    subject_sd_high: float | None
    dominant: str  # one of DOMINANT: τ²/H against the training noise's share of se²
    dropped_subjects: tuple[int, ...]  # row indices left out for missing scores
    dropped_seeds: tuple[int, ...]  # column indices left out for missing scores
    note: str  # empty, or what limits the result (one seed, dropped cells)
    components: tuple[float, float, float] = (math.nan, math.nan, math.nan)  # τ², σ_m², σ_e² (unbiased)
    components_high: tuple[float, float] = (math.nan, math.nan)  # upper bounds of τ², σ_m²

    @property
    def equivalence_interval(self) -> tuple[float, float]:
        """The (1 − 2·EQUIVALENCE_ALPHA) interval: inside ±rope ⇔ both one-sided tests reject."""
        if not math.isfinite(self.se) or self.se <= 0:
            return self.mean_diff, self.mean_diff
        q = float(sps.t.ppf(1.0 - EQUIVALENCE_ALPHA, self.df))
        low, high = (self.mean_diff - self.se * float(skew_quantile(x, self.skew)) for x in (q, -q))
        return low, high


def _complete_table(d: np.ndarray) -> tuple[np.ndarray, list[int], list[int]]:
    """Rows (subjects) and columns (seeds) kept so that no cell is missing.

    Rule: a cell is missing when either arm's score is NaN. Repeatedly drop the row or column
    with the largest share of missing cells (a seed on ties: subjects are the population, seeds
    can be re-run) until none is missing."""
    rows, cols = list(range(d.shape[0])), list(range(d.shape[1]))
    miss = np.isnan(d)
    while rows and cols:
        sub = miss[np.ix_(rows, cols)]
        if not sub.any():
            break
        row_share, col_share = sub.mean(axis=1), sub.mean(axis=0)
        if col_share.max() >= row_share.max():
            del cols[int(np.argmax(col_share))]
        else:
            del rows[int(np.argmax(row_share))]
    return d[np.ix_(rows, cols)], rows, cols


def _tau_interval(ms_a: float, ms_e: float, h: int, r: int) -> tuple[float, float]:
    """95% generalized confidence interval of τ (Weerahandi 1993), fixed seed."""
    rng = np.random.default_rng(0)
    nu_a, nu_e = h - 1, (h - 1) * (r - 1)
    w_a = rng.chisquare(nu_a, TAU_DRAWS)
    w_e = rng.chisquare(nu_e, TAU_DRAWS)
    pivot = np.maximum(0.0, (ms_a * nu_a / w_a - ms_e * nu_e / w_e) / r)
    low, high = np.quantile(pivot, [0.025, 0.975])
    return float(math.sqrt(low)), float(math.sqrt(high))


def _table(x, name: str) -> tuple[np.ndarray, list | None]:
    """A score table as floats; a DataFrame must be subjects (index) × seeds (columns) by its labels."""
    if hasattr(x, "index") and hasattr(x, "columns"):
        rows, cols = x.index.name, x.columns.name
        if rows == "seed" or cols == "subject":
            raise InputError(f"{name}: the table is seeds × subjects (index {rows!r}); pass subjects × seeds")
        if rows != "subject" or cols != "seed":
            raise InputError(
                f"{name}: label the table's index 'subject' and its columns 'seed', got {rows!r} × {cols!r}"
            )
        return x.to_numpy(dtype=float), list(x.columns)
    return np.asarray(x, dtype=float), None


def subject_comparison(
    a, b, *, folds=None, rope: float = DEFAULT_ROPE, alpha: float = 0.05
) -> SubjectComparison:
    """Compare arms a and b on per-(held-out subject, seed) scores, arrays of shape (H, R), or
    DataFrames labelled subject (index) × seed (columns), which are checked by those labels.

    ``a[h, r]`` and ``b[h, r]`` are the scores of subject h validated under seed r's split.
    ``folds[h, r]`` (optional, same shape) is the fold whose model pair scored that cell: without
    it every seed counts as one model. NaN marks a missing score; rows and columns are dropped by
    the rule of :func:`_complete_table` and reported. Scores must lie in [0, 1]; needs at least 2
    subjects and 1 seed left. One seed (or a table left with one by a missing subject) gives the
    estimate and no verdict. See the module docstring for the method.
    """
    a_arr, _ = _table(a, "a")
    b_arr, _ = _table(b, "b")
    if a_arr.ndim != 2 or b_arr.ndim != 2:
        raise InputError(
            f"scores must be 2-D arrays (subjects × seeds), got shapes {a_arr.shape} and {b_arr.shape}"
        )
    if a_arr.shape != b_arr.shape:
        raise InputError(
            f"a and b must have the same shape (subjects × seeds), got {a_arr.shape} and {b_arr.shape}"
        )
    for name, x in (("a", a_arr), ("b", b_arr)):
        if np.isinf(x).any():
            raise InputError(f"{name}: scores contain infinite values (NaN marks a missing score)")
        bad = np.argwhere(~np.isnan(x) & ((x < 0) | (x > 1)))
        if len(bad):
            i, j = bad[0]
            raise InputError(
                f"{name}: score {x[i, j]!r} at subject row {i}, seed column {j} is outside [0, 1]"
            )
    rope = check_rope(rope)
    if not 0 < alpha < 1:
        raise InputError(f"alpha must be in (0, 1), got {alpha}")
    fold_arr = None
    if folds is not None:
        fold_arr = np.asarray(folds, dtype=float)
        if fold_arr.shape != a_arr.shape:
            raise InputError(f"folds must have the scores' shape {a_arr.shape}, got {fold_arr.shape}")
    d, rows, cols = _complete_table(b_arr - a_arr)
    h, r = d.shape
    if h < 2 or r < 1:
        raise InputError(
            f"need at least 2 subjects and 1 seed with complete scores, have {h} × {r} "
            f"of {a_arr.shape[0]} × {a_arr.shape[1]} after dropping missing (NaN) cells"
        )
    dropped_s = tuple(i for i in range(a_arr.shape[0]) if i not in rows)
    dropped_r = tuple(j for j in range(a_arr.shape[1]) if j not in cols)
    if _is_constant(d):
        d = np.full_like(d, float(d.mean()))  # exact zero spread, not float round-off
    notes = []
    if dropped_s or dropped_r:
        notes.append(f"dropped {len(dropped_s)} subject(s) and {len(dropped_r)} seed(s) with missing scores")
    if r >= 2:
        fk = None
        if fold_arr is not None:
            sub = fold_arr[np.ix_(rows, cols)]
            if np.isnan(sub).any():
                raise InputError("folds: a scored cell has no fold")
            _, fk = np.unique(sub, return_inverse=True)  # fold labels per seed as 0..K-1 codes
            fk = fk.reshape(sub.shape)
        comp = variance_components(d, fk, alpha)
        mean, se, df = float(comp.mean[0]), float(comp.se[0]), float(comp.df[0])
        skew = float(comp.skew[0])
        tau2, model2, resid2 = float(comp.tau2[0]), float(comp.model2[0]), float(comp.resid2[0])
        subj = d.mean(axis=1)
        resid = d - subj[:, None] - d.mean(axis=0)[None, :] + d.mean()
        ms_a, ms_e = r * float(subj.var(ddof=1)), float((resid**2).sum()) / ((h - 1) * (r - 1))
        tau_low, tau_high = _tau_interval(ms_a, ms_e, h, r) if ms_a + ms_e > 0 else (0.0, 0.0)
        subject_sd = math.sqrt(max(tau2, 0.0))
        tau_low, tau_high = min(tau_low, subject_sd), max(tau_high, subject_sd)
        m2, e2 = max(model2, 0.0), max(resid2, 0.0)
        excess = float(comp.seed_excess[0])
        dominant = "subjects" if max(tau2, 0.0) / h > se**2 / 2 else "training"
        extra = dict(
            decidable=True,
            models_per_seed=float(comp.models_per_seed[0]),
            seed_sd=math.sqrt(m2 + e2),
            model_sd=math.sqrt(m2),
            residual_sd=math.sqrt(e2),
            seed_shared_sd=math.sqrt(max(excess, 0.0)) if math.isfinite(excess) else None,
            subject_sd=subject_sd,
            subject_sd_low=tau_low,
            subject_sd_high=tau_high,
            dominant=dominant,
            components=(tau2, model2, resid2),
            components_high=(float(comp.tau2_high[0]), float(comp.model2_high[0])),
        )
    else:
        # One seed: training noise and subject spread cannot be told apart, nor the noise a fold
        # model shares with its subjects: the subject means' spread is all there is (too narrow).
        mean = float(d.mean())
        se = float(d[:, 0].std(ddof=1) / math.sqrt(h))
        df = float(h - 1)
        skew = 0.0
        extra = dict(
            decidable=False,
            models_per_seed=math.nan,
            seed_sd=None,
            model_sd=None,
            residual_sd=None,
            seed_shared_sd=None,
            subject_sd=None,
            subject_sd_low=None,
            subject_sd_high=None,
            dominant="unknown",
        )
        notes.insert(
            0,
            "one seed cannot separate training noise from subject spread: the estimate only, no verdict; "
            "run at least 2 confirm seeds",
        )
    dec = subject_decisions(mean, se, df, rope, alpha, skew)
    verdict = VERDICTS[int(dec["verdict"])] if extra["decidable"] else "inconclusive"
    return SubjectComparison(
        mean_diff=mean,
        ci_low=float(dec["ci_low"]),
        ci_high=float(dec["ci_high"]),
        p_value=float(dec["p_value"]),
        p_a_better=float(dec["p_a_better"]),
        p_equivalent=float(dec["p_equivalent"]),
        p_b_better=float(dec["p_b_better"]),
        p_direction=float(dec["p_direction"]) if extra["decidable"] else 1.0,
        p_nonequivalence=float(dec["p_nonequivalence"]) if extra["decidable"] else 1.0,
        n=h * r,
        verdict=verdict,
        rope=rope,
        alpha=float(alpha),
        df=df,
        mde=float(dec["mde"]),
        n_subjects=h,
        n_seeds=r,
        se=se,
        skew=skew,
        t_stat=float(dec["t_stat"]),
        dropped_subjects=dropped_s,
        dropped_seeds=dropped_r,
        note="; ".join(notes),
        **extra,
    )
