"""The analysis template: nilearn's shipped MNI152 (ICBM 2009a, nonlinear symmetric).

All loaders are local (the files ship inside nilearn); nothing downloads. The grid
of resolution ``r`` mm is nilearn's resampling of its 1 mm template (2 mm: 99 x 117 x 95
voxels). Images are cached per resolution. The template is that of
:footcite:t:`fonov2011`.

References
----------
.. footbibliography::
"""

from __future__ import annotations

from functools import lru_cache

import nibabel as nib
import numpy as np

from ketamine_cbf.io.layout import TEMPLATE_SPACE

__all__ = ["TEMPLATE_SPACE", "template_t1", "template_gm", "template_wm", "template_csf",
           "template_brain_mask", "template_grid"]


def _check_res(resolution) -> int:
    r = int(resolution)
    if r != resolution or r < 1 or r > 8:
        raise ValueError(f"template resolution must be an integer number of mm in 1..8 (got {resolution})")
    return r


@lru_cache(maxsize=8)
def template_t1(resolution: int = 2) -> nib.Nifti1Image:
    """Return the skull-stripped T1 template on the ``resolution`` mm grid (values 0-1)."""
    from nilearn.datasets import load_mni152_template

    return load_mni152_template(resolution=_check_res(resolution))


@lru_cache(maxsize=8)
def template_gm(resolution: int = 2) -> nib.Nifti1Image:
    """Return the grey-matter probability map (0-1) on the ``resolution`` mm grid."""
    from nilearn.datasets import load_mni152_gm_template

    return load_mni152_gm_template(resolution=_check_res(resolution))


@lru_cache(maxsize=8)
def template_wm(resolution: int = 2) -> nib.Nifti1Image:
    """Return the white-matter probability map (0-1) on the ``resolution`` mm grid."""
    from nilearn.datasets import load_mni152_wm_template

    return load_mni152_wm_template(resolution=_check_res(resolution))


@lru_cache(maxsize=8)
def template_brain_mask(resolution: int = 2) -> nib.Nifti1Image:
    """Return nilearn's MNI152 brain mask (uint8, threshold 0.2) on the ``resolution`` mm grid."""
    from nilearn.datasets import load_mni152_brain_mask

    img = load_mni152_brain_mask(resolution=_check_res(resolution))
    return nib.Nifti1Image(np.asarray(img.dataobj).astype(np.uint8), img.affine)


@lru_cache(maxsize=8)
def template_csf(resolution: int = 2) -> nib.Nifti1Image:
    """Return a CSF probability estimate: brain mask minus GM and WM, clipped to 0-1.

    nilearn ships no CSF map; inside the brain mask the remainder of GM + WM is
    mostly CSF (ventricles, sulci).
    """
    gm = template_gm(resolution).get_fdata()
    wm = template_wm(resolution).get_fdata()
    brain = template_brain_mask(resolution).get_fdata() > 0
    csf = np.clip(1.0 - gm - wm, 0, 1) * brain
    return nib.Nifti1Image(csf.astype(np.float32), template_gm(resolution).affine)


def template_grid(resolution: int = 2) -> tuple[tuple[int, int, int], np.ndarray]:
    """Return ``(shape, affine)`` of the ``resolution`` mm template grid."""
    img = template_t1(resolution)
    return img.shape[:3], img.affine.copy()
