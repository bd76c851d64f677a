"""Neighbour tables and cluster labelling on a masked grid: equality with scipy."""

import numpy as np
import pytest
from scipy import ndimage

from ketamine_cbf.voxelwise.connectivity import grid_neighbours, label_clusters


@pytest.mark.parametrize("connectivity", [6, 18, 26])
def test_label_clusters_matches_scipy(connectivity, random_mask, random_field):
    rng = np.random.default_rng(connectivity)
    mask = random_mask(rng)
    vol = np.where(mask, random_field(rng, offset=0.0), 0.0)
    thr = 1.0
    nb = grid_neighbours(mask, connectivity)
    labels, n = label_clusters(vol[mask], nb, thr, two_sided=True)
    struct = ndimage.generate_binary_structure(3, {6: 1, 18: 2, 26: 3}[connectivity])
    pos, n_pos = ndimage.label(vol > thr, struct)
    neg, n_neg = ndimage.label(vol < -thr, struct)
    assert n == n_pos + n_neg > 2
    ref = np.where(pos > 0, pos, np.where(neg > 0, neg + n_pos, 0))[mask]
    # same partition: a bijection between our labels and scipy's
    pairs = set(zip(labels[labels > 0], ref[labels > 0]))
    assert len(pairs) == n
    assert np.array_equal(labels > 0, ref > 0)


def test_grid_neighbours_is_symmetric_and_bounded(random_mask):
    rng = np.random.default_rng(2)
    mask = random_mask(rng)
    nb = grid_neighbours(mask, 6)
    assert nb.shape == (mask.sum(), 6)
    v, j = np.nonzero(nb >= 0)
    u = nb[v, j]
    # every edge appears in both directions
    assert {(a, b) for a, b in zip(v, u)} == {(b, a) for a, b in zip(v, u)}
    with pytest.raises(ValueError):
        grid_neighbours(mask, 8)
