"""Template tissue maps in a scan's native space, for QC: affine MNI152 -> aslref registration.

Tissue probability maps in the scan's own (native) space come from the MNI152 template
(:mod:`ketamine_cbf.reference.templates`) registered affinely to the scan's ASL reference with
ANTs (antspyx; mutual information, so the T1 contrast of the template and the PD-like
contrast of M0 need not match; :footcite:t:`avants2011`). The registration is deterministic
(fixed seed, one ITK thread) and cached per scan in ``cache_dir`` under a hash of the
reference image, the registration settings and the code of this package. Stage 2 does the
full normalisation separately; here the tissue maps only need to be good enough to
average CBF over grey and white matter.

References
----------
.. footbibliography::
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np

from ketamine_cbf.imaging import load_image, to_ants
from ketamine_cbf.io.provenance import atomic_path, code_digest, digest
from ketamine_cbf.quantification._images import smooth_fwhm
from ketamine_cbf.quantification.qc import QCParams
from ketamine_cbf.reference import templates

__all__ = ["register_template", "native_tissue_maps"]

#: Template tissue maps warped to the scan, by key of :func:`native_tissue_maps`' result.
_TISSUES = (("gm", templates.template_gm), ("wm", templates.template_wm),
            ("csf", templates.template_csf), ("brain", templates.template_brain_mask))


def _ants():
    """Import antspyx single-threaded (deterministic registration)."""
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = "1"
    import ants

    return ants


def _ants_seed(seed: int) -> int:
    """The ANTs sampling seed of a master seed (1..2**31-2).

    ANTsPy drops a falsy seed (0) and then samples the metric randomly: shifting to
    1..2**31-1 honours every seed.
    """
    return 1 + int(seed) % (2 ** 31 - 2)


def _cache_key(img: nib.Nifti1Image, params: QCParams) -> str:
    """Hash of the reference image, the registration settings and this package's code."""
    data = np.asarray(img.dataobj, dtype=np.float32)
    return digest({"data": hashlib.sha256(data.tobytes()).hexdigest(),
                   "shape": list(data.shape), "affine": np.round(img.affine, 6).tolist(),
                   "res": params.registration_resolution, "seed": params.seed, "version": 2,
                   "code": code_digest("quantification", "imaging")})


def _what(aslref, what: str | None) -> str:
    """Name of the reference image in error messages: ``what``, else its file, else 'aslref'."""
    if what is not None:
        return what
    return f"{aslref} (aslref)" if isinstance(aslref, (str, os.PathLike)) else "aslref"


def register_template(aslref, cache_dir=None, params: QCParams | None = None, *,
                      what: str | None = None) -> Path:
    """Affinely register the MNI152 template to an ASL reference image (ANTs, MI metric).

    Parameters
    ----------
    aslref : str, Path or nibabel.Nifti1Image
        The scan's reference image (M0 or mean control).
    cache_dir : str or Path, optional
        Folder where the transform is cached under a hash of the image data, affine,
        registration settings and the code of the quantification package; a later call
        with the same inputs reads it back. None: a folder in the system's temporary
        directory.
    params : QCParams, optional
        Registration resolution and seed (default ``QCParams()``).
    what : str, optional
        What the reference image is, for error messages (default: its file name, or
        ``"aslref"`` for an image in memory).

    Returns
    -------
    Path
        ITK affine transform (``.mat``) mapping template to reference, for
        ``ants.apply_transforms(fixed=aslref, moving=template, transformlist=[path])``.

    Raises
    ------
    InputError
        The reference image cannot be read, is not 3D, or its affine has shear (the
        message names it, see ``what``).
    """
    params = params or QCParams()
    img = load_image(aslref, "aslref")
    fixed = to_ants(img, _what(aslref, what))  # before the cache: a sheared image is an error
    cache = Path(cache_dir) if cache_dir else Path(tempfile.gettempdir()) / "ketamine_cbf_qc_cache"
    target = cache / f"template-to-aslref_{_cache_key(img, params)[:24]}.mat"
    if target.is_file():
        return target
    ants = _ants()
    moving = to_ants(templates.template_t1(params.registration_resolution), "MNI152 template")
    with tempfile.TemporaryDirectory() as tmp:
        reg = ants.registration(fixed, moving, type_of_transform="Affine",
                                aff_iterations=(100, 50, 20), aff_shrink_factors=(4, 2, 1),
                                aff_smoothing_sigmas=(2, 1, 0),
                                random_seed=_ants_seed(params.seed),
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

    Raises
    ------
    InputError
        The reference image cannot be read, is not 3D, or its affine has shear.
    """
    ants = _ants()
    ref = load_image(aslref, "aslref")
    fixed = to_ants(ref, _what(aslref, None))
    # partial volume: a native voxel averages the template over its box; approximate the
    # box by a Gaussian of FWHM = voxel size (per axis, minus the template's own voxel)
    # applied before point sampling, so pGM is a partial-volume fraction, not an alias.
    vox = np.sqrt((ref.affine[:3, :3] ** 2).sum(axis=0))
    fwhm = float(np.sqrt(max(float(np.mean(vox)) ** 2 - resolution ** 2, 0.0)))
    out = {}
    for name, fn in _TISSUES:
        tpl = fn(resolution)
        if fwhm > 0:
            tpl = nib.Nifti1Image(smooth_fwhm(tpl.get_fdata(), tpl.affine, fwhm).astype(np.float32),
                                  tpl.affine)
        warped = ants.apply_transforms(fixed=fixed, moving=to_ants(tpl, f"template {name}"),
                                       transformlist=[str(transform)], interpolator="linear")
        out[name] = np.clip(warped.numpy().astype(np.float64), 0, 1)
    return out
