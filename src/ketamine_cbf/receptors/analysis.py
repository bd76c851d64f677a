"""Stage 5: do the ketamine CBF-change maps follow receptor density? (PET map comparisons)

The group ΔCBF maps (ketamine effect per arm and pooled, and the naltrexone x ketamine
interaction) and each subject's ΔCBF map are compared with six PET receptor density maps
(MOR, KOR, NMDA, mGluR5, GABAA, GABAA-α5; :data:`ketamine_cbf.reference.paths.RECEPTOR_FILES`)
across the parcels of a volumetric atlas (:mod:`ketamine_cbf.receptors.parcellate`), as JuSpace
(Dukart et al. 2021) and neuromaps (Markello et al. 2022) do:

* **group level**: Spearman (and Pearson) correlation of each group map with each PET
  map; naive parametric p beside the p from spatial-autocorrelation-preserving nulls of
  the group map (variogram surrogates, Burt et al. 2020; Moran spectral randomisation,
  Wagner & Dray 2015; :mod:`ketamine_cbf.receptors.nulls`), two-sided with the +1 correction,
  Benjamini-Hochberg FDR across the six PET maps;
* **subject level** (JuSpace): each subject's map vs each PET map, Fisher z, one-sample
  t-test across subjects, and JuSpace's spatial-null test of the mean z (nulls of the
  PET maps, the same null maps for every subject);
* **multiple regression and dominance analysis** of all six maps together (Azen &
  Budescu 2003; Hansen et al. 2022), with the same nulls of the group map;
* **validity check** of the inference: random smooth maps, independent of every PET map
  by construction, tested against a PET map; the naive p rejects far more often than
  5 %, the null-model p should not (:func:`false_positive_rates`).

Everything here works offline: PET maps and atlases ship with the project (or inside
installed packages); neuromaps is used only as an independent check in the tests
(``compare_images`` with precomputed nulls), never its fetchers.

References
----------
Dukart J. et al. (2021). JuSpace: a tool for spatial correlation analyses of magnetic
resonance imaging data with nuclear imaging derived neurotransmitter maps. Hum Brain
Mapp 42:555-566. doi:10.1002/hbm.25244

Hansen J. Y. et al. (2022). Mapping neurotransmitter systems to the structural and
functional organization of the human neocortex. Nat Neurosci 25:1569-1581.
doi:10.1038/s41593-022-01186-3

Azen R., Budescu D. V. (2003). The dominance analysis approach for comparing predictors
in multiple regression. Psychol Methods 8:129-148. doi:10.1037/1082-989X.8.2.129

Benjamini Y., Hochberg Y. (1995). Controlling the false discovery rate. J R Stat Soc B
57:289-300. doi:10.1111/j.2517-6161.1995.tb02031.x

Burt J. B. et al. (2020) NeuroImage 220:117038; Wagner H. H., Dray S. (2015) Methods
Ecol Evol 6:1169; Markello R. D., Misic B. (2021) NeuroImage 236:118052; Alexander-Bloch
A. F. et al. (2018) NeuroImage 178:540 (see :mod:`ketamine_cbf.receptors.nulls`).
"""

from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import stats

from ketamine_cbf.receptors import nulls as _nulls
from ketamine_cbf.io.bids import read_tsv
from ketamine_cbf.reference.paths import RECEPTOR_FILES, load_receptor_map
from ketamine_cbf.errors import InputError, UsageError
from ketamine_cbf.io.layout import CONTRASTS
from ketamine_cbf.receptors.parcellate import Atlas, load_img, parcel_means

__all__ = [
    "RECEPTORS", "METHODS", "VARIOGRAM_OPTIONS", "load_pet_maps", "parcellate_pet", "read_contrast_table",
    "group_map_paths", "find_brain_mask", "fdr", "correlation_table", "make_nulls",
    "null_correlation_table", "subject_correlations", "subject_level_tests",
    "dominance_analysis", "random_smooth_maps", "false_positive_rates",
    "summarise_false_positives", "read_planted_receptors", "recovery_table", "describe_recovery",
    "save_figure", "plot_brain_maps", "plot_correlations", "plot_null_distributions", "plot_scatter",
    "plot_false_positive_rates", "plot_variograms", "plot_dominance",
]

#: The six PET maps, in the order used in tables and figures.
RECEPTORS = tuple(RECEPTOR_FILES)

#: Correlation methods (Spearman is JuSpace's and neuromaps' usual choice).
METHODS = ("spearman", "pearson")

#: brainsmash options for ~100-500 parcels (the stage's default ``variogram_options``).
#: brainsmash's defaults (``deltas`` 0.1-0.9, ``pv`` 25) smooth each permuted map over
#: 10-90 % of *all* parcels, neighbourhoods far wider than the autocorrelation of ΔCBF
#: maps; the fit then often picks a strong smoothing with a large gain, and the nulls
#: acquire brain-wide gradients that the map does not have. On this atlas, for random
#: fields of known autocorrelation (spectral exponent 0-2), the default nulls' correlation
#: SD was 1.4-2x the true sampling SD (a conservative test: false-positive rate near 0 %),
#: these settings within -5 %..+13 % (measured with :func:`random_smooth_maps`; see the
#: stage notebook's false-positive check). Burt et al. (2020) ask users to check the
#: variogram fit and tune ``deltas``/``pv``; the stage notebook shows that fit.
VARIOGRAM_OPTIONS = {"deltas": [0.02, 0.04, 0.06, 0.08, 0.1, 0.12, 0.14, 0.16, 0.18, 0.2], "pv": 70}

_CONTRAST_COLUMNS = ("participant_id", "contrast", "path")


# --------------------------------------------------------------------------- inputs


def load_pet_maps(target_img, names=RECEPTORS) -> dict[str, nib.Nifti1Image]:
    """Load the shipped PET maps resampled (linear) to the analysis grid.

    Parameters
    ----------
    target_img : str, Path or Nifti1Image
        Image defining the analysis grid.
    names : sequence of str
        Keys of :data:`ketamine_cbf.reference.paths.RECEPTOR_FILES`.

    Returns
    -------
    dict
        name -> Nifti1Image (density in the units distributed; 0 outside the PET field
        of view).
    """
    target = load_img(target_img, "target image")
    unknown = [n for n in names if n not in RECEPTOR_FILES]
    if unknown:
        raise UsageError(f"unknown receptor map(s) {', '.join(unknown)}; choose from {', '.join(RECEPTORS)}")
    return {n: load_receptor_map(n, target) for n in names}


