"""Cluster/peak tables with anatomical labels, and the choice of FWE map."""

import numpy as np
import pandas as pd
import pytest

from ketamine_cbf.errors import UsageError
from ketamine_cbf.study import CONTRASTS
from ketamine_cbf.voxelwise import report


def test_cluster_table_labels_the_acc(study):
    _, _, _, results = study
    r = results["ket_pooled"]
    tab = report.cluster_table(r.img("t"), r.img("logp_max_tfce"), mean_img=r.img("mean"), method="tfce")
    assert len(tab) > 0 and (tab["p_fwe"] < 0.05).all() and (tab["direction"] == "increase").all()
    assert list(tab.columns) == report.CLUSTER_COLUMNS
    top = tab.sort_values("t", ascending=False).groupby("cluster").head(1)
    near = top[top["acc_region"] != ""]
    assert len(near) >= 2
    assert near["harvard_oxford"].str.contains("Cingulate|Subcallosal|Paracingulate|Frontal Medial").all()
    # peaks of a cluster are at least 8 mm apart
    for _, peaks in tab.groupby("cluster"):
        xyz = peaks[["x", "y", "z"]].to_numpy()
        d = np.linalg.norm(xyz[:, None] - xyz[None], axis=-1)
        assert (d[np.triu_indices(len(xyz), 1)] >= 8.0).all()


def test_cluster_tables_stack_the_contrasts(study):
    _, _, _, results = study
    tab = report.cluster_tables(results, "tfce", 0.05)
    assert tab.columns[0] == "contrast" and set(tab["contrast"]) <= set(CONTRASTS)
    assert "interaction" not in set(tab["contrast"])   # nothing planted, nothing found
    one = report.cluster_table(results["ket_placebo"].img("t"), results["ket_placebo"].img("logp_max_tfce"),
                               mean_img=results["ket_placebo"].img("mean"), method="tfce")
    mine = tab[tab["contrast"] == "ket_placebo"].drop(columns="contrast").reset_index(drop=True)
    pd.testing.assert_frame_equal(mine, one, check_dtype=False)


def test_atlas_label_at_known_coordinates():
    assert "Subcallosal" in report.atlas_label((0, 24, -10), "harvard_oxford")
    assert "Cingulate" in report.atlas_label((4, 18, 34), "harvard_oxford")
    assert report.atlas_label((0, 0, 200), "aal") == "no label"


def test_check_method():
    assert report.check_method("maxT", False, None) == "maxT"
    with pytest.raises(UsageError, match="table_method must be one of"):
        report.check_method("fdr")
    with pytest.raises(UsageError, match="tfce = True"):
        report.check_method("tfce", tfce=False)
    with pytest.raises(UsageError, match="cluster_forming_p"):
        report.check_method("cluster mass", cluster_forming_p=None)
