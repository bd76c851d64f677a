"""Stage 5's entry points, one per step of the stage notebook.

Each function computes one step, writes its result tables atomically to ``output_dir``
(:mod:`ketamine_cbf.io.provenance`) and returns them:

* :func:`parcellate_inputs`: the atlas on stage 2's grid and the parcellated PET and group
  ΔCBF maps (``atlas_dseg.nii.gz``, ``atlas_dseg.tsv``, ``parcel_distances.tsv``,
  ``parcellated_maps.tsv``); returns :class:`Inputs`.
* :func:`group_level`: null maps of the group maps and their correlations with the PET
  maps (``group_correlations.tsv``, ``null_distributions.tsv``); returns :class:`GroupLevel`.
* :func:`truth_recovery`: planted against found, simulated data only (``recovery.tsv``).
* :func:`subject_level`: JuSpace's subject-level tests (``subject_level.tsv``,
  ``subject_correlations.tsv``).
* :func:`regression`: multiple regression and dominance analysis (``dominance.tsv``,
  ``regression_model.tsv``).
* :func:`false_positive_check`: random smooth maps against a PET map
  (``false_positive_maps.tsv``, ``false_positive_rates.tsv``); returns :class:`FalsePositives`.
* :func:`write_summary`: ``summary.json``.

The tables the notebook shows beside these (summaries, pivots) come from the concern
modules (e.g. :func:`ketamine_cbf.receptors.correlations.summary_table`) and are written by
:func:`ketamine_cbf.display.show_table`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ketamine_cbf._docs import fill_doc
from ketamine_cbf.io import derivatives, provenance
from ketamine_cbf.io.layout import stage_dir
from ketamine_cbf.receptors import _docs  # noqa: F401  (registers stage 5's parameter texts)
from ketamine_cbf.receptors import (correlations, dominance, false_positives, juspace, maps,
                                    nulls, parcellate, recovery)
from ketamine_cbf.receptors.parcellate import Atlas

__all__ = ["Inputs", "GroupLevel", "FalsePositives", "parcellate_inputs", "group_level",
           "truth_recovery", "subject_level", "regression", "false_positive_check",
           "write_summary"]


@dataclass
class Inputs:
    """The stage's inputs on the atlas (:func:`parcellate_inputs`).

    Attributes
    ----------
    atlas : ketamine_cbf.receptors.parcellate.Atlas
    distances : pandas.DataFrame
        Distances (mm) between the centroids of all atlas parcels.
    mask_path : Path
        Stage 2's template brain mask (the analysis grid).
    group_paths : dict
        contrast -> group mean ΔCBF map of stage 3.
    subjects : pandas.DataFrame
        Stage 3's subject ΔCBF maps (:func:`ketamine_cbf.receptors.maps.subject_maps_table`).
    pet_imgs : dict
        PET map name -> image on the analysis grid.
    pet, group : pandas.DataFrame
        Parcellated PET and group ΔCBF maps, restricted to the parcels with data in all.
    D : numpy.ndarray
        Distances between those parcels.
    groups : numpy.ndarray or None
        Hemisphere of each of those parcels for within-hemisphere nulls, else None.
    """

    atlas: Atlas
    distances: pd.DataFrame
    mask_path: Path
    group_paths: dict
    subjects: pd.DataFrame
    pet_imgs: dict
    pet: pd.DataFrame
    group: pd.DataFrame
    D: np.ndarray
    groups: np.ndarray | None

    @property
    def parcels(self) -> pd.Index:
        """The analysed parcels (data in every PET and group map)."""
        return self.pet.index


@fill_doc
def parcellate_inputs(derivatives_dir, output_dir, *, contrasts, receptors,
                      cortical_atlas: str = "schaefer200", subcortical_atlas: str = "harvard_oxford",
                      subcortical_threshold: float = 25, min_parcel_voxels: int = 10,
                      null_hemispheres: str = "joint") -> Inputs:
    """Build the atlas on stage 2's grid and parcellate the PET and group ΔCBF maps.

    Parameters
    ----------
    %(derivatives_dir)s
    %(output_dir)s
    contrasts : list of str
        Group ΔCBF maps of stage 3 to analyse (names of :data:`ketamine_cbf.study.CONTRASTS`).
    %(receptors)s
    %(cortical_atlas)s
    %(subcortical_atlas)s
    %(subcortical_threshold)s
    %(min_parcel_voxels)s
    %(null_hemispheres)s

    Returns
    -------
    Inputs

    Raises
    ------
    InputError
        A missing output of stage 2 or 3 (the message names the file).

    References
    ----------
    .. footbibliography::
    """
    vox = stage_dir(derivatives_dir, "voxelwise")
    group_paths = derivatives.group_mean_maps(vox, contrasts)
    subjects = maps.subject_maps_table(vox, contrasts)
    mask_path = derivatives.template_masks(stage_dir(derivatives_dir, "normalisation"),
                                           group_paths[contrasts[0]])[0]
    atlas = parcellate.build_atlas(mask_path, cortical=cortical_atlas, subcortical=subcortical_atlas,
                                   subcortical_threshold=subcortical_threshold, mask_img=mask_path,
                                   min_voxels=min_parcel_voxels)
    distances = parcellate.distance_matrix(atlas)
    pet_imgs = maps.load_pet_maps(mask_path, receptors)
    pet = maps.parcellate_pet(pet_imgs, atlas)
    group = parcellate.parcel_means(group_paths, atlas)
    keep = pet.index[pet.notna().all(axis=1) & group.notna().all(axis=1)]
    pet, group = pet.loc[keep], group.loc[keep]
    hemispheres = atlas.table.set_index("name").loc[keep, "hemisphere"].to_numpy()
    inputs = Inputs(atlas, distances, Path(mask_path), group_paths, subjects, pet_imgs, pet, group,
                    distances.loc[keep, keep].to_numpy(),
                    hemispheres if null_hemispheres == "separate" else None)
    _write_inputs(inputs, Path(output_dir))
    return inputs


def _write_inputs(inputs: Inputs, out: Path) -> None:
    """The atlas (image, table), the parcel distances and the parcellated maps."""
    provenance.save_nifti(inputs.atlas.img, out / "atlas_dseg.nii.gz")
    provenance.write_tsv(out / "atlas_dseg.tsv", inputs.atlas.table)
    provenance.write_tsv(out / "parcel_distances.tsv", inputs.distances.reset_index(names="parcel"))
    provenance.write_tsv(out / "parcellated_maps.tsv",
                         maps.parcellated_table(inputs.atlas, inputs.pet, inputs.group))


@dataclass
class GroupLevel:
    """The group-level results (:func:`group_level`).

    Attributes
    ----------
    nulls : dict
        ``(contrast, model) -> (n_nulls, N)`` null maps of the group ΔCBF maps.
    table : pandas.DataFrame
        :func:`ketamine_cbf.receptors.correlations.correlation_table` output.
    null_r : dict
        ``(contrast, model, method) -> (n_nulls, n_pet)`` null correlations.
    seconds : float
        Time taken to generate the null maps.
    """

    nulls: dict
    table: pd.DataFrame
    null_r: dict
    seconds: float


@fill_doc
def group_level(inputs: Inputs, output_dir, *, null_models, variogram_options, seed: int, methods,
                n_nulls: int = 10000, fdr_alpha: float = 0.05) -> GroupLevel:
    """Null maps of each group ΔCBF map, and its correlation with each PET map.

    Parameters
    ----------
    %(receptors.inputs)s
    %(output_dir)s
    %(receptors.null_settings)s
    %(methods)s
    %(n_nulls)s
    %(fdr_alpha)s

    Returns
    -------
    GroupLevel

    References
    ----------
    .. footbibliography::
    """
    t0 = time.perf_counter()
    group_nulls = nulls.make_nulls(inputs.group, inputs.D, null_models, n_nulls, seed=seed, key="group",
                                   groups=inputs.groups, variogram=dict(variogram_options))
    seconds = time.perf_counter() - t0
    table, null_r = correlations.correlation_table(inputs.group, inputs.pet, group_nulls, methods=methods,
                                                   fdr_alpha=fdr_alpha, return_nulls=True)
    out = Path(output_dir)
    provenance.write_tsv(out / "group_correlations.tsv", table)
    provenance.write_tsv(out / "null_distributions.tsv",
                         correlations.null_correlation_table(null_r, list(inputs.pet.columns)))
    return GroupLevel(group_nulls, table, null_r, seconds)


@fill_doc
def truth_recovery(bids_dir, table: pd.DataFrame, output_dir, *, method: str) -> pd.DataFrame | None:
    """Planted receptor loadings against the group-level tests (simulated data only).

    Parameters
    ----------
    %(bids_dir)s
    table : pandas.DataFrame
        ``GroupLevel.table``.
    %(output_dir)s
    %(receptors.method)s

    Returns
    -------
    pandas.DataFrame or None
        :func:`ketamine_cbf.receptors.recovery.recovery_table` of ``method`` (written as
        ``recovery.tsv``); None for real data.
    """
    planted = recovery.read_planted_receptors(bids_dir)
    if planted is None:
        return None
    rec = recovery.recovery_table(table[table["method"] == method], planted)
    provenance.write_tsv(Path(output_dir) / "recovery.tsv", rec)
    return rec


@fill_doc
def subject_level(inputs: Inputs, output_dir, *, null_models, variogram_options, seed: int,
                  method: str, n_subject_nulls: int = 1000,
                  fdr_alpha: float = 0.05) -> tuple[pd.DataFrame, pd.DataFrame]:
    """JuSpace's subject-level analysis: t-test of the subjects' Fisher z and PET-map nulls.

    Parameters
    ----------
    %(receptors.inputs)s
    %(output_dir)s
    %(receptors.null_settings)s
    %(receptors.method)s
    %(n_subject_nulls)s
    %(fdr_alpha)s

    Returns
    -------
    tests : pandas.DataFrame
        :func:`ketamine_cbf.receptors.juspace.subject_level_tests` output.
    correlations : pandas.DataFrame
        :func:`ketamine_cbf.receptors.juspace.subject_correlations` output.

    References
    ----------
    .. footbibliography::
    """
    sub_maps = maps.subject_parcel_maps(inputs.subjects, inputs.atlas, inputs.parcels)
    pet_nulls = nulls.make_nulls(inputs.pet, inputs.D, null_models, n_subject_nulls, seed=seed,
                                 key="pet", groups=inputs.groups, variogram=dict(variogram_options))
    tests = juspace.subject_level_tests(sub_maps, inputs.pet, pet_nulls, method=method,
                                              fdr_alpha=fdr_alpha)
    corr = juspace.subject_correlations(sub_maps, inputs.pet, method)
    out = Path(output_dir)
    provenance.write_tsv(out / "subject_level.tsv", tests)
    provenance.write_tsv(out / "subject_correlations.tsv", corr)
    return tests, corr


@fill_doc
def regression(inputs: Inputs, group_nulls: dict, output_dir, *,
               method: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Multiple regression of each group ΔCBF map on all PET maps, with dominance analysis.

    Parameters
    ----------
    %(receptors.inputs)s
    group_nulls : dict
        ``GroupLevel.nulls``.
    %(output_dir)s
    %(receptors.method)s

    Returns
    -------
    predictors, model : pandas.DataFrame
        :func:`ketamine_cbf.receptors.dominance.dominance_tables` output.
    """
    predictors, model = dominance.dominance_tables(inputs.group, inputs.pet, group_nulls, method)
    out = Path(output_dir)
    provenance.write_tsv(out / "dominance.tsv", predictors)
    provenance.write_tsv(out / "regression_model.tsv", model)
    return predictors, model


