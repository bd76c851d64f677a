"""Quality control of native-space CBF maps: tissue maps, metrics, pass/fail, figures.

Tissue probability maps in the scan's own (native) space come from the MNI152 template
(:mod:`ketamine_cbf.reference.templates`) registered affinely to the scan's ASL reference with
ANTs (antspyx; mutual information, so the T1 contrast of the template and the PD-like
contrast of M0 need not match). The registration is deterministic (fixed seed, one
ITK thread) and cached per scan in ``cache_dir`` under a hash of the reference image
and the registration settings. Stage 2 does the full normalisation separately; here
the tissue maps only need to be good enough to average CBF over grey and white matter.

Metrics (one row per scan)
--------------------------
``gm_cbf``, ``wm_cbf``
    Mean CBF (ml/100 g/min) over voxels with tissue probability ≥ ``tissue_threshold``
    inside the brain mask.
``gm_wm_ratio``
    ``gm_cbf / wm_cbf``; healthy adults ≈ 2-3 at high resolution, lower with the partial
    volume of 3-4 mm voxels.
``neg_gm_pct``
    Percentage of grey-matter voxels with CBF < 0 (noise, motion, label failure).
``spatial_cov``
    Spatial coefficient of variation, SD/mean of CBF in grey matter (Mutsaerts et al.
    2017); high values flag vascular (transit-time) artefacts.
``qei``
    Quality evaluation index (Dolui et al. 2024), in [0, 1]: the geometric mean of
    ``1 − exp(−3.0126 ρ^2.4419)``, ``exp(−0.054 DI^0.9272)`` and
    ``exp(−2.8478 p^0.5196)``, with ρ the Pearson correlation between the CBF map
    (smoothed 5 mm FWHM) and the structural pseudo-CBF 2.5·pGM + pWM, DI the pooled
    within-tissue variance of CBF over GM, WM and CSF divided by |mean GM CBF|, and p the
    fraction of negative GM voxels (coefficients of the published fit, as implemented in
    ASLPrep).
``mask_dice``
    Dice overlap of the ASL brain mask and the registered template brain mask (a failed
    registration or a broken mask shows as a low value).

References
----------
Dolui S. et al. (2024). Automated quality evaluation index for arterial spin labeling
derived cerebral blood flow maps. J Magn Reson Imaging. doi:10.1002/jmri.29308
Mutsaerts H.J.M.M. et al. (2017). The spatial coefficient of variation in arterial spin
labeling cerebral blood flow images. J Cereb Blood Flow Metab 37:3184-3192.
doi:10.1177/0271678X16683690
Avants B.B. et al. (2011). A reproducible evaluation of ANTs similarity metric performance
in brain image registration. NeuroImage 54:2033-2044. doi:10.1016/j.neuroimage.2010.09.025
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from ketamine_cbf.reference import templates
from ketamine_cbf.errors import UsageError
from ketamine_cbf.io.provenance import atomic_path, digest

#: QC metric columns of ``qc.tsv`` (after the design columns), in order.
QC_COLUMNS = ["gm_cbf", "wm_cbf", "gm_wm_ratio", "neg_gm_pct", "spatial_cov", "qei",
              "mask_dice", "n_gm_voxels", "qc_pass", "qc_reasons"]

#: QEI coefficients (Dolui et al. 2024, as implemented in ASLPrep): (a, b) pairs.
QEI_COEF = {"structural": (3.0126, 2.4419), "dispersion": (0.054, 0.9272),
            "negative": (2.8478, 0.5196)}


@dataclass(frozen=True)
class QCParams:
    """Thresholds of the QC pass/fail decision and settings of the tissue maps.

    The pass thresholds are pragmatic screening defaults for adult resting CBF at
    3-4 mm resolution, not validated cut-offs: adjust them to your acquisition.

    Attributes
    ----------
    tissue_threshold : float
        Tissue probability defining GM / WM / CSF voxels (ASLPrep uses 0.7 on
        high-resolution maps; the template maps warped to 3-4 mm voxels are blurrier).
    gm_cbf_range : tuple of float
        Accepted mean GM CBF (ml/100 g/min).
    min_gm_wm_ratio : float
        Minimum GM/WM CBF ratio.
    max_neg_gm_pct : float
        Maximum percentage of negative GM voxels.
    max_spatial_cov : float
        Maximum spatial CoV.
    min_qei : float
        Minimum QEI.
    min_mask_dice : float
        Minimum Dice of the brain mask with the registered template mask.
    registration_resolution : int
        Template resolution (mm) used for the registration.
    seed : int
        Random seed of the registration's metric sampling.
    """

    tissue_threshold: float = 0.5
    gm_cbf_range: tuple = (20.0, 120.0)
    min_gm_wm_ratio: float = 1.1
    max_neg_gm_pct: float = 10.0
    max_spatial_cov: float = 0.8
    min_qei: float = 0.25
    min_mask_dice: float = 0.7
    registration_resolution: int = 4
    seed: int = 0

    def __post_init__(self):
        if not 0 < self.tissue_threshold < 1:
            raise UsageError(f"QC parameter tissue_threshold must be in (0, 1) (got {self.tissue_threshold})")
        lo, hi = self.gm_cbf_range
        if not lo < hi:
            raise UsageError(f"QC parameter gm_cbf_range must be (low, high) (got {self.gm_cbf_range})")

    def as_dict(self) -> dict:
        """Return the parameters as a JSON-serialisable dict."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


