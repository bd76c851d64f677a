"""Clinical scores of the simulated trial, with correlations planted against imaging truth.

Under placebo pre-treatment (the study's findings):

* PSI delusional thinking and perceptual distortion correlate with the pgACC relative
  CBF change (during - pre infusion), r = 0.56 and 0.64;
* day-1 improvement (baseline - day 1; positive = better) in MADRS and QIDS-SR
  correlates with the pre-infusion sgACC relative CBF, r = 0.60 and 0.67.

Under naltrexone the same pairs are planted at ``r_naltrexone`` (default 0). "Relative"
CBF is the ROI mean divided by the global GM mean of the same scan, as in the study's
global-CBF-adjusted analysis. The other PSI subscales and the CADSS share a general
"psychotomimetic" factor with the two planted PSI subscales, so they correlate with
them (and, implied, weakly with pgACC) but are not planted against imaging.
With ``null=True`` every score is drawn independently of imaging.

The crossover: a participant's MADRS and QIDS-SR baselines of the two periods share a
depression-severity trait (between-period correlation ``madrs_reliability``), and the
period-2 baselines move by ``period_madrs - carryover_madrs`` points (QIDS-SR by the same
number of its SDs).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ketamine_cbf.simulate.design import (
    CADSS_SUBSCALES,
    MADRS_BASELINE,
    MADRS_IMPROVEMENT,
    PSI_SUBSCALES,
    QIDS_BASELINE,
    QIDS_IMPROVEMENT,
    integer_scale,
    pearson,
    plant_correlated,
    residual_vectors,
    skewed_scale,
)

__all__ = ["RESIDUAL_CORR", "N_CANDIDATES", "PLANTED", "arm_scores", "build_phenotypes"]

#: Correlation between the non-imaging parts of paired measures (not planted vs imaging).
RESIDUAL_CORR = {"psi": 0.5, "improvement": 0.6, "baseline": 0.6, "general_factor": 0.6}

#: Random candidate noise vectors tried per planted score (see plant_correlated).
N_CANDIDATES = 32
#: Planted pairs: (score column, imaging column of phenotype_truth.tsv, option name).
PLANTED = (
    ("psi_delusional_thinking", "pgacc_delta_rcbf", "r_psi_delusional"),
    ("psi_perceptual_distortion", "pgacc_delta_rcbf", "r_psi_perceptual"),
    ("madrs_improvement", "sgacc_pre_rcbf", "r_madrs"),
    ("qids_sr_improvement", "sgacc_pre_rcbf", "r_qids"),
)


def _improvement_scale(baseline: np.ndarray, mean: float, sd: float, top: int):
    """Latent -> realised improvement, so that day 1 = baseline - improvement is in [0, top]."""
    def f(z):
        imp = np.round(mean + sd * np.asarray(z))
        day1 = np.clip(baseline - imp, 0, top)
        return (baseline - day1).astype(int)
    return f


def arm_scores(x_pg: np.ndarray, x_sg: np.ndarray, targets: dict, rng: np.random.Generator,
               null: bool, g_pg: np.ndarray | None = None, g_sg: np.ndarray | None = None,
               baseline_trait: np.ndarray | None = None, reliability: float = 0.0,
               baseline_shift: np.ndarray | None = None
               ) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Return the scores of one arm (one value per participant) and the latent rhos.

    Parameters
    ----------
    x_pg, x_sg : ndarray
        Truth-level pgACC relative CBF change and pre-infusion sgACC relative CBF.
    targets : dict
        ``{option name: r}`` for the four planted pairs.
    rng : numpy.random.Generator
    null : bool
        Draw every score independently of imaging.
    g_pg, g_sg : ndarray, optional
        Global CBF covariates (change in global GM CBF; pre-infusion global GM CBF).
        The non-planted part of the scores is made orthogonal to them as well, so that
        scores do not correlate by chance with global CBF (and the planted relation
        carries over to absolute regional CBF).
    baseline_trait : ndarray, optional
        Each participant's standardised depression-severity trait, shared by both periods;
        the latent MADRS baseline is ``sqrt(reliability) trait + sqrt(1 - reliability) e``.
    reliability : float
        Between-period correlation of the latent baselines (``madrs_reliability``).
    baseline_shift : ndarray, optional
        Shift of each participant's MADRS baseline in points (period and carryover
        effects); QIDS-SR baselines shift by the same number of their own SDs.
    """
    n = len(x_pg)
    out, rhos = {}, {}
    if null:  # scores independent of imaging: plain sampling variation around r = 0
        x_pg = rng.standard_normal(n)
        x_sg = rng.standard_normal(n)
        targets = {k: 0.0 for k in targets}
        g_pg = g_sg = None
    c = RESIDUAL_CORR["psi"]
    cand_del = residual_vectors(x_pg, N_CANDIDATES, rng, (g_pg,))
    items, mean, sd = PSI_SUBSCALES["psi_delusional_thinking"]
    out["psi_delusional_thinking"], rhos["r_psi_delusional"], i = plant_correlated(
        x_pg, targets["r_psi_delusional"], cand_del, skewed_scale(mean, sd, 3 * items))
    e_del = cand_del[i]
    f = residual_vectors(x_pg, N_CANDIDATES, rng, (g_pg, e_del))
    cand_per = c * e_del + np.sqrt(1 - c ** 2) * f
    items, mean, sd = PSI_SUBSCALES["psi_perceptual_distortion"]
    out["psi_perceptual_distortion"], rhos["r_psi_perceptual"], _ = plant_correlated(
        x_pg, targets["r_psi_perceptual"], cand_per, skewed_scale(mean, sd, 3 * items))
    # general psychotomimetic factor: the standardised mean of the two planted subscales
    g = out["psi_delusional_thinking"] / max(out["psi_delusional_thinking"].std(), 1e-9) \
        + out["psi_perceptual_distortion"] / max(out["psi_perceptual_distortion"].std(), 1e-9)
    g = (g - g.mean()) / max(g.std(), 1e-9)
    w = RESIDUAL_CORR["general_factor"]
    for table in (PSI_SUBSCALES, CADSS_SUBSCALES):
        top_per_item = 3 if table is PSI_SUBSCALES else 4
        for col, (items, mean, sd) in table.items():
            if col in out:
                continue
            z = w * g + np.sqrt(1 - w ** 2) * rng.standard_normal(n)
            out[col] = skewed_scale(mean, sd, top_per_item * items)(z)
    # depression scales: baselines correlated, improvements planted against sgACC
    zb = rng.standard_normal(n)
    if baseline_trait is not None:
        zb = np.sqrt(reliability) * baseline_trait + np.sqrt(1 - reliability) * zb
    cb = RESIDUAL_CORR["baseline"]
    zq = cb * zb + np.sqrt(1 - cb ** 2) * rng.standard_normal(n)
    if baseline_shift is not None:  # in MADRS points, the same number of SDs for QIDS-SR
        zb = zb + baseline_shift / MADRS_BASELINE[1]
        zq = zq + baseline_shift / MADRS_BASELINE[1]
    out["madrs_baseline"] = integer_scale(*MADRS_BASELINE)(zb)
    out["qids_sr_baseline"] = integer_scale(*QIDS_BASELINE)(zq)
    ci = RESIDUAL_CORR["improvement"]
    cand_m = residual_vectors(x_sg, N_CANDIDATES, rng, (g_sg,))
    imp_m, rhos["r_madrs"], i = plant_correlated(
        x_sg, targets["r_madrs"], cand_m,
        _improvement_scale(out["madrs_baseline"], *MADRS_IMPROVEMENT, 60))
    f = residual_vectors(x_sg, N_CANDIDATES, rng, (g_sg, cand_m[i]))
    cand_q = ci * cand_m[i] + np.sqrt(1 - ci ** 2) * f
    imp_q, rhos["r_qids"], _ = plant_correlated(
        x_sg, targets["r_qids"], cand_q,
        _improvement_scale(out["qids_sr_baseline"], *QIDS_IMPROVEMENT, 27))
    out["madrs_day1"] = out["madrs_baseline"] - imp_m
    out["qids_sr_day1"] = out["qids_sr_baseline"] - imp_q
    return out, rhos


