"""Group inference end to end on a fake stage-2 folder: planted effects found, files, facts."""

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from ketamine_cbf.errors import InputError, UsageError
from ketamine_cbf.io import derivatives
from ketamine_cbf.io.provenance import sha256_file
from ketamine_cbf.study import ACC_CENTRES_MNI, CONTRASTS
from ketamine_cbf.voxelwise import group
from ketamine_cbf.voxelwise.report import significant


def test_every_contrast_is_inferred_with_its_facts(study):
    _, table, _, results = study
    assert list(results) == list(CONTRASTS)
    info = results["ket_pooled"].info
    assert info["n_subjects"] == 12 and info["n_perm"] == 300 and not info["exhaustive"]
    assert info["min_p"] == pytest.approx(1 / 301) and info["dof"] == 11
    facts = group.inference_facts(results, 0.05).set_index("contrast")
    assert list(facts.index) == list(CONTRASTS)
    for c, r in results.items():
        assert facts.loc[c, "crit_t"] == pytest.approx(np.quantile(r.null["max_t"], 0.95))
        assert facts.loc[c, "max_abs_t"] == pytest.approx(np.abs(r.maps["t"]).max())
    assert (facts["crit_cluster_mass"] > 0).all() and (facts["covariates"] == "none").all()


def test_significant_voxels_lie_in_the_planted_blobs(study):
    """Ground truth: FWE-significant voxels (TFCE) of the pooled effect are near ACC centres."""
    _, _, mask, results = study
    r = results["ket_pooled"]
    m = np.asarray(mask.dataobj) > 0
    xyz = (mask.affine @ np.c_[np.argwhere(m), np.ones(m.sum())].T).T[:, :3]
    sig = significant(r.maps["logp_max_tfce"], 0.05)
    d = np.min([np.linalg.norm(xyz[sig] - np.asarray(c), axis=1) for c in ACC_CENTRES_MNI.values()], axis=0)
    assert sig.sum() > 10
    assert np.percentile(d, 95) < 20.0   # blobs have 12 mm FWHM


def test_group_maps_follow_the_contract_and_are_reproducible(study, tmp_path):
    root, table, mask, results = study
    files = group.write_group_maps(results["ket_placebo"], tmp_path / "group")
    names = {f.name for f in files}
    for stat in ("t", "logpFWEmaxT", "tfce", "logpFWEtfce", "clustermass", "logpFWEclustermass"):
        assert f"contrast-ket_placebo_stat-{stat}_statmap.nii.gz" in names
    assert "contrast-ket_placebo_desc-mean_deltacbf.nii.gz" in names
    again = group.group_inference(table[table.contrast == "ket_placebo"], mask, "ket_placebo",
                                  n_perm=300, seed=4)
    files2 = group.write_group_maps(again, tmp_path / "group2")
    assert [sha256_file(a) for a in files] == [sha256_file(b) for b in files2]
    other = group.group_inference(table[table.contrast == "ket_placebo"], mask, "ket_placebo",
                                  n_perm=300, seed=5)
    assert not np.array_equal(other.null["max_t"], again.null["max_t"])


def test_group_maps_are_found_by_the_contracts_reader(study, tmp_path):
    """Stage 5 reads the mean maps through io.derivatives: the names written here are its names."""
    _, _, _, results = study
    for r in results.values():
        group.write_group_maps(r, tmp_path / "voxelwise" / "group")
    means = derivatives.group_mean_maps(tmp_path / "voxelwise")
    assert list(means) == list(CONTRASTS)
    m = np.asarray(results["ket_pooled"].mask_img.dataobj) > 0
    np.testing.assert_allclose(nib.load(means["ket_pooled"]).get_fdata()[m],
                               results["ket_pooled"].maps["mean"], rtol=1e-6)
    for key in derivatives.STAT_NAMES:
        if key in results["ket_pooled"].maps:
            assert derivatives.group_map_path(tmp_path / "voxelwise" / "group", "ket_pooled", key).is_file()


def test_analysis_mask_file_and_description(study, tmp_path):
    _, _, mask, _ = study
    path = group.save_analysis_mask(mask, tmp_path)
    assert path.name == "space-MNI152NLin2009aSym_res-4_desc-analysis_mask.nii.gz"
    text = group.describe_mask(mask, "proportional", 0.3)
    n = int(np.asarray(mask.dataobj).sum())
    assert f"{n} voxels of 4 mm ({n * 64 / 1000:.0f} ml)" in text and ">= 0.3" in text
    with pytest.raises(UsageError, match="mask_gm_threshold"):
        group.analysis_mask(tmp_path, ["x.nii.gz"], mask_gm_threshold=1.0)


def test_order_covariate_coding():
    z = group.order_covariate(pd.Series(["PN", "NP", "PN"]))
    np.testing.assert_array_equal(z[:, 0], [0.5, -0.5, 0.5])
    assert group.order_covariate(pd.Series(["PN", "PN"])) is None
    with pytest.raises(InputError, match="order"):
        group.order_covariate(pd.Series(["PN", "n/a"]))


def test_group_inference_checks_its_inputs(study):
    _, table, mask, _ = study
    rows = table[table.contrast == "ket_pooled"]
    with pytest.raises(UsageError, match="covariate"):
        group.group_inference(rows, mask, "ket_pooled", n_perm=5, covariates=["age"])
    with pytest.raises(InputError, match="at least 2"):
        group.group_inference(rows.iloc[:1], mask, "ket_pooled", n_perm=5)
    with_order = group.group_inference(rows, mask, "ket_pooled", n_perm=5, covariates="order",
                                       tfce=False, cluster_forming_p=None)
    assert with_order.info["covariates"] == ["order"] and with_order.info["dof"] == 10
    assert set(with_order.maps) == {"t", "logp_max_t", "mean", "sd"}
    with pytest.raises(UsageError, match="no 'tfce' map"):
        with_order.img("tfce")
