"""The multi-delay fit: CBF and arterial transit time of the general kinetic model, per voxel.

The model is the general kinetic model :footcite:p:`buxton1998` in the form of the
multi-timepoint consensus :footcite:p:`woods2024`. For a fixed ATT the kinetic model
(:func:`ketamine_cbf.quantification.models.kinetic_pcasl`,
:func:`~ketamine_cbf.quantification.models.kinetic_pasl`) is linear in CBF, so CBF is
eliminated in closed form (variable projection, :footcite:t:`golub1973`), leaving a 1-D
residual in ATT that is minimised globally on a grid and refined by golden-section search,
all voxels at once. ``benchmarks/bench_multipld_fit.py`` compares it with
``scipy.optimize.least_squares`` per voxel.

References
----------
.. footbibliography::
"""

from __future__ import annotations

import numpy as np

from ketamine_cbf._docs import fill_doc
from ketamine_cbf.quantification import _docs  # noqa: F401 - registers the stage's parameter texts
from ketamine_cbf.quantification.models import PARTITION_COEFFICIENT, kinetic_pasl, kinetic_pcasl

__all__ = ["fit_kinetic_model"]

#: Inverse golden ratio: the golden-section interval shrinks by this factor per iteration.
_GOLDEN = (np.sqrt(5.0) - 1.0) / 2.0


class _Profile:
    """The variable-projection residual: ATT (V,) -> best CBF (V,) and residual (V,)."""

    def __init__(self, y, plds, tt, w, alpha, t1_blood, partition_coefficient, model):
        self.y, self.plds, self.tt, self.w = y, plds, tt, w
        self.args = (alpha, t1_blood, partition_coefficient)
        self.fn = {"pcasl": kinetic_pcasl, "pasl": kinetic_pasl}[model]

    def __call__(self, att):
        w, y = self.w, self.y
        b = self.fn(1.0, att[:, None], self.plds, self.tt, *self.args)
        sbb = (w * b * b).sum(1)
        sby = (w * b * y).sum(1)
        with np.errstate(divide="ignore", invalid="ignore"):
            cbf = np.where(sbb > 0, sby / sbb, 0.0)
            rss = (w * y * y).sum(1) - np.where(sbb > 0, sby * sby / sbb, 0.0)
        return cbf, rss


def _grid_search(profile, n_voxels, grid):
    """Index of the grid ATT with the smallest residual per voxel (the shortest among ties)."""
    best_rss = np.full(n_voxels, np.inf)
    best_k = np.zeros(n_voxels, int)
    for k, a in enumerate(grid):
        _, rss = profile(np.full(n_voxels, a))
        # strict improvement beyond rounding: in a flat profile the shortest ATT is kept
        with np.errstate(invalid="ignore"):
            better = rss < np.where(np.isfinite(best_rss), best_rss - 1e-12 * np.abs(best_rss), np.inf)
        best_rss = np.where(better, rss, best_rss)
        best_k = np.where(better, k, best_k)
    return best_k


def _golden_section(profile, a_lo, a_hi, n_refine):
    """Shrink every voxel's bracket [a_lo, a_hi] around its residual minimum; return the midpoints."""
    g = _GOLDEN
    c = a_hi - g * (a_hi - a_lo)
    d = a_lo + g * (a_hi - a_lo)
    fc, fd = profile(c)[1], profile(d)[1]
    for _ in range(n_refine):
        left = fc <= fd
        a_hi = np.where(left, d, a_hi)
        a_lo = np.where(left, a_lo, c)
        new_c = a_hi - g * (a_hi - a_lo)
        new_d = a_lo + g * (a_hi - a_lo)
        c_next = np.where(left, new_c, d)
        d_next = np.where(left, c, new_d)
        fc_next = np.where(left, np.nan, fd)
        fd_next = np.where(left, fc, np.nan)
        need_c, need_d = np.isnan(fc_next), np.isnan(fd_next)
        if need_c.any():
            fc_next = np.where(need_c, profile(c_next)[1], fc_next)
        if need_d.any():
            fd_next = np.where(need_d, profile(d_next)[1], fd_next)
        c, d, fc, fd = c_next, d_next, fc_next, fd_next
    return 0.5 * (a_lo + a_hi)


def _as_voxel_delays(values, n_voxels, n_delays):
    """Broadcast delays given per measurement (T,) or per voxel and measurement (V, T)."""
    values = np.asarray(values, float)
    values = values if values.ndim == 2 else np.atleast_1d(values)[None, :]
    return np.broadcast_to(values, (n_voxels, n_delays))