# ---------------------------------------------------------------------------- ANTs glue

def _ants():
    """Import antspyx single-threaded (deterministic registration)."""
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = "1"
    import ants

    return ants


def _load(img) -> nib.Nifti1Image:
    if isinstance(img, (str, os.PathLike)):
        return nib.load(str(img))
    return img


def to_ants(img):
    """Convert a nibabel image (or path) to an ANTsImage with the same world geometry.

    NIfTI stores a RAS voxel-to-world affine; ITK uses LPS physical coordinates, so the
    first two rows of the direction and origin change sign. Shears are not supported.
    """
    ants = _ants()
    img = _load(img)
    A = img.affine
    zooms = np.sqrt((A[:3, :3] ** 2).sum(axis=0))
    flip = np.diag([-1.0, -1.0, 1.0])
    data = np.asarray(img.dataobj, dtype=np.float32)
    return ants.from_numpy(data, origin=tuple(flip @ A[:3, 3]), spacing=tuple(zooms),
                           direction=flip @ (A[:3, :3] / zooms))


def register_template(aslref, cache_dir=None, params: QCParams | None = None) -> Path:
    """Affinely register the MNI152 template to an ASL reference image (ANTs, MI metric).

    Parameters
    ----------
    aslref : str, Path or nibabel.Nifti1Image
        The scan's reference image (M0 or mean control).
    cache_dir : str or Path, optional
        Folder where the transform is cached under a hash of the image data, affine and
        registration settings; a later call with the same inputs reads it back.
    params : QCParams, optional

    Returns
    -------
    Path
        ITK affine transform (``.mat``) mapping template to reference, for
        ``ants.apply_transforms(fixed=aslref, moving=template, transformlist=[path])``.
    """
    params = params or QCParams()
    img = _load(aslref)
    data = np.asarray(img.dataobj, dtype=np.float32)
    key = digest({"data": __import__("hashlib").sha256(data.tobytes()).hexdigest(),
                  "shape": list(data.shape), "affine": np.round(img.affine, 6).tolist(),
                  "res": params.registration_resolution, "seed": params.seed, "version": 2})
    cache = Path(cache_dir) if cache_dir else Path(tempfile.gettempdir()) / "ketamine_cbf_qc_cache"
    target = cache / f"template-to-aslref_{key[:24]}.mat"
    if target.is_file():
        return target
    ants = _ants()
    fixed = to_ants(img)
    moving = to_ants(templates.template_t1(params.registration_resolution))
    with tempfile.TemporaryDirectory() as tmp:
        reg = ants.registration(fixed, moving, type_of_transform="Affine",
                                aff_iterations=(100, 50, 20), aff_shrink_factors=(4, 2, 1),
                                aff_smoothing_sigmas=(2, 1, 0),
                                # ANTsPy drops a falsy seed (0) and then samples the metric
                                # randomly: shift to 1..2**31-1 so every seed is honoured
                                random_seed=1 + int(params.seed) % (2 ** 31 - 2),
                                outprefix=str(Path(tmp) / "reg_"), verbose=False)
        with atomic_path(target) as t:
            shutil.copyfile(reg["fwdtransforms"][0], t)
    return target


