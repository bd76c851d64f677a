"""Registration quality control: measures, thresholds, flags and their summaries.

Three measures, each with a threshold (:data:`DEFAULT_QC_THRESHOLDS`):

* the displacement from the true transform of a simulated scan (:func:`registration_error`);
* the Dice overlap of the warped brain mask with the template's, within the field of view
  (:func:`dice`);
* the correlation of the warped CBF map with the template grey matter (:func:`gm_correlation`).

Also flagged: an implausible head size or a reflection (:func:`affine_summary`) and partial
coverage. :func:`flag_registration` turns one scan's values into the reasons it fails;
:func:`qc_summary` and :func:`goal_report` summarise all scans for the stage notebook.
Partial brain coverage (e.g. 16 thick slices) makes any registration less certain: the cut
planes of the brain mask look like brain edges; the measures are there to show it.
"""

from __future__ import annotations

import math
import os

import nibabel as nib
import numpy as np
import pandas as pd

from ketamine_cbf._docs import fill_doc
from ketamine_cbf.errors import InputError, UsageError
from ketamine_cbf.imaging import load_image
from ketamine_cbf.normalisation import _docs  # noqa: F401  (registers the stage's parameter texts)
from ketamine_cbf.normalisation.maps import smooth_image
from ketamine_cbf.normalisation.registration import Registration, map_points_to_template

__all__ = ["DEFAULT_QC_THRESHOLDS", "dice", "registration_error", "registration_errors",
           "gm_correlation",
           "affine_summary", "flag_registration", "qc_summary", "goal_report"]

#: Thresholds of the registration QC (see :func:`flag_registration`).
DEFAULT_QC_THRESHOLDS = {
    "dice_min": 0.9,           # Dice of the warped brain mask with the template mask (within the FOV)
    "gm_corr_min": 0.3,        # correlation of the CBF map with the template GM map (8 mm smoothed)
    "coverage_min": 0.5,       # fraction of the template brain mask covered by the warped brain mask
    "scale_min": 0.8,          # isotropic scale of the affine (det^(1/3)): plausible head sizes
    "scale_max": 1.25,
    "error_max_voxels": 1.0,   # simulated data: goal for the mean error vs truth (native voxels);
                               # reported, never a reason to exclude (real data have no truth)
}


def _mask_array(m) -> np.ndarray:
    if isinstance(m, (str, os.PathLike)):
        m = load_image(m, "mask")
    return np.asarray(m.dataobj if hasattr(m, "dataobj") else m) > 0


def dice(a, b, within=None) -> float:
    """Return the Dice coefficient ``2|A∩B| / (|A|+|B|)`` of two masks.

    The overlap measure of :footcite:t:`dice1945`.

    Parameters
    ----------
    a, b : path, Nifti1Image or array
        Masks (non-zero = inside) of the same shape.
    within : path, Nifti1Image or array, optional
        Restricts both masks, e.g. to the field of view of a scan with partial brain
        coverage.

    Returns
    -------
    float
        Dice coefficient; NaN if both masks are empty.

    Raises
    ------
    InputError
        Masks of different shapes.

    References
    ----------
    .. footbibliography::

    Examples
    --------
    >>> import numpy as np
    >>> dice(np.array([1, 1, 0, 0]), np.array([0, 1, 1, 0]))
    0.5
    """
    a, b = _mask_array(a), _mask_array(b)
    if a.shape != b.shape:
        raise InputError(f"Dice: masks of different shapes {a.shape} and {b.shape}")
    if within is not None:
        w = _mask_array(within)
        a, b = a & w, b & w
    n = a.sum() + b.sum()
    return float(2.0 * (a & b).sum() / n) if n else float("nan")


