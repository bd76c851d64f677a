"""Private kernel of the variogram null model: brainsmash's generator, vectorised.

:func:`ketamine_cbf.receptors.nulls.variogram_surrogates` is the public entry point; this
module holds the machinery it runs. :class:`_VariogramGeometry` mirrors
``brainsmash.mapgen.base.Base.__init__`` (the map-independent part, cached per distance
matrix), :class:`_VariogramModel` its surrogate generator for one map, and
:func:`_variogram_block` draws a whole set of surrogates in brainsmash's batches, from
brainsmash's own random stream, so that for the same seed and batch size the surrogates
equal brainsmash's (tested to 1e-8). The model is that of :footcite:t:`burt2020`.

References
----------
.. footbibliography::
"""

from __future__ import annotations

import hashlib

import numpy as np

from ketamine_cbf.errors import UsageError

#: brainsmash's hard limit on the batch size (``MAX_ALLOWABLE_BATCH_SIZE``).
MAX_BATCH = 500


class _VariogramGeometry:
    """Map-independent parts of brainsmash's ``Base`` generator for one distance matrix.

    Mirrors ``brainsmash.mapgen.base.Base.__init__`` line by line (same truncation of
    the distance distribution at the ``pv``-th percentile, same ``nh`` variogram
    distances and Gaussian smoothing bandwidth ``b``, same nearest-neighbour sets and
    kernels) and turns each ``delta``'s neighbour smoothing into a dense ``(N, N)``
    weight matrix. Cached per distance matrix and options (see :func:`_geometry`), so
    many maps on one atlas (the false-positive simulation) share it.
    """

    def __init__(self, D, deltas, kernel, pv, nh, b):
        from brainsmash.mapgen.kernels import check_kernel

        n = D.shape[0]
        self.n = n
        self.deltas = np.asarray(deltas, dtype=float)
        if np.any(self.deltas <= 0) or np.any(self.deltas > 1):
            raise UsageError(f"deltas must be in (0, 1] (got {list(deltas)})")
        kern = check_kernel(kernel)
        triu = np.triu_indices(n, k=1)
        u = D[triu]
        uidx = np.where(u < np.percentile(u, pv))[0]
        self.pi, self.pj = triu[0][uidx], triu[1][uidx]
        ut = u[uidx]
        h = np.linspace(ut.min(), ut.max(), nh)
        self.h = h
        self.b = 3.0 * (h[1] - h[0]) if b is None else float(b)
        du = np.abs(ut - h[:, None])
        w = np.exp(-np.square(2.68 * du / self.b) / 2)
        self.vw_t = (w / np.nansum(w, axis=1)[:, None]).T.copy()   # (P, nh) variogram weights
        disort = np.argsort(D, axis=-1)
        ikn = np.arange(n)[:, None]
        self.smoothers_t = []
        for delta in self.deltas:
            k = int(delta * n)
            if k < 1:
                raise UsageError(f"delta {delta}: fewer than one neighbour for {n} parcels")
            jkn = disort[:, 1:k + 1]
            wk = kern(D[(ikn, jkn)])
            wk = wk / wk.sum(axis=1, keepdims=True)
            S = np.zeros((n, n))
            S[ikn, jkn] = wk
            self.smoothers_t.append(S.T.copy())


_GEOMETRY_CACHE: dict = {}


def _geometry(D, deltas, kernel, pv, nh, b) -> _VariogramGeometry:
    """The geometry of ``D`` and the options, from a small cache (the last 8)."""
    key = (hashlib.sha1(np.ascontiguousarray(D).tobytes()).hexdigest(), D.shape,
           tuple(np.asarray(deltas, dtype=float).tolist()), kernel, float(pv), int(nh), b)
    geo = _GEOMETRY_CACHE.get(key)
    if geo is None:
        if len(_GEOMETRY_CACHE) >= 8:
            _GEOMETRY_CACHE.pop(next(iter(_GEOMETRY_CACHE)))
        geo = _GEOMETRY_CACHE[key] = _VariogramGeometry(D, deltas, kernel, pv, nh, b)
    return geo


