"""Group level: correlation of each group ΔCBF map with each PET map, naive and null-model p.

For each contrast, PET map and correlation measure: the correlation across parcels, its
naive parametric p (independent parcels assumed) and, for each spatial null model, the
two-sided Monte-Carlo p against the correlations of the null maps of the ΔCBF map
(:func:`ketamine_cbf.stattools.monte_carlo_p`, +1 correction), as neuromaps'
``compare_images(src, trg, nulls=...)`` :footcite:p:`markello2022`; Benjamini-Hochberg FDR
:footcite:p:`benjamini1995` (:func:`ketamine_cbf.stattools.fdr`) across the PET maps within
contrast, measure and test. The tables shown in the stage notebook are derived here as well.

References
----------
.. footbibliography::
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ketamine_cbf._docs import fill_doc
from ketamine_cbf.receptors import _docs  # noqa: F401  (registers stage 5's parameter texts)
from ketamine_cbf.receptors._utils import common_parcels, naive_p, with_fdr
from ketamine_cbf.receptors.nulls import correlate, null_correlations
from ketamine_cbf.stattools import monte_carlo_p

__all__ = ["METHODS", "TABLE_COLUMNS", "correlation_table", "null_correlation_table",
           "summary_table", "significant_pairs"]

#: Correlation measures (Spearman is JuSpace's and neuromaps' usual choice).
METHODS = ("spearman", "pearson")

#: Columns of :func:`correlation_table`, in order.
TABLE_COLUMNS = ["contrast", "receptor", "method", "null_model", "n_parcels", "r", "p", "p_fdr",
                 "significant", "n_nulls", "null_mean", "null_sd", "null_q025", "null_q975"]


@fill_doc
def correlation_table(effects: pd.DataFrame, pet: pd.DataFrame, nulls: dict | None = None, *,
                      methods, fdr_alpha: float = 0.05, return_nulls: bool = False):
    """Correlations of effect maps with PET maps, naive and null-model p, FDR.

    Parameters
    ----------
    effects : pandas.DataFrame
        Parcels x effect maps (e.g. group ΔCBF per contrast).
    %(receptors.pet)s
        Same parcels as ``effects``; parcels with NaN in either are dropped.
    nulls : dict, optional
        ``(effect map, model) -> (n, N)`` null maps of the *effect* map on the parcels of
        ``effects`` (:func:`ketamine_cbf.receptors.nulls.make_nulls`).
    %(methods)s
    %(fdr_alpha)s
    return_nulls : bool
        Also return the null correlations ``(effect, model, method) -> (n, n_pet)``.

    Returns
    -------
    table : pandas.DataFrame
        One row per effect map x PET map x method x null model (``naive`` rows for the
        parametric test), columns :data:`TABLE_COLUMNS`: ``p_fdr`` is BH across the PET
        maps within contrast, method and null model; ``null_*`` summarise the null
        correlations.
    null_r : dict, only if ``return_nulls``

    Notes
    -----
    p (null model) = ``(1 + #{|r_null| >= |r|}) / (n_null + 1)``; Spearman nulls are the
    Spearman correlations of the null maps (ranked), unlike neuromaps 0.0.7's
    ``compare_images`` which correlates unranked nulls with the ranked target
    (netneurolab/neuromaps PR #224).
    """
    keep = common_parcels(effects, pet)
    E, P = effects.loc[keep], pet.loc[keep]
    pos = effects.index.get_indexer(keep)
    rows, null_r = [], {}
    for method in methods:
        r_obs = correlate(E.to_numpy(float).T, P.to_numpy(float).T, method)
        for i, c in enumerate(E.columns):
            rows.append(_naive_rows(c, P, method, r_obs[i]))
            for (name, model), nm in (nulls or {}).items():
                if name == c:
                    nr = null_correlations(np.asarray(nm)[:, pos], P.to_numpy(float), method)
                    null_r[(c, model, method)] = nr
                    rows.append(_null_rows(c, P, method, model, r_obs[i], nr))
    table = with_fdr(pd.concat(rows, ignore_index=True), ["contrast", "method", "null_model"], fdr_alpha)
    table = table.reindex(columns=TABLE_COLUMNS)
    return (table, null_r) if return_nulls else table


def _naive_rows(contrast, P, method, r) -> pd.DataFrame:
    """Rows of one contrast and method for the parametric test."""
    return pd.DataFrame({"contrast": contrast, "receptor": list(P.columns), "method": method,
                         "null_model": "naive", "n_parcels": len(P), "r": r,
                         "p": naive_p(r, len(P)), "n_nulls": 0})


def _null_rows(contrast, P, method, model, r, nr) -> pd.DataFrame:
    """Rows of one contrast, method and null model: p and a summary of the null correlations."""
    return pd.DataFrame({
        "contrast": contrast, "receptor": list(P.columns), "method": method,
        "null_model": model, "n_parcels": len(P), "r": r,
        "p": monte_carlo_p(r, nr), "n_nulls": nr.shape[0],
        "null_mean": nr.mean(0), "null_sd": nr.std(0, ddof=1),
        "null_q025": np.quantile(nr, 0.025, axis=0),
        "null_q975": np.quantile(nr, 0.975, axis=0)})


def null_correlation_table(null_r: dict, pet_names,
                           quantiles=(0.005, 0.025, 0.5, 0.975, 0.995)) -> pd.DataFrame:
    """Summary of null correlation distributions (one row per contrast/model/method/PET map).

    Parameters
    ----------
    null_r : dict
        ``(contrast, model, method) -> (n, n_pet)`` (:func:`correlation_table` with
        ``return_nulls``).
    pet_names : sequence of str
        Names of the PET maps (columns of the null arrays).
    quantiles : sequence of float
        Quantiles reported (column ``q<100 q>``, e.g. ``q2_5``).

    Returns
    -------
    pandas.DataFrame
        ``contrast``, ``null_model``, ``method``, ``receptor``, ``n_nulls``, ``mean``,
        ``sd`` and the quantiles.
    """
    rows = []
    for (c, model, method), nr in null_r.items():
        for j, rec in enumerate(pet_names):
            v = nr[:, j]
            row = {"contrast": c, "null_model": model, "method": method, "receptor": rec,
                   "n_nulls": v.size, "mean": v.mean(), "sd": v.std(ddof=1)}
            row.update({f"q{q * 100:g}".replace(".", "_"): np.quantile(v, q) for q in quantiles})
            rows.append(row)
    return pd.DataFrame(rows)


@fill_doc
def summary_table(table: pd.DataFrame, method: str) -> pd.DataFrame:
    """One row per contrast and PET map: r and the FDR q of every test, for one measure.

    Parameters
    ----------
    table : pandas.DataFrame
        :func:`correlation_table` output.
    %(receptors.method)s

    Returns
    -------
    pandas.DataFrame
        ``contrast``, ``receptor``, ``p_fdr_naive``, ``p_fdr_<model>`` per null model,
        ``r (<method>)``.
    """
    primary = table[table["method"] == method]  # one method: pivot refuses duplicates
    models = list(dict.fromkeys(primary["null_model"]))
    wide = primary.pivot(index=["contrast", "receptor"], columns="null_model", values="p_fdr")
    wide = wide.add_prefix("p_fdr_").reindex(
        index=pd.MultiIndex.from_frame(primary[["contrast", "receptor"]].drop_duplicates()),
        columns=[f"p_fdr_{m}" for m in ["naive", *[m for m in models if m != "naive"]]])
    r = primary[primary["null_model"] == "naive"].set_index(["contrast", "receptor"])["r"]
    out = wide[wide.index.isin(r.index)].join(r.rename(f"r ({method})"))
    return out.rename_axis(columns=None).reset_index()


@fill_doc
def significant_pairs(table: pd.DataFrame, method: str, among) -> list[tuple[str, str]]:
    """(contrast, PET map) pairs significant after FDR under at least one null model.

    Parameters
    ----------
    table : pandas.DataFrame
        :func:`correlation_table` output; its ``significant`` column (FDR) is read for
        every null model.
    %(receptors.method)s
    among : sequence of str
        Contrasts to consider.

    Returns
    -------
    list of (str, str)
        In table order.
    """
    sig = table[(table["method"] == method) & (table["null_model"] != "naive")]
    sig = sig.groupby(["contrast", "receptor"], sort=False)["significant"].any()
    return [k for k, v in sig.items() if v and k[0] in among]
