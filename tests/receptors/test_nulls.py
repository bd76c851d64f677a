"""Tests of ketamine_cbf.receptors.nulls: variogram and Moran null maps, correlations, p-values."""

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import cdist

from ketamine_cbf import stattools
from ketamine_cbf.receptors import nulls
from ketamine_cbf.errors import InputError, UsageError


def _points(n=80, seed=0):
    rng = np.random.default_rng(seed)
    xyz = rng.uniform(-60, 60, (n, 3))
    xyz[:, 0] = np.where(np.arange(n) < n // 2, -np.abs(xyz[:, 0]) - 2, np.abs(xyz[:, 0]) + 2)
    return xyz, cdist(xyz, xyz)


def _smooth_map(xyz, seed=1, length=25.0):
    """A map with strong spatial autocorrelation: smoothed white noise on the points."""
    rng = np.random.default_rng(seed)
    K = np.exp(-cdist(xyz, xyz) ** 2 / (2 * length ** 2))
    return K @ rng.standard_normal(len(xyz))


def _morans_i(x, W):
    z = x - x.mean()
    return len(x) / W.sum() * (z @ W @ z) / (z @ z)


@pytest.mark.parametrize("resample", [False, True])
def test_fast_variogram_equals_brainsmash(resample):
    xyz, D = _points()
    x = _smooth_map(xyz)
    kw = dict(resample=resample, batch_size=40, deltas=np.linspace(0.1, 0.9, 9))
    ref = nulls.variogram_surrogates(x, D, 100, random_state=7, engine="brainsmash", **kw)
    fast = nulls.variogram_surrogates(x, D, 100, random_state=7, engine="fast", **kw)
    assert ref.shape == fast.shape == (100, len(x))
    np.testing.assert_allclose(fast, ref, rtol=0, atol=1e-8)


def test_fast_variogram_equals_brainsmash_other_kernel_and_pv():
    xyz, D = _points(60, seed=3)
    x = _smooth_map(xyz, seed=4)
    kw = dict(kernel="gaussian", pv=60, nh=15, deltas=np.array([0.05, 0.2, 0.4]), batch_size=25)
    np.testing.assert_allclose(nulls.variogram_surrogates(x, D, 60, 2, engine="fast", **kw),
                               nulls.variogram_surrogates(x, D, 60, 2, engine="brainsmash", **kw),
                               atol=1e-8)


def test_variogram_surrogates_keep_autocorrelation():
    xyz, D = _points(120, seed=5)
    x = _smooth_map(xyz, seed=6)
    W = nulls.moran_weights(D)
    surr = nulls.variogram_surrogates(x, D, 200, random_state=1)
    i_map = _morans_i(x, W)
    i_surr = np.array([_morans_i(s, W) for s in surr])
    perm = np.random.default_rng(0).permuted(np.tile(x, (200, 1)), axis=1)
    i_perm = np.array([_morans_i(s, W) for s in perm])
    # surrogates are far more autocorrelated than permutations, comparable to the map
    assert np.median(i_surr) > 0.5 * i_map
    assert np.median(i_surr) > np.percentile(i_perm, 99)
    # and not copies of the map
    assert np.median(np.abs(nulls.correlate(surr, x)[:, 0])) < 0.5


def test_moran_surrogates_preserve_mean_variance_and_morans_i():
    xyz, D = _points(70, seed=8)
    x = _smooth_map(xyz, seed=9) + 3.0
    W = nulls.moran_weights(D)
    surr = nulls.moran_surrogates(x, D, 50, random_state=4)
    np.testing.assert_allclose(surr.mean(axis=1), x.mean(), atol=1e-8)
    np.testing.assert_allclose(surr.std(axis=1, ddof=1), x.std(ddof=1), rtol=1e-9)
    np.testing.assert_allclose([_morans_i(s, W) for s in surr], _morans_i(x, W), rtol=1e-9)
    assert np.abs(nulls.correlate(surr, x)[:, 0]).mean() < 0.6


def test_groups_generate_within_group():
    xyz, D = _points(60, seed=10)
    x = _smooth_map(xyz, seed=11)
    g = np.where(xyz[:, 0] < 0, "L", "R")
    surr = nulls.variogram_surrogates(x, D, 30, random_state=3, resample=True, groups=g)
    for lab in ("L", "R"):
        sel = g == lab
        # resampled surrogates of a block are permutations of that block's values
        np.testing.assert_allclose(np.sort(surr[:, sel], axis=1), np.tile(np.sort(x[sel]), (30, 1)))
    msurr = nulls.moran_surrogates(x, D, 30, random_state=3, groups=g)
    for lab in ("L", "R"):
        np.testing.assert_allclose(msurr[:, g == lab].mean(axis=1), x[g == lab].mean(), atol=1e-8)


def test_seeds_are_reproducible_and_distinct():
    xyz, D = _points(50)
    x = _smooth_map(xyz)
    a = nulls.generate_nulls(x, D, "variogram", 20, 5)
    np.testing.assert_array_equal(a, nulls.generate_nulls(x, D, "variogram", 20, 5))
    assert not np.allclose(a, nulls.generate_nulls(x, D, "variogram", 20, 6))
    m = nulls.generate_nulls(x, D, "moran", 20, 5)
    np.testing.assert_array_equal(m, nulls.generate_nulls(x, D, "moran", 20, 5))
    # BrainSpace gets the integer seed itself: the same nulls as a RandomState of that seed
    np.testing.assert_array_equal(m, nulls.moran_surrogates(x, D, 20, 5))


def test_make_nulls_seeds_come_from_int_seed():
    """Merged twin: each null set's seed is stattools.int_seed(seed, 5, key, map, model)."""
    import pandas as pd

    xyz, D = _points(40)
    maps = pd.DataFrame({"a": _smooth_map(xyz, 1), "b": _smooth_map(xyz, 2)})
    out = nulls.make_nulls(maps, D, ("variogram", "moran"), 15, seed=9, key="group")
    assert list(out) == [("a", "variogram"), ("a", "moran"), ("b", "variogram"), ("b", "moran")]
    for (name, model), v in out.items():
        expected = nulls.generate_nulls(maps[name].to_numpy(), D, model, 15,
                                        stattools.int_seed(9, 5, "group", name, model))
        np.testing.assert_array_equal(v, expected)
    # another family of null sets, or another map name, gets another stream
    other = nulls.make_nulls(maps, D, ("moran",), 15, seed=9, key="pet")
    assert not np.allclose(other[("a", "moran")], out[("a", "moran")])
    # a DataFrame distance matrix is aligned to the maps' parcels
    Ddf = pd.DataFrame(D, index=maps.index, columns=maps.index).iloc[::-1, ::-1]
    again = nulls.make_nulls(maps, Ddf, ("moran",), 15, seed=9, key="group")
    np.testing.assert_array_equal(again[("a", "moran")], out[("a", "moran")])


def test_seed_keys_do_not_collide_across_boundaries():
    """The old derive_seed hashed the concatenated bytes: ("ab", "c") == ("a", "bc"). int_seed does not."""
    assert stattools.int_seed(1, 5, "ab", "c") != stattools.int_seed(1, 5, "a", "bc")
    assert stattools.int_seed(1, 5, "group", "MOR", "moran") != stattools.int_seed(1, 5, "groupMOR", "moran")
    assert stattools.int_seed(1, 5, "group", "MOR") != stattools.int_seed(1, 5, "group", "KOR")
    assert stattools.int_seed(1, 5, "a") == stattools.int_seed(1, 5, "a")
    assert 1 <= stattools.int_seed(1, 5, "fpr", 3, "moran") < 2 ** 31 - 1


@pytest.mark.parametrize("method", ["spearman", "pearson"])
def test_correlate_matches_scipy(method):
    rng = np.random.default_rng(0)
    A = rng.standard_normal((5, 40))
    B = rng.standard_normal((3, 40))
    A[0, :5] = A[0, 0]  # ties
    ref_fn = stats.spearmanr if method == "spearman" else stats.pearsonr
    ref = np.array([[ref_fn(a, b)[0] for b in B] for a in A])
    np.testing.assert_allclose(nulls.correlate(A, B, method), ref, atol=1e-12)
    np.testing.assert_allclose(nulls.null_correlations(A, B.T, method), ref, atol=1e-12)


def test_null_pvalue_definition():
    """Merged twin: the stage's null p is stattools.monte_carlo_p (the old null_pvalue's formula)."""
    p_of = stattools.monte_carlo_p
    null = np.array([0.1, -0.5, 0.3, -0.2])
    assert p_of(0.25, null) == pytest.approx((1 + 2) / 5)
    assert p_of(-0.25, null) == pytest.approx((1 + 2) / 5)
    assert p_of(0.9, null) == pytest.approx(1 / 5)          # never 0
    assert p_of(0.3, null) == pytest.approx(3 / 5)          # ties count
    assert p_of(0.3 * (1 + 1e-13), null) == pytest.approx(3 / 5)  # up to rounding
    assert p_of(0.25, null, "greater") == pytest.approx(2 / 5)
    np.testing.assert_allclose(p_of(np.array([0.25, 0.9]), np.column_stack([null, null])),
                               [3 / 5, 1 / 5])


@pytest.mark.parametrize("metric", ["pearsonr", "spearmanr"])
def test_pvalue_matches_neuromaps_with_precomputed_nulls(metric):
    """Independent reference: neuromaps' compare_images with the same nulls.

    neuromaps 0.0.7 correlates *unranked* nulls with the ranked target for Spearman
    (netneurolab/neuromaps PR #224); giving it ranked nulls makes it compute the
    Spearman null distribution, which must then equal ours.
    """
    from neuromaps.stats import compare_images

    xyz, D = _points(90, seed=12)
    x = _smooth_map(xyz, seed=13) + 5
    y = 0.3 * x + _smooth_map(xyz, seed=14) + 5
    nm = nulls.moran_surrogates(x, D, 300, random_state=1)
    method = metric[:-1]
    given = nulls.rank_rows(nm) if method == "spearman" else nm
    r_ref, p_ref = compare_images(x, y, metric=metric, nulls=given.T, ignore_zero=False)
    r = nulls.correlate(x, y, method)[0, 0]
    p = stattools.monte_carlo_p(r, nulls.null_correlations(nm, y, method)[:, 0])
    assert r == pytest.approx(r_ref, abs=1e-10)
    assert p == pytest.approx(p_ref, abs=1e-12)


def test_semivariogram_by_hand():
    D = np.array([[0, 1, 2], [1, 0, 3], [2, 3, 0]], float)
    x = np.array([0.0, 1.0, 3.0])
    h, g = nulls.semivariogram(x, D, n_bins=3, max_distance=3.0001)
    np.testing.assert_allclose(g, [0.5 * 1, 0.5 * 9, 0.5 * 4])
    assert h.shape == (3,)


def test_bad_inputs():
    xyz, D = _points(20)
    x = _smooth_map(xyz)
    bad = x.copy()
    bad[3] = np.nan
    with pytest.raises(InputError, match="NaN"):
        nulls.variogram_surrogates(bad, D, 5)
    with pytest.raises(InputError, match="distance matrix shape"):
        nulls.moran_surrogates(x, D[:10, :10], 5)
    with pytest.raises(InputError, match="constant"):
        nulls.moran_surrogates(np.ones(20), D, 5)
    with pytest.raises(UsageError, match="unknown null model"):
        nulls.generate_nulls(x, D, "spin", 5, 0)
    with pytest.raises(UsageError, match="engine"):
        nulls.variogram_surrogates(x, D, 5, engine="gpu")
    D2 = D.copy()
    D2[0, 1] = 0
    D2[1, 0] = 0
    with pytest.raises(InputError, match="distance 0"):
        nulls.moran_weights(D2)


def test_mem_matches_brainspace_compute_mem():
    """Our float64 Moran eigenvectors span the same leading components as BrainSpace's."""
    from brainspace.null_models.moran import compute_mem

    xyz, D = _points(60, seed=15)
    ours = nulls._mem(D)
    ref, _ = compute_mem(nulls.moran_weights(D), spectrum="nonzero", tol=1e-3)
    assert ours.shape == (60, 59)
    np.testing.assert_allclose(ours.T @ ours, np.eye(59), atol=1e-10)
    np.testing.assert_allclose(ours.sum(axis=0), 0, atol=1e-10)
    # leading eigenvectors agree up to sign (float32 precision of BrainSpace)
    dots = np.abs(np.sum(ours[:, :10] * ref[:, :10], axis=0))
    assert np.all(dots > 0.999)