@dataclass
class FalsePositives:
    """The false-positive check (:func:`false_positive_check`).

    Attributes
    ----------
    per_map : pandas.DataFrame
        :func:`ketamine_cbf.receptors.false_positives.false_positive_rates` output.
    by_exponent : pandas.DataFrame
        Rates per spectral exponent and test.
    overall : pandas.DataFrame
        Rates per test over all maps.
    """

    per_map: pd.DataFrame
    by_exponent: pd.DataFrame
    overall: pd.DataFrame


@fill_doc
def false_positive_check(inputs: Inputs, output_dir, *, null_models, variogram_options, seed: int,
                         sim_alpha, method: str, n_sim_maps: int = 500, n_sim_nulls: int = 100,
                         sim_target: str = "MOR", nominal_alpha: float = 0.05) -> FalsePositives:
    """Random smooth maps tested against a PET map: the false-positive rate of each test.

    Parameters
    ----------
    %(receptors.inputs)s
    %(output_dir)s
    %(receptors.null_settings)s
    %(sim_alpha)s
    %(receptors.method)s
    %(n_sim_maps)s
    %(n_sim_nulls)s
    %(sim_target)s
    %(receptors.nominal_alpha)s

    Returns
    -------
    FalsePositives

    References
    ----------
    .. footbibliography::
    """
    sim, labels = false_positives.random_smooth_maps(inputs.atlas, n_sim_maps, sim_alpha, seed=seed)
    sim = sim[:, inputs.atlas.table["name"].isin(inputs.parcels).to_numpy()]
    per_map = false_positives.false_positive_rates(
        sim, inputs.pet[sim_target].to_numpy(), inputs.D, null_models, n_sim_nulls, method, seed=seed,
        groups=inputs.groups, labels=labels, variogram=dict(variogram_options))
    by_label = false_positives.summarise_false_positives(per_map, nominal_alpha, by=("label", "test"))
    overall = false_positives.summarise_false_positives(per_map, nominal_alpha, by=("test",))
    out = Path(output_dir)
    provenance.write_tsv(out / "false_positive_maps.tsv", per_map)
    provenance.write_tsv(out / "false_positive_rates.tsv", pd.concat([by_label, overall.assign(label="all")]))
    return FalsePositives(per_map, by_label, overall)


@fill_doc
def write_summary(output_dir, inputs: Inputs, group: GroupLevel, checks: FalsePositives, *,
                  null_models, n_nulls: int = 10000, null_hemispheres: str = "joint") -> dict:
    """Write ``summary.json``: atlas, parcels, nulls and the false-positive rates.

    Parameters
    ----------
    %(output_dir)s
    %(receptors.inputs)s
    group : GroupLevel
    checks : FalsePositives
    %(null_models)s
    %(n_nulls)s
    %(null_hemispheres)s

    Returns
    -------
    dict
        The summary written.

    References
    ----------
    .. footbibliography::
    """
    summary = {
        "atlas": inputs.atlas.name, "n_parcels": int(len(inputs.parcels)), "n_nulls": n_nulls,
        "null_models": list(null_models), "null_hemispheres": null_hemispheres,
        "group_null_seconds": round(group.seconds, 1),
        "false_positive_rates": checks.overall.set_index("test")["fpr"].to_dict()}
    provenance.write_json(Path(output_dir) / "summary.json", summary)
    return summary
