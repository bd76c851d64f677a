"""The simulated trial: crossover schedule, demographics and clinical scores.

Design (as in the study): randomised, double-blind, two-period crossover; each visit is
oral naltrexone 50 mg or placebo, then IV ketamine 0.5 mg/kg over 40 min during 3D
pCASL. Order is counterbalanced: half the participants get placebo first (``PN``),
half naltrexone first (``NP``), in random allocation. Each session has a pre-infusion
scan (``run-1``) and a scan during the infusion (``run-2``).

Clinical scales (ranges from their definitions):

* MADRS, 10 items 0-6, total 0-60 :footcite:p:`montgomery1979`;
* QIDS-SR16, total 0-27 :footcite:p:`rush2003`;
* CADSS, 23 subject-rated items 0-4, total 0-92; subscales depersonalisation (6 items),
  derealisation (12), amnesia (5) :footcite:p:`bremner1998`;
* PSI, 48 items 0-3 in six subscales :footcite:p:`mason2008`.

Planted correlations are *exact in the sample before rounding* and then tuned so that
the written integer scores reproduce the target Pearson r to within ~0.01
(:func:`plant_correlated`). This makes the truth-level test sharp: any deviation of an
imaging stage from the planted r is the stage's (or the imaging noise's), not the
simulation's sampling error.

References
----------
.. footbibliography::
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ketamine_cbf.study import ORDERS

__all__ = [
    "PSI_SUBSCALES", "CADSS_SUBSCALES", "MADRS_BASELINE", "MADRS_IMPROVEMENT", "QIDS_BASELINE",
    "QIDS_IMPROVEMENT", "participant_ids", "crossover", "sessions", "scan_times",
    "residual_vectors", "pearson", "plant_correlated", "integer_scale", "skewed_scale",
]

#: PSI subscales simulated, as column -> (number of items, mean, SD of the score after
#: ketamine). Items are scored 0-3, so the range is 0..3*items. Item counts follow
#: :footcite:t:`mason2008`; means are illustrative of a 0.5 mg/kg ketamine infusion.
#:
#: References
#: ----------
#: .. footbibliography::
PSI_SUBSCALES = {
    "psi_delusional_thinking": (8, 4.0, 3.0),
    "psi_perceptual_distortion": (9, 7.0, 4.5),
    "psi_cognitive_disorganisation": (10, 8.0, 5.0),
    "psi_anhedonia": (8, 4.0, 3.0),
    "psi_mania": (6, 3.0, 2.5),
    "psi_paranoia": (7, 2.0, 2.0),
}
#: CADSS subscales: column -> (items, mean, SD) after ketamine (items 0-4).
CADSS_SUBSCALES = {
    "cadss_depersonalisation": (6, 5.0, 4.0),
    "cadss_derealisation": (12, 9.0, 7.0),
    "cadss_amnesia": (5, 1.0, 1.5),
}
#: Baseline severity and day-1 improvement (baseline - day 1): (mean, SD, min, max).
MADRS_BASELINE = (31.0, 5.0, 20, 50)
MADRS_IMPROVEMENT = (10.0, 8.0)
QIDS_BASELINE = (17.0, 3.0, 11, 27)
QIDS_IMPROVEMENT = (5.0, 4.0)


def participant_ids(n: int) -> list[str]:
    """Return ``sub-01`` ... (zero-padded to at least two digits)."""
    width = max(2, len(str(n)))
    return [f"sub-{i:0{width}d}" for i in range(1, n + 1)]


def crossover(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Return participants with a counterbalanced order, age and sex.

    Half the participants (rounded down; the odd one drawn at random) receive placebo
    in period 1 (``PN``), the rest naltrexone first (``NP``); allocation is a random
    permutation.

    Returns
    -------
    pandas.DataFrame
        ``participant_id``, ``age`` (18-50), ``sex`` (M/F), ``order`` (PN | NP).
    """
    n_pn = n // 2 + (int(rng.integers(0, 2)) if n % 2 else 0)
    orders = np.array(["PN"] * n_pn + ["NP"] * (n - n_pn))
    orders = orders[rng.permutation(n)]
    age = np.clip(np.round(rng.normal(35, 8, n)), 18, 50).astype(int)
    sex = np.where(rng.random(n) < 0.5, "F", "M")
    return pd.DataFrame({"participant_id": participant_ids(n), "age": age, "sex": sex,
                         "order": orders})


def sessions(participants: pd.DataFrame) -> pd.DataFrame:
    """Return one row per participant x session: ``session_id``, ``pretreatment``, ``period``."""
    rows = []
    for pid, order in zip(participants["participant_id"], participants["order"]):
        for period, arm in enumerate(ORDERS[order], start=1):
            rows.append({"participant_id": pid, "session_id": f"ses-{period}",
                         "pretreatment": arm, "period": period})
    return pd.DataFrame(rows)


