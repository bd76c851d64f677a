"""Stage 5's parameter texts, written once and pasted into docstrings by ``fill_doc``.

Keys without a dot are parameters of the stage notebook's parameters cell
(``notebooks/05_receptors.ipynb``), with the meaning they have there; keys ``receptors.<name>``
are arguments that several stage-5 functions share (names other stages may use otherwise).
"""

from __future__ import annotations

from ketamine_cbf._docs import docdict, register

register({
    "receptors": """receptors : list of str
    PET maps to compare with (names of :data:`ketamine_cbf.study.RECEPTORS`).""",
    "cortical_atlas": """cortical_atlas : {"schaefer200", "schaefer400", "none"}
    Cortical parcellation (:footcite:t:`schaefer2018`, 7 networks, shipped).""",
    "subcortical_atlas": """subcortical_atlas : {"harvard_oxford", "none"}
    Subcortical structures added to the atlas (14 Harvard-Oxford structures).""",
    "subcortical_threshold": """subcortical_threshold : float
    Probability (%) from which a voxel takes its most probable Harvard-Oxford label.""",
    "min_parcel_voxels": """min_parcel_voxels : int
    Parcels with fewer voxels inside the brain mask are dropped.""",
    "null_models": """null_models : list of {"variogram", "moran"}
    Spatial null models: variogram-matched surrogates :footcite:p:`burt2020` and Moran
    spectral randomisation :footcite:p:`wagner2015`.""",
    "n_nulls": """n_nulls : int
    Null maps per group ΔCBF map and null model (p resolution ``1 / (n_nulls + 1)``).""",
    "null_hemispheres": """null_hemispheres : {"joint", "separate"}
    ``joint``: null maps over the whole brain (one distance matrix); ``separate``: null
    maps generated independently within each hemisphere.""",
    "variogram_options": """variogram_options : dict
    Options of the variogram null model (brainsmash's ``deltas``, ``pv``, ...); see
    :data:`ketamine_cbf.receptors.nulls.VARIOGRAM_OPTIONS`.""",
    "methods": """methods : list of {"spearman", "pearson"}
    Correlation measures across parcels; the first is the primary one.""",
    "receptors.method": """method : {"spearman", "pearson"}
    Correlation measure (Spearman: Pearson correlation of average ranks).""",
    "n_subject_nulls": """n_subject_nulls : int
    Null maps per PET map and null model for the subject-level (JuSpace) test.""",
    "n_sim_maps": """n_sim_maps : int
    Random smooth maps of the false-positive check.""",
    "sim_alpha": """sim_alpha : list of float
    Spectral exponents of the random maps (power spectrum ``|k|^-alpha``; 0: white noise),
    assigned to the maps in turn.""",
    "n_sim_nulls": """n_sim_nulls : int
    Null maps per random map and null model in the false-positive check.""",
    "sim_target": """sim_target : str
    PET map the random maps are tested against.""",
    "receptors.nominal_alpha": """nominal_alpha : float
    Level at which one test rejects (``p <= nominal_alpha``): a valid test's
    false-positive rate.""",
    "receptors.subject_maps": """subject_maps : pandas.DataFrame
    Parcellated subject ΔCBF maps: index ``(participant_id, contrast)``, one column per
    parcel.""",
    "receptors.pet": """pet : pandas.DataFrame
    Parcellated PET maps: parcels x PET maps.""",
    "receptors.inputs": """inputs : ketamine_cbf.receptors.pipeline.Inputs
    The parcellated maps and atlas returned by
    :func:`ketamine_cbf.receptors.pipeline.parcellate_inputs`.""",
})

# The null-map settings that every step drawing null maps takes, in signature order.
register({"receptors.null_settings": "\n".join(
    docdict[k] for k in ("null_models", "variogram_options", "seed"))})
