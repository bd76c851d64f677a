"""The formulas of ASL quantification: signal models, their inversions and the constants.

Pure functions of numbers (no files, no metadata), used by the stage-1 quantifier
(:mod:`ketamine_cbf.quantification.scan`) and by the book's primer
(:mod:`ketamine_cbf.quantification.primer`). All CBF values are in ml/100 g/min, times in s,
the partition coefficient in ml/g, signals in the units of M0.

Models
------
* Single-PLD (P)CASL, eq. 1 of :footcite:t:`alsop2015` (pCASL is modelled as CASL,
  :footcite:p:`dai2008`)::

      CBF = 6000 λ ΔM exp(PLD/T1b) / (2 α T1b M0 (1 − exp(−τ/T1b)))

* Single-TI PASL with QUIPSS II / Q2TIPS bolus cut-off, eq. 2 of :footcite:t:`alsop2015`::

      CBF = 6000 λ ΔM exp(TI/T1b) / (2 α TI1 M0)

* The general kinetic model :footcite:p:`buxton1998` for plug-flow delivery with arterial
  transit time ATT: :func:`kinetic_pcasl` and :func:`kinetic_pasl` with the labelled water
  relaxing with T1 of blood throughout (the white-paper assumption, as in the
  multi-timepoint consensus of :footcite:t:`woods2024`; fitted by
  :func:`ketamine_cbf.quantification.multipld.fit_kinetic_model`), and :func:`kinetic_curve`,
  the same model as a function of time with optional exchange into tissue (T1 of tissue,
  outflow), for teaching.

Constants
---------
* λ = 0.9 ml/g, brain-blood partition coefficient of water :footcite:p:`herscovitch1985`.
* T1 of arterial blood: 1.65 s at 3 T :footcite:p:`lu2004`, 1.35 s at 1.5 T
  :footcite:p:`alsop2015`.
* Labelling efficiency α: 0.85 PCASL, 0.68 CASL, 0.98 PASL :footcite:p:`alsop2015`, times
  0.95 per background-suppression inversion pulse :footcite:p:`garcia2005`.
* M0 incomplete recovery: a saturation-recovery M0 acquired with repetition time TR has
  recovered to the fraction 1 − exp(−TR/T1_tissue) of M0 (:footcite:t:`alsop2015`, p. 113).

References
----------
.. footbibliography::
"""

from __future__ import annotations

import math

import numpy as np

from ketamine_cbf._docs import fill_doc
from ketamine_cbf.quantification import _docs  # noqa: F401 - registers the stage's parameter texts

__all__ = [
    "UNIT_CONVERSION", "PARTITION_COEFFICIENT", "T1_BLOOD_BY_FIELD", "T1_BLOOD_3T",
    "T1_BLOOD_1P5T", "DEFAULT_LABELING_EFFICIENCY", "WHITEPAPER_PLD",
    "WHITEPAPER_LABEL_DURATION", "m0_recovery_factor", "effective_labelling_efficiency",
    "cbf_pcasl", "cbf_pasl", "whitepaper_cbf", "kinetic_pcasl", "kinetic_pasl",
    "kinetic_curve", "att_bias", "background_suppression_mz",
]

#: ml/g/s -> ml/100 g/min.
UNIT_CONVERSION = 6000.0
#: λ, whole-brain blood-brain partition coefficient of water, ml/g
#: :footcite:p:`herscovitch1985`.
#:
#: References
#: ----------
#: .. footbibliography::
PARTITION_COEFFICIENT = 0.9
#: T1 of arterial blood (s) by field strength (T), at 3 T from :footcite:t:`lu2004` and at
#: 1.5 T from :footcite:t:`alsop2015`.
#:
#: References
#: ----------
#: .. footbibliography::
T1_BLOOD_BY_FIELD = {1.5: 1.35, 3.0: 1.65}
#: T1 of arterial blood at 3 T, s.
T1_BLOOD_3T = T1_BLOOD_BY_FIELD[3.0]
#: T1 of arterial blood at 1.5 T, s.
T1_BLOOD_1P5T = T1_BLOOD_BY_FIELD[1.5]
#: Default labelling efficiency by BIDS ``ArterialSpinLabelingType``
#: :footcite:p:`alsop2015`, before background suppression.
#:
#: References
#: ----------
#: .. footbibliography::
DEFAULT_LABELING_EFFICIENCY = {"PCASL": 0.85, "CASL": 0.68, "PASL": 0.98}
#: Recommended single-PLD pCASL timing for adults < 70 y, s :footcite:p:`alsop2015`.
#:
#: References
#: ----------
#: .. footbibliography::
WHITEPAPER_PLD = 1.8
WHITEPAPER_LABEL_DURATION = 1.8


