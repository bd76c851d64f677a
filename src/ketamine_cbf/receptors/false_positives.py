"""Validity check of the inference: random smooth maps tested against a PET map.

Random maps independent of every PET map by construction (Gaussian random fields with a
power-law spectrum, parcellated with the analysis atlas) are tested against a PET map
with the naive test and with each null model. A valid test rejects a true null
hypothesis at its nominal rate; the naive test rejects far more often as soon as the
maps are as smooth as brain maps :footcite:p:`markello2021`. The null models include the
variogram surrogates of :footcite:t:`burt2020`; each rate comes with the exact binomial
interval of :footcite:t:`clopper1934`.

References
----------
.. footbibliography::
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import stats

from ketamine_cbf import stattools
from ketamine_cbf._docs import fill_doc
from ketamine_cbf.errors import UsageError
from ketamine_cbf.progress import progress
from ketamine_cbf.receptors import _docs  # noqa: F401  (registers stage 5's parameter texts)
from ketamine_cbf.receptors._utils import naive_p
from ketamine_cbf.receptors.nulls import correlate, generate_nulls, null_correlations
from ketamine_cbf.receptors.parcellate import Atlas

__all__ = ["random_smooth_maps", "false_positive_rates", "summarise_false_positives",
           "rates_by_exponent"]


def _coarse_averager(atlas: Atlas, voxel_mm: float, pad: float):
    """Parcel x coarse-voxel averaging matrix and the (padded) coarse grid shape."""
    from scipy import sparse

    lab = np.asarray(atlas.img.dataobj)
    ijk = np.argwhere(lab > 0)
    xyz = nib.affines.apply_affine(atlas.img.affine, ijk)
    lo = xyz.min(axis=0)
    coarse = np.floor((xyz - lo) / voxel_mm).astype(int)
    box = coarse.max(axis=0) + 1
    shape = tuple(int(np.ceil(b * pad)) for b in box)
    flat = np.ravel_multi_index(coarse.T, shape)
    ids = atlas.table["label"].to_numpy()
    pos = np.searchsorted(ids, lab[tuple(ijk.T)])
    M = sparse.csr_matrix((np.ones(len(pos)), (pos, flat)), shape=(len(ids), int(np.prod(shape))))
    M = sparse.diags(1.0 / np.asarray(M.sum(axis=1)).ravel()) @ M
    return M, shape


def random_smooth_maps(atlas: Atlas, n_maps: int, exponents=(0.0, 1.0, 2.0, 3.0), *, seed: int,
                       voxel_mm: float = 6.0) -> tuple[np.ndarray, np.ndarray]:
    """Parcellated random maps with power-law spatial autocorrelation (volumetric GRFs).

    Gaussian random fields with power spectrum ``P(k) ~ |k|^-alpha`` are generated in the
    volume (FFT of white noise, on a ``voxel_mm`` grid twice the size of the brain so
    that the periodic boundary does not wrap correlations around) and averaged within
    parcels. ``alpha = 0`` is white noise (no autocorrelation: the naive test is
    valid); brain maps have ``alpha`` around 2-3. This follows the simulation design
    of :footcite:t:`markello2021`, who generated such fields on the surface, here in the
    volume. The maps are independent of every PET map by construction.

    Parameters
    ----------
    atlas : ketamine_cbf.receptors.parcellate.Atlas
    n_maps : int
        Number of maps.
    exponents : float or sequence of float
        Spectral exponent(s) ``alpha`` in [0, 5]; a sequence assigns them to the maps in turn.
    seed : int
        Master seed; the white noise is drawn from ``stattools.rng(seed, 5, "random_maps")``.
    voxel_mm : float
        Voxel size of the field (mm); coarser than the analysis grid, which is fine
        for parcel averages and makes hundreds of maps cheap.

    Returns
    -------
    maps : (n_maps, N) numpy.ndarray
        Parcel values (atlas table order), unit-free.
    exponents : (n_maps,) numpy.ndarray
        The spectral exponent of each map.

    Raises
    ------
    UsageError
        An exponent outside [0, 5] or fewer than one map.

    References
    ----------
    .. footbibliography::
    """
    al = np.atleast_1d(np.asarray(exponents, dtype=float))
    if np.any(al < 0) or np.any(al > 5):
        raise UsageError(f"sim_alpha: spectral exponents must be in [0, 5] (got {al.tolist()})")
    if int(n_maps) < 1:
        raise UsageError(f"n_sim_maps must be >= 1 (got {n_maps})")
    M, shape = _coarse_averager(atlas, float(voxel_mm), 2.0)
    freqs = np.meshgrid(*[np.fft.fftfreq(s) for s in shape[:2]], np.fft.rfftfreq(shape[2]),
                        indexing="ij")
    knorm = np.sqrt(sum(f ** 2 for f in freqs))
    knorm[0, 0, 0] = np.inf
    rng = stattools.rng(seed, 5, "random_maps")
    alphas = np.resize(al, int(n_maps))
    out = np.empty((int(n_maps), M.shape[0]))
    for k in range(int(n_maps)):
        amp = knorm ** (-alphas[k] / 2)
        amp[0, 0, 0] = 0.0
        field = np.fft.irfftn(np.fft.rfftn(rng.standard_normal(shape)) * amp, s=shape, axes=(0, 1, 2))
        v = M @ field.ravel()
        out[k] = (v - v.mean()) / v.std()
    return out, alphas


@fill_doc
def false_positive_rates(sim_maps, target, D, models=("variogram", "moran"), n_sim_nulls: int = 100,
                         method: str = "spearman", *, seed: int, groups=None, labels=None,
                         **options) -> pd.DataFrame:
    """Test random maps (true correlation 0) against a target map, naive and with nulls.

    For each simulated map: its correlation with ``target``, the parametric p, and the
    p from ``n_sim_nulls`` null maps *of the simulated map* for each model (the same
    direction as the group analysis, where nulls are made of the ΔCBF map). This is the
    false-positive analysis of spatial null models of :footcite:t:`markello2021`.

    Parameters
    ----------
    sim_maps : (n_maps, N) array_like
        Random maps independent of ``target`` (e.g. :func:`random_smooth_maps`).
    target : (N,) array_like
        A PET map (parcellated).
    D : (N, N) array_like
        Parcel distances (mm).
    models : sequence of {"variogram", "moran"}
        Null models.
    %(n_sim_nulls)s
    %(receptors.method)s
    seed : int
        Master seed; the nulls of map ``k`` under ``model`` have the integer seed
        ``stattools.int_seed(seed, 5, "fpr", k, model)``.
    groups : (N,) array_like, optional
        Within-group nulls (e.g. hemispheres).
    labels : (n_maps,) array_like, optional
        A label per map (e.g. its spectral exponent), copied to the output.
    **options
        Per-model options, as for :func:`ketamine_cbf.receptors.nulls.make_nulls`.

    Returns
    -------
    pandas.DataFrame
        One row per map x test: ``map``, ``label``, ``method``, ``test`` (``naive`` or a
        null model), ``r``, ``p``.

    References
    ----------
    .. footbibliography::
    """
    S = np.atleast_2d(np.asarray(sim_maps, dtype=float))
    t = np.asarray(target, dtype=float)
    D = np.asarray(D, dtype=float)
    labels = np.full(len(S), np.nan) if labels is None else np.asarray(labels)
    rows = []
    for k in progress(range(len(S)), desc="[05_receptors] false-positive check", unit="batch"):
        r = float(correlate(S[k], t, method)[0, 0])
        rows.append({"map": k, "label": labels[k], "method": method, "test": "naive", "r": r,
                     "p": float(naive_p(r, len(t)))})
        for m in models:
            v = generate_nulls(S[k], D, m, n_sim_nulls, stattools.int_seed(seed, 5, "fpr", k, m),
                               groups=groups, **options.get(m, {}))
            nr = null_correlations(v, t, method)[:, 0]
            rows.append({"map": k, "label": labels[k], "method": method, "test": m, "r": r,
                         "p": stattools.monte_carlo_p(r, nr)})
    return pd.DataFrame(rows)


@fill_doc
def summarise_false_positives(per_map: pd.DataFrame, nominal_alpha: float = 0.05,
                              by=("method", "test")) -> pd.DataFrame:
    """False-positive rate at ``nominal_alpha`` with a 95 % Clopper-Pearson interval per group.

    The interval is the exact binomial interval of :footcite:t:`clopper1934`
    (``scipy.stats.binomtest``).

    Parameters
    ----------
    per_map : pandas.DataFrame
        :func:`false_positive_rates` output.
    %(receptors.nominal_alpha)s
    by : sequence of str
        Columns of ``per_map`` defining the groups.

    Returns
    -------
    pandas.DataFrame
        The ``by`` columns, ``n_maps``, ``n_rejected``, ``alpha`` (= ``nominal_alpha``),
        ``fpr``, ``ci_low``, ``ci_high``.

    References
    ----------
    .. footbibliography::

    Examples
    --------
    >>> import pandas as pd
    >>> per = pd.DataFrame({"method": "spearman", "test": ["naive"] * 4 + ["moran"] * 4,
    ...                     "p": [0.01, 0.04, 0.2, 0.03, 0.5, 0.06, 0.01, 0.9]})
    >>> print(summarise_false_positives(per)[["test", "n_maps", "n_rejected", "fpr"]].to_string(index=False))
     test  n_maps  n_rejected  fpr
    naive       4           3 0.75
    moran       4           1 0.25
    """
    rows = []
    for key, g in per_map.groupby(list(by), sort=False):
        k = int((g["p"] <= nominal_alpha).sum())
        n = len(g)
        ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
        key = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(by, key)), "n_maps": n, "n_rejected": k, "alpha": nominal_alpha,
                     "fpr": k / n, "ci_low": ci.low, "ci_high": ci.high})
    return pd.DataFrame(rows)


def rates_by_exponent(by_label: pd.DataFrame) -> pd.DataFrame:
    """False-positive rate of each test (columns) by spectral exponent (rows).

    Parameters
    ----------
    by_label : pandas.DataFrame
        :func:`summarise_false_positives` output grouped by ``("label", "test")``.

    Returns
    -------
    pandas.DataFrame
        ``spectral_exponent`` and one column per test.
    """
    wide = by_label.pivot_table(index="label", columns="test", values="fpr", sort=False)
    return wide.rename_axis(index="spectral_exponent", columns=None).reset_index()
