"""Brain-behaviour correlations in each arm, with bootstrap and Fisher-z CIs and FDR.

Sign conventions (see :mod:`ketamine_cbf.roi_clinical.phenotype`): ΔCBF = during − pre;
day-1 improvement = baseline − day 1 (positive = fewer symptoms). A positive correlation
of baseline sgACC CBF with improvement means higher baseline CBF goes with a larger
antidepressant response (the study's claim).

Correlations and p values come from pingouin, bootstrap intervals from
``scipy.stats.bootstrap`` (BCa), Fisher-z intervals and FDR from
:mod:`ketamine_cbf.stattools`. Every test draws its own seed stream (stage 4, the test's
identity), so results do not depend on the order or number of tests.

Entry points of the notebook steps: :func:`brain_behaviour_correlations` (with
:func:`excluded_by_test` for its display) and :func:`sensitivity_correlations`.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats

from ketamine_cbf._docs import fill_doc
from ketamine_cbf.errors import InputError
from ketamine_cbf.stattools import fisher_ci
from ketamine_cbf.study import ARMS
from ketamine_cbf.roi_clinical import _docs  # noqa: F401  (registers the stage's parameter texts)
from ketamine_cbf.roi_clinical._utils import corr_kernel, generator, join_ids, stream, table_with_fdr

__all__ = ["ARMS", "DEFAULT_PAIRS", "CORRELATION_COLUMNS", "as_pairs", "bootstrap_corr_ci",
           "brain_behaviour_correlations", "excluded_by_test", "sensitivity_correlations"]

#: The study's brain-behaviour tests: (brain measure, clinical measure).
DEFAULT_PAIRS = [
    ("pgACC_delta", "psi_delusional_thinking"),
    ("pgACC_delta", "psi_perceptual_distortion"),
    ("pgACC_delta", "cadss_total"),
    ("sgACC_baseline", "madrs_improvement"),
    ("sgACC_baseline", "qids_sr_improvement"),
]

#: Columns of :func:`brain_behaviour_correlations`.
CORRELATION_COLUMNS = ["method", "x", "y", "arm", "n", "r", "ci_low", "ci_high", "ci_fisher_low",
                       "ci_fisher_high", "p", "q_fdr", "significant_fdr", "excluded"]


def as_pairs(pairs=None) -> list[tuple[str, str]]:
    """The tested pairs as tuples.

    Parameters
    ----------
    pairs : sequence of (str, str), optional
        Pairs as given (lists from the notebook's YAML); default :data:`DEFAULT_PAIRS`.

    Returns
    -------
    list of (str, str)
    """
    return list(DEFAULT_PAIRS) if pairs is None else [tuple(p) for p in pairs]


def _percentile_fallback(x, y, f, n_boot: int, ci_level: float, rng, state) -> tuple[float, float]:
    """Percentile interval over the resamples where r is defined (hand-written).

    For small samples with tied scores, where some resamples have a constant variable and
    BCa is undefined. The generator is rewound to ``state`` so the resamples are scipy's.
    """
    rng.bit_generator.state = state
    idx = rng.integers(0, len(x), (n_boot, len(x)))
    with np.errstate(invalid="ignore", divide="ignore"):
        boot = f(x[idx], y[idx], axis=1)
    boot = boot[np.isfinite(boot)]
    if len(boot) < 0.5 * n_boot:
        return np.nan, np.nan
    lo, hi = np.quantile(boot, [(1 - ci_level) / 2, (1 + ci_level) / 2])
    return float(lo), float(hi)


@fill_doc
def bootstrap_corr_ci(x, y, method: str = "pearson", n_boot: int = 5000, ci_level: float = 0.95,
                      rng=None, ci_method: str = "BCa") -> tuple[float, float]:
    """Bootstrap confidence interval of a correlation (subjects resampled as pairs).

    Parameters
    ----------
    x, y : array_like
        Paired observations (no NaN).
    %(corr_method)s
    %(n_boot)s
    %(ci_level)s
    rng : numpy.random.Generator or int, optional
        Random generator, or the seed of one (:func:`ketamine_cbf.stattools.rng`; None: 0).
    ci_method : {"BCa", "percentile", "basic"}
        Interval type (``scipy.stats.bootstrap``); BCa (bias-corrected and accelerated;
        :footcite:t:`efron1987`; :footcite:t:`efron1993`) by default. If it is undefined
        because some resamples have a constant variable (small samples with tied scores), a
        percentile interval over the resamples where r is defined is returned instead.

    Returns
    -------
    (low, high) : tuple of float

    References
    ----------
    .. footbibliography::
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    f = corr_kernel(method)
    rng = generator(rng)
    state = rng.bit_generator.state
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = stats.bootstrap((x, y), lambda a, b, axis=-1: f(a, b, axis=axis), paired=True,
                              vectorized=True, n_resamples=n_boot, confidence_level=ci_level,
                              method=ci_method, rng=rng)
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return _percentile_fallback(x, y, f, n_boot, ci_level, rng, state)
    return lo, hi


def _check_columns(measures: pd.DataFrame, pairs) -> None:
    for x, y in pairs:
        for c in (x, y):
            if c not in measures.columns:
                raise InputError(f"brain-behaviour pair ({x}, {y}): no column '{c}' in the "
                                 f"subject measures (available: {', '.join(measures.columns)})")


def _one_test(measures, method, x, y, arm, n_boot, ci_level, seed) -> dict:
    """r, p and both CIs of one pair in one arm (participants with both values)."""
    import pingouin as pg

    d = measures[measures["arm"] == arm]
    ok = d[x].notna() & d[y].notna()
    row = {"method": method, "x": x, "y": y, "arm": arm, "n": int(ok.sum()),
           "excluded": join_ids(d.loc[~ok, "participant_id"])}
    xv, yv = d.loc[ok, x].to_numpy(float), d.loc[ok, y].to_numpy(float)
    if row["n"] >= 4 and np.std(xv) > 0 and np.std(yv) > 0:
        res = pg.corr(xv, yv, method=method, alternative="two-sided")
        row["r"] = float(res["r"].iloc[0])
        row["ci_fisher_low"], row["ci_fisher_high"] = fisher_ci(row["r"], row["n"], ci_level)
        row["p"] = float(res["p_val"].iloc[0])
        if n_boot:
            row["ci_low"], row["ci_high"] = bootstrap_corr_ci(
                xv, yv, method, n_boot, ci_level, stream(seed, 1, method, x, y, arm))
    return row


@fill_doc
def brain_behaviour_correlations(measures: pd.DataFrame, pairs=None, methods=("pearson", "spearman"),
                                 arms=ARMS, n_boot: int = 5000, ci_level: float = 0.95,
                                 fdr_alpha: float = 0.05, seed: int = 20261126) -> pd.DataFrame:
    """Correlations of brain measures with clinical scores, per arm.

    Pearson and Spearman r and p from ``pingouin.corr`` (two-sided), the Fisher-z
    parametric CI (:func:`ketamine_cbf.stattools.fisher_ci`) and a bootstrap BCa CI
    (:func:`bootstrap_corr_ci`), and Benjamini-Hochberg FDR over the family of all pairs
    x arms, separately per method.

    Parameters
    ----------
    %(measures)s
    %(pairs)s
    methods : tuple of {"pearson", "spearman"}
    arms : tuple of str
        Arms to correlate in (default :data:`ketamine_cbf.study.ARMS`).
    %(n_boot)s
        0 skips the bootstrap CI.
    %(ci_level)s
    %(fdr_alpha)s
    %(seed)s
        Each test gets its own stream (``stattools.rng(seed, 4, 1, method, x, y, arm)``).

    Returns
    -------
    pandas.DataFrame
        One row per method x pair x arm: ``method``, ``x``, ``y``, ``arm``, ``n``,
        ``r``, ``ci_low``, ``ci_high`` (bootstrap), ``ci_fisher_low``,
        ``ci_fisher_high``, ``p``, ``q_fdr``, ``significant_fdr``, ``excluded``
        (IDs in the arm without both values).

    Raises
    ------
    InputError
        A pair names a column the measures lack, or an unknown method.
    """
    pairs = as_pairs(pairs)
    _check_columns(measures, pairs)
    rows = []
    for method in methods:
        corr_kernel(method)
        rows += [_one_test(measures, method, x, y, arm, n_boot, ci_level, seed)
                 for x, y in pairs for arm in arms]
    return table_with_fdr(rows, CORRELATION_COLUMNS, "p", fdr_alpha)


def excluded_by_test(corr: pd.DataFrame) -> pd.DataFrame:
    """The tests that left participants out (missing values), with their IDs.

    Parameters
    ----------
    corr : pandas.DataFrame
        Output of :func:`brain_behaviour_correlations`.

    Returns
    -------
    pandas.DataFrame
        ``method``, ``x``, ``y``, ``arm``, ``excluded``.
    """
    return corr.loc[corr["excluded"] != "", ["method", "x", "y", "arm", "excluded"]]


@fill_doc
def sensitivity_correlations(roi_values: pd.DataFrame, phenotype: pd.DataFrame,
                             global_adjustment: str = "ratio", pairs=None, n_boot: int = 5000,
                             ci_level: float = 0.95, fdr_alpha: float = 0.05, seed: int = 20261126,
                             exclude_qc_fail: bool = True) -> tuple[str, pd.DataFrame]:
    """The Pearson correlations with the *other* global-adjustment choice's brain measure.

    Shows how much the conclusions depend on the adjustment: with ``"ratio"`` the
    correlations are recomputed on absolute CBF, with ``"none"`` on relative CBF.

    Parameters
    ----------
    %(roi_values)s
    phenotype : pandas.DataFrame
        Merged phenotype (:func:`ketamine_cbf.roi_clinical.phenotype.clinical_scores`).
    %(global_adjustment)s
        The choice of the main analysis (the other one is computed here).
    %(pairs)s
    %(n_boot)s
    %(ci_level)s
    %(fdr_alpha)s
    %(seed)s
    %(exclude_qc_fail)s

    Returns
    -------
    value : str
        The brain measure used here (``"cbf"`` or ``"rcbf"``).
    correlations : pandas.DataFrame
        As :func:`brain_behaviour_correlations` (Pearson only).
    """
    from ketamine_cbf.roi_clinical.phenotype import brain_value, subject_measures

    other = brain_value("none" if brain_value(global_adjustment) == "rcbf" else "ratio")
    measures, _ = subject_measures(roi_values, phenotype, value=other, exclude_qc_fail=exclude_qc_fail)
    corr = brain_behaviour_correlations(measures, pairs, methods=("pearson",), n_boot=n_boot,
                                        ci_level=ci_level, fdr_alpha=fdr_alpha, seed=seed)
    return other, corr
