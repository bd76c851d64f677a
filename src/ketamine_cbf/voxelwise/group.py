"""Group inference of each contrast: analysis mask, design, sign-flip test, maps on disk.

Glue between the subject contrast maps (:mod:`ketamine_cbf.voxelwise.contrasts`) and
the permutation engine (:mod:`ketamine_cbf.voxelwise.permutation`): builds the analysis
mask, the nuisance design (crossover order), draws the sign flips from the stage seed
(:func:`ketamine_cbf.voxelwise.signflips.contrast_seed`), runs max-T / TFCE / cluster
inference and writes the group maps under the names of the data contract
(:func:`ketamine_cbf.io.derivatives.group_map_path`:
``group/contrast-<name>_stat-<stat>_statmap.nii.gz``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from ketamine_cbf._docs import fill_doc
from ketamine_cbf.errors import InputError, UsageError
from ketamine_cbf.io.derivatives import STAT_NAMES, group_map_path, template_masks
from ketamine_cbf.io.layout import TEMPLATE_SPACE
from ketamine_cbf.io.provenance import save_nifti, write_json, write_tsv
from ketamine_cbf.study import CONTRASTS
from ketamine_cbf.voxelwise import _docs  # noqa: F401  (registers the stage's parameter texts)
from ketamine_cbf.voxelwise.connectivity import grid_neighbours
from ketamine_cbf.voxelwise.permutation import cluster_threshold_t, sign_flip_test
from ketamine_cbf.voxelwise.signflips import contrast_seed, draw_sign_flips, is_exhaustive

__all__ = ["GroupResult", "analysis_mask", "save_analysis_mask", "describe_mask", "order_covariate",
           "group_inference", "infer_contrasts", "write_group_maps", "inference_facts"]

#: Covariates the sign-flip model knows.
COVARIATES = ("order",)


# --------------------------------------------------------------------------- the analysis mask

@fill_doc
def analysis_mask(normalisation_dir: str | Path, map_paths: list,
                  mask_gm_threshold: float = 0.3) -> nib.Nifti1Image:
    """Voxels analysed: brain mask ∩ GM probability ≥ threshold ∩ data in every map.

    CBF is measured reliably in grey matter (ASL's SNR in white matter is low;
    :footcite:t:`alsop2015`), so the search volume is the template's grey matter. A voxel
    is kept only if every subject contrast map is finite there (full coverage).

    Parameters
    ----------
    normalisation_dir : str or Path
        Stage 2's folder (template-grid masks,
        :func:`ketamine_cbf.io.derivatives.template_masks`).
    map_paths : list of str or Path
        Every subject contrast map that will be tested.
    %(mask_gm_threshold)s

    Returns
    -------
    nibabel.Nifti1Image
        uint8 mask on the template grid.

    Raises
    ------
    UsageError
        ``mask_gm_threshold`` outside [0, 1).
    InputError
        No maps, maps on another grid than the template masks, or an empty mask.

    References
    ----------
    .. footbibliography::
    """
    if not 0 <= mask_gm_threshold < 1:
        raise UsageError(f"mask_gm_threshold must be in [0, 1) (got {mask_gm_threshold})")
    if not map_paths:
        raise InputError("no subject contrast maps to build the analysis mask from")
    brain_p, gm_p = template_masks(normalisation_dir, reference_img=str(map_paths[0]))
    brain = nib.load(brain_p)
    gm = np.asarray(nib.load(gm_p).dataobj, dtype=np.float64)
    mask = (np.asarray(brain.dataobj) > 0) & (gm >= mask_gm_threshold)
    ref = nib.load(str(map_paths[0]))
    if ref.shape[:3] != brain.shape[:3]:
        raise InputError(f"{map_paths[0]}: grid {ref.shape[:3]} differs from the template mask "
                         f"{brain_p.name} {brain.shape[:3]}")
    for p in map_paths:
        d = np.asarray(nib.load(str(p)).dataobj, dtype=np.float64).reshape(ref.shape[:3])
        mask &= np.isfinite(d)
    if not mask.any():
        raise InputError(f"{normalisation_dir}: the analysis mask is empty (GM >= {mask_gm_threshold} "
                         "and full coverage in every contrast map)")
    return nib.Nifti1Image(mask.astype(np.uint8), brain.affine)


def _resolution_mm(img) -> int:
    return int(round(abs(float(img.affine[0, 0]))))


@fill_doc
def save_analysis_mask(mask_img, output_dir: str | Path) -> Path:
    """Write the analysis mask as ``space-<tpl>_res-<r>_desc-analysis_mask.nii.gz``.

    Parameters
    ----------
    mask_img : nibabel.Nifti1Image
        From :func:`analysis_mask`.
    %(output_dir)s

    Returns
    -------
    Path
        The file written.
    """
    name = f"space-{TEMPLATE_SPACE}_res-{_resolution_mm(mask_img)}_desc-analysis_mask.nii.gz"
    return save_nifti(mask_img, Path(output_dir) / name)


@fill_doc
def describe_mask(mask_img, global_normalise: str, mask_gm_threshold: float = 0.3) -> str:
    """One line on the analysis mask: voxels, their size and volume, the GM threshold.

    Parameters
    ----------
    mask_img : nibabel.Nifti1Image
        The analysis mask (:func:`analysis_mask`).
    %(global_normalise)s
    %(mask_gm_threshold)s

    Returns
    -------
    str
    """
    res_mm = _resolution_mm(mask_img)
    n_vox = int(mask_img.get_fdata().sum())
    return (f"global normalisation: {global_normalise}; analysis mask: {n_vox} voxels of {res_mm} mm "
            f"({n_vox * res_mm ** 3 / 1000:.0f} ml), GM probability >= {mask_gm_threshold}")


# --------------------------------------------------------------------------- the design

def order_covariate(order: pd.Series) -> np.ndarray | None:
    """Effect-coded crossover order: +0.5 for PN (placebo first), -0.5 for NP.

    With this sum-to-zero coding the intercept tested by the sign-flip test is the
    unweighted mean of the two sequence groups' mean contrasts, the period-adjusted
    treatment estimate of the 2 x 2 crossover (:footcite:t:`jones2014`, sec. 2.3).

    Parameters
    ----------
    order : pandas.Series of str
        ``PN`` or ``NP`` per subject (``contrasts.tsv``'s ``order`` column).

    Returns
    -------
    numpy.ndarray, shape (n, 1), or None
        None when only one sequence is present (nothing to adjust).

    Raises
    ------
    InputError
        A subject whose order is unknown (``n/a``).

    References
    ----------
    .. footbibliography::

    Examples
    --------
    >>> import pandas as pd
    >>> order_covariate(pd.Series(["PN", "NP", "PN"]))[:, 0].tolist()
    [0.5, -0.5, 0.5]
    """
    vals = order.astype(str).to_numpy()
    bad = [v for v in vals if v not in ("PN", "NP")]
    if bad:
        raise InputError(f"contrasts.tsv: column 'order' must be PN or NP for the order covariate "
                         f"(got {bad[0]!r})")
    if len(set(vals)) < 2:
        return None
    return np.where(vals == "PN", 0.5, -0.5)[:, None]


def _covariate_names(covariates) -> list:
    if isinstance(covariates, str):  # a single name
        covariates = [covariates] if covariates else []
    unknown = sorted(set(covariates) - set(COVARIATES))
    if unknown:
        raise UsageError(f"unknown covariate(s) {', '.join(unknown)}; supported: {', '.join(COVARIATES)}")
    return list(covariates)


def _nuisance_design(table, covariates) -> tuple[np.ndarray | None, list]:
    """The nuisance matrix (or None) and the covariates actually used."""
    if "order" in covariates:
        Z = order_covariate(table["order"])
        if Z is not None:
            return Z, ["order"]
    return None, []


# --------------------------------------------------------------------------- inference

@dataclass
class GroupResult:
    """Result of :func:`~ketamine_cbf.voxelwise.group.group_inference` (maps, mask, null, facts).

    Attributes
    ----------
    contrast : str
        The contrast's name.
    mask_img : nibabel.Nifti1Image
        The analysis mask; every map is a vector over its voxels (C order).
    maps : dict of str to numpy.ndarray
        ``t``, ``logp_max_t`` ... (see :func:`group_inference`), ``mean`` and ``sd``.
    null : pandas.DataFrame
        One row per sign flip: the maxima of the computed statistics.
    info : dict
        The facts of the test (subjects, flips, thresholds, seed).
    """

    contrast: str
    mask_img: nib.Nifti1Image
    maps: dict
    null: pd.DataFrame
    info: dict = field(default_factory=dict)

    def img(self, key: str) -> nib.Nifti1Image:
        """Return a result map as an image on the mask's grid (0 outside the mask).

        Parameters
        ----------
        key : str
            A key of :attr:`maps` (``t``, ``tfce``, ``logp_max_t`` ..., ``mean``, ``sd``).

        Returns
        -------
        nibabel.Nifti1Image
            float32.

        Raises
        ------
        UsageError
            The map was not computed.
        """
        if key not in self.maps:
            raise UsageError(f"contrast {self.contrast}: no {key!r} map was computed "
                             f"(available: {', '.join(self.maps)})")
        mask = np.asarray(self.mask_img.dataobj) > 0
        out = np.zeros(mask.shape, dtype=np.float32)
        out[mask] = self.maps[key]
        return nib.Nifti1Image(out, self.mask_img.affine)


def _subject_data(table, mask, contrast) -> np.ndarray:
    """Subjects x in-mask voxels matrix of the contrast maps (float64)."""
    Y = np.empty((len(table), int(mask.sum())))
    for i, p in enumerate(table["abspath"]):
        img = nib.load(p)
        if img.shape[:3] != mask.shape:
            raise InputError(f"{p}: grid {img.shape[:3]} differs from the analysis mask {mask.shape}")
        Y[i] = np.asarray(img.dataobj, dtype=np.float64).reshape(mask.shape)[mask]
    if not np.isfinite(Y).all():
        raise InputError(f"contrast {contrast}: non-finite values inside the analysis mask")
    return Y


def _null_table(res) -> pd.DataFrame:
    """One row per sign flip: the maxima of every computed statistic."""
    null = pd.DataFrame({"max_t": res["h0_max_t"]})
    if "h0_max_tfce" in res:
        null["max_tfce"] = res["h0_max_tfce"]
    if "h0_max_size" in res:
        null["max_cluster_size"] = res["h0_max_size"]
        null["max_cluster_mass"] = res["h0_max_mass"]
    return null


def _maps(res, Y) -> dict:
    """The result maps (masked vectors) plus the group mean and SD of ΔCBF."""
    maps = {key: np.asarray(v, dtype=np.float64) for key, v in res.items() if not key.startswith("h0_")}
    maps["mean"] = Y.mean(axis=0)
    maps["sd"] = Y.std(axis=0, ddof=1)
    return maps


@fill_doc
def group_inference(table: pd.DataFrame, mask_img, contrast: str, n_perm: int = 5000,
                    seed: int = 0, two_sided: bool = True, tfce: bool = True,
                    cluster_forming_p: float | None = 0.001, covariates: list | tuple = (),
                    E: float = 0.5, H: float = 2.0, connectivity: int = 6,
                    exhaustive="auto", n_threads: int | None = 2) -> GroupResult:
    """Sign-flip permutation inference on one contrast's subject maps.

    Steps: load the subject maps inside the mask, build the nuisance design, draw the
    sign flips from the contrast's seed, run
    :func:`~ketamine_cbf.voxelwise.permutation.sign_flip_test`, and collect the
    maps, the null maxima and the facts.

    Parameters
    ----------
    table : pandas.DataFrame
        Rows of ``contrasts.tsv`` for this contrast, with an ``abspath`` column
        (:func:`ketamine_cbf.io.derivatives.read_contrasts`) and ``order``.
    mask_img : str, Path or Nifti1Image
        Analysis mask (:func:`analysis_mask`).
    %(contrast)s
    %(n_perm)s
    %(seed)s
        The contrast's ``random_state`` is
        :func:`ketamine_cbf.voxelwise.signflips.contrast_seed`.
    %(two_sided)s
    %(tfce)s
    %(cluster_forming_p)s
    %(covariates)s
    E, H : float
        TFCE exponents :footcite:p:`smith2009`.
    connectivity : {6, 18, 26}
        Voxel neighbourhood of TFCE and clusters (6 = FSL, nilearn).
    exhaustive : "auto" or bool
        See :func:`ketamine_cbf.voxelwise.signflips.draw_sign_flips`.
    %(n_threads)s

    Returns
    -------
    GroupResult
        ``maps`` has ``t``, ``logp_max_t``, (``tfce``, ``logp_max_tfce``), (``size``,
        ``logp_max_size``, ``mass``, ``logp_max_mass``), ``mean`` (ΔCBF, ml/100 g/min)
        and ``sd``; ``null`` the per-permutation maxima; ``info`` the facts
        (subjects, n, permutations, thresholds).

    Raises
    ------
    UsageError
        An unknown covariate.
    InputError
        Fewer than two subjects, maps off the mask's grid or not finite inside it, or
        no degrees of freedom left.

    References
    ----------
    .. footbibliography::
    """
    from nilearn.image import load_img

    covariates = _covariate_names(covariates)
    if len(table) < 2:
        raise InputError(f"contrast {contrast}: {len(table)} subject(s) with data; need at least 2")
    mask_img = load_img(mask_img)
    mask = np.asarray(mask_img.dataobj) > 0
    Y = _subject_data(table, mask, contrast)
    Z, used_cov = _nuisance_design(table, covariates)
    n = Y.shape[0]
    dof = n - 1 - (0 if Z is None else Z.shape[1])
    if dof < 1:
        raise InputError(f"contrast {contrast}: {n} subjects leave no degrees of freedom")
    rs = contrast_seed(seed, contrast)
    signs = draw_sign_flips(n, n_perm, random_state=rs, exhaustive=exhaustive)
    thr_t = None if cluster_forming_p is None else cluster_threshold_t(cluster_forming_p, dof, two_sided)
    res = sign_flip_test(Y, signs, grid_neighbours(mask, connectivity), confounds=Z,
                         two_sided=two_sided, tfce=tfce, E=E, H=H, cluster_threshold=thr_t,
                         cluster_p="phipson", n_threads=n_threads,
                         progress_label=f"{contrast} sign flips")
    info = {"contrast": contrast, "n_subjects": n, "subjects": list(table["participant_id"]),
            "n_voxels": int(mask.sum()), "n_perm": int(signs.shape[0]),
            "exhaustive": is_exhaustive(n, n_perm, exhaustive), "random_state": rs,
            **_test_facts(two_sided, tfce, E, H, connectivity, cluster_forming_p, thr_t),
            "covariates": used_cov, "dof": dof, "min_p": 1.0 / (signs.shape[0] + 1)}
    return GroupResult(contrast=contrast, mask_img=mask_img, maps=_maps(res, Y), null=_null_table(res),
                       info=info)


def _test_facts(two_sided, tfce, E, H, connectivity, cluster_forming_p, thr_t) -> dict:
    """The test's settings as recorded in ``contrast-<c>_desc-inference.json``."""
    return {"two_sided": bool(two_sided), "tfce": bool(tfce), "E": E, "H": H,
            "dh": "auto (100 steps)", "connectivity": connectivity,
            "cluster_forming_p": cluster_forming_p, "cluster_forming_t": thr_t}


@fill_doc
def infer_contrasts(table: pd.DataFrame, mask_img, group_dir: str | Path | None = None,
                    contrasts=tuple(CONTRASTS), **options) -> dict:
    """Run :func:`~ketamine_cbf.voxelwise.group.group_inference` on every contrast, write its maps.

    Parameters
    ----------
    table : pandas.DataFrame
        ``contrasts.tsv`` (:func:`ketamine_cbf.io.derivatives.read_contrasts`).
    mask_img : str, Path or Nifti1Image
        Analysis mask.
    group_dir : str or Path, optional
        Folder of the group maps (:func:`write_group_maps`); None: nothing is written.
    contrasts : sequence of str
        Contrasts to test, in display order (default: all of
        :data:`ketamine_cbf.study.CONTRASTS`).
    **options
        Passed to :func:`group_inference` (``n_perm``, ``seed``, ``two_sided``,
        ``tfce``, ``cluster_forming_p``, ``covariates``, ``n_threads`` ...).

    Returns
    -------
    dict of str to GroupResult
        In the order of ``contrasts``.
    """
    results = {}
    for name in contrasts:
        results[name] = group_inference(table[table["contrast"] == name], mask_img, name, **options)
        if group_dir is not None:
            write_group_maps(results[name], group_dir)
    return results


def write_group_maps(result: GroupResult, group_dir: str | Path) -> list[Path]:
    """Write a contrast's group maps, null maxima and facts (atomic, deterministic).

    Files (``<c>`` = contrast): ``contrast-<c>_stat-<t|logpFWEmaxT|tfce|logpFWEtfce|
    clustersize|logpFWEclustersize|clustermass|logpFWEclustermass>_statmap.nii.gz``,
    ``contrast-<c>_desc-mean_deltacbf.nii.gz`` (group mean ΔCBF, ml/100 g/min),
    ``contrast-<c>_desc-sd_deltacbf.nii.gz``, ``contrast-<c>_desc-null_maxstat.tsv``
    (one row per permutation) and ``contrast-<c>_desc-inference.json``. The map names
    are the data contract's (:func:`ketamine_cbf.io.derivatives.group_map_path`).

    Parameters
    ----------
    result : GroupResult
        From :func:`group_inference`.
    group_dir : str or Path
        ``<voxelwise>/group``.

    Returns
    -------
    list of Path
        The files written.
    """
    group_dir = Path(group_dir)
    c = result.contrast
    written = []
    for key in STAT_NAMES:
        if key in result.maps:
            written.append(save_nifti(result.img(key), group_map_path(group_dir, c, key)))
    written.append(save_nifti(result.img("mean"), group_map_path(group_dir, c, "mean")))
    written.append(save_nifti(result.img("sd"), group_dir / f"contrast-{c}_desc-sd_deltacbf.nii.gz"))
    null = result.null.copy()
    null.insert(0, "permutation", np.arange(1, len(null) + 1))
    written.append(write_tsv(group_dir / f"contrast-{c}_desc-null_maxstat.tsv", null))
    written.append(write_json(group_dir / f"contrast-{c}_desc-inference.json", result.info))
    return written


@fill_doc
def inference_facts(results: dict, fwe_alpha: float = 0.05) -> pd.DataFrame:
    """One row per contrast: subjects, permutations, thresholds and FWE critical values.

    The critical value of a max statistic is the ``1 - fwe_alpha`` quantile of its
    permutation distribution :footcite:p:`nichols2002`: a voxel (or cluster) exceeding
    it is FWE-significant at ``fwe_alpha``.

    Parameters
    ----------
    results : dict of str to GroupResult
        From :func:`infer_contrasts`, one row each, in their order.
    %(fwe_alpha)s

    Returns
    -------
    pandas.DataFrame
        ``contrast``, ``n_subjects``, ``dof``, ``n_perm``, ``exhaustive``,
        ``covariates``, ``n_voxels``, ``max_abs_t``, ``crit_t`` and, when computed,
        ``crit_tfce``, ``cluster_forming_t``, ``crit_cluster_mass``.

    References
    ----------
    .. footbibliography::
    """
    rows = []
    for name, r in results.items():
        row = {"contrast": name, "n_subjects": r.info["n_subjects"], "dof": r.info["dof"],
               "n_perm": r.info["n_perm"], "exhaustive": r.info["exhaustive"],
               "covariates": ", ".join(r.info["covariates"]) or "none",
               "n_voxels": r.info["n_voxels"],
               "max_abs_t": float(np.max(np.abs(r.maps["t"]))),
               "crit_t": float(np.quantile(r.null["max_t"], 1 - fwe_alpha))}
        if "max_tfce" in r.null:
            row["crit_tfce"] = float(np.quantile(r.null["max_tfce"], 1 - fwe_alpha))
        if r.info["cluster_forming_t"] is not None:
            row["cluster_forming_t"] = r.info["cluster_forming_t"]
            row["crit_cluster_mass"] = float(np.quantile(r.null["max_cluster_mass"], 1 - fwe_alpha))
        rows.append(row)
    return pd.DataFrame(rows)