def registration_error(mask, registration: Registration, true_mapping,
                       true_voxel_to_scanner: np.ndarray | None = None) -> tuple[float, float]:
    """Return mean and max displacement (mm) between the estimated and the true mapping.

    For every voxel ``v`` of the native brain mask: the distance, in template mm, between
    where the registration puts the voxel's content, ``T_est(M v)``, and where it truly
    belongs, ``T_true(M_true v)`` (``M``: the image's voxel -> scanner affine;
    ``M_true``: the correct one, by default ``M``). For a simulated participant with their
    own anatomy ``T_true`` is the rigid pose followed by the warp to the template
    (:class:`ketamine_cbf.io.groundtruth.TrueMapping`), so an affine registration keeps the
    error of the anatomy it cannot model.

    Parameters
    ----------
    mask : path or Nifti1Image
        Native brain mask (its affine gives the scanner coordinates).
    registration : Registration
        The estimated registration.
    true_mapping : (4, 4) array or callable
        Ground truth: an affine ``x_template = A_true @ [x_scanner, 1]`` or a function of
        (N, 3) scanner mm returning (N, 3) template mm.
    true_voxel_to_scanner : (4, 4) array, optional
        Correct voxel -> scanner affine of the native grid (e.g. from the raw ASL file of
        a simulated dataset). With it, a corrupted header downstream (flipped or shifted
        axis) shows up as error even when the registration is internally consistent, e.g.
        a left-right flip of a nearly symmetric brain centred in the field of view.

    Returns
    -------
    (float, float)
        Mean and maximum displacement over the mask's voxels (mm).

    Raises
    ------
    InputError
        Unreadable or empty mask.
    """
    err = registration_errors(mask, registration, true_mapping, true_voxel_to_scanner)
    return err["error_mean_mm"], err["error_max_mm"]


def _errors(mask, registration, true_mapping, true_voxel_to_scanner=None):
    """Return (true template positions (N, 3), displacement errors (N,)) of the mask voxels."""
    m = load_image(mask, "brain mask")
    ijk = np.argwhere(np.asarray(m.dataobj) > 0)
    if len(ijk) == 0:
        raise InputError("brain mask is empty: registration error undefined")
    vox = np.c_[ijk, np.ones(len(ijk))].T
    x = (m.affine @ vox).T[:, :3]
    est = map_points_to_template(x, registration)
    m_true = m.affine if true_voxel_to_scanner is None else np.asarray(true_voxel_to_scanner)
    x_true = (m_true @ vox).T[:, :3]
    if callable(true_mapping):
        true = np.asarray(true_mapping(x_true))
    else:
        A = np.asarray(true_mapping)
        true = x_true @ A[:3, :3].T + A[:3, 3]
    return true, np.linalg.norm(est - true, axis=1)


def registration_errors(mask, registration: Registration, true_mapping,
                        true_voxel_to_scanner: np.ndarray | None = None,
                        regions: dict | None = None, radius: float = 10.0) -> dict:
    """Return the registration error over the brain and within regions of the template.

    As :func:`registration_error` (mean and max over the native brain mask), plus for each
    region ``name: centre`` (template mm) the mean error over the voxels whose *true*
    template position lies within ``radius`` mm of the centre, and the mean over all the
    regions together (``error_<name>_mm``, ``error_regions_mm``; NaN when no voxel falls
    there). With the ACC centres this is the error where the study's effects are.

    Returns
    -------
    dict
        ``error_mean_mm``, ``error_max_mm`` and the regional means.
    """
    true, d = _errors(mask, registration, true_mapping, true_voxel_to_scanner)
    out = {"error_mean_mm": float(d.mean()), "error_max_mm": float(d.max())}
    inside_any = np.zeros(len(d), bool)
    for name, c in (regions or {}).items():
        inside = np.sum((true - np.asarray(c, float)) ** 2, axis=1) <= radius ** 2
        inside_any |= inside
        out[f"error_{name}_mm"] = float(d[inside].mean()) if inside.any() else float("nan")
    if regions:
        out["error_regions_mm"] = float(d[inside_any].mean()) if inside_any.any() else float("nan")
    return out


