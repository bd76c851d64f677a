"""Do the brain-behaviour correlations differ between arms? (The test the claim needs.)

The placebo and naltrexone correlations come from the same participants, so they are
dependent. Hand-written here (no Python library provides them): the confidence intervals
of :footcite:t:`zou2007` for the difference of dependent correlations (checked against R's
``cocor``, :footcite:t:`diedenhofen2015`) and the within-subject arm-swap permutation test.

Entry point of the notebook step: :func:`compare_arms`.

References
----------
.. footbibliography::
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats

from ketamine_cbf._docs import fill_doc
from ketamine_cbf.stattools import fisher_ci
from ketamine_cbf.study import ARMS
from ketamine_cbf.roi_clinical import _docs  # noqa: F401  (registers the stage's parameter texts)
from ketamine_cbf.roi_clinical._utils import (corr_kernel, generator, join_ids, stream, table_with_fdr,
                                              zscore)
from ketamine_cbf.roi_clinical.correlations import as_pairs

__all__ = ["zou_ci_nonoverlap", "zou_ci_overlap", "permutation_arm_difference", "compare_arms"]


def _zou_limits(r_a: float, r_b: float, c: float, n: int, ci_level: float) -> tuple[float, float]:
    """Limits of r_a − r_b from the Fisher-z limits of each and their correlation c.

    The limits of :footcite:t:`zou2007`.

    References
    ----------
    .. footbibliography::
    """
    l1, u1 = fisher_ci(r_a, n, ci_level)
    l2, u2 = fisher_ci(r_b, n, ci_level)
    d = r_a - r_b
    lo = d - np.sqrt(max((r_a - l1) ** 2 + (u2 - r_b) ** 2 - 2 * c * (r_a - l1) * (u2 - r_b), 0))
    hi = d + np.sqrt(max((u1 - r_a) ** 2 + (r_b - l2) ** 2 - 2 * c * (u1 - r_a) * (r_b - l2), 0))
    return float(lo), float(hi)


def zou_ci_nonoverlap(r12: float, r34: float, r13: float, r14: float, r23: float, r24: float,
                      n: int, ci_level: float = 0.95) -> tuple[float, float]:
    """Zou's CI for ρ12 − ρ34, two non-overlapping correlations from one sample.

    The interval of :footcite:t:`zou2007`. Here variable 1 = brain measure and 2 = clinical
    score under placebo, 3 and 4 the same under naltrexone, all from the same participants.
    The interval combines the Fisher-z limits (l, u) of each correlation (modified
    asymptotic method):

    L = r12 − r34 − sqrt((r12 − l1)² + (u2 − r34)² − 2 c (r12 − l1)(u2 − r34))
    U = r12 − r34 + sqrt((u1 − r12)² + (r34 − l2)² − 2 c (u1 − r12)(r34 − l2))

    with c = corr(r12, r34) from :footcite:t:`pearson1898` as given by :footcite:t:`zou2007`
    (eq. 19):
    c = [½ r12 r34 (r13² + r14² + r23² + r24²) + r13 r24 + r14 r23
    − (r12 r13 r14 + r12 r23 r24 + r13 r23 r34 + r14 r24 r34)] / [(1 − r12²)(1 − r34²)].
    Matches R's ``cocor.dep.groups.nonoverlap(..., test="zou2007")``
    :footcite:p:`diedenhofen2015`, with r.jk = r12, r.hm = r34, r.jh = r13, r.jm = r14, r.kh = r23,
    r.km = r24.

    Parameters
    ----------
    r12, r34 : float
        The two correlations compared.
    r13, r14, r23, r24 : float
        The cross-correlations of the four variables.
    n : int
        Sample size.
    ci_level : float
        Confidence level.

    Returns
    -------
    (low, high) : tuple of float

    References
    ----------
    .. footbibliography::

    Examples
    --------
    >>> [round(v, 3) for v in zou_ci_nonoverlap(.396, .189, .208, .143, .023, .423, n=66)]
    [-0.096, 0.501]
    """
    c = (0.5 * r12 * r34 * (r13 ** 2 + r14 ** 2 + r23 ** 2 + r24 ** 2) + r13 * r24 + r14 * r23
         - (r12 * r13 * r14 + r12 * r23 * r24 + r13 * r23 * r34 + r14 * r24 * r34)) \
        / ((1 - r12 ** 2) * (1 - r34 ** 2))
    return _zou_limits(r12, r34, c, n, ci_level)


def zou_ci_overlap(r12: float, r13: float, r23: float, n: int, ci_level: float = 0.95) -> tuple[float, float]:
    """Zou's CI for ρ12 − ρ13, two overlapping correlations (shared variable 1).

    For a clinical score measured once and correlated with a brain measure from each
    arm. c = corr(r12, r13) = [(r23 − ½ r12 r13)(1 − r12² − r13² − r23²) + r23³] /
    [(1 − r12²)(1 − r13²)] (:footcite:t:`zou2007`, eq. 16); limits as in
    :func:`zou_ci_nonoverlap`. Matches ``cocor.dep.groups.overlap(..., test="zou2007")``.

    Parameters
    ----------
    r12, r13 : float
        The two correlations compared (sharing variable 1).
    r23 : float
        Correlation of the two non-shared variables.
    n, ci_level
        Sample size and confidence level, as in :func:`zou_ci_nonoverlap`.

    Returns
    -------
    (low, high) : tuple of float
        Limits for ρ12 − ρ13.

    References
    ----------
    .. footbibliography::

    Examples
    --------
    >>> [round(v, 3) for v in zou_ci_overlap(.396, .179, .088, n=66)]
    [-0.093, 0.517]
    """
    c = ((r23 - 0.5 * r12 * r13) * (1 - r12 ** 2 - r13 ** 2 - r23 ** 2) + r23 ** 3) \
        / ((1 - r12 ** 2) * (1 - r13 ** 2))
    return _zou_limits(r12, r13, c, n, ci_level)


@fill_doc
def permutation_arm_difference(x_a, y_a, x_b, y_b, method: str = "pearson", n_arm_swaps: int = 5000,
                               rng=None) -> dict:
    """Permutation test of r(x_a, y_a) − r(x_b, y_b) by swapping arm labels within subject.

    A permutation test :footcite:p:`good2005`. Under H0 (the two arms' correlations are
    equal and the arms exchangeable within a participant), swapping a participant's (x, y)
    pair between arms leaves the distribution of the difference unchanged. Each variable is
    z-scored within arm first, so differences in arm means or spreads (e.g. naltrexone
    shifting ΔCBF) do not enter the test; correlations are unchanged by this. Exact
    enumeration of all 2^n swaps when 2^n <= n_arm_swaps, else ``n_arm_swaps`` random swaps
    with p = (1 + b) / (1 + n_arm_swaps) :footcite:p:`phipson2010`. Two-sided (absolute
    difference).

    Parameters
    ----------
    x_a, y_a, x_b, y_b : array_like
        Values of the same n participants (same order) in arm a and arm b.
    %(corr_method)s
    %(n_arm_swaps)s
    rng : numpy.random.Generator or int, optional
        Random generator, or the seed of one (:func:`ketamine_cbf.stattools.rng`; None: 0).

    Returns
    -------
    dict
        ``diff`` (observed r_a − r_b), ``p``, ``n_arm_swaps`` (swaps evaluated),
        ``exact`` (bool).

    References
    ----------
    .. footbibliography::
    """
    f = corr_kernel(method)
    xa, ya, xb, yb = (zscore(v) for v in (x_a, y_a, x_b, y_b))
    n = len(xa)
    obs = float(f(xa, ya) - f(xb, yb))
    exact = n <= 30 and 2 ** n <= n_arm_swaps
    if exact:
        swap = ((np.arange(2 ** n)[:, None] >> np.arange(n)) & 1).astype(bool)
    else:
        swap = generator(rng).random((n_arm_swaps, n)) < 0.5
    pa_x, pa_y = np.where(swap, xb, xa), np.where(swap, yb, ya)
    pb_x, pb_y = np.where(swap, xa, xb), np.where(swap, ya, yb)
    null = f(pa_x, pa_y, axis=1) - f(pb_x, pb_y, axis=1)
    b = int(np.sum(np.abs(null) >= abs(obs) - 1e-12))
    p = b / len(null) if exact else (1 + b) / (1 + n_arm_swaps)
    return {"diff": obs, "p": float(p), "n_arm_swaps": int(len(null)), "exact": bool(exact)}


def _paired_values(measures: pd.DataFrame, x: str, y: str, arms) -> tuple[pd.DataFrame, pd.Series, list]:
    """Wide (participant x (variable, arm)) table, the complete-case mask and its columns."""
    a, b = arms
    wide = measures[measures["arm"].isin(arms)].pivot_table(
        index="participant_id", columns="arm", values=[x, y], aggfunc="first")
    cols = [(x, a), (y, a), (x, b), (y, b)]
    for c in cols:
        if c not in wide.columns:
            wide[c] = np.nan
    return wide, wide[cols].notna().all(axis=1), cols


def _boot_diff_ci(xa, ya, xb, yb, f, n_boot: int, ci_level: float, rng) -> tuple[float, float]:
    """Paired bootstrap BCa CI of r(x_a, y_a) − r(x_b, y_b) (participants resampled)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = stats.bootstrap((xa, ya, xb, yb),
                              lambda p, q, s, t, axis=-1: f(p, q, axis=axis) - f(s, t, axis=axis),
                              paired=True, vectorized=True, n_resamples=n_boot,
                              confidence_level=ci_level, method="BCa", rng=rng)
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _one_comparison(measures, method, x, y, arms, n_arm_swaps, n_boot, ci_level, seed) -> dict:
    """r in each arm, their difference, Zou and bootstrap CIs and the permutation p of one pair."""
    a, b = arms
    f = corr_kernel(method)
    wide, ok, cols = _paired_values(measures, x, y, arms)
    row = {"method": method, "x": x, "y": y, "n_paired": int(ok.sum()),
           "excluded": join_ids(set(measures["participant_id"]) - set(wide.index[ok]))}
    if row["n_paired"] < 5:
        return row
    xa, ya, xb, yb = (wide.loc[ok, c].to_numpy(float) for c in cols)
    row[f"r_{a}"], row[f"r_{b}"] = float(f(xa, ya)), float(f(xb, yb))
    perm = permutation_arm_difference(xa, ya, xb, yb, method, n_arm_swaps, stream(seed, 2, method, x, y))
    row.update(diff=perm["diff"], p_perm=perm["p"], exact=perm["exact"])
    if method == "pearson":
        r = np.corrcoef([xa, ya, xb, yb])
        row["zou_ci_low"], row["zou_ci_high"] = zou_ci_nonoverlap(
            r[0, 1], r[2, 3], r[0, 2], r[0, 3], r[1, 2], r[1, 3], row["n_paired"], ci_level)
    if n_boot:
        row["boot_ci_low"], row["boot_ci_high"] = _boot_diff_ci(
            xa, ya, xb, yb, f, n_boot, ci_level, stream(seed, 3, method, x, y))
    return row


