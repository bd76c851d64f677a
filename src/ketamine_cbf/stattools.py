"""Statistics shared by every stage, written once: FDR, seed streams, Fisher-z CIs, Monte-Carlo p.

Every stage imports these; no stage has its own copy (pingouin's ``multicomp`` is the model:
one correction module, tested against R's ``p.adjust``).

Seed streams
------------
All randomness of a stage derives from the master ``seed`` of the study configuration
through :func:`rng` (a :class:`numpy.random.Generator`) or :func:`int_seed` (an integer
for libraries that take one: ANTs, brainsmash, nilearn's ``random_state``). Both build a
:class:`numpy.random.SeedSequence` from ``[seed, *keys]``; a string key becomes one 32-bit
word (its CRC-32), so a stream depends only on its own identity (stage number, contrast,
map, model ...), never on which other streams were drawn or in which order.
"""

from __future__ import annotations

import zlib

import numpy as np
from scipy import stats

from ketamine_cbf.errors import InputError, UsageError

__all__ = ["fdr", "seed_sequence", "rng", "int_seed", "fisher_ci", "monte_carlo_p"]

#: Upper bound (exclusive) of :func:`int_seed`: seeds of ``numpy.random.RandomState``, ITK
#: and brainsmash must be below 2**31.
INT_SEED_HIGH = 2 ** 31 - 1


def fdr(p, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Benjamini-Hochberg false discovery rate over one family of p values.

    The step-up procedure of :footcite:t:`benjamini1995`.

    Parameters
    ----------
    p : array_like of float
        p values of the family. NaN entries are ignored (they get ``q = NaN`` and are
        never rejected) and do not count in the family size.
    alpha : float
        FDR level.

    Returns
    -------
    reject : numpy.ndarray of bool
        True where the hypothesis is rejected at FDR ``alpha``.
    q : numpy.ndarray of float
        BH-adjusted p values (``statsmodels.stats.multitest.multipletests(method="fdr_bh")``).

    References
    ----------
    .. footbibliography::

    Examples
    --------
    >>> reject, q = fdr([0.01, 0.04, 0.03, float("nan")])
    >>> reject.tolist(), [round(float(v), 3) for v in q]
    ([True, True, True, False], [0.03, 0.04, 0.04, nan])
    """
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(p, float)
    reject = np.zeros(p.shape, bool)
    q = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        reject[ok], q[ok], _, _ = multipletests(p[ok], alpha=alpha, method="fdr_bh")
    return reject, q


def _words(keys) -> list[int]:
    out = []
    for k in keys:
        if isinstance(k, (bool, np.bool_)):
            out.append(int(k))
        elif isinstance(k, (int, np.integer)):
            if k < 0:
                raise UsageError(f"seed keys must be non-negative integers or strings (got {k!r})")
            out.append(int(k))
        else:
            out.append(zlib.crc32(str(k).encode()))
    return out


def seed_sequence(seed: int, *keys) -> np.random.SeedSequence:
    """Return the seed sequence of the stream named ``keys`` under the master ``seed``.

    Parameters
    ----------
    seed : int
        Master seed (non-negative).
    *keys : int or str
        The stream's identity, e.g. ``(4, "pearson", "pgACC_delta", "placebo")``. Integers
        are used as they are, strings as their CRC-32.

    Returns
    -------
    numpy.random.SeedSequence
        ``SeedSequence([seed, *keys])``.
    """
    return np.random.SeedSequence(_words([seed, *keys]))


def rng(seed: int, *keys) -> np.random.Generator:
    """Return the random generator of one stream (see :func:`seed_sequence`).

    ``rng(seed, *keys)`` equals ``numpy.random.default_rng([seed, *keys])`` for integer keys.

    Examples
    --------
    >>> a = rng(20261126, 3, "ket_placebo").integers(0, 1000, 3)
    >>> b = rng(20261126, 3, "ket_placebo").integers(0, 1000, 3)
    >>> bool((a == b).all()), bool((a == rng(20261126, 3, "interaction").integers(0, 1000, 3)).all())
    (True, False)
    """
    return np.random.default_rng(seed_sequence(seed, *keys))


def int_seed(seed: int, *keys, high: int = INT_SEED_HIGH) -> int:
    """Return an integer seed in ``[1, high)`` for a library that takes one (ANTs, nilearn).

    Drawn as ``rng(seed, *keys).integers(1, high)``. ``high`` is part of the stream's
    definition: stage 3 uses nilearn's own range (``2**31 - 2``) for its ``random_state``.
    """
    return int(rng(seed, *keys).integers(1, high))


def fisher_ci(r: float, n: int, ci: float = 0.95) -> tuple[float, float]:
    """Fisher-z confidence interval of a Pearson correlation.

    ``tanh(atanh(r) ± z_{(1+ci)/2} / sqrt(n - 3))`` :footcite:p:`fisher1921`.

    Parameters
    ----------
    r : float
        Sample correlation (clipped to ±0.9999999).
    n : int
        Sample size (at least 4).
    ci : float
        Confidence level.

    Returns
    -------
    (float, float)
        Lower and upper bounds.

    References
    ----------
    .. footbibliography::

    Examples
    --------
    >>> [round(v, 3) for v in fisher_ci(0.5, 28)]
    [0.156, 0.736]
    """
    z = np.arctanh(np.clip(r, -0.9999999, 0.9999999))
    h = stats.norm.ppf(0.5 + ci / 2) / np.sqrt(n - 3)
    return float(np.tanh(z - h)), float(np.tanh(z + h))


def monte_carlo_p(observed, null, alternative: str = "two-sided"):
    """Monte-Carlo (permutation or null-model) p value with the +1 correction.

    ``two-sided``: ``(1 + #{|null| >= |obs|}) / (n + 1)``; ``greater``:
    ``(1 + #{null >= obs}) / (n + 1)`` :footcite:p:`phipson2010`. A relative tolerance of
    1e-12 counts null values equal to the observation up to rounding as "at least as
    extreme".

    Parameters
    ----------
    observed : float or (k,) array_like
        Observed statistic(s).
    null : (n,) or (n, k) array_like
        Null statistics, one row per permutation or null map.
    alternative : {"two-sided", "greater"}

    Returns
    -------
    float or (k,) numpy.ndarray

    References
    ----------
    .. footbibliography::

    Examples
    --------
    >>> monte_carlo_p(2.0, [0.5, -2.5, 1.0, 3.0])
    0.6
    >>> monte_carlo_p(2.0, [0.5, -2.5, 1.0, 3.0], alternative="greater")
    0.4
    """
    obs = np.asarray(observed, dtype=float)
    null = np.asarray(null, dtype=float)
    if null.ndim == 1 and obs.ndim == 1 and obs.size > 1:
        raise InputError("monte_carlo_p: give one null column per observed statistic")
    if alternative == "two-sided":
        o, nu = np.abs(obs), np.abs(null)
    elif alternative == "greater":
        o, nu = obs, null
    else:
        raise UsageError(f"alternative must be 'two-sided' or 'greater' (got {alternative!r})")
    thr = o - 1e-12 * np.abs(o)
    count = np.sum(nu >= thr, axis=0)
    p = (1.0 + count) / (null.shape[0] + 1.0)
    return float(p) if np.ndim(p) == 0 else p
