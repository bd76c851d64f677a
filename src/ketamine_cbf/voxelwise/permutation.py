"""Sign-flipping permutation tests for one-sample (paired) designs with FWE control.

Why sign flipping
-----------------
In the crossover every subject contributes one difference map per contrast
(e.g. CBF during minus before ketamine). Under the null hypothesis of no effect the
distribution of each subject's difference map is symmetric about zero, so flipping
its sign leaves the joint distribution unchanged: the subjects' maps are
*independent and symmetric errors* (ISE) and the ``2^n`` sign flips are the
permutation group of the one-sample t test (:footcite:t:`winkler2014`, sec. 2.3;
:footcite:t:`nichols2002`). Subjects stay whole (all voxels flipped together), which
preserves the spatial correlation of the data and gives exact family-wise error
(FWE) control through the maximum statistic over the brain
:footcite:p:`nichols2002,westfall1993`.

What is computed
----------------
For sign vectors ``s`` (rows of ``signs``) and data ``Y`` (subjects x voxels):

* the one-sample t statistic in nilearn's normalised form: with ``y`` scaled to unit
  norm per voxel and ``x = 1/sqrt(n)``, ``b = (s*y)'x`` and
  ``t = b * sqrt((n - 1) / (1 - b^2))`` (equal to ``mean / (sd / sqrt(n))``).
  Because ``sum(y^2)`` is invariant to sign flips, the statistics of a block of
  ``B`` flips are **one matrix product** ``(B x n) @ (n x V)``;
* nuisance covariates (e.g. crossover order) with the Freedman-Lane scheme
  (:footcite:t:`freedman1983`; :footcite:t:`winkler2014`, table 2): the data are residualised
  on the nuisance regressors ``Z``, the residuals are sign-flipped and the full
  model is refitted, ``t = b * sqrt((n - 1 - k) / (1 - |Q'(s*r)|^2 - b^2))`` with
  ``Q`` an orthonormal basis of ``Z`` -- exactly nilearn's ``permuted_ols``;
* per flip, the maximum over voxels of ``t`` (``|t|`` two-sided) -> voxel-wise FWE
  (max-T, :footcite:t:`nichols2002`); of TFCE (:footcite:t:`smith2009`, via
  :mod:`ketamine_cbf.voxelwise.tfce`); and of cluster extent (voxel count) and cluster
  mass (sum of ``|t| - threshold`` over the cluster; :footcite:t:`bullmore1999`;
  :footcite:t:`zhang2009`) at a cluster-forming threshold.

FWE p-values are ``p = (1 + #{h0_max >= observed}) / (n_perm + 1)`` (nilearn's rank
rule; it counts the observed labelling once, :footcite:t:`phipson2010`), reported as
``-log10 p``. nilearn's cluster p-values use a different rule (``null_to_p``:
``#{h0 >= observed} / n_perm`` clipped to ``[1/n_perm, 1 - 1/n_perm]``, also outside
clusters); :func:`ketamine_cbf.voxelwise.nilearn_compat.non_parametric_inference`
reproduces it for interchangeability, while :func:`sign_flip_test` users choose with
``cluster_p``. The sign flips come from :mod:`ketamine_cbf.voxelwise.signflips`
(nilearn's draw, or all of them).

Speed
-----
Hand-written (numba, parallel over permutations; kernels in
``ketamine_cbf.voxelwise._kernels``) because it is measurably faster than nilearn,
which labels the volume ``100`` times per permutation for TFCE and recomputes the t map
per permutation: see ``benchmarks/bench_permutation.py`` for times and ratios and
``tests/voxelwise/test_nilearn_compat.py`` for equality.

References
----------
.. footbibliography::
"""

from __future__ import annotations

import numba
import numpy as np

from ketamine_cbf._docs import fill_doc
from ketamine_cbf.errors import UsageError
from ketamine_cbf.progress import progress
from ketamine_cbf.voxelwise import _docs  # noqa: F401  (registers the stage's parameter texts)
from ketamine_cbf.voxelwise._kernels import null_block, numba_threads
from ketamine_cbf.voxelwise.connectivity import label_clusters
from ketamine_cbf.voxelwise.tfce import AUTO_STEPS, tfce as tfce_map

