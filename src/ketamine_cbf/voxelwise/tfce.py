"""Threshold-free cluster enhancement (TFCE) in one sorted pass with union-find.

TFCE :footcite:p:`smith2009` replaces each voxel's statistic by the integral, over
thresholds ``h`` up to the voxel's value, of ``e(h)^E * h^H``, where ``e(h)`` is
the extent (voxel count) of the supra-threshold cluster containing the voxel. With
the discretisation used by FSL's ``fslmaths -tfce`` and nilearn
(``nilearn.mass_univariate._utils.calculate_tfce``), the thresholds are
``h_k = k * max|t| / K`` (``K = 100`` steps, ``dh = "auto"``) and, like fslmaths,
the sum is *not* multiplied by ``dh``::

    TFCE(v) = sign(t_v) * sum_{k : h_k <= |t_v|} e_k(v)^E * h_k^H

nilearn evaluates this by labelling the thresholded map ``K`` times (``scipy.ndimage.label``
on the whole volume, about 1.3 s per 2 mm map here). This module computes the same
numbers exactly in a single pass: voxels are bucketed by their threshold level
(counting sort), added from the top level down, and merged with already-added
neighbours in a disjoint-set forest (union by size, path compression;
:footcite:t:`tarjan1975`), which builds the component tree of the level sets
:footcite:p:`najman2006`.
Each root carries a lazy increment ("potential"): while a component is unchanged
between levels ``s`` and ``k+1`` every member gains ``e^E * (P_s - P_k)`` with
``P_k = sum_{j<=k} h_j^H``, added once at the root when the component next changes;
a merged root stores its value relative to its new parent so members keep their
sums. The cost is ``O(n_voxels * alpha(n_voxels) + K)`` per map instead of
``O(K * volume)``. Hand-written (numba, in ``ketamine_cbf.voxelwise._kernels``)
because it is measurably faster than relabelling (see ``benchmarks/bench_permutation.py``);
equality with nilearn to 1e-6 is tested in ``tests/voxelwise/test_tfce.py``.

Conventions copied from nilearn 0.14 (so the maps are interchangeable):

* ``dh="auto"``: 100 steps from 0 to the map's own maximum of ``|t|`` (two-sided)
  or of ``t`` (one-sided), ``numpy.linspace(0, max, 101)[1:]``; a float ``dh``
  gives ``round(max / dh)`` steps, clipped to 10..1000 (with a warning).
* A voxel enters the level set at threshold ``h`` when ``|t| >= h``.
* Two-sided: positive and negative voxels form separate clusters on the same
  thresholds (taken from ``max |t|``); negative voxels get negative TFCE.
  One-sided: only positive voxels (a map with no positive voxel has TFCE 0).
* Connectivity: faces (6-neighbourhood, ``generate_binary_structure(3, 1)``).

Differences from nilearn (documented, not hit by masked data): voxels whose
statistic is NaN are background here; nilearn counts NaN voxels as supra-threshold
at every level (``NaN < h`` is false) and they inflate neighbouring clusters.

References
----------
.. footbibliography::
"""

from __future__ import annotations

import warnings

import numpy as np

from ketamine_cbf.voxelwise._kernels import alloc_workspace, tfce_kernel
from ketamine_cbf.voxelwise.connectivity import grid_neighbours

__all__ = ["tfce", "tfce_img", "tfce_thresholds", "AUTO_STEPS"]

#: Number of thresholds when ``dh == "auto"`` (fslmaths and nilearn).
AUTO_STEPS = 100


def _n_steps(max_score: float, dh) -> int:
    """Number of TFCE thresholds, with nilearn's rule and warnings."""
    if dh == "auto":
        return AUTO_STEPS
    n = round(max_score / float(dh))
    if n < 10:
        warnings.warn(f"Not enough steps for TFCE (got {n}); setting it to 10.", stacklevel=3)
        n = 10
    if n > 1000:
        warnings.warn(f"Too many steps for TFCE (got {n}); setting it to 1000.", stacklevel=3)
        n = 1000
    return int(n)


def tfce_thresholds(stat: np.ndarray, dh="auto", two_sided: bool = True) -> np.ndarray:
    """Return the TFCE thresholds of a statistic map (nilearn's rule).

    Parameters
    ----------
    stat : numpy.ndarray
        Statistic values (any shape; NaN ignored).
    dh : "auto" or float
        ``"auto"``: 100 equal steps up to the maximum; a float: the step size.
    two_sided : bool
        Thresholds run up to ``max |stat|`` (True) or ``max stat`` (False).

    Returns
    -------
    numpy.ndarray
        ``numpy.linspace(0, max, n_steps + 1)[1:]`` with the maximum taken over
        ``stat`` and 0 (out-of-mask background), as in nilearn.

    Examples
    --------
    >>> import numpy as np
    >>> t = tfce_thresholds(np.array([-3.0, 1.0, 2.0]))
    >>> len(t), float(t[0]), float(t[-1])
    (100, 0.03, 3.0)
    >>> tfce_thresholds(np.array([-3.0, 1.0, 2.0]), two_sided=False)[-1].item()
    2.0
    """
    stat = np.asarray(stat, dtype=np.float64)
    vals = np.abs(stat) if two_sided else stat
    m = float(max(0.0, np.nanmax(vals))) if vals.size else 0.0
    return np.linspace(0, m, _n_steps(m, dh) + 1)[1:]


