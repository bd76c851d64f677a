"""Stage 3: voxelwise crossover inference with exact, fast permutation FWE.

Modules, in the order of the stage (notebook ``03_voxelwise``):

* :mod:`~ketamine_cbf.voxelwise.contrasts`: subject ΔCBF contrast maps from stage 2's
  ``cbf_maps.tsv`` (exclusions, global normalisation), ``contrasts.tsv``;
* :mod:`~ketamine_cbf.voxelwise.group`: the analysis mask, each contrast's group
  inference and its files, the inference facts;
* :mod:`~ketamine_cbf.voxelwise.permutation`: the sign-flip one-sample test
  (:func:`sign_flip_test`: max-T, TFCE, cluster extent/mass FWE) and its p-value rules;
* :mod:`~ketamine_cbf.voxelwise.signflips`: the sign flips (nilearn's draw, all of them)
  and each contrast's seed;
* :mod:`~ketamine_cbf.voxelwise.tfce`: threshold-free cluster enhancement in one sorted
  union-find pass (equal to nilearn's);
* :mod:`~ketamine_cbf.voxelwise.connectivity`: voxel neighbour tables, cluster labelling;
* :mod:`~ketamine_cbf.voxelwise.report`: cluster/peak tables with anatomical labels;
* :mod:`~ketamine_cbf.voxelwise.acc`: the ACC subregions' summary and the findings in words;
* :mod:`~ketamine_cbf.voxelwise.figures`: glass brains, slices, null distributions;
* :mod:`~ketamine_cbf.voxelwise.truth`: comparison with a simulation's planted truth;
* :mod:`~ketamine_cbf.voxelwise.nilearn_compat`: drop-ins for nilearn's
  ``permuted_ols`` / ``non_parametric_inference`` and the side-by-side check;
* :mod:`~ketamine_cbf.voxelwise.synthetic`: stage-2-like synthetic inputs for tests,
  benchmarks and the FWE validity check;
* ``_kernels`` (numba kernels) and ``_docs`` (this stage's parameter texts) are private.

Stage 2's outputs are read through :mod:`ketamine_cbf.io.derivatives`
(``read_cbf_maps``, ``template_masks``), as are this stage's own for later stages
(``read_contrasts``, ``group_map_path``).
"""

from ketamine_cbf.voxelwise import (acc, connectivity, contrasts, figures, group,  # noqa: I001
                                    nilearn_compat, permutation, report, signflips, synthetic,
                                    tfce, truth)
from ketamine_cbf.voxelwise.contrasts import compute_contrasts
from ketamine_cbf.voxelwise.group import GroupResult, analysis_mask, group_inference, infer_contrasts
from ketamine_cbf.voxelwise.nilearn_compat import non_parametric_inference, permuted_ols_one_sample
from ketamine_cbf.voxelwise.permutation import sign_flip_test
from ketamine_cbf.voxelwise.tfce import tfce_img

# (the function ``tfce.tfce`` is not re-exported: it would shadow the submodule ``voxelwise.tfce``)
__all__ = ["acc", "connectivity", "contrasts", "figures", "group", "nilearn_compat", "permutation",
           "report", "signflips", "synthetic", "tfce", "truth",
           "compute_contrasts", "GroupResult", "analysis_mask", "group_inference", "infer_contrasts",
           "non_parametric_inference", "permuted_ols_one_sample", "sign_flip_test", "tfce_img"]