__all__ = ["one_sample_t", "sign_flip_test", "fwe_logp", "cluster_fwe_logp", "cluster_measures",
           "cluster_threshold_t"]


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
    standard deviation :footcite:p:`student1908`, computed in nilearn's normalised form
    ``b * sqrt((n - 1) / (1 - b^2))`` with ``b = sum(y) / (sqrt(n) |y|)``. With
    covariates ``Z`` (no constant column), the t of the intercept in the OLS model
    ``y = 1 b0 + Z g + e`` (``n - 1 - k`` degrees of freedom).

    Parameters
    ----------
    data : numpy.ndarray, shape (n_subjects, n_voxels)
        One value per subject (row) and voxel (column).
    confounds : numpy.ndarray, shape (n_subjects, k), optional
        Nuisance covariates without a constant column.

    Returns
    -------
    numpy.ndarray, shape (n_voxels,)
        NaN where a column is identically zero.

    References
    ----------
    .. footbibliography::

    Examples
    --------
    >>> import numpy as np
    >>> one_sample_t(np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]])).round(4).tolist()
    [3.4641, nan]
    """
    Y = np.asarray(data, dtype=np.float64)
    Z = None if confounds is None else np.asarray(confounds, dtype=np.float64).reshape(Y.shape[0], -1)
    return _t_from(*_prepare(Y, Z))


# --------------------------------------------------------------------------- p-values

def fwe_logp(observed: np.ndarray, h0_max: np.ndarray) -> np.ndarray:
    """``-log10`` FWE-corrected p-values from a max-statistic null distribution.

    ``p = (1 + #{h0_max >= observed}) / (n_perm + 1)``
    :footcite:p:`nichols2002,phipson2010`, nilearn's rule for max-T and TFCE (it counts
    ``h0 < observed`` as the rank). ``observed`` must already be on the scale of
    ``h0_max`` (``|t|`` for a two-sided test).

    Parameters
    ----------
    observed : numpy.ndarray
        Observed statistic per voxel (NaN gets ``p = 1``).
    h0_max : numpy.ndarray, shape (n_perm,)
        The maximum statistic of each permutation.

    Returns
    -------
    numpy.ndarray
        ``-log10 p``, same shape as ``observed``.

    References
    ----------
    .. footbibliography::

    Examples
    --------
    >>> import numpy as np
    >>> (10 ** -fwe_logp(np.array([0.5, 2.0, 4.5]), np.array([1.0, 2.0, 3.0, 4.0]))).round(3).tolist()
    [1.0, 0.8, 0.2]
    """
    h0 = np.sort(np.asarray(h0_max, dtype=np.float64))
    n_perm = h0.size
    obs = np.asarray(observed, dtype=np.float64)
    rank = np.where(np.isnan(obs), 0, np.searchsorted(h0, obs, side="left"))
    return -np.log10((n_perm + 1 - rank) / float(1 + n_perm))


def cluster_fwe_logp(cluster_values: np.ndarray, h0_max: np.ndarray,
                     convention: str = "phipson") -> np.ndarray:
    """``-log10`` cluster-wise FWE p-values for per-voxel cluster sizes or masses.

    Parameters
    ----------
    cluster_values : numpy.ndarray
        Size or mass of the cluster each voxel belongs to (0 outside clusters).
    h0_max : numpy.ndarray, shape (n_perm,)
        Null distribution of the largest cluster size or mass.
    convention : {"phipson", "nilearn"}
        ``"phipson"``: ``(1 + #{h0 >= value}) / (n_perm + 1)`` in clusters and
        ``p = 1`` outside (:footcite:t:`phipson2010`; PALM, randomise);
        ``"nilearn"``: nilearn's ``null_to_p(..., "larger")``,
        ``#{h0 >= value} / n_perm`` clipped to ``[1/n_perm, 1 - 1/n_perm]``
        everywhere (also outside clusters).

    Returns
    -------
    numpy.ndarray
        ``-log10 p``.

    Raises
    ------
    UsageError
        An unknown ``convention``.

    References
    ----------
    .. footbibliography::

    Examples
    --------
    >>> import numpy as np
    >>> h0 = np.array([1.0, 2.0, 3.0, 4.0])
    >>> (10 ** -cluster_fwe_logp(np.array([0.0, 2.0, 9.0]), h0)).round(3).tolist()
    [1.0, 0.8, 0.2]
    >>> (10 ** -cluster_fwe_logp(np.array([0.0, 2.0, 9.0]), h0, "nilearn")).round(3).tolist()
    [0.75, 0.75, 0.25]
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


def cluster_threshold_t(p_threshold: float, dof: int, two_sided: bool = True) -> float:
    """t cluster-forming threshold for an uncorrected p (nilearn's rule).

    ``t = F^-1_t(1 - p/2; dof)`` two-sided, ``F^-1_t(1 - p; dof)`` one-sided, with
    ``dof = n - 1 - k`` (k nuisance covariates).

    Parameters
    ----------
    p_threshold : float
        Uncorrected p of the cluster-forming threshold, in (0, 1).
    dof : int
        Degrees of freedom of the t statistic.
    two_sided : bool
        Split ``p_threshold`` between the two tails.

    Returns
    -------
    float
        The t threshold (clusters are ``|t|`` strictly above it).

    Raises
    ------
    UsageError
        ``p_threshold`` outside (0, 1).

    Examples
    --------
    >>> round(cluster_threshold_t(0.001, 25, two_sided=True), 4)
    3.7251
    """
    from scipy import stats

    if not 0 < p_threshold < 1:
        raise UsageError(f"cluster-forming threshold must be a p-value in (0, 1) (got {p_threshold})")
    return float(stats.t.isf(p_threshold / 2 if two_sided else p_threshold, df=dof))


def cluster_measures(stat: np.ndarray, neighbours: np.ndarray, threshold: float,
                     two_sided: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-voxel cluster labels, extents and masses of a thresholded statistic.

    Cluster extent is the voxel count of each supra-threshold cluster; cluster
    mass is ``sum(|t| - threshold)`` over it :footcite:p:`bullmore1999,zhang2009`, as
    nilearn computes them.

    Parameters
    ----------
    stat : numpy.ndarray, shape (n_voxels,)
        Statistic in masked order.
    neighbours : numpy.ndarray of int32, shape (n_voxels, k)
        Voxel adjacency (:func:`~ketamine_cbf.voxelwise.connectivity.grid_neighbours`).
    threshold : float
        Cluster-forming threshold on ``|stat|`` (strict).
    two_sided : bool
        Negative clusters too (labelled separately from positive ones).

    Returns
    -------
    labels, size, mass : numpy.ndarray, shape (n_voxels,)
        Cluster label (0 = none), and the size / mass of each voxel's cluster.

    References
    ----------
    .. footbibliography::

    Examples
    --------
    >>> import numpy as np
    >>> from ketamine_cbf.voxelwise.connectivity import grid_neighbours
    >>> t = np.array([3.0, 2.5, 0.0, -4.0])
    >>> labels, size, mass = cluster_measures(t, grid_neighbours(np.ones((4, 1, 1), bool)), 2.0)
    >>> labels.tolist(), size.tolist(), mass.tolist()
    ([1, 1, 0, 2], [2, 2, 0, 1], [1.5, 1.5, 0.0, 2.0])
    """
    stat = np.asarray(stat, dtype=np.float64)
    labels, n = label_clusters(stat, neighbours, threshold, two_sided)
    sizes = np.bincount(labels, minlength=n + 1).astype(np.int64)
    masses = np.bincount(labels, weights=np.abs(stat) - threshold, minlength=n + 1)
    sizes[0] = 0
    masses[0] = 0.0
    return labels, sizes[labels], masses[labels]


# --------------------------------------------------------------------------- the test

@fill_doc
def sign_flip_test(data: np.ndarray, signs: np.ndarray, neighbours: np.ndarray | None = None,
                   confounds: np.ndarray | None = None, two_sided: bool = True,
                   tfce: bool = True, E: float = 0.5, H: float = 2.0, dh="auto",
                   cluster_threshold: float | None = None, cluster_p: str = "phipson",
                   n_threads: int | None = 2, block_bytes: float = 128e6,
                   progress_label: str = "sign flips") -> dict:
    """Sign-flip one-sample permutation test with max-T, TFCE and cluster FWE.

    See the module docstring for the model, the statistics and their sources. The
    steps: check the inputs, residualise and normalise the data,
    compute the observed maps, the null maxima block by block of sign flips (one matrix
    product per block, numba kernels for TFCE and clusters), then the FWE p-values.

    Parameters
    ----------
    data : numpy.ndarray, shape (n_subjects, n_voxels)
        One contrast value per subject and in-mask voxel (e.g. ΔCBF, ml/100 g/min).
    signs : numpy.ndarray, shape (n_perm, n_subjects)
        Sign flips (``+1``/``-1``), e.g. from
        :func:`ketamine_cbf.voxelwise.signflips.draw_sign_flips`.
    neighbours : numpy.ndarray of int32, shape (n_voxels, k), optional
        Voxel adjacency (:func:`~ketamine_cbf.voxelwise.connectivity.grid_neighbours`);
        required for TFCE and cluster inference.
    confounds : numpy.ndarray, shape (n_subjects, k), optional
        Nuisance covariates, no constant column (Freedman-Lane). Centre or
        effect-code them so that the intercept is the effect of interest.
    %(two_sided)s
    %(tfce)s
        Needs ``neighbours``; pass ``tfce=False`` for max-T (and clusters) only.
    E, H, dh
        TFCE parameters (see :func:`ketamine_cbf.voxelwise.tfce.tfce`).
    cluster_threshold : float, optional
        Cluster-forming threshold on the t scale (see :func:`cluster_threshold_t`);
        None: no cluster inference.
    cluster_p : {"phipson", "nilearn"}
        p-value convention of the cluster maps (see :func:`cluster_fwe_logp`).
    %(n_threads)s
    block_bytes : float
        Memory for one block of permuted statistics (sets the block length).
    progress_label : str
        What the progress bar counts (shown only when the runner turned progress on).

    Returns
    -------
    dict of numpy.ndarray
        ``t``, ``logp_max_t``, ``h0_max_t`` and, as requested, ``tfce``,
        ``logp_max_tfce``, ``h0_max_tfce``, ``size``, ``logp_max_size``,
        ``h0_max_size``, ``mass``, ``logp_max_mass``, ``h0_max_mass`` (nilearn's
        keys; maps are 1-D over voxels, nulls in the order of ``signs``).

    Raises
    ------
    UsageError
        Data not 2-D, signs of the wrong shape or not ``+1``/``-1``, or TFCE/cluster
        inference without a (matching) neighbour table.

    References
    ----------
    .. footbibliography::
    """
    Y, S, Z, neighbours = _check_inputs(data, signs, confounds, neighbours,
                                        tfce or cluster_threshold is not None)
    model = _prepare(Y, Z)
    out = _observed_maps(model, neighbours, two_sided, tfce, E, H, dh, cluster_threshold)
    if S.shape[0] == 0:  # nilearn: no permutations -> the statistic maps only
        return out
    null = _null_maxima(model, S, neighbours, two_sided, tfce, E, H, dh, cluster_threshold,
                        n_threads, block_bytes, progress_label)
    out.update(_fwe_maps(out, null, two_sided, cluster_p))
    return out


def _check_inputs(data, signs, confounds, neighbours, need_neighbours):
    """Validate and convert: ``(Y, S, Z or None, neighbours)`` (an empty table if none)."""
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
    if need_neighbours and neighbours is None:
        raise UsageError("TFCE and cluster inference need the voxel neighbour table")
    if neighbours is None:
        return Y, S, Z, np.full((n_vox, 0), -1, dtype=np.int32)
    neighbours = np.ascontiguousarray(neighbours, dtype=np.int32)
    if neighbours.shape[0] != n_vox:
        raise UsageError(f"neighbours has {neighbours.shape[0]} rows for {n_vox} voxels")
    return Y, S, Z, neighbours


def _observed_maps(model, neighbours, two_sided, tfce, E, H, dh, cluster_threshold) -> dict:
    """t, and as requested TFCE and cluster size/mass, of the unflipped data."""
    t_obs = _t_from(*model)
    out = {"t": t_obs}
    if tfce:
        t_clean = np.where(np.isfinite(t_obs), t_obs, 0.0)
        out["tfce"] = tfce_map(t_clean, neighbours, E=E, H=H, dh=dh, two_sided=two_sided)
    if cluster_threshold is not None:
        _, out["size"], out["mass"] = cluster_measures(t_obs, neighbours, float(cluster_threshold),
                                                       two_sided)
    return out


def _block_length(n_perm, n_vox, k, block_bytes) -> int:
    """Sign flips per block so that one block of statistics takes ``block_bytes``."""
    return int(max(1, min(n_perm, block_bytes // (8.0 * n_vox * (k + 1)))))


def _null_maxima(model, S, neighbours, two_sided, tfce, E, H, dh, cluster_threshold,
                 n_threads, block_bytes, progress_label) -> dict:
    """Per sign flip, the maxima of t, TFCE, cluster size and mass (``h0_*`` arrays)."""
    R, x, Q, dof_factor = model
    n_perm, n_vox = S.shape[0], R.shape[1]
    null = {"t": np.empty(n_perm), "tfce": np.zeros(n_perm),
            "size": np.zeros(n_perm, dtype=np.int64), "mass": np.zeros(n_perm)}
    k = 0 if Q is None else Q.shape[1]
    block = _block_length(n_perm, n_vox, k, block_bytes)
    if np.isnan(R).any():  # all-zero voxels: t is NaN, ignored by the maxima (nilearn: nanmax)
        R = np.where(np.isnan(R), 0.0, R)
    flags = (bool(two_sided), bool(tfce), float(E), float(H), AUTO_STEPS if dh == "auto" else 0,
             0.0 if dh == "auto" else float(dh), cluster_threshold is not None,
             0.0 if cluster_threshold is None else float(cluster_threshold))
    # preallocated block buffers: a fresh 100 MB array per block costs more (page
    # faults) than the matrix product itself
    beta_buf = np.empty((block, n_vox))
    a2_buf = np.empty((block, n_vox)) if k else np.empty((0, 0))
    tmp_buf = np.empty((block, n_vox)) if k else None
    starts = range(0, n_perm, block)
    with numba_threads(numba.get_num_threads() if n_threads is None else n_threads):
        n_chunks = numba.get_num_threads()
        for b0 in progress(starts, desc=f"[03_voxelwise] {progress_label}", total=len(starts),
                           unit="block"):
            Sb = S[b0:b0 + block]
            beta, a2 = _block_products(Sb, x, R, Q, beta_buf, a2_buf, tmp_buf)
            null_block(beta, a2, dof_factor, neighbours, *flags,
                       null["t"], null["tfce"], null["size"], null["mass"], b0,
                       min(n_chunks, Sb.shape[0]))
    return null


def _block_products(Sb, x, R, Q, beta_buf, a2_buf, tmp_buf):
    """``beta = (Sb * x) @ R`` and, with nuisance basis ``Q``, ``a2 = sum_j ((Sb * Q_j) @ R)^2``."""
    rows = Sb.shape[0]
    beta = beta_buf[:rows]
    np.dot(Sb * x[None, :], R, out=beta)
    if Q is None:
        return beta, a2_buf
    a2 = a2_buf[:rows]
    a2[...] = 0.0
    tmp = tmp_buf[:rows]
    for j in range(Q.shape[1]):
        np.dot(Sb * Q[:, j][None, :], R, out=tmp)
        np.square(tmp, out=tmp)
        a2 += tmp
    return beta, a2


def _fwe_maps(out, null, two_sided, cluster_p) -> dict:
    """``-log10`` FWE p maps and null maxima under nilearn's keys, for the maps in ``out``."""
    score = np.abs(out["t"]) if two_sided else out["t"]
    fwe = {"logp_max_t": fwe_logp(score, null["t"]), "h0_max_t": null["t"]}
    if "tfce" in out:
        fwe["logp_max_tfce"] = fwe_logp(np.abs(out["tfce"]), null["tfce"])
        fwe["h0_max_tfce"] = null["tfce"]
    if "size" in out:
        fwe["logp_max_size"] = cluster_fwe_logp(out["size"], null["size"], cluster_p)
        fwe["h0_max_size"] = null["size"]
        fwe["logp_max_mass"] = cluster_fwe_logp(out["mass"], null["mass"], cluster_p)
        fwe["h0_max_mass"] = null["mass"]
    return fwe