def _positive(**values) -> None:
    for name, v in values.items():
        if v is None or not np.all(np.asarray(v, dtype=float) > 0):
            raise ValueError(f"{name} must be > 0 (got {v!r})")


def _labelling_key(labelling: str) -> str:
    key = str(labelling).upper()
    if key not in DEFAULT_LABELING_EFFICIENCY:
        raise ValueError(f"labelling must be one of "
                         f"{sorted(k.lower() for k in DEFAULT_LABELING_EFFICIENCY)}, got {labelling!r}")
    return key


def _alpha(labelling_key: str, alpha) -> float:
    return DEFAULT_LABELING_EFFICIENCY[labelling_key] if alpha is None else float(alpha)


# ---------------------------------------------------------------------------- M0 and α

def m0_recovery_factor(tr, t1_tissue: float = 1.3):
    """Return the fraction of M0 recovered by a saturation-recovery M0 scan, 1 − exp(−TR/T1).

    An M0 image acquired with repetition time ``tr`` underestimates the equilibrium
    magnetisation by this factor; the white paper (:footcite:t:`alsop2015`, p. 113)
    recommends TR ≥ 5 s or dividing the measured M0 by it. Vectorised over ``tr``.

    Parameters
    ----------
    tr : float or array_like
        Repetition time of the M0 acquisition, s (> 0).
    t1_tissue : float
        T1 of the tissue, s (grey matter 1.3 s at 3 T).

    Returns
    -------
    numpy.ndarray
        The recovered fraction, in (0, 1).

    Raises
    ------
    ValueError
        ``tr`` or ``t1_tissue`` not > 0 (a zero TR would make the corrected M0 infinite).

    References
    ----------
    .. footbibliography::

    Examples
    --------
    >>> from ketamine_cbf.quantification.models import m0_recovery_factor
    >>> [round(float(m0_recovery_factor(tr, 1.3)), 4) for tr in (6.0, 3.5)]
    [0.9901, 0.9323]
    """
    _positive(tr=tr, t1_tissue=t1_tissue)
    return -np.expm1(-np.asarray(tr, dtype=float) / t1_tissue)


def effective_labelling_efficiency(alpha_label, n_pulses=0, per_pulse=0.95):
    """Total labelling efficiency with background suppression: α = α_label · α_BS^n.

    Every background-suppression inversion pulse also inverts the label imperfectly, so
    each costs a fraction of the ASL signal (≈ 0.93-0.95 per pulse for adiabatic
    inversions, :footcite:t:`garcia2005`; the white paper :footcite:p:`alsop2015` asks to
    account for it).

    Parameters
    ----------
    alpha_label : float
        Labelling efficiency of the labelling scheme (pCASL 0.85), in (0, 1].
    n_pulses : int
        Number of background-suppression pulses after labelling
        (BIDS ``BackgroundSuppressionNumberPulses``).
    per_pulse : float
        Inversion efficiency of one pulse, in (0, 1].

    Returns
    -------
    float

    Raises
    ------
    ValueError
        A negative or fractional number of pulses, or an efficiency outside (0, 1].

    References
    ----------
    .. footbibliography::

    Examples
    --------
    >>> from ketamine_cbf.quantification.models import effective_labelling_efficiency
    >>> round(effective_labelling_efficiency(0.85, 4), 4)
    0.6923
    """
    if n_pulses < 0 or int(n_pulses) != n_pulses:
        raise ValueError(f"n_pulses must be a non-negative integer (got {n_pulses!r})")
    if not 0 < per_pulse <= 1 or not 0 < alpha_label <= 1:
        raise ValueError("efficiencies must be in (0, 1]")
    return alpha_label * per_pulse ** int(n_pulses)


