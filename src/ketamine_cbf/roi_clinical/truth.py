"""Stage 4 against a simulated dataset's ground truth (nothing here runs on real data).

The truth is read only through :mod:`ketamine_cbf.io.groundtruth`: the true MNI CBF maps of
every scan (ROI values with the stage's own masks, to see what the pipeline loses) and the
correlations the simulation planted (to see whether the stage recovers them). On real
data every function here returns None.

Entry points of the notebook steps: :func:`truth_roi_values` with :func:`compare_to_truth`,
and :func:`read_planted_correlations` with :func:`planted_vs_recovered` and
:func:`recovery_sentence`.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from ketamine_cbf.imaging import same_grid
from ketamine_cbf.io.bids import read_tsv
from ketamine_cbf.io.groundtruth import groundtruth_dir, read_truth
from ketamine_cbf.reference.rois import resample_mask
from ketamine_cbf.roi_clinical.extraction import extract_roi_values

__all__ = ["TRUTH_MEASURES", "groundtruth_cbf_maps", "truth_roi_values", "compare_to_truth",
           "read_planted_correlations", "planted_vs_recovered", "recovery_sentence"]

#: Imaging columns of the simulation's phenotype_truth.tsv -> (our measure, value type).
TRUTH_MEASURES = {
    "pgacc_delta_rcbf": ("pgACC_delta", "rcbf"),
    "sgacc_pre_rcbf": ("sgACC_baseline", "rcbf"),
    "pgacc_delta_cbf": ("pgACC_delta", "cbf"),
    "sgacc_pre_cbf": ("sgACC_baseline", "cbf"),
}


def _session_periods(bids_dir) -> dict:
    """(participant, session) -> period from the raw ``sub-*_sessions.tsv`` files."""
    period = {}
    for p in sorted(Path(bids_dir).glob("sub-*/sub-*_sessions.tsv")):
        for _, r in read_tsv(p, ["session_id"]).iterrows():
            period[(p.parent.name, r["session_id"])] = str(r.get("period", "n/a"))
    return period


def groundtruth_cbf_maps(bids_dir) -> pd.DataFrame | None:
    """Scan table of a simulated dataset's true MNI CBF maps (None for real data).

    Parameters
    ----------
    bids_dir : str or Path
        Root of a simulated dataset (:func:`ketamine_cbf.io.groundtruth.read_truth`).

    Returns
    -------
    pandas.DataFrame or None
        The columns of ``cbf_maps.tsv`` that the ROI extraction uses (``cbf`` relative
        to :func:`ketamine_cbf.io.groundtruth.groundtruth_dir`, ``cbf_path`` absolute,
        ``global_gm_cbf`` the truth's global GM CBF, ``qc_pass`` True), so the
        extraction can be run on the truth to see what the pipeline loses.
    """
    doc = read_truth(bids_dir)
    scans = pd.DataFrame((doc or {}).get("scans", []))
    if not len(scans):
        return None
    gt = groundtruth_dir(bids_dir)
    period = _session_periods(bids_dir)
    rows = []
    for _, s in scans.iterrows():
        pid, ses, run = s["participant_id"], s["session_id"], int(s["run"])
        hits = sorted((gt / pid / ses / "perf").glob(f"{pid}_{ses}_run-{run}_space-*_desc-true_cbf.nii.gz"))
        if not hits:
            continue
        rows.append({"participant_id": pid, "session_id": ses, "run": str(run),
                     "arm": s["pretreatment"], "period": period.get((pid, ses), "n/a"),
                     "timepoint": s["timepoint"], "cbf": str(hits[0].relative_to(gt)),
                     "cbf_path": str(hits[0]), "global_gm_cbf": float(s["global_gm_cbf"]),
                     "qc_pass": True})
    return pd.DataFrame(rows)


def truth_roi_values(bids_dir, masks: dict) -> pd.DataFrame | None:
    """ROI values of a simulated dataset's true MNI CBF maps, with the same masks.

    The masks are resampled (covered fraction >= 0.5) if the truth grid differs from
    theirs.

    Parameters
    ----------
    bids_dir : str or Path
        Root of a simulated dataset.
    masks : dict of str to nibabel.Nifti1Image
        The stage's ROI masks.

    Returns
    -------
    pandas.DataFrame or None
        As :func:`ketamine_cbf.roi_clinical.extraction.extract_roi_values`; None for real
        data (no ground truth).
    """
    table = groundtruth_cbf_maps(bids_dir)
    if table is None or not len(table):
        return None
    ref = nib.load(table["cbf_path"].iloc[0])
    if not same_grid(ref, next(iter(masks.values())), atol=1e-3):
        masks = {k: resample_mask(v, ref) for k, v in masks.items()}
    return extract_roi_values(table, masks)


def compare_to_truth(measured: pd.DataFrame, truth: pd.DataFrame, value: str = "cbf") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Match pipeline ROI values to truth ROI values scan by scan (by ID, not position).

    Parameters
    ----------
    measured, truth : pandas.DataFrame
        Long ROI tables (:func:`ketamine_cbf.roi_clinical.extraction.extract_roi_values`,
        :func:`truth_roi_values`).
    value : {"cbf", "rcbf"}

    Returns
    -------
    merged : pandas.DataFrame
        One row per scan x ROI with ``<value>`` (pipeline) and ``<value>_truth``.
    summary : pandas.DataFrame
        Per ROI: ``n``, Pearson ``r`` between pipeline and truth, ``mean_bias``
        (pipeline − truth) and ``ratio`` (mean pipeline / mean truth).
    """
    key = ["participant_id", "session_id", "run", "roi"]
    a = measured[key + [value]].copy()
    b = truth[key + [value]].rename(columns={value: f"{value}_truth"})
    for t in (a, b):
        t["run"] = t["run"].astype(str)
    merged = a.merge(b, on=key, how="inner", validate="one_to_one")
    rows = []
    for roi, g in merged.groupby("roi", sort=False):
        g = g.dropna()
        rows.append({"roi": roi, "n": len(g),
                     "r": float(np.corrcoef(g[value], g[f"{value}_truth"])[0, 1]) if len(g) > 2 else np.nan,
                     "mean_bias": float((g[value] - g[f"{value}_truth"]).mean()),
                     "ratio": float(g[value].mean() / g[f"{value}_truth"].mean())})
    return merged, pd.DataFrame(rows)


def read_planted_correlations(bids_dir) -> pd.DataFrame | None:
    """The correlations planted in a simulated dataset (None for real data).

    Reads ``planted_correlations`` of the truth (:func:`ketamine_cbf.io.groundtruth.read_truth`):
    per arm and score, the truth-level imaging measure, the target r and the realised r
    of the written scores against the truth-level ROI values.

    Parameters
    ----------
    bids_dir : str or Path
        Root of the dataset.

    Returns
    -------
    pandas.DataFrame or None
        ``arm``, ``x`` (our brain measure), ``y`` (score), ``value`` (cbf | rcbf),
        ``target_r``, ``planted_r`` (realised at truth level), ``truth_imaging``.

    Raises
    ------
    InputError
        The truth file is not valid JSON.
    """
    planted = (read_truth(bids_dir) or {}).get("planted_correlations")
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


def planted_vs_recovered(corr: pd.DataFrame, planted: pd.DataFrame, method: str = "pearson",
                         value: str | None = None) -> pd.DataFrame:
    """Put each planted correlation next to the recovered one and its 95% CIs.

    Parameters
    ----------
    corr : pandas.DataFrame
        Output of :func:`ketamine_cbf.roi_clinical.correlations.brain_behaviour_correlations`.
    planted : pandas.DataFrame
        Output of :func:`read_planted_correlations`.
    method : {"pearson", "spearman"}
    value : {"rcbf", "cbf"}, optional
        Keep the planted correlations of this brain measure only (the one ``corr`` used).

    Returns
    -------
    pandas.DataFrame
        ``arm``, ``x``, ``y``, ``target_r``, ``planted_r``, ``n``, ``r`` (recovered),
        ``ci_low``, ``ci_high`` (bootstrap), ``within_ci`` (planted r inside the
        bootstrap CI), ``within_fisher_ci``, ``p``, ``q_fdr``.
    """
    if value is not None:
        planted = planted[planted["value"] == value]
    c = corr[corr["method"] == method]
    out = planted.merge(c, on=["arm", "x", "y"], how="left", validate="one_to_one")
    out["within_ci"] = (out["planted_r"] >= out["ci_low"]) & (out["planted_r"] <= out["ci_high"])
    out["within_fisher_ci"] = ((out["planted_r"] >= out["ci_fisher_low"])
                               & (out["planted_r"] <= out["ci_fisher_high"]))
    return out[["arm", "x", "y", "target_r", "planted_r", "n", "r", "ci_low", "ci_high",
                "within_ci", "within_fisher_ci", "p", "q_fdr"]]


def recovery_sentence(recovery: pd.DataFrame) -> str:
    """One Markdown sentence: how many planted r lie inside the recovered bootstrap CI.

    Parameters
    ----------
    recovery : pandas.DataFrame
        Output of :func:`planted_vs_recovered` (its ``within_ci`` column is counted).

    Returns
    -------
    str
        E.g. "**Ground truth (simulated data):** 7 of 8 planted correlations lie inside
        our bootstrap 95% CI."
    """
    return (f"**Ground truth (simulated data):** {int(recovery['within_ci'].sum())} of "
            f"{len(recovery)} planted correlations lie inside our bootstrap 95% CI.")
