"""Crossover models of ROI CBF: does naltrexone change ketamine's effect on ACC CBF?

A linear mixed model (statsmodels ``MixedLM``: arm x time + period + order, random
intercept per participant, variance component per session) next to the classical two-way
repeated-measures ANOVA (pingouin ``rm_anova``), each unadjusted and adjusted for global
CBF. ΔCBF = CBF during infusion − CBF before infusion (same session).

Entry point of the notebook step: :func:`fit_crossover_models` (with
:func:`fixed_effects` for its display); :func:`crossover_models` fits without writing.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from ketamine_cbf._docs import fill_doc
from ketamine_cbf.errors import InputError
from ketamine_cbf.io import provenance
from ketamine_cbf.progress import progress
from ketamine_cbf.roi_clinical import _docs  # noqa: F401  (registers the stage's parameter texts)

__all__ = ["TERM_LABELS", "crossover_mixedlm", "crossover_rm_anova", "crossover_models",
           "fit_crossover_models", "fixed_effects"]

#: Fixed-effect term -> readable label.
TERM_LABELS = {
    "Intercept": "intercept (placebo, pre-infusion, period 1, order PN)",
    "naltrexone": "naltrexone vs placebo (pre-infusion)",
    "during": "ketamine: during vs pre (placebo)",
    "naltrexone:during": "naltrexone x ketamine interaction",
    "period2": "period 2 vs period 1",
    "order_np": "order NP vs PN",
    "global_c": "global GM CBF (per ml/100 g/min, centred)",
    "during_naltrexone": "ketamine: during vs pre (naltrexone)",
}


def _design_columns(df: pd.DataFrame) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Add 0/1 coding columns for arm, time, period and order; return usable terms + notes."""
    d = df.copy()
    d["naltrexone"] = (d["arm"] == "naltrexone").astype(float)
    d["during"] = (d["timepoint"] == "during").astype(float)
    terms, notes = ["naltrexone * during"], []
    per = d["period"].astype(str)
    if per.isin(["1", "2"]).all() and per.nunique() == 2:
        d["period2"] = (per == "2").astype(float)
        terms.append("period2")
        first = d[per == "1"].groupby("participant_id")["arm"].first()
        d["order_np"] = d["participant_id"].map(first.eq("naltrexone").astype(float))
        if d["order_np"].notna().all() and d["order_np"].nunique() == 2:
            terms.append("order_np")
        else:
            notes.append("order term omitted (one order only, or a participant without period 1)")
    else:
        notes.append("period/order terms omitted (period not 1/2 for every scan)")
    return d, terms, notes


def _model_data(roi_values: pd.DataFrame, roi: str, dv: str) -> pd.DataFrame:
    """Pre/during scans of one ROI that passed QC and have the dependent variable."""
    d = roi_values[(roi_values["roi"] == roi) & roi_values["timepoint"].isin(["pre", "during"])]
    if "qc_pass" in d.columns:
        d = d[d["qc_pass"].astype(bool)]
    return d.dropna(subset=[dv])


def _fit_mixedlm(d: pd.DataFrame, dv: str, terms: list[str]):
    """REML fit on ``dv`` / SD (rescaled below); returns (result, scale, warning notes).

    Relative CBF is ~1 with variances ~1e-3, which stalls the optimiser; the model is
    linear, so fixed effects and SEs scale by the SD and variances by its square.
    """
    import statsmodels.formula.api as smf

    s = float(d[dv].std()) or 1.0
    d = d.assign(_y=d[dv] / s)
    model = smf.mixedlm("_y ~ " + " + ".join(terms), d, groups=d["participant_id"], re_formula="1",
                        vc_formula={"session": "0 + C(session_id)"})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = model.fit(reml=True)
    msgs = sorted({str(w.message).splitlines()[0] for w in caught
                   if "Convergence" in type(w.category).__name__ or "converge" in str(w.message).lower()
                   or "boundary" in str(w.message).lower()})
    return res, s, msgs