def native_tissue_maps(aslref, transform, resolution: int = 2) -> dict:
    """Warp template GM / WM / CSF probabilities and brain mask to the reference grid.

    Parameters
    ----------
    aslref : str, Path or nibabel.Nifti1Image
        Target grid.
    transform : str or Path
        From :func:`register_template`.
    resolution : int
        Resolution (mm) of the template maps that are warped (linear interpolation).

    Returns
    -------
    dict
        ``gm``, ``wm``, ``csf``, ``brain``: float arrays on the reference grid (0-1), as
        partial-volume fractions (template smoothed to the native voxel size first).
    """
    ants = _ants()
    ref = _load(aslref)
    fixed = to_ants(ref)
    # partial volume: a native voxel averages the template over its box; approximate the
    # box by a Gaussian of FWHM = voxel size (per axis, minus the template's own voxel)
    # applied before point sampling, so pGM is a partial-volume fraction, not an alias.
    vox = np.sqrt((ref.affine[:3, :3] ** 2).sum(axis=0))
    fwhm = float(np.sqrt(max(float(np.mean(vox)) ** 2 - resolution ** 2, 0.0)))
    out = {}
    for name, fn in (("gm", templates.template_gm), ("wm", templates.template_wm),
                     ("csf", templates.template_csf), ("brain", templates.template_brain_mask)):
        tpl = fn(resolution)
        if fwhm > 0:
            tpl = nib.Nifti1Image(smooth_fwhm(tpl.get_fdata(), tpl.affine, fwhm).astype(np.float32),
                                  tpl.affine)
        warped = ants.apply_transforms(fixed=fixed, moving=to_ants(tpl),
                                       transformlist=[str(transform)], interpolator="linear")
        out[name] = np.clip(warped.numpy().astype(np.float64), 0, 1)
    return out


# ---------------------------------------------------------------------------- metrics

def smooth_fwhm(data, affine, fwhm=5.0) -> np.ndarray:
    """Gaussian smoothing (mm FWHM, scalar or one per axis) with nilearn."""
    from nilearn.image import smooth_img

    fwhm = list(np.atleast_1d(fwhm).astype(float)) if np.ndim(fwhm) else float(fwhm)
    return smooth_img(nib.Nifti1Image(np.asarray(data, np.float64), affine), fwhm).get_fdata()


def quality_evaluation_index(cbf, gm, wm, csf, affine, threshold: float = 0.5,
                             brain=None, fwhm: float = 5.0) -> float:
    """Quality evaluation index of a CBF map (Dolui et al. 2024), in [0, 1].

    QEI = (f_ρ · f_DI · f_neg)^(1/3) with f_ρ = 1 − exp(−3.0126 ρ^2.4419),
    f_DI = exp(−0.054 DI^0.9272), f_neg = exp(−2.8478 p^0.5196); ρ = max(0, Pearson r)
    between CBF (smoothed ``fwhm`` mm) and 2.5·pGM + pWM over the brain; DI = pooled
    variance of CBF within GM, WM, CSF (probability > ``threshold``) / |mean GM CBF|;
    p = fraction of GM voxels with CBF < 0.

    Parameters
    ----------
    cbf, gm, wm, csf : ndarray
        CBF (ml/100 g/min) and tissue probabilities on the same grid.
    affine : ndarray
        Voxel-to-world matrix (for the smoothing kernel in mm).
    threshold : float
    brain : ndarray of bool, optional
        Voxels used for ρ (default: CBF ≠ 0).
    fwhm : float

    Returns
    -------
    float
        NaN if there are fewer than 10 GM voxels.
    """
    s = smooth_fwhm(cbf, affine, fwhm) if fwhm else np.asarray(cbf, float)
    inside = (np.asarray(cbf) != 0) if brain is None else np.asarray(brain, bool)
    gm_m = (gm > threshold) & inside
    wm_m = (wm > threshold) & inside
    csf_m = (csf > threshold) & inside
    if gm_m.sum() < 10:
        return float("nan")
    pseudo = 2.5 * gm + wm
    rho = np.corrcoef(s[inside], pseudo[inside])[0, 1] if inside.sum() > 2 else 0.0
    rho = max(0.0, float(np.nan_to_num(rho)))
    num = den = 0.0
    for m in (gm_m, wm_m, csf_m):
        n = int(m.sum())
        if n > 1:
            num += (n - 1) * float(np.var(s[m]))
            den += n - 1
    di = (num / den) / abs(float(np.mean(s[gm_m]))) if den else 0.0
    p = float(np.mean(s[gm_m] < 0))
    a, b = QEI_COEF["structural"]
    f_rho = 1.0 - np.exp(-a * rho ** b)
    a, b = QEI_COEF["dispersion"]
    f_di = np.exp(-a * di ** b)
    a, b = QEI_COEF["negative"]
    f_neg = np.exp(-a * p ** b)
    return float((f_rho * f_di * f_neg) ** (1.0 / 3.0))


