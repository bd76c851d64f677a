"""nilearn-compatible front ends of the sign-flip test, and the side-by-side check against nilearn.

* :func:`permuted_ols_one_sample`: drop-in for ``nilearn.mass_univariate.permuted_ols``
  with an intercept test (arrays in, nilearn's keys and shapes out);
* :func:`non_parametric_inference`: drop-in for
  ``nilearn.glm.second_level.non_parametric_inference`` for one-sample designs (images
  in, images out);
* :func:`compare_with_nilearn`: the stage's own path
  (:func:`ketamine_cbf.voxelwise.group.group_inference`) and nilearn's, run on the same
  maps with the same sign flips, and their largest differences.

The drop-ins keep nilearn's signatures *and defaults* (``n_perm=10000``, no TFCE,
``two_sided_test=False`` for ``non_parametric_inference``), so code written for nilearn
gives the same numbers; the stage's own defaults (``n_perm = 5000``, TFCE on) are those
of :func:`ketamine_cbf.voxelwise.group.group_inference`. Equality with nilearn 0.14 (same
``random_state`` and ``n_jobs``, hence the same sign flips) is tested in
``tests/voxelwise/test_nilearn_compat.py``.
"""

from __future__ import annotations

import time
import warnings

import nibabel as nib
import numpy as np
import pandas as pd

from ketamine_cbf._docs import fill_doc
from ketamine_cbf.errors import UsageError
from ketamine_cbf.voxelwise import _docs  # noqa: F401  (registers the stage's parameter texts)
from ketamine_cbf.voxelwise.connectivity import grid_neighbours
from ketamine_cbf.voxelwise.group import group_inference, order_covariate
from ketamine_cbf.voxelwise.permutation import cluster_threshold_t, sign_flip_test
from ketamine_cbf.voxelwise.signflips import contrast_seed, nilearn_sign_flips

__all__ = ["permuted_ols_one_sample", "non_parametric_inference", "compare_with_nilearn"]