def _effect_rows(res, s: float, ci_level: float) -> list[dict]:
    """Fixed effects (plus the derived ketamine effect under naltrexone) and variance components."""
    zq = stats.norm.ppf(0.5 + ci_level / 2)
    fe = res.fe_params * s
    cov = res.cov_params().iloc[:res.k_fe, :res.k_fe] * s ** 2
    rows = [(name, float(fe[name]), float(np.sqrt(cov.loc[name, name]))) for name in fe.index]
    if "naltrexone:during" in fe.index:  # derived: ketamine effect after naltrexone
        c = pd.Series(0.0, index=fe.index)
        c["during"] = c["naltrexone:during"] = 1.0
        rows.append(("during_naltrexone", float(c @ fe), float(np.sqrt(c @ cov @ c))))
    out = []
    for name, est, se in rows:
        z = est / se if se > 0 else np.nan
        out.append({"term": name, "label": TERM_LABELS.get(name, name), "estimate": est, "se": se,
                    "z": z, "p": 2 * stats.norm.sf(abs(z)), "ci_low": est - zq * se,
                    "ci_high": est + zq * se})
    vc = {"subject variance": float(res.cov_re.iloc[0, 0]) * s ** 2,
          "session variance": float(np.asarray(res.vcomp)[0]) * s ** 2 if len(res.vcomp) else np.nan,
          "residual variance": float(res.scale) * s ** 2}
    for name, v in vc.items():
        out.append({"term": name.replace(" ", "_"), "label": name, "estimate": v, "se": np.nan,
                    "z": np.nan, "p": np.nan, "ci_low": np.nan, "ci_high": np.nan})
    return out


@fill_doc
def crossover_mixedlm(roi_values: pd.DataFrame, roi: str, adjustment: str = "none",
                      ci_level: float = 0.95) -> pd.DataFrame:
    """Linear mixed model of ROI CBF in the crossover: arm x time + period + order.

    ``y ~ naltrexone * during + period2 + order_np [+ global_c]`` with a random
    intercept per participant and a variance component per session within participant
    (scans nested in sessions nested in participants), fitted by REML (statsmodels
    ``MixedLM``). ``naltrexone x during`` is the test of whether naltrexone changes the
    ketamine response; ``order`` (sequence) is the between-subject term of the 2 x 2
    crossover, aliased with the arm x period (carry-over) interaction :footcite:p:`senn2002`.
    Wald z tests and CIs from the REML fit.

    Parameters
    ----------
    %(roi_values)s
    roi : str
        ROI to model.
    adjustment : {"none", "ratio", "ancova"}
        Global-CBF adjustment: none (ROI CBF, ml/100 g/min); ratio (relative CBF =
        ROI / global GM CBF, proportional scaling); ancova (global GM CBF, centred, as a
        covariate; :footcite:t:`friston1990`). Ketamine raises global CBF, so adjusted
        models ask whether the ROI changes *more than the whole brain*.
    %(ci_level)s

    Returns
    -------
    pandas.DataFrame
        One row per fixed effect (plus the derived ketamine effect under naltrexone
        and the variance components): ``roi``, ``adjustment``, ``term``, ``label``,
        ``estimate``, ``se``, ``z``, ``p``, ``ci_low``, ``ci_high``, ``units``,
        ``n_obs``, ``n_subjects``, ``converged``, ``notes``.

    Raises
    ------
    InputError
        An unknown adjustment, or fewer than 3 participants with usable scans.

    References
    ----------
    .. footbibliography::
    """
    if adjustment not in ("none", "ratio", "ancova"):
        raise InputError(f"global adjustment must be 'none', 'ratio' or 'ancova' (got {adjustment!r})")
    dv = "rcbf" if adjustment == "ratio" else "cbf"
    d = _model_data(roi_values, roi, dv)
    if d["participant_id"].nunique() < 3:
        raise InputError(f"ROI {roi}: fewer than 3 participants with usable scans")
    d, terms, notes = _design_columns(d)
    if adjustment == "ancova":
        d["global_c"] = d["global_gm_cbf"] - d["global_gm_cbf"].mean()
        terms.append("global_c")
    res, s, msgs = _fit_mixedlm(d, dv, terms)
    t = pd.DataFrame(_effect_rows(res, s, ci_level))
    t.insert(0, "adjustment", adjustment)
    t.insert(0, "roi", roi)
    t["units"] = "relative (ROI / global)" if dv == "rcbf" else "ml/100 g/min"
    t["n_obs"] = int(res.nobs)
    t["n_subjects"] = int(d["participant_id"].nunique())
    t["converged"] = bool(res.converged)
    t["notes"] = "; ".join(notes + msgs)
    return t