def qc_metrics(cbf, mask, tissue: dict, params: QCParams | None = None) -> dict:
    """Compute the QC metrics of one native-space CBF map (see the module docstring).

    Parameters
    ----------
    cbf, mask : str, Path or nibabel.Nifti1Image
        CBF map (ml/100 g/min) and brain mask on the same grid.
    tissue : dict
        ``gm``, ``wm``, ``csf``, ``brain`` arrays from :func:`native_tissue_maps`.
    params : QCParams, optional

    Returns
    -------
    dict
        The columns :data:`QC_COLUMNS`.
    """
    params = params or QCParams()
    cbf_img, mask_img = _load(cbf), _load(mask)
    c = np.asarray(cbf_img.dataobj, dtype=np.float64)
    m = np.asarray(mask_img.dataobj) > 0
    thr = params.tissue_threshold
    gm_m = (tissue["gm"] >= thr) & m
    wm_m = (tissue["wm"] >= thr) & m
    n_gm = int(gm_m.sum())
    gm = float(c[gm_m].mean()) if n_gm else float("nan")
    wm = float(c[wm_m].mean()) if wm_m.any() else float("nan")
    tpl = tissue["brain"] >= 0.5
    dice = 2.0 * (tpl & m).sum() / max(tpl.sum() + m.sum(), 1)
    out = {
        "gm_cbf": gm, "wm_cbf": wm,
        "gm_wm_ratio": gm / wm if wm and np.isfinite(wm) and wm > 0 else float("nan"),
        "neg_gm_pct": 100.0 * float((c[gm_m] < 0).mean()) if n_gm else float("nan"),
        "spatial_cov": float(c[gm_m].std() / gm) if n_gm and gm > 0 else float("nan"),
        "qei": quality_evaluation_index(c, tissue["gm"], tissue["wm"], tissue["csf"],
                                        cbf_img.affine, thr, brain=m),
        "mask_dice": float(dice),
        "n_gm_voxels": n_gm,
    }
    out.update(qc_decision(out, params))
    return out


def qc_decision(metrics: dict, params: QCParams | None = None) -> dict:
    """Return ``qc_pass`` (bool) and ``qc_reasons`` (failed checks joined by '; ', or 'n/a').

    A NaN metric fails its check.
    """
    params = params or QCParams()
    lo, hi = params.gm_cbf_range
    checks = [
        ("gm_cbf", lambda v: lo <= v <= hi, f"gm_cbf outside {lo:g}-{hi:g}"),
        ("gm_wm_ratio", lambda v: v >= params.min_gm_wm_ratio, f"gm_wm_ratio < {params.min_gm_wm_ratio:g}"),
        ("neg_gm_pct", lambda v: v <= params.max_neg_gm_pct, f"neg_gm_pct > {params.max_neg_gm_pct:g}"),
        ("spatial_cov", lambda v: v <= params.max_spatial_cov, f"spatial_cov > {params.max_spatial_cov:g}"),
        ("qei", lambda v: v >= params.min_qei, f"qei < {params.min_qei:g}"),
        ("mask_dice", lambda v: v >= params.min_mask_dice, f"mask_dice < {params.min_mask_dice:g}"),
    ]
    reasons = []
    for key, ok, text in checks:
        v = metrics.get(key, float("nan"))
        if v is None or not np.isfinite(v) or not ok(v):
            reasons.append(text)
    return {"qc_pass": not reasons, "qc_reasons": "; ".join(reasons) if reasons else "n/a"}


