"""Stage 5: do the ketamine CBF-change maps follow receptor density? (PET map comparisons)

The group ΔCBF maps (ketamine effect per arm and pooled, and the naltrexone x ketamine
interaction) and each subject's ΔCBF map are compared with six PET receptor density maps
(MOR, KOR, NMDA, mGluR5, GABAA, GABAA-α5; :data:`ketamine_cbf.study.RECEPTORS`) across the
parcels of a volumetric atlas, as JuSpace :footcite:p:`dukart2021` and neuromaps
:footcite:p:`markello2022` do: group-level correlations with naive and spatial-null p, JuSpace's
subject-level test, multiple regression with dominance analysis, and a check of the
tests' false-positive rates on random smooth maps. Everything works offline: PET maps and
atlases ship with the project (or inside installed packages); neuromaps is used only as
an independent check in the tests, never its fetchers.

Modules
-------
``pipeline``
    The entry points, one per step of the stage notebook; each computes, writes its
    tables to the stage folder and returns them (:func:`parcellate_inputs`,
    :func:`group_level`, :func:`truth_recovery`, :func:`subject_level`,
    :func:`regression`, :func:`false_positive_check`, :func:`write_summary`).
``parcellate``
    The atlas on the analysis grid (Schaefer cortex + Harvard-Oxford subcortex), parcel
    means, the parcel distance matrix.
``maps``
    The PET maps and stage 3's ΔCBF maps, loaded and parcellated.
``nulls``
    Spatial-autocorrelation-preserving null maps (variogram surrogates,
    :footcite:t:`burt2020`; Moran spectral randomisation, :footcite:t:`wagner2015`),
    vectorised correlations.
``correlations``
    Group level: correlation of each group map with each PET map, naive and null p, FDR.
``juspace``
    JuSpace's subject-level analysis (Fisher z, t-test, PET-map nulls).
``dominance``
    Multiple regression of a map on all PET maps and dominance analysis
    :footcite:p:`azen2003,hansen2022`.
``false_positives``
    Random smooth maps and the false-positive rates of each test :footcite:p:`markello2021`.
``recovery``
    Simulated data: planted receptor loadings against what the tests found.
``figures``
    The stage's figures.
``_variogram``, ``_utils``, ``_docs``
    Private: the brainsmash-equivalent variogram kernel, shared helpers, parameter texts.

References
----------
.. footbibliography::
"""

from ketamine_cbf.receptors.pipeline import (
    FalsePositives, GroupLevel, Inputs, false_positive_check, group_level, parcellate_inputs,
    regression, subject_level, truth_recovery, write_summary,
)

__all__ = ["Inputs", "GroupLevel", "FalsePositives", "parcellate_inputs", "group_level",
           "truth_recovery", "subject_level", "regression", "false_positive_check",
           "write_summary"]
