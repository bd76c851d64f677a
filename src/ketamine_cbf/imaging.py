"""Image helpers shared by every stage, written once: load and check, same grid, NIfTI <-> ANTs.

World coordinates are RAS millimetres (NIfTI); ANTs/ITK use LPS, so the first two rows of
an affine change sign on the way in and out (:func:`to_ants`, :func:`from_ants`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

from ketamine_cbf.errors import InputError

__all__ = ["FWHM_TO_SIGMA", "load_image", "same_grid", "to_ants", "from_ants", "ITK_THREADS",
           "set_single_thread", "pinned_in_process", "resolve_n_jobs", "run_jobs"]

#: Environment variable ITK reads (once) for its default thread count.
ITK_THREADS = "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"

_PINNED = False

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


def set_single_thread() -> None:
    """Pin ITK to one thread (effective only before ANTs runs its first filter here)."""
    os.environ[ITK_THREADS] = "1"


def pinned_in_process() -> bool:
    """Return True if ANTs in this process is (or can still be made) single-threaded.

    ITK reads ``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS`` once, when its threading starts; if
    ANTs was imported before this module could set it, the thread count is unknown (the
    variable may have been set later), so the work goes to a fresh worker process instead.
    """
    global _PINNED
    if not _PINNED and "ants" not in sys.modules:
        set_single_thread()
        import ants  # noqa: F401

        _PINNED = True
    return _PINNED


def resolve_n_jobs(n_jobs) -> int:
    """Return the number of worker processes for ``n_jobs`` (0 or None: all CPUs)."""
    return int(n_jobs) if n_jobs else (os.cpu_count() or 1)


def run_jobs(func, jobs: list, n_jobs: int, desc: str, unit: str = "scan",
             show: bool | None = None) -> list:
    """Run ``func`` over ``jobs`` (single-threaded ITK each); return the results in job order.

    One worker and an ITK still pinnable here: in this process. Otherwise loky (joblib's
    executor): fresh worker processes that do not re-run the caller's ``__main__`` (scripts
    need no ``if __name__ == "__main__"`` guard), with ITK pinned before ANTs loads in them.
    Single-threaded seeded registrations give the same results with any number of workers;
    no more workers than jobs are started.
    ``show`` forces the progress bar on or off (None: as the runner asked).
    """
    from ketamine_cbf.progress import progress

    results: list = [None] * len(jobs)
    if not jobs:
        return results
    n_jobs = max(1, min(int(n_jobs), len(jobs)))  # never more workers than jobs
    if n_jobs == 1 and pinned_in_process():
        for i, job in progress(enumerate(jobs), desc, total=len(jobs), unit=unit, enabled=show):
            results[i] = func(job)
        return results
    from concurrent.futures import as_completed

    from joblib.externals.loky import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=n_jobs, initializer=set_single_thread,
                             env={ITK_THREADS: "1"}) as ex:
        futs = {ex.submit(func, job): i for i, job in enumerate(jobs)}
        for fut in progress(as_completed(futs), desc, total=len(jobs), unit=unit, enabled=show):
            results[futs[fut]] = fut.result()
    return results
