"""Brain-behaviour statistics of stage 4: crossover models of ROI CBF, per-arm
correlations with clinical scales, and the test of whether they differ between arms.

Sign conventions
----------------
* ΔCBF = CBF during infusion − CBF before infusion (same session), ml/100 g/min
  (or unitless for relative CBF, ``rcbf`` = ROI CBF / global grey-matter CBF).
* Day-1 improvement = baseline score − day-1 score (``madrs_improvement``,
  ``qids_sr_improvement``): **positive = fewer symptoms the day after ketamine**.
  A positive correlation of baseline sgACC CBF with improvement means higher baseline
  CBF goes with a larger antidepressant response (the study's claim).

Every function takes a DataFrame (or arrays) and returns a tidy DataFrame. Subjects
left out of any computation are listed by ID (``excluded`` columns, report tables,
warnings), never dropped silently; tables are always merged on IDs, never by position.

Hand-written here (no library provides them): Zou's (2007) confidence intervals for
the difference of dependent correlations and the within-subject arm-swap permutation
test. Correlations and p values come from pingouin, bootstrap intervals from
``scipy.stats.bootstrap`` (BCa), mixed models from statsmodels, repeated-measures ANOVA
from pingouin, FDR from statsmodels.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from ketamine_cbf.io.bids import read_tsv
from ketamine_cbf.errors import InputError

#: Phenotype files (``<bids>/phenotype/<name>.tsv``) and the columns this stage uses.
PHENOTYPE_COLUMNS = {
    "psi": ["psi_delusional_thinking", "psi_perceptual_distortion"],
    "cadss": ["cadss_total"],
    "madrs": ["madrs_baseline", "madrs_day1"],
    "qids_sr": ["qids_sr_baseline", "qids_sr_day1"],
}

#: Day-1 improvement scores derived from the phenotype (name -> (baseline, day-1) columns).
IMPROVEMENTS = {
    "madrs_improvement": ("madrs_baseline", "madrs_day1"),
    "qids_sr_improvement": ("qids_sr_baseline", "qids_sr_day1"),
}

#: The study's brain-behaviour tests: (brain measure, clinical measure).
DEFAULT_PAIRS = [
    ("pgACC_delta", "psi_delusional_thinking"),
    ("pgACC_delta", "psi_perceptual_distortion"),
    ("pgACC_delta", "cadss_total"),
    ("sgACC_baseline", "madrs_improvement"),
    ("sgACC_baseline", "qids_sr_improvement"),
]

#: The study's published placebo-arm correlations (GO-MARK, NCT04977674; medRxiv preprint
#: doi:10.1101/2025.08.18.25333599; n = 26).
PUBLISHED = pd.DataFrame([
    {"x": "pgACC_delta", "y": "psi_delusional_thinking", "arm": "placebo",
     "published_r": 0.56, "published_p": "0.004"},
    {"x": "pgACC_delta", "y": "psi_perceptual_distortion", "arm": "placebo",
     "published_r": 0.64, "published_p": "< 0.001"},
    {"x": "sgACC_baseline", "y": "madrs_improvement", "arm": "placebo",
     "published_r": 0.60, "published_p": "0.002"},
    {"x": "sgACC_baseline", "y": "qids_sr_improvement", "arm": "placebo",
     "published_r": 0.67, "published_p": "< 0.001"},
])

ARMS = ("placebo", "naltrexone")
STAGE_NUMBER = 4


def _ids(values) -> str:
    return ", ".join(sorted(set(map(str, values))))


# =========================================================================== phenotype
def read_phenotype(bids_dir, columns: dict | None = None) -> dict[str, pd.DataFrame]:
    """Read and validate the phenotype files of a BIDS dataset.

    Parameters
    ----------
    bids_dir : str or Path
        BIDS root; files are ``phenotype/<name>.tsv``.
    columns : dict of str to list of str, optional
        ``{file stem: [required columns]}``; default :data:`PHENOTYPE_COLUMNS`.

    Returns
    -------
    dict of str to pandas.DataFrame
        Per file: ``participant_id``, ``session_id`` and the required columns as
        floats (``n/a`` -> NaN).

    Raises
    ------
    InputError
        Missing file or column, a non-numeric value (names file, column and
        participants), or duplicate (participant_id, session_id) rows.
    """
    columns = PHENOTYPE_COLUMNS if columns is None else columns
    out = {}
    for name, cols in columns.items():
        f = Path(bids_dir) / "phenotype" / f"{name}.tsv"
        t = read_tsv(f, ["participant_id", "session_id", *cols], empty_is_na=True,
                     missing=f"phenotype file not found (needed for {', '.join(cols)})")
        t = t[["participant_id", "session_id", *cols]].copy()
        if t["participant_id"].isna().any():
            raise InputError(f"{f}: column 'participant_id' has empty values")
        dup = t.duplicated(["participant_id", "session_id"], keep=False)
        if dup.any():
            raise InputError(f"{f}: duplicate rows for (participant_id, session_id) of "
                             f"{_ids(t.loc[dup, 'participant_id'])}")
        for c in cols:
            num = pd.to_numeric(t[c], errors="coerce")
            bad = num.isna() & t[c].notna()
            if bad.any():
                raise InputError(f"{f}: column '{c}' has non-numeric values for "
                                 f"{_ids(t.loc[bad, 'participant_id'])}")
            t[c] = num.astype(float)
        out[name] = t.reset_index(drop=True)
    return out


def align_phenotype(sessions: pd.DataFrame, phenotype: dict[str, pd.DataFrame],
                    warn: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Match phenotype rows to imaging sessions by ID and report every mismatch.

    Parameters
    ----------
    sessions : pandas.DataFrame
        Imaging sessions: ``participant_id``, ``session_id``, ``arm`` (+ any other
        columns), one row per session.
    phenotype : dict of str to pandas.DataFrame
        Output of :func:`read_phenotype`.
    warn : bool
        Emit one ``UserWarning`` summarising the mismatches.

    Returns
    -------
    merged : pandas.DataFrame
        ``sessions`` with the phenotype columns joined on (participant_id,
        session_id), plus the day-1 improvements of :data:`IMPROVEMENTS`
        (baseline − day 1; positive = improvement).
    report : pandas.DataFrame
        One row per problem: ``participant_id``, ``session_id``, ``file``, ``issue``
        (``no imaging data`` = in the phenotype file only, excluded;
        ``no phenotype row`` = imaged but absent from the file;
        ``missing value: <column>`` = row present, value n/a).
    """
    key = ["participant_id", "session_id"]
    for c in key:
        if c not in sessions.columns:
            raise InputError(f"imaging session table: missing column '{c}'")
    sess = sessions.drop_duplicates(key).reset_index(drop=True)
    img_keys = set(map(tuple, sess[key].to_numpy()))
    merged = sess.copy()
    issues = []
    for name, t in phenotype.items():
        fname = f"phenotype/{name}.tsv"
        ph_keys = set(map(tuple, t[key].to_numpy()))
        for pid, ses in sorted(ph_keys - img_keys):
            issues.append((pid, ses, fname, "no imaging data"))
        for pid, ses in sorted(img_keys - ph_keys):
            issues.append((pid, ses, fname, "no phenotype row"))
        cols = [c for c in t.columns if c not in key]
        sub = t[t[key].apply(tuple, axis=1).isin(img_keys)]
        for c in cols:
            for pid, ses in sub.loc[sub[c].isna(), key].itertuples(index=False):
                issues.append((pid, ses, fname, f"missing value: {c}"))
        merged = merged.merge(t, on=key, how="left", validate="one_to_one")
    for imp, (base, day1) in IMPROVEMENTS.items():
        if base in merged.columns and day1 in merged.columns:
            merged[imp] = merged[base] - merged[day1]
    report = pd.DataFrame(issues, columns=["participant_id", "session_id", "file", "issue"])
    report = report.sort_values(["participant_id", "session_id", "file"]).reset_index(drop=True)
    if warn and len(report):
        parts = []
        for issue in ("no imaging data", "no phenotype row"):
            ids = report.loc[report["issue"] == issue, "participant_id"]
            if len(ids):
                parts.append(f"{issue}: {_ids(ids)}")
        nmiss = report["issue"].str.startswith("missing value").sum()
        if nmiss:
            parts.append(f"{nmiss} missing value(s) in "
                         f"{_ids(report.loc[report['issue'].str.startswith('missing'), 'participant_id'])}")
        warnings.warn("phenotype vs imaging mismatch (see the report table): " + "; ".join(parts),
                      stacklevel=2)
    return merged, report


