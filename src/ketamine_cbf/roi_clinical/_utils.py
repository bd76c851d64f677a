"""Private kernels of stage 4: vectorised correlations, ID lists, seed streams, FDR tables.

Shared by :mod:`~ketamine_cbf.roi_clinical.correlations`,
:mod:`~ketamine_cbf.roi_clinical.arm_differences` and the other modules of the stage; not
part of the public API.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ketamine_cbf import stattools
from ketamine_cbf.errors import InputError
from ketamine_cbf.study import STAGE_NUMBERS

#: First key of every random stream of this stage (after the master seed).
STAGE_NUMBER = STAGE_NUMBERS["04_roi_clinical"]


def join_ids(values) -> str:
    """Sorted, de-duplicated IDs as one comma-separated string."""
    return ", ".join(sorted(set(map(str, values))))


def pearson_vec(x, y, axis=-1):
    """Pearson r along ``axis`` (NaN where a variable is constant)."""
    xm = x - x.mean(axis=axis, keepdims=True)
    ym = y - y.mean(axis=axis, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (xm * ym).sum(axis=axis) / np.sqrt((xm ** 2).sum(axis=axis) * (ym ** 2).sum(axis=axis))


def spearman_vec(x, y, axis=-1):
    """Spearman rho along ``axis`` (Pearson r of the ranks, ties averaged)."""
    return pearson_vec(stats.rankdata(x, axis=axis), stats.rankdata(y, axis=axis), axis=axis)


#: Correlation method name -> vectorised kernel ``f(x, y, axis=-1)``.
CORR = {"pearson": pearson_vec, "spearman": spearman_vec}


def corr_kernel(method: str):
    """The vectorised kernel of ``method``; InputError for an unknown one."""
    if method not in CORR:
        raise InputError(f"correlation method must be 'pearson' or 'spearman' (got {method!r})")
    return CORR[method]


def zscore(a) -> np.ndarray:
    """``(a - mean) / SD`` (population SD)."""
    a = np.asarray(a, float)
    return (a - a.mean()) / a.std()


def stream(seed: int, *keys) -> np.random.Generator:
    """The generator of one test of this stage: ``stattools.rng(seed, 4, *keys)``.

    Strings among ``keys`` (method, x, y, arm) enter as their CRC-32, so a test's random
    stream does not depend on which other tests run or in which order.
    """
    return stattools.rng(int(seed), STAGE_NUMBER, *keys)


def generator(rng) -> np.random.Generator:
    """A generator from a Generator (returned as is) or an integer seed (None: 0)."""
    if isinstance(rng, np.random.Generator):
        return rng
    return stattools.rng(0 if rng is None else int(rng))


def table_with_fdr(rows: list[dict], columns: list[str], p_column: str, alpha: float) -> pd.DataFrame:
    """Rows as a table with ``columns`` (absent ones NaN) and BH FDR per ``method``.

    ``q_fdr`` and ``significant_fdr`` come from :func:`ketamine_cbf.stattools.fdr` of
    ``p_column`` within each correlation method (each method is its own family of tests).
    """
    t = pd.DataFrame(rows)
    for c in columns:
        if c not in t.columns:
            t[c] = np.nan
    t["q_fdr"], t["significant_fdr"] = np.nan, False
    for _, g in t.groupby("method"):
        rej, q = stattools.fdr(g[p_column], alpha)
        t.loc[g.index, "q_fdr"] = q
        t.loc[g.index, "significant_fdr"] = rej
    return t[columns]
