"""The study's claims, pair by pair: per-arm r next to the test of the arm difference, in
tables and plain sentences, and the published values next to ours.

Entry points of the notebook steps: :func:`claims_table` with :func:`describe_claims`,
and :func:`published_comparison`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ketamine_cbf._docs import fill_doc
from ketamine_cbf.stattools import fisher_ci
from ketamine_cbf.study import ARMS, PUBLISHED_CORRELATIONS
from ketamine_cbf.roi_clinical import _docs  # noqa: F401  (registers the stage's parameter texts)

__all__ = ["PUBLISHED_P", "PUBLISHED", "claims_table", "describe_claims", "published_comparison"]

#: The published p values as the paper prints them (the r values are
#: :data:`ketamine_cbf.study.PUBLISHED_CORRELATIONS`).
PUBLISHED_P = {
    ("pgACC_delta", "psi_delusional_thinking"): "0.004",
    ("pgACC_delta", "psi_perceptual_distortion"): "< 0.001",
    ("sgACC_baseline", "madrs_improvement"): "0.002",
    ("sgACC_baseline", "qids_sr_improvement"): "< 0.001",
}

#: The study's published placebo-arm correlations (GO-MARK, NCT04977674, medRxiv preprint
#: :footcite:p:`gomark2025`; n = 26), with columns ``x``, ``y``, ``arm``, ``published_r``,
#: ``published_p``.
#:
#: References
#: ----------
#: .. footbibliography::
PUBLISHED = pd.DataFrame([
    {"x": x, "y": y, "arm": "placebo", "published_r": r, "published_p": PUBLISHED_P[(x, y)]}
    for (x, y), r in PUBLISHED_CORRELATIONS.items()
])


def claims_table(corr: pd.DataFrame, diff: pd.DataFrame, method: str = "pearson") -> pd.DataFrame:
    """Per pair: r under each arm (with CI, FDR q) next to the test of their difference.

    Parameters
    ----------
    corr : pandas.DataFrame
        Output of :func:`ketamine_cbf.roi_clinical.correlations.brain_behaviour_correlations`.
    diff : pandas.DataFrame
        Output of :func:`ketamine_cbf.roi_clinical.arm_differences.compare_arms`.
    method : {"pearson", "spearman"}

    Returns
    -------
    pandas.DataFrame
        One row per pair: ``r_<arm>``, ``ci_<arm>`` (bootstrap, as text), ``q_<arm>``,
        ``difference``, ``zou_ci`` (text; "n/a" for Spearman), ``p_perm``,
        ``q_difference``.
    """
    c = corr[corr["method"] == method]
    d = diff[diff["method"] == method].set_index(["x", "y"])
    rows = []
    for (x, y), g in c.groupby(["x", "y"], sort=False):
        row = {"x": x, "y": y}
        for _, r in g.iterrows():
            row[f"r_{r['arm']}"] = r["r"]
            row[f"ci_{r['arm']}"] = f"[{r['ci_low']:.2f}, {r['ci_high']:.2f}]"
            row[f"q_{r['arm']}"] = r["q_fdr"]
        if (x, y) in d.index:
            dd = d.loc[(x, y)]
            row["difference"] = dd["diff"]
            row["zou_ci"] = f"[{dd['zou_ci_low']:.2f}, {dd['zou_ci_high']:.2f}]" \
                if np.isfinite(dd["zou_ci_low"]) else "n/a"
            row["p_perm"] = dd["p_perm"]
            row["q_difference"] = dd["q_fdr"]
        rows.append(row)
    return pd.DataFrame(rows)


def _significance(q, fdr_alpha: float) -> str:
    return "FDR-significant" if np.isfinite(q) and q < fdr_alpha else "not FDR-significant"


@fill_doc
def describe_claims(claims: pd.DataFrame, arms=ARMS, fdr_alpha: float = 0.05) -> list[str]:
    """One plain-language sentence per brain-behaviour pair of a claims table.

    States the per-arm r with CIs and, separately, whether the *difference* between
    arms is supported (permutation p, FDR) — the two are easily conflated
    :footcite:p:`gelman2006`.

    Parameters
    ----------
    claims : pandas.DataFrame
        Output of :func:`claims_table`.
    arms : (str, str)
        The two arms (default :data:`ketamine_cbf.study.ARMS`).
    %(fdr_alpha)s
        A q value below it is called significant.

    Returns
    -------
    list of str

    References
    ----------
    .. footbibliography::
    """
    a, b = arms
    out = []
    for _, r in claims.iterrows():
        s = (f"{r['x']} ~ {r['y']}: r = {r[f'r_{a}']:.2f} {r[f'ci_{a}']} under {a} "
             f"({_significance(r.get(f'q_{a}', np.nan), fdr_alpha)}), "
             f"r = {r[f'r_{b}']:.2f} {r[f'ci_{b}']} under {b} "
             f"({_significance(r.get(f'q_{b}', np.nan), fdr_alpha)}); ")
        if np.isfinite(r.get("difference", np.nan)):
            differ = np.isfinite(r["q_difference"]) and r["q_difference"] < fdr_alpha
            s += (f"difference {r['difference']:+.2f}, Zou 95% CI {r['zou_ci']}, permutation "
                  f"p = {r['p_perm']:.3f} (FDR q = {r['q_difference']:.3f}): the arms "
                  + ("differ." if differ else "are not shown to differ."))
        out.append(s)
    return out


def _ours(c: pd.DataFrame, pub) -> dict:
    """Our n, r, CI, p and q of a published test, and our r under the other arm."""
    key = (pub["x"], pub["y"], pub["arm"])
    if key not in c.index:
        return {}
    r = c.loc[key]
    out = {"our_n": int(r["n"]), "our_r": r["r"], "our_ci95": f"[{r['ci_low']:.2f}, {r['ci_high']:.2f}]",
           "our_p": r["p"], "our_q_fdr": r["q_fdr"]}
    other = [a for a in ARMS if a != pub["arm"]]
    if other and (pub["x"], pub["y"], other[0]) in c.index:
        out[f"our_r_{other[0]}"] = c.loc[(pub["x"], pub["y"], other[0]), "r"]
    return out


def _our_difference(diff: pd.DataFrame | None, method: str, pub) -> dict:
    """Our arm difference, Zou CI and permutation p of a published test."""
    if diff is None:
        return {}
    d = diff[(diff["method"] == method) & (diff["x"] == pub["x"]) & (diff["y"] == pub["y"])]
    if not len(d):
        return {}
    d = d.iloc[0]
    return {"arm_difference": d["diff"],
            "arm_difference_zou_ci95": f"[{d['zou_ci_low']:.2f}, {d['zou_ci_high']:.2f}]",
            "arm_difference_p_perm": d["p_perm"]}


def published_comparison(corr: pd.DataFrame, diff: pd.DataFrame | None = None,
                         method: str = "pearson", data_label: str = "simulated",
                         published: pd.DataFrame | None = None, published_n: int = 26) -> pd.DataFrame:
    """The study's published r and p next to ours, labelled with the data source.

    The published 95% CI is not reported in the paper; it is computed here from r with
    the Fisher z transform assuming n = ``published_n`` (labelled as such).

    Parameters
    ----------
    corr : pandas.DataFrame
        Output of :func:`ketamine_cbf.roi_clinical.correlations.brain_behaviour_correlations`.
    diff : pandas.DataFrame, optional
        Output of :func:`ketamine_cbf.roi_clinical.arm_differences.compare_arms`.
    method : {"pearson", "spearman"}
    data_label : str
        Where our numbers come from (``"simulated"`` or ``"real"``).
    published : pandas.DataFrame, optional
        Published values (default :data:`PUBLISHED`).
    published_n : int
        Sample size assumed for the published CI.

    Returns
    -------
    pandas.DataFrame
        ``test``, ``arm``, ``published_r``, ``published_p``,
        ``published_ci95_fisher``, ``data``, ``our_n``, ``our_r``, ``our_ci95``
        (bootstrap), ``our_p``, ``our_q_fdr``, ``our_r_naltrexone``, and, if
        ``diff`` is given, ``arm_difference`` with Zou CI and permutation p.
    """
    published = PUBLISHED if published is None else published
    c = corr[corr["method"] == method].set_index(["x", "y", "arm"])
    rows = []
    for _, pub in published.iterrows():
        lo, hi = fisher_ci(pub["published_r"], published_n)
        row = {"test": f"{pub['x']} ~ {pub['y']}", "arm": pub["arm"],
               "published_r": pub["published_r"], "published_p": pub["published_p"],
               "published_ci95_fisher": f"[{lo:.2f}, {hi:.2f}] (n = {published_n} assumed)",
               "data": data_label}
        row.update(_ours(c, pub))
        row.update(_our_difference(diff, method, pub))
        rows.append(row)
    return pd.DataFrame(rows)
