"""Group inference of one contrast: mask, design, sign-flip test, maps on disk.

Glue between the subject contrast maps (:mod:`ketamine_cbf.voxelwise.contrasts`) and
the permutation engine (:mod:`ketamine_cbf.voxelwise.permutation`): builds the analysis
mask, the nuisance design (crossover order), draws the sign flips from the stage
seed, runs max-T / TFCE / cluster inference and writes the group maps under the
names of the data contract (``group/contrast-<name>_stat-<stat>_statmap.nii.gz``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from ketamine_cbf.errors import InputError, UsageError
from ketamine_cbf.io.provenance import save_nifti, write_json, write_tsv
from ketamine_cbf.voxelwise.connectivity import grid_neighbours
from ketamine_cbf.voxelwise.contrasts import template_masks
from ketamine_cbf.voxelwise.permutation import cluster_threshold_t, draw_sign_flips, sign_flip_test

__all__ = ["GroupResult", "analysis_mask", "order_covariate", "contrast_seed", "group_inference",
           "write_group_maps", "STAT_NAMES", "group_map_path"]

#: Result key -> ``stat-<name>`` entity of the group maps.
STAT_NAMES = {
    "t": "t",
    "logp_max_t": "logpFWEmaxT",
    "tfce": "tfce",
    "logp_max_tfce": "logpFWEtfce",
    "size": "clustersize",
    "logp_max_size": "logpFWEclustersize",
    "mass": "clustermass",
    "logp_max_mass": "logpFWEclustermass",
}


def group_map_path(group_dir: str | Path, contrast: str, key: str) -> Path:
    """Path of a group map: ``key`` is a result key (``t``, ``logp_max_tfce`` ...) or ``mean``."""
    group_dir = Path(group_dir)
    if key == "mean":
        return group_dir / f"contrast-{contrast}_desc-mean_deltacbf.nii.gz"
    return group_dir / f"contrast-{contrast}_stat-{STAT_NAMES[key]}_statmap.nii.gz"


def analysis_mask(normalisation_dir: str | Path, map_paths: list, gm_threshold: float = 0.3) -> nib.Nifti1Image:
    """Voxels analysed: brain mask ∩ GM probability ≥ threshold ∩ data in every map.

    CBF is measured reliably in grey matter (ASL's SNR in white matter is low;
    Alsop et al. 2015), so the search volume is the template's grey matter. A voxel
    is kept only if every subject contrast map is finite there (full coverage).

    Parameters
    ----------
    normalisation_dir : str or Path
        Stage 2's folder (template-grid masks).
    map_paths : list of str or Path
        Every subject contrast map that will be tested.
    gm_threshold : float
        Minimum GM probability (0-1).

    Returns
    -------
    nibabel.Nifti1Image
        uint8 mask on the template grid.
    """
    if not 0 <= gm_threshold < 1:
        raise UsageError(f"gm_threshold must be in [0, 1) (got {gm_threshold})")
    if not map_paths:
        raise InputError("no subject contrast maps to build the analysis mask from")
    brain_p, gm_p = template_masks(normalisation_dir, reference_img=str(map_paths[0]))
    brain = nib.load(brain_p)
    gm = np.asarray(nib.load(gm_p).dataobj, dtype=np.float64)
    mask = (np.asarray(brain.dataobj) > 0) & (gm >= gm_threshold)
    ref = nib.load(str(map_paths[0]))
    if ref.shape[:3] != brain.shape[:3]:
        raise InputError(f"{map_paths[0]}: grid {ref.shape[:3]} differs from the template mask "
                         f"{brain_p.name} {brain.shape[:3]}")
    for p in map_paths:
        d = np.asarray(nib.load(str(p)).dataobj, dtype=np.float64).reshape(ref.shape[:3])
        mask &= np.isfinite(d)
    if not mask.any():
        raise InputError(f"{normalisation_dir}: the analysis mask is empty (GM >= {gm_threshold} "
                         "and full coverage in every contrast map)")
    return nib.Nifti1Image(mask.astype(np.uint8), brain.affine)


def order_covariate(order: pd.Series) -> np.ndarray | None:
    """Effect-coded crossover order: +0.5 for PN (placebo first), -0.5 for NP.

    With this sum-to-zero coding the intercept tested by the sign-flip test is the
    unweighted mean of the two sequence groups' mean contrasts, the period-adjusted
    treatment estimate of the 2 x 2 crossover (Jones & Kenward 2014, sec. 2.3).
    Returns None when only one sequence is present (nothing to adjust).

    Raises
    ------
    InputError
        A subject whose order is unknown (``n/a``).
    """
    vals = order.astype(str).to_numpy()
    bad = [v for v in vals if v not in ("PN", "NP")]
    if bad:
        raise InputError(f"contrasts.tsv: column 'order' must be PN or NP for the order covariate "
                         f"(got {bad[0]!r})")
    if len(set(vals)) < 2:
        return None
    return np.where(vals == "PN", 0.5, -0.5)[:, None]


def contrast_seed(seed: int, contrast: str, stage: int = 3) -> int:
    """Integer ``random_state`` of a contrast's sign flips, derived from the stage seed."""
    from ketamine_cbf.io.layout import CONTRASTS

    idx = list(CONTRASTS).index(contrast) if contrast in CONTRASTS else len(CONTRASTS)
    return int(np.random.default_rng([int(seed), stage, idx]).integers(1, 2 ** 31 - 2))


