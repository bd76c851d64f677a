"""Sign flips of the one-sample permutation test: nilearn's random draw, the exhaustive set, seeds.

Same sign flips as nilearn
--------------------------
:func:`nilearn_sign_flips` reproduces nilearn 0.14's draw exactly: a ``RandomState``
from ``random_state`` draws one seed per joblib chunk (``randint(1, 2**31 - 2)``); each
chunk's ``RandomState`` draws ``randint(2, size=(n, 1)) * 2 - 1`` per permutation and
multiplies it into the *already flipped* data, so the effective flip of permutation ``i``
is the running product of the draws. The chunking follows nilearn's ``n_jobs`` rule, so
the same ``(random_state, n_jobs)`` gives the same null distribution and the same
p-values.

Exhaustive flips
----------------
With few subjects all ``2^n - 1`` non-identity flips are affordable and the permutation
p-value is exact over the whole group of sign flips :footcite:p:`winkler2014`;
:func:`draw_sign_flips` chooses.

The stage's seed
----------------
:func:`contrast_seed` derives each contrast's integer ``random_state`` from the master
seed with :func:`ketamine_cbf.stattools.int_seed` (stream ``(3, contrast index)``, in
nilearn's range ``[1, 2**31 - 2)``), so a contrast's flips depend only on the seed and
the contrast.

References
----------
.. footbibliography::
"""

from __future__ import annotations

import numpy as np

from ketamine_cbf._docs import fill_doc
from ketamine_cbf.errors import UsageError
from ketamine_cbf.stattools import int_seed
from ketamine_cbf.study import CONTRASTS, STAGE_NUMBERS

__all__ = ["nilearn_sign_flips", "exhaustive_sign_flips", "draw_sign_flips", "is_exhaustive",
           "contrast_seed"]

#: Exclusive upper bound of nilearn's chunk seeds (``np.iinfo(np.int32).max - 1``); the
#: stage's ``random_state`` is drawn in the same range.
NILEARN_SEED_HIGH = 2 ** 31 - 2


def _nilearn_n_jobs(n_jobs: int) -> int:
    """nilearn 0.14's ``n_jobs`` sanitising (``_sanitize_inputs_permuted_ols``)."""
    import joblib

    if n_jobs == 0:
        raise UsageError("n_jobs == 0 is not valid (use a positive number or -1)")
    if n_jobs < 0:
        return max(1, joblib.cpu_count() - int(n_jobs) + 1)
    return min(int(n_jobs), joblib.cpu_count())


def _nilearn_chunks(n_perm: int, n_jobs: int) -> np.ndarray:
    """Permutations per joblib chunk, as nilearn splits them."""
    if n_perm > n_jobs:
        chunks = np.asarray([n_perm / n_jobs] * n_jobs, dtype=int)
        chunks[-1] += n_perm % n_jobs
        return chunks
    return np.ones(n_perm, dtype=int)


def nilearn_sign_flips(n_samples: int, n_perm: int, random_state=None, n_jobs: int = 1) -> np.ndarray:
    """Return the sign flips nilearn's ``permuted_ols`` applies, in its order.

    Reproduces nilearn 0.14 (``permuted_ols`` / ``_permuted_ols_on_chunk``): the
    master ``RandomState`` draws one seed per chunk, ``randint(1, 2**31 - 2)``;
    in each chunk the data are multiplied, permutation after permutation, by
    ``randint(2, size=(n_samples, 1)) * 2 - 1``, so flip ``i`` of a chunk is the
    product of its first ``i`` draws (still uniform on ``{-1, 1}^n``).

    Parameters
    ----------
    n_samples : int
        Number of subjects (rows of the data).
    n_perm : int
        Number of permutations.
    random_state : None, int or numpy.random.RandomState
        As nilearn's ``random_state`` (a ``RandomState`` is advanced in place).
    n_jobs : int
        nilearn's ``n_jobs``: decides how the permutations are split in chunks
        (``min(n_jobs, cpu_count)`` chunks), hence the draw.

    Returns
    -------
    numpy.ndarray of int8, shape (n_perm, n_samples)
        Entries ``-1`` or ``+1``.

    Raises
    ------
    UsageError
        ``n_jobs == 0``.

    Examples
    --------
    >>> nilearn_sign_flips(4, 3, random_state=0).tolist()
    [[-1, 1, -1, 1], [-1, 1, 1, 1], [1, 1, 1, 1]]
    """
    from sklearn.utils import check_random_state

    n_perm = int(n_perm)
    if n_perm <= 0:
        return np.ones((0, n_samples), dtype=np.int8)
    rng = check_random_state(random_state)
    out = np.empty((n_perm, n_samples), dtype=np.int8)
    i = 0
    for n_chunk in _nilearn_chunks(n_perm, _nilearn_n_jobs(n_jobs)):
        chunk_rng = check_random_state(rng.randint(1, np.iinfo(np.int32).max - 1))
        cum = np.ones((n_samples, 1), dtype=np.int64)
        for _ in range(int(n_chunk)):
            cum = cum * (chunk_rng.randint(2, size=(n_samples, 1)) * 2 - 1)
            out[i] = cum[:, 0]
            i += 1
    return out


