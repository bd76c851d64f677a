"""Parameter texts used only by stage 3 (registered once in :data:`ketamine_cbf._docs.docdict`).

The names are the notebook ``03_voxelwise``'s parameters; functions of this package
document them with ``%(name)s`` lines (:func:`ketamine_cbf._docs.fill_doc`).
"""

from __future__ import annotations

from ketamine_cbf._docs import register

__all__: list[str] = []

register({
    "tfce": """tfce : bool
    Threshold-free cluster enhancement and its FWE p-values (:footcite:t:`smith2009`;
    E = 0.5, H = 2, 100 steps unless given).""",
    "two_sided": """two_sided : bool
    Test increases and decreases (maxima of ``|t|``, ``|TFCE|``, clusters of both signs);
    False: increases only.""",
    "smoothed": """smoothed : bool
    Use stage 2's smoothed CBF maps (``cbf_smooth``); False: the unsmoothed ``cbf`` maps.""",
    "global_normalise": """global_normalise : {"proportional", "additive", "none"}
    Global-CBF normalisation of each scan before the subtraction (see
    :mod:`ketamine_cbf.voxelwise.contrasts`).""",
    "covariates": """covariates : sequence of str
    Nuisance covariates of the sign-flip model (Freedman-Lane); supported: ``"order"``
    (the effect-coded crossover sequence).""",
    "cluster_forming_p": """cluster_forming_p : float or None
    Uncorrected p of the cluster-forming threshold (two-sided when the test is); None:
    no cluster inference.""",
    "table_method": """table_method : {"tfce", "maxT", "cluster mass", "cluster size"}
    The evidence (FWE p map) used for tables, figures and sentences.""",
    "acc_definition": """acc_definition : {"harvard_oxford", "spheres"}
    Definition of the ACC subregions (:func:`ketamine_cbf.reference.rois.define_rois`).""",
    "nilearn_check_perm": """nilearn_check_perm : int
    Permutations of the side-by-side run against nilearn (0: skip it).""",
    "n_threads": """n_threads : int or None
    numba threads over permutations (None: numba's setting). Results do not depend on it.""",
    "results": """results : dict of str to GroupResult
    One :class:`~ketamine_cbf.voxelwise.group.GroupResult` per contrast, in display
    order.""",
})