@dataclass
class GroupResult:
    """Result of :func:`group_inference` (masked vectors + mask + null + facts)."""

    contrast: str
    mask_img: nib.Nifti1Image
    maps: dict
    null: pd.DataFrame
    info: dict = field(default_factory=dict)

    def img(self, key: str) -> nib.Nifti1Image:
        """Return a result map (``t``, ``tfce``, ``logp_max_t`` ..., ``mean``) as an image."""
        if key not in self.maps:
            raise UsageError(f"contrast {self.contrast}: no {key!r} map was computed "
                             f"(available: {', '.join(self.maps)})")
        mask = np.asarray(self.mask_img.dataobj) > 0
        out = np.zeros(mask.shape, dtype=np.float32)
        out[mask] = self.maps[key]
        return nib.Nifti1Image(out, self.mask_img.affine)


def group_inference(table: pd.DataFrame, mask_img, contrast: str, n_perm: int = 5000,
                    seed: int = 0, two_sided: bool = True, tfce: bool = True,
                    cluster_forming_p: float | None = 0.001, covariates: list | tuple = (),
                    E: float = 0.5, H: float = 2.0, connectivity: int = 6,
                    exhaustive="auto", n_threads: int | None = None) -> GroupResult:
    """Sign-flip permutation inference on one contrast's subject maps.

    Parameters
    ----------
    table : pandas.DataFrame
        Rows of ``contrasts.tsv`` for this contrast, with an ``abspath`` column
        (:func:`ketamine_cbf.voxelwise.contrasts.read_contrasts`) and ``order``.
    mask_img : str, Path or Nifti1Image
        Analysis mask (:func:`analysis_mask`).
    contrast : str
        Contrast name (for the seed and the record).
    n_perm : int
        Number of random sign flips (exhaustive enumeration when ``2^n - 1 <= n_perm``).
    seed : int
        Stage seed; the contrast's ``random_state`` is :func:`contrast_seed`.
    two_sided : bool
        Two-sided test (increases and decreases).
    tfce : bool
        TFCE with ``E``, ``H`` (Smith & Nichols 2009).
    cluster_forming_p : float or None
        Uncorrected p of the cluster-forming threshold (None: no cluster inference).
    covariates : list of str
        Nuisance covariates; supported: ``"order"`` (:func:`order_covariate`).
    connectivity : {6, 18, 26}
        Voxel neighbourhood of TFCE and clusters (6 = FSL, nilearn).
    exhaustive : "auto" or bool
        See :func:`ketamine_cbf.voxelwise.permutation.draw_sign_flips`.
    n_threads : int, optional
        numba threads.

    Returns
    -------
    GroupResult
        ``maps`` has ``t``, ``logp_max_t``, (``tfce``, ``logp_max_tfce``), (``size``,
        ``logp_max_size``, ``mass``, ``logp_max_mass``), ``mean`` (ΔCBF, ml/100 g/min)
        and ``sd``; ``null`` the per-permutation maxima; ``info`` the facts
        (subjects, n, permutations, thresholds).
    """
    from nilearn.image import load_img

    if isinstance(covariates, str):  # a single name
        covariates = [covariates] if covariates else []
    unknown = sorted(set(covariates) - {"order"})
    if unknown:
        raise UsageError(f"unknown covariate(s) {', '.join(unknown)}; supported: order")
    if len(table) < 2:
        raise InputError(f"contrast {contrast}: {len(table)} subject(s) with data; need at least 2")
    mask_img = load_img(mask_img)
    mask = np.asarray(mask_img.dataobj) > 0
    Y = np.empty((len(table), int(mask.sum())))
    for i, p in enumerate(table["abspath"]):
        img = nib.load(p)
        if img.shape[:3] != mask.shape:
            raise InputError(f"{p}: grid {img.shape[:3]} differs from the analysis mask {mask.shape}")
        Y[i] = np.asarray(img.dataobj, dtype=np.float64).reshape(mask.shape)[mask]
    if not np.isfinite(Y).all():
        raise InputError(f"contrast {contrast}: non-finite values inside the analysis mask")
    Z = None
    used_cov = []
    if "order" in covariates:
        Z = order_covariate(table["order"])
        if Z is not None:
            used_cov.append("order")
    n = Y.shape[0]
    k = 0 if Z is None else Z.shape[1]
    if n - 1 - k < 1:
        raise InputError(f"contrast {contrast}: {n} subjects leave no degrees of freedom")
    rs = contrast_seed(seed, contrast)
    signs = draw_sign_flips(n, n_perm, random_state=rs, exhaustive=exhaustive)
    neighbours = grid_neighbours(mask, connectivity)
    thr_t = None
    if cluster_forming_p is not None:
        thr_t = cluster_threshold_t(cluster_forming_p, n - 1 - k, two_sided)
    res = sign_flip_test(Y, signs, neighbours, confounds=Z, two_sided=two_sided, tfce=tfce,
                         E=E, H=H, cluster_threshold=thr_t, cluster_p="phipson", n_threads=n_threads)
    maps = {key: np.asarray(v, dtype=np.float64) for key, v in res.items() if not key.startswith("h0_")}
    maps["mean"] = Y.mean(axis=0)
    maps["sd"] = Y.std(axis=0, ddof=1)
    null = pd.DataFrame({"max_t": res["h0_max_t"]})
    if tfce:
        null["max_tfce"] = res["h0_max_tfce"]
    if thr_t is not None:
        null["max_cluster_size"] = res["h0_max_size"]
        null["max_cluster_mass"] = res["h0_max_mass"]
    exhaustive_used = exhaustive is True or (exhaustive == "auto" and n <= 24 and 2 ** n - 1 <= n_perm)
    info = {
        "contrast": contrast,
        "n_subjects": n,
        "subjects": list(table["participant_id"]),
        "n_voxels": int(mask.sum()),
        "n_perm": int(signs.shape[0]),
        "exhaustive": bool(exhaustive_used),
        "random_state": rs,
        "two_sided": bool(two_sided),
        "tfce": bool(tfce), "E": E, "H": H, "dh": "auto (100 steps)",
        "connectivity": connectivity,
        "cluster_forming_p": cluster_forming_p,
        "cluster_forming_t": thr_t,
        "covariates": used_cov,
        "dof": n - 1 - k,
        "min_p": 1.0 / (signs.shape[0] + 1),
    }
    return GroupResult(contrast=contrast, mask_img=mask_img, maps=maps, null=null, info=info)