# ---------------------------------------------------------------------------- single delay

def _decay_corrected(deltam, delay, t1_blood, partition_coefficient):
    """6000 λ ΔM exp(delay/T1b): the numerator shared by the white-paper equations."""
    deltam = np.asarray(deltam, float)
    return UNIT_CONVERSION * partition_coefficient * deltam * np.exp(np.asarray(delay) / t1_blood)


@fill_doc
def cbf_pcasl(deltam, m0, pld, tau, alpha, t1_blood, partition_coefficient=PARTITION_COEFFICIENT):
    """Single-PLD (P)CASL CBF (ml/100 g/min), the white paper's eq. 1.

    Eq. 1 of :footcite:t:`alsop2015`::

        CBF = 6000 λ ΔM exp(PLD/T1b) / (2 α T1b M0 (1 − exp(−τ/T1b)))

    Parameters
    ----------
    deltam, m0 : array_like
        Control − label difference and equilibrium magnetisation (same units).
    pld, tau : float or array_like
        Post-labelling delay and labelling duration (s); broadcast with ``deltam``.
    alpha : float
        Labelling efficiency (including background suppression).
    %(t1_blood)s
    %(partition_coefficient)s

    Returns
    -------
    numpy.ndarray
        CBF (ml/100 g/min) by the (P)CASL equation.

    References
    ----------
    .. footbibliography::

    Examples
    --------
    >>> from ketamine_cbf.quantification.models import cbf_pcasl
    >>> round(float(cbf_pcasl(0.0068, 1.0, pld=1.8, tau=1.8, alpha=0.85, t1_blood=1.65)), 2)
    58.68
    """
    m0 = np.asarray(m0, float)
    return (_decay_corrected(deltam, pld, t1_blood, partition_coefficient)
            / (2.0 * alpha * t1_blood * m0 * (1.0 - np.exp(-np.asarray(tau) / t1_blood))))


def cbf_pasl(deltam, m0, ti, ti1, alpha, t1_blood, partition_coefficient=PARTITION_COEFFICIENT):
    """Single-TI PASL CBF (ml/100 g/min) with QUIPSS II / Q2TIPS, the white paper's eq. 2.

    Eq. 2 of :footcite:t:`alsop2015`.

    CBF = 6000 λ ΔM exp(TI/T1b) / (2 α TI1 M0)

    Parameters
    ----------
    deltam, m0, alpha, t1_blood, partition_coefficient
        As in :func:`cbf_pcasl`.
    ti : float or array_like
        Inversion time TI (BIDS ``PostLabelingDelay`` for PASL), s.
    ti1 : float
        Bolus duration TI1 (BIDS ``BolusCutOffDelayTime``; first value for Q2TIPS), s.

    Returns
    -------
    numpy.ndarray
        CBF (ml/100 g/min) by the PASL equation.

    References
    ----------
    .. footbibliography::

    Examples
    --------
    >>> from ketamine_cbf.quantification.models import cbf_pasl
    >>> cbf = cbf_pasl([0.004, 0.005], 1.0, ti=1.8, ti1=0.8, alpha=0.98, t1_blood=1.65)
    >>> [round(float(x), 2) for x in cbf]
    [41.01, 51.26]
    """
    return (_decay_corrected(deltam, ti, t1_blood, partition_coefficient)
            / (2.0 * alpha * ti1 * np.asarray(m0, float)))