@fill_doc
def compare_arms(measures: pd.DataFrame, pairs=None, methods=("pearson", "spearman"),
                 arms=ARMS, n_arm_swaps: int = 5000, n_boot: int = 5000, ci_level: float = 0.95,
                 fdr_alpha: float = 0.05, seed: int = 20261126) -> pd.DataFrame:
    """Do the brain-behaviour correlations differ between arms? (The test the claim needs.)

    For each pair, on the participants with both values in both arms (paired
    subset): r under each arm, their difference (first arm − second), the CI of
    :footcite:t:`zou2007` (Pearson only: :func:`zou_ci_nonoverlap`), a paired bootstrap BCa
    CI of the difference (participants resampled with both arms; :footcite:t:`wilcox2009`),
    and the within-subject arm-swap permutation p (:func:`permutation_arm_difference`),
    with Benjamini-Hochberg FDR over the pairs, per method.

    Parameters
    ----------
    %(measures)s
    %(pairs)s
    methods : tuple of {"pearson", "spearman"}
    arms : (str, str)
        The two arms compared (default :data:`ketamine_cbf.study.ARMS`).
    %(n_arm_swaps)s
    %(n_boot)s
        0 skips the bootstrap CI.
    %(ci_level)s
    %(fdr_alpha)s
    %(seed)s
        Each pair gets its own streams (``stattools.rng(seed, 4, 2 or 3, method, x, y)``).

    Returns
    -------
    pandas.DataFrame
        One row per method x pair: ``method``, ``x``, ``y``, ``n_paired``,
        ``r_<arm a>``, ``r_<arm b>``, ``diff``, ``zou_ci_low``, ``zou_ci_high``,
        ``boot_ci_low``, ``boot_ci_high``, ``p_perm``, ``exact``, ``q_fdr``,
        ``significant_fdr``, ``excluded`` (IDs without complete data in both arms).

    References
    ----------
    .. footbibliography::
    """
    a, b = arms
    rows = [_one_comparison(measures, method, x, y, arms, n_arm_swaps, n_boot, ci_level, seed)
            for method in methods for x, y in as_pairs(pairs)]
    return table_with_fdr(rows, ["method", "x", "y", "n_paired", f"r_{a}", f"r_{b}", "diff",
                                 "zou_ci_low", "zou_ci_high", "boot_ci_low", "boot_ci_high",
                                 "p_perm", "exact", "q_fdr", "significant_fdr", "excluded"],
                          "p_perm", fdr_alpha)
