"""Stage 4: ACC regions of interest, crossover models and brain-behaviour statistics.

Modules, in the order the notebook ``04_roi_clinical`` uses them:

=====================  ===================================================================
``rois``               the ROI definitions (re-export of :mod:`ketamine_cbf.reference.rois`,
                       shared with stage 3): Harvard-Oxford ACC split at the genu, spheres,
                       user atlases and masks, ``plot_rois``
``extraction``         analysis grid, the stage's masks (``define_stage_rois``) and ROI
                       mean CBF of every scan (``measure_rois``)
``truth``              simulated data only: ROI values of the true maps, planted
                       correlations and their recovery
``models``             crossover mixed model and RM ANOVA (``fit_crossover_models``)
``phenotype``          clinical scores matched by ID (``clinical_scores``) and the
                       per-participant measures (``subject_measures``)
``correlations``       per-arm correlations with bootstrap CIs and FDR
                       (``brain_behaviour_correlations``)
``arm_differences``    Zou's CIs and the arm-swap permutation test (``compare_arms``)
``claims``             claims tables and sentences, published values next to ours
``figures``            scatter, forest, ROI CBF and truth figures
``_utils``             private kernels (vectorised r, seed streams, FDR tables)
``_docs``              parameter texts of this stage
=====================  ===================================================================

Stage 2's outputs are read with :mod:`ketamine_cbf.io.derivatives`, the simulated truth with
:mod:`ketamine_cbf.io.groundtruth`.
"""

from ketamine_cbf.reference import rois
from ketamine_cbf.roi_clinical import (arm_differences, claims, correlations, extraction, figures,
                                       models, phenotype, truth)
from ketamine_cbf.roi_clinical.arm_differences import compare_arms
from ketamine_cbf.roi_clinical.claims import claims_table, describe_claims, published_comparison
from ketamine_cbf.roi_clinical.correlations import brain_behaviour_correlations, sensitivity_correlations
from ketamine_cbf.roi_clinical.extraction import define_stage_rois, measure_rois, scans_per_arm
from ketamine_cbf.roi_clinical.models import fit_crossover_models
from ketamine_cbf.roi_clinical.phenotype import clinical_scores, subject_measures
from ketamine_cbf.roi_clinical.truth import read_planted_correlations, truth_roi_values

__all__ = ["rois", "extraction", "truth", "models", "phenotype", "correlations", "arm_differences",
           "claims", "figures", "scans_per_arm", "define_stage_rois", "measure_rois",
           "truth_roi_values", "fit_crossover_models", "clinical_scores", "subject_measures",
           "brain_behaviour_correlations", "compare_arms", "claims_table", "describe_claims",
           "published_comparison", "read_planted_correlations", "sensitivity_correlations"]
