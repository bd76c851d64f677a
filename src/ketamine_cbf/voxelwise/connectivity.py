"""Voxel neighbourhood graphs and connected components on a masked grid.

Cluster inference and TFCE need, for every in-mask voxel, its neighbours on the
3-D grid. nilearn labels clusters with ``scipy.ndimage.label`` and the structuring
element ``generate_binary_structure(3, 1)`` (faces only: 6-connectivity) on the
whole volume, with out-of-mask voxels as background; :func:`grid_neighbours`
builds exactly that graph (or the 18/26-connected ones) as an ``(n_voxels, k)``
index table, so the permutation kernels work on the masked vector directly.

Connected components are found with a disjoint-set forest (union by size, path
compression; :footcite:t:`tarjan1975`), the same structure the TFCE kernel uses to build the
component tree in one sorted pass :footcite:p:`najman2006`.

References
----------
.. footbibliography::
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["grid_neighbours", "label_clusters"]

_OFFSETS = {
    6: [(dx, dy, dz) for dx in (-1, 0, 1) for dy in (-1, 0, 1) for dz in (-1, 0, 1)
        if abs(dx) + abs(dy) + abs(dz) == 1],
    18: [(dx, dy, dz) for dx in (-1, 0, 1) for dy in (-1, 0, 1) for dz in (-1, 0, 1)
         if 0 < abs(dx) + abs(dy) + abs(dz) <= 2],
    26: [(dx, dy, dz) for dx in (-1, 0, 1) for dy in (-1, 0, 1) for dz in (-1, 0, 1)
         if (dx, dy, dz) != (0, 0, 0)],
}


def grid_neighbours(mask: np.ndarray, connectivity: int = 6) -> np.ndarray:
    """Return the neighbour table of the in-mask voxels of a 3-D grid.

    Parameters
    ----------
    mask : numpy.ndarray of bool, shape (X, Y, Z)
        In-mask voxels. Their order in the returned table is C order
        (``mask[mask]``), the order of ``nilearn.masking.apply_mask``.
    connectivity : {6, 18, 26}
        Neighbourhood: faces (6, nilearn's and FSL's default for TFCE and
        clusters), faces + edges (18) or faces + edges + corners (26).

    Returns
    -------
    numpy.ndarray of int32, shape (n_voxels, connectivity)
        ``table[v, j]`` is the masked index of the ``j``-th neighbour of voxel
        ``v``, or -1 where that neighbour is outside the mask or the grid.

    Raises
    ------
    ValueError
        ``mask`` not 3-D or an unknown ``connectivity``.

    Examples
    --------
    >>> import numpy as np
    >>> grid_neighbours(np.ones((3, 1, 1), bool)).tolist()
    [[-1, -1, -1, -1, -1, 1], [0, -1, -1, -1, -1, 2], [1, -1, -1, -1, -1, -1]]
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 3:
        raise ValueError(f"mask must be 3-D (got shape {mask.shape})")
    if connectivity not in _OFFSETS:
        raise ValueError(f"connectivity must be 6, 18 or 26 (got {connectivity})")
    index = np.full(mask.shape, -1, dtype=np.int64)
    index[mask] = np.arange(int(mask.sum()))
    padded = np.pad(index, 1, constant_values=-1)
    coords = np.argwhere(mask) + 1
    table = np.empty((coords.shape[0], connectivity), dtype=np.int32)
    for j, (dx, dy, dz) in enumerate(_OFFSETS[connectivity]):
        table[:, j] = padded[coords[:, 0] + dx, coords[:, 1] + dy, coords[:, 2] + dz]
    return table


@njit(cache=True)
def _find(parent, x):
    root = x
    while parent[root] != root:
        root = parent[root]
    while parent[x] != root:
        nxt = parent[x]
        parent[x] = root
        x = nxt
    return root


@njit(cache=True)
def _label_kernel(member, sign, neighbours, labels):
    """Label 0 outside ``member``; components 1..n (first voxel order) inside."""
    n = member.size
    parent = np.arange(n)
    for v in range(n):
        if not member[v]:
            continue
        for j in range(neighbours.shape[1]):
            u = neighbours[v, j]
            if u < 0 or u > v or not member[u] or sign[u] != sign[v]:
                continue
            ru = _find(parent, u)
            rv = _find(parent, v)
            if ru != rv:
                if ru < rv:
                    parent[rv] = ru
                else:
                    parent[ru] = rv
    root_label = np.zeros(n, dtype=np.int64)
    n_labels = 0
    for v in range(n):
        if not member[v]:
            labels[v] = 0
            continue
        r = _find(parent, v)
        if root_label[r] == 0:
            n_labels += 1
            root_label[r] = n_labels
        labels[v] = root_label[r]
    return n_labels


def label_clusters(values: np.ndarray, neighbours: np.ndarray, threshold: float,
                   two_sided: bool = True) -> tuple[np.ndarray, int]:
    """Label supra-threshold clusters of a masked statistic vector.

    A voxel belongs to a cluster when ``values > threshold`` (or, with
    ``two_sided``, ``values < -threshold``); positive and negative voxels never
    share a cluster. This is nilearn's cluster definition
    (``nilearn.mass_univariate.permuted_ols``: ``|t| > threshold`` labelled per sign).

    Parameters
    ----------
    values : numpy.ndarray, shape (n_voxels,)
        Statistic in masked order.
    neighbours : numpy.ndarray of int32, shape (n_voxels, k)
        From :func:`grid_neighbours`.
    threshold : float
        Cluster-forming threshold (strict inequality), >= 0.
    two_sided : bool
        Also form clusters of ``values < -threshold``.

    Returns
    -------
    labels : numpy.ndarray of int64, shape (n_voxels,)
        0 outside clusters, 1..n in order of each cluster's first voxel.
    n_clusters : int

    Examples
    --------
    >>> import numpy as np
    >>> labels, n = label_clusters(np.array([3.0, 2.5, 0.0, -4.0, 5.0]),
    ...                            grid_neighbours(np.ones((5, 1, 1), bool)), 2.0)
    >>> labels.tolist(), n
    ([1, 1, 0, 2, 3], 3)
    """
    values = np.asarray(values, dtype=np.float64)
    member = values > threshold
    if two_sided:
        member |= values < -threshold
    sign = np.sign(values).astype(np.int8)
    labels = np.zeros(values.size, dtype=np.int64)
    n = _label_kernel(member, sign, np.ascontiguousarray(neighbours, dtype=np.int32), labels)
    return labels, int(n)
