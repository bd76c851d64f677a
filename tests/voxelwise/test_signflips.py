"""Sign flips: nilearn's draw reproduced, the exhaustive set, and each contrast's seed."""

import numpy as np
import pytest

from ketamine_cbf.errors import UsageError
from ketamine_cbf.study import CONTRASTS
from ketamine_cbf.voxelwise.signflips import (
    contrast_seed,
    draw_sign_flips,
    exhaustive_sign_flips,
    is_exhaustive,
    nilearn_sign_flips,
)


def test_nilearn_sign_flips_are_running_products():
    flips = nilearn_sign_flips(6, 5, random_state=3)
    rng = np.random.RandomState(3)
    chunk = np.random.RandomState(rng.randint(1, np.iinfo(np.int32).max - 1))
    draws = np.stack([chunk.randint(2, size=(6, 1))[:, 0] * 2 - 1 for _ in range(5)])
    np.testing.assert_array_equal(flips, np.cumprod(draws, axis=0))


def test_nilearn_chunks_restart_the_running_product():
    """With 2 chunks the second half is a new RandomState's running product."""
    import joblib

    if joblib.cpu_count() < 2:
        pytest.skip("nilearn caps n_jobs at the CPU count")
    flips = nilearn_sign_flips(5, 6, random_state=7, n_jobs=2)
    rng = np.random.RandomState(7)
    for half in (flips[:3], flips[3:]):
        chunk = np.random.RandomState(rng.randint(1, np.iinfo(np.int32).max - 1))
        draws = np.stack([chunk.randint(2, size=(5, 1))[:, 0] * 2 - 1 for _ in range(3)])
        np.testing.assert_array_equal(half, np.cumprod(draws, axis=0))
    with pytest.raises(UsageError, match="n_jobs"):
        nilearn_sign_flips(5, 6, n_jobs=0)
    assert nilearn_sign_flips(5, 0).shape == (0, 5)


def test_exhaustive_flips_are_every_non_identity_flip():
    flips = exhaustive_sign_flips(7)
    assert flips.shape == (2 ** 7 - 1, 7)
    assert len({tuple(f) for f in flips}) == 2 ** 7 - 1 and not (flips == 1).all(axis=1).any()
    with pytest.raises(UsageError, match="1..24"):
        exhaustive_sign_flips(25)


def test_draw_chooses_exhaustive_when_affordable():
    assert draw_sign_flips(7, 200).shape == (127, 7)          # auto: exhaustive when affordable
    assert draw_sign_flips(7, 100, random_state=0).shape == (100, 7)
    assert draw_sign_flips(7, 10, exhaustive=True).shape == (127, 7)
    np.testing.assert_array_equal(draw_sign_flips(7, 200, random_state=0, exhaustive=False),
                                  nilearn_sign_flips(7, 200, random_state=0))
    assert is_exhaustive(8, 255) and not is_exhaustive(8, 254) and not is_exhaustive(8, 10 ** 6, False)


def test_contrast_seed_is_the_stage_stream_of_the_contrast():
    """The stream ``(seed, 3, contrast index)`` in nilearn's range: the pre-refactor numbers."""
    for seed in (0, 4, 20261126):
        for i, name in enumerate(CONTRASTS):
            expected = int(np.random.default_rng([seed, 3, i]).integers(1, 2 ** 31 - 2))
            assert contrast_seed(seed, name) == expected
        assert contrast_seed(seed, "other") == int(
            np.random.default_rng([seed, 3, len(CONTRASTS)]).integers(1, 2 ** 31 - 2))
    assert len({contrast_seed(1, c) for c in CONTRASTS}) == len(CONTRASTS)
