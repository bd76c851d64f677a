"""numba kernels of stage 3: single-pass TFCE, largest cluster, and the permutation null block.

Private: the public entry points are :func:`ketamine_cbf.voxelwise.tfce.tfce` and
:func:`ketamine_cbf.voxelwise.permutation.sign_flip_test`, whose docstrings give the
algorithms and their sources (TFCE as the component tree of the level sets built with a
disjoint-set forest, :footcite:t:`tarjan1975`, :footcite:t:`najman2006`; cluster extent and
mass as in nilearn's ``permuted_ols``).

* :func:`alloc_workspace` / :func:`tfce_kernel`: TFCE of one masked statistic vector, in
  steps: number of thresholds, prefix sums of ``h^H``, level of each voxel, counting sort
  by level, merging from the top level down, and collecting each voxel's sum;
* :func:`cluster_max_kernel`: the largest cluster extent and mass of a thresholded map;
* :func:`null_block`: per sign flip of a block, the maxima of t, TFCE, cluster extent and
  mass (parallel over flips: each flip is computed whole by one thread, so the results do
  not depend on the number of threads);
* :func:`numba_threads`: run a block with a given number of numba threads.

References
----------
.. footbibliography::
"""

from __future__ import annotations

import contextlib

import numba
import numpy as np
from numba import njit, prange

__all__: list[str] = []  # private module: nothing is re-exported


# --------------------------------------------------------------------------- union-find helpers

@njit(cache=True)
def _find_pot(parent, pot, x):
    """Root of ``x``; compress the path keeping ``value = sum of pot to the root``."""
    r = x
    while parent[r] != r:
        r = parent[r]
    if r == x:
        return r
    s = 0.0
    y = x
    while parent[y] != y:
        s += pot[y]
        y = parent[y]
    y = x
    while parent[y] != y:
        nxt = parent[y]
        p = pot[y]
        pot[y] = s
        parent[y] = r
        s -= p
        y = nxt
    return r


@njit(cache=True)
def _level_of(a, step, m, K):
    """Largest k in 1..K with h_k <= a (h_k = k*step, h_K = m), 0 if none."""
    if not a > 0.0:
        return 0
    est = int(a / step)
    if est > K:
        est = K
    while est < K:
        h = m if est + 1 == K else (est + 1) * step
        if h <= a:
            est += 1
        else:
            break
    while est > 0:
        h = m if est == K else est * step
        if h > a:
            est -= 1
        else:
            break
    return est


@njit(cache=True)
def alloc_workspace(n):
    """Integer and float scratch arrays for :func:`tfce_kernel` on ``n`` voxels."""
    iws = np.empty((6, n), dtype=np.int32)   # level, sign, order, parent, size, start
    fws = np.empty(n, dtype=np.float64)      # pot
    return iws, fws


@njit(cache=True, inline="always")
def _extent_weight(size, E):
    if E == 0.5:
        return np.sqrt(np.float64(size))
    return np.float64(size) ** E


# --------------------------------------------------------------------------- TFCE, step by step

@njit(cache=True)
def _max_score(t, two_sided):
    """Largest ``|t|`` (two-sided) or ``t`` (one-sided), at least 0."""
    m = 0.0
    for v in range(t.size):
        a = t[v]
        if two_sided and a < 0:
            a = -a
        if a > m:
            m = a
    return m


@njit(cache=True)
def _n_levels(m, n_steps_fixed, dh):
    """Number of thresholds: fixed, or ``round(m / dh)`` clipped to 10..1000 (nilearn)."""
    if n_steps_fixed > 0:
        return n_steps_fixed
    K = int(round(m / dh))
    if K < 10:
        K = 10
    if K > 1000:
        K = 1000
    return K


@njit(cache=True)
def _prefix_powers(m, K, H):
    """Prefix sums ``P[k] = sum_{j <= k} h_j^H`` (``P[0] = 0``, ``h_K = m``)."""
    step = m / K
    P = np.empty(K + 1, dtype=np.float64)
    P[0] = 0.0
    for k in range(1, K + 1):
        h = m if k == K else k * step
        P[k] = P[k - 1] + h ** H
    return P


