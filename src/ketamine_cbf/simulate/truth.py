"""Ground-truth CBF in MNI space: anatomy, variability, ketamine and receptor effects.

Everything here lives on the MNI152 (2009a symmetric) grid of ``resolution`` mm that
``ketamine_cbf.reference.templates`` provides. The baseline CBF of every scan is built from real
anatomy, not blocks:

* the tissue probabilities of the template (GM, WM, CSF);
* the regional pattern of a published group-average ASL CBF map
  (:footcite:t:`holiga2018`, shipped as ``CBF_asl_holiga2018_3mm``), which modulates grey
  matter CBF (its GM-mean normalised to 1);
* pure-tissue CBF values GM ~ 55 and WM ~ 20 ml/100 g/min (typical healthy adult values,
  :footcite:t:`alsop2015`; :footcite:t:`parkes2004`).

so that ``CBF(x) = gm_cbf * gm(x) * pattern(x) + wm_cbf * wm(x)`` (CSF carries no CBF).

Between-subject, between-session and between-run variability multiply this map by
global factors and by smooth Gaussian random fields; ketamine adds a global fraction,
focal ACC blobs (masked by GM) and receptor-shaped components (see :func:`receptor_effect`).

References
----------
.. footbibliography::
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import nibabel as nib
import numpy as np
from scipy import ndimage, stats

from ketamine_cbf.reference import templates
from ketamine_cbf.reference.paths import cbf_template_path, load_receptor_map, schaefer_path
from ketamine_cbf.study import ACC_CENTRES_MNI
from ketamine_cbf.imaging import FWHM_TO_SIGMA
from ketamine_cbf.study import RECEPTORS

__all__ = [
    "GM_THRESHOLD", "PATTERN_CLIP", "RECEPTOR_GM_THRESHOLD", "ACC_TAPER_MM", "world_coords",
    "gaussian_blob", "FieldMaker", "Anatomy", "load_anatomy", "baseline_cbf", "roi_masks",
    "blob_profiles", "receptor_maps", "receptor_zmaps", "parcellation", "normal_scores",
    "paint_parcels", "zero_roi_means", "receptor_effect", "schaefer_labels", "parcel_means",
]

#: Threshold of the GM probability that defines "grey matter" for masks and global CBF.
GM_THRESHOLD = 0.5
#: Range the normalised Holiga pattern is clipped to (keeps GM CBF physiological).
PATTERN_CLIP = (0.6, 1.5)
#: GM probability above which receptor maps are residualised (and components defined).
RECEPTOR_GM_THRESHOLD = 0.3
#: Radius (mm) of the smooth flat-topped taper that keeps receptor patterns out of the ACC.
ACC_TAPER_MM = 18.0


def world_coords(shape, affine) -> np.ndarray:
    """Return the world (mm) coordinates of every voxel centre, shape ``shape + (3,)``."""
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1)
    return ijk @ affine[:3, :3].T + affine[:3, 3]


def gaussian_blob(coords: np.ndarray, centre, fwhm: float) -> np.ndarray:
    """Return ``exp(-|x - c|^2 / (2 sigma^2))`` with ``sigma = FWHM / sqrt(8 ln 2)`` (peak 1)."""
    sigma = fwhm * FWHM_TO_SIGMA
    d2 = np.sum((coords - np.asarray(centre, dtype=float)) ** 2, axis=-1)
    return np.exp(-d2 / (2.0 * sigma ** 2))


class FieldMaker:
    """Smooth Gaussian random fields of unit SD on a grid (FWHM in mm).

    White noise is drawn on a grid ~FWHM/4 coarser (fast), smoothed with a Gaussian of
    the requested FWHM, trilinearly interpolated to the target grid and scaled to unit
    SD inside ``mask``. The field is smooth on the scale of its FWHM, so the coarse
    draw loses nothing visible.
    """

    def __init__(self, shape, affine, fwhm: float, mask: np.ndarray):
        vox = float(abs(affine[0, 0]))
        self.shape = tuple(shape)
        self.step = max(1, int(round(fwhm / 4.0 / vox)))
        self.coarse_shape = tuple(int(np.ceil(n / self.step)) + 2 for n in shape)
        self.sigma = fwhm * FWHM_TO_SIGMA / (vox * self.step)
        grids = [np.arange(n) / self.step for n in shape]
        self._coords = np.array(np.meshgrid(*grids, indexing="ij"))
        self._mask = mask

    def __call__(self, rng: np.random.Generator) -> np.ndarray:
        noise = rng.standard_normal(self.coarse_shape)
        smooth = ndimage.gaussian_filter(noise, self.sigma, mode="wrap")
        if self.step > 1:
            out = ndimage.map_coordinates(smooth, self._coords, order=1, mode="nearest")
        else:
            out = smooth[tuple(slice(0, n) for n in self.shape)]
        vals = out[self._mask]
        return ((out - vals.mean()) / vals.std()).astype(np.float32)


@dataclass
class Anatomy:
    """Template-derived maps on the truth grid (all ``float32`` arrays of one shape)."""

    resolution: int
    shape: tuple
    affine: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    brain: np.ndarray
    pattern: np.ndarray
    t1: np.ndarray
    coords: np.ndarray = field(repr=False)

    @property
    def gm_mask(self) -> np.ndarray:
        """Voxels with GM probability > :data:`GM_THRESHOLD` (global GM CBF, ROIs)."""
        return self.gm > GM_THRESHOLD

    def img(self, data, dtype=np.float32) -> nib.Nifti1Image:
        """Wrap ``data`` as a NIfTI image on the truth grid (sform/qform MNI, code 4)."""
        img = nib.Nifti1Image(np.asarray(data, dtype=dtype), self.affine)
        img.set_sform(self.affine, code=4)
        img.set_qform(self.affine, code=4)
        img.header.set_xyzt_units("mm", "sec")
        return img


@lru_cache(maxsize=4)
def load_anatomy(resolution: int) -> Anatomy:
    """Return the template anatomy and the Holiga CBF pattern on the ``resolution`` grid.

    The group CBF map of :footcite:t:`holiga2018` is resampled (linear) to the grid and
    normalised to a mean of 1 over GM (probability > 0.5), then clipped to
    :data:`PATTERN_CLIP`; outside its field of view the pattern is 1.

    References
    ----------
    .. footbibliography::
    """
    from nilearn.image import resample_to_img

    gm_img = templates.template_gm(resolution)
    gm = np.clip(gm_img.get_fdata(dtype=np.float32), 0, 1)
    wm = np.clip(templates.template_wm(resolution).get_fdata(dtype=np.float32), 0, 1)
    total = gm + wm
    over = total > 1
    gm[over] /= total[over]
    wm[over] /= total[over]
    brain = templates.template_brain_mask(resolution).get_fdata() > 0
    csf = np.clip(1.0 - gm - wm, 0, 1) * brain
    t1 = templates.template_t1(resolution).get_fdata(dtype=np.float32)
    holiga = nib.load(str(cbf_template_path()))
    holiga = nib.Nifti1Image(np.asarray(holiga.dataobj, dtype=np.float32).squeeze(), holiga.affine)
    pat = resample_to_img(holiga, gm_img, interpolation="linear", force_resample=True,
                          copy_header=True, fill_value=0).get_fdata(dtype=np.float32)
    pat = np.nan_to_num(pat)
    gm_mask = gm > GM_THRESHOLD
    pattern = pat / pat[gm_mask & (pat > 0)].mean()
    pattern = np.where(pat > 0, np.clip(pattern, *PATTERN_CLIP), 1.0).astype(np.float32)
    shape, affine = gm.shape, gm_img.affine.copy()
    return Anatomy(resolution=resolution, shape=shape, affine=affine, gm=gm, wm=wm,
                   csf=csf.astype(np.float32), brain=brain, pattern=pattern, t1=t1,
                   coords=world_coords(shape, affine).astype(np.float32))


def baseline_cbf(anat: Anatomy, gm_cbf: float, wm_cbf: float) -> np.ndarray:
    """Return the population baseline CBF map (ml/100 g/min).

    CBF(x) = gm_cbf * gm(x) * pattern(x) + wm_cbf * wm(x): a two-compartment partial-volume
    model (e.g. :footcite:p:`asllani2008`) with the regional GM pattern of
    :footcite:t:`holiga2018`.

    References
    ----------
    .. footbibliography::
    """
    return (gm_cbf * anat.gm * anat.pattern + wm_cbf * anat.wm).astype(np.float32)


def roi_masks(anat: Anatomy, radius: float) -> dict[str, np.ndarray]:
    """Return the truth-level ACC ROIs: spheres of ``radius`` mm around
    :data:`ketamine_cbf.study.ACC_CENTRES_MNI`, restricted to GM (p > 0.5)."""
    out = {}
    for name, c in ACC_CENTRES_MNI.items():
        d2 = np.sum((anat.coords - np.asarray(c, dtype=np.float32)) ** 2, axis=-1)
        m = (d2 <= radius ** 2) & anat.gm_mask
        if not m.any():  # coarse grids: fall back to the voxel nearest the centre within GM
            d = np.where(anat.gm_mask, d2, np.inf)
            m = np.zeros(anat.shape, bool)
            m[np.unravel_index(np.argmin(d), anat.shape)] = True
        out[name] = m
    return out


def blob_profiles(anat: Anatomy, fwhm: float) -> dict[str, np.ndarray]:
    """Return the focal effect profiles: a Gaussian blob (peak 1) at each ACC centre x GM.

    Masking by the GM probability keeps the effect in tissue that has perfusion to
    change (a blob does not raise CSF or WM CBF).
    """
    return {name: (gaussian_blob(anat.coords, c, fwhm) * anat.gm).astype(np.float32)
            for name, c in ACC_CENTRES_MNI.items()}


@lru_cache(maxsize=4)
def receptor_maps(resolution: int) -> dict[str, np.ndarray]:
    """Return the six shipped PET maps resampled (linear) to the truth grid."""
    anat = load_anatomy(resolution)
    ref = anat.img(anat.gm)
    return {name: load_receptor_map(name, ref).get_fdata(dtype=np.float32) for name in RECEPTORS}


@lru_cache(maxsize=4)
def receptor_zmaps(resolution: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Return each PET map z-scored over the receptor mask (zero outside) and the mask.

    The mask is GM probability > :data:`RECEPTOR_GM_THRESHOLD` inside every map's field
    of view.
    """
    anat = load_anatomy(resolution)
    maps = receptor_maps(resolution)
    mask = anat.gm > RECEPTOR_GM_THRESHOLD
    for m in maps.values():
        mask &= m > 0
    out = {}
    for name, m in maps.items():
        v = m[mask].astype(np.float64)
        z = np.zeros(anat.shape, np.float32)
        z[mask] = (v - v.mean()) / v.std()
        out[name] = z
    return out, mask


