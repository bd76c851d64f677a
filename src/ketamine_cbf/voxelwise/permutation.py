"""Sign-flipping permutation tests for one-sample (paired) designs with FWE control.

Why sign flipping
-----------------
In the crossover every subject contributes one difference map per contrast
(e.g. CBF during minus before ketamine). Under the null hypothesis of no effect the
distribution of each subject's difference map is symmetric about zero, so flipping
its sign leaves the joint distribution unchanged: the subjects' maps are
*independent and symmetric errors* (ISE) and the ``2^n`` sign flips are the
permutation group of the one-sample t test (Winkler et al. 2014, sec. 2.3;
Nichols & Holmes 2002). Subjects stay whole (all voxels flipped together), which
preserves the spatial correlation of the data and gives exact family-wise error
(FWE) control through the maximum statistic over the brain (Nichols & Holmes 2002;
Westfall & Young 1993).

What is computed
----------------
For sign vectors ``s`` (rows of ``signs``) and data ``Y`` (subjects x voxels):

* the one-sample t statistic in nilearn's normalised form: with ``y`` scaled to unit
  norm per voxel and ``x = 1/sqrt(n)``, ``b = (s*y)'x`` and
  ``t = b * sqrt((n - 1) / (1 - b^2))`` (equal to ``mean / (sd / sqrt(n))``).
  Because ``sum(y^2)`` is invariant to sign flips, the statistics of a block of
  ``B`` flips are **one matrix product** ``(B x n) @ (n x V)``;
* nuisance covariates (e.g. crossover order) with the Freedman-Lane scheme
  (Freedman & Lane 1983; Winkler et al. 2014, table 2): the data are residualised
  on the nuisance regressors ``Z``, the residuals are sign-flipped and the full
  model is refitted, ``t = b * sqrt((n - 1 - k) / (1 - |Q'(s*r)|^2 - b^2))`` with
  ``Q`` an orthonormal basis of ``Z`` -- exactly nilearn's ``permuted_ols``;
* per flip, the maximum over voxels of ``t`` (``|t|`` two-sided) -> voxel-wise FWE
  (max-T, Nichols & Holmes 2002); of TFCE (Smith & Nichols 2009, via
  :mod:`ketamine_cbf.voxelwise.tfce`); and of cluster extent (voxel count) and cluster
  mass (sum of ``|t| - threshold`` over the cluster; Bullmore et al. 1999;
  Zhang et al. 2009) at a cluster-forming threshold.

FWE p-values are ``p = (1 + #{h0_max >= observed}) / (n_perm + 1)`` (nilearn's rank
rule; it counts the observed labelling once, Phipson & Smyth 2010), reported as
``-log10 p``. nilearn's cluster p-values use a different rule (``null_to_p``:
``#{h0 >= observed} / n_perm`` clipped to ``[1/n_perm, 1 - 1/n_perm]``, also outside
clusters); :func:`non_parametric_inference` reproduces it for interchangeability,
while :func:`sign_flip_test` users choose with ``cluster_p``.

Same sign flips as nilearn
--------------------------
:func:`nilearn_sign_flips` reproduces nilearn 0.14's draw exactly: a
``RandomState`` from ``random_state`` draws one seed per joblib chunk
(``randint(1, 2**31 - 2)``); each chunk's ``RandomState`` draws
``randint(2, size=(n, 1)) * 2 - 1`` per permutation and multiplies it into the
*already flipped* data, so the effective flip of permutation ``i`` is the running
product of the draws. The chunking follows nilearn's ``n_jobs`` rule, so the same
``(random_state, n_jobs)`` gives the same null distribution and the same p-values.

Speed
-----
Hand-written (numba, parallel over permutations) because it is measurably faster
than nilearn, which labels the volume ``100`` times per permutation for TFCE and
recomputes the t map per permutation: see ``benchmarks/bench_permutation.py`` for
times and ratios and ``tests/voxelwise/test_permutation.py`` for equality.

References
----------
Nichols T. E., Holmes A. P. (2002). Nonparametric permutation tests for functional
neuroimaging: a primer with examples. Human Brain Mapping 15:1-25. doi:10.1002/hbm.1058
Winkler A. M., Ridgway G. R., Webster M. A., Smith S. M., Nichols T. E. (2014).
Permutation inference for the general linear model. NeuroImage 92:381-397.
doi:10.1016/j.neuroimage.2014.01.060
Freedman D., Lane D. (1983). A nonstochastic interpretation of reported significance
levels. Journal of Business & Economic Statistics 1:292-298. doi:10.2307/1391660
Westfall P. H., Young S. S. (1993). Resampling-Based Multiple Testing. Wiley.
Smith S. M., Nichols T. E. (2009). Threshold-free cluster enhancement.
NeuroImage 44:83-98. doi:10.1016/j.neuroimage.2008.03.061
Bullmore E. T. et al. (1999). Global, voxel, and cluster tests, by theory and
permutation, for a difference between two groups of structural MR images of the
brain. IEEE Transactions on Medical Imaging 18:32-42. doi:10.1109/42.750253
Zhang H., Nichols T. E., Johnson T. D. (2009). Cluster mass inference via random
field theory. NeuroImage 44:51-61. doi:10.1016/j.neuroimage.2008.08.017
Phipson B., Smyth G. K. (2010). Permutation p-values should never be zero.
Statistical Applications in Genetics and Molecular Biology 9:39. doi:10.2202/1544-6115.1585
"""