@njit(cache=True)
def _assign_levels(t, two_sided, m, K, level, sign):
    """Threshold level and sign of every voxel; return the voxel count per level."""
    step = m / K
    counts = np.zeros(K + 2, dtype=np.int64)
    for v in range(t.size):
        x = t[v]
        if x > 0:
            sign[v] = 1
            lv = _level_of(x, step, m, K)
        elif two_sided and x < 0:
            sign[v] = -1
            lv = _level_of(-x, step, m, K)
        else:
            sign[v] = 0
            lv = 0
        level[v] = lv
        counts[lv] += 1
    return counts


@njit(cache=True)
def _sort_by_level(level, counts, K, order):
    """Counting sort, descending levels: bucket k occupies ``[first[k], first[k] + counts[k])``."""
    first = np.empty(K + 2, dtype=np.int64)
    pos = 0
    for k in range(K, 0, -1):
        first[k] = pos
        pos += counts[k]
    fill = first.copy()
    for v in range(level.size):
        lv = level[v]
        if lv > 0:
            order[fill[lv]] = v
            fill[lv] += 1
    return first, pos


@njit(cache=True)
def _merge_levels(order, first, counts, K, P, neighbours, E, level, sign, parent, size, start, pot):
    """Add the voxels from the top level down, merging components (lazy potentials)."""
    nn = neighbours.shape[1]
    for k in range(K, 0, -1):
        b0 = first[k]
        b1 = b0 + counts[k]
        for i in range(b0, b1):
            v = order[i]
            parent[v] = v
            size[v] = 1
            start[v] = k
            pot[v] = 0.0
        Pk = P[k]
        for i in range(b0, b1):
            v = order[i]
            sv = sign[v]
            rv = _find_pot(parent, pot, v)
            for j in range(nn):
                u = neighbours[v, j]
                if u < 0 or level[u] < k or sign[u] != sv:
                    continue
                ru = _find_pot(parent, pot, u)
                if ru == rv:
                    continue
                # close the current epochs of both components (levels start .. k+1)
                if start[ru] != k:
                    pot[ru] += _extent_weight(size[ru], E) * (P[start[ru]] - Pk)
                    start[ru] = k
                if start[rv] != k:
                    pot[rv] += _extent_weight(size[rv], E) * (P[start[rv]] - Pk)
                    start[rv] = k
                if size[ru] < size[rv]:
                    ru, rv = rv, ru
                parent[rv] = ru
                pot[rv] -= pot[ru]
                size[ru] += size[rv]
                rv = ru


@njit(cache=True)
def _collect(order, n_active, P, E, sign, parent, size, start, pot, out, want_map):
    """Close every component down to level 1; return ``max |TFCE|`` (and the map)."""
    for i in range(n_active):
        v = order[i]
        if parent[v] == v:
            pot[v] += _extent_weight(size[v], E) * P[start[v]]
            start[v] = 0
    best = 0.0
    for i in range(n_active):
        v = order[i]
        r = _find_pot(parent, pot, v)
        val = pot[v] if r == v else pot[v] + pot[r]
        if val > best:
            best = val
        if want_map:
            out[v] = val if sign[v] > 0 else -val
    return best


@njit(cache=True)
def tfce_kernel(t, neighbours, two_sided, E, H, n_steps_fixed, dh, out, want_map, iws, fws):
    """TFCE of one masked statistic vector; return ``max |TFCE|``.

    ``n_steps_fixed > 0``: that many thresholds (``dh="auto"`` -> 100); otherwise
    ``round(max / dh)`` clipped to 10..1000. Writes the signed map to ``out`` when
    ``want_map``. ``iws``/``fws`` come from :func:`alloc_workspace`.
    """
    level, sign, order, parent, size, start = iws[0], iws[1], iws[2], iws[3], iws[4], iws[5]
    m = _max_score(t, two_sided)
    if want_map:
        for v in range(t.size):
            out[v] = 0.0
    if not m > 0.0:
        return 0.0
    K = _n_levels(m, n_steps_fixed, dh)
    P = _prefix_powers(m, K, H)
    counts = _assign_levels(t, two_sided, m, K, level, sign)
    first, n_active = _sort_by_level(level, counts, K, order)
    _merge_levels(order, first, counts, K, P, neighbours, E, level, sign, parent, size, start, fws)
    return _collect(order, n_active, P, E, sign, parent, size, start, fws, out, want_map)


