"""The ACC findings: per-subregion summary (spheres and atlas masks) and the sentences."""

import numpy as np

from ketamine_cbf.study import ACC_CENTRES_MNI, ACC_ROIS, CONTRASTS
from ketamine_cbf.voxelwise import acc


def test_planted_acc_effects_are_found_and_interaction_is_not(study):
    _, _, _, results = study
    for c in ("ket_placebo", "ket_naltrexone", "ket_pooled"):
        s = acc.acc_summary(results[c])
        assert (s["n_sig_tfce"] > 0).all(), (c, s)           # all three ACC subregions
        assert (s["peak_t"] > 0).all() and (s["mean_delta_cbf"] > 0).all()
    s = acc.acc_summary(results["interaction"])
    assert (s["n_sig_tfce"] == 0).all() and (s["n_sig_maxT"] == 0).all()


def test_default_spheres_are_the_shared_definition(study):
    """Without masks the summary uses reference.rois' spheres: same voxels as a direct distance."""
    _, _, mask, results = study
    s = acc.acc_summary(results["ket_pooled"], radius=12.0).set_index("region")
    m = np.asarray(mask.dataobj) > 0
    xyz = (mask.affine @ np.c_[np.argwhere(m), np.ones(m.sum())].T).T[:, :3]
    for region, c in ACC_CENTRES_MNI.items():
        assert s.loc[region, "n_voxels"] == int((np.linalg.norm(xyz - np.asarray(c), axis=1) <= 12.0).sum())
        assert s.loc[region, "definition"] == "sphere r = 12 mm"


def test_atlas_rois_table_and_sentences(study):
    _, _, mask, results = study
    masks, definitions = acc.acc_rois(mask, "harvard_oxford")
    assert list(masks) == list(ACC_ROIS) and "genu" in definitions["pgACC"]
    table = acc.acc_table(results, 0.05, rois=masks, definitions=definitions)
    assert list(table["contrast"]) == [c for c in CONTRASTS for _ in ACC_ROIS]
    assert (table["definition"] == table["region"].map(definitions)).all()
    text = acc.describe_contrasts(table, results, "tfce", 0.05)
    items = text.split("\n\n")
    assert len(items) == len(CONTRASTS) and all(i.startswith("* ") for i in items)
    assert acc.CONTRAST_LABELS["interaction"] in text and "No FWE-significant voxel" in text
    r = results["ket_pooled"]
    pooled = acc.describe_acc(acc.acc_summary(r), "Pooled", min_p=r.info["min_p"])
    for region in ACC_CENTRES_MNI:
        assert region in pooled
    assert pooled.startswith("Pooled: FWE-significant voxels (tfce, α = 0.05)")
