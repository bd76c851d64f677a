"""Spatial-autocorrelation-preserving null models for map-to-map comparisons.

Brain maps are spatially smooth: neighbouring parcels are not independent samples, so
the parametric p of a correlation between two maps (which assumes ``N`` independent
pairs) is far too small :footcite:p:`alexanderbloch2018,markello2021`. The
fix is to compare the observed correlation with correlations obtained from *null
maps* that keep the spatial autocorrelation (SA) of the original map but are otherwise
random. Two generative null models that work for volumetric, parcellated data (no
sphere needed, so no spin test) are provided:

``variogram``
    :footcite:t:`burt2020`, "BrainSMASH": randomly permute the map, smooth the permuted
    values with a distance kernel over the ``delta`` fraction of nearest neighbours,
    and pick the ``delta`` whose rescaled smoothed variogram best matches the
    original map's (least squares). :func:`variogram_surrogates` is a vectorised
    re-implementation of ``brainsmash.mapgen.Base`` (brainsmash 0.11) that consumes
    the *same* random stream, so for the same ``seed`` and ``batch_size`` it returns
    the same surrogates as brainsmash (tested to 1e-8), 20-60x faster (see
    ``benchmarks/bench_receptors.py``): the kernel smoothing of a whole batch is one
    dense matrix product per ``delta`` and the smoothed variograms of all permuted
    maps are one product with the kernel-weight matrix, where brainsmash loops over
    neighbours and over surrogates in Python. ``engine="brainsmash"`` calls
    brainsmash itself.

``moran``
    Moran spectral randomisation :footcite:p:`wagner2015` as implemented in BrainSpace
    :footcite:p:`vosdewael2020`: the map is expanded in the eigenvectors of the doubly
    centred spatial weight matrix (Moran eigenvector maps) and the expansion
    coefficients are randomised (random signs, ``singleton``; or random rotations of
    coefficient pairs, ``pair``), which preserves the map's Moran's I spectrum.
    BrainSpace's ``moran_randomization`` is used (already fast: one matrix product
    for all nulls); the Moran eigenvectors are computed as BrainSpace's
    ``compute_mem`` does but in float64 (BrainSpace's float32 leaves errors of ~1e-7
    in the nulls' mean). The weight matrix is inverse Euclidean distance with zero
    diagonal :footcite:p:`wagner2015`.

Hemispheres (``groups``): Euclidean distance between parcels is defined across the
midline, and smoothing in the volume crosses it, so the default treats the brain as one
space (as neuromaps does for MNI152 data). ``groups`` (e.g. the hemisphere of each
parcel) instead generates nulls independently within each group, using the
within-group blocks of the distance matrix, the analogue of the per-hemisphere nulls
used for surface data (geodesic distance is undefined between hemispheres). Note that
independent per-hemisphere nulls destroy the left-right symmetry that real maps have,
so they are the *less* conservative choice for bilateral maps.

Seeds: every null set has its own integer ``random_state`` (the seed of brainsmash's or
BrainSpace's ``RandomState``); :func:`make_nulls` derives it from the master seed with
:func:`ketamine_cbf.stattools.int_seed` ``(seed, 5, key, map, model)``, so a null set
depends only on its own name.

p-values (:func:`ketamine_cbf.stattools.monte_carlo_p`) are two-sided with the +1
correction, ``p = (1 + #{|r_null| >= |r_obs|}) / (n_null + 1)`` (:footcite:t:`phipson2010`; as
in neuromaps' ``permtest_metric`` and JuSpace), so p is never 0 and the test is valid for
any number of nulls.

The brainsmash-equivalent kernel of the variogram model is in
``ketamine_cbf.receptors._variogram``.

References
----------
.. footbibliography::
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
from scipy import stats

from ketamine_cbf import stattools
from ketamine_cbf.errors import InputError, UsageError
from ketamine_cbf.progress import progress
from ketamine_cbf.receptors._variogram import MAX_BATCH, _variogram_block

__all__ = [
    "NULL_MODELS", "VARIOGRAM_OPTIONS", "variogram_surrogates", "moran_surrogates",
    "generate_nulls", "make_nulls", "correlate", "null_correlations", "rank_rows",
    "semivariogram", "moran_weights",
]

#: Null models this module generates (name -> short description).
NULL_MODELS = {
    "variogram": "variogram-matched surrogates (Burt et al. 2020, brainsmash)",
    "moran": "Moran spectral randomisation (Wagner & Dray 2015, BrainSpace)",
}

#: brainsmash options for ~100-500 parcels (the stage's default ``variogram_options``).
#: brainsmash's defaults (``deltas`` 0.1-0.9, ``pv`` 25) smooth each permuted map over
#: 10-90 % of *all* parcels, neighbourhoods far wider than the autocorrelation of ΔCBF
#: maps; the fit then often picks a strong smoothing with a large gain, and the nulls
#: acquire brain-wide gradients that the map does not have. On this atlas, for random
#: fields of known autocorrelation (spectral exponent 0-2), the default nulls' correlation
#: SD was 1.4-2x the true sampling SD (a conservative test: false-positive rate near 0 %),
#: these settings within -5 %..+13 % (measured with
#: :func:`ketamine_cbf.receptors.false_positives.random_smooth_maps`; see the stage
#: notebook's false-positive check). :footcite:t:`burt2020` ask users to check the variogram
#: fit and tune ``deltas``/``pv``; the stage notebook shows that fit.
#:
#: References
#: ----------
#: .. footbibliography::
VARIOGRAM_OPTIONS = {"deltas": [0.02, 0.04, 0.06, 0.08, 0.1, 0.12, 0.14, 0.16, 0.18, 0.2], "pv": 70}

def _check_inputs(x, D, name="map"):
    """``x`` and ``D`` as float arrays, or :class:`InputError` naming what is wrong."""
    x = np.asarray(x, dtype=float)
    D = np.asarray(D, dtype=float)
    if x.ndim != 1:
        raise InputError(f"{name}: expected a 1-D parcellated map (got shape {x.shape})")
    if not np.all(np.isfinite(x)):
        raise InputError(f"{name}: {int((~np.isfinite(x)).sum())} parcel value(s) are NaN/inf; "
                         "drop those parcels before generating nulls")
    if D.shape != (x.size, x.size):
        raise InputError(f"{name}: distance matrix shape {D.shape} does not match {x.size} parcels")
    if not np.allclose(D, D.T):
        raise InputError(f"{name}: distance matrix is not symmetric")
    if np.ptp(x) == 0:
        raise InputError(f"{name}: the map is constant; nulls and correlations are undefined")
    return x, D


def _surrogates_by_group(x, D, n_surrogates, random_state, groups, block) -> np.ndarray:
    """``(n_surrogates, N)`` nulls: ``block(x_g, D_g, n, random_state_g)`` within each group.

    Without ``groups`` the whole map is one group with ``random_state``; otherwise each
    group (in sorted order of its label) gets ``stattools.int_seed(random_state, label)``.
    """
    n_surrogates = int(n_surrogates)
    if n_surrogates < 1:
        raise UsageError(f"n_surrogates must be >= 1 (got {n_surrogates})")
    n = x.size
    if groups is None:
        parts = [(random_state, np.arange(n))]
    else:
        groups = np.asarray(groups)
        if groups.shape != (n,):
            raise InputError(f"groups: expected {n} labels (one per parcel), got shape {groups.shape}")
        parts = [(stattools.int_seed(random_state, str(g)), np.flatnonzero(groups == g))
                 for g in sorted(set(groups.tolist()), key=str)]
    out = np.empty((n_surrogates, n))
    for s, idx in parts:
        out[:, idx] = block(x[idx], D[np.ix_(idx, idx)], n_surrogates, s)
    return out


# --------------------------------------------------------------------------- variogram


def variogram_surrogates(x, D, n_surrogates: int = 1000, random_state: int = 0, *,
                         deltas=np.linspace(0.1, 0.9, 9), kernel: str = "exp", pv: float = 25,
                         nh: int = 25, b: float | None = None, resample: bool = False,
                         batch_size: int = MAX_BATCH, groups=None,
                         engine: str = "fast") -> np.ndarray:
    """Variogram-matched surrogate maps.

    The generative null model of :footcite:t:`burt2020` (brainsmash).

    Parameters
    ----------
    x : (N,) array_like
        Parcellated brain map (no NaN).
    D : (N, N) array_like
        Symmetric distance matrix between parcels (mm).
    n_surrogates : int
        Number of surrogate maps.
    random_state : int
        Seed of brainsmash's ``RandomState`` stream; the same seed and ``batch_size``
        give the same surrogates with either engine.
    deltas, kernel, pv, nh, b, resample
        brainsmash's parameters: fractions of nearest neighbours used for smoothing,
        smoothing kernel (``exp``, ``gaussian``, ``invdist``, ``uniform``),
        percentile of the distance distribution at which the variogram is truncated,
        number of variogram distances, variogram smoothing bandwidth (None: 3x the
        distance spacing) and whether surrogate values are resampled from ``x``
        (keeps the value distribution, so Pearson behaves like Spearman).
    batch_size : int
        Surrogates per batch (brainsmash's maximum is 500).
    groups : (N,) array_like, optional
        Generate surrogates independently within each group (e.g. hemisphere), from
        the within-group block of ``D``. Default: one group.
    engine : {"fast", "brainsmash"}
        ``fast``: this module's vectorised implementation; ``brainsmash``: brainsmash's
        ``Base`` class (reference, 20-60x slower).

    Returns
    -------
    (n_surrogates, N) numpy.ndarray
        Surrogate maps, one per row (de-meaned unless ``resample``).

    References
    ----------
    .. footbibliography::
    """
    x, D = _check_inputs(x, D)
    if engine not in ("fast", "brainsmash"):
        raise UsageError(f"engine must be 'fast' or 'brainsmash' (got {engine!r})")
    batch_size = int(min(max(batch_size, 1), MAX_BATCH))
    return _surrogates_by_group(
        x, D, n_surrogates, random_state, groups,
        lambda xg, Dg, n, s: _variogram_block(xg, Dg, n, s, deltas, kernel, pv, nh, b,
                                              resample, batch_size, engine))


# --------------------------------------------------------------------------- Moran


def moran_weights(D) -> np.ndarray:
    """Inverse-distance spatial weight matrix with zero diagonal, ``w_ij = 1 / d_ij``.

    Weights from a distance-based connectivity, with ``w_ii = 0``, as in
    :footcite:t:`wagner2015`.

    Parameters
    ----------
    D : (N, N) array_like
        Distances between parcels (mm).

    Returns
    -------
    (N, N) numpy.ndarray

    Raises
    ------
    InputError
        Two parcels at distance 0.

    References
    ----------
    .. footbibliography::

    Examples
    --------
    >>> moran_weights([[0.0, 2.0], [2.0, 0.0]]).tolist()
    [[0.0, 0.5], [0.5, 0.0]]
    """
    D = np.asarray(D, dtype=float)
    off = ~np.eye(len(D), dtype=bool)
    if np.any(D[off] <= 0):
        raise InputError("distance matrix: two parcels are at distance 0 (duplicate centroids)")
    W = np.zeros_like(D)
    W[off] = 1.0 / D[off]
    return W


_MEM_CACHE: dict = {}


def _mem(D) -> np.ndarray:
    """Moran eigenvector maps of the ``1/d`` weights, cached per distance matrix.

    Moran eigenvector maps :footcite:p:`dray2006`, as Moran spectral randomisation uses
    them :footcite:p:`wagner2015`. Same construction as BrainSpace's ``compute_mem``
    (doubly centred weight matrix, eigenvectors in decreasing order of eigenvalue, the null
    eigenvector of the constant removed), but diagonalised in float64: BrainSpace uses
    float32, which preserves Moran's I and the mean of the nulls only to ~1e-4 / 1e-7
    relative; float64 keeps them to ~1e-10 (tested).

    References
    ----------
    .. footbibliography::
    """
    key = (hashlib.sha1(np.ascontiguousarray(D).tobytes()).hexdigest(), D.shape)
    if key in _MEM_CACHE:
        return _MEM_CACHE[key]
    W = moran_weights(D)
    m = W.mean(axis=0, keepdims=True)
    Wc = W - m - m.T + W.mean()
    ev, vec = np.linalg.eigh(Wc)
    ev, vec = ev[::-1], vec[:, ::-1]
    zero = np.abs(ev) < 1e-8 * np.abs(ev).max()
    if zero.sum() != 1:
        raise InputError(f"Moran eigenvectors: {int(zero.sum())} zero eigenvalues, expected 1 "
                         "(degenerate distance matrix?)")
    mem = vec[:, ~zero]
    if len(_MEM_CACHE) >= 8:
        _MEM_CACHE.pop(next(iter(_MEM_CACHE)))
    _MEM_CACHE[key] = mem
    return mem


def _moran_block(x, D, n, random_state, procedure):
    """``(n, N)`` Moran nulls of ``x`` from BrainSpace (integer ``random_state``)."""
    from brainspace.null_models.moran import moran_randomization

    mem = _mem(D)
    sim = moran_randomization(x, mem, n_rep=n, procedure=procedure, joint=False,
                              random_state=int(random_state))
    return np.asarray(sim).reshape(n, x.size)


def moran_surrogates(x, D, n_surrogates: int = 1000, random_state: int = 0, *,
                     procedure: str = "singleton", groups=None) -> np.ndarray:
    """Moran spectral randomisation nulls (BrainSpace's implementation).

    The Moran spectral randomisation of :footcite:t:`wagner2015`, as implemented in
    BrainSpace :footcite:p:`vosdewael2020`.

    Parameters
    ----------
    x : (N,) array_like
        Parcellated brain map (no NaN).
    D : (N, N) array_like
        Symmetric distance matrix between parcels (mm); weights are ``1 / d``.
    n_surrogates : int
        Number of null maps.
    random_state : int
        Seed of the ``RandomState`` of BrainSpace's randomisation.
    procedure : {"singleton", "pair"}
        ``singleton``: random sign of each Moran eigenvector coefficient;
        ``pair``: random rotation of pairs of coefficients :footcite:p:`wagner2015`.
    groups : (N,) array_like, optional
        Randomise independently within each group (e.g. hemisphere).

    Returns
    -------
    (n_surrogates, N) numpy.ndarray
        Null maps with the mean, variance and Moran spectrum of ``x``.

    References
    ----------
    .. footbibliography::
    """
    x, D = _check_inputs(x, D)
    if procedure not in ("singleton", "pair"):
        raise UsageError(f"procedure must be 'singleton' or 'pair' (got {procedure!r})")
    return _surrogates_by_group(
        x, D, n_surrogates, random_state, groups,
        lambda xg, Dg, n, s: _moran_block(xg, Dg, n, s, procedure))


def generate_nulls(x, D, model: str, n_nulls: int, random_state: int, groups=None,
                   **options) -> np.ndarray:
    """Null maps of ``x`` from one of :data:`NULL_MODELS`.

    Parameters
    ----------
    x : (N,) array_like
        Parcellated map.
    D : (N, N) array_like
        Parcel distance matrix (mm).
    model : {"variogram", "moran"}
        Null model (see :func:`variogram_surrogates`, :func:`moran_surrogates`).
    n_nulls : int
        Number of null maps.
    random_state : int
        Integer seed of this null set (see :func:`make_nulls` for its derivation).
    groups : (N,) array_like, optional
        Within-group nulls (e.g. per hemisphere).
    **options
        Passed to the model's function.

    Returns
    -------
    (n_nulls, N) numpy.ndarray
    """
    if model == "variogram":
        return variogram_surrogates(x, D, n_nulls, random_state, groups=groups, **options)
    if model == "moran":
        return moran_surrogates(x, D, n_nulls, random_state, groups=groups, **options)
    raise UsageError(f"unknown null model {model!r}; choose from {', '.join(NULL_MODELS)}")


def _null_seed(seed, key, name, model) -> int:
    """The integer seed of the null set ``(key, map, model)`` under the master ``seed``."""
    return stattools.int_seed(seed, 5, key, str(name), model)


def make_nulls(maps: pd.DataFrame, D, models, n_nulls: int = 10000, *, seed: int, key: str,
               groups=None, **options) -> dict:
    """Null maps of every column of ``maps`` for every model.

    Parameters
    ----------
    maps : pandas.DataFrame
        Parcels x maps (no NaN; index aligned with ``D``).
    D : (N, N) array_like or pandas.DataFrame
        Parcel distance matrix (mm); a DataFrame is reindexed to ``maps.index``.
    models : sequence of {"variogram", "moran"}
        Null models (:data:`NULL_MODELS`).
    n_nulls : int
        Null maps per map and model.
    seed : int
        Master seed; the null set of each (map, model) has the integer seed
        ``stattools.int_seed(seed, 5, key, map, model)`` (stage 5's streams).
    key : str
        Names the family of null sets (``"group"``: nulls of the group ΔCBF maps,
        ``"pet"``: of the PET maps), so that equal map names in two families get
        different nulls.
    groups : (N,) array_like, optional
        Within-group nulls (e.g. hemispheres), see the module docstring.
    **options
        Per-model options, ``variogram={...}`` (:func:`variogram_surrogates`) and
        ``moran={...}`` (:func:`moran_surrogates`).

    Returns
    -------
    dict
        ``(map, model) -> (n_nulls, N) numpy.ndarray``.
    """
    if isinstance(D, pd.DataFrame):
        D = D.loc[maps.index, maps.index].to_numpy()
    sets = [(name, model) for name in maps.columns for model in models]
    out = {}
    for name, model in progress(sets, desc=f"[05_receptors] {key} null maps", unit="batch"):
        out[(name, model)] = generate_nulls(maps[name].to_numpy(dtype=float), D, model, n_nulls,
                                            _null_seed(seed, key, name, model), groups=groups,
                                            **options.get(model, {}))
    return out


# --------------------------------------------------------------------------- statistics


def rank_rows(a) -> np.ndarray:
    """Average ranks along the last axis (``scipy.stats.rankdata``), as floats.

    Parameters
    ----------
    a : array_like

    Returns
    -------
    numpy.ndarray
        Ranks 1..n of each row; ties get their mean rank.

    Examples
    --------
    >>> rank_rows([[3.0, 1.0, 2.0, 1.0]]).tolist()
    [[4.0, 1.5, 3.0, 1.5]]
    """
    return stats.rankdata(np.asarray(a, dtype=float), axis=-1).astype(float)


def _zscore_last(a):
    """Rows centred and scaled to unit norm (NaN for a constant row)."""
    a = np.asarray(a, dtype=float)
    a = a - a.mean(axis=-1, keepdims=True)
    norm = np.sqrt(np.square(a).sum(axis=-1, keepdims=True))
    with np.errstate(invalid="ignore", divide="ignore"):
        return a / norm


def correlate(A, B, method: str = "spearman") -> np.ndarray:
    """Correlations between every row of ``A`` and every row of ``B`` (vectorised).

    Parameters
    ----------
    A : (n, N) or (N,) array_like
    B : (m, N) or (N,) array_like
    method : {"spearman", "pearson"}
        Spearman = Pearson correlation of average ranks (ties get the mean rank, as
        ``scipy.stats.spearmanr``).

    Returns
    -------
    (n, m) numpy.ndarray
        ``r[i, j] = corr(A[i], B[j])`` (NaN for a constant row).

    Raises
    ------
    InputError
        Rows of different lengths.
    UsageError
        An unknown method.

    Examples
    --------
    >>> correlate([1.0, 2.0, 3.0, 4.0], [[1.0, 3.0, 2.0, 4.0], [4.0, 3.0, 2.0, 1.0]]).round(3).tolist()
    [[0.8, -1.0]]
    >>> correlate([1.0, 2.0, 3.0, 10.0], [1.0, 2.0, 3.0, 4.0], "pearson").round(3).tolist()
    [[0.885]]
    """
    A = np.atleast_2d(np.asarray(A, dtype=float))
    B = np.atleast_2d(np.asarray(B, dtype=float))
    if A.shape[1] != B.shape[1]:
        raise InputError(f"correlate: maps have {A.shape[1]} and {B.shape[1]} parcels")
    if method == "spearman":
        A, B = rank_rows(A), rank_rows(B)
    elif method != "pearson":
        raise UsageError(f"method must be 'spearman' or 'pearson' (got {method!r})")
    return np.clip(_zscore_last(A) @ _zscore_last(B).T, -1.0, 1.0)


def null_correlations(nulls, targets, method: str = "spearman") -> np.ndarray:
    """Correlation of every null map with every target map.

    Parameters
    ----------
    nulls : (n_nulls, N) array_like
    targets : (N,) or (N, k) array_like
        Target maps in columns (e.g. the six PET maps).
    method : {"spearman", "pearson"}

    Returns
    -------
    (n_nulls, k) numpy.ndarray
    """
    T = np.asarray(targets, dtype=float)
    T = T[:, None] if T.ndim == 1 else T
    return correlate(nulls, T.T, method)


def semivariogram(x, D, n_bins: int = 25, max_distance: float | None = None,
                  percentile: float = 25):
    """Empirical semivariogram ``gamma(h) = mean(0.5 (x_i - x_j)^2)`` in distance bins.

    Used to check that null maps keep the spatial autocorrelation of the map
    (:footcite:t:`burt2020`, Fig. 2): their variograms should overlay the map's.

    Parameters
    ----------
    x : (N,) or (n, N) array_like
        Map(s) in rows.
    D : (N, N) array_like
        Distances (mm).
    n_bins : int
        Number of equal-width distance bins.
    max_distance : float, optional
        Upper edge of the last bin; default the ``percentile``-th percentile of the
        pairwise distances (brainsmash's ``pv``).

    Returns
    -------
    centers : (n_bins,) numpy.ndarray
        Bin centres (mm).
    gamma : (n_bins,) or (n, n_bins) numpy.ndarray
        Semivariance per bin, same units as ``x`` squared.

    References
    ----------
    .. footbibliography::

    Examples
    --------
    >>> h, g = semivariogram([0.0, 1.0, 3.0], [[0, 1, 2], [1, 0, 3], [2, 3, 0]], n_bins=3,
    ...                      max_distance=3.0001)
    >>> h.round(2).tolist(), g.tolist()
    ([0.5, 1.5, 2.5], [0.5, 4.5, 2.0])
    """
    X = np.atleast_2d(np.asarray(x, dtype=float))
    D = np.asarray(D, dtype=float)
    i, j = np.triu_indices(D.shape[0], k=1)
    d = D[i, j]
    top = np.percentile(d, percentile) if max_distance is None else float(max_distance)
    edges = np.linspace(0.0, top, n_bins + 1)
    which = np.digitize(d, edges) - 1
    keep = (which >= 0) & (which < n_bins)
    v = 0.5 * np.square(X[:, i[keep]] - X[:, j[keep]])
    counts = np.bincount(which[keep], minlength=n_bins).astype(float)
    gamma = np.stack([np.bincount(which[keep], weights=row, minlength=n_bins) for row in v])
    with np.errstate(invalid="ignore", divide="ignore"):
        gamma = gamma / counts
    centers = 0.5 * (edges[1:] + edges[:-1])
    return centers, (gamma[0] if np.ndim(x) == 1 else gamma)