def whitepaper_cbf(delta_m, m0, pld, tau=WHITEPAPER_LABEL_DURATION, labelling="pcasl",
                   alpha=None, t1_blood=T1_BLOOD_3T, partition_coefficient=PARTITION_COEFFICIENT):
    """Single-PLD CBF (ml/100 g/min) from the white paper's equation, by labelling scheme.

    :func:`cbf_pcasl` for (p)CASL and :func:`cbf_pasl` for PASL (``pld`` = TI, ``tau`` =
    TI1), with the white paper's defaults and checked inputs :footcite:p:`alsop2015`. The
    equation is the kinetic model :footcite:p:`buxton1998` evaluated at t = τ + PLD under the
    single-compartment assumption and is exact when the arterial transit time is shorter
    than the PLD.

    Parameters
    ----------
    delta_m, m0 : array_like
        Control - label difference and the equilibrium magnetisation (same units; M0
        already corrected for incomplete recovery, see :func:`m0_recovery_factor`).
    pld : float
        Post-labelling delay, s (PASL: inversion time TI).
    tau : float
        Labelling duration, s (PASL: bolus cut-off TI1).
    labelling : {"pcasl", "casl", "pasl"}
        Labelling scheme.
    alpha : float, optional
        Total labelling efficiency, including background suppression
        (:func:`effective_labelling_efficiency`); default the white-paper value.
    t1_blood : float
        T1 of arterial blood, s.
    partition_coefficient : float
        λ, ml/g.

    Returns
    -------
    numpy.ndarray
        CBF, ml/100 g/min.

    Raises
    ------
    ValueError
        An unknown labelling scheme or a timing or constant not > 0.

    References
    ----------
    .. footbibliography::

    Examples
    --------
    >>> from ketamine_cbf.quantification.models import whitepaper_cbf
    >>> round(float(whitepaper_cbf(0.0068, 1.0, pld=1.8)), 1)
    58.7
    """
    key = _labelling_key(labelling)
    _positive(pld=pld, tau=tau, t1_blood=t1_blood, partition_coefficient=partition_coefficient)
    alpha = _alpha(key, alpha)
    fn = cbf_pasl if key == "PASL" else cbf_pcasl
    return fn(delta_m, m0, pld, tau, alpha, t1_blood, partition_coefficient)


# ---------------------------------------------------------------------------- kinetic model

@fill_doc
def kinetic_pcasl(cbf, att, pld, tau, alpha, t1_blood, partition_coefficient=PARTITION_COEFFICIENT,
                  m0=1.0):
    """ΔM of the general kinetic model for (P)CASL.

    The general kinetic model of :footcite:t:`buxton1998`. With f = CBF/6000 (ml/g/s) and
    labelled water relaxing with T1b (:footcite:t:`alsop2015`; :footcite:t:`woods2024`,
    eq. 2)::

        ΔM = 0                                                      PLD + τ ≤ ATT
        ΔM = 2 α M0 f T1b/λ · e^(−ATT/T1b) (1 − e^(−(τ+PLD−ATT)/T1b))   PLD < ATT < PLD + τ
        ΔM = 2 α M0 f T1b/λ · e^(−PLD/T1b) (1 − e^(−τ/T1b))             ATT ≤ PLD

    Parameters
    ----------
    cbf, att, pld, tau : float or array_like
        CBF (ml/100 g/min), arterial transit time, post-labelling delay and labelling
        duration (s); all broadcast.
    alpha : float
        Labelling efficiency.
    %(t1_blood)s
    %(partition_coefficient)s
    m0 : float or array_like
        Equilibrium magnetisation of tissue.

    Returns
    -------
    numpy.ndarray
        ΔM in the units of ``m0``.

    References
    ----------
    .. footbibliography::

    Examples
    --------
    >>> from ketamine_cbf.quantification.models import kinetic_pcasl
    >>> [round(float(kinetic_pcasl(60.0, att, 1.8, 1.8, 0.85, 1.65)), 5) for att in (1.0, 2.5, 4.0)]
    [0.00695, 0.00333, 0.0]
    """
    cbf, att, pld, tau = (np.asarray(x, float) for x in (cbf, att, pld, tau))
    f = cbf / UNIT_CONVERSION
    scale = 2.0 * alpha * np.asarray(m0, float) * f * t1_blood / partition_coefficient
    during = np.exp(-att / t1_blood) * (1.0 - np.exp(-(tau + pld - att) / t1_blood))
    after = np.exp(-pld / t1_blood) * (1.0 - np.exp(-tau / t1_blood))
    shape = np.where(att <= pld, after, np.where(att < pld + tau, during, 0.0))
    return scale * shape


