"""Paths to the reference data shipped in ``data/`` and their provenance.

The files are copied from the project's shared material by the committed step
``scripts/import_shared_data.sh``; ``data/PROVENANCE.md`` gives source, citation and
licence of each. Nothing here downloads.
"""

from __future__ import annotations

import os
from pathlib import Path

from ketamine_cbf.errors import InputError

__all__ = [
    "RECEPTOR_FILES", "CBF_TEMPLATE_FILE", "project_root", "data_dir", "receptor_path",
    "cbf_template_path", "schaefer_path", "ds000240_dir", "load_receptor_map",
]

#: PET receptor density maps, keyed by the short name used throughout the book.
RECEPTOR_FILES = {
    "MOR": "MOR_carfentanil_hc204_kantonen_3mm.nii.gz",
    "KOR": "KOR_LY2795050_hc10_shokrikojori_3mm.nii.gz",
    "NMDA": "NMDA_ge179_hc29_galovic_1mm.nii.gz",
    "mGluR5": "mGluR5_abp688_hc73_smart_3mm.nii.gz",
    "GABAA": "GABAa_flumazenil_hc16_norgaard_3mm.nii.gz",
    "GABAA-a5": "GABAa5_ro154513_hc23_chang_1mm.nii.gz",
}

#: Group-average ASL CBF map :footcite:p:`holiga2018`, the baseline pattern of the simulation.
#:
#: References
#: ----------
#: .. footbibliography::
CBF_TEMPLATE_FILE = "CBF_asl_holiga2018_3mm.nii.gz"


def project_root() -> Path:
    """Return the repository root (the directory holding ``data/`` and ``notebooks/``).

    The environment variable ``KETAMINE_CBF_ROOT`` overrides the location, for an
    installed (non-editable) package used outside the checkout.
    """
    env = os.environ.get("KETAMINE_CBF_ROOT")
    if env:
        return Path(env).resolve()
    return Path(__file__).resolve().parents[3]


def data_dir() -> Path:
    """Return the directory of shipped reference data (``<root>/data``)."""
    d = project_root() / "data"
    if not d.is_dir():
        raise InputError(
            f"{d}: shipped data directory not found; set KETAMINE_CBF_ROOT to the "
            "ketamine-cbf checkout"
        )
    return d


def receptor_path(name: str) -> Path:
    """Return the path of a shipped PET receptor map.

    Parameters
    ----------
    name : str
        One of ``MOR``, ``KOR``, ``NMDA``, ``mGluR5``, ``GABAA``, ``GABAA-a5``.
    """
    try:
        fname = RECEPTOR_FILES[name]
    except KeyError:
        raise InputError(
            f"unknown receptor map {name!r}; choose from {', '.join(RECEPTOR_FILES)}"
        ) from None
    return data_dir() / "receptors" / fname


def cbf_template_path() -> Path:
    """Return the path of the group-average ASL CBF map (``CBF_asl_holiga2018_3mm``).

    The map of :footcite:t:`holiga2018`.

    References
    ----------
    .. footbibliography::
    """
    return data_dir() / "receptors" / CBF_TEMPLATE_FILE


def schaefer_path(n_parcels: int = 200) -> Path:
    """Return the path of the shipped Schaefer 2018 7-network atlas (MNI, 2 mm).

    The parcellation of :footcite:t:`schaefer2018`.

    Parameters
    ----------
    n_parcels : {200, 400}

    References
    ----------
    .. footbibliography::
    """
    if n_parcels not in (200, 400):
        raise InputError(f"Schaefer atlas: n_parcels must be 200 or 400 (got {n_parcels})")
    d = data_dir() / "atlases" / "schaefer" / f"schaefer{n_parcels}x7"
    return d / f"schaefer{n_parcels}x7MNI.nii.gz"


def ds000240_dir() -> Path:
    """Return the directory of the real 3D pCASL scan (OpenNeuro ds000240, sub-01)."""
    return data_dir() / "asl" / "ds000240"


def load_receptor_map(name: str, target_img=None):
    """Load a shipped PET receptor map, optionally resampled to ``target_img``'s grid.

    Parameters
    ----------
    name : str
        Receptor key of :data:`RECEPTOR_FILES`.
    target_img : niimg-like, optional
        Image whose grid (shape, affine) the map is resampled to, with continuous
        (linear) interpolation. Voxels outside the PET field of view become 0.

    Returns
    -------
    nibabel.Nifti1Image
        Receptor density (arbitrary units as distributed: 0-100 for the 3 mm maps,
        0-8 for GABAA-a5).
    """
    import nibabel as nib
    import numpy as np

    img = nib.load(str(receptor_path(name)))
    img = nib.Nifti1Image(np.asarray(img.dataobj, dtype=np.float32).squeeze(), img.affine)
    if target_img is None:
        return img
    from nilearn.image import resample_to_img

    out = resample_to_img(img, target_img, interpolation="linear", force_resample=True,
                          copy_header=True, fill_value=0)
    data = np.nan_to_num(out.get_fdata(dtype=np.float32))
    return nib.Nifti1Image(data, out.affine)
