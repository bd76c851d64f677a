"""Stage 2: spatial normalisation of native CBF maps to the MNI152 template, with measured accuracy.

For every scan, the registration reference of stage 1 (``*_aslref.nii.gz``) is registered to
nilearn's MNI152 ICBM 2009a T1 template with ANTs, the transform carries the CBF map onto the
``resolution`` mm template grid, the map is smoothed, and its mean grey-matter CBF (global
CBF) is measured. Maps already in an MNI space are only resampled. Every registration is
checked (against the ground truth on simulated data; by mask overlap and grey-matter
correlation on any data).

Modules, one job each:

* ``pipeline``: :func:`normalise_dataset`, the stage's entry point: named steps, the cache,
  the output tables (``cbf_maps.tsv``, ``registration_qc.tsv``);
* ``inputs``: input discovery (CBF maps, aslref, T1w) and the design table;
* ``registration``: ANTs registration to the template, transforms (RAS <-> ITK), applying them;
* ``maps``: template-grid masks, resampling, smoothing, global GM CBF;
* ``qc``: registration QC measures, thresholds, flags and summaries;
* ``figures``: QC plots, outline montages, normalised CBF maps;
* ``_worker`` (private): per-scan work in worker processes, the process pool;
* ``_ants`` (private): the ``antsRegistration`` call and ITK's thread count;
* ``_docs`` (private): parameter texts of this stage.
"""

from ketamine_cbf.normalisation import figures, inputs, maps, pipeline, qc, registration
from ketamine_cbf.normalisation.inputs import find_inputs
from ketamine_cbf.normalisation.pipeline import NormalisationResult, normalise_dataset
from ketamine_cbf.normalisation.registration import (
    Registration,
    apply_registration,
    register_to_template,
)

__all__ = ["figures", "inputs", "maps", "pipeline", "qc", "registration",
           "normalise_dataset", "NormalisationResult", "find_inputs", "Registration",
           "register_to_template", "apply_registration"]