# --------------------------------------------------------------------------- public API

def tfce(stat: np.ndarray, neighbours: np.ndarray, E: float = 0.5, H: float = 2.0,
         dh="auto", two_sided: bool = True) -> np.ndarray:
    """Threshold-free cluster enhancement of a masked statistic vector.

    Implements :footcite:t:`smith2009`, eq. 1, with fslmaths'/nilearn's
    discretisation (see the module docstring): ``TFCE(v) = sign(t_v) *
    sum_{k: h_k <= |t_v|} e_k(v)^E h_k^H``, equal to
    ``nilearn.mass_univariate._utils.calculate_tfce`` to rounding error.

    Parameters
    ----------
    stat : numpy.ndarray, shape (n_voxels,)
        Statistic (e.g. t) of the in-mask voxels in masked (C) order.
    neighbours : numpy.ndarray of int32, shape (n_voxels, k)
        Neighbour table from :func:`ketamine_cbf.voxelwise.connectivity.grid_neighbours`.
    E, H : float
        Extent and height exponents (:footcite:t:`smith2009` recommend 0.5 and 2).
    dh : "auto" or float
        Threshold step: ``"auto"`` = 100 steps up to the maximum (fslmaths, nilearn).
    two_sided : bool
        Enhance negative clusters too (negative output values).

    Returns
    -------
    numpy.ndarray, shape (n_voxels,)
        Signed TFCE values (0 where the statistic is below the first threshold).

    Raises
    ------
    ValueError
        ``neighbours`` does not have one row per voxel.

    References
    ----------
    .. footbibliography::

    Examples
    --------
    Isolated voxels (extent 1) on thresholds ``h_k = 3 k / 100``: the voxel of height 3 gets
    ``sum_{k <= 100} h_k^2``, the one of height -1 gets ``-sum_{k <= 33} h_k^2``.

    >>> import numpy as np
    >>> from ketamine_cbf.voxelwise.connectivity import grid_neighbours
    >>> stat = np.array([0.0, 3.0, 0.0, -1.0])
    >>> out = tfce(stat, grid_neighbours(np.ones((4, 1, 1), bool)))
    >>> out.round(4).tolist(), round(float(np.sum((3 * np.arange(1, 101) / 100) ** 2)), 4)
    ([0.0, 304.515, 0.0, -11.2761], 304.515)
    """
    stat = np.ascontiguousarray(stat, dtype=np.float64)
    neighbours = np.ascontiguousarray(neighbours, dtype=np.int32)
    if neighbours.shape[0] != stat.size:
        raise ValueError(f"neighbours has {neighbours.shape[0]} rows for {stat.size} voxels")
    n_fixed = AUTO_STEPS if dh == "auto" else 0
    if dh != "auto":
        vals = np.abs(stat) if two_sided else stat
        _n_steps(float(max(0.0, np.nanmax(vals))) if stat.size else 0.0, dh)  # warnings only
    out = np.zeros_like(stat)
    iws, fws = alloc_workspace(stat.size)
    tfce_kernel(stat, neighbours, bool(two_sided), float(E), float(H), n_fixed,
                0.0 if dh == "auto" else float(dh), out, True, iws, fws)
    return out


def tfce_img(stat_img, mask_img=None, E: float = 0.5, H: float = 2.0, dh="auto",
             two_sided: bool = True, connectivity: int = 6):
    """TFCE of a 3-D statistic image (path or ``Nifti1Image``).

    Parameters
    ----------
    stat_img : str, Path or nibabel.Nifti1Image
        3-D statistic map.
    mask_img : str, Path or nibabel.Nifti1Image, optional
        Voxels to include (default: the non-zero, finite voxels of ``stat_img``).
    E, H, dh, two_sided
        See :func:`tfce`.
    connectivity : {6, 18, 26}
        Neighbourhood (6 = nilearn's and FSL's).

    Returns
    -------
    nibabel.Nifti1Image
        TFCE map on the grid of ``stat_img`` (0 outside the mask).

    Raises
    ------
    ValueError
        ``stat_img`` not 3-D, or a mask of another shape.
    """
    import nibabel as nib
    from nilearn.image import load_img

    img = load_img(stat_img)
    data = np.asarray(img.get_fdata(), dtype=np.float64)
    if data.ndim != 3:
        raise ValueError(f"stat_img must be 3-D (got shape {data.shape})")
    if mask_img is None:
        mask = np.isfinite(data) & (data != 0)
    else:
        mask = np.asarray(load_img(mask_img).dataobj) > 0
        if mask.shape != data.shape:
            raise ValueError(f"mask shape {mask.shape} differs from image shape {data.shape}")
    values = tfce(data[mask], grid_neighbours(mask, connectivity), E=E, H=H, dh=dh,
                  two_sided=two_sided)
    out = np.zeros(data.shape, dtype=np.float64)
    out[mask] = values
    return nib.Nifti1Image(out, img.affine)