from __future__ import annotations

import contextlib
import warnings

import numpy as np
from numba import njit, prange
import numba

from ketamine_cbf.errors import UsageError
from ketamine_cbf.voxelwise.connectivity import grid_neighbours, label_clusters
from ketamine_cbf.voxelwise.tfce import AUTO_STEPS, alloc_workspace, tfce, tfce_kernel

__all__ = [
    "nilearn_sign_flips", "exhaustive_sign_flips", "draw_sign_flips", "one_sample_t",
    "sign_flip_test", "fwe_logp", "cluster_fwe_logp", "cluster_measures",
    "cluster_threshold_t", "permuted_ols_one_sample", "non_parametric_inference",
]


# --------------------------------------------------------------------------- sign flips

def _nilearn_n_jobs(n_jobs: int) -> int:
    """nilearn 0.14's ``n_jobs`` sanitising (``_sanitize_inputs_permuted_ols``)."""
    import joblib

    if n_jobs == 0:
        raise UsageError("n_jobs == 0 is not valid (use a positive number or -1)")
    if n_jobs < 0:
        return max(1, joblib.cpu_count() - int(n_jobs) + 1)
    return min(int(n_jobs), joblib.cpu_count())


def nilearn_sign_flips(n_samples: int, n_perm: int, random_state=None, n_jobs: int = 1) -> np.ndarray:
    """Return the sign flips nilearn's ``permuted_ols`` applies, in its order.

    Reproduces nilearn 0.14 (``permuted_ols`` / ``_permuted_ols_on_chunk``): the
    master ``RandomState`` draws one seed per chunk, ``randint(1, 2**31 - 2)``;
    in each chunk the data are multiplied, permutation after permutation, by
    ``randint(2, size=(n_samples, 1)) * 2 - 1``, so flip ``i`` of a chunk is the
    product of its first ``i`` draws (still uniform on ``{-1, 1}^n``).

    Parameters
    ----------
    n_samples : int
        Number of subjects (rows of the data).
    n_perm : int
        Number of permutations.
    random_state : None, int or numpy.random.RandomState
        As nilearn's ``random_state`` (a ``RandomState`` is advanced in place).
    n_jobs : int
        nilearn's ``n_jobs``: decides how the permutations are split in chunks
        (``min(n_jobs, cpu_count)`` chunks), hence the draw.

    Returns
    -------
    numpy.ndarray of int8, shape (n_perm, n_samples)
        Entries ``-1`` or ``+1``.
    """
    from sklearn.utils import check_random_state

    n_perm = int(n_perm)
    if n_perm <= 0:
        return np.ones((0, n_samples), dtype=np.int8)
    rng = check_random_state(random_state)
    n_jobs = _nilearn_n_jobs(n_jobs)
    if n_perm > n_jobs:
        chunks = np.asarray([n_perm / n_jobs] * n_jobs, dtype=int)
        chunks[-1] += n_perm % n_jobs
    else:
        chunks = np.ones(n_perm, dtype=int)
    out = np.empty((n_perm, n_samples), dtype=np.int8)
    i = 0
    for n_chunk in chunks:
        chunk_rng = check_random_state(rng.randint(1, np.iinfo(np.int32).max - 1))
        cum = np.ones((n_samples, 1), dtype=np.int64)
        for _ in range(int(n_chunk)):
            cum = cum * (chunk_rng.randint(2, size=(n_samples, 1)) * 2 - 1)
            out[i] = cum[:, 0]
            i += 1
    return out


def exhaustive_sign_flips(n_samples: int) -> np.ndarray:
    """Return all ``2^n - 1`` sign flips other than the identity.

    With these as the permutations, ``(1 + #{h0 >= observed}) / 2^n`` is the exact
    permutation p-value over the whole group of sign flips (Winkler et al. 2014).

    Parameters
    ----------
    n_samples : int
        Number of subjects (at most 24).

    Returns
    -------
    numpy.ndarray of int8, shape (2**n_samples - 1, n_samples)
    """
    if not 1 <= n_samples <= 24:
        raise UsageError(f"exhaustive sign flipping needs 1..24 subjects (got {n_samples})")
    codes = np.arange(1, 2 ** n_samples, dtype=np.int64)
    bits = (codes[:, None] >> np.arange(n_samples)[None, :]) & 1
    return (1 - 2 * bits).astype(np.int8)


