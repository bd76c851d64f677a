"""All PET maps together: multiple regression and dominance analysis, with null p.

A ΔCBF map is regressed on all PET maps at once (z-scored, ranked first for Spearman)
and the model's R² is split among the maps by general dominance
:footcite:p:`budescu1993,azen2003,hansen2022`: each map's average R² increment over all
sub-models. R², dominances and standardised betas are tested by refitting the model to
the spatial nulls of the ΔCBF map.

References
----------
.. footbibliography::
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats

from ketamine_cbf._docs import fill_doc
from ketamine_cbf.errors import InputError, UsageError
from ketamine_cbf.receptors import _docs  # noqa: F401  (registers stage 5's parameter texts)
from ketamine_cbf.stattools import monte_carlo_p

__all__ = ["dominance_analysis", "dominance_tables", "model_summary", "dominance_summary"]


def _r2_all_subsets(X, Y):
    """R^2 of the OLS fit of each column of ``Y`` on every non-empty subset of ``X``'s columns.

    ``X`` (N, p) and ``Y`` (N, m) must be column-centred. Row ``mask`` of the result is
    the subset whose bits are set (row 0, the empty model, is 0).
    """
    p = X.shape[1]
    ss = np.square(Y).sum(axis=0)
    out = np.zeros((2 ** p, Y.shape[1]))
    for mask in range(1, 2 ** p):
        cols = [j for j in range(p) if mask >> j & 1]
        Q, _ = np.linalg.qr(X[:, cols])
        out[mask] = np.square(Q.T @ Y).sum(axis=0) / ss
    return out


def _general_dominance(R2, p):
    """General dominance of each predictor from all-subset R^2.

    As defined by :footcite:t:`azen2003`: ``C_k(i)`` = mean over subsets ``S`` of size
    ``k`` without ``i`` of ``R2(S + i) - R2(S)``; general dominance = mean of ``C_k(i)``
    over ``k = 0..p-1``. The general dominances sum to the full model's R^2.

    References
    ----------
    .. footbibliography::
    """
    out = np.zeros((p,) + R2.shape[1:])
    for i in range(p):
        others = [j for j in range(p) if j != i]
        for k in range(p):
            incs = []
            for S in combinations(others, k):
                m = sum(1 << j for j in S)
                incs.append(R2[m | (1 << i)] - R2[m])
            out[i] += np.mean(incs, axis=0)
        out[i] /= p
    return out


def _prepare(a, method):
    """Columns z-scored (population SD), ranked first for Spearman."""
    a = np.asarray(a, dtype=float)
    if method == "spearman":
        a = stats.rankdata(a, axis=0)
    elif method != "pearson":
        raise UsageError(f"method must be 'spearman' or 'pearson' (got {method!r})")
    a = a - a.mean(axis=0)
    return a / a.std(axis=0)


def _check(yv, Xv):
    """Raise :class:`InputError` unless the map and predictors can be fitted."""
    if Xv.shape[0] != yv.size:
        raise InputError(f"dominance_analysis: {yv.size} parcels in the map, {Xv.shape[0]} in the predictors")
    if not (np.all(np.isfinite(Xv)) and np.all(np.isfinite(yv))):
        raise InputError("dominance_analysis: NaN in the map or predictors; drop those parcels first")
    n, p = Xv.shape
    if n <= p + 1:
        raise InputError(f"dominance_analysis: {n} parcels are too few for {p} predictors")


def _naive_ols(Z, y, beta, r2):
    """Parametric OLS p of each beta (t-test) and of R^2 (F-test), independent parcels."""
    n, p = Z.shape
    resid = y - Z @ beta
    sigma2 = resid @ resid / (n - p - 1)
    cov = sigma2 * np.linalg.inv(Z.T @ Z)
    t_beta = beta / np.sqrt(np.diag(cov))
    F = (r2 / p) / ((1 - r2) / (n - p - 1))
    return 2 * stats.t.sf(np.abs(t_beta), n - p - 1), stats.f.sf(F, p, n - p - 1)


@fill_doc
def dominance_analysis(y, X: pd.DataFrame, nulls=None,
                       method: str = "spearman") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Multiple regression of a map on all PET maps, with dominance analysis and null p.

    Dominance is general dominance :footcite:p:`azen2003`. Significance of the R^2, the
    dominances and the standardised betas is assessed by refitting the model to spatial
    nulls of ``y`` (the same null maps as the correlations): one-sided for R^2 and
    dominance, two-sided for betas, +1 correction.

    Parameters
    ----------
    y : (N,) array_like or pandas.Series
        Parcellated map (no NaN).
    X : pandas.DataFrame
        Parcels x predictors (no NaN).
    nulls : dict or (n, N) array, optional
        Null maps of ``y``; a dict ``model -> (n, N)`` for several null models.
    %(receptors.method)s

    Returns
    -------
    predictors : pandas.DataFrame
        ``method``, ``predictor``, ``beta``, ``dominance``, ``dominance_pct`` (share of
        R^2), ``r`` (zero-order), ``null_model``, ``p_beta``, ``p_dominance`` (one row per
        predictor x null model; ``naive`` rows carry the parametric OLS t-test p of beta).
    model : pandas.DataFrame
        ``method``, ``r2``, ``adj_r2``, ``n_parcels``, ``n_predictors``, ``null_model``,
        ``p`` (R^2 against the nulls; ``naive``: the F-test).

    Raises
    ------
    InputError
        Different numbers of parcels, NaN values, or too few parcels for the predictors.

    References
    ----------
    .. footbibliography::
    """
    Xv, yv = X.to_numpy(float), np.asarray(y, dtype=float).ravel()
    _check(yv, Xv)
    n, p = Xv.shape
    null_sets = nulls if isinstance(nulls, dict) else ({} if nulls is None else {"null": nulls})
    Z = _prepare(Xv, method)
    Y = _prepare(np.hstack([yv[:, None]] + [np.asarray(v, dtype=float).T for v in null_sets.values()]),
                 method)
    R2 = _r2_all_subsets(Z, Y)
    dom = _general_dominance(R2, p)
    beta = np.linalg.lstsq(Z, Y, rcond=None)[0]           # (p, 1 + sum n)
    full = (1 << p) - 1
    r2 = R2[full, 0]
    p_beta, p_F = _naive_ols(Z, Y[:, 0], beta[:, 0], r2)
    base = pd.DataFrame({"predictor": list(X.columns), "beta": beta[:, 0], "dominance": dom[:, 0],
                         "dominance_pct": 100 * dom[:, 0] / r2 if r2 > 0 else np.nan,
                         "r": (Z.T @ Y[:, 0]) / n})
    preds = [base.assign(null_model="naive", p_beta=p_beta, p_dominance=np.nan)]
    models = [{"null_model": "naive", "p": p_F}]
    start = 1
    for model, v in null_sets.items():
        sl = slice(start, start + np.asarray(v).shape[0])
        start = sl.stop
        preds.append(base.assign(
            null_model=model, p_beta=monte_carlo_p(beta[:, 0], beta[:, sl].T),
            p_dominance=monte_carlo_p(dom[:, 0], dom[:, sl].T, alternative="greater")))
        models.append({"null_model": model, "p": monte_carlo_p(r2, R2[full, sl], alternative="greater")})
    predictors = pd.concat(preds, ignore_index=True)
    predictors.insert(0, "method", method)
    adj = 1 - (1 - r2) * (n - 1) / (n - p - 1)
    model_table = pd.DataFrame([{"method": method, "r2": r2, "adj_r2": adj, "n_parcels": n,
                                 "n_predictors": p, **m} for m in models])
    return predictors, model_table