# ---------------------------------------------------------------------------- figures

def _axial_slices(shape, n):
    z = shape[2]
    return np.linspace(0.2 * (z - 1), 0.85 * (z - 1), n).round().astype(int)


def plot_scan(cbf, aslref=None, gm=None, title: str = "", vmax: float = 100.0, n_slices: int = 6,
              att=None):
    """Figure of one scan: reference image with the GM outline, CBF and (multi-PLD) ATT.

    Parameters
    ----------
    cbf, aslref, att : str, Path or nibabel.Nifti1Image
    gm : ndarray, optional
        Native GM probability (drawn as the 0.5 contour on the reference).
    title : str
    vmax : float
        Upper end of the CBF colour scale (ml/100 g/min).
    n_slices : int

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    c = np.asarray(_load(cbf).dataobj, float)
    rows = [("CBF (ml/100 g/min)", c, "viridis", 0, vmax)]
    if aslref is not None:
        r = np.asarray(_load(aslref).dataobj, float)
        rows.insert(0, ("reference (M0 / control)", r, "gray", 0, np.percentile(r[r > 0], 99) if (r > 0).any() else 1))
    if att is not None:
        rows.append(("ATT (s)", np.asarray(_load(att).dataobj, float), "magma", 0, 2.5))
    zs = _axial_slices(c.shape, n_slices)
    fig, axes = plt.subplots(len(rows), n_slices, figsize=(1.6 * n_slices, 1.7 * len(rows) + 0.4),
                             squeeze=False)
    for i, (label, data, cmap, lo, hi) in enumerate(rows):
        for j, z in enumerate(zs):
            ax = axes[i, j]
            im = ax.imshow(np.rot90(data[:, :, z]), cmap=cmap, vmin=lo, vmax=hi)
            if gm is not None and label.startswith("reference"):
                ax.contour(np.rot90(gm[:, :, z]), [0.5], colors="red", linewidths=0.6)
            ax.set_axis_off()
        fig.colorbar(im, ax=axes[i, :].tolist(), fraction=0.02, pad=0.01, label=label)
    fig.suptitle(title, fontsize=9)
    return fig


def plot_montage(cbf_paths, labels, passed=None, vmax: float = 100.0, ncols: int = 8):
    """Montage of the middle axial slice of every CBF map (red title = failed QC).

    Parameters
    ----------
    cbf_paths : list of str or Path
    labels : list of str
        One label per map (e.g. ``sub-01 ses-1 run-2``).
    passed : list of bool, optional
    vmax : float
        Upper end of the colour scale (ml/100 g/min).
    ncols : int

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    n = len(cbf_paths)
    nrows = max(1, int(np.ceil(n / ncols)))
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.5 * ncols, 1.65 * nrows + 0.3), squeeze=False)
    im = None
    for k, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if k >= n:
            continue
        c = np.asarray(nib.load(str(cbf_paths[k])).dataobj, float)
        z = int(round(0.55 * (c.shape[2] - 1)))
        im = ax.imshow(np.rot90(c[:, :, z]), cmap="viridis", vmin=0, vmax=vmax)
        ok = True if passed is None else bool(passed[k])
        ax.set_title(labels[k], fontsize=6, color="black" if ok else "red")
    if im is not None:
        fig.colorbar(im, ax=axes.ravel().tolist(), fraction=0.015, pad=0.01,
                     label="CBF (ml/100 g/min)")
    return fig