def draw_sign_flips(n_samples: int, n_perm: int, random_state=None, n_jobs: int = 1,
                    exhaustive="auto") -> np.ndarray:
    """Sign flips for a study: exhaustive when affordable, else nilearn's random draw.

    Parameters
    ----------
    n_samples : int
        Number of subjects.
    n_perm : int
        Number of random flips (and the budget for the exhaustive set).
    random_state : None, int or numpy.random.RandomState
        Seed of the random draw (:func:`nilearn_sign_flips`).
    n_jobs : int
        Chunking of the random draw (nilearn's rule).
    exhaustive : "auto" or bool
        ``"auto"``: enumerate all ``2^n - 1`` non-identity flips when that is at
        most ``n_perm`` (exact test); ``True``: always (n <= 24); ``False``: never.

    Returns
    -------
    numpy.ndarray of int8, shape (n_flips, n_samples)
    """
    if exhaustive == "auto":
        exhaustive = n_samples <= 24 and 2 ** n_samples - 1 <= n_perm
    if exhaustive:
        return exhaustive_sign_flips(n_samples)
    return nilearn_sign_flips(n_samples, n_perm, random_state, n_jobs)


# --------------------------------------------------------------------------- the linear model

def _normalize_columns(m):
    return m / np.sqrt(np.sum(m ** 2, axis=0))


def _orthonormalize(m, tol=1.0e-12):
    """Orthonormal basis of the columns of ``m`` (SVD; as nilearn's ``orthonormalize_matrix``)."""
    from scipy import linalg

    u, s, _ = linalg.svd(m, full_matrices=False)
    return np.ascontiguousarray(u[:, : np.count_nonzero(s > tol)])