# --------------------------------------------------------------------------- clusters

@njit(cache=True)
def cluster_max_kernel(t, neighbours, two_sided, thr, iws, fws):
    """Largest cluster size and mass of ``t`` thresholded at ``|t| > thr`` (connectivity by table)."""
    n = t.size
    sign = iws[1]
    parent = iws[3]
    size = iws[4]
    mass = fws
    for v in range(n):
        x = t[v]
        if x > thr:
            sign[v] = 1
        elif two_sided and x < -thr:
            sign[v] = -1
        else:
            sign[v] = 0
        parent[v] = v
        size[v] = 1
        mass[v] = (x if x > 0 else -x) - thr
    nn = neighbours.shape[1]
    for v in range(n):
        sv = sign[v]
        if sv == 0:
            continue
        for j in range(nn):
            u = neighbours[v, j]
            if u < 0 or u > v or sign[u] != sv:
                continue
            ru = u
            while parent[ru] != ru:
                parent[ru] = parent[parent[ru]]
                ru = parent[ru]
            rv = v
            while parent[rv] != rv:
                parent[rv] = parent[parent[rv]]
                rv = parent[rv]
            if ru == rv:
                continue
            if size[ru] < size[rv]:
                ru, rv = rv, ru
            parent[rv] = ru
            size[ru] += size[rv]
            mass[ru] += mass[rv]
    max_size = 0
    max_mass = 0.0
    for v in range(n):
        if sign[v] != 0 and parent[v] == v:
            if size[v] > max_size:
                max_size = size[v]
            if mass[v] > max_mass:
                max_mass = mass[v]
    return max_size, max_mass


# --------------------------------------------------------------------------- the null block

@njit(parallel=True, cache=True)
def null_block(beta, a2, dof_factor, neighbours, two_sided, do_tfce, E, H, n_fixed, dh,
               do_cluster, thr, h_t, h_tfce, h_size, h_mass, offset, n_chunks):
    """Maxima of t, TFCE, cluster size and mass for each row of a block of flips.

    Without covariates ``t = b sqrt(dof / (1 - b^2))`` is increasing in ``b``, so
    when only max-T is wanted the row maximum of ``b`` (``|b|``) is transformed
    once instead of every voxel's ``b``.
    """
    n_rows, n_vox = beta.shape
    has_a2 = a2.shape[0] > 0
    fast = not (do_tfce or do_cluster or has_a2)
    for c in prange(n_chunks):
        if fast:
            for p in range(c, n_rows, n_chunks):
                mx = -np.inf
                for v in range(n_vox):
                    b = beta[p, v]
                    if two_sided and b < 0:
                        b = -b
                    if b > mx:
                        mx = b
                h_t[offset + p] = mx * np.sqrt(dof_factor / (1.0 - mx * mx))
            continue
        iws, fws = alloc_workspace(n_vox)
        trow = np.empty(n_vox, dtype=np.float64)
        dummy = np.empty(0, dtype=np.float64)
        for p in range(c, n_rows, n_chunks):
            mx = -np.inf
            for v in range(n_vox):
                b = beta[p, v]
                if has_a2:
                    rss = 1.0 - a2[p, v] - b * b
                else:
                    rss = 1.0 - b * b
                tv = b * np.sqrt(dof_factor / rss)
                trow[v] = tv
                val = -tv if (two_sided and tv < 0) else tv
                if val > mx:
                    mx = val
            h_t[offset + p] = mx
            if do_tfce:
                h_tfce[offset + p] = tfce_kernel(trow, neighbours, two_sided, E, H, n_fixed, dh,
                                                 dummy, False, iws, fws)
            if do_cluster:
                s, m = cluster_max_kernel(trow, neighbours, two_sided, thr, iws, fws)
                h_size[offset + p] = s
                h_mass[offset + p] = m


@contextlib.contextmanager
def numba_threads(n):
    """Run the enclosed block with ``n`` numba threads (clipped to the pool), then restore."""
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(max(1, min(int(n), numba.config.NUMBA_NUM_THREADS)))
        yield
    finally:
        numba.set_num_threads(old)
