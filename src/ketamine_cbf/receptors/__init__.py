"""Stage 5: do the ketamine CBF-change maps follow receptor density? (PET map comparisons)

The group ΔCBF maps (ketamine effect per arm and pooled, and the naltrexone x ketamine
interaction) and each subject's ΔCBF map are compared with six PET receptor density maps
(MOR, KOR, NMDA, mGluR5, GABAA, GABAA-α5; :data:`ketamine_cbf.study.RECEPTORS`) across the
parcels of a volumetric atlas, as JuSpace (Dukart et al. 2021) and neuromaps (Markello et
al. 2022) do: group-level correlations with naive and spatial-null p, JuSpace's
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
    Spatial-autocorrelation-preserving null maps (variogram surrogates, Burt et al.
    2020; Moran spectral randomisation, Wagner & Dray 2015), vectorised correlations.
``correlations``
    Group level: correlation of each group map with each PET map, naive and null p, FDR.
``juspace``
    JuSpace's subject-level analysis (Fisher z, t-test, PET-map nulls).
``dominance``
    Multiple regression of a map on all PET maps and dominance analysis (Azen & Budescu
    2003; Hansen et al. 2022).
``false_positives``
    Random smooth maps and the false-positive rates of each test (Markello & Misic 2021).
``recovery``
    Simulated data: planted receptor loadings against what the tests found.
``figures``
    The stage's figures.
``_variogram``, ``_utils``, ``_docs``
    Private: the brainsmash-equivalent variogram kernel, shared helpers, parameter texts.

References
----------
Dukart J. et al. (2021). JuSpace: a tool for spatial correlation analyses of magnetic
resonance imaging data with nuclear imaging derived neurotransmitter maps. Hum Brain
Mapp 42:555-566. doi:10.1002/hbm.25244

Markello R. D. et al. (2022). neuromaps: structural and functional interpretation of
brain maps. Nat Methods 19:1472-1479. doi:10.1038/s41592-022-01625-w

Hansen J. Y. et al. (2022). Mapping neurotransmitter systems to the structural and
functional organization of the human neocortex. Nat Neurosci 25:1569-1581.
doi:10.1038/s41593-022-01186-3

Azen R., Budescu D. V. (2003). The dominance analysis approach for comparing predictors
in multiple regression. Psychol Methods 8:129-148. doi:10.1037/1082-989X.8.2.129

Burt J. B. et al. (2020). Generative modeling of brain maps with spatial
autocorrelation. NeuroImage 220:117038. doi:10.1016/j.neuroimage.2020.117038

Wagner H. H., Dray S. (2015). Generating spatially constrained null models for
irregularly spaced data using Moran spectral randomization methods. Methods Ecol Evol
6:1169-1178. doi:10.1111/2041-210X.12407

Markello R. D., Misic B. (2021). Comparing spatial null models for brain maps.
NeuroImage 236:118052. doi:10.1016/j.neuroimage.2021.118052
"""

from ketamine_cbf.receptors.pipeline import (
    FalsePositives, GroupLevel, Inputs, false_positive_check, group_level, parcellate_inputs,
    regression, subject_level, truth_recovery, write_summary,
)

__all__ = ["Inputs", "GroupLevel", "FalsePositives", "parcellate_inputs", "group_level",
           "truth_recovery", "subject_level", "regression", "false_positive_check",
           "write_summary"]