def kinetic_pasl(cbf, att, ti, ti1, alpha, t1_blood, partition_coefficient=PARTITION_COEFFICIENT,
                 m0=1.0):
    """ΔM of the general kinetic model for PASL with bolus duration TI1.

    The general kinetic model of :footcite:t:`buxton1998`, with f = CBF/6000 (ml/g/s)::

        ΔM = 0                                            TI ≤ ATT
        ΔM = 2 α M0 f/λ (TI − ATT) e^(−TI/T1b)              ATT < TI < ATT + TI1
        ΔM = 2 α M0 f/λ TI1 e^(−TI/T1b)                     TI ≥ ATT + TI1

    Parameters
    ----------
    cbf, att, ti : float or array_like
        CBF (ml/100 g/min), arterial transit time and inversion time (s); all broadcast.
    ti1 : float or array_like
        Bolus duration (s).
    alpha, t1_blood, partition_coefficient, m0
        As in :func:`kinetic_pcasl`.

    Returns
    -------
    numpy.ndarray
        ΔM of the pulsed bolus, in the units of ``m0``.

    References
    ----------
    .. footbibliography::

    Examples
    --------
    >>> from ketamine_cbf.quantification.models import kinetic_pasl
    >>> [round(float(kinetic_pasl(60.0, att, 1.8, 0.8, 0.98, 1.65)), 5) for att in (0.5, 1.4, 2.0)]
    [0.00585, 0.00293, 0.0]
    """
    cbf, att, ti = (np.asarray(x, float) for x in (cbf, att, ti))
    f = cbf / UNIT_CONVERSION
    scale = 2.0 * alpha * np.asarray(m0, float) * f / partition_coefficient * np.exp(-ti / t1_blood)
    width = np.clip(ti - att, 0.0, ti1)
    return scale * width


def _check_kinetic_inputs(cbf, att, tau, alpha, t1_blood, partition_coefficient) -> None:
    _positive(tau=tau, t1_blood=t1_blood, partition_coefficient=partition_coefficient)
    if att is None or att < 0:
        raise ValueError(f"att must be >= 0 (got {att!r})")
    if cbf < 0:
        raise ValueError(f"cbf must be >= 0 ml/100 g/min (got {cbf!r})")
    if not 0 < alpha <= 1:
        raise ValueError(f"alpha must be in (0, 1] (got {alpha!r})")


