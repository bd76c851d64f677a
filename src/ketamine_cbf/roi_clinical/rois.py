"""ROI mean CBF of every scan (stage 4's measurements), and the simulated truth's.

The ROI definitions (sgACC, pgACC, dACC from the Harvard-Oxford atlas split at the genu,
spheres, user atlases or masks) are shared by stages 3 and 4 and live in
:mod:`ketamine_cbf.reference.rois`; this module averages stage 2's CBF maps in them.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from ketamine_cbf.errors import InputError
from ketamine_cbf.io.bids import read_tsv
from ketamine_cbf.reference.rois import _as_img, _resample_continuous, resample_mask

def roi_means(images, masks: dict, names: list[str] | None = None) -> pd.DataFrame:
    """Mean value of each image within each mask (NaN voxels ignored).

    Parameters
    ----------
    images : list of niimg-like
        Images on the masks' grid (e.g. CBF maps in ml/100 g/min).
    masks : dict of str to niimg-like
        Binary masks on the same grid.
    names : list of str, optional
        Row labels (default: the paths, or 0, 1, ...).

    Returns
    -------
    pandas.DataFrame
        One row per image, one column per ROI; plus ``<roi>_n_voxels`` (finite voxels
        averaged).

    Raises
    ------
    InputError
        An image whose grid differs from the masks' (names the file).
    """
    mask_data = {k: np.asarray(_as_img(v).dataobj) > 0 for k, v in masks.items()}
    ref = _as_img(next(iter(masks.values())))
    rows = []
    for i, im in enumerate(images):
        label = str(im) if isinstance(im, (str, Path)) else (names[i] if names else i)
        img = _as_img(im, "CBF map")
        if img.shape[:3] != ref.shape[:3] or not np.allclose(img.affine, ref.affine, atol=1e-3):
            raise InputError(f"{label}: grid {img.shape[:3]} differs from the ROI masks' grid "
                             f"{ref.shape[:3]} (maps must be on the normalisation template grid)")
        data = np.asarray(img.dataobj, dtype=np.float64)
        if data.ndim == 4:
            data = data[..., 0]
        row = {}
        for k, m in mask_data.items():
            v = data[m]
            v = v[np.isfinite(v)]
            row[k] = float(v.mean()) if v.size else np.nan
            row[f"{k}_n_voxels"] = int(v.size)
        rows.append(row)
    return pd.DataFrame(rows, index=names)


#: Columns ``cbf_maps.tsv`` must have (DEVELOPING.md, stage-02 contract).
CBF_MAPS_COLUMNS = ("participant_id", "session_id", "run", "arm", "period", "timepoint",
                    "cbf", "global_gm_cbf", "qc_pass")


def read_cbf_maps(normalisation_dir, require_files: bool = True) -> pd.DataFrame:
    """Read and validate ``normalisation/cbf_maps.tsv`` (one row per scan).

    Parameters
    ----------
    normalisation_dir : str or Path
        Output folder of stage 02.
    require_files : bool
        Check that every ``cbf`` path exists.

    Returns
    -------
    pandas.DataFrame
        The table with ``global_gm_cbf`` as float, ``qc_pass`` as bool and ``period``
        as string.

    Raises
    ------
    InputError
        Missing file or column, duplicate scans, non-numeric global CBF, missing maps,
        unknown arm/time-point values (the message names the file and the field).
    """
    d = Path(normalisation_dir)
    f = d / "cbf_maps.tsv"
    t = read_tsv(f, CBF_MAPS_COLUMNS, empty_is_na=True,
                 missing="not found (run stage 02_normalisation first)")
    dup = t.duplicated(["participant_id", "session_id", "run"], keep=False)
    if dup.any():
        ids = sorted(set(t.loc[dup, "participant_id"]))
        raise InputError(f"{f}: duplicate rows (participant_id, session_id, run) for {', '.join(ids)}")
    try:
        t["global_gm_cbf"] = pd.to_numeric(t["global_gm_cbf"])
    except ValueError:
        raise InputError(f"{f}: column 'global_gm_cbf' must be numeric (ml/100 g/min)") from None
    t["qc_pass"] = t["qc_pass"].astype(str).str.lower().isin(["true", "1", "yes", "pass"])
    t["period"] = t["period"].fillna("n/a").astype(str)
    for col, allowed in (("timepoint", {"pre", "during"}), ("arm", {"placebo", "naltrexone"})):
        if t[col].isna().any():
            raise InputError(f"{f}: column '{col}' is n/a for {', '.join(sorted(set(t.loc[t[col].isna(), 'participant_id'])))}"
                             " (stage 4 needs the pre-treatment arm and time point of every scan)")
        bad = sorted(set(t[col].dropna()) - allowed)
        if bad:
            raise InputError(f"{f}: column '{col}' has unexpected value(s) {bad}; expected "
                             f"{sorted(allowed)} (set arm_column/timepoint_column in stage 00 for other names)")
    if require_files:
        for p in t["cbf"]:
            if not (d / str(p)).is_file():
                raise InputError(f"{f}: column 'cbf' names a missing file {p}")
    return t


def analysis_grid(normalisation_dir, cbf_maps: pd.DataFrame | None = None):
    """Return (brain mask, grey-matter probability) images of the analysis grid.

    Parameters
    ----------
    normalisation_dir : str or Path
        Stage-02 output folder.
    cbf_maps : pandas.DataFrame, optional
        Scan table, used only for the fallback grid.

    Reads ``*_desc-brain_mask.nii.gz`` and ``*_label-GM_probseg.nii.gz`` at the top of
    the stage-02 folder. Without them (e.g. maps from another pipeline), the grid of
    the first CBF map is used with the MNI152 template brain mask and GM map resampled
    to it.
    """
    d = Path(normalisation_dir)
    brain = sorted(d.glob("*_desc-brain_mask.nii.gz"))
    gm = sorted(d.glob("*_label-GM_probseg.nii.gz"))
    if brain:
        brain_img = nib.load(str(brain[0]))
        gm_img = nib.load(str(gm[0])) if gm else None
        return brain_img, gm_img
    if cbf_maps is None or not len(cbf_maps):
        raise InputError(f"{d}: no *_desc-brain_mask.nii.gz and no CBF maps to take the grid from")
    from ketamine_cbf.reference.templates import template_brain_mask, template_gm

    ref = nib.load(str(d / cbf_maps["cbf"].iloc[0]))
    brain_img = resample_mask(template_brain_mask(1), ref)
    gm_img = _resample_continuous(template_gm(1), ref)
    return brain_img, gm_img


def extract_roi_values(cbf_maps: pd.DataFrame, base_dir, masks: dict, column: str = "cbf") -> pd.DataFrame:
    """ROI mean CBF of every scan, as a tidy (long) table.

    Parameters
    ----------
    cbf_maps : pandas.DataFrame
        The stage-02 scan table (:func:`read_cbf_maps`).
    base_dir : str or Path
        Folder the ``column`` paths are relative to (``normalisation/``).
    masks : dict of str to niimg-like
        ROI masks on the maps' grid.
    column : {"cbf", "cbf_smooth"}
        Which map to average (unsmoothed by default: averaging within the ROI is the
        smoothing).

    Returns
    -------
    pandas.DataFrame
        One row per scan x ROI: the design columns, ``roi``, ``cbf`` (ROI mean,
        ml/100 g/min), ``global_gm_cbf`` (ml/100 g/min), ``rcbf`` (= cbf /
        global_gm_cbf, relative CBF: proportional scaling, Friston et al. 1990),
        ``n_voxels``, ``qc_pass``.

    References
    ----------
    Friston K. J. et al. (1990). The relationship between global and local changes in
    PET scans. J Cereb Blood Flow Metab 10:458-466. doi:10.1038/jcbfm.1990.88
    """
    if column not in cbf_maps.columns:
        raise InputError(f"cbf_maps.tsv: missing column '{column}'")
    base = Path(base_dir)
    wide = roi_means([base / p for p in cbf_maps[column]], masks)
    design = [c for c in ("participant_id", "session_id", "run", "arm", "period", "timepoint")
              if c in cbf_maps.columns]
    rows = []
    for i, (_, scan) in enumerate(cbf_maps.iterrows()):
        for roi in masks:
            r = {c: scan[c] for c in design}
            r.update(roi=roi, cbf=wide.iloc[i][roi], global_gm_cbf=float(scan["global_gm_cbf"]),
                     n_voxels=int(wide.iloc[i][f"{roi}_n_voxels"]), qc_pass=bool(scan["qc_pass"]))
            r["rcbf"] = r["cbf"] / r["global_gm_cbf"] if r["global_gm_cbf"] > 0 else np.nan
            rows.append(r)
    cols = design + ["roi", "cbf", "global_gm_cbf", "rcbf", "n_voxels", "qc_pass"]
    return pd.DataFrame(rows)[cols]


def groundtruth_cbf_maps(bids_dir) -> pd.DataFrame | None:
    """Scan table of a simulated dataset's true MNI CBF maps (None for real data).

    Parameters
    ----------
    bids_dir : str or Path
        Root of a simulated dataset (with ``derivatives/groundtruth/truth.json``).

    Same columns as ``cbf_maps.tsv`` (``cbf`` relative to
    ``derivatives/groundtruth``; ``global_gm_cbf`` the truth's global GM CBF), so the
    ROI extraction can be run on the truth to see what the pipeline loses.
    """
    import json

    gt = Path(bids_dir) / "derivatives" / "groundtruth"
    f = gt / "truth.json"
    if not f.is_file():
        return None
    doc = json.loads(f.read_text())
    scans = pd.DataFrame(doc.get("scans", []))
    if not len(scans):
        return None
    period = {}
    for p in sorted(Path(bids_dir).glob("sub-*/sub-*_sessions.tsv")):
        s = pd.read_csv(p, sep="\t", dtype=str)
        for _, r in s.iterrows():
            period[(p.parent.name, r["session_id"])] = str(r.get("period", "n/a"))
    rows = []
    for _, s in scans.iterrows():
        pid, ses, run = s["participant_id"], s["session_id"], int(s["run"])
        hits = sorted((gt / pid / ses / "perf").glob(
            f"{pid}_{ses}_run-{run}_space-*_desc-true_cbf.nii.gz"))
        if not hits:
            continue
        rows.append({"participant_id": pid, "session_id": ses, "run": str(run),
                     "arm": s["pretreatment"], "period": period.get((pid, ses), "n/a"),
                     "timepoint": s["timepoint"], "cbf": str(hits[0].relative_to(gt)),
                     "global_gm_cbf": float(s["global_gm_cbf"]), "qc_pass": True})
    return pd.DataFrame(rows)


def truth_roi_values(bids_dir, masks: dict) -> pd.DataFrame | None:
    """ROI values of a simulated dataset's true MNI CBF maps, with the same masks.

    Parameters
    ----------
    bids_dir : str or Path
        Root of a simulated dataset.
    masks : dict of str to niimg-like
        The stage's ROI masks.

    The masks are resampled (covered fraction >= 0.5) if the truth grid differs from
    theirs. Returns None for real data (no ``derivatives/groundtruth``).
    """
    table = groundtruth_cbf_maps(bids_dir)
    if table is None or not len(table):
        return None
    gt = Path(bids_dir) / "derivatives" / "groundtruth"
    ref = nib.load(str(gt / table["cbf"].iloc[0]))
    m0 = _as_img(next(iter(masks.values())))
    if ref.shape[:3] != m0.shape[:3] or not np.allclose(ref.affine, m0.affine, atol=1e-3):
        masks = {k: resample_mask(v, ref) for k, v in masks.items()}
    return extract_roi_values(table, gt, masks)


def compare_to_truth(measured: pd.DataFrame, truth: pd.DataFrame, value: str = "cbf") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Match pipeline ROI values to truth ROI values scan by scan (by ID, not position).

    Parameters
    ----------
    measured, truth : pandas.DataFrame
        Long ROI tables (:func:`extract_roi_values`, :func:`truth_roi_values`).
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