def exhaustive_sign_flips(n_samples: int) -> np.ndarray:
    """Return all ``2^n - 1`` sign flips other than the identity.

    With these as the permutations, ``(1 + #{h0 >= observed}) / 2^n`` is the exact
    permutation p-value over the whole group of sign flips :footcite:p:`winkler2014`.

    Parameters
    ----------
    n_samples : int
        Number of subjects (at most 24).

    Returns
    -------
    numpy.ndarray of int8, shape (2**n_samples - 1, n_samples)

    Raises
    ------
    UsageError
        ``n_samples`` outside 1..24.

    References
    ----------
    .. footbibliography::

    Examples
    --------
    >>> exhaustive_sign_flips(2).tolist()
    [[-1, 1], [1, -1], [-1, -1]]
    """
    if not 1 <= n_samples <= 24:
        raise UsageError(f"exhaustive sign flipping needs 1..24 subjects (got {n_samples})")
    codes = np.arange(1, 2 ** n_samples, dtype=np.int64)
    bits = (codes[:, None] >> np.arange(n_samples)[None, :]) & 1
    return (1 - 2 * bits).astype(np.int8)


@fill_doc
def is_exhaustive(n_samples: int, n_perm: int = 5000, exhaustive="auto") -> bool:
    """Return True when the flips of a study are all ``2^n - 1`` non-identity flips.

    As :func:`draw_sign_flips` decides.

    Parameters
    ----------
    n_samples : int
        Number of subjects.
    %(n_perm)s
    exhaustive : "auto" or bool
        As in :func:`draw_sign_flips`.

    Returns
    -------
    bool

    Examples
    --------
    >>> is_exhaustive(8, 255), is_exhaustive(8, 254), is_exhaustive(30, 10 ** 9)
    (True, False, False)
    """
    if exhaustive == "auto":
        return n_samples <= 24 and 2 ** n_samples - 1 <= n_perm
    return bool(exhaustive)


@fill_doc
def draw_sign_flips(n_samples: int, n_perm: int = 5000, random_state=None, n_jobs: int = 1,
                    exhaustive="auto") -> np.ndarray:
    """Sign flips for a study: exhaustive when affordable, else nilearn's random draw.

    Parameters
    ----------
    n_samples : int
        Number of subjects.
    %(n_perm)s
    random_state : None, int or numpy.random.RandomState
        Seed of the random draw (:func:`nilearn_sign_flips`).
    n_jobs : int
        Chunking of the random draw (nilearn's rule).
    exhaustive : "auto" or bool
        ``"auto"``: enumerate all ``2^n - 1`` non-identity flips when that is at
        most ``n_perm`` (exact test); ``True``: always (n <= 24); ``False``: never.

    Returns
    -------
    numpy.ndarray of int8, shape (n_flips, n_samples)

    Examples
    --------
    >>> draw_sign_flips(3, 100).shape, draw_sign_flips(3, 5, random_state=0, exhaustive=False).shape
    ((7, 3), (5, 3))
    """
    if is_exhaustive(n_samples, n_perm, exhaustive):
        return exhaustive_sign_flips(n_samples)
    return nilearn_sign_flips(n_samples, n_perm, random_state, n_jobs)


@fill_doc
def contrast_seed(seed: int, contrast: str) -> int:
    """Integer ``random_state`` of a contrast's sign flips, derived from the master seed.

    ``int_seed(seed, 3, index of the contrast in CONTRASTS, high=2**31 - 2)``
    (:func:`ketamine_cbf.stattools.int_seed`; an unknown name takes the index
    ``len(CONTRASTS)``).

    Parameters
    ----------
    %(seed)s
    %(contrast)s

    Returns
    -------
    int
        In ``[1, 2**31 - 2)``, nilearn's range for ``random_state`` seeds.

    Examples
    --------
    >>> contrast_seed(20261126, "ket_pooled") == contrast_seed(20261126, "ket_pooled")
    True
    >>> contrast_seed(20261126, "ket_pooled") != contrast_seed(20261126, "interaction")
    True
    """
    names = list(CONTRASTS)
    index = names.index(contrast) if contrast in names else len(names)
    return int_seed(int(seed), STAGE_NUMBERS["03_voxelwise"], index, high=NILEARN_SEED_HIGH)