def kinetic_curve(t, cbf=60.0, att=1.2, tau=WHITEPAPER_LABEL_DURATION, labelling="pcasl",
                  alpha=None, t1_blood=T1_BLOOD_3T, t1_tissue=None,
                  partition_coefficient=PARTITION_COEFFICIENT):
    """Difference signal ΔM(t)/M0 of the general kinetic model.

    The general kinetic model of :footcite:t:`buxton1998`:

    ΔM(t) = 2 M0b f ∫ c(t') r(t - t') m(t - t') dt', with M0b = M0/λ the equilibrium
    magnetisation of arterial blood, f the CBF (ml/g/s), the delivery function c(t), the
    residue function r(t) = exp(-f t / λ) and the relaxation m(t) = exp(-t / T1).
    Closed forms (eqs. 5-8 of :footcite:t:`buxton1998`), with 1/T1' = 1/T1 + f/λ:

    * (p)CASL, c(t) = α exp(-Δt/T1b) for Δt ≤ t < Δt + τ:
      ΔM = 2 M0b f T1' α e^{-Δt/T1b} (1 - e^{-(t-Δt)/T1'}) during the bolus and
      2 M0b f T1' α e^{-Δt/T1b} e^{-(t-τ-Δt)/T1'} (1 - e^{-τ/T1'}) after it.
    * PASL, c(t) = α exp(-t/T1b) for Δt ≤ t < Δt + τ, k = 1/T1b - 1/T1':
      ΔM = 2 M0b f α e^{-t/T1'} (e^{-kΔt} - e^{-k min(t, Δt+τ)}) / k (→ t - Δt for k → 0).

    Without ``t1_tissue`` this is :func:`kinetic_pcasl` / :func:`kinetic_pasl` as a function
    of the time since labelling began (t = τ + PLD for (p)CASL, t = TI for PASL).

    Parameters
    ----------
    t : array_like
        Time since the start of labelling, s (for PASL: since the inversion, TI).
    cbf : float
        Cerebral blood flow, ml/100 g/min.
    att : float
        Arterial transit time Δt from the labelling plane to the voxel, s.
    tau : float
        Labelling (bolus) duration, s; for PASL with QUIPSS II, the bolus cut-off TI1.
    labelling : {"pcasl", "casl", "pasl"}
        Labelling scheme (pCASL follows the CASL model, :footcite:t:`dai2008`).
    alpha : float, optional
        Labelling efficiency (default: the white paper's value for ``labelling``).
    t1_blood : float
        T1 of arterial blood, s (3 T: 1.65 s, :footcite:t:`lu2004`).
    t1_tissue : float, optional
        T1 of tissue, s. ``None`` (default) is the white paper's single-compartment
        assumption: the label stays in blood and decays with ``t1_blood``, outflow
        ignored (T1' = T1b). With a value, T1' = 1 / (1/t1_tissue + f/λ) as in
        :footcite:t:`buxton1998`.
    partition_coefficient : float
        λ, blood-brain partition coefficient, ml/g.

    Returns
    -------
    numpy.ndarray
        ΔM(t)/M0 (dimensionless; ≈ 0.5-1 % of M0 for grey matter with pCASL).

    Raises
    ------
    ValueError
        Unknown labelling, negative CBF or ATT, non-positive timing or constants, or an
        efficiency outside (0, 1].

    References
    ----------
    .. footbibliography::

    Examples
    --------
    >>> from ketamine_cbf.quantification.models import kinetic_curve
    >>> [round(float(x), 5) for x in kinetic_curve([1.0, 3.6, 5.0], cbf=60.0, att=1.2)]
    [0.0, 0.00695, 0.00298]
    """
    key = _labelling_key(labelling)
    alpha = _alpha(key, alpha)
    _check_kinetic_inputs(cbf, att, tau, alpha, t1_blood, partition_coefficient)
    t = np.asarray(t, dtype=float)
    f = cbf / UNIT_CONVERSION                         # ml/g/s
    if t1_tissue is None:
        t1_app = t1_blood
    else:
        _positive(t1_tissue=t1_tissue)
        t1_app = 1.0 / (1.0 / t1_tissue + f / partition_coefficient)
    scale = 2.0 * f / partition_coefficient * alpha   # 2 M0b f α / M0, 1/s
    curve = _continuous_curve if key in ("PCASL", "CASL") else _pulsed_curve
    return curve(t, scale, att, tau, t1_blood, t1_app)


def _continuous_curve(t, scale, att, tau, t1_blood, t1_app):
    """(p)CASL: constant delivery α e^(−Δt/T1b) during [Δt, Δt + τ)."""
    out = np.zeros_like(t)
    during = (t >= att) & (t < att + tau)
    after = t >= att + tau
    a = scale * t1_app * math.exp(-att / t1_blood)
    out[during] = a * -np.expm1(-(t[during] - att) / t1_app)
    out[after] = a * np.exp(-(t[after] - tau - att) / t1_app) * -math.expm1(-tau / t1_app)
    return out


def _pulsed_curve(t, scale, att, tau, t1_blood, t1_app):
    """PASL: delivery α e^(−t/T1b) during [Δt, Δt + τ), integrated in closed form."""
    out = np.zeros_like(t)
    k = 1.0 / t1_blood - 1.0 / t1_app
    end = np.minimum(t, att + tau)
    if abs(k) < 1e-12:
        integral = end - att
    else:
        integral = math.exp(-k * att) * -np.expm1(-k * (end - att)) / k
    sel = t >= att
    out[sel] = scale * np.exp(-t[sel] / t1_app) * integral[sel]
    return out