@fill_doc
def fit_kinetic_model(deltam, m0, plds, tau_or_ti1, alpha, t1_blood,
                      partition_coefficient=PARTITION_COEFFICIENT, model="pcasl",
                      att_bounds=(0.0, 3.0), weights=None, grid_step=0.01, n_refine=40):
    """Fit CBF and ATT of the general kinetic model voxel-wise (vectorised).

    For a fixed ATT the model is linear in CBF, so CBF is eliminated in closed form
    (variable projection, :footcite:t:`golub1973`): CBF(ATT) = Σ w b y / Σ w b², with
    b the model for CBF = 1 and y = ΔM/M0, leaving a 1-D residual in ATT. It is
    minimised globally on a grid (``grid_step``) over ``att_bounds`` and refined by a
    golden-section search in the bracketing grid cell, all voxels at once. This finds the
    global least-squares optimum (the ATT residual is not convex: a local
    Levenberg-Marquardt started at the wrong side of a PLD can stall) and is exact to
    ~1e-9 s on noiseless data; see ``benchmarks/bench_multipld_fit.py`` for the
    comparison with ``scipy.optimize.least_squares`` per voxel.

    Parameters
    ----------
    deltam : ndarray, shape (V, T)
        ΔM of V voxels at T delays.
    m0 : ndarray, shape (V,)
        M0 of each voxel (> 0).
    plds : ndarray, shape (T,) or (V, T)
        PLD (PCASL) or TI (PASL) of each measurement, s (per voxel with slice timing).
    tau_or_ti1 : float or ndarray, shape (T,) or (V, T)
        Labelling duration τ (PCASL) or bolus duration TI1 (PASL), s.
    alpha : float
        Labelling efficiency (including background suppression).
    %(t1_blood)s
    %(partition_coefficient)s
    model : {"pcasl", "pasl"}
        Kinetic model (:func:`~ketamine_cbf.quantification.models.kinetic_pcasl` or
        :func:`~ketamine_cbf.quantification.models.kinetic_pasl`).
    att_bounds : tuple of float
        ATT search interval (s).
    weights : ndarray, shape (T,), optional
        Weight of each measurement (e.g. number of averages).
    grid_step : float
        Grid spacing of the global search (s).
    n_refine : int
        Golden-section iterations (interval shrinks by 0.618 each).

    Returns
    -------
    cbf : ndarray (V,)
        ml/100 g/min.
    att : ndarray (V,)
        s. Where ATT is not identifiable (all delays longer than the transit time gives
        an ATT-independent signal) the shortest ATT consistent with the data is returned.
    rss : ndarray (V,)
        Weighted residual sum of squares of ΔM/M0.

    References
    ----------
    .. footbibliography::

    Examples
    --------
    >>> import numpy as np
    >>> from ketamine_cbf.quantification.models import kinetic_pcasl
    >>> from ketamine_cbf.quantification.multipld import fit_kinetic_model
    >>> plds = np.array([0.5, 1.0, 1.5, 2.0, 2.5])
    >>> dm = kinetic_pcasl(50.0, 1.3, plds, 1.8, 0.85, 1.65)[None, :]
    >>> cbf, att, rss = fit_kinetic_model(dm, np.ones(1), plds, 1.8, 0.85, 1.65)
    >>> round(float(cbf[0]), 6), round(float(att[0]), 6)
    (50.0, 1.3)
    """
    y = np.asarray(deltam, float) / np.asarray(m0, float)[:, None]
    V, T = y.shape
    w = np.ones(T) if weights is None else np.asarray(weights, float)
    profile = _Profile(y, _as_voxel_delays(plds, V, T), _as_voxel_delays(tau_or_ti1, V, T), w,
                       alpha, t1_blood, partition_coefficient, model)
    lo, hi = att_bounds
    grid = np.arange(lo, hi + grid_step / 2, grid_step)
    grid_att = grid[_grid_search(profile, V, grid)]
    att = _golden_section(profile, np.maximum(grid_att - grid_step, lo),
                          np.minimum(grid_att + grid_step, hi), n_refine)
    cbf, rss = profile(att)
    cbf_g, rss_g = profile(grid_att)
    use_grid = rss_g < rss  # flat profiles: keep the grid optimum
    return (np.where(use_grid, cbf_g, cbf), np.where(use_grid, grid_att, att),
            np.where(use_grid, rss_g, rss))