def build_phenotypes(truth: pd.DataFrame, options: dict, rng: np.random.Generator
                     ) -> tuple[dict[str, pd.DataFrame], dict]:
    """Return the phenotype tables and the planted-correlation record.

    Parameters
    ----------
    truth : pandas.DataFrame
        One row per participant x session with ``participant_id``, ``session_id``,
        ``pretreatment``, ``pgacc_delta_rcbf`` and ``sgacc_pre_rcbf`` (phenotype_truth).
    options : dict
        Validated simulation options (targets, ``null``).
    rng : numpy.random.Generator

    Returns
    -------
    tables : dict
        ``{"cadss": df, "psi": df, "madrs": df, "qids_sr": df}``, rows in ``truth`` order.
    record : dict
        Per arm and pair: target r, latent rho, realised r of the written scores.
    """
    scores = {}
    record = {}
    pids = list(dict.fromkeys(truth["participant_id"]))
    trait = dict(zip(pids, rng.standard_normal(len(pids))))  # depression severity, both periods
    period2 = (truth["period"] == 2).to_numpy()
    shift = np.where(period2, options["period_madrs"] - options["carryover_madrs"], 0.0)
    for arm in ("placebo", "naltrexone"):
        idx = truth.index[truth["pretreatment"] == arm]
        sub = truth.loc[idx]
        targets = {key: (options[key] if arm == "placebo" else options["r_naltrexone"])
                   for _, _, key in PLANTED}
        vals, rhos = arm_scores(
            sub["pgacc_delta_rcbf"].to_numpy(float), sub["sgacc_pre_rcbf"].to_numpy(float),
            targets, rng, bool(options["null"]),
            g_pg=(sub["global_gm_cbf_during"] - sub["global_gm_cbf_pre"]).to_numpy(float),
            g_sg=sub["global_gm_cbf_pre"].to_numpy(float),
            baseline_trait=np.array([trait[p] for p in sub["participant_id"]]),
            reliability=float(options["madrs_reliability"]),
            baseline_shift=shift[truth.index.get_indexer(idx)])
        for col, v in vals.items():
            scores.setdefault(col, pd.Series(index=truth.index, dtype="int64"))
            scores[col].loc[idx] = v
        rec = {}
        for score, imaging, key in PLANTED:
            if score == "madrs_improvement":
                s = vals["madrs_baseline"] - vals["madrs_day1"]
            elif score == "qids_sr_improvement":
                s = vals["qids_sr_baseline"] - vals["qids_sr_day1"]
            else:
                s = vals[score]
            rec[score] = {"imaging": imaging, "target_r": 0.0 if options["null"] else targets[key],
                          "latent_rho": rhos[key],
                          "realised_r": pearson(sub[imaging].to_numpy(float), s)}
        record[arm] = rec
    ids = truth[["participant_id", "session_id"]].reset_index(drop=True)
    s = {k: v.reset_index(drop=True).astype(int) for k, v in scores.items()}
    psi_cols = list(PSI_SUBSCALES)
    psi = ids.assign(**{c: s[c] for c in psi_cols})
    psi["psi_total"] = psi[psi_cols].sum(axis=1)
    cadss_cols = list(CADSS_SUBSCALES)
    cadss = ids.assign(**{c: s[c] for c in cadss_cols})
    cadss.insert(2, "cadss_total", cadss[cadss_cols].sum(axis=1))
    madrs = ids.assign(madrs_baseline=s["madrs_baseline"], madrs_day1=s["madrs_day1"])
    qids = ids.assign(qids_sr_baseline=s["qids_sr_baseline"], qids_sr_day1=s["qids_sr_day1"])
    return {"cadss": cadss, "psi": psi, "madrs": madrs, "qids_sr": qids}, record
