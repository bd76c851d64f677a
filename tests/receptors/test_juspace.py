"""Tests of ketamine_cbf.receptors.juspace: JuSpace's subject-level test and its spatial nulls."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ketamine_cbf.receptors import juspace, maps, nulls, parcellate
from ketamine_cbf.study import CONTRASTS


def test_subject_level(study, group_analysis):
    atlas, pet = study["atlas"], study["pet"]
    subj = maps.subject_maps_table(study["vox"], list(CONTRASTS))
    sub_maps = parcellate.parcel_means(list(subj.path), atlas).T
    sub_maps.index = pd.MultiIndex.from_frame(subj[["participant_id", "contrast"]])
    pet_nulls = nulls.make_nulls(pet[["MOR", "KOR"]], group_analysis["D"], ["moran"], 300, seed=1, key="pet")
    res = juspace.subject_level_tests(sub_maps, pet, pet_nulls)
    assert list(res.columns) == juspace.TEST_COLUMNS
    # independent computation of the t-test on Fisher z
    sub = sub_maps.xs("interaction", level=1)
    z = np.arctanh([stats.spearmanr(row, pet["MOR"])[0] for _, row in sub.iterrows()])
    t_ref = stats.ttest_1samp(z, 0)
    row = res[(res.contrast == "interaction") & (res.receptor == "MOR") & (res.test == "t")].iloc[0]
    assert row.t == pytest.approx(t_ref.statistic) and row.p == pytest.approx(t_ref.pvalue)
    assert row.mean_z == pytest.approx(z.mean()) and row.mean_z < 0
    null_row = res[(res.contrast == "interaction") & (res.receptor == "MOR") & (res.test == "moran")].iloc[0]
    assert null_row.p <= 0.05 and null_row.p >= 1 / 301
    assert set(res.test) == {"t", "moran"}
    # nulls that are copies of the PET map give mean z equal to the observed one: p = 1
    same = {("KOR", "moran"): np.tile(pet["KOR"].to_numpy(), (50, 1))}
    p_same = juspace.subject_level_tests(sub_maps, pet[["KOR"]], same)
    assert np.allclose(p_same[p_same.test == "moran"].p, 1.0)
    # the summary: one row per contrast and PET map, the q of each test side by side
    summ = juspace.summary_table(res)
    assert list(summ.columns) == ["contrast", "receptor", "mean_r", "t", "p_fdr_t", "p_fdr_moran"]
    assert len(summ) == 2 * 6 and summ.p_fdr_moran.isna().sum() == 2 * 4  # nulls of MOR, KOR only
    corr = juspace.subject_correlations(sub_maps, pet, "pearson")
    assert len(corr) == len(sub_maps) * 6 and (corr.method == "pearson").all()
    np.testing.assert_allclose(corr.z, np.arctanh(corr.r))