def parcellate_pet(pet_imgs: dict, atlas: Atlas) -> pd.DataFrame:
    """Parcel means of PET maps (zeros = outside the field of view are ignored).

    Returns
    -------
    pandas.DataFrame
        Index parcel names, one column per PET map.
    """
    return parcel_means(pet_imgs, atlas, ignore_zero=True)


def read_contrast_table(voxelwise_dir, contrasts=None) -> pd.DataFrame:
    """Read ``voxelwise/contrasts.tsv`` (one row per subject contrast map).

    Parameters
    ----------
    voxelwise_dir : str or Path
        Output folder of stage 03.
    contrasts : list of str, optional
        Keep only these contrasts (default: all of :data:`ketamine_cbf.io.layout.CONTRASTS`
        present).

    Returns
    -------
    pandas.DataFrame
        ``participant_id``, ``contrast``, ``path`` (absolute) and any other columns.

    Raises
    ------
    InputError
        Missing file or column, unknown contrast, or a map file that does not exist.
    """
    vdir = Path(voxelwise_dir)
    f = vdir / "contrasts.tsv"
    table = read_tsv(f, _CONTRAST_COLUMNS, missing="not found (run stage 03_voxelwise first)")
    unknown = sorted(set(table["contrast"]) - set(CONTRASTS))
    if unknown:
        raise InputError(f"{f}: unknown contrast(s) {', '.join(unknown)} in column 'contrast'")
    if contrasts is not None:
        bad = [c for c in contrasts if c not in CONTRASTS]
        if bad:
            raise UsageError(f"unknown contrast(s) {', '.join(bad)}; choose from {', '.join(CONTRASTS)}")
        table = table[table["contrast"].isin(contrasts)]
    if table.empty:
        raise InputError(f"{f}: no rows for the requested contrasts")
    table = table.copy()
    table["path"] = [str((vdir / p).resolve()) for p in table["path"]]
    missing = [p for p in table["path"] if not Path(p).is_file()]
    if missing:
        raise InputError(f"{f}: column 'path' names {len(missing)} missing file(s), e.g. {missing[0]}")
    return table.reset_index(drop=True)


def group_map_paths(voxelwise_dir, contrasts=tuple(CONTRASTS)) -> dict[str, Path]:
    """Paths of the group mean ΔCBF maps ``group/contrast-<name>_desc-mean_deltacbf.nii.gz``.

    Raises
    ------
    InputError
        A group map is missing.
    """
    out = {}
    for c in contrasts:
        if c not in CONTRASTS:
            raise UsageError(f"unknown contrast {c!r}; choose from {', '.join(CONTRASTS)}")
        p = Path(voxelwise_dir) / "group" / f"contrast-{c}_desc-mean_deltacbf.nii.gz"
        if not p.is_file():
            raise InputError(f"{p}: group mean map not found (run stage 03_voxelwise first)")
        out[c] = p
    return out


def find_brain_mask(normalisation_dir, like_img=None) -> Path | None:
    """Template-grid brain mask written by stage 02 (matching ``like_img``'s grid if given).

    Returns ``None`` when stage 02 wrote none.
    """
    cands = sorted(Path(normalisation_dir).glob("space-*_res-*_desc-brain_mask.nii.gz"))
    if like_img is not None:
        like = load_img(like_img)
        cands = [c for c in cands if nib.load(str(c)).shape[:3] == like.shape[:3]]
    return cands[0] if cands else None


# --------------------------------------------------------------------------- statistics