@fill_doc
def crossover_rm_anova(roi_values: pd.DataFrame, roi: str, adjustment: str = "none") -> tuple[pd.DataFrame, list[str]]:
    """Two-way repeated-measures ANOVA (arm x time) of ROI CBF (pingouin ``rm_anova``).

    The classical analysis of the same design (pingouin, :footcite:t:`vallat2018`); needs
    every participant in all four cells (arm x time), so participants with a missing scan
    are left out and returned by ID. It has no period, order or covariate terms: global
    adjustment is available as ``ratio`` only.

    Parameters
    ----------
    %(roi_values)s
    roi : str
        ROI to analyse.
    adjustment : {"none", "ratio"}
        Dependent variable ``cbf`` or ``rcbf``.

    Returns
    -------
    table : pandas.DataFrame
        pingouin's ANOVA table (``Source``, ``SS``, ``ddof1``, ``ddof2``, ``MS``, ``F``,
        ``p_unc``, ``ng2``, ...) with ``roi``, ``adjustment``, ``n_subjects``.
    excluded : list of str
        Participants without all four cells.

    Raises
    ------
    InputError
        An unknown adjustment.

    References
    ----------
    .. footbibliography::
    """
    import pingouin as pg

    if adjustment not in ("none", "ratio"):
        raise InputError(f"rm_anova global adjustment must be 'none' or 'ratio' (got {adjustment!r})")
    dv = "rcbf" if adjustment == "ratio" else "cbf"
    d = _model_data(roi_values, roi, dv)
    cells = d.groupby("participant_id").apply(lambda g: len(set(zip(g["arm"], g["timepoint"]))),
                                              include_groups=False)
    complete = cells[cells == 4].index
    excluded = sorted(set(roi_values["participant_id"]) - set(complete))
    d = d[d["participant_id"].isin(complete)]
    d = d.groupby(["participant_id", "arm", "timepoint"], as_index=False)[dv].mean()
    t = pg.rm_anova(data=d, dv=dv, within=["arm", "timepoint"], subject="participant_id")
    t.insert(0, "adjustment", adjustment)
    t.insert(0, "roi", roi)
    t["n_subjects"] = len(complete)
    return t, excluded


def _comparison_row(roi: str, adj: str, g: pd.DataFrame, a: pd.DataFrame) -> dict:
    """MixedLM ketamine and interaction effects next to the RM ANOVA's F and p."""
    g = g.set_index("term")
    row = {"roi": roi, "adjustment": adj, "units": g["units"].iloc[0]}
    for term, short in (("during", "ketamine_placebo"), ("during_naltrexone", "ketamine_naltrexone"),
                        ("naltrexone:during", "interaction")):
        for col in ("estimate", "ci_low", "ci_high", "p"):
            row[f"mixedlm_{short}_{col}"] = g.loc[term, col]
    a = a.set_index("Source")
    for src, short in (("timepoint", "time"), ("arm * timepoint", "interaction")):
        row[f"rm_anova_{short}_F"] = a.loc[src, "F"] if src in a.index else np.nan
        row[f"rm_anova_{short}_p"] = a.loc[src, "p_unc"] if src in a.index else np.nan
    row["mixedlm_n_subjects"] = g["n_subjects"].iloc[0]
    row["rm_anova_n_subjects"] = a["n_subjects"].iloc[0] if len(a) else np.nan
    row["mixedlm_converged"] = g["converged"].iloc[0]
    return row