@lru_cache(maxsize=4)
def parcellation(resolution: int, n_parcels: int = 200) -> np.ndarray:
    """Return the Schaefer 2018 7-network labels on the truth grid (nearest neighbour).

    The parcellation of :footcite:t:`schaefer2018`.

    References
    ----------
    .. footbibliography::
    """
    return schaefer_labels(load_anatomy(resolution), n_parcels)


def normal_scores(x: np.ndarray) -> np.ndarray:
    """Rank-based inverse normal transform of each column, Phi^-1((rank - 0.5) / n).

    Pearson correlation of normal scores approximates Spearman's rank correlation of the
    raw values, so components built on them are orthogonal in the rank sense too.
    """
    from scipy.special import ndtri

    n = x.shape[0]
    ranks = stats.rankdata(x, axis=0)
    return ndtri((ranks - 0.5) / n)


def paint_parcels(values: np.ndarray, labels: np.ndarray, gm: np.ndarray, voxel: float,
                  fwhm: float) -> np.ndarray:
    """Return a smooth GM-weighted voxel map whose parcel means follow ``values``.

    Each parcel is filled with its value, smoothed by normalised convolution (Gaussian of
    ``fwhm`` mm, within the labelled cortex, so that parcel borders blend like
    PET-resolution maps) and multiplied by the GM probability (so a parcel's mean is
    about its value times its mean GM probability; no voxel exceeds the largest value).
    """
    lab = labels > 0
    idx = np.clip(labels, 0, None)
    vals = np.concatenate([[0.0], np.nan_to_num(values)])
    img = np.where(lab, vals[idx], 0.0)
    sigma = fwhm * FWHM_TO_SIGMA / voxel
    num = ndimage.gaussian_filter(img, sigma)
    den = ndimage.gaussian_filter(lab.astype(float), sigma)
    out = np.where(lab, num / np.maximum(den, 1e-6), 0.0)
    return (out * gm).astype(np.float32)