def fdr(p) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (``scipy.stats.false_discovery_control``).

    NaNs are kept and ignored.

    References
    ----------
    Benjamini Y., Hochberg Y. (1995). J R Stat Soc B 57:289-300.
    """
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = stats.false_discovery_control(p[ok], method="bh")
    return out


def _naive_p(r, n):
    """Parametric two-sided p of a correlation with ``n - 2`` df (t distribution).

    Exact for Pearson under bivariate normality with independent samples; the usual
    large-sample approximation for Spearman (as ``scipy.stats.spearmanr``).
    """
    r = np.clip(np.asarray(r, dtype=float), -1 + 1e-15, 1 - 1e-15)
    t = r * np.sqrt((n - 2) / (1 - r ** 2))
    return 2 * stats.t.sf(np.abs(t), n - 2)


def _common_parcels(*frames) -> pd.Index:
    idx = frames[0].index
    ok = np.ones(len(idx), bool)
    for f in frames:
        f = f.reindex(idx)
        ok &= np.all(np.isfinite(f.to_numpy(dtype=float)), axis=1)
    return idx[ok]


def make_nulls(maps: pd.DataFrame, D, models=("variogram", "moran"), n_nulls: int = 10000,
               seed: int = 0, groups=None, key: str = "nulls", **options) -> dict:
    """Null maps of every column of ``maps`` for every model.

    Parameters
    ----------
    maps : pandas.DataFrame
        Parcels x maps (no NaN; index aligned with ``D``).
    D : (N, N) array_like or DataFrame
        Parcel distance matrix (mm).
    models : sequence of {"variogram", "moran"}
    n_nulls : int
    seed : int
        Master seed; each (map, model) gets ``derive_seed(seed, key, map, model)``.
    groups : (N,) array_like, optional
        Within-group nulls (e.g. hemispheres), see :mod:`ketamine_cbf.receptors.nulls`.
    key : str
        Distinguishes null sets with the same map names (e.g. ``"group"``, ``"pet"``).
    **options
        ``variogram`` / ``moran`` options as ``{"variogram": {...}, "moran": {...}}``.

    Returns
    -------
    dict
        ``(map, model) -> (n_nulls, N) ndarray``.
    """
    if isinstance(D, pd.DataFrame):
        D = D.loc[maps.index, maps.index].to_numpy()
    out = {}
    for name in maps.columns:
        x = maps[name].to_numpy(dtype=float)
        for model in models:
            s = _nulls.derive_seed(seed, key, str(name), model)
            out[(name, model)] = _nulls.generate_nulls(x, D, model, n_nulls, s, groups=groups,
                                                       **options.get(model, {}))
    return out


def correlation_table(effects: pd.DataFrame, pet: pd.DataFrame, nulls: dict | None = None,
                      methods=METHODS, alpha: float = 0.05, return_nulls: bool = False):
    """Correlations of effect maps with PET maps, naive and null-model p, FDR.

    Parameters
    ----------
    effects : pandas.DataFrame
        Parcels x effect maps (e.g. group ΔCBF per contrast).
    pet : pandas.DataFrame
        Parcels x PET maps (same parcels; rows with NaN in either are dropped).
    nulls : dict, optional
        ``(effect map, model) -> (n, N)`` null maps of the *effect* map on the same
        parcels (:func:`make_nulls`), as neuromaps' ``compare_images(src, trg, nulls=...)``.
    methods : sequence of {"spearman", "pearson"}
    alpha : float
        FDR level for the ``significant`` column.
    return_nulls : bool
        Also return the null correlations ``(effect, model, method) -> (n, n_pet)``.

    Returns
    -------
    table : pandas.DataFrame
        One row per effect map x PET map x method x null model (``naive`` rows for the
        parametric test): ``contrast``, ``receptor``, ``method``, ``null_model``,
        ``n_parcels``, ``r``, ``p``, ``p_fdr`` (BH across the PET maps within contrast,
        method and null model), ``significant``, ``n_nulls``, ``null_mean``, ``null_sd``,
        ``null_q025``, ``null_q975``.
    null_r : dict, only if ``return_nulls``

    Notes
    -----
    p (null model) = ``(1 + #{|r_null| >= |r|}) / (n_null + 1)``; Spearman nulls are the
    Spearman correlations of the null maps (ranked), unlike neuromaps 0.0.7's
    ``compare_images`` which correlates unranked nulls with the ranked target
    (netneurolab/neuromaps PR #224).
    """
    keep = _common_parcels(effects, pet)
    E = effects.loc[keep]
    P = pet.loc[keep]
    n = len(keep)
    pos = effects.index.get_indexer(keep)
    rows, null_r = [], {}
    for method in methods:
        r_obs = _nulls.correlate(E.to_numpy(float).T, P.to_numpy(float).T, method)
        for i, c in enumerate(E.columns):
            block = pd.DataFrame({"contrast": c, "receptor": list(P.columns), "method": method,
                                  "null_model": "naive", "n_parcels": n, "r": r_obs[i],
                                  "p": _naive_p(r_obs[i], n), "n_nulls": 0})
            rows.append(block)
            for (name, model), nm in (nulls or {}).items():
                if name != c:
                    continue
                nm = np.asarray(nm)[:, pos]
                nr = _nulls.null_correlations(nm, P.to_numpy(float), method)
                null_r[(c, model, method)] = nr
                rows.append(pd.DataFrame({
                    "contrast": c, "receptor": list(P.columns), "method": method,
                    "null_model": model, "n_parcels": n, "r": r_obs[i],
                    "p": _nulls.null_pvalue(r_obs[i], nr), "n_nulls": nr.shape[0],
                    "null_mean": nr.mean(0), "null_sd": nr.std(0, ddof=1),
                    "null_q025": np.quantile(nr, 0.025, axis=0),
                    "null_q975": np.quantile(nr, 0.975, axis=0)}))
    table = pd.concat(rows, ignore_index=True)
    table["p_fdr"] = table.groupby(["contrast", "method", "null_model"], sort=False)["p"] \
        .transform(lambda s: fdr(s.to_numpy()))
    table["significant"] = table["p_fdr"] < alpha
    cols = ["contrast", "receptor", "method", "null_model", "n_parcels", "r", "p", "p_fdr",
            "significant", "n_nulls", "null_mean", "null_sd", "null_q025", "null_q975"]
    table = table.reindex(columns=cols)
    return (table, null_r) if return_nulls else table


def null_correlation_table(null_r: dict, pet_names, quantiles=(0.005, 0.025, 0.5, 0.975, 0.995)) -> pd.DataFrame:
    """Summary of null correlation distributions (one row per contrast/model/method/PET map)."""
    rows = []
    for (c, model, method), nr in null_r.items():
        for j, rec in enumerate(pet_names):
            v = nr[:, j]
            row = {"contrast": c, "null_model": model, "method": method, "receptor": rec,
                   "n_nulls": v.size, "mean": v.mean(), "sd": v.std(ddof=1)}
            row.update({f"q{q * 100:g}".replace(".", "_"): np.quantile(v, q) for q in quantiles})
            rows.append(row)
    return pd.DataFrame(rows)


def subject_correlations(subject_maps: pd.DataFrame, pet: pd.DataFrame,
                         method: str = "spearman") -> pd.DataFrame:
    """Each subject map vs each PET map: r and Fisher z (JuSpace).

    Parameters
    ----------
    subject_maps : pandas.DataFrame
        Index ``(participant_id, contrast)``, columns parcel names.
    pet : pandas.DataFrame
        Parcels x PET maps.
    method : {"spearman", "pearson"}

    Returns
    -------
    pandas.DataFrame
        ``participant_id``, ``contrast``, ``receptor``, ``method``, ``n_parcels``,
        ``r``, ``z`` (``arctanh(r)``).
    """
    parcels = _common_parcels(subject_maps.T, pet)
    S = subject_maps[parcels].to_numpy(float)
    P = pet.loc[parcels].to_numpy(float)
    r = _nulls.correlate(S, P.T, method)
    idx = subject_maps.index
    rows = pd.DataFrame({
        "participant_id": np.repeat(idx.get_level_values(0), P.shape[1]),
        "contrast": np.repeat(idx.get_level_values(1), P.shape[1]),
        "receptor": np.tile(list(pet.columns), len(idx)),
        "method": method, "n_parcels": len(parcels),
        "r": r.ravel(),
    })
    rows["z"] = np.arctanh(np.clip(rows["r"], -0.999999, 0.999999))
    return rows


def subject_level_tests(subject_maps: pd.DataFrame, pet: pd.DataFrame, pet_nulls: dict | None = None,
                        methods=("spearman",), alpha: float = 0.05) -> pd.DataFrame:
    """JuSpace subject-level test of map-to-PET correspondence, per contrast and PET map.

    For each subject, ``z = arctanh(r)`` of its map with the PET map; across subjects a
    one-sample t-test of ``z`` against 0 (JuSpace's default). Because every subject map
    shares the same spatial structure, the t-test answers "is the correlation
    consistently non-zero", not "is it more than spatial autocorrelation explains"; the
    spatial-null p (JuSpace option "compare against null distribution of correlation
    coefficients") recomputes the mean z with each null map of the PET map in place of
    the PET map (the same null map for all subjects) and compares, two-sided with the
    +1 correction.

    Parameters
    ----------
    subject_maps : pandas.DataFrame
        Index ``(participant_id, contrast)``, columns parcel names.
    pet : pandas.DataFrame
        Parcels x PET maps.
    pet_nulls : dict, optional
        ``(PET map, model) -> (n, N)`` null maps of the PET maps on ``pet.index``.
    methods : sequence of {"spearman", "pearson"}
    alpha : float

    Returns
    -------
    pandas.DataFrame
        ``contrast``, ``receptor``, ``method``, ``test`` (``t`` or a null model),
        ``n_subjects``, ``mean_r``, ``mean_z``, ``sd_z``, ``t``, ``p``, ``p_fdr`` (BH
        across PET maps within contrast/method/test), ``significant``.

    References
    ----------
    Dukart J. et al. (2021). Hum Brain Mapp 42:555-566 (JuSpace).
    """
    parcels = _common_parcels(subject_maps.T, pet)
    pos = pet.index.get_indexer(parcels)
    contrasts = list(dict.fromkeys(subject_maps.index.get_level_values(1)))
    rows = []
    for method in methods:
        per = subject_correlations(subject_maps[parcels], pet.loc[parcels], method)
        # subject maps, standardised (ranked first for Spearman), per contrast
        Zs = {c: _standardise(subject_maps.xs(c, level=1)[parcels].to_numpy(float), method)
              for c in contrasts}
        null_mean_z = {}
        for (rec, model), nm in (pet_nulls or {}).items():
            Zn = _standardise(np.asarray(nm)[:, pos], method)
            for c in contrasts:
                nr = np.clip(Zs[c] @ Zn.T, -0.999999, 0.999999)        # (subjects, n)
                null_mean_z[(c, rec, model)] = np.arctanh(nr).mean(axis=0)
        for c in contrasts:
            sub = per[per["contrast"] == c]
            for rec in pet.columns:
                z = sub.loc[sub["receptor"] == rec, "z"].to_numpy()
                r = sub.loc[sub["receptor"] == rec, "r"].to_numpy()
                t, p = stats.ttest_1samp(z, 0.0)
                base = {"contrast": c, "receptor": rec, "method": method, "n_subjects": z.size,
                        "mean_r": r.mean(), "mean_z": z.mean(), "sd_z": z.std(ddof=1), "t": t}
                rows.append({**base, "test": "t", "p": p})
                for (cc, rr, model), nz in null_mean_z.items():
                    if cc == c and rr == rec:
                        rows.append({**base, "test": model, "p": _nulls.null_pvalue(z.mean(), nz)})
    out = pd.DataFrame(rows)
    out["p_fdr"] = out.groupby(["contrast", "method", "test"], sort=False)["p"].transform(
        lambda s: fdr(s.to_numpy()))
    out["significant"] = out["p_fdr"] < alpha
    return out[["contrast", "receptor", "method", "test", "n_subjects", "mean_r", "mean_z",
                "sd_z", "t", "p", "p_fdr", "significant"]]


def _standardise(A, method):
    """Rows of ``A`` centred and scaled to unit norm (ranked first for Spearman)."""
    A = np.atleast_2d(np.asarray(A, dtype=float))
    if method == "spearman":
        A = _nulls.rank_rows(A)
    elif method != "pearson":
        raise UsageError(f"method must be 'spearman' or 'pearson' (got {method!r})")
    A = A - A.mean(axis=1, keepdims=True)
    return A / np.sqrt(np.square(A).sum(axis=1, keepdims=True))


def _subset_masks(p):
    return [m for m in range(1, 2 ** p)]


def _r2_all_subsets(X, Y):
    """R^2 of the OLS fit of each column of ``Y`` on every non-empty subset of ``X``'s columns.

    ``X`` (N, p) and ``Y`` (N, m) must be column-centred. Row ``mask`` of the result is
    the subset whose bits are set (row 0, the empty model, is 0).
    """
    p = X.shape[1]
    ss = np.square(Y).sum(axis=0)
    out = np.zeros((2 ** p, Y.shape[1]))
    for mask in _subset_masks(p):
        cols = [j for j in range(p) if mask >> j & 1]
        Q, _ = np.linalg.qr(X[:, cols])
        out[mask] = np.square(Q.T @ Y).sum(axis=0) / ss
    return out


def _general_dominance(R2, p):
    """General dominance of each predictor from all-subset R^2 (Azen & Budescu 2003).

    ``C_k(i)`` = mean over subsets ``S`` of size ``k`` without ``i`` of
    ``R2(S + i) - R2(S)``; general dominance = mean of ``C_k(i)`` over ``k = 0..p-1``.
    The general dominances sum to the full model's R^2.
    """
    out = np.zeros((p,) + R2.shape[1:])
    for i in range(p):
        others = [j for j in range(p) if j != i]
        for k in range(p):
            incs = []
            for S in combinations(others, k):
                m = sum(1 << j for j in S)
                incs.append(R2[m | (1 << i)] - R2[m])
            out[i] += np.mean(incs, axis=0)
        out[i] /= p
    return out


def dominance_analysis(y, X: pd.DataFrame, nulls=None, method: str = "spearman") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Multiple regression of a map on all PET maps, with dominance analysis and null p.

    The map ``y`` and the predictors are z-scored (ranked first if ``method`` is
    ``spearman``) and fitted by OLS. Each predictor's general dominance (Azen & Budescu
    2003), its average R^2 increment over all sub-models, apportions the full R^2 among
    correlated predictors (Hansen et al. 2022). Significance of the R^2, the dominances
    and the standardised betas is assessed by refitting the model to spatial nulls of
    ``y`` (the same null maps as the correlations): one-sided for R^2 and dominance,
    two-sided for betas, +1 correction.

    Parameters
    ----------
    y : (N,) array_like or pandas.Series
        Parcellated map (no NaN).
    X : pandas.DataFrame
        Parcels x predictors (no NaN).
    nulls : dict or (n, N) array, optional
        Null maps of ``y``; a dict ``model -> (n, N)`` for several null models.
    method : {"spearman", "pearson"}

    Returns
    -------
    predictors : pandas.DataFrame
        ``predictor``, ``beta``, ``dominance``, ``dominance_pct`` (share of R^2),
        ``r`` (zero-order), and per null model ``null_model``/``p_beta``/``p_dominance``
        (long format: one row per predictor x null model; ``naive`` rows carry the
        parametric OLS t-test p of beta).
    model : pandas.DataFrame
        ``r2``, ``adj_r2``, ``n_parcels``, ``n_predictors``, ``null_model``, ``p`` (R^2
        against the nulls; ``naive``: the F-test).

    References
    ----------
    Azen R., Budescu D. V. (2003). Psychol Methods 8:129-148.
    Budescu D. V. (1993). Dominance analysis. Psychol Bull 114:542-551.
    doi:10.1037/0033-2909.114.3.542
    Hansen J. Y. et al. (2022). Nat Neurosci 25:1569-1581.
    """
    names = list(X.columns)
    Xv = X.to_numpy(float)
    yv = np.asarray(y, dtype=float).ravel()
    if Xv.shape[0] != yv.size:
        raise InputError(f"dominance_analysis: {yv.size} parcels in the map, {Xv.shape[0]} in the predictors")
    if not (np.all(np.isfinite(Xv)) and np.all(np.isfinite(yv))):
        raise InputError("dominance_analysis: NaN in the map or predictors; drop those parcels first")
    n, p = Xv.shape
    if n <= p + 1:
        raise InputError(f"dominance_analysis: {n} parcels are too few for {p} predictors")
    if isinstance(nulls, dict):
        null_sets = nulls
    elif nulls is None:
        null_sets = {}
    else:
        null_sets = {"null": nulls}

    def prep(a):
        a = np.asarray(a, dtype=float)
        if method == "spearman":
            a = stats.rankdata(a, axis=0)
        elif method != "pearson":
            raise UsageError(f"method must be 'spearman' or 'pearson' (got {method!r})")
        a = a - a.mean(axis=0)
        return a / a.std(axis=0)

    Z = prep(Xv)
    Yall = [yv[:, None]] + [np.asarray(v, dtype=float).T for v in null_sets.values()]
    Y = prep(np.hstack(Yall))
    R2 = _r2_all_subsets(Z, Y)
    dom = _general_dominance(R2, p)
    beta = np.linalg.lstsq(Z, Y, rcond=None)[0]           # (p, 1 + sum n)
    full = (1 << p) - 1
    r2 = R2[full, 0]
    adj = 1 - (1 - r2) * (n - 1) / (n - p - 1)
    # parametric OLS inference (independent parcels: the naive reference)
    resid = Y[:, 0] - Z @ beta[:, 0]
    sigma2 = resid @ resid / (n - p - 1)
    cov = sigma2 * np.linalg.inv(Z.T @ Z)
    t_beta = beta[:, 0] / np.sqrt(np.diag(cov))
    p_beta_naive = 2 * stats.t.sf(np.abs(t_beta), n - p - 1)
    F = (r2 / p) / ((1 - r2) / (n - p - 1))
    p_F = stats.f.sf(F, p, n - p - 1)
    r0 = (Z.T @ Y[:, 0]) / n
    base = pd.DataFrame({"predictor": names, "beta": beta[:, 0], "dominance": dom[:, 0],
                         "dominance_pct": 100 * dom[:, 0] / r2 if r2 > 0 else np.nan, "r": r0})
    preds = [base.assign(null_model="naive", p_beta=p_beta_naive, p_dominance=np.nan)]
    models = [{"null_model": "naive", "p": p_F}]
    start = 1
    for model, v in null_sets.items():
        k = np.asarray(v).shape[0]
        sl = slice(start, start + k)
        start += k
        preds.append(base.assign(
            null_model=model,
            p_beta=_nulls.null_pvalue(beta[:, 0], beta[:, sl].T),
            p_dominance=_nulls.null_pvalue(dom[:, 0], dom[:, sl].T, alternative="greater")))
        models.append({"null_model": model,
                       "p": _nulls.null_pvalue(r2, R2[full, sl], alternative="greater")})
    predictors = pd.concat(preds, ignore_index=True)
    model_table = pd.DataFrame([{"method": method, "r2": r2, "adj_r2": adj, "n_parcels": n,
                                 "n_predictors": p, **m} for m in models])
    predictors.insert(0, "method", method)
    return predictors, model_table


# --------------------------------------------------------------------------- validity check


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


def random_smooth_maps(atlas: Atlas, n_maps: int, alpha=(0.0, 1.0, 2.0, 3.0), seed: int = 0,
                       voxel_mm: float = 6.0) -> tuple[np.ndarray, np.ndarray]:
    """Parcellated random maps with power-law spatial autocorrelation (volumetric GRFs).

    Gaussian random fields with power spectrum ``P(k) ~ |k|^-alpha`` are generated in the
    volume (FFT of white noise, on a ``voxel_mm`` grid twice the size of the brain so
    that the periodic boundary does not wrap correlations around) and averaged within
    parcels. ``alpha = 0`` is white noise (no autocorrelation: the naive test is
    valid); brain maps have ``alpha`` around 2-3. This follows the simulation design
    of Markello & Misic (2021), who generated such fields on the surface, here in the
    volume. The maps are independent of every PET map by construction.

    Parameters
    ----------
    atlas : Atlas
    n_maps : int
    alpha : float or sequence of float
        Spectral exponent(s); a sequence assigns them to the maps in turn.
    seed : int
    voxel_mm : float
        Voxel size of the field (mm); coarser than the analysis grid, which is fine
        for parcel averages and makes hundreds of maps cheap.

    Returns
    -------
    maps : (n_maps, N) numpy.ndarray
        Parcel values (atlas table order), unit-free.
    alpha : (n_maps,) numpy.ndarray
        The spectral exponent of each map.

    References
    ----------
    Markello R. D., Misic B. (2021). Comparing spatial null models for brain maps.
    NeuroImage 236:118052. doi:10.1016/j.neuroimage.2021.118052
    """
    al = np.atleast_1d(np.asarray(alpha, dtype=float))
    if np.any(al < 0) or np.any(al > 5):
        raise UsageError(f"sim_alpha: spectral exponents must be in [0, 5] (got {al.tolist()})")
    if int(n_maps) < 1:
        raise UsageError(f"n_sim_maps must be >= 1 (got {n_maps})")
    M, shape = _coarse_averager(atlas, float(voxel_mm), 2.0)
    freqs = np.meshgrid(*[np.fft.fftfreq(s) for s in shape[:2]], np.fft.rfftfreq(shape[2]),
                        indexing="ij")
    knorm = np.sqrt(sum(f ** 2 for f in freqs))
    knorm[0, 0, 0] = np.inf
    rng = np.random.default_rng(seed)
    alphas = np.resize(al, int(n_maps))
    out = np.empty((int(n_maps), M.shape[0]))
    for k in range(int(n_maps)):
        amp = knorm ** (-alphas[k] / 2)
        amp[0, 0, 0] = 0.0
        field = np.fft.irfftn(np.fft.rfftn(rng.standard_normal(shape)) * amp, s=shape, axes=(0, 1, 2))
        v = M @ field.ravel()
        out[k] = (v - v.mean()) / v.std()
    return out, alphas


def false_positive_rates(sim_maps, target, D, models=("variogram", "moran"), n_nulls: int = 500,
                         methods=("spearman",), seed: int = 0, groups=None, labels=None,
                         **options) -> pd.DataFrame:
    """Test random maps (true correlation 0) against a target map, naive and with nulls.

    For each simulated map: its correlation with ``target``, the parametric p, and the
    p from ``n_nulls`` null maps *of the simulated map* for each model (the same
    direction as the group analysis, where nulls are made of the ΔCBF map). Under the
    null hypothesis a valid test rejects at rate ``alpha``.

    Parameters
    ----------
    sim_maps : (n_maps, N) array_like
        Random maps independent of ``target`` (e.g. :func:`random_smooth_maps`).
    target : (N,) array_like
        A PET map (parcellated).
    D : (N, N) array_like
        Parcel distances (mm).
    models, n_nulls, methods, seed, groups
        As in :func:`make_nulls` / :func:`correlation_table`.
    labels : (n_maps,) array_like, optional
        A label per map (e.g. its spectral exponent), copied to the output.

    Returns
    -------
    pandas.DataFrame
        One row per map x method x test: ``map``, ``label``, ``method``, ``test``
        (``naive`` or a null model), ``r``, ``p``.

    References
    ----------
    Markello R. D., Misic B. (2021). NeuroImage 236:118052 (false-positive rates of
    spatial null models); Burt J. B. et al. (2020) NeuroImage 220:117038.
    """
    S = np.atleast_2d(np.asarray(sim_maps, dtype=float))
    t = np.asarray(target, dtype=float)
    D = np.asarray(D, dtype=float)
    labels = np.full(len(S), np.nan) if labels is None else np.asarray(labels)
    rows = []
    for k, x in enumerate(S):
        nm = {m: _nulls.generate_nulls(x, D, m, n_nulls, _nulls.derive_seed(seed, "fpr", k, m),
                                       groups=groups, **options.get(m, {})) for m in models}
        for method in methods:
            r = float(_nulls.correlate(x, t, method)[0, 0])
            rows.append({"map": k, "label": labels[k], "method": method, "test": "naive", "r": r,
                         "p": float(_naive_p(r, len(t)))})
            for m, v in nm.items():
                nr = _nulls.null_correlations(v, t, method)[:, 0]
                rows.append({"map": k, "label": labels[k], "method": method, "test": m, "r": r,
                             "p": _nulls.null_pvalue(r, nr)})
    return pd.DataFrame(rows)


def summarise_false_positives(per_map: pd.DataFrame, alpha: float = 0.05, by=("method", "test")) -> pd.DataFrame:
    """False-positive rate at ``alpha`` with a 95 % Clopper-Pearson interval per group.

    References
    ----------
    Clopper C. J., Pearson E. S. (1934). Biometrika 26:404-413 (``scipy.stats.binomtest``).
    """
    rows = []
    for key, g in per_map.groupby(list(by), sort=False):
        k = int((g["p"] <= alpha).sum())
        n = len(g)
        ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
        key = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(by, key)), "n_maps": n, "n_rejected": k, "alpha": alpha,
                     "fpr": k / n, "ci_low": ci.low, "ci_high": ci.high})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- ground truth


def read_planted_receptors(bids_dir) -> dict | None:
    """Planted receptor amplitudes of a simulated dataset, or None for real data.

    Reads ``derivatives/groundtruth/truth.json`` and returns
    ``{"ketamine": {name: amplitude}, "interaction": {...}}`` (ml/100 g/min per SD of the
    map's unique component).
    """
    f = Path(bids_dir) / "derivatives" / "groundtruth" / "truth.json"
    if not f.is_file():
        return None
    try:
        truth = json.loads(f.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(f"{f}: cannot be read as JSON ({type(e).__name__})") from None
    rec = truth.get("receptors")
    if not isinstance(rec, dict):
        return None
    out = {}
    for key in ("ketamine", "interaction"):
        v = rec.get(key, {})
        amps = v.get("amplitudes", v) if isinstance(v, dict) else {}
        out[key] = {k: float(a) for k, a in amps.items() if k in RECEPTOR_FILES}
    return out


def recovery_table(table: pd.DataFrame, planted: dict, mapping=None) -> pd.DataFrame:
    """Planted vs recovered receptor associations.

    Parameters
    ----------
    table : pandas.DataFrame
        :func:`correlation_table` output.
    planted : dict
        :func:`read_planted_receptors` output.
    mapping : dict, optional
        Contrast -> ``{planted key: weight}``. The default follows the contrasts'
        definitions: with ketamine loading K (placebo arm) and interaction loading I
        (naltrexone - placebo), ``ket_placebo`` carries K, ``ket_naltrexone`` K + I,
        ``ket_pooled`` K + I/2 and ``interaction`` I.

    Returns
    -------
    pandas.DataFrame
        The rows of ``table`` with ``planted`` (amplitude, 0 for non-targets),
        ``target`` (bool) and ``correct`` (significant iff target, with the sign of
        the planted amplitude; naive rows included for comparison).
    """
    mapping = mapping or {"ket_placebo": {"ketamine": 1.0},
                          "ket_naltrexone": {"ketamine": 1.0, "interaction": 1.0},
                          "ket_pooled": {"ketamine": 1.0, "interaction": 0.5},
                          "interaction": {"interaction": 1.0}}
    out = table.copy()

    def loading(contrast, receptor):
        weights = mapping.get(contrast, {})
        if isinstance(weights, str):  # a plain contrast -> key mapping
            weights = {weights: 1.0}
        return float(sum(w * planted.get(key, {}).get(receptor, 0.0) for key, w in weights.items()))

    amp = [loading(c, r) for c, r in zip(out["contrast"], out["receptor"])]
    out["planted"] = amp
    out["target"] = out["planted"] != 0
    same_sign = np.sign(out["r"]) == np.sign(out["planted"])
    out["correct"] = np.where(out["target"], out["significant"] & same_sign, ~out["significant"])
    return out


def describe_recovery(rec: pd.DataFrame, contrasts=None) -> str:
    """The planted-vs-found comparison in words: per test, what was missed or found wrongly.

    Parameters
    ----------
    rec : pandas.DataFrame
        :func:`recovery_table` output (one correlation method).
    contrasts : sequence of str, optional
        Contrasts to describe (default: all, in table order).

    Returns
    -------
    str
        Markdown, one bullet per test (``naive`` and each null model): "all N planted
        associations found, no false ones", or the planted associations it missed
        (with their p_FDR) and the non-planted ones it called significant.
    """
    if contrasts is not None:
        rec = rec[rec["contrast"].isin(list(contrasts))]
    lines = []
    for model, sub in rec.groupby("null_model", sort=False):
        targets = sub[sub["target"]]
        missed = targets[~targets["correct"]]
        false = sub[~sub["target"] & sub["significant"]]
        if missed.empty and false.empty:
            lines.append(f"* **{model}**: all {len(targets)} planted associations found "
                         "(with the planted sign), no false ones.")
            continue
        parts = []
        if not missed.empty:
            parts.append("missed " + ", ".join(
                f"{r.contrast} × {r.receptor} (r = {r.r:.2f}, p_FDR = {r.p_fdr:.2g})"
                for r in missed.itertuples()))
        if not false.empty:
            parts.append("false positives " + ", ".join(
                f"{r.contrast} × {r.receptor} (r = {r.r:.2f}, p_FDR = {r.p_fdr:.2g})"
                for r in false.itertuples()))
        found = len(targets) - len(missed)
        lines.append(f"* **{model}**: {found} of {len(targets)} planted associations found; "
                     + "; ".join(parts) + ".")
    return "\n".join(lines)


# --------------------------------------------------------------------------- figures


def _plt():
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path, dpi: int = 110) -> Path:
    """Save a matplotlib figure atomically (PNG by the file extension); return the path."""
    from ketamine_cbf.io.provenance import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
    return Path(path)


def plot_brain_maps(imgs: dict, title_suffix: str = "", cmap: str = "magma", ncols: int = 2,
                    cut_coords=(-10, 0, 10, 30), vmax_percentile: float = 99.5):
    """Axial slices of several maps (e.g. the PET maps on the analysis grid), one row each.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from nilearn import plotting

    plt = _plt()
    names = list(imgs)
    nrows = int(np.ceil(len(names) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.8 * ncols, 1.9 * nrows))
    axes = np.atleast_1d(axes).ravel()
    for ax, name in zip(axes, names):
        img = load_img(imgs[name], name)
        d = img.get_fdata()
        vmax = float(np.percentile(d[d > 0], vmax_percentile)) if np.any(d > 0) else None
        plotting.plot_img(img, display_mode="z", cut_coords=list(cut_coords), axes=ax,
                          cmap=cmap, colorbar=True, vmin=0, vmax=vmax, black_bg=False,
                          title=f"{name}{title_suffix}", annotate=False, draw_cross=False)
    for ax in axes[len(names):]:
        ax.axis("off")
    return fig


_MODEL_COLORS = {"naive": "0.5", "variogram": "tab:blue", "moran": "tab:orange"}


def plot_correlations(table: pd.DataFrame, method: str = "spearman", contrasts=None, p_col: str = "p_fdr"):
    """Forest plot: r of each contrast with each PET map and the 95 % null intervals.

    Markers show the observed r; horizontal bars the central 95 % of the null
    correlations of each null model; filled markers are significant after FDR under
    every null model, stars mark the naive significance.
    """
    plt = _plt()
    t = table[table["method"] == method]
    contrasts = list(dict.fromkeys(t["contrast"])) if contrasts is None else contrasts
    models = [m for m in dict.fromkeys(t["null_model"]) if m != "naive"]
    fig, axes = plt.subplots(1, len(contrasts), figsize=(3.3 * len(contrasts), 3.4), sharey=True,
                             squeeze=False)
    for ax, c in zip(axes[0], contrasts):
        tc = t[t["contrast"] == c]
        recs = list(dict.fromkeys(tc["receptor"]))
        y = np.arange(len(recs))[::-1]
        for k, m in enumerate(models):
            tm = tc[tc["null_model"] == m].set_index("receptor").loc[recs]
            off = (k - (len(models) - 1) / 2) * 0.18
            ax.hlines(y + off, tm["null_q025"], tm["null_q975"], color=_MODEL_COLORS.get(m, "k"),
                      lw=4, alpha=0.45, label=f"95 % {m} null")
        sig_all = np.ones(len(recs), bool)
        for m in models:
            sig_all &= tc[tc["null_model"] == m].set_index("receptor").loc[recs, "significant"].to_numpy()
        naive = tc[tc["null_model"] == "naive"].set_index("receptor").loc[recs]
        r = naive["r"].to_numpy()
        ax.scatter(r[sig_all], y[sig_all], color="k", zorder=3, s=30, label="significant (nulls, FDR)")
        ax.scatter(r[~sig_all], y[~sig_all], facecolor="white", edgecolor="k", zorder=3, s=30,
                   label="not significant")
        for yy, rr, s in zip(y, r, naive["significant"]):
            if s:
                ax.text(rr, yy + 0.22, "*", ha="center", va="center", color="0.35")
        ax.axvline(0, color="0.7", lw=0.8)
        ax.set_yticks(y, recs)
        ax.set_xlim(-1, 1)
        ax.set_title(c, fontsize=10)
        ax.set_xlabel(f"{method} r")
    handles, labels_ = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels_, loc="lower center", ncol=len(labels_), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def plot_null_distributions(null_r: dict, table: pd.DataFrame, contrast: str, method: str = "spearman"):
    """Histograms of null correlations per PET map for one contrast, observed r marked."""
    plt = _plt()
    t = table[(table["contrast"] == contrast) & (table["method"] == method)
              & (table["null_model"] == "naive")]
    recs = t["receptor"].tolist()
    models = [m for (c, m, me) in null_r if c == contrast and me == method]
    fig, axes = plt.subplots(1, len(recs), figsize=(2.2 * len(recs), 2.4), sharey=True, squeeze=False)
    for j, (ax, rec) in enumerate(zip(axes[0], recs)):
        for m in models:
            ax.hist(null_r[(contrast, m, method)][:, j], bins=60, range=(-1, 1), density=True,
                    histtype="stepfilled", alpha=0.45, color=_MODEL_COLORS.get(m, "k"), label=m)
        ax.axvline(float(t.loc[t["receptor"] == rec, "r"].iloc[0]), color="crimson", lw=1.5,
                   label="observed")
        ax.set_title(rec, fontsize=9)
        ax.set_xlabel("r")
        ax.set_yticks([])
    axes[0][0].legend(fontsize=7, frameon=False)
    fig.suptitle(f"{contrast}: null distributions of {method} r", fontsize=10)
    fig.tight_layout()
    return fig


def plot_scatter(effects: pd.DataFrame, pet: pd.DataFrame, pairs, atlas_table: pd.DataFrame | None = None,
                 table: pd.DataFrame | None = None, method: str = "spearman"):
    """Parcel scatter plots of effect vs PET map for ``pairs`` ``[(contrast, receptor), ...]``.

    Axes show ranks for Spearman (what the correlation measures), values for Pearson.
    Cortical and subcortical parcels are coloured differently.
    """
    plt = _plt()
    pairs = list(pairs)
    if not pairs:
        fig, ax = plt.subplots(figsize=(4, 1))
        ax.text(0.5, 0.5, "no significant association", ha="center", va="center")
        ax.axis("off")
        return fig
    keep = _common_parcels(effects, pet)
    fig, axes = plt.subplots(1, len(pairs), figsize=(3.2 * len(pairs), 3.1), squeeze=False)
    struct = None
    if atlas_table is not None:
        struct = atlas_table.set_index("name").loc[keep, "structure"].to_numpy()
    for ax, (c, rec) in zip(axes[0], pairs):
        x = pet.loc[keep, rec].to_numpy(float)
        y = effects.loc[keep, c].to_numpy(float)
        if method == "spearman":
            x, y = stats.rankdata(x), stats.rankdata(y)
        if struct is None:
            ax.scatter(x, y, s=8, alpha=0.7)
        else:
            for s, col in (("cortex", "tab:blue"), ("subcortex", "tab:red")):
                sel = struct == s
                if sel.any():
                    ax.scatter(x[sel], y[sel], s=8, alpha=0.7, color=col, label=s)
        b = np.polyfit(x, y, 1)
        xx = np.linspace(x.min(), x.max(), 10)
        ax.plot(xx, np.polyval(b, xx), color="k", lw=1)
        label = ""
        if table is not None:
            row = table[(table["contrast"] == c) & (table["receptor"] == rec) & (table["method"] == method)]
            parts = [f"r = {row['r'].iloc[0]:.2f}"] if len(row) else []
            for _, rr in row.iterrows():
                parts.append(f"p ({rr['null_model']}) = {rr['p']:.2g}")
            label = "\n".join(parts)
        ax.text(0.03, 0.97, label, transform=ax.transAxes, va="top", fontsize=7,
                bbox=dict(facecolor="white", edgecolor="0.8", alpha=0.9))
        unit = " (rank)" if method == "spearman" else ""
        ax.set_xlabel(f"{rec} density{unit}")
        ax.set_ylabel(f"{c} ΔCBF{unit}")
    if struct is not None:
        axes[0][0].legend(fontsize=7, frameon=False, loc="lower right")
    fig.tight_layout()
    return fig


def plot_false_positive_rates(summary: pd.DataFrame, alpha: float = 0.05, x: str = "label"):
    """False-positive rate (95 % CI) of each test, per smoothness level if ``x`` is given."""
    plt = _plt()
    tests = list(dict.fromkeys(summary["test"]))
    groups = list(dict.fromkeys(summary[x])) if x in summary else ["all"]
    fig, ax = plt.subplots(figsize=(1.4 + 1.3 * len(groups), 3.2))
    w = 0.8 / len(tests)
    for k, test in enumerate(tests):
        s = summary[summary["test"] == test]
        s = s.set_index(x).loc[groups] if x in summary else s
        pos = np.arange(len(groups)) + (k - (len(tests) - 1) / 2) * w
        ax.bar(pos, s["fpr"], width=w, color=_MODEL_COLORS.get(test, "k"), alpha=0.8, label=test)
        ax.errorbar(pos, s["fpr"], yerr=[s["fpr"] - s["ci_low"], s["ci_high"] - s["fpr"]],
                    fmt="none", ecolor="k", lw=1, capsize=2)
    ax.axhline(alpha, color="crimson", ls="--", lw=1, label=f"nominal {alpha:g}")
    ax.set_xticks(np.arange(len(groups)), [f"{g:g}" if isinstance(g, (int, float)) else str(g) for g in groups])
    ax.set_xlabel("spatial autocorrelation of the random maps (spectral exponent α)" if x == "label" else x)
    ax.set_ylabel(f"false-positive rate (p ≤ {alpha:g})")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def plot_variograms(x, null_sets: dict, D, title: str = "", n_show: int = 200, percentile: float = 70):
    """Semivariogram of a map with the mean and 95 % band of its null maps' variograms.

    Well-matched nulls overlay the map's variogram (Burt et al. 2020, Fig. 2). The null
    maps are shown as generated (not rescaled), up to the ``percentile``-th percentile
    of the parcel distances.
    """
    plt = _plt()
    x = np.asarray(x, dtype=float)
    h, g = _nulls.semivariogram(x, D, percentile=percentile)
    ok = np.isfinite(g)
    fig, ax = plt.subplots(figsize=(4.4, 3.1))
    ax.plot(h[ok], g[ok], color="k", lw=2, label="map")
    for m, v in null_sets.items():
        _, gn = _nulls.semivariogram(np.asarray(v)[:n_show], D, percentile=percentile)
        gn = gn[:, ok]
        lo, hi = np.percentile(gn, [2.5, 97.5], axis=0)
        ax.fill_between(h[ok], lo, hi, color=_MODEL_COLORS.get(m, "k"), alpha=0.25)
        ax.plot(h[ok], gn.mean(axis=0), color=_MODEL_COLORS.get(m, "k"), label=f"{m} nulls")
    ax.set_xlabel("distance between parcel centroids (mm)")
    ax.set_ylabel("semivariance")
    ax.set_ylim(bottom=0)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def plot_dominance(predictors: pd.DataFrame, model: pd.DataFrame, null_model: str = "variogram"):
    """Bar plot of general dominance (share of R^2) per PET map, per contrast if present."""
    plt = _plt()
    d = predictors[predictors["null_model"] == null_model]
    contrasts = list(dict.fromkeys(d["contrast"])) if "contrast" in d else [None]
    fig, axes = plt.subplots(1, len(contrasts), figsize=(3.3 * len(contrasts), 3.0), sharey=True,
                             squeeze=False)
    for ax, c in zip(axes[0], contrasts):
        dc = d if c is None else d[d["contrast"] == c]
        mc = model if c is None else model[model["contrast"] == c]
        colors = ["k" if p <= 0.05 else "0.75" for p in dc["p_dominance"]]
        ax.barh(dc["predictor"][::-1], dc["dominance"][::-1], color=colors[::-1])
        r2 = float(mc["r2"].iloc[0])
        pm = mc.loc[mc["null_model"] == null_model, "p"]
        ax.set_title(f"{c or ''}\nR² = {r2:.2f}, p_{null_model} = {float(pm.iloc[0]):.2g}", fontsize=9)
        ax.set_xlabel("general dominance (ΔR²)")
    fig.tight_layout()
    return fig
