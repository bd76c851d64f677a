"""Comparison with a simulated dataset's planted truth: the true ΔCBF of each contrast, recovery.

A simulated dataset carries its ground truth (read only through
:mod:`ketamine_cbf.io.groundtruth`): the pooled ketamine effect ``K`` (mean of the two
arms) and the interaction ``I`` (naltrexone − placebo) as MNI maps. Real data have none,
and every function here then returns None or an empty table. With global normalisation
the truth is normalised like the measured maps (proportional scaling or additive
adjustment, :footcite:t:`friston1990`; see :func:`contrast_truth`).

References
----------
.. footbibliography::
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import ndimage

from ketamine_cbf._docs import fill_doc
from ketamine_cbf.errors import UsageError
from ketamine_cbf.imaging import same_grid
from ketamine_cbf.io.derivatives import template_masks
from ketamine_cbf.io.groundtruth import true_map_paths
from ketamine_cbf.voxelwise import _docs  # noqa: F401  (registers the stage's parameter texts)
from ketamine_cbf.voxelwise.contrasts import mean_map
from ketamine_cbf.voxelwise.report import METHOD_KEYS, significant

__all__ = ["contrast_truth", "truth_recovery", "recovery_table"]

#: The planted maps (``desc-`` of the ground truth) of the pooled effect and the interaction.
_TRUTH_DESCS = ("ketamineEffect", "interactionEffect")


def _planted(bids_dir, target) -> dict | None:
    """The planted ``K`` and ``I`` maps on ``target``'s grid (float64), or None (real data)."""
    from nilearn.image import load_img, resample_to_img

    found = {}
    for desc in _TRUTH_DESCS:
        hits = true_map_paths(bids_dir, desc)
        if not hits:
            return None
        img = load_img(hits[0])
        if not same_grid(img, target):
            img = resample_to_img(img, target, interpolation="linear", force_resample=True,
                                  copy_header=True)
        found[desc] = np.asarray(img.get_fdata(), dtype=np.float64)
    return found


@fill_doc
def contrast_truth(bids_dir, contrast: str, target_img, global_normalise: str = "proportional",
                   baseline_img=None, gm_img=None, global_gm_threshold: float = 0.5):
    """Planted group ΔCBF of a contrast for a simulated dataset, on the analysis grid.

    The contrasts' truths are ``ket_placebo = K - I/2``, ``ket_naltrexone = K + I/2``,
    ``ket_pooled = K``, ``interaction = I`` (ml/100 g/min, absolute).

    With global normalisation the measured maps estimate the truth *after the same
    normalisation*; to first order in the (small) relative changes, proportional
    scaling gives ``T - (g_T / G) B`` and additive adjustment ``T - g_T``, where ``g_T``
    is the mean of the truth ``T`` over grey matter (GM probability >=
    ``global_gm_threshold``, stage 2's definition of global CBF), ``B`` the mean baseline
    CBF map and ``G`` its GM mean :footcite:p:`friston1990`.

    Parameters
    ----------
    %(bids_dir)s
    %(contrast)s
    target_img : niimg
        Grid of the result (the analysis mask).
    %(global_normalise)s
    baseline_img, gm_img : niimg, optional
        Mean pre-infusion CBF (:func:`ketamine_cbf.voxelwise.contrasts.mean_map`) and GM
        probability on ``target_img``'s grid; required with normalisation.
    %(global_gm_threshold)s

    Returns
    -------
    nibabel.Nifti1Image or None
        None when the dataset has no ground truth (real data).

    Raises
    ------
    UsageError
        Normalisation without ``baseline_img`` and ``gm_img``, or an unknown one.

    References
    ----------
    .. footbibliography::
    """
    from nilearn.image import load_img

    target = load_img(target_img)
    found = _planted(bids_dir, target)
    if found is None:
        return None
    k, i = found["ketamineEffect"], found["interactionEffect"]
    data = {"ket_placebo": k - i / 2, "ket_naltrexone": k + i / 2, "ket_pooled": k,
            "interaction": i}[contrast]
    if global_normalise != "none":
        if baseline_img is None or gm_img is None:
            raise UsageError("contrast_truth: global normalisation needs baseline_img and gm_img")
        gm = np.asarray(load_img(gm_img).dataobj, dtype=np.float64) >= global_gm_threshold
        g_t = float(data[gm].mean())
        if global_normalise == "proportional":
            base = np.asarray(load_img(baseline_img).get_fdata(), dtype=np.float64)
            data = data - g_t / float(base[gm].mean()) * base
        elif global_normalise == "additive":
            data = data - g_t
        else:
            raise UsageError(f"unknown global_normalise {global_normalise!r}")
    return nib.Nifti1Image(data.astype(np.float32), target.affine)


@fill_doc
def truth_recovery(result, truth_img, fwe_alpha: float = 0.05, table_method: str = "tfce",
                   min_effect: float = 2.0, null_effect: float = 0.5) -> dict:
    """Compare a contrast's result with the planted effect of a simulated dataset.

    Parameters
    ----------
    result : GroupResult
        One contrast's inference.
    truth_img : Nifti1Image
        Planted group ΔCBF on the analysis grid (:func:`contrast_truth`).
    %(fwe_alpha)s
    %(table_method)s
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
    sig = significant(result.maps[METHOD_KEYS[table_method]], fwe_alpha)
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
        "contrast": result.contrast, "method": table_method,
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


@fill_doc
def recovery_table(bids_dir, results: dict, cbf_maps: pd.DataFrame, normalisation_dir: str | Path,
                   global_normalise: str = "proportional", smoothed: bool = True,
                   fwe_alpha: float = 0.05, table_method: str = "tfce") -> pd.DataFrame:
    """:func:`~ketamine_cbf.voxelwise.truth.truth_recovery` of every contrast with a planted truth.

    An empty table for real data (no ground truth).

    The truth is normalised as the data were (:func:`contrast_truth`), with the mean
    pre-infusion CBF map (:func:`ketamine_cbf.voxelwise.contrasts.mean_map`) and stage 2's
    GM probability map on the analysis grid.

    Parameters
    ----------
    %(bids_dir)s
    %(results)s
    cbf_maps : pandas.DataFrame
        Stage 2's table (:func:`ketamine_cbf.io.derivatives.read_cbf_maps`).
    normalisation_dir : str or Path
        Stage 2's folder (template GM probability).
    %(global_normalise)s
    %(smoothed)s
    %(fwe_alpha)s
    %(table_method)s

    Returns
    -------
    pandas.DataFrame
        One row per contrast (the keys of :func:`truth_recovery`); no rows for real data.
    """
    if not results:
        return pd.DataFrame()
    mask_img = next(iter(results.values())).mask_img
    gm_path = template_masks(normalisation_dir, mask_img)[1]
    baseline = mean_map(cbf_maps, "pre", smoothed) if global_normalise != "none" else None
    rows = []
    for c, r in results.items():
        truth = contrast_truth(bids_dir, c, mask_img, global_normalise, baseline, gm_path)
        if truth is not None:
            rows.append(truth_recovery(r, truth, fwe_alpha, table_method))
    return pd.DataFrame(rows)