def zero_roi_means(img: np.ndarray, masks: dict[str, np.ndarray],
                   profiles: dict[str, np.ndarray]) -> np.ndarray:
    """Subtract the combination of smooth ``profiles`` that makes every ROI mean zero.

    Solves the small linear system ``mean_r(img - sum_q c_q P_q) = 0`` for the ROIs ``r``
    (one coefficient per ROI profile), so the correction is a smooth local bump.
    """
    names = list(masks)
    A = np.array([[profiles[q][masks[r]].mean() for q in names] for r in names])
    b = np.array([img[masks[r]].mean() for r in names])
    c = np.linalg.lstsq(A, b, rcond=None)[0]
    out = img.astype(np.float64).copy()
    for q, cq in zip(names, c):
        out -= cq * profiles[q]
    return out.astype(np.float32)


def receptor_effect(anat: Anatomy, amplitudes: dict[str, float],
                    fixed: np.ndarray | None = None, fwhm: float = 8.0,
                    n_iter: int = 6, acc: tuple[dict, dict] | None = None,
                    specificity: float = 1.0) -> tuple[np.ndarray, dict]:
    """Return a receptor-shaped cortical CBF change R(x) (ml/100 g/min) and its record.

    The receptor analysis correlates group maps with PET maps across the 200 parcels of
    the atlas of :footcite:t:`schaefer2018` (as JuSpace and neuromaps do). The planted
    pattern is made at that level:

    1. parcel means ``P`` of the six PET maps, as normal scores ``z`` (:func:`normal_scores`,
       so that rank (Spearman) and linear correlations agree);
    2. the pattern ``sum_k a_k z_k`` over the target maps ``k``, minus its least-squares
       projection on the non-target maps (so it has zero correlation with them; the
       targets' shared variance is kept), painted into a smooth GM-weighted voxel map
       (:func:`paint_parcels`, divided by the mean parcel GM probability so that ``a_k``
       is in ml/100 g/min of parcel-mean CBF per SD of ``z_k``);
    3. a few fixed-point corrections: the projection of the parcel means of the whole
       planted map ``fixed + R`` onto the non-target maps is painted in with the
       opposite sign, so that the planted map has zero Pearson correlation across
       parcels with every non-target map (smoothing, GM weighting and ``fixed``, i.e.
       the global and ACC effects, would otherwise leave small correlations);
    4. with ``acc = (masks, profiles)``, the pattern fades smoothly to zero around the ACC
       centres (factor ``1 - exp(-(d / 18 mm)^4)``) and the small remainder of each ACC ROI
       mean is removed by subtracting smooth blob-shaped bumps (:func:`zero_roi_means`),
       so that the ACC effects are exactly the planted blobs (ketamine) or nothing
       (interaction).

    ``specificity`` (s) sets how much of the targets' shared variance with the non-target
    maps is removed: the planted map keeps ``(1 - s)`` times the non-target projection of
    ``sum_k a_k z_k``. With s = 1 the non-target maps are exactly uncorrelated with the
    planted map, which caps its correlation with the (intercorrelated) target maps at about
    0.5 across parcels; s = 0.9 keeps a little realistic overlap (non-target ``|r|`` ~0.1-0.15)
    and lifts the target correlations to ~0.6.

    Parameters
    ----------
    anat : Anatomy
    amplitudes : dict
        Target receptor name -> a_k (ml/100 g/min per SD of the map across parcels).
    fixed : ndarray, optional
        The rest of the planted group map.
    fwhm : float
        Smoothness of the painted map (mm).
    n_iter : int
        Correction iterations.
    acc : (dict, dict), optional
        ROI masks and smooth profiles (same keys) whose ROI means R must not change.
    specificity : float
        Fraction (0-1) of the targets' non-target projection removed (see above).

    Returns
    -------
    R : ndarray (float32)
        Zero outside the Schaefer cortex.
    record : dict
        Amplitudes, smoothing, and the remaining parcel-level ``|r|`` with non-targets.

    References
    ----------
    .. footbibliography::
    """
    out = np.zeros(anat.shape, np.float32)
    if not amplitudes:
        return out, {"amplitudes": {}}
    labels = parcellation(anat.resolution)
    pet = receptor_maps(anat.resolution)
    P = np.column_stack([parcel_means(pet[k], labels) for k in RECEPTORS])
    ok = np.all(np.isfinite(P), axis=1)
    Pz = normal_scores(P[ok])
    nontarget = [j for j, k in enumerate(RECEPTORS) if k not in amplitudes]
    Q, _ = np.linalg.qr(np.column_stack([np.ones(ok.sum()), Pz[:, nontarget]]))
    ideal = sum(a * Pz[:, RECEPTORS.index(k)] for k, a in amplitudes.items())
    keep_nt = (1.0 - specificity) * (Q[:, 1:] @ (Q[:, 1:].T @ ideal))  # overlap kept
    pattern = np.zeros(len(P))
    pattern[ok] = ideal - Q @ (Q.T @ ideal) + keep_nt  # the part no non-target map explains
    # painting multiplies by GM probability: compensate its mean over parcels (one scalar)
    gm_parcel = np.nan_to_num(parcel_means(anat.gm, labels))
    pattern[ok] /= max(gm_parcel[ok].mean(), 1e-6)
    vox = float(abs(anat.affine[0, 0]))
    fixed_pm = 0.0 if fixed is None else parcel_means(fixed, labels)[ok]
    values = pattern.copy()
    taper = 1.0
    if acc is not None:  # fade the receptor pattern out around the ACC centres
        taper = 1.0 - np.max([np.exp(-(np.sqrt(np.sum((anat.coords - np.asarray(c, np.float32)) ** 2,
                                                             axis=-1)) / ACC_TAPER_MM) ** 4)
                              for c in ACC_CENTRES_MNI.values()], axis=0)
    for _ in range(n_iter):
        out = paint_parcels(values, labels, anat.gm, vox, fwhm) * taper
        if acc is not None:
            out = zero_roi_means(out, *acc)
        total = parcel_means(out, labels)[ok] + fixed_pm
        resid = Q[:, 1:] @ (Q[:, 1:].T @ total) - keep_nt  # unwanted non-target part
        values[ok] -= resid
    total = parcel_means(out, labels)[ok] + fixed_pm
    left = {RECEPTORS[j]: float(abs(stats.spearmanr(total, P[ok][:, j])[0])) for j in nontarget}
    return out, {"amplitudes": dict(amplitudes), "smoothing_fwhm_mm": fwhm,
                 "specificity": specificity,
                 "acc_roi_means": ({k: float(out[m].mean()) for k, m in acc[0].items()}
                                   if acc is not None else None),
                 "max_abs_parcel_spearman_nontarget": max(left.values()) if left else 0.0}


def schaefer_labels(anat: Anatomy, n_parcels: int = 200) -> np.ndarray:
    """Return the Schaefer 2018 7-network parcellation on the truth grid (nearest).

    The parcellation of :footcite:t:`schaefer2018`.

    References
    ----------
    .. footbibliography::
    """
    from nilearn.image import resample_to_img

    atlas = nib.load(str(schaefer_path(n_parcels)))
    lab = resample_to_img(atlas, anat.img(anat.gm), interpolation="nearest",
                          force_resample=True, copy_header=True)
    return np.asarray(lab.dataobj).astype(np.int32)


def parcel_means(data: np.ndarray, labels: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Return the mean of ``data`` in each label 1..max (NaN for empty parcels)."""
    lab = labels if mask is None else np.where(mask, labels, 0)
    n = int(labels.max())
    idx = np.arange(1, n + 1)
    counts = ndimage.sum_labels(np.ones_like(data), lab, idx)
    sums = ndimage.sum_labels(data, lab, idx)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