def write_group_maps(result: GroupResult, group_dir: str | Path) -> list[Path]:
    """Write a contrast's group maps, null maxima and facts (atomic, deterministic).

    Files (``<c>`` = contrast): ``contrast-<c>_stat-<t|logpFWEmaxT|tfce|logpFWEtfce|
    clustersize|logpFWEclustersize|clustermass|logpFWEclustermass>_statmap.nii.gz``,
    ``contrast-<c>_desc-mean_deltacbf.nii.gz`` (group mean ΔCBF, ml/100 g/min),
    ``contrast-<c>_desc-sd_deltacbf.nii.gz``, ``contrast-<c>_desc-null_maxstat.tsv``
    (one row per permutation) and ``contrast-<c>_desc-inference.json``.

    Returns
    -------
    list of Path
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


def compare_with_nilearn(table: pd.DataFrame, mask_img, contrast: str, n_perm: int = 20,
                         seed: int = 0, two_sided: bool = True, covariates: list | tuple = (),
                         cluster_forming_p: float | None = 0.001) -> pd.DataFrame:
    """Run nilearn's ``non_parametric_inference`` and this stage's inference side by side.

    Both get the same subject maps, mask, design (intercept, plus the effect-coded
    order if requested) and ``random_state`` (:func:`contrast_seed`), hence the same
    sign flips. nilearn computes in its input's dtype, so it gets float64 copies of the
    (float32) maps, like this package: t and TFCE then agree to rounding error.

    Returns
    -------
    pandas.DataFrame
        One row per map (``t``, ``tfce``, ``logp_max_t``, ``logp_max_tfce``, ``size``,
        ``mass``): ``max_abs_diff``, ``max_abs_value``, ``max_rel_diff``, and the run
        times ``seconds_nilearn`` / ``seconds_ours``.
    """
    import time
    import warnings

    from nilearn.glm.second_level import non_parametric_inference

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
        ref = non_parametric_inference(
            imgs, design_matrix=design, second_level_contrast="intercept",
            mask=mask_img, n_perm=n_perm, two_sided_test=two_sided,
            random_state=contrast_seed(seed, contrast), n_jobs=1, tfce=True,
            threshold=cluster_forming_p)
    t_nl = time.perf_counter() - t0
    t0 = time.perf_counter()
    ours = group_inference(table, mask_img, contrast, n_perm=n_perm, seed=seed, two_sided=two_sided,
                           tfce=True, cluster_forming_p=cluster_forming_p, covariates=covariates,
                           exhaustive=False)
    t_ours = time.perf_counter() - t0
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
    out = pd.DataFrame(rows)
    out["seconds_nilearn"] = t_nl
    out["seconds_ours"] = t_ours
    return out


def inference_facts(results: dict, alpha: float = 0.05) -> pd.DataFrame:
    """One row per contrast: subjects, permutations, thresholds and FWE critical values.

    The critical value of a max statistic is the ``1 - alpha`` quantile of its
    permutation distribution (Nichols & Holmes 2002): a voxel (or cluster) exceeding
    it is FWE-significant at ``alpha``.
    """
    rows = []
    for name, r in results.items():
        row = {"contrast": name, "n_subjects": r.info["n_subjects"], "dof": r.info["dof"],
               "n_perm": r.info["n_perm"], "exhaustive": r.info["exhaustive"],
               "covariates": ", ".join(r.info["covariates"]) or "none",
               "n_voxels": r.info["n_voxels"],
               "max_abs_t": float(np.max(np.abs(r.maps["t"]))),
               "crit_t": float(np.quantile(r.null["max_t"], 1 - alpha))}
        if "max_tfce" in r.null:
            row["crit_tfce"] = float(np.quantile(r.null["max_tfce"], 1 - alpha))
        if r.info["cluster_forming_t"] is not None:
            row["cluster_forming_t"] = r.info["cluster_forming_t"]
            row["crit_cluster_mass"] = float(np.quantile(r.null["max_cluster_mass"], 1 - alpha))
        rows.append(row)
    return pd.DataFrame(rows)