@fill_doc
def gm_correlation(cbf, gm_prob, within, fwhm: float = 8.0) -> float:
    """Pearson correlation of a template-space CBF map with the template GM probability.

    Grey-matter CBF is 2-3 times white-matter CBF :footcite:p:`alsop2015`,
    so a correctly normalised CBF map correlates positively with the GM probability map; a
    misregistered (shifted, rotated, flipped) map much less. A contrast-independent
    counterpart of the mask Dice, in the spirit of ExploreASL's comparison of CBF with a
    pseudo-CBF template built from tissue maps :footcite:p:`mutsaerts2020`. Both maps are
    first smoothed with the same Gaussian kernel inside ``within`` (normalised convolution,
    :func:`ketamine_cbf.normalisation.maps.smooth_image`), which removes most of the noise
    of a single ASL map and matches the maps' resolution.

    Parameters
    ----------
    cbf, gm_prob : path or Nifti1Image
        Images on the same template grid.
    within : array-like of bool
        Voxels used (e.g. template brain ∩ warped brain mask ∩ field of view).
    %(fwhm)s
        Applied to both maps; 0 = none.

    Returns
    -------
    float
        Correlation coefficient; NaN if fewer than 10 voxels or a constant map.

    Raises
    ------
    InputError
        ``within`` on another grid than the CBF map.

    References
    ----------
    .. footbibliography::
    """
    cbf = load_image(cbf, "CBF")
    w = np.asarray(within, dtype=bool)
    if w.shape != cbf.shape:
        raise InputError(f"mask shape {w.shape} differs from CBF shape {cbf.shape}")
    m = nib.Nifti1Image(w.astype(np.uint8), cbf.affine)
    c = np.asarray(smooth_image(cbf, fwhm, mask=m).dataobj, dtype=np.float64)
    g = np.asarray(smooth_image(gm_prob, fwhm, mask=m).dataobj, dtype=np.float64)
    if w.sum() < 10 or np.std(c[w]) == 0 or np.std(g[w]) == 0:
        return float("nan")
    return float(np.corrcoef(c[w], g[w])[0, 1])


def affine_summary(affine: np.ndarray) -> dict:
    """Summarise a scanner -> template affine: isotropic scale, reflection, rotation.

    Parameters
    ----------
    affine : (4, 4) array
        ``x_template = affine @ [x_scanner, 1]``.

    Returns
    -------
    dict
        ``scale`` = ``abs(det) ** (1/3)`` (template size / head size), ``det_sign`` (-1 = the map
        contains a reflection), ``rotation_deg`` (angle of the rotation of the polar
        decomposition ``L = R S``).

    Examples
    --------
    >>> import numpy as np
    >>> a = np.diag([1.1, 1.1, 1.1, 1.0])
    >>> a[:2, :2] = 1.1 * np.array([[0.0, -1.0], [1.0, 0.0]])
    >>> s = affine_summary(a)
    >>> round(s["scale"], 6), s["det_sign"], round(s["rotation_deg"], 6)
    (1.1, 1, 90.0)
    """
    lin = np.asarray(affine, dtype=float)[:3, :3]
    det = np.linalg.det(lin)
    u, _, vt = np.linalg.svd(lin)
    r = u @ vt
    angle = math.degrees(math.acos(np.clip((np.trace(r) - 1.0) / 2.0, -1.0, 1.0)))
    return {"scale": float(abs(det) ** (1.0 / 3.0)), "det_sign": int(np.sign(det)),
            "rotation_deg": float(angle)}


def _thresholds(thresholds: dict | None) -> dict:
    t = dict(DEFAULT_QC_THRESHOLDS)
    for k, v in (thresholds or {}).items():
        if k not in t:
            raise UsageError(f"unknown QC threshold {k!r}; known: {', '.join(sorted(t))}")
        t[k] = float(v)
    return t


def flag_registration(row: dict, thresholds: dict | None = None) -> list[str]:
    """Return the reasons a scan's registration is flagged (empty list: pass).

    Parameters
    ----------
    row : dict
        QC values: ``dice``, ``gm_corr``, ``coverage``, ``scale``, ``det_sign``. A missing
        or NaN Dice, GM correlation or coverage counts as a failure. The error against a
        simulated truth (``error_mean_mm``) is never a reason: the pipeline must decide on
        simulated data exactly as on real data, where no truth exists; it is reported
        against its goal by :func:`goal_report`.
    thresholds : dict, optional
        Overrides of :data:`DEFAULT_QC_THRESHOLDS`.

    Returns
    -------
    list of str
        One reason per failed check, e.g. ``"dice 0.812 < 0.9"``.

    Raises
    ------
    UsageError
        An unknown threshold name.

    Examples
    --------
    >>> flag_registration({"dice": 0.95, "gm_corr": 0.6, "coverage": 0.9, "scale": 1.4})
    ['scale 1.40 outside [0.8, 1.25]']
    """
    t = _thresholds(thresholds)

    def val(k):
        v = row.get(k, float("nan"))
        return float("nan") if v is None else float(v)

    flags = []
    if not val("dice") >= t["dice_min"]:
        flags.append(f"dice {val('dice'):.3f} < {t['dice_min']:g}")
    if not val("gm_corr") >= t["gm_corr_min"]:
        flags.append(f"GM correlation {val('gm_corr'):.2f} < {t['gm_corr_min']:g}")
    if not val("coverage") >= t["coverage_min"]:
        flags.append(f"coverage {val('coverage'):.2f} < {t['coverage_min']:g}")
    scale = val("scale")
    if np.isfinite(scale) and not (t["scale_min"] <= scale <= t["scale_max"]):
        flags.append(f"scale {scale:.2f} outside [{t['scale_min']:g}, {t['scale_max']:g}]")
    if row.get("det_sign", 1) == -1:
        flags.append("transform contains a reflection")
    return flags


