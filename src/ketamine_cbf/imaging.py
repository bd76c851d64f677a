"""Image helpers shared by every stage, written once: load and check, same grid, NIfTI <-> ANTs.

World coordinates are RAS millimetres (NIfTI); ANTs/ITK use LPS, so the first two rows of
an affine change sign on the way in and out (:func:`to_ants`, :func:`from_ants`).
"""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np

from ketamine_cbf.errors import InputError

__all__ = ["FWHM_TO_SIGMA", "load_image", "same_grid", "to_ants", "from_ants"]

#: Gaussian sigma per unit of full width at half maximum: ``1 / sqrt(8 ln 2)``.
FWHM_TO_SIGMA = 1.0 / np.sqrt(8.0 * np.log(2.0))
#: RAS <-> LPS (its own inverse).
LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def load_image(img, what: str = "image", dtype=np.float32, *,
               nonfinite_to_zero: bool = True) -> nib.Nifti1Image:
    """Return a checked 3D NIfTI image from a path or an image.

    Parameters
    ----------
    img : str, Path or nibabel.Nifti1Image
        The image, or its file (never modified).
    what : str
        What the image is, for error messages (e.g. ``"aslref"``, ``"PET map"``).
    dtype : numpy dtype or None
        Data type of the returned array; ``None`` keeps the stored data type (and, for an
        image without a volume to drop, the image object itself).
    nonfinite_to_zero : bool
        Replace NaN and infinite values by 0 (float data only).

    Returns
    -------
    nibabel.Nifti1Image
        A 3D image (a trailing singleton 4th dimension is dropped).

    Raises
    ------
    InputError
        Missing or unreadable file, not an image, not 3D, or a singular or non-finite
        affine; the message names the file and what it is.
    """
    name = what
    if isinstance(img, (str, os.PathLike)):
        name = str(img)
        if not Path(img).is_file():
            raise InputError(f"{name}: {what} not found")
        try:
            img = nib.load(name)
        except Exception as e:  # nibabel raises several types for malformed files
            raise InputError(f"{name}: {what} cannot be read as NIfTI ({type(e).__name__})") from None
    if not hasattr(img, "affine") or not hasattr(img, "dataobj"):
        raise InputError(f"{name}: {what} is not a NIfTI image (got {type(img).__name__})")
    shape = tuple(img.shape)
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != 3:
        raise InputError(f"{name}: {what} must be a 3D image (shape {tuple(img.shape)})")
    affine = np.asarray(img.affine, dtype=float)
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-6:
        raise InputError(f"{name}: {what} has a singular or non-finite affine (sform/qform)")
    if dtype is None and not nonfinite_to_zero and len(img.shape) == 3:
        return img
    data = np.asarray(img.dataobj) if dtype is None else np.asarray(img.dataobj, dtype=dtype)
    data = data.reshape(shape)
    if nonfinite_to_zero and np.issubdtype(data.dtype, np.floating) and not np.all(np.isfinite(data)):
        data = np.nan_to_num(data, nan=0.0, posinf=0.0, neginf=0.0)
    if dtype is None:
        return nib.Nifti1Image(data, img.affine)
    return nib.Nifti1Image(data, affine)


def same_grid(a, b, atol: float = 1e-3) -> bool:
    """Return True if images ``a`` and ``b`` share shape and affine (to ``atol`` mm).

    Examples
    --------
    >>> import nibabel as nib, numpy as np
    >>> a = nib.Nifti1Image(np.zeros((4, 4, 4)), np.eye(4))
    >>> same_grid(a, nib.Nifti1Image(np.ones((4, 4, 4)), np.eye(4))), same_grid(a, nib.Nifti1Image(np.zeros((4, 4, 5)), np.eye(4)))
    (True, False)
    """
    return tuple(a.shape[:3]) == tuple(b.shape[:3]) and np.allclose(a.affine, b.affine, atol=atol)


def to_ants(img, what: str = "image"):
    """Convert a NIfTI image (RAS affine) to an ``ants.ANTsImage`` (LPS origin/direction).

    Parameters
    ----------
    img : str, Path or nibabel.Nifti1Image
    what : str
        What the image is, for error messages.

    Returns
    -------
    ants.ANTsImage
        float32 data (non-finite values set to 0), the same world geometry.

    Raises
    ------
    InputError
        Unreadable image, or an affine with shear (ITK images need orthogonal axes).
    """
    import ants

    img = load_image(img, what)
    a = LPS @ img.affine
    spacing = np.linalg.norm(a[:3, :3], axis=0)
    direction = a[:3, :3] / spacing
    if not np.allclose(direction.T @ direction, np.eye(3), atol=1e-4):
        raise InputError(f"{what}: affine (sform/qform) has shear; resample it to an orthogonal grid first")
    return ants.from_numpy(np.asarray(img.dataobj, dtype=np.float32), origin=tuple(a[:3, 3]),
                           spacing=tuple(spacing), direction=direction)


def from_ants(image, dtype=np.float32) -> nib.Nifti1Image:
    """Convert an ``ants.ANTsImage`` to a NIfTI image with a RAS affine (inverse of :func:`to_ants`)."""
    a = np.eye(4)
    a[:3, :3] = np.asarray(image.direction) * np.asarray(image.spacing)
    a[:3, 3] = image.origin
    return nib.Nifti1Image(image.numpy().astype(dtype), LPS @ a)
