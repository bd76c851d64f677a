"""Private helpers shared by stage 5's statistics modules (not a public API).

Parcels present in every map (:func:`common_parcels`), the parametric p of a correlation
(:func:`naive_p`), Benjamini-Hochberg per family of a long table (:func:`with_fdr`) and
row standardisation for correlations by matrix product (:func:`standardise`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ketamine_cbf import stattools
from ketamine_cbf.errors import UsageError
from ketamine_cbf.receptors.nulls import rank_rows


def common_parcels(*frames) -> pd.Index:
    """Index entries of ``frames[0]`` where every frame has a finite value in every column."""
    idx = frames[0].index
    ok = np.ones(len(idx), bool)
    for f in frames:
        f = f.reindex(idx)
        ok &= np.all(np.isfinite(f.to_numpy(dtype=float)), axis=1)
    return idx[ok]


def naive_p(r, n):
    """Parametric two-sided p of a correlation with ``n - 2`` df (t distribution).

    Exact for Pearson under bivariate normality with independent samples; the usual
    large-sample approximation for Spearman (as ``scipy.stats.spearmanr``).
    """
    r = np.clip(np.asarray(r, dtype=float), -1 + 1e-15, 1 - 1e-15)
    t = r * np.sqrt((n - 2) / (1 - r ** 2))
    return 2 * stats.t.sf(np.abs(t), n - 2)


def with_fdr(table: pd.DataFrame, by: list, fdr_alpha: float) -> pd.DataFrame:
    """``table`` with ``p_fdr`` (BH q) and ``significant`` added, one family per ``by`` group.

    :func:`ketamine_cbf.stattools.fdr` over the ``p`` column of each group (NaN p: q NaN,
    not significant).
    """
    q = np.full(len(table), np.nan)
    reject = np.zeros(len(table), bool)
    for rows in table.groupby(by, sort=False).indices.values():
        reject[rows], q[rows] = stattools.fdr(table["p"].to_numpy(dtype=float)[rows], fdr_alpha)
    return table.assign(p_fdr=q, significant=reject)


def standardise(A, method: str) -> np.ndarray:
    """Rows of ``A`` centred and scaled to unit norm (ranked first for Spearman)."""
    A = np.atleast_2d(np.asarray(A, dtype=float))
    if method == "spearman":
        A = rank_rows(A)
    elif method != "pearson":
        raise UsageError(f"method must be 'spearman' or 'pearson' (got {method!r})")
    A = A - A.mean(axis=1, keepdims=True)
    return A / np.sqrt(np.square(A).sum(axis=1, keepdims=True))