_SUMMARY_METRICS = (
    ("error_mean_mm", "mean displacement vs truth (mm)"),
    ("error_max_mm", "max displacement vs truth (mm)"),
    ("error_acc_mm", "mean displacement vs truth in the ACC (mm)"),
    ("dice", "Dice, warped vs template brain mask"),
    ("gm_corr", "correlation of CBF with template GM"),
    ("coverage", "fraction of template brain covered by the scan"),
    ("scale", "isotropic scale of the affine"),
    ("rotation_deg", "head rotation vs template (degrees)"),
)


def qc_summary(qc: pd.DataFrame) -> pd.DataFrame:
    """Median, minimum and maximum of each registration QC metric over scans.

    Parameters
    ----------
    qc : pandas.DataFrame
        ``registration_qc.tsv``.

    Returns
    -------
    pandas.DataFrame
        One row per metric (``error_mean_mm``, ``error_max_mm``, ``dice``, ``gm_corr``,
        ``coverage``, ``scale``, ``rotation_deg``) with ``n``, ``median``, ``min``, ``max``;
        metrics that are all NaN (e.g. the error of real data) are left out.
    """
    rows = []
    for col, what in _SUMMARY_METRICS:
        if col not in qc:
            continue
        v = pd.to_numeric(qc[col], errors="coerce").dropna()
        if len(v):
            rows.append({"metric": col, "meaning": what, "n": len(v), "median": v.median(),
                         "min": v.min(), "max": v.max()})
    return pd.DataFrame(rows)


def goal_report(qc: pd.DataFrame, timing: dict, wall_seconds: float) -> str:
    """Markdown list: the stage's wall time, accuracy against the truth, Dice and flags.

    Parameters
    ----------
    qc : pandas.DataFrame
        ``registration_qc.tsv``.
    timing : dict
        ``NormalisationResult.timing`` (``n_computed``, ``n_cached``).
    wall_seconds : float
        Wall time of the stage.

    Returns
    -------
    str
        One bullet per check, each saying whether its goal (the default threshold of
        :data:`DEFAULT_QC_THRESHOLDS`, whatever the run's overrides) was met.
    """
    t = DEFAULT_QC_THRESHOLDS
    lines = [f"* Wall time of the stage: {wall_seconds:.0f} s for {len(qc)} scans "
             f"({timing['n_computed']} registered, {timing['n_cached']} from the cache)."]
    if qc["error_mean_mm"].notna().any():
        err = qc["error_mean_mm"]
        vox = err / qc["voxel_size_mm"]
        met = "met" if (vox < t["error_max_voxels"]).all() else "NOT met"
        lines.append(f"* Mean registration error against the truth: median {err.median():.2f} mm, "
                     f"largest {err.max():.2f} mm = {vox.max():.2f} native voxels "
                     f"(goal: below {t['error_max_voxels']:g} voxel for every scan: {met}).")
        if "error_acc_mm" in qc and qc["error_acc_mm"].notna().any():
            acc = qc["error_acc_mm"]
            lines.append(f"* Mean error within 10 mm of the ACC centres: median {acc.median():.2f} "
                         f"mm, largest {acc.max():.2f} mm (where the study's effects are).")
    met = "met" if (qc["dice"] >= t["dice_min"]).all() else "NOT met"
    lines.append(f"* Dice with the template brain mask: lowest {qc['dice'].min():.3f} "
                 f"(goal ≥ {t['dice_min']:g} for every scan: {met}).")
    lines.append(f"* Scans flagged: {int((~qc['registration_qc_pass']).sum())} of {len(qc)}.")
    return "\n".join(lines)