def att_bias(att, pld=WHITEPAPER_PLD, tau=WHITEPAPER_LABEL_DURATION, t1_blood=T1_BLOOD_3T,
             t1_tissue=None, cbf=60.0):
    """Ratio of white-paper CBF to true CBF for a voxel with arterial transit time ``att``.

    Simulates ΔM with :func:`kinetic_curve` at t = τ + PLD and quantifies it with
    :func:`whitepaper_cbf`. Equals 1 when ``att`` ≤ ``pld`` under the single-compartment
    assumption; falls below 1 when the label has not yet arrived (``att`` > ``pld``), which
    is why the white paper :footcite:p:`alsop2015` sets PLD longer than the longest expected
    transit time.

    Parameters
    ----------
    att : float or array_like
        Arterial transit times, s.
    pld, tau : float
        Post-labelling delay and labelling duration, s.
    t1_blood : float
        T1 of arterial blood, s.
    t1_tissue : float, optional
        T1 of tissue for the simulated signal (see :func:`kinetic_curve`).
    cbf : float
        True CBF, ml/100 g/min.

    Returns
    -------
    numpy.ndarray
        Estimated / true CBF (dimensionless), one value per ``att``.

    References
    ----------
    .. footbibliography::

    Examples
    --------
    >>> from ketamine_cbf.quantification.models import att_bias
    >>> [round(float(b), 3) for b in att_bias([1.0, 2.0, 2.5], pld=1.8)]
    [1.0, 0.828, 0.479]
    """
    atts = np.atleast_1d(np.asarray(att, dtype=float))
    dm = np.array([kinetic_curve(tau + pld, cbf=cbf, att=a, tau=tau, t1_blood=t1_blood,
                                 t1_tissue=t1_tissue) for a in atts]).ravel()
    return whitepaper_cbf(dm, 1.0, pld=pld, tau=tau, t1_blood=t1_blood) / cbf


# ---------------------------------------------------------------------------- background suppression

def background_suppression_mz(t, pulse_times, t1, saturation_time=0.0, inversion_efficiency=1.0):
    """Longitudinal magnetisation Mz(t)/M0 of static tissue under background suppression.

    The tissue is saturated (Mz = 0) at ``saturation_time`` and then inverted by each pulse
    of ``pulse_times`` (Mz -> -η Mz, η = ``inversion_efficiency``); between events it relaxes
    as Mz(t) = 1 - (1 - Mz(t0)) e^{-(t - t0)/T1} (Bloch equation without transverse terms).
    Timed well, the pulses bring the static-tissue signal close to zero at the readout, which
    removes most physiological noise from the control - label subtraction
    :footcite:p:`garcia2005`.

    Parameters
    ----------
    t : array_like
        Times, s (same clock as the pulses; usually the start of labelling is 0).
    pulse_times : sequence of float
        Times of the inversion pulses, s.
    t1 : float
        T1 of the tissue, s.
    saturation_time : float
        Time of the pre-saturation, s.
    inversion_efficiency : float
        η in (0, 1].

    Returns
    -------
    numpy.ndarray
        Mz/M0 at ``t`` (NaN before the saturation).

    Raises
    ------
    ValueError
        ``t1`` not > 0, η outside (0, 1], or a pulse before the saturation.

    References
    ----------
    .. footbibliography::

    Examples
    --------
    >>> from ketamine_cbf.quantification.models import background_suppression_mz
    >>> [round(float(m), 3) for m in background_suppression_mz([1.0, 3.6], (1.8, 3.18), 1.33)]
    [0.529, -0.008]
    """
    _positive(t1=t1)
    if not 0 < inversion_efficiency <= 1:
        raise ValueError("inversion_efficiency must be in (0, 1]")
    pulses = sorted(float(p) for p in pulse_times)
    if pulses and pulses[0] < saturation_time:
        raise ValueError("background-suppression pulses must follow the saturation")
    t = np.asarray(t, dtype=float)
    out = np.full(t.shape, np.nan)
    t0, m = saturation_time, 0.0
    for edge in pulses + [np.inf]:
        sel = (t >= t0) & (t < edge)
        out[sel] = 1.0 - (1.0 - m) * np.exp(-(t[sel] - t0) / t1)
        if np.isfinite(edge):
            m_before = 1.0 - (1.0 - m) * math.exp(-(edge - t0) / t1)
            t0, m = edge, -inversion_efficiency * m_before
    return out