# --------------------------------------------------------------------------- arrays in, arrays out

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
                            neighbours: np.ndarray | None = None, tfce: bool | None = None,
                            threshold: float | None = None, signs: np.ndarray | None = None,
                            n_threads: int | None = None) -> dict:
    """Drop-in for ``nilearn.mass_univariate.permuted_ols`` with an intercept test.

    Same model, sign flips (``random_state``, ``n_jobs``), keys, shapes
    ``(1, n_descriptors)``, p-value conventions and defaults as
    ``permuted_ols(np.ones((n, 1)), target_vars, confounding_vars, ...)``; the
    masker is replaced by the voxel ``neighbours`` table (needed for TFCE and
    clusters).

    Parameters
    ----------
    target_vars : numpy.ndarray, shape (n_samples, n_descriptors)
        One row per subject.
    confounding_vars : numpy.ndarray, shape (n_samples, k), optional
        Nuisance covariates (constant columns are dropped with nilearn's warning).
    n_perm : int
        Number of sign flips (nilearn's default, 10000).
    two_sided_test : bool
        Test both signs.
    random_state : None, int or numpy.random.RandomState
        Seed of the sign flips (nilearn's draw).
    n_jobs : int
        Sets nilearn's chunking of the sign-flip draw (not our threads).
    neighbours : numpy.ndarray of int32, optional
        Voxel adjacency, required for TFCE and clusters.
    tfce : bool or None
        Compute TFCE; None (the default) or False: no TFCE, as nilearn's default.
    threshold : float, optional
        Cluster-forming threshold in p (nilearn's convention).
    signs : numpy.ndarray, optional
        Explicit flips (overrides ``random_state``/``n_jobs``).
    n_threads : int, optional
        numba threads (None: numba's setting).

    Returns
    -------
    dict
        ``t``, ``logp_max_t``, ``h0_max_t`` (+ ``tfce``, ``logp_max_tfce``,
        ``h0_max_tfce``; ``size``, ``logp_max_size``, ``h0_max_size``, ``mass``,
        ``logp_max_mass``, ``h0_max_mass``), maps of shape ``(1, n_descriptors)``.

    Raises
    ------
    UsageError
        ``target_vars`` not 2-D, or TFCE/clusters without ``neighbours``.
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
                         tfce=bool(tfce), cluster_threshold=thr_t, cluster_p="nilearn",
                         n_threads=n_threads)
    return {k: v[None, :] for k, v in res.items()}


# --------------------------------------------------------------------------- images in, images out

def _check_supported(n_perm, confounds, first_level_contrast) -> None:
    if int(n_perm) < 1:
        raise UsageError(f"n_perm must be at least 1 (got {n_perm})")
    if confounds is not None or first_level_contrast is not None:
        raise UsageError("confounds / first_level_contrast apply to first-level-model inputs, "
                         "which are not supported: pass one image per subject and a design_matrix")


def _effect_maps(second_level_input) -> list:
    """One 3-D image per subject from a list of images or a 4-D image."""
    from nilearn.image import iter_img, load_img

    if isinstance(second_level_input, (list, tuple)):
        if len(second_level_input) < 2:
            raise UsageError("second_level_input needs at least two images")
        return [load_img(i) for i in second_level_input]
    img = load_img(second_level_input)
    if img.ndim != 4:
        raise UsageError("second_level_input must be a list of 3-D images or a 4-D image")
    return list(iter_img(img))


def _contrast_vector(columns, second_level_contrast) -> np.ndarray:
    """The second-level contrast as one weight per design column (nilearn's forms)."""
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
    return con


def _design_confounds(design_matrix, second_level_contrast, n) -> np.ndarray | None:
    """Check the design is a one-sample test; return its other columns as nuisance covariates."""
    if design_matrix is None:
        design_matrix = pd.DataFrame({"intercept": np.ones(n)})
    if len(design_matrix) != n:
        raise UsageError(f"design_matrix has {len(design_matrix)} rows for {n} images")
    columns = list(design_matrix.columns)
    con = _contrast_vector(columns, second_level_contrast)
    tested = np.asarray(design_matrix, dtype=float) @ con
    if np.unique(tested).size != 1:
        raise UsageError("only one-sample (intercept) tests are supported by this implementation; "
                         "use nilearn for regressors that are not constant")
    rest = [c for c, w in zip(columns, con) if not w]
    return np.asarray(design_matrix[rest], dtype=float) if rest else None


def _fitted_masker(mask, smoothing_fwhm, verbose, effect_maps):
    """nilearn's ``NiftiMasker``, fitted as ``non_parametric_inference`` fits it."""
    from joblib import Memory
    from nilearn.image import concat_imgs, mean_img
    from nilearn.maskers import NiftiMasker
    from sklearn.base import clone

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
    return masker


def _result_images(res, masker, tfce, threshold):
    """nilearn's outputs: the max-T image alone, or a dict of images."""
    def img(key):
        values = np.ravel(res[key])
        if np.issubdtype(values.dtype, np.integer):
            values = values.astype(np.int32)  # NIfTI-friendly (nilearn converts with a warning)
        return masker.inverse_transform(values)

    if not tfce and threshold is None:
        return img("logp_max_t")
    keys = ["t", "logp_max_t"]
    if tfce:
        keys += ["tfce", "logp_max_tfce"]
    if threshold is not None:
        keys += ["size", "logp_max_size", "mass", "logp_max_mass"]
    return {key: img(key) for key in keys}


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
        Analysis mask (default: computed by nilearn's masker from the mean image).
    smoothing_fwhm : float, optional
        Smoothing of the maps by the masker (mm FWHM).
    model_intercept : bool
        Accepted for compatibility: the tested variable is the intercept already.
    n_perm : int
        Number of sign flips (nilearn's default, 10000).
    two_sided_test : bool
        Test both signs (nilearn's default: one-sided).
    random_state : None, int or numpy.random.RandomState
        Seed of the sign flips.
    n_jobs : int
        nilearn's ``n_jobs`` (chunking of the sign-flip draw).
    verbose : int
        Verbosity of the masker.
    threshold : float, optional
        Cluster-forming threshold in p.
    tfce : bool
        Compute TFCE (nilearn's default: False).
    n_threads : int, optional
        numba threads for the permutations (None: numba's setting).

    Returns
    -------
    nibabel.Nifti1Image or dict of nibabel.Nifti1Image

    Raises
    ------
    UsageError
        ``n_perm < 1``, first-level inputs, fewer than two images, a design that is
        not a one-sample test, or an invalid contrast.
    """
    _check_supported(n_perm, confounds, first_level_contrast)
    effect_maps = _effect_maps(second_level_input)
    confounding_vars = _design_confounds(design_matrix, second_level_contrast, len(effect_maps))
    masker = _fitted_masker(mask, smoothing_fwhm, verbose, effect_maps)
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
    return _result_images(res, masker, tfce, threshold)


# --------------------------------------------------------------------------- the check

@fill_doc
def compare_with_nilearn(table: pd.DataFrame, mask_img, contrast: str, nilearn_check_perm: int = 20,
                         seed: int = 0, two_sided: bool = True, covariates: list | tuple = (),
                         cluster_forming_p: float | None = 0.001) -> pd.DataFrame:
    """Run nilearn's ``non_parametric_inference`` and this stage's inference side by side.

    Both get the same subject maps, mask, design (intercept, plus the effect-coded
    order if requested) and ``random_state``
    (:func:`ketamine_cbf.voxelwise.signflips.contrast_seed`), hence the same sign
    flips. nilearn computes in its input's dtype, so it gets float64 copies of the
    (float32) maps, like this package: t and TFCE then agree to rounding error.

    Parameters
    ----------
    table : pandas.DataFrame
        Rows of ``contrasts.tsv`` for this contrast, with ``abspath`` and ``order``.
    mask_img : str, Path or Nifti1Image
        Analysis mask.
    %(contrast)s
    %(nilearn_check_perm)s
    %(seed)s
    %(two_sided)s
    %(covariates)s
    %(cluster_forming_p)s

    Returns
    -------
    pandas.DataFrame
        One row per map (``t``, ``tfce``, ``logp_max_t``, ``logp_max_tfce``, ``size``,
        ``mass``): ``max_abs_diff``, ``max_abs_value``, ``max_rel_diff``, and the run
        times ``seconds_nilearn`` / ``seconds_ours``.
    """
    from nilearn.glm.second_level import non_parametric_inference as nilearn_inference

    design = pd.DataFrame({"intercept": np.ones(len(table))})
    if "order" in covariates:
        z = order_covariate(table["order"])
        if z is not None:
            design["order"] = z[:, 0]
    imgs = [nib.Nifti1Image(np.asarray(nib.load(p).get_fdata(), dtype=np.float64), nib.load(p).affine)
            for p in table["abspath"]]  # nilearn computes in its input's dtype: give it float64
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = nilearn_inference(
            imgs, design_matrix=design, second_level_contrast="intercept",
            mask=mask_img, n_perm=nilearn_check_perm, two_sided_test=two_sided,
            random_state=contrast_seed(seed, contrast), n_jobs=1, tfce=True,
            threshold=cluster_forming_p)
    t_nl = time.perf_counter() - t0
    t0 = time.perf_counter()
    ours = group_inference(table, mask_img, contrast, n_perm=nilearn_check_perm, seed=seed,
                           two_sided=two_sided, tfce=True, cluster_forming_p=cluster_forming_p,
                           covariates=covariates, exhaustive=False)
    t_ours = time.perf_counter() - t0
    out = _map_differences(ref, ours)
    out["seconds_nilearn"] = t_nl
    out["seconds_ours"] = t_ours
    return out


def _map_differences(ref: dict, ours) -> pd.DataFrame:
    """Largest absolute and relative differences of nilearn's images and a GroupResult's maps."""
    mask = np.asarray(ours.mask_img.dataobj) > 0
    rows = []
    for key in ("t", "tfce", "logp_max_t", "logp_max_tfce", "size", "mass"):
        if key not in ref or key not in ours.maps:
            continue
        a = np.asarray(ref[key].get_fdata(), dtype=np.float64)[mask]
        b = ours.maps[key]
        d = float(np.max(np.abs(a - b)))
        m = float(np.max(np.abs(a)))
        rows.append({"map": key, "max_abs_diff": d, "max_abs_value": m,
                     "max_rel_diff": d / m if m > 0 else 0.0})
    return pd.DataFrame(rows)