class _VariogramModel:
    """brainsmash's surrogate generator for one map ``x`` on a cached geometry."""

    def __init__(self, x, geometry: _VariogramGeometry):
        self.x = x
        self.n = x.size
        g = geometry
        self.pi, self.pj, self.vw_t = g.pi, g.pj, g.vw_t
        self.deltas, self.smoothers_t = g.deltas, g.smoothers_t
        self.target = self.variogram(x[None, :])[0]

    def variogram(self, X):
        """Smoothed variograms (B, nh) of the rows of ``X`` (B, N).

        Rows are maps, so the pair gathers are contiguous (several times faster than
        brainsmash's column layout).
        """
        d = X[:, self.pj]
        d -= X[:, self.pi]
        d *= d
        d *= 0.5
        return d @ self.vw_t

    def regress(self, V):
        """Least-squares fit ``target ~ alpha + beta * V[b]`` for every row ``b`` of ``V``.

        Same closed form as ``brainsmash.mapgen.base.Base.regress``.
        """
        y = self.target[None, :]
        m = V.shape[1]
        num = (V * y).sum(axis=1) - (V.sum(axis=1) * y.sum()) / m
        den = (V ** 2).sum(axis=1) - (V.sum(axis=1) ** 2) / m
        beta = num / den
        alpha = y.mean() - beta * V.mean(axis=1)
        res = np.sum((y - (V * beta[:, None] + alpha[:, None])) ** 2, axis=1)
        return alpha, beta, res

    def batch(self, rs, size, resample):
        """One batch of surrogates (size, N) with brainsmash's random stream ``rs``.

        The draws are made in brainsmash's order (``random_sample`` for the
        permutations, then ``randn`` for the additive noise), so a batch equals
        ``Base._call_method`` for the same ``RandomState``.
        """
        perm = rs.random_sample((self.n, size)).argsort(axis=0)
        xperm = self.x[perm.T]                                 # (size, N)
        nd = len(self.deltas)
        smoothed = np.empty((nd, size, self.n))
        alphas = np.empty((nd, size))
        betas = np.empty((nd, size))
        resid = np.empty((nd, size))
        for i, St in enumerate(self.smoothers_t):
            smoothed[i] = xperm @ St
            alphas[i], betas[i], resid[i] = self.regress(self.variogram(smoothed[i]))
        iopt = np.argmin(resid, axis=0)
        cols = np.arange(size)
        best = smoothed[iopt, cols, :]                         # (size, N)
        a, b = alphas[iopt, cols], betas[iopt, cols]
        noise = rs.randn(self.n, size).T
        surr = np.sqrt(np.abs(b))[:, None] * best + np.sqrt(np.abs(a))[:, None] * noise
        if resample:
            sorted_map = np.sort(self.x)[None, :]
            ii = np.argsort(surr, axis=1)
            np.put_along_axis(surr, ii, sorted_map, axis=1)
        else:
            surr -= surr.mean(axis=1, keepdims=True)
        return surr


def _variogram_block(x, D, n, seed, deltas, kernel, pv, nh, b, resample, batch_size, engine):
    """``(n, N)`` surrogates of ``x`` from brainsmash (``engine="brainsmash"``) or this kernel.

    ``seed`` seeds brainsmash's master ``RandomState``, which draws one seed per batch, as
    ``brainsmash.mapgen.base.Base.__call__`` does.
    """
    if engine == "brainsmash":
        from brainsmash.mapgen.base import Base

        gen = Base(x, D, deltas=np.asarray(deltas, dtype=float), kernel=kernel, pv=pv, nh=nh,
                   resample=resample, b=b, seed=seed)
        out = np.asarray(gen(n, batch_size))
        return out.reshape(n, x.size)
    from sklearn.utils import check_random_state
    from threadpoolctl import threadpool_limits

    model = _VariogramModel(x, _geometry(D, deltas, kernel, pv, nh, b))
    # brainsmash's own streams (Base.__init__ and Base._call_method): the integer seed (an
    # int_seed of stage 5's null set) seeds a master RandomState that draws one per batch
    master = check_random_state(seed)
    batches = [batch_size] * (n // batch_size)
    if n % batch_size:
        batches.append(n % batch_size)
    seeds = master.randint(np.iinfo(np.int32).max, size=len(batches))
    # The products are small (N ~ 200): BLAS threads only add synchronisation cost
    # (measured 1.5-7x slower with 2 OpenBLAS threads on a shared 2-core machine).
    with threadpool_limits(1):
        return np.vstack([model.batch(check_random_state(s), size, resample)
                          for s, size in zip(seeds, batches)])
