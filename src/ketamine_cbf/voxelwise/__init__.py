"""Stage 3: voxelwise crossover inference with exact, fast permutation FWE.

Modules (one concern each):

* :mod:`~ketamine_cbf.voxelwise.contrasts`: subject ΔCBF contrast maps from stage 2's
  ``cbf_maps.tsv`` (exclusions, global normalisation);
* :mod:`~ketamine_cbf.voxelwise.permutation`: sign-flip one-sample tests, max-T, cluster
  extent/mass FWE, nilearn-compatible front ends;
* :mod:`~ketamine_cbf.voxelwise.tfce`: threshold-free cluster enhancement in one sorted
  union-find pass (equal to nilearn's);
* :mod:`~ketamine_cbf.voxelwise.connectivity`: voxel neighbour tables, cluster labelling;
* :mod:`~ketamine_cbf.voxelwise.group`: one contrast's group inference and its files;
* :mod:`~ketamine_cbf.voxelwise.report`: cluster/peak tables with anatomical labels, the
  ACC findings in words, comparison with a simulation's ground truth;
* :mod:`~ketamine_cbf.voxelwise.figures`: glass brains, slices, null distributions;
* :mod:`~ketamine_cbf.voxelwise.synthetic`: stage-2-like synthetic inputs for tests,
  benchmarks and the FWE validity check.
"""

from ketamine_cbf.voxelwise.permutation import (
    non_parametric_inference,
    permuted_ols_one_sample,
    sign_flip_test,
)
from ketamine_cbf.voxelwise.tfce import tfce_img

# (the function ``tfce.tfce`` is not re-exported: it would shadow the submodule ``stats.tfce``)
__all__ = ["non_parametric_inference", "permuted_ols_one_sample", "sign_flip_test", "tfce_img"]