@fill_doc
def crossover_models(roi_values: pd.DataFrame, rois=None, adjustments=("none", "ratio", "ancova"),
                     exclude_qc_fail: bool = True) -> dict[str, pd.DataFrame]:
    """Fit the mixed model and the RM ANOVA for every ROI and adjustment; compare them.

    Parameters
    ----------
    %(roi_values)s
    rois : list of str, optional
        ROIs to model (default: all in the table).
    adjustments : tuple of {"none", "ratio", "ancova"}
        Global-CBF adjustments (see :func:`crossover_mixedlm`); the RM ANOVA is fitted
        for "none" and "ratio" only.
    %(exclude_qc_fail)s
        False keeps every scan (``qc_pass`` is then ignored).

    Returns
    -------
    dict
        ``mixedlm`` (all fixed effects), ``rm_anova`` (pingouin tables),
        ``comparison`` (one row per ROI x adjustment: the ketamine effect under
        placebo and the naltrexone x ketamine interaction from MixedLM — estimate,
        CI, p — next to the RM ANOVA F and p of the time effect and the arm x time
        interaction), ``excluded`` (participants left out of the RM ANOVA).
    """
    if exclude_qc_fail and "qc_pass" in roi_values.columns:
        rv = roi_values[roi_values["qc_pass"].astype(bool)]
    else:
        rv = roi_values.assign(qc_pass=True)
    rois = list(rv["roi"].unique()) if rois is None else list(rois)
    mixed, anova, excl = [], [], []
    for roi in progress(rois, "[04_roi_clinical] crossover models", unit="ROI"):
        for adj in adjustments:
            mixed.append(crossover_mixedlm(rv, roi, adj))
            if adj != "ancova":
                t, ex = crossover_rm_anova(rv, roi, adj)
                anova.append(t)
                excl += [{"roi": roi, "adjustment": adj, "participant_id": p,
                          "reason": "not all four arm x time cells"} for p in ex]
    mixed = pd.concat(mixed, ignore_index=True)
    anova = pd.concat(anova, ignore_index=True)
    rows = [_comparison_row(roi, adj, g, anova[(anova["roi"] == roi) & (anova["adjustment"] == adj)])
            for (roi, adj), g in mixed.groupby(["roi", "adjustment"], sort=False)]
    return {"mixedlm": mixed, "rm_anova": anova, "comparison": pd.DataFrame(rows),
            "excluded": pd.DataFrame(excl, columns=["roi", "adjustment", "participant_id", "reason"])}


@fill_doc
def fit_crossover_models(roi_values: pd.DataFrame, output_dir,
                         exclude_qc_fail: bool = True) -> dict[str, pd.DataFrame]:
    """The stage's crossover models, with their full tables written as TSV.

    Fits :func:`crossover_models` and writes ``model_mixedlm.tsv`` (every fixed effect and
    variance component) and ``model_rm_anova.tsv`` (the pingouin tables) to ``output_dir``.

    Parameters
    ----------
    %(roi_values)s
    %(output_dir)s
    %(exclude_qc_fail)s

    Returns
    -------
    dict
        As :func:`crossover_models`.
    """
    fits = crossover_models(roi_values, exclude_qc_fail=exclude_qc_fail)
    provenance.write_tsv(Path(output_dir) / "model_mixedlm.tsv", fits["mixedlm"])
    provenance.write_tsv(Path(output_dir) / "model_rm_anova.tsv", fits["rm_anova"])
    return fits


def fixed_effects(mixedlm: pd.DataFrame, adjustment: str = "none") -> pd.DataFrame:
    """The fixed effects (not the variance components) of one global adjustment.

    Parameters
    ----------
    mixedlm : pandas.DataFrame
        The ``mixedlm`` table of :func:`crossover_models`.
    adjustment : {"none", "ratio", "ancova"}

    Returns
    -------
    pandas.DataFrame
        ``roi``, ``label``, ``estimate``, ``ci_low``, ``ci_high``, ``p``.
    """
    keep = (mixedlm["adjustment"] == adjustment) & mixedlm["se"].notna()
    return mixedlm.loc[keep, ["roi", "label", "estimate", "ci_low", "ci_high", "p"]]
