"""Tests of ketamine_cbf.receptors.false_positives: random smooth maps and the tests' error rates."""

import numpy as np
import pytest

from ketamine_cbf.errors import UsageError
from ketamine_cbf.receptors import false_positives, nulls


def test_false_positive_check(study, group_analysis):
    """Smooth random maps: the naive test over-rejects, the Moran null does not."""
    atlas, pet, D = study["atlas"], study["pet"], group_analysis["D"]
    S, al = false_positives.random_smooth_maps(atlas, 160, [0.0, 3.0], seed=5)
    assert S.shape == (160, len(atlas)) and set(al) == {0.0, 3.0}
    # the smooth maps are autocorrelated, the white ones are not
    W = nulls.moran_weights(D)
    mi = np.array([(s @ W @ s) / (s @ s) / W.sum() * len(s) for s in S])
    assert mi[al == 3].mean() > 5 * abs(mi[al == 0].mean())
    per = false_positives.false_positive_rates(S, pet["MOR"].to_numpy(), D, ("moran",), 200, labels=al, seed=1)
    fpr = false_positives.summarise_false_positives(per, by=("label", "test")).set_index(["label", "test"])
    assert fpr.loc[(3.0, "naive"), "fpr"] > 0.2            # inflated
    assert fpr.loc[(3.0, "moran"), "ci_low"] < 0.05         # consistent with nominal
    assert fpr.loc[(3.0, "moran"), "fpr"] < fpr.loc[(3.0, "naive"), "fpr"] / 2
    assert fpr.loc[(0.0, "naive"), "ci_low"] < 0.05          # white noise: naive is fine
    assert (fpr.ci_low <= fpr.fpr).all() and (fpr.fpr <= fpr.ci_high).all()
    wide = false_positives.rates_by_exponent(fpr.reset_index())
    assert list(wide.columns) == ["spectral_exponent", "naive", "moran"]
    assert wide.set_index("spectral_exponent").loc[3.0, "naive"] == fpr.loc[(3.0, "naive"), "fpr"]


def test_random_maps_reproducible_and_checked(study):
    atlas = study["atlas"]
    a, _ = false_positives.random_smooth_maps(atlas, 3, 2.0, seed=7)
    b, _ = false_positives.random_smooth_maps(atlas, 3, 2.0, seed=7)
    c, _ = false_positives.random_smooth_maps(atlas, 3, 2.0, seed=8)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    np.testing.assert_allclose(a.mean(axis=1), 0, atol=1e-12)
    with pytest.raises(UsageError, match="sim_alpha"):
        false_positives.random_smooth_maps(atlas, 3, 6.0, seed=1)
    with pytest.raises(UsageError, match="n_sim_maps"):
        false_positives.random_smooth_maps(atlas, 0, 2.0, seed=1)


def test_summarise_counts_p_at_the_nominal_level():
    import pandas as pd

    per = pd.DataFrame({"method": "spearman", "test": "naive", "p": [0.01, 0.05, 0.051, 0.5]})
    s = false_positives.summarise_false_positives(per, nominal_alpha=0.05).iloc[0]
    assert (s.n_maps, s.n_rejected, s.alpha, s.fpr) == (4, 2, 0.05, 0.5)