@fill_doc
def dominance_tables(group: pd.DataFrame, pet: pd.DataFrame, group_nulls: dict,
                     method: str = "spearman") -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`dominance_analysis` of every group map, with the map's nulls, stacked.

    Parameters
    ----------
    group : pandas.DataFrame
        Parcels x group ΔCBF maps (one column per contrast).
    %(receptors.pet)s
    group_nulls : dict
        ``(contrast, model) -> (n, N)`` null maps of the group maps.
    %(receptors.method)s

    Returns
    -------
    predictors, model : pandas.DataFrame
        As :func:`dominance_analysis`, with a last column ``contrast``.
    """
    dom_rows, model_rows = [], []
    for c in group.columns:
        pr, mo = dominance_analysis(group[c], pet, {m: v for (cc, m), v in group_nulls.items() if cc == c},
                                    method=method)
        dom_rows.append(pr.assign(contrast=c))
        model_rows.append(mo.assign(contrast=c))
    return pd.concat(dom_rows, ignore_index=True), pd.concat(model_rows, ignore_index=True)


def model_summary(model: pd.DataFrame) -> pd.DataFrame:
    """R², adjusted R² and the p of R² under each test, one row per contrast.

    Parameters
    ----------
    model : pandas.DataFrame
        The ``model`` table of :func:`dominance_tables` (one row per contrast and test,
        ``naive`` being the F-test).

    Returns
    -------
    pandas.DataFrame
        ``contrast``, ``r2``, ``adj_r2``, ``p_<test>`` per test.
    """
    return (model.pivot_table(index=["contrast", "r2", "adj_r2"], columns="null_model", values="p",
                              sort=False).add_prefix("p_").rename_axis(columns=None).reset_index())


def dominance_summary(predictors: pd.DataFrame) -> pd.DataFrame:
    """Beta, dominance, its share of R² and the null p of dominance per contrast and PET map.

    Parameters
    ----------
    predictors : pandas.DataFrame
        The ``predictors`` table of :func:`dominance_tables`.

    Returns
    -------
    pandas.DataFrame
        ``contrast``, ``predictor``, ``beta``, ``dominance``, ``dominance_pct``,
        ``p_dominance_<model>`` per null model.
    """
    nulls = predictors[predictors["null_model"] != "naive"]
    p_dom = nulls.pivot_table(index=["contrast", "predictor"], columns="null_model",
                              values="p_dominance", sort=False)
    naive = predictors[predictors["null_model"] == "naive"].set_index(["contrast", "predictor"])
    return (naive[["beta", "dominance", "dominance_pct"]].join(p_dom.add_prefix("p_dominance_"))
            .rename_axis(columns=None).reset_index())