def _prepare(Y, confounds):
    """Residualise and normalise as nilearn's ``permuted_ols`` (intercept test).

    Returns ``(R, x, Q, dof_factor)``: ``R`` (n x V) unit-norm residual data, ``x``
    (n,) the unit-norm residual intercept, ``Q`` (n x k) orthonormal nuisance basis
    or None, ``dof_factor = n - k - 1``.
    """
    n = Y.shape[0]
    ones = np.ones((n, 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        if confounds is None:
            R = _normalize_columns(Y)
            x = _normalize_columns(ones)[:, 0]
            return np.ascontiguousarray(R), np.ascontiguousarray(x), None, float(n - 1)
        Q = _orthonormalize(confounds)
        Yn = _normalize_columns(Y).T            # V x n
        Yr = Yn - (Yn @ Q) @ Q.T
        R = (Yr.T / np.sqrt(np.sum(Yr ** 2, axis=1)))  # n x V
        xn = _normalize_columns(ones).T          # 1 x n
        xr = xn - (xn @ Q) @ Q.T
        xr = _normalize_columns(xr.T)[:, 0]
    return np.ascontiguousarray(R), np.ascontiguousarray(xr), Q, float(n - Q.shape[1] - 1)


def _t_from(R, x, Q, dof_factor):
    """t statistic of the unflipped data (nilearn's ``t_score_with_covars_and_normalized_design``)."""
    b = R.T @ x
    with np.errstate(invalid="ignore", divide="ignore"):
        if Q is None:
            rss = 1 - b ** 2
        else:
            a2 = np.sum((R.T @ Q) ** 2, 1)
            rss = 1 - a2 - b ** 2
        return b * np.sqrt(dof_factor / rss)


def one_sample_t(data: np.ndarray, confounds: np.ndarray | None = None) -> np.ndarray:
    """One-sample t statistic per column, optionally adjusted for nuisance covariates.

    Without covariates this is ``mean / (sd / sqrt(n))`` with the ``n - 1``
    standard deviation (Student 1908), computed in nilearn's normalised form
    ``b * sqrt((n - 1) / (1 - b^2))`` with ``b = sum(y) / (sqrt(n) |y|)``. With
    covariates ``Z`` (no constant column), the t of the intercept in the OLS model
    ``y = 1 b0 + Z g + e`` (``n - 1 - k`` degrees of freedom).

    Parameters
    ----------
    data : numpy.ndarray, shape (n_subjects, n_voxels)
    confounds : numpy.ndarray, shape (n_subjects, k), optional

    Returns
    -------
    numpy.ndarray, shape (n_voxels,)
        NaN where a column is identically zero.
    """
    Y = np.asarray(data, dtype=np.float64)
    Z = None if confounds is None else np.asarray(confounds, dtype=np.float64).reshape(Y.shape[0], -1)
    return _t_from(*_prepare(Y, Z))


# --------------------------------------------------------------------------- numba block kernel

@njit(cache=True)
def _cluster_max_kernel(t, neighbours, two_sided, thr, iws, fws):
    """Largest cluster size and mass of ``t`` thresholded at ``|t| > thr`` (6-conn. by table)."""
    n = t.size
    sign = iws[1]
    parent = iws[3]
    size = iws[4]
    mass = fws
    for v in range(n):
        x = t[v]
        if x > thr:
            sign[v] = 1
        elif two_sided and x < -thr:
            sign[v] = -1
        else:
            sign[v] = 0
        parent[v] = v
        size[v] = 1
        mass[v] = (x if x > 0 else -x) - thr
    nn = neighbours.shape[1]
    for v in range(n):
        sv = sign[v]
        if sv == 0:
            continue
        for j in range(nn):
            u = neighbours[v, j]
            if u < 0 or u > v or sign[u] != sv:
                continue
            ru = u
            while parent[ru] != ru:
                parent[ru] = parent[parent[ru]]
                ru = parent[ru]
            rv = v
            while parent[rv] != rv:
                parent[rv] = parent[parent[rv]]
                rv = parent[rv]
            if ru == rv:
                continue
            if size[ru] < size[rv]:
                ru, rv = rv, ru
            parent[rv] = ru
            size[ru] += size[rv]
            mass[ru] += mass[rv]
    max_size = 0
    max_mass = 0.0
    for v in range(n):
        if sign[v] != 0 and parent[v] == v:
            if size[v] > max_size:
                max_size = size[v]
            if mass[v] > max_mass:
                max_mass = mass[v]
    return max_size, max_mass


@njit(parallel=True, cache=True)
def _null_block(beta, a2, dof_factor, neighbours, two_sided, do_tfce, E, H, n_fixed, dh,
                do_cluster, thr, h_t, h_tfce, h_size, h_mass, offset, n_chunks):
    """Maxima of t, TFCE, cluster size and mass for each row of a block of flips.

    Without covariates ``t = b sqrt(dof / (1 - b^2))`` is increasing in ``b``, so
    when only max-T is wanted the row maximum of ``b`` (``|b|``) is transformed
    once instead of every voxel's ``b``.
    """
    n_rows, n_vox = beta.shape
    has_a2 = a2.shape[0] > 0
    fast = not (do_tfce or do_cluster or has_a2)
    for c in prange(n_chunks):
        if fast:
            for p in range(c, n_rows, n_chunks):
                mx = -np.inf
                for v in range(n_vox):
                    b = beta[p, v]
                    if two_sided and b < 0:
                        b = -b
                    if b > mx:
                        mx = b
                h_t[offset + p] = mx * np.sqrt(dof_factor / (1.0 - mx * mx))
            continue
        iws, fws = alloc_workspace(n_vox)
        trow = np.empty(n_vox, dtype=np.float64)
        dummy = np.empty(0, dtype=np.float64)
        for p in range(c, n_rows, n_chunks):
            mx = -np.inf
            for v in range(n_vox):
                b = beta[p, v]
                if has_a2:
                    rss = 1.0 - a2[p, v] - b * b
                else:
                    rss = 1.0 - b * b
                tv = b * np.sqrt(dof_factor / rss)
                trow[v] = tv
                val = -tv if (two_sided and tv < 0) else tv
                if val > mx:
                    mx = val
            h_t[offset + p] = mx
            if do_tfce:
                h_tfce[offset + p] = tfce_kernel(trow, neighbours, two_sided, E, H, n_fixed, dh,
                                                 dummy, False, iws, fws)
            if do_cluster:
                s, m = _cluster_max_kernel(trow, neighbours, two_sided, thr, iws, fws)
                h_size[offset + p] = s
                h_mass[offset + p] = m


@contextlib.contextmanager
def _numba_threads(n):
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(max(1, min(int(n), numba.config.NUMBA_NUM_THREADS)))
        yield
    finally:
        numba.set_num_threads(old)


# --------------------------------------------------------------------------- p-values

def fwe_logp(observed: np.ndarray, h0_max: np.ndarray) -> np.ndarray:
    """``-log10`` FWE-corrected p-values from a max-statistic null distribution.

    ``p = (1 + #{h0_max >= observed}) / (n_perm + 1)`` (Nichols & Holmes 2002;
    Phipson & Smyth 2010), nilearn's rule for max-T and TFCE (it counts
    ``h0 < observed`` as the rank). ``observed`` must already be on the scale of
    ``h0_max`` (``|t|`` for a two-sided test).

    Parameters
    ----------
    observed : numpy.ndarray
    h0_max : numpy.ndarray, shape (n_perm,)

    Returns
    -------
    numpy.ndarray
        ``-log10 p``, same shape as ``observed``.
    """
    h0 = np.sort(np.asarray(h0_max, dtype=np.float64))
    n_perm = h0.size
    obs = np.asarray(observed, dtype=np.float64)
    rank = np.where(np.isnan(obs), 0, np.searchsorted(h0, obs, side="left"))
    return -np.log10((n_perm + 1 - rank) / float(1 + n_perm))


def cluster_fwe_logp(cluster_values: np.ndarray, h0_max: np.ndarray, convention: str = "phipson") -> np.ndarray:
    """``-log10`` cluster-wise FWE p-values for per-voxel cluster sizes or masses.

    Parameters
    ----------
    cluster_values : numpy.ndarray
        Size or mass of the cluster each voxel belongs to (0 outside clusters).
    h0_max : numpy.ndarray, shape (n_perm,)
        Null distribution of the largest cluster size or mass.
    convention : {"phipson", "nilearn"}
        ``"phipson"``: ``(1 + #{h0 >= value}) / (n_perm + 1)`` in clusters and
        ``p = 1`` outside (Phipson & Smyth 2010; PALM, randomise);
        ``"nilearn"``: nilearn's ``null_to_p(..., "larger")``,
        ``#{h0 >= value} / n_perm`` clipped to ``[1/n_perm, 1 - 1/n_perm]``
        everywhere (also outside clusters).

    Returns
    -------
    numpy.ndarray
        ``-log10 p``.
    """
    v = np.asarray(cluster_values, dtype=np.float64)
    h0 = np.sort(np.asarray(h0_max, dtype=np.float64))
    n = h0.size
    idx = np.searchsorted(h0, v, side="left").astype(float)
    if convention == "nilearn":
        p = 1 - idx / n
        smallest = np.maximum(np.finfo(float).eps, 1.0 / n)
        p = np.maximum(smallest, np.minimum(p, 1.0 - smallest))
    elif convention == "phipson":
        p = (1 + n - idx) / (n + 1.0)
        p = np.where(v > 0, p, 1.0)
    else:
        raise UsageError(f"cluster p-value convention must be 'phipson' or 'nilearn' (got {convention!r})")
    return -np.log10(p)


def cluster_threshold_t(p_threshold: float, dof: int, two_sided: bool) -> float:
    """t cluster-forming threshold for an uncorrected p (nilearn's rule).

    ``t = F^-1_t(1 - p/2; dof)`` two-sided, ``F^-1_t(1 - p; dof)`` one-sided, with
    ``dof = n - 1 - k`` (k nuisance covariates).
    """
    from scipy import stats

    if not 0 < p_threshold < 1:
        raise UsageError(f"cluster-forming threshold must be a p-value in (0, 1) (got {p_threshold})")
    return float(stats.t.isf(p_threshold / 2 if two_sided else p_threshold, df=dof))


def cluster_measures(stat: np.ndarray, neighbours: np.ndarray, threshold: float,
                     two_sided: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-voxel cluster labels, extents and masses of a thresholded statistic.

    Cluster extent is the voxel count of each supra-threshold cluster; cluster
    mass is ``sum(|t| - threshold)`` over it (Bullmore et al. 1999; Zhang et al.
    2009), as nilearn computes them.

    Parameters
    ----------
    stat : numpy.ndarray, shape (n_voxels,)
    neighbours : numpy.ndarray of int32, shape (n_voxels, k)
    threshold : float
        Cluster-forming threshold on ``|stat|`` (strict).
    two_sided : bool
        Negative clusters too (labelled separately from positive ones).

    Returns
    -------
    labels, size, mass : numpy.ndarray, shape (n_voxels,)
        Cluster label (0 = none), and the size / mass of each voxel's cluster.
    """
    stat = np.asarray(stat, dtype=np.float64)
    labels, n = label_clusters(stat, neighbours, threshold, two_sided)
    sizes = np.bincount(labels, minlength=n + 1).astype(np.int64)
    masses = np.bincount(labels, weights=np.abs(stat) - threshold, minlength=n + 1)
    sizes[0] = 0
    masses[0] = 0.0
    return labels, sizes[labels], masses[labels]


# --------------------------------------------------------------------------- the test

def sign_flip_test(data: np.ndarray, signs: np.ndarray, neighbours: np.ndarray | None = None,
                   confounds: np.ndarray | None = None, two_sided: bool = True,
                   tfce: bool = False, E: float = 0.5, H: float = 2.0, dh="auto",
                   cluster_threshold: float | None = None, cluster_p: str = "phipson",
                   n_threads: int | None = None, block_bytes: float = 128e6) -> dict:
    """Sign-flip one-sample permutation test with max-T, TFCE and cluster FWE.

    See the module docstring for the model, the statistics and their sources.

    Parameters
    ----------
    data : numpy.ndarray, shape (n_subjects, n_voxels)
        One contrast value per subject and in-mask voxel (e.g. ΔCBF, ml/100 g/min).
    signs : numpy.ndarray, shape (n_perm, n_subjects)
        Sign flips (``+1``/``-1``), e.g. from :func:`draw_sign_flips`.
    neighbours : numpy.ndarray of int32, shape (n_voxels, k), optional
        Voxel adjacency (:func:`~ketamine_cbf.voxelwise.connectivity.grid_neighbours`);
        required for TFCE and cluster inference.
    confounds : numpy.ndarray, shape (n_subjects, k), optional
        Nuisance covariates, no constant column (Freedman-Lane). Centre or
        effect-code them so that the intercept is the effect of interest.
    two_sided : bool
        Test both signs (maxima of ``|t|``, ``|TFCE|``, clusters of both signs).
    tfce : bool
        Compute TFCE and its FWE p-values.
    E, H, dh
        TFCE parameters (see :func:`ketamine_cbf.voxelwise.tfce.tfce`).
    cluster_threshold : float, optional
        Cluster-forming threshold on the t scale (see :func:`cluster_threshold_t`);
        None: no cluster inference.
    cluster_p : {"phipson", "nilearn"}
        p-value convention of the cluster maps (see :func:`cluster_fwe_logp`).
    n_threads : int, optional
        numba threads over permutations (default: numba's setting).
    block_bytes : float
        Memory for one block of permuted statistics (sets the block length).

    Returns
    -------
    dict of numpy.ndarray
        ``t``, ``logp_max_t``, ``h0_max_t`` and, as requested, ``tfce``,
        ``logp_max_tfce``, ``h0_max_tfce``, ``size``, ``logp_max_size``,
        ``h0_max_size``, ``mass``, ``logp_max_mass``, ``h0_max_mass`` (nilearn's
        keys; maps are 1-D over voxels, nulls in the order of ``signs``).
    """
    Y = np.asarray(data, dtype=np.float64)
    if Y.ndim != 2:
        raise UsageError(f"data must be 2-D (subjects x voxels), got shape {Y.shape}")
    n, n_vox = Y.shape
    S = np.asarray(signs, dtype=np.float64)
    if S.ndim != 2 or S.shape[1] != n:
        raise UsageError(f"signs must have shape (n_perm, {n}), got {S.shape}")
    if not np.all(np.abs(S) == 1):
        raise UsageError("signs must contain only +1 and -1")
    Z = None
    if confounds is not None:
        Z = np.asarray(confounds, dtype=np.float64).reshape(n, -1)
        if Z.shape[1] == 0:
            Z = None
    if (tfce or cluster_threshold is not None) and neighbours is None:
        raise UsageError("TFCE and cluster inference need the voxel neighbour table")
    if neighbours is not None:
        neighbours = np.ascontiguousarray(neighbours, dtype=np.int32)
        if neighbours.shape[0] != n_vox:
            raise UsageError(f"neighbours has {neighbours.shape[0]} rows for {n_vox} voxels")
    else:
        neighbours = np.full((n_vox, 0), -1, dtype=np.int32)

    R, x, Q, dof_factor = _prepare(Y, Z)
    t_obs = _t_from(R, x, Q, dof_factor)
    out = {"t": t_obs}
    n_fixed = AUTO_STEPS if dh == "auto" else 0
    dh_val = 0.0 if dh == "auto" else float(dh)
    if tfce:
        out["tfce"] = _tfce_obs(t_obs, neighbours, E, H, dh, two_sided)
    thr = 0.0
    if cluster_threshold is not None:
        thr = float(cluster_threshold)
        _, size_obs, mass_obs = cluster_measures(t_obs, neighbours, thr, two_sided)
        out["size"] = size_obs
        out["mass"] = mass_obs

    n_perm = S.shape[0]
    h_t = np.empty(n_perm)
    h_tfce = np.zeros(n_perm)
    h_size = np.zeros(n_perm, dtype=np.int64)
    h_mass = np.zeros(n_perm)
    k = 0 if Q is None else Q.shape[1]
    block = int(max(1, min(n_perm, block_bytes // (8.0 * n_vox * (k + 1))))) if n_perm else 1
    if np.isnan(R).any():  # all-zero voxels: t is NaN, ignored by the maxima (nilearn: nanmax)
        R = np.where(np.isnan(R), 0.0, R)
    if n_perm == 0:  # nilearn: no permutations -> the statistic maps only
        return out
    threads = numba.get_num_threads() if n_threads is None else n_threads
    # preallocated block buffers: a fresh 100 MB array per block costs more (page
    # faults) than the matrix product itself
    beta_buf = np.empty((block, n_vox))
    a2_buf = np.empty((block, n_vox)) if k else np.empty((0, 0))
    tmp_buf = np.empty((block, n_vox)) if k else None
    with _numba_threads(threads):
        n_chunks = numba.get_num_threads()
        for b0 in range(0, n_perm, block):
            Sb = S[b0:b0 + block]
            rows = Sb.shape[0]
            beta = beta_buf[:rows]
            np.dot(Sb * x[None, :], R, out=beta)
            a2 = a2_buf
            if k:
                a2 = a2_buf[:rows]
                a2[...] = 0.0
                tmp = tmp_buf[:rows]
                for j in range(k):
                    np.dot(Sb * Q[:, j][None, :], R, out=tmp)
                    np.square(tmp, out=tmp)
                    a2 += tmp
            _null_block(beta, a2, dof_factor, neighbours, bool(two_sided), bool(tfce), float(E),
                        float(H), n_fixed, dh_val, cluster_threshold is not None, thr,
                        h_t, h_tfce, h_size, h_mass, b0, min(n_chunks, rows))
    score = np.abs(t_obs) if two_sided else t_obs
    out["logp_max_t"] = fwe_logp(score, h_t)
    out["h0_max_t"] = h_t
    if tfce:
        out["logp_max_tfce"] = fwe_logp(np.abs(out["tfce"]), h_tfce)
        out["h0_max_tfce"] = h_tfce
    if cluster_threshold is not None:
        out["logp_max_size"] = cluster_fwe_logp(out["size"], h_size, cluster_p)
        out["h0_max_size"] = h_size
        out["logp_max_mass"] = cluster_fwe_logp(out["mass"], h_mass, cluster_p)
        out["h0_max_mass"] = h_mass
    return out


def _tfce_obs(t_obs, neighbours, E, H, dh, two_sided):
    t_clean = np.where(np.isfinite(t_obs), t_obs, 0.0)
    return tfce(t_clean, neighbours, E=E, H=H, dh=dh, two_sided=two_sided)


# --------------------------------------------------------------------------- nilearn-compatible front ends

def _nilearn_confounds(confounding_vars, n_samples):
    """nilearn's handling of constant columns for an intercept test."""
    if confounding_vars is None:
        return None
    Z = np.asarray(confounding_vars, dtype=np.float64).reshape(n_samples, -1)
    constants = [j for j in range(Z.shape[1]) if np.unique(Z[:, j]).size == 1]
    if constants:
        warnings.warn('Multiple columns across "confounding_vars" and/or "target_vars" are '
                      "constant. Only one will be used as intercept.", UserWarning, stacklevel=3)
        Z = np.delete(Z, constants, axis=1)
    return Z if Z.size else None


def permuted_ols_one_sample(target_vars: np.ndarray, confounding_vars=None, n_perm: int = 10000,
                            two_sided_test: bool = True, random_state=None, n_jobs: int = 1,
                            neighbours: np.ndarray | None = None, tfce: bool = False,
                            threshold: float | None = None, signs: np.ndarray | None = None,
                            n_threads: int | None = None) -> dict:
    """Drop-in for ``nilearn.mass_univariate.permuted_ols`` with an intercept test.

    Same model, sign flips (``random_state``, ``n_jobs``), keys, shapes
    ``(1, n_descriptors)`` and p-value conventions as
    ``permuted_ols(np.ones((n, 1)), target_vars, confounding_vars, ...)``; the
    masker is replaced by the voxel ``neighbours`` table (needed for TFCE and
    clusters).

    Parameters
    ----------
    target_vars : numpy.ndarray, shape (n_samples, n_descriptors)
    confounding_vars : numpy.ndarray, shape (n_samples, k), optional
    n_perm : int
    two_sided_test : bool
    random_state : None, int or numpy.random.RandomState
    n_jobs : int
        Sets nilearn's chunking of the sign-flip draw (not our threads).
    neighbours : numpy.ndarray of int32, optional
    tfce : bool
    threshold : float, optional
        Cluster-forming threshold in p (nilearn's convention).
    signs : numpy.ndarray, optional
        Explicit flips (overrides ``random_state``/``n_jobs``).
    n_threads : int, optional
        numba threads.

    Returns
    -------
    dict
        ``t``, ``logp_max_t``, ``h0_max_t`` (+ ``tfce``, ``logp_max_tfce``,
        ``h0_max_tfce``; ``size``, ``logp_max_size``, ``h0_max_size``, ``mass``,
        ``logp_max_mass``, ``h0_max_mass``), maps of shape ``(1, n_descriptors)``.
    """
    Y = np.asarray(target_vars, dtype=np.float64)
    if Y.ndim != 2:
        raise UsageError(f"'target_vars' should be a 2D array (got {Y.ndim} dimension(s))")
    n = Y.shape[0]
    Z = _nilearn_confounds(confounding_vars, n)
    if signs is None:
        signs = nilearn_sign_flips(n, n_perm, random_state, n_jobs)
    thr_t = None
    if threshold is not None:
        k = 0 if Z is None else Z.shape[1]
        thr_t = cluster_threshold_t(threshold, n - 1 - k, two_sided_test)
    res = sign_flip_test(Y, signs, neighbours=neighbours, confounds=Z, two_sided=two_sided_test,
                         tfce=tfce, cluster_threshold=thr_t, cluster_p="nilearn", n_threads=n_threads)
    return {k: v[None, :] for k, v in res.items()}


def non_parametric_inference(second_level_input, confounds=None, design_matrix=None,
                             second_level_contrast=None, first_level_contrast=None, mask=None,
                             smoothing_fwhm=None, model_intercept=True, n_perm=10000,
                             two_sided_test=False, random_state=None, n_jobs=1, verbose=0,
                             threshold=None, tfce=False, n_threads=None):
    """Drop-in for ``nilearn.glm.second_level.non_parametric_inference`` (one-sample tests).

    Same inputs, defaults (``two_sided_test=False``, ``n_perm=10000``), sign flips for
    the same ``random_state``/``n_jobs``, masking (nilearn's ``NiftiMasker``, fitted
    as nilearn fits it), output keys and images: ``t``, ``logp_max_t`` and, with
    ``tfce``, ``tfce``, ``logp_max_tfce``; with ``threshold`` (cluster-forming p),
    ``size``, ``logp_max_size``, ``mass``, ``logp_max_mass``. Without ``tfce`` and
    ``threshold`` the ``logp_max_t`` image alone is returned, as in nilearn.

    Only one-sample designs are supported: the tested regressor
    (``design_matrix @ second_level_contrast``) must be constant; other columns are
    nuisance covariates (Freedman-Lane, as nilearn).

    Parameters
    ----------
    second_level_input : list of str/Path/Nifti1Image, or 4-D image
        One map per subject.
    confounds : None
        Accepted for signature compatibility (nilearn uses it only with
        first-level-model inputs); must be None.
    design_matrix : pandas.DataFrame, optional
        Default: a single ``intercept`` column.
    second_level_contrast : str, list or array, optional
        Column name or contrast vector over the design columns.
    first_level_contrast : None
        Not supported (no first-level-model inputs).
    mask : str, Path, Nifti1Image or NiftiMasker, optional
    smoothing_fwhm : float, optional
    model_intercept : bool
    n_perm : int
    two_sided_test : bool
    random_state : None, int or numpy.random.RandomState
    n_jobs : int
        nilearn's ``n_jobs`` (chunking of the sign-flip draw).
    verbose : int
    threshold : float, optional
        Cluster-forming threshold in p.
    tfce : bool
    n_threads : int, optional
        numba threads for the permutations.

    Returns
    -------
    nibabel.Nifti1Image or dict of nibabel.Nifti1Image
    """
    import pandas as pd
    from joblib import Memory
    from nilearn.image import concat_imgs, iter_img, load_img, mean_img
    from nilearn.maskers import NiftiMasker
    from sklearn.base import clone

    if int(n_perm) < 1:
        raise UsageError(f"n_perm must be at least 1 (got {n_perm})")
    if confounds is not None or first_level_contrast is not None:
        raise UsageError("confounds / first_level_contrast apply to first-level-model inputs, "
                         "which are not supported: pass one image per subject and a design_matrix")
    if isinstance(second_level_input, (list, tuple)):
        if len(second_level_input) < 2:
            raise UsageError("second_level_input needs at least two images")
        effect_maps = [load_img(i) for i in second_level_input]
    else:
        img = load_img(second_level_input)
        if img.ndim != 4:
            raise UsageError("second_level_input must be a list of 3-D images or a 4-D image")
        effect_maps = list(iter_img(img))
    n = len(effect_maps)
    if design_matrix is None:
        design_matrix = pd.DataFrame({"intercept": np.ones(n)})
    if len(design_matrix) != n:
        raise UsageError(f"design_matrix has {len(design_matrix)} rows for {n} images")
    columns = list(design_matrix.columns)
    if second_level_contrast is None:
        if len(columns) != 1:
            raise UsageError("No second-level contrast is specified.")
        con = np.ones(1)
    elif isinstance(second_level_contrast, str):
        if second_level_contrast not in columns:
            raise UsageError(f"second_level_contrast {second_level_contrast!r} is not a design column")
        con = np.array([c == second_level_contrast for c in columns], dtype=float)
    else:
        con = np.asarray(second_level_contrast, dtype=float)
    if con.size != len(columns) or np.all(con == 0):
        raise UsageError("second_level_contrast must have one non-zero weight per design column")
    tested = np.asarray(design_matrix, dtype=float) @ con
    if np.unique(tested).size != 1:
        raise UsageError("only one-sample (intercept) tests are supported by this implementation; "
                         "use nilearn for regressors that are not constant")
    rest = [c for c, w in zip(columns, con) if not w]
    confounding_vars = np.asarray(design_matrix[rest], dtype=float) if rest else None

    if isinstance(mask, NiftiMasker):
        masker = clone(mask)
        if smoothing_fwhm is not None:
            masker.smoothing_fwhm = smoothing_fwhm
    else:
        masker = NiftiMasker(mask_img=mask, smoothing_fwhm=smoothing_fwhm, memory=Memory(None),
                             verbose=max(0, verbose - 1), memory_level=1, standardize=None)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*Generation of a mask.*")
        masker.fit(mean_img(concat_imgs(effect_maps)))
    target = masker.transform(effect_maps)
    mask_arr = np.asarray(masker.mask_img_.dataobj) > 0
    neighbours = grid_neighbours(mask_arr, 6) if (tfce or threshold is not None) else None
    if np.any(np.all(target == 0, axis=0)):
        warnings.warn("Some descriptors in 'target_vars' have zeros across all samples. "
                      "These descriptors will be ignored during null distribution generation.",
                      stacklevel=2)
    # model_intercept: the tested variable is the intercept, nothing to add (as nilearn).
    res = permuted_ols_one_sample(target, confounding_vars, n_perm=n_perm,
                                  two_sided_test=two_sided_test, random_state=random_state,
                                  n_jobs=n_jobs, neighbours=neighbours, tfce=tfce,
                                  threshold=threshold, n_threads=n_threads)

    def img(key):
        values = np.ravel(res[key])
        if np.issubdtype(values.dtype, np.integer):
            values = values.astype(np.int32)  # NIfTI-friendly (nilearn converts with a warning)
        return masker.inverse_transform(values)

    if not tfce and threshold is None:
        return img("logp_max_t")
    out = {"t": img("t"), "logp_max_t": img("logp_max_t")}
    if tfce:
        out["tfce"] = img("tfce")
        out["logp_max_tfce"] = img("logp_max_tfce")
    if threshold is not None:
        out["size"] = img("size")
        out["logp_max_size"] = img("logp_max_size")
        out["mass"] = img("mass")
        out["logp_max_mass"] = img("logp_max_mass")
    return out