# =========================================================================== measures
def subject_measures(roi_values: pd.DataFrame, phenotype: pd.DataFrame | None = None,
                     value: str = "cbf", exclude_qc_fail: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per participant x arm brain measures (and clinical scores) for correlation.

    Parameters
    ----------
    roi_values : pandas.DataFrame
        Long ROI table (:func:`ketamine_cbf.roi_clinical.rois.extract_roi_values`).
    phenotype : pandas.DataFrame, optional
        Merged phenotype (:func:`align_phenotype`), joined on (participant_id,
        session_id).
    value : {"cbf", "rcbf"}
        Absolute ROI CBF (ml/100 g/min) or relative CBF (ROI / global GM CBF: the
        global-adjusted measure, proportional scaling).
    exclude_qc_fail : bool
        Leave out scans with ``qc_pass`` False (reported).

    Returns
    -------
    measures : pandas.DataFrame
        One row per participant x arm: ``participant_id``, ``session_id``, ``arm``,
        ``period``, and per ROI ``<roi>_baseline`` (pre-infusion), ``<roi>_during``,
        ``<roi>_delta`` (during − pre; several scans at one time point are averaged);
        then the phenotype columns.
    excluded : pandas.DataFrame
        Scans left out (``participant_id``, ``session_id``, ``run``, ``reason``).
    """
    if value not in ("cbf", "rcbf"):
        raise InputError(f"value must be 'cbf' or 'rcbf' (got {value!r})")
    rv = roi_values.copy()
    excluded = []
    if exclude_qc_fail and "qc_pass" in rv.columns:
        bad = rv[~rv["qc_pass"].astype(bool)].drop_duplicates(["participant_id", "session_id", "run"])
        excluded += [(r.participant_id, r.session_id, r.run, "failed QC") for r in bad.itertuples()]
        rv = rv[rv["qc_pass"].astype(bool)]
    rv = rv[rv["timepoint"].isin(["pre", "during"])]
    rv = rv.assign(period=rv["period"].fillna("n/a").astype(str))
    wide = rv.pivot_table(index=["participant_id", "session_id", "arm", "period"],
                          columns=["roi", "timepoint"], values=value, aggfunc="mean")
    out = pd.DataFrame(index=wide.index)
    for roi in rv["roi"].unique():
        pre = wide.get((roi, "pre"))
        dur = wide.get((roi, "during"))
        out[f"{roi}_baseline"] = pre if pre is not None else np.nan
        out[f"{roi}_during"] = dur if dur is not None else np.nan
        out[f"{roi}_delta"] = out[f"{roi}_during"] - out[f"{roi}_baseline"]
    out = out.reset_index()
    out.columns.name = None
    if phenotype is not None:
        ph = phenotype.drop(columns=[c for c in ("arm", "period", "run") if c in phenotype.columns])
        out = out.merge(ph, on=["participant_id", "session_id"], how="left", validate="one_to_one")
    exc = pd.DataFrame(excluded, columns=["participant_id", "session_id", "run", "reason"])
    return out.sort_values(["participant_id", "arm"]).reset_index(drop=True), exc


# =========================================================================== crossover models
_TERM_LABELS = {
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


def crossover_mixedlm(roi_values: pd.DataFrame, roi: str, adjustment: str = "none",
                      ci: float = 0.95) -> pd.DataFrame:
    """Linear mixed model of ROI CBF in the crossover: arm x time + period + order.

    ``y ~ naltrexone * during + period2 + order_np [+ global_c]`` with a random
    intercept per participant and a variance component per session within participant
    (scans nested in sessions nested in participants), fitted by REML (statsmodels
    ``MixedLM``). ``naltrexone x during`` is the test of whether naltrexone changes the
    ketamine response; ``order`` (sequence) is the between-subject term of the 2 x 2
    crossover, aliased with the arm x period (carry-over) interaction (Senn 2002).
    Wald z tests and CIs from the REML fit.

    Parameters
    ----------
    roi_values : pandas.DataFrame
        Long ROI table with ``participant_id``, ``session_id``, ``arm``, ``period``,
        ``timepoint``, ``roi``, ``cbf``, ``rcbf``, ``global_gm_cbf``, ``qc_pass``.
    roi : str
        ROI to model.
    adjustment : {"none", "ratio", "ancova"}
        Global-CBF adjustment: none (ROI CBF, ml/100 g/min); ratio (relative CBF =
        ROI / global GM CBF, proportional scaling); ancova (global GM CBF, centred, as a
        covariate; Friston et al. 1990). Ketamine raises global CBF, so adjusted
        models ask whether the ROI changes *more than the whole brain*.
    ci : float
        Confidence level.

    Returns
    -------
    pandas.DataFrame
        One row per fixed effect (plus the derived ketamine effect under naltrexone
        and the variance components): ``roi``, ``adjustment``, ``term``, ``label``,
        ``estimate``, ``se``, ``z``, ``p``, ``ci_low``, ``ci_high``, ``units``,
        ``n_obs``, ``n_subjects``, ``converged``, ``notes``.

    References
    ----------
    Senn S. (2002). Cross-over Trials in Clinical Research, 2nd ed. Wiley.
    doi:10.1002/0470854596

    Friston K. J. et al. (1990). The relationship between global and local changes in
    PET scans. J Cereb Blood Flow Metab 10:458-466. doi:10.1038/jcbfm.1990.88
    """
    import statsmodels.formula.api as smf

    d = roi_values[(roi_values["roi"] == roi) & roi_values["timepoint"].isin(["pre", "during"])]
    if "qc_pass" in d.columns:
        d = d[d["qc_pass"].astype(bool)]
    if adjustment not in ("none", "ratio", "ancova"):
        raise InputError(f"global adjustment must be 'none', 'ratio' or 'ancova' (got {adjustment!r})")
    dv = "rcbf" if adjustment == "ratio" else "cbf"
    d = d.dropna(subset=[dv])
    if d["participant_id"].nunique() < 3:
        raise InputError(f"ROI {roi}: fewer than 3 participants with usable scans")
    d, terms, notes = _design_columns(d)
    if adjustment == "ancova":
        d["global_c"] = d["global_gm_cbf"] - d["global_gm_cbf"].mean()
        terms.append("global_c")
    # fit on the dependent variable divided by its SD (relative CBF is ~1 with variances
    # ~1e-3, which stalls the optimiser) and rescale the estimates: the model is linear,
    # so fixed effects and SEs scale by s and variances by s^2.
    s = float(d[dv].std()) or 1.0
    d["_y"] = d[dv] / s
    formula = "_y ~ " + " + ".join(terms)
    model = smf.mixedlm(formula, d, groups=d["participant_id"], re_formula="1",
                        vc_formula={"session": "0 + C(session_id)"})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = model.fit(reml=True)
    msgs = sorted({str(w.message).splitlines()[0] for w in caught
                   if "Convergence" in type(w.category).__name__ or "converge" in str(w.message).lower()
                   or "boundary" in str(w.message).lower()})
    zq = stats.norm.ppf(0.5 + ci / 2)
    k = res.k_fe
    fe = res.fe_params * s
    cov = res.cov_params().iloc[:k, :k] * s ** 2
    rows = []
    for name in fe.index:
        est, se = float(fe[name]), float(np.sqrt(cov.loc[name, name]))
        rows.append((name, est, se))
    if "naltrexone:during" in fe.index:  # derived: ketamine effect after naltrexone
        c = pd.Series(0.0, index=fe.index)
        c["during"] = c["naltrexone:during"] = 1.0
        rows.append(("during_naltrexone", float(c @ fe), float(np.sqrt(c @ cov @ c))))
    units = "relative (ROI / global)" if dv == "rcbf" else "ml/100 g/min"
    out = []
    for name, est, se in rows:
        z = est / se if se > 0 else np.nan
        out.append({"term": name, "label": _TERM_LABELS.get(name, name), "estimate": est, "se": se,
                    "z": z, "p": 2 * stats.norm.sf(abs(z)), "ci_low": est - zq * se,
                    "ci_high": est + zq * se})
    vc = {"subject variance": float(res.cov_re.iloc[0, 0]) * s ** 2,
          "session variance": float(np.asarray(res.vcomp)[0]) * s ** 2 if len(res.vcomp) else np.nan,
          "residual variance": float(res.scale) * s ** 2}
    for name, v in vc.items():
        out.append({"term": name.replace(" ", "_"), "label": name, "estimate": v, "se": np.nan,
                    "z": np.nan, "p": np.nan, "ci_low": np.nan, "ci_high": np.nan})
    t = pd.DataFrame(out)
    t.insert(0, "adjustment", adjustment)
    t.insert(0, "roi", roi)
    t["units"] = units
    t["n_obs"] = int(res.nobs)
    t["n_subjects"] = int(d["participant_id"].nunique())
    t["converged"] = bool(res.converged)
    t["notes"] = "; ".join(notes + msgs)
    return t


def crossover_rm_anova(roi_values: pd.DataFrame, roi: str, adjustment: str = "none") -> tuple[pd.DataFrame, list[str]]:
    """Two-way repeated-measures ANOVA (arm x time) of ROI CBF (pingouin ``rm_anova``).

    The classical analysis of the same design; needs every participant in all four
    cells (arm x time), so participants with a missing scan are left out and
    returned by ID. It has no period, order or covariate terms: global adjustment is
    available as ``ratio`` only.

    Parameters
    ----------
    roi_values : pandas.DataFrame
        Long ROI table.
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

    References
    ----------
    Vallat R. (2018). Pingouin: statistics in Python. J Open Source Softw 3:1026.
    doi:10.21105/joss.01026
    """
    import pingouin as pg

    if adjustment not in ("none", "ratio"):
        raise InputError(f"rm_anova global adjustment must be 'none' or 'ratio' (got {adjustment!r})")
    dv = "rcbf" if adjustment == "ratio" else "cbf"
    d = roi_values[(roi_values["roi"] == roi) & roi_values["timepoint"].isin(["pre", "during"])]
    if "qc_pass" in d.columns:
        d = d[d["qc_pass"].astype(bool)]
    d = d.dropna(subset=[dv])
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


def crossover_models(roi_values: pd.DataFrame, rois=None,
                     adjustments=("none", "ratio", "ancova")) -> dict[str, pd.DataFrame]:
    """Fit the mixed model and the RM ANOVA for every ROI and adjustment; compare them.

    Parameters
    ----------
    roi_values : pandas.DataFrame
        Long ROI table (:func:`ketamine_cbf.roi_clinical.rois.extract_roi_values`).
    rois : list of str, optional
        ROIs to model (default: all in the table).
    adjustments : tuple of {"none", "ratio", "ancova"}
        Global-CBF adjustments (see :func:`crossover_mixedlm`); the RM ANOVA is fitted
        for "none" and "ratio" only.

    Returns
    -------
    dict
        ``mixedlm`` (all fixed effects), ``rm_anova`` (pingouin tables),
        ``comparison`` (one row per ROI x adjustment: the ketamine effect under
        placebo and the naltrexone x ketamine interaction from MixedLM — estimate,
        CI, p — next to the RM ANOVA F and p of the time effect and the arm x time
        interaction), ``excluded`` (participants left out of the RM ANOVA).
    """
    rois = list(roi_values["roi"].unique()) if rois is None else list(rois)
    mixed, anova, excl = [], [], []
    for roi in rois:
        for adj in adjustments:
            mixed.append(crossover_mixedlm(roi_values, roi, adj))
            if adj != "ancova":
                t, ex = crossover_rm_anova(roi_values, roi, adj)
                anova.append(t)
                excl += [{"roi": roi, "adjustment": adj, "participant_id": p,
                          "reason": "not all four arm x time cells"} for p in ex]
    mixed = pd.concat(mixed, ignore_index=True)
    anova = pd.concat(anova, ignore_index=True)
    rows = []
    for (roi, adj), g in mixed.groupby(["roi", "adjustment"], sort=False):
        g = g.set_index("term")
        row = {"roi": roi, "adjustment": adj, "units": g["units"].iloc[0]}
        for term, short in (("during", "ketamine_placebo"), ("during_naltrexone", "ketamine_naltrexone"),
                            ("naltrexone:during", "interaction")):
            for col in ("estimate", "ci_low", "ci_high", "p"):
                row[f"mixedlm_{short}_{col}"] = g.loc[term, col]
        a = anova[(anova["roi"] == roi) & (anova["adjustment"] == adj)].set_index("Source")
        for src, short in (("timepoint", "time"), ("arm * timepoint", "interaction")):
            row[f"rm_anova_{short}_F"] = a.loc[src, "F"] if src in a.index else np.nan
            row[f"rm_anova_{short}_p"] = a.loc[src, "p_unc"] if src in a.index else np.nan
        row["mixedlm_n_subjects"] = g["n_subjects"].iloc[0]
        row["rm_anova_n_subjects"] = a["n_subjects"].iloc[0] if len(a) else np.nan
        row["mixedlm_converged"] = g["converged"].iloc[0]
        rows.append(row)
    return {"mixedlm": mixed, "rm_anova": anova, "comparison": pd.DataFrame(rows),
            "excluded": pd.DataFrame(excl, columns=["roi", "adjustment", "participant_id", "reason"])}


# =========================================================================== correlations
def _pearson_vec(x, y, axis=-1):
    xm = x - x.mean(axis=axis, keepdims=True)
    ym = y - y.mean(axis=axis, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (xm * ym).sum(axis=axis) / np.sqrt((xm ** 2).sum(axis=axis) * (ym ** 2).sum(axis=axis))


def _spearman_vec(x, y, axis=-1):
    return _pearson_vec(stats.rankdata(x, axis=axis), stats.rankdata(y, axis=axis), axis=axis)


_CORR = {"pearson": _pearson_vec, "spearman": _spearman_vec}


def bootstrap_corr_ci(x, y, method: str = "pearson", n_boot: int = 5000, ci: float = 0.95,
                      rng=None, ci_method: str = "BCa") -> tuple[float, float]:
    """Bootstrap confidence interval of a correlation (subjects resampled as pairs).

    Parameters
    ----------
    x, y : array_like
        Paired observations (no NaN).
    method : {"pearson", "spearman"}
    n_boot : int
        Bootstrap resamples.
    ci : float
        Confidence level.
    rng : numpy.random.Generator or int, optional
        Random generator (derive it from the stage seed).
    ci_method : {"BCa", "percentile", "basic"}
        Interval type (``scipy.stats.bootstrap``); BCa (bias-corrected and accelerated;
        Efron 1987) by default. If it is undefined because some resamples have a constant
        variable (small samples with tied scores), a percentile interval over the
        resamples where r is defined is returned instead.

    Returns
    -------
    (low, high) : tuple of float

    References
    ----------
    Efron B. (1987). Better bootstrap confidence intervals. J Am Stat Assoc 82:171-185.
    doi:10.1080/01621459.1987.10478410

    Efron B., Tibshirani R. J. (1993). An Introduction to the Bootstrap. Chapman & Hall.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    f = _CORR[method]
    rng = np.random.default_rng(rng)
    state = rng.bit_generator.state
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = stats.bootstrap((x, y), lambda a, b, axis=-1: f(a, b, axis=axis), paired=True,
                              vectorized=True, n_resamples=n_boot, confidence_level=ci,
                              method=ci_method, rng=rng)
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        # small samples with tied scores: some resamples have a constant variable and no r.
        # Percentile interval over the resamples where r is defined (hand-written).
        rng.bit_generator.state = state
        idx = rng.integers(0, len(x), (n_boot, len(x)))
        with np.errstate(invalid="ignore", divide="ignore"):
            boot = f(x[idx], y[idx], axis=1)
        boot = boot[np.isfinite(boot)]
        if len(boot) < 0.5 * n_boot:
            return np.nan, np.nan
        lo, hi = np.quantile(boot, [(1 - ci) / 2, (1 + ci) / 2])
    return float(lo), float(hi)


def fdr(p, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Benjamini-Hochberg FDR over a family of p values (NaN ignored).

    Returns
    -------
    (reject, q) : arrays of bool and float
        Rejection at FDR ``alpha`` and BH-adjusted p values (q).

    References
    ----------
    Benjamini Y., Hochberg Y. (1995). Controlling the false discovery rate: a practical
    and powerful approach to multiple testing. J R Stat Soc B 57:289-300.
    doi:10.1111/j.2517-6161.1995.tb02031.x
    """
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(p, float)
    reject = np.zeros(p.shape, bool)
    q = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        reject[ok], q[ok], _, _ = multipletests(p[ok], alpha=alpha, method="fdr_bh")
    return reject, q


def _rng_for(seed: int, *keys) -> np.random.Generator:
    """A generator for one test, derived from the stage seed and the test's identity
    (strings such as method, x, y, arm are hashed with CRC-32, so a test's random
    stream does not depend on which other tests run or in which order)."""
    import zlib

    ints = [k if isinstance(k, int) else zlib.crc32(str(k).encode()) for k in keys]
    return np.random.default_rng([int(seed), STAGE_NUMBER, *ints])


def brain_behaviour_correlations(measures: pd.DataFrame, pairs=None, methods=("pearson", "spearman"),
                                 arms=ARMS, n_boot: int = 5000, ci: float = 0.95,
                                 fdr_alpha: float = 0.05, seed: int = 0) -> pd.DataFrame:
    """Correlations of brain measures with clinical scores, per arm.

    Pearson and Spearman r and p from ``pingouin.corr`` (two-sided), the Fisher-z
    parametric CI (pingouin) and a bootstrap BCa CI (:func:`bootstrap_corr_ci`), and
    Benjamini-Hochberg FDR over the family of all pairs x arms, separately per method.

    Parameters
    ----------
    measures : pandas.DataFrame
        One row per participant x arm (:func:`subject_measures`).
    pairs : list of (str, str), optional
        (brain column, clinical column); default :data:`DEFAULT_PAIRS`.
    methods : tuple of {"pearson", "spearman"}
    arms : tuple of str
    n_boot : int
        Bootstrap resamples (0 skips the bootstrap CI).
    ci : float
        Confidence level of both intervals.
    fdr_alpha : float
        FDR level.
    seed : int
        Stage seed; each test gets its own derived generator, so results do not depend
        on the order or number of tests.

    Returns
    -------
    pandas.DataFrame
        One row per method x pair x arm: ``method``, ``x``, ``y``, ``arm``, ``n``,
        ``r``, ``ci_low``, ``ci_high`` (bootstrap), ``ci_fisher_low``,
        ``ci_fisher_high``, ``p``, ``q_fdr``, ``significant_fdr``, ``excluded``
        (IDs in the arm without both values).
    """
    import pingouin as pg

    pairs = DEFAULT_PAIRS if pairs is None else [tuple(p) for p in pairs]
    for x, y in pairs:
        for c in (x, y):
            if c not in measures.columns:
                raise InputError(f"brain-behaviour pair ({x}, {y}): no column '{c}' in the "
                                 f"subject measures (available: {', '.join(measures.columns)})")
    rows = []
    for mi, method in enumerate(methods):
        if method not in _CORR:
            raise InputError(f"correlation method must be 'pearson' or 'spearman' (got {method!r})")
        for pi, (x, y) in enumerate(pairs):
            for ai, arm in enumerate(arms):
                d = measures[measures["arm"] == arm]
                ok = d[x].notna() & d[y].notna()
                row = {"method": method, "x": x, "y": y, "arm": arm, "n": int(ok.sum()),
                       "excluded": _ids(d.loc[~ok, "participant_id"])}
                xv, yv = d.loc[ok, x].to_numpy(float), d.loc[ok, y].to_numpy(float)
                if row["n"] >= 4 and np.std(xv) > 0 and np.std(yv) > 0:
                    res = pg.corr(xv, yv, method=method, alternative="two-sided")
                    row["r"] = float(res["r"].iloc[0])
                    row["ci_fisher_low"], row["ci_fisher_high"] = _fisher_ci(row["r"], row["n"], ci)
                    row["p"] = float(res["p_val"].iloc[0])
                    if n_boot:
                        row["ci_low"], row["ci_high"] = bootstrap_corr_ci(
                            xv, yv, method, n_boot, ci, _rng_for(seed, 1, method, x, y, arm))
                rows.append(row)
    return _table_with_fdr(rows, ["method", "x", "y", "arm", "n", "r", "ci_low", "ci_high",
                                  "ci_fisher_low", "ci_fisher_high", "p", "q_fdr",
                                  "significant_fdr", "excluded"], "p", fdr_alpha)


def _table_with_fdr(rows: list[dict], columns: list[str], p_column: str,
                    alpha: float) -> pd.DataFrame:
    """Rows as a table with ``columns`` (absent ones NaN) and BH FDR per ``method``.

    ``q_fdr`` and ``significant_fdr`` come from :func:`fdr` of ``p_column`` within each
    correlation method (each method is its own family of tests).
    """
    t = pd.DataFrame(rows)
    for c in columns:
        if c not in t.columns:
            t[c] = np.nan
    t["q_fdr"], t["significant_fdr"] = np.nan, False
    for _, g in t.groupby("method"):
        rej, q = fdr(g[p_column], alpha)
        t.loc[g.index, "q_fdr"] = q
        t.loc[g.index, "significant_fdr"] = rej
    return t[columns]


def _fisher_ci(r: float, n: int, ci: float = 0.95) -> tuple[float, float]:
    """Fisher z confidence interval of a Pearson correlation (Fisher 1921)."""
    z = np.arctanh(np.clip(r, -0.9999999, 0.9999999))
    h = stats.norm.ppf(0.5 + ci / 2) / np.sqrt(n - 3)
    return float(np.tanh(z - h)), float(np.tanh(z + h))


# =========================================================================== arm differences
def zou_ci_nonoverlap(r12: float, r34: float, r13: float, r14: float, r23: float, r24: float,
                      n: int, ci: float = 0.95) -> tuple[float, float]:
    """Zou's (2007) CI for ρ12 − ρ34, two non-overlapping correlations from one sample.

    Here variable 1 = brain measure and 2 = clinical score under placebo, 3 and 4 the
    same under naltrexone, all from the same participants. The interval combines the
    Fisher-z limits (l, u) of each correlation (modified asymptotic method):

    L = r12 − r34 − sqrt((r12 − l1)² + (u2 − r34)² − 2 c (r12 − l1)(u2 − r34))
    U = r12 − r34 + sqrt((u1 − r12)² + (r34 − l2)² − 2 c (u1 − r12)(r34 − l2))

    with c = corr(r12, r34) from Pearson & Filon (1898) as given by Zou (2007, eq. 19):
    c = [½ r12 r34 (r13² + r14² + r23² + r24²) + r13 r24 + r14 r23
    − (r12 r13 r14 + r12 r23 r24 + r13 r23 r34 + r14 r24 r34)] / [(1 − r12²)(1 − r34²)].
    Matches R's ``cocor.dep.groups.nonoverlap(..., test="zou2007")`` (Diedenhofen &
    Musch 2015), with r.jk = r12, r.hm = r34, r.jh = r13, r.jm = r14, r.kh = r23,
    r.km = r24.

    References
    ----------
    Zou G. Y. (2007). Toward using confidence intervals to compare correlations.
    Psychol Methods 12:399-413. doi:10.1037/1082-989X.12.4.399

    Diedenhofen B., Musch J. (2015). cocor: a comprehensive solution for the statistical
    comparison of correlations. PLoS One 10:e0121945. doi:10.1371/journal.pone.0121945
    """
    c = (0.5 * r12 * r34 * (r13 ** 2 + r14 ** 2 + r23 ** 2 + r24 ** 2) + r13 * r24 + r14 * r23
         - (r12 * r13 * r14 + r12 * r23 * r24 + r13 * r23 * r34 + r14 * r24 * r34)) \
        / ((1 - r12 ** 2) * (1 - r34 ** 2))
    l1, u1 = _fisher_ci(r12, n, ci)
    l2, u2 = _fisher_ci(r34, n, ci)
    lo = r12 - r34 - np.sqrt(max((r12 - l1) ** 2 + (u2 - r34) ** 2 - 2 * c * (r12 - l1) * (u2 - r34), 0))
    hi = r12 - r34 + np.sqrt(max((u1 - r12) ** 2 + (r34 - l2) ** 2 - 2 * c * (u1 - r12) * (r34 - l2), 0))
    return float(lo), float(hi)


def zou_ci_overlap(r12: float, r13: float, r23: float, n: int, ci: float = 0.95) -> tuple[float, float]:
    """Zou's (2007) CI for ρ12 − ρ13, two overlapping correlations (shared variable 1).

    For a clinical score measured once and correlated with a brain measure from each
    arm. c = corr(r12, r13) = [(r23 − ½ r12 r13)(1 − r12² − r13² − r23²) + r23³] /
    [(1 − r12²)(1 − r13²)] (Zou 2007, eq. 16); limits as in
    :func:`zou_ci_nonoverlap`. Matches ``cocor.dep.groups.overlap(..., test="zou2007")``.

    References
    ----------
    Zou G. Y. (2007). Psychol Methods 12:399-413. doi:10.1037/1082-989X.12.4.399
    """
    c = ((r23 - 0.5 * r12 * r13) * (1 - r12 ** 2 - r13 ** 2 - r23 ** 2) + r23 ** 3) \
        / ((1 - r12 ** 2) * (1 - r13 ** 2))
    l1, u1 = _fisher_ci(r12, n, ci)
    l2, u2 = _fisher_ci(r13, n, ci)
    lo = r12 - r13 - np.sqrt(max((r12 - l1) ** 2 + (u2 - r13) ** 2 - 2 * c * (r12 - l1) * (u2 - r13), 0))
    hi = r12 - r13 + np.sqrt(max((u1 - r12) ** 2 + (r13 - l2) ** 2 - 2 * c * (u1 - r12) * (r13 - l2), 0))
    return float(lo), float(hi)


def _zscore(a):
    a = np.asarray(a, float)
    return (a - a.mean()) / a.std()


def permutation_arm_difference(x_a, y_a, x_b, y_b, method: str = "pearson", n_perm: int = 5000,
                               rng=None) -> dict:
    """Permutation test of r(x_a, y_a) − r(x_b, y_b) by swapping arm labels within subject.

    Under H0 (the two arms' correlations are equal and the arms exchangeable within
    a participant), swapping a participant's (x, y) pair between arms leaves the
    distribution of the difference unchanged. Each variable is z-scored within arm
    first, so differences in arm means or spreads (e.g. naltrexone shifting ΔCBF) do
    not enter the test; correlations are unchanged by this. Exact enumeration of all
    2^n swaps when 2^n <= n_perm, else ``n_perm`` random swaps with p = (1 + b) /
    (1 + n_perm) (Phipson & Smyth 2010). Two-sided (|difference|).

    Parameters
    ----------
    x_a, y_a, x_b, y_b : array_like
        Values of the same n participants (same order) in arm a and arm b.
    method : {"pearson", "spearman"}
    n_perm : int
    rng : numpy.random.Generator or int, optional

    Returns
    -------
    dict
        ``diff`` (observed r_a − r_b), ``p``, ``n_perm`` (permutations evaluated),
        ``exact`` (bool).

    References
    ----------
    Good P. (2005). Permutation, Parametric, and Bootstrap Tests of Hypotheses, 3rd ed.
    Springer. doi:10.1007/b138696

    Phipson B., Smyth G. K. (2010). Permutation p-values should never be zero. Stat Appl
    Genet Mol Biol 9:39. doi:10.2202/1544-6115.1585
    """
    f = _CORR[method]
    xa, ya, xb, yb = (_zscore(v) for v in (x_a, y_a, x_b, y_b))
    n = len(xa)
    obs = float(f(xa, ya) - f(xb, yb))
    exact = n <= 30 and 2 ** n <= n_perm
    if exact:
        swap = ((np.arange(2 ** n)[:, None] >> np.arange(n)) & 1).astype(bool)
    else:
        swap = np.random.default_rng(rng).random((n_perm, n)) < 0.5
    pa_x, pa_y = np.where(swap, xb, xa), np.where(swap, yb, ya)
    pb_x, pb_y = np.where(swap, xa, xb), np.where(swap, ya, yb)
    null = f(pa_x, pa_y, axis=1) - f(pb_x, pb_y, axis=1)
    b = int(np.sum(np.abs(null) >= abs(obs) - 1e-12))
    p = b / len(null) if exact else (1 + b) / (1 + n_perm)
    return {"diff": obs, "p": float(p), "n_perm": int(len(null)), "exact": bool(exact)}


def compare_arms(measures: pd.DataFrame, pairs=None, methods=("pearson", "spearman"),
                 arms=ARMS, n_perm: int = 5000, n_boot: int = 5000, ci: float = 0.95,
                 fdr_alpha: float = 0.05, seed: int = 0) -> pd.DataFrame:
    """Do the brain-behaviour correlations differ between arms? (The test the claim needs.)

    For each pair, on the participants with both values in both arms (paired
    subset): r under each arm, their difference (first arm − second), Zou's (2007)
    CI (Pearson only: :func:`zou_ci_nonoverlap`), a paired bootstrap BCa CI of the
    difference (participants resampled with both arms), and the within-subject
    arm-swap permutation p (:func:`permutation_arm_difference`), with
    Benjamini-Hochberg FDR over the pairs, per method.

    Returns
    -------
    pandas.DataFrame
        One row per method x pair: ``method``, ``x``, ``y``, ``n_paired``,
        ``r_<arm a>``, ``r_<arm b>``, ``diff``, ``zou_ci_low``, ``zou_ci_high``,
        ``boot_ci_low``, ``boot_ci_high``, ``p_perm``, ``exact``, ``q_fdr``,
        ``significant_fdr``, ``excluded`` (IDs without complete data in both arms).

    References
    ----------
    Zou G. Y. (2007). Psychol Methods 12:399-413. doi:10.1037/1082-989X.12.4.399

    Wilcox R. R. (2009). Comparing Pearson correlations: dealing with heteroscedasticity
    and nonnormality. Commun Stat Simul Comput 38:2220-2234.
    doi:10.1080/03610910903289151
    """
    pairs = DEFAULT_PAIRS if pairs is None else [tuple(p) for p in pairs]
    a, b = arms
    rows = []
    for mi, method in enumerate(methods):
        f = _CORR[method]
        for pi, (x, y) in enumerate(pairs):
            wide = measures[measures["arm"].isin(arms)].pivot_table(
                index="participant_id", columns="arm", values=[x, y], aggfunc="first")
            all_ids = set(measures["participant_id"])
            cols = [(x, a), (y, a), (x, b), (y, b)]
            for c in cols:
                if c not in wide.columns:
                    wide[c] = np.nan
            ok = wide[cols].notna().all(axis=1)
            row = {"method": method, "x": x, "y": y, "n_paired": int(ok.sum()),
                   "excluded": _ids(all_ids - set(wide.index[ok]))}
            if row["n_paired"] >= 5:
                xa, ya, xb, yb = (wide.loc[ok, c].to_numpy(float) for c in cols)
                row[f"r_{a}"], row[f"r_{b}"] = float(f(xa, ya)), float(f(xb, yb))
                perm = permutation_arm_difference(xa, ya, xb, yb, method, n_perm,
                                                  _rng_for(seed, 2, method, x, y))
                row.update(diff=perm["diff"], p_perm=perm["p"], exact=perm["exact"])
                if method == "pearson":
                    r = np.corrcoef([xa, ya, xb, yb])
                    row["zou_ci_low"], row["zou_ci_high"] = zou_ci_nonoverlap(
                        r[0, 1], r[2, 3], r[0, 2], r[0, 3], r[1, 2], r[1, 3], row["n_paired"], ci)
                if n_boot:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        res = stats.bootstrap(
                            (xa, ya, xb, yb),
                            lambda p, q, s, t, axis=-1: f(p, q, axis=axis) - f(s, t, axis=axis),
                            paired=True, vectorized=True, n_resamples=n_boot, confidence_level=ci,
                            method="BCa", rng=_rng_for(seed, 3, method, x, y))
                    row["boot_ci_low"] = float(res.confidence_interval.low)
                    row["boot_ci_high"] = float(res.confidence_interval.high)
            rows.append(row)
    return _table_with_fdr(rows, ["method", "x", "y", "n_paired", f"r_{a}", f"r_{b}", "diff",
                                  "zou_ci_low", "zou_ci_high", "boot_ci_low", "boot_ci_high",
                                  "p_perm", "exact", "q_fdr", "significant_fdr", "excluded"],
                           "p_perm", fdr_alpha)


# =========================================================================== summaries
def claims_table(corr: pd.DataFrame, diff: pd.DataFrame, method: str = "pearson") -> pd.DataFrame:
    """Per pair: r under each arm (with CI, FDR q) next to the test of their difference.

    Parameters
    ----------
    corr : pandas.DataFrame
        Output of :func:`brain_behaviour_correlations`.
    diff : pandas.DataFrame
        Output of :func:`compare_arms`.
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


def describe_claims(claims: pd.DataFrame, arms=ARMS, alpha: float = 0.05) -> list[str]:
    """One plain-language sentence per brain-behaviour pair from :func:`claims_table`.

    States the per-arm r with CIs and, separately, whether the *difference* between
    arms is supported (permutation p, FDR) — the two are easily conflated
    (Gelman & Stern 2006).

    Parameters
    ----------
    claims : pandas.DataFrame
        Output of :func:`claims_table`.
    arms : tuple of str
    alpha : float
        FDR level used to call a q value significant.

    Returns
    -------
    list of str

    References
    ----------
    Gelman A., Stern H. (2006). The difference between "significant" and "not
    significant" is not itself statistically significant. Am Stat 60:328-331.
    doi:10.1198/000313006X152649
    """
    a, b = arms
    out = []
    for _, r in claims.iterrows():
        sig = {arm: (np.isfinite(r.get(f"q_{arm}", np.nan)) and r[f"q_{arm}"] < alpha) for arm in arms}
        s = (f"{r['x']} ~ {r['y']}: r = {r[f'r_{a}']:.2f} {r[f'ci_{a}']} under {a} "
             f"({'FDR-significant' if sig[a] else 'not FDR-significant'}), "
             f"r = {r[f'r_{b}']:.2f} {r[f'ci_{b}']} under {b} "
             f"({'FDR-significant' if sig[b] else 'not FDR-significant'}); ")
        if np.isfinite(r.get("difference", np.nan)):
            differ = np.isfinite(r["q_difference"]) and r["q_difference"] < alpha
            s += (f"difference {r['difference']:+.2f}, Zou 95% CI {r['zou_ci']}, permutation "
                  f"p = {r['p_perm']:.3f} (FDR q = {r['q_difference']:.3f}): the arms "
                  + ("differ." if differ else "are not shown to differ."))
        out.append(s)
    return out


def published_comparison(corr: pd.DataFrame, diff: pd.DataFrame | None = None,
                         method: str = "pearson", data_label: str = "simulated",
                         published: pd.DataFrame | None = None, published_n: int = 26) -> pd.DataFrame:
    """The study's published r and p next to ours, labelled with the data source.

    The published 95% CI is not reported in the paper; it is computed here from r with
    the Fisher z transform assuming n = ``published_n`` (labelled as such).

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
        key = (pub["x"], pub["y"], pub["arm"])
        lo, hi = _fisher_ci(pub["published_r"], published_n)
        row = {"test": f"{pub['x']} ~ {pub['y']}", "arm": pub["arm"],
               "published_r": pub["published_r"], "published_p": pub["published_p"],
               "published_ci95_fisher": f"[{lo:.2f}, {hi:.2f}] (n = {published_n} assumed)",
               "data": data_label}
        if key in c.index:
            r = c.loc[key]
            row.update(our_n=int(r["n"]), our_r=r["r"], our_ci95=f"[{r['ci_low']:.2f}, {r['ci_high']:.2f}]",
                       our_p=r["p"], our_q_fdr=r["q_fdr"])
            other = [a for a in ARMS if a != pub["arm"]]
            if other and (pub["x"], pub["y"], other[0]) in c.index:
                row[f"our_r_{other[0]}"] = c.loc[(pub["x"], pub["y"], other[0]), "r"]
        if diff is not None:
            d = diff[(diff["method"] == method) & (diff["x"] == pub["x"]) & (diff["y"] == pub["y"])]
            if len(d):
                d = d.iloc[0]
                row["arm_difference"] = d["diff"]
                row["arm_difference_zou_ci95"] = f"[{d['zou_ci_low']:.2f}, {d['zou_ci_high']:.2f}]"
                row["arm_difference_p_perm"] = d["p_perm"]
        rows.append(row)
    return pd.DataFrame(rows)


# =========================================================================== ground truth
#: Imaging columns of the simulation's phenotype_truth.tsv -> (our measure, value type).
TRUTH_MEASURES = {
    "pgacc_delta_rcbf": ("pgACC_delta", "rcbf"),
    "sgacc_pre_rcbf": ("sgACC_baseline", "rcbf"),
    "pgacc_delta_cbf": ("pgACC_delta", "cbf"),
    "sgacc_pre_cbf": ("sgACC_baseline", "cbf"),
}


def read_planted_correlations(bids_dir) -> pd.DataFrame | None:
    """The correlations planted in a simulated dataset (None for real data).

    Reads ``derivatives/groundtruth/truth.json`` (``planted_correlations``: per arm and
    score, the truth-level imaging measure, the target r and the realised r of the
    written scores against the truth-level ROI values).

    Returns
    -------
    pandas.DataFrame or None
        ``arm``, ``x`` (our brain measure), ``y`` (score), ``value`` (cbf | rcbf),
        ``target_r``, ``planted_r`` (realised at truth level), ``truth_imaging``.
    """
    import json

    f = Path(bids_dir) / "derivatives" / "groundtruth" / "truth.json"
    if not f.is_file():
        return None
    try:
        doc = json.loads(f.read_text())
    except (OSError, json.JSONDecodeError):
        raise InputError(f"{f}: not valid JSON") from None
    planted = doc.get("planted_correlations")
    if not planted:
        return None
    rows = []
    for arm, scores in planted.items():
        for score, rec in scores.items():
            x, value = TRUTH_MEASURES.get(rec.get("imaging"), (rec.get("imaging"), "rcbf"))
            rows.append({"arm": arm, "x": x, "y": score, "value": value,
                         "target_r": rec.get("target_r"), "planted_r": rec.get("realised_r"),
                         "truth_imaging": rec.get("imaging")})
    return pd.DataFrame(rows)


def planted_vs_recovered(corr: pd.DataFrame, planted: pd.DataFrame, method: str = "pearson") -> pd.DataFrame:
    """Put each planted correlation next to the recovered one and its 95% CIs.

    Returns
    -------
    pandas.DataFrame
        ``arm``, ``x``, ``y``, ``planted_r``, ``r`` (recovered), ``ci_low``,
        ``ci_high`` (bootstrap), ``within_ci`` (planted r inside the bootstrap CI),
        ``within_fisher_ci``, ``p``, ``q_fdr``.
    """
    c = corr[corr["method"] == method]
    out = planted.merge(c, on=["arm", "x", "y"], how="left", validate="one_to_one")
    out["within_ci"] = (out["planted_r"] >= out["ci_low"]) & (out["planted_r"] <= out["ci_high"])
    out["within_fisher_ci"] = ((out["planted_r"] >= out["ci_fisher_low"])
                               & (out["planted_r"] <= out["ci_fisher_high"]))
    return out[["arm", "x", "y", "target_r", "planted_r", "n", "r", "ci_low", "ci_high",
                "within_ci", "within_fisher_ci", "p", "q_fdr"]]


# =========================================================================== figures
def measure_label(column: str, value: str = "rcbf") -> str:
    """Readable axis label of a brain or clinical measure column (units included).

    Parameters
    ----------
    column : str
        ``<roi>_delta``, ``<roi>_baseline``, ``<roi>_during`` or a clinical column.
    value : {"rcbf", "cbf"}
        Whether brain measures are relative or absolute CBF.
    """
    unit = "relative to global GM CBF" if value == "rcbf" else "ml/100 g/min"
    for suffix, what in (("_delta", "change during − pre"), ("_baseline", "pre-infusion"),
                         ("_during", "during infusion")):
        if column.endswith(suffix):
            return f"{column[:-len(suffix)]} CBF, {what} ({unit})"
    names = {"psi_delusional_thinking": "PSI delusional thinking",
             "psi_perceptual_distortion": "PSI perceptual distortion",
             "cadss_total": "CADSS total",
             "madrs_improvement": "MADRS day-1 improvement (baseline − day 1)",
             "qids_sr_improvement": "QIDS-SR day-1 improvement (baseline − day 1)"}
    return names.get(column, column)


def plot_scatter_by_arm(measures: pd.DataFrame, pairs=None, corr: pd.DataFrame | None = None,
                        method: str = "pearson", arms=ARMS, value: str = "rcbf", seed: int = 0):
    """Scatter plot of each brain-behaviour pair, both arms overlaid with OLS lines
    and 95% bands (seaborn ``regplot``, band bootstrapped with ``seed``); the legend
    gives r [bootstrap CI] per arm.

    Parameters
    ----------
    measures : pandas.DataFrame
        Output of :func:`subject_measures`.
    pairs : list of (str, str), optional
        Default :data:`DEFAULT_PAIRS`.
    corr : pandas.DataFrame, optional
        Output of :func:`brain_behaviour_correlations` (for the legend).
    method : {"pearson", "spearman"}
    arms : tuple of str
    value : {"rcbf", "cbf"}
        Units of the brain measures (axis labels).
    seed : int
        Seed of seaborn's bootstrap of the regression band (deterministic figures).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    pairs = DEFAULT_PAIRS if pairs is None else [tuple(p) for p in pairs]
    ncol = min(3, len(pairs))
    nrow = int(np.ceil(len(pairs) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.3 * ncol, 3.8 * nrow), squeeze=False)
    palette = dict(zip(arms, sns.color_palette("colorblind", len(arms))))
    for ax, (x, y) in zip(axes.flat, pairs):
        for arm in arms:
            d = measures[(measures["arm"] == arm)][[x, y]].dropna()
            lab = arm
            if corr is not None:
                r = corr[(corr["method"] == method) & (corr["x"] == x) & (corr["y"] == y)
                         & (corr["arm"] == arm)]
                if len(r) and np.isfinite(r["r"].iloc[0]):
                    r = r.iloc[0]
                    lab = f"{arm}: r = {r['r']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}]"
            if len(d) >= 3:
                sns.regplot(data=d, x=x, y=y, ax=ax, color=palette[arm], label=lab, seed=seed,
                            scatter_kws={"s": 22, "alpha": 0.8}, line_kws={"lw": 1.5})
        ax.set_xlabel(measure_label(x, value), fontsize=8)
        ax.set_ylabel(measure_label(y, value), fontsize=8)
        ax.legend(fontsize=7, loc="best", frameon=True, framealpha=0.85, edgecolor="none")
    for ax in axes.flat[len(pairs):]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def plot_forest(corr: pd.DataFrame, diff: pd.DataFrame | None = None, method: str = "pearson",
                arms=ARMS, published: pd.DataFrame | None = None):
    """Forest plot: r with bootstrap 95% CI per pair and arm (left) and the arm
    difference with Zou's 95% CI (Pearson) or the bootstrap CI (right); published
    placebo r as open diamonds.

    Parameters
    ----------
    corr : pandas.DataFrame
        Output of :func:`brain_behaviour_correlations`.
    diff : pandas.DataFrame, optional
        Output of :func:`compare_arms` (right panel).
    method : {"pearson", "spearman"}
    arms : tuple of str
    published : pandas.DataFrame, optional
        Published values (default :data:`PUBLISHED`).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    c = corr[corr["method"] == method]
    pairs = list(dict.fromkeys(zip(c["x"], c["y"])))
    ncols = 2 if diff is not None else 1
    fig, axes = plt.subplots(1, ncols, figsize=(5.2 * ncols, 0.55 * len(pairs) + 1.6),
                             sharey=True, squeeze=False)
    ax = axes[0, 0]
    pal = dict(zip(arms, sns.color_palette("colorblind", len(arms))))
    ypos = np.arange(len(pairs))[::-1]
    for k, arm in enumerate(arms):
        off = 0.15 * (1 - 2 * k) if len(arms) == 2 else 0
        for yy, (x, y) in zip(ypos, pairs):
            r = c[(c["x"] == x) & (c["y"] == y) & (c["arm"] == arm)]
            if not len(r) or not np.isfinite(r["r"].iloc[0]):
                continue
            r = r.iloc[0]
            ax.errorbar(r["r"], yy + off, xerr=[[r["r"] - r["ci_low"]], [r["ci_high"] - r["r"]]],
                        fmt="o", color=pal[arm], ms=5, capsize=2,
                        mfc=pal[arm] if r["significant_fdr"] else "white",
                        label=arm if yy == ypos[0] else None)
    pub = PUBLISHED if published is None else published
    for yy, (x, y) in zip(ypos, pairs):
        p = pub[(pub["x"] == x) & (pub["y"] == y)]
        if len(p):
            ax.plot(p["published_r"].iloc[0], yy + 0.15, "D", mfc="none", mec="k", ms=6,
                    label="published (placebo)" if not ax.get_legend_handles_labels()[1].count(
                        "published (placebo)") else None)
    ax.axvline(0, color="0.5", lw=0.8)
    ax.set_yticks(ypos)
    ax.set_yticklabels([f"{x} ~ {y}" for x, y in pairs], fontsize=8)
    ax.set_xlim(-1, 1)
    ax.set_xticks([-1, -0.5, 0, 0.5, 1])
    ax.set_xlabel(f"{method} r (95% bootstrap CI; filled = FDR-significant)")
    ax.legend(fontsize=7, loc="lower left", frameon=False)
    if diff is not None:
        ax2 = axes[0, 1]
        d = diff[diff["method"] == method]
        for yy, (x, y) in zip(ypos, pairs):
            r = d[(d["x"] == x) & (d["y"] == y)]
            if not len(r) or not np.isfinite(r["diff"].iloc[0]):
                continue
            r = r.iloc[0]
            lo, hi = (r["zou_ci_low"], r["zou_ci_high"]) if np.isfinite(r["zou_ci_low"]) \
                else (r["boot_ci_low"], r["boot_ci_high"])
            ax2.errorbar(r["diff"], yy, xerr=[[r["diff"] - lo], [hi - r["diff"]]], fmt="s",
                         color="k", mfc="k" if r["significant_fdr"] else "white", ms=5, capsize=2)
            ax2.annotate(f"p = {r['p_perm']:.3f}", (1.0, yy), xycoords=("axes fraction", "data"),
                         ha="right", va="center", fontsize=7)
        ax2.axvline(0, color="0.5", lw=0.8)
        ax2.set_xlim(-2, 2)
        ci_name = "Zou" if method == "pearson" else "bootstrap"
        ax2.set_xlabel(f"r({arms[0]}) - r({arms[1]}) ({ci_name} 95% CI; permutation p)")
    fig.tight_layout()
    return fig
