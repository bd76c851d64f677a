"""Maps on the template grid: template masks, resampling, smoothing and the global GM CBF.

Every CBF map of stage 2 ends on the ``resolution`` mm grid of nilearn's MNI152 2009a
template :footcite:p:`fonov2011`, either through a registration (:func:`warp_mask`,
:func:`field_of_view`, with :func:`ketamine_cbf.normalisation.registration.apply_registration`)
or, for maps already in an MNI space, by resampling only (:func:`resample_to_template`). It is
then smoothed (:func:`smooth_image`) and summarised by its mean grey-matter CBF
(:func:`global_gm_cbf`).

References
----------
.. footbibliography::
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd

from ketamine_cbf._docs import fill_doc
from ketamine_cbf.errors import InputError, UsageError
from ketamine_cbf.imaging import FWHM_TO_SIGMA, load_image
from ketamine_cbf.normalisation.registration import Registration, apply_registration

__all__ = ["DEFAULT_FWHM", "template_grid_masks", "resample_to_template", "warp_mask",
           "field_of_view", "smooth_image", "global_gm_cbf", "global_cbf_summary"]

#: Default smoothing kernel (FWHM, mm), the usual choice of voxel-wise ASL group analyses
#: (SPM's default; SPM12 manual, :footcite:t:`spm12manual`); about twice the 3.5-4 mm native
#: ASL voxel, the size of the regional effects sought (matched-filter argument,
#: :footcite:t:`worsley1996`).
#:
#: References
#: ----------
#: .. footbibliography::
DEFAULT_FWHM = 8.0


@fill_doc
def template_grid_masks(resolution: int = 2) -> tuple[nib.Nifti1Image, nib.Nifti1Image]:
    """Return the template brain mask (uint8) and grey-matter probability map (float32).

    Both are nilearn's shipped MNI152 2009a maps :footcite:p:`fonov2011` on the
    ``resolution`` mm grid (:mod:`ketamine_cbf.reference.templates`). Stage 2 writes them
    beside its maps; later stages read those files with
    :func:`ketamine_cbf.io.derivatives.template_masks`.

    Parameters
    ----------
    %(resolution)s

    Returns
    -------
    (nibabel.Nifti1Image, nibabel.Nifti1Image)
        Brain mask and GM probability map.

    References
    ----------
    .. footbibliography::
    """
    from ketamine_cbf.reference import templates

    bm = templates.template_brain_mask(int(resolution))
    gm = templates.template_gm(int(resolution))
    return (nib.Nifti1Image(np.asarray(bm.dataobj).astype(np.uint8), bm.affine),
            nib.Nifti1Image(np.asarray(gm.dataobj, dtype=np.float32), gm.affine))


def resample_to_template(img, template: nib.Nifti1Image, interpolation: str = "linear",
                         what: str = "CBF") -> nib.Nifti1Image:
    """Resample an image already in an MNI space onto the template grid (no registration).

    Parameters
    ----------
    img : path or Nifti1Image
        A map in an MNI space (e.g. ASLPrep's ``space-MNI152NLin2009cAsym`` CBF).
    template : nibabel.Nifti1Image
        An image on the target grid (e.g. from :func:`template_grid_masks`).
    interpolation : {"linear", "nearest"}
        nilearn interpolation; 0 outside the input's field of view.
    what : str
        What the image is, for error messages.

    Returns
    -------
    nibabel.Nifti1Image
        float32 image on the template grid.
    """
    from nilearn.image import resample_to_img

    out = resample_to_img(load_image(img, what), template, interpolation=interpolation,
                          force_resample=True, copy_header=True, fill_value=0)
    return nib.Nifti1Image(np.asarray(out.dataobj, dtype=np.float32), template.affine)


@fill_doc
def warp_mask(mask: nib.Nifti1Image, registration: Registration, resolution: int = 2) -> np.ndarray:
    """Return a native mask carried onto the template grid (linear interpolation > 0.5).

    Parameters
    ----------
    mask : nibabel.Nifti1Image
        Native mask (non-zero = inside).
    registration : Registration
        The scan's registration.
    %(resolution)s

    Returns
    -------
    numpy.ndarray of bool
        The mask on the template grid.
    """
    binary = nib.Nifti1Image((np.asarray(mask.dataobj) > 0).astype(np.float32), mask.affine)
    return np.asarray(apply_registration(binary, registration, resolution).dataobj) > 0.5


@fill_doc
def field_of_view(native: nib.Nifti1Image, registration: Registration,
                  resolution: int = 2) -> np.ndarray:
    """Return the template voxels inside a scan's field of view (its whole native grid).

    Parameters
    ----------
    native : nibabel.Nifti1Image
        Any image on the scan's native grid.
    registration : Registration
        Its registration.
    %(resolution)s

    Returns
    -------
    numpy.ndarray of bool
        True where the template voxel maps inside the native grid (partial coverage: the
        slab of slices acquired).
    """
    return warp_mask(nib.Nifti1Image(np.ones(native.shape, np.float32), native.affine),
                     registration, resolution)


@fill_doc
def smooth_image(img, fwhm: float, mask=None) -> nib.Nifti1Image:
    """Smooth with an isotropic Gaussian kernel of full width at half maximum ``fwhm`` mm.

    Parameters
    ----------
    img : path or Nifti1Image
        The image.
    %(fwhm)s
        ``sigma = fwhm / sqrt(8 ln 2)`` (per axis, divided by the voxel size); 0 returns the
        image unchanged (as float32).
    mask : path or Nifti1Image, optional
        When given, normalised convolution within the mask :footcite:p:`knutsson1993`:
        ``G*(f m) / G*m`` inside the mask and 0 outside, so
        that values at the edge of the brain are not pulled towards the zeros outside it.

    Returns
    -------
    nibabel.Nifti1Image
        float32 image.

    Raises
    ------
    UsageError
        Negative ``fwhm``.
    InputError
        Unreadable image or mask, or a mask of another shape.

    References
    ----------
    .. footbibliography::

    Examples
    --------
    >>> import nibabel as nib, numpy as np
    >>> img = nib.Nifti1Image(np.full((9, 9, 9), 50.0, np.float32), np.eye(4))
    >>> mask = nib.Nifti1Image(np.ones((9, 9, 9), np.uint8), np.eye(4))
    >>> float(smooth_image(img, 4.0, mask=mask).get_fdata()[0, 0, 0])
    50.0
    """
    from scipy.ndimage import gaussian_filter

    img = load_image(img, "image")
    data = np.asarray(img.dataobj, dtype=np.float64)
    if fwhm is None or float(fwhm) < 0:
        raise UsageError(f"fwhm must be >= 0 mm (got {fwhm})")
    if float(fwhm) == 0:
        return nib.Nifti1Image(data.astype(np.float32), img.affine)
    zooms = np.sqrt((img.affine[:3, :3] ** 2).sum(0))
    sigma = float(fwhm) * FWHM_TO_SIGMA / zooms
    if mask is None:
        out = gaussian_filter(data, sigma, mode="constant", cval=0.0, truncate=4.0)
        return nib.Nifti1Image(out.astype(np.float32), img.affine)
    m = np.asarray(load_image(mask, "mask").dataobj) > 0
    if m.shape != data.shape:
        raise InputError(f"mask shape {m.shape} differs from image shape {data.shape}")
    num = gaussian_filter(data * m, sigma, mode="constant", cval=0.0, truncate=4.0)
    den = gaussian_filter(m.astype(np.float64), sigma, mode="constant", cval=0.0, truncate=4.0)
    out = np.zeros_like(data)
    ok = m & (den > 1e-6)
    out[ok] = num[ok] / den[ok]
    return nib.Nifti1Image(out.astype(np.float32), img.affine)


@fill_doc
def global_gm_cbf(cbf, gm_prob, global_gm_threshold: float = 0.5, valid=None) -> float:
    """Return the mean CBF (ml/100 g/min) over template grey matter.

    Parameters
    ----------
    cbf : path or Nifti1Image
        CBF map on the template grid.
    gm_prob : path or Nifti1Image
        Grey-matter probability map on the same grid.
    %(global_gm_threshold)s
    valid : path or Nifti1Image, optional
        Voxels to use (e.g. the scan's warped brain mask: inside the field of view).

    Returns
    -------
    float
        Mean GM CBF, the "global" CBF used for global normalisation of regional values
        :footcite:p:`aslan2010`; NaN if no voxel qualifies.

    Raises
    ------
    InputError
        Unreadable images, or a GM map on another grid.

    References
    ----------
    .. footbibliography::

    Examples
    --------
    >>> import nibabel as nib, numpy as np
    >>> cbf = nib.Nifti1Image(np.array([[[60.0, 20.0]]], np.float32), np.eye(4))
    >>> gm = nib.Nifti1Image(np.array([[[0.9, 0.1]]], np.float32), np.eye(4))
    >>> global_gm_cbf(cbf, gm, 0.5)
    60.0
    """
    c = np.asarray(load_image(cbf, "CBF").dataobj, dtype=np.float64)
    g = np.asarray(load_image(gm_prob, "GM probability").dataobj) >= global_gm_threshold
    if g.shape != c.shape:
        raise InputError(f"GM map shape {g.shape} differs from CBF shape {c.shape}")
    if valid is not None:
        g &= np.asarray(load_image(valid, "mask").dataobj) > 0
    g &= np.isfinite(c)
    return float(c[g].mean()) if g.any() else float("nan")


def global_cbf_summary(maps: pd.DataFrame) -> pd.DataFrame:
    """Global GM CBF of the passing scans by arm and time point.

    Parameters
    ----------
    maps : pandas.DataFrame
        ``cbf_maps.tsv`` (``arm``, ``timepoint``, ``global_gm_cbf``, boolean ``qc_pass``).

    Returns
    -------
    pandas.DataFrame
        ``arm, timepoint, count, mean, std, min, max`` (ml/100 g/min), in order of first
        appearance.
    """
    return (maps[maps["qc_pass"]].groupby(["arm", "timepoint"], sort=False)["global_gm_cbf"]
            .agg(["count", "mean", "std", "min", "max"]).reset_index())