def scan_times(period: int, subject_index: int, rng: np.random.Generator) -> dict[str, str]:
    """Return acquisition times (ISO 8601) of the pre (run-1) and during (run-2) scans.

    Visits are 14 days apart (washout); the pill is taken ~1 h before the infusion, the
    pre-infusion scan ends just before it starts and the during-infusion scan is
    acquired ~20 min into the 40-min infusion. Dates are fictitious (year 2000).
    """
    day = np.datetime64("2000-01-03") + np.timedelta64(7 * subject_index + 14 * (period - 1), "D")
    start = np.timedelta64(9 * 60 + int(rng.integers(0, 90)), "m")
    pre = day + start
    during = pre + np.timedelta64(int(rng.integers(25, 31)), "m")
    fmt = lambda t: str(np.datetime64(t, "s"))  # noqa: E731
    return {"pre": fmt(pre), "during": fmt(during)}


def residual_vectors(x: np.ndarray, k: int, rng: np.random.Generator,
                     covariates: tuple = ()) -> np.ndarray:
    """Return ``k`` random unit-norm vectors, each orthogonal to the constant, to ``x``
    and to every vector in ``covariates`` (projection of standard normal draws).

    With very few participants the constraints can exhaust the sample space; covariates
    are then dropped from the last one until a free direction remains.
    """
    n = len(x)
    covariates = [v for v in covariates if v is not None]
    while len(covariates) and 2 + len(covariates) >= n:
        covariates.pop()
    basis = [np.ones(n) / np.sqrt(n)]
    for v in (x, *covariates):
        if v is None:
            continue
        vc = np.asarray(v, float) - np.mean(v)
        for b in basis[1:]:
            vc = vc - (vc @ b) * b
        if np.linalg.norm(vc) > 1e-9 * max(1.0, float(np.abs(v).max())):
            basis.append(vc / np.linalg.norm(vc))
    B = np.array(basis)
    out = rng.standard_normal((k, n))
    out -= (out @ B.T) @ B
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def pearson(a, b) -> float:
    """Pearson correlation of two 1-D arrays."""
    a = np.asarray(a, float) - np.mean(a)
    b = np.asarray(b, float) - np.mean(b)
    den = np.sqrt((a @ a) * (b @ b))
    return float(a @ b / den) if den > 0 else float("nan")


def plant_correlated(x: np.ndarray, target: float, candidates: np.ndarray, to_scale,
                     tol: float = 0.002) -> tuple[np.ndarray, float, int]:
    """Return scores whose sample Pearson r with ``x`` is ``target`` (to ~``tol``).

    The latent ``y = rho * x~ + sqrt(1 - rho^2) * e`` (``x~`` = standardised ``x``,
    ``e`` a unit-norm vector orthogonal to ``x`` and the constant, scaled by sqrt(n))
    has sample correlation exactly ``rho`` with ``x``. ``to_scale`` maps the latent to
    the written scores (integer, bounded), which changes r slightly and in steps; so for
    each candidate ``e`` (rows of ``candidates``, drawn at random) ``rho`` is found by
    bisection such that the *written* scores correlate ``target`` with ``x``, and the
    first candidate within ``tol`` (else the closest) is used.

    Returns
    -------
    scores : ndarray
    rho : float
        Latent correlation used.
    index : int
        Row of ``candidates`` used.
    """
    n = len(x)
    xs = (x - x.mean()) / x.std()

    def scores(rho, e):
        return to_scale(rho * xs + np.sqrt(1.0 - rho ** 2) * e * np.sqrt(n))

    best = (np.inf, None, None, None)
    for idx, e in enumerate(np.atleast_2d(candidates)):
        lo, hi, rho = -0.995, 0.995, float(target)
        for _ in range(50):
            s = scores(rho, e)
            r = pearson(x, s)
            err = abs(r - target) if np.isfinite(r) else np.inf
            if err < best[0]:
                best = (err, s, rho, idx)
            if err <= tol:
                break
            if r < target:
                lo = rho
            else:
                hi = rho
            rho = 0.5 * (lo + hi)
        if best[0] <= tol:
            break
    return best[1], float(best[2]), int(best[3])


def integer_scale(mean: float, sd: float, lo: float, hi: float):
    """Return a map standardised latent -> integer scores ``round(mean + sd*z)`` in [lo, hi]."""
    return lambda z: np.clip(np.round(mean + sd * np.asarray(z)), lo, hi).astype(int)


def skewed_scale(mean: float, sd: float, hi: float):
    """Return a map latent -> non-negative integer scores with a right skew, <= ``hi``.

    Symptom scores after ketamine pile up near 0 with a long right tail; a shifted
    log-normal ``exp(mu + s z) - 1`` with moments close to (``mean``, ``sd``) gives that
    shape while staying monotone in ``z`` (so the planted correlation survives).
    """
    m, v = mean + 1.0, sd ** 2
    s2 = np.log1p(v / m ** 2)
    mu = np.log(m) - s2 / 2.0
    s = np.sqrt(s2)
    return lambda z: np.clip(np.round(np.exp(mu + s * np.asarray(z)) - 1.0), 0, hi).astype(int)
