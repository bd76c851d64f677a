"""Private image kernels of stage 1: reading a 4D series' voxels, Gaussian smoothing in mm.

3D images given as paths or images are read with :func:`ketamine_cbf.imaging.load_image`;
the ASL series is 4D, so its voxels are read here (float64, errors naming the file).
"""

from __future__ import annotations

import nibabel as nib
import numpy as np

from ketamine_cbf.errors import InputError

__all__ = ["read_voxels", "smooth_fwhm"]


def read_voxels(path, what: str) -> np.ndarray:
    """Return the voxel data of a NIfTI file as float64 (any dimensionality).

    Raises
    ------
    InputError
        The file cannot be read (the message names it and what it is).
    """
    try:
        return np.asarray(nib.load(str(path)).dataobj, dtype=np.float64)
    except Exception as e:  # noqa: BLE001 - nibabel raises several types for broken data
        raise InputError(f"{path}: voxel data cannot be read ({type(e).__name__}: {e})") from None


def smooth_fwhm(data, affine, fwhm=5.0) -> np.ndarray:
    """Gaussian smoothing (mm FWHM, scalar or one per axis) with nilearn; float64 out."""
    from nilearn.image import smooth_img

    fwhm = list(np.atleast_1d(fwhm).astype(float)) if np.ndim(fwhm) else float(fwhm)
    return smooth_img(nib.Nifti1Image(np.asarray(data, np.float64), affine), fwhm).get_fdata()
