"""ASL physics for the book's primer: the kinetic model, the quantification equation, M0 and
background suppression, computed (never drawn by hand).

The book's ASL primer (``book/primer.md``) renders its figures from the ``plot_*``
functions below at build time (matplotlib's ``plot`` directive), so a figure can never
disagree with the equations here. The pipeline's own quantification lives in the stage-1
module; this module is the teaching reference: small, closed-form and tested against an
independent numerical integration of the model.

Units throughout: CBF in ml/100 g/min, times in s, the blood-brain partition coefficient
``lam`` in ml/g, signals as fractions of the equilibrium magnetisation of tissue (M0).

References
----------
.. [1] Buxton RB, Frank LR, Wong EC, Siewert B, Warach S, Edelman RR. A general kinetic
   model for quantitative perfusion imaging with arterial spin labeling. Magn Reson Med
   1998;40:383-396. doi:10.1002/mrm.1910400308
.. [2] Alsop DC, Detre JA, Golay X, et al. Recommended implementation of arterial
   spin-labeled perfusion MRI for clinical applications. Magn Reson Med 2015;73:102-116.
   doi:10.1002/mrm.25197
.. [3] Dai W, Garcia D, de Bazelaire C, Alsop DC. Continuous flow-driven inversion for
   arterial spin labeling using pulsed radio frequency and gradient fields. Magn Reson Med
   2008;60:1488-1497. doi:10.1002/mrm.21790
.. [4] Garcia DM, Duhamel G, Alsop DC. Efficiency of inversion pulses for background
   suppressed arterial spin labeling. Magn Reson Med 2005;54:366-372. doi:10.1002/mrm.20556
.. [5] Lu H, Clingman C, Golay X, van Zijl PCM. Determining the longitudinal relaxation time
   (T1) of blood at 3.0 Tesla. Magn Reson Med 2004;52:679-682. doi:10.1002/mrm.20178
"""

from __future__ import annotations

import math

import numpy as np

#: Longitudinal relaxation time of arterial blood at 3 T, s (white paper [2], after [5]).
T1_BLOOD_3T = 1.65
#: ... at 1.5 T, s (white paper [2]).
T1_BLOOD_1P5T = 1.35
#: Whole-brain blood-brain partition coefficient of water, ml/g (white paper [2]).
LAMBDA = 0.9
#: Labelling efficiencies recommended by the white paper [2] (no background suppression).
LABELLING_EFFICIENCY = {"pcasl": 0.85, "casl": 0.68, "pasl": 0.98}
#: Recommended single-PLD pCASL timing for adults < 70 y, s (white paper [2]).
WHITEPAPER_PLD = 1.8
WHITEPAPER_LABEL_DURATION = 1.8

_ML_PER_100G_PER_MIN = 6000.0  # ml/g/s -> ml/100 g/min


def _check_labelling(labelling: str) -> str:
    key = str(labelling).lower()
    if key not in LABELLING_EFFICIENCY:
        raise ValueError(f"labelling must be one of {sorted(LABELLING_EFFICIENCY)}, got {labelling!r}")
    return key


def _positive(**values):
    for name, v in values.items():
        if v is None or not np.all(np.asarray(v, dtype=float) > 0):
            raise ValueError(f"{name} must be > 0 (got {v!r})")


def kinetic_curve(t, cbf=60.0, att=1.2, tau=WHITEPAPER_LABEL_DURATION, labelling="pcasl",
                  alpha=None, t1_blood=T1_BLOOD_3T, t1_tissue=None, lam=LAMBDA):
    """Difference signal ΔM(t)/M0 of the general kinetic model (Buxton et al. 1998).

    ΔM(t) = 2 M0b f ∫ c(t') r(t - t') m(t - t') dt', with M0b = M0/λ the equilibrium
    magnetisation of arterial blood, f the CBF (ml/g/s), the delivery function c(t), the
    residue function r(t) = exp(-f t / λ) and the relaxation m(t) = exp(-t / T1) [1]_.
    Closed forms (eqs. 5-8 of [1]_), with 1/T1' = 1/T1 + f/λ:

    * (p)CASL, c(t) = α exp(-Δt/T1b) for Δt ≤ t < Δt + τ:
      ΔM = 2 M0b f T1' α e^{-Δt/T1b} (1 - e^{-(t-Δt)/T1'}) during the bolus and
      2 M0b f T1' α e^{-Δt/T1b} e^{-(t-τ-Δt)/T1'} (1 - e^{-τ/T1'}) after it.
    * PASL, c(t) = α exp(-t/T1b) for Δt ≤ t < Δt + τ, k = 1/T1b - 1/T1':
      ΔM = 2 M0b f α e^{-t/T1'} (e^{-kΔt} - e^{-k min(t, Δt+τ)}) / k (→ t - Δt for k → 0).

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
        Labelling scheme (pCASL follows the CASL model [3]_).
    alpha : float, optional
        Labelling efficiency (default: the white paper's value for ``labelling`` [2]_).
    t1_blood : float
        T1 of arterial blood, s (3 T: 1.65 s [5]_).
    t1_tissue : float, optional
        T1 of tissue, s. ``None`` (default) is the white paper's single-compartment
        assumption [2]_: the label stays in blood and decays with ``t1_blood``, outflow
        ignored (T1' = T1b). With a value, T1' = 1 / (1/t1_tissue + f/λ) as in [1]_.
    lam : float
        Blood-brain partition coefficient, ml/g.

    Returns
    -------
    numpy.ndarray
        ΔM(t)/M0 (dimensionless; ≈ 0.5-1 % of M0 for grey matter with pCASL).

    References
    ----------
    .. [1] Buxton et al. 1998, doi:10.1002/mrm.1910400308
    .. [2] Alsop et al. 2015, doi:10.1002/mrm.25197
    .. [3] Dai et al. 2008, doi:10.1002/mrm.21790
    .. [5] Lu et al. 2004, doi:10.1002/mrm.20178
    """
    key = _check_labelling(labelling)
    _positive(tau=tau, t1_blood=t1_blood, lam=lam)
    if att is None or att < 0:
        raise ValueError(f"att must be >= 0 (got {att!r})")
    if cbf < 0:
        raise ValueError(f"cbf must be >= 0 ml/100 g/min (got {cbf!r})")
    alpha = LABELLING_EFFICIENCY[key] if alpha is None else float(alpha)
    if not 0 < alpha <= 1:
        raise ValueError(f"alpha must be in (0, 1] (got {alpha!r})")
    t = np.asarray(t, dtype=float)
    f = cbf / _ML_PER_100G_PER_MIN                    # ml/g/s
    if t1_tissue is None:
        t1_app = t1_blood
    else:
        _positive(t1_tissue=t1_tissue)
        t1_app = 1.0 / (1.0 / t1_tissue + f / lam)
    scale = 2.0 * f / lam * alpha                     # 2 M0b f α / M0, 1/s
    out = np.zeros_like(t)
    during = (t >= att) & (t < att + tau)
    after = t >= att + tau
    if key in ("pcasl", "casl"):
        a = scale * t1_app * math.exp(-att / t1_blood)
        out[during] = a * -np.expm1(-(t[during] - att) / t1_app)
        out[after] = a * np.exp(-(t[after] - tau - att) / t1_app) * -math.expm1(-tau / t1_app)
    else:
        k = 1.0 / t1_blood - 1.0 / t1_app
        end = np.minimum(t, att + tau)
        if abs(k) < 1e-12:
            integral = end - att
        else:
            integral = math.exp(-k * att) * -np.expm1(-k * (end - att)) / k
        sel = during | after
        out[sel] = scale * np.exp(-t[sel] / t1_app) * integral[sel]
    return out


def whitepaper_cbf(delta_m, m0, pld, tau=WHITEPAPER_LABEL_DURATION, labelling="pcasl",
                   alpha=None, t1_blood=T1_BLOOD_3T, lam=LAMBDA):
    """Single-PLD CBF (ml/100 g/min) from the white paper's quantification equation.

    (p)CASL::

        CBF = 6000 λ ΔM e^{PLD/T1b} / (2 α T1b M0 (1 - e^{-τ/T1b}))

    PASL (QUIPSS II, ``pld`` = TI, ``tau`` = TI1)::

        CBF = 6000 λ ΔM e^{TI/T1b} / (2 α TI1 M0)

    (eq. 1 of Alsop et al. 2015 [2]_; 6000 converts ml/g/s to ml/100 g/min). The equation is
    the kinetic model [1]_ evaluated at t = τ + PLD under the single-compartment assumption
    and is exact when the arterial transit time is shorter than the PLD.

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
    alpha : float, optional
        Total labelling efficiency, including background suppression
        (:func:`effective_labelling_efficiency`); default the white-paper value.
    t1_blood : float
        T1 of arterial blood, s.
    lam : float
        Partition coefficient, ml/g.

    Returns
    -------
    numpy.ndarray
        CBF, ml/100 g/min.

    References
    ----------
    .. [1] Buxton et al. 1998, doi:10.1002/mrm.1910400308
    .. [2] Alsop et al. 2015, doi:10.1002/mrm.25197
    """
    key = _check_labelling(labelling)
    _positive(pld=pld, tau=tau, t1_blood=t1_blood, lam=lam)
    alpha = LABELLING_EFFICIENCY[key] if alpha is None else float(alpha)
    delta_m = np.asarray(delta_m, dtype=float)
    m0 = np.asarray(m0, dtype=float)
    if key == "pasl":
        denom = 2.0 * alpha * tau * m0
    else:
        denom = 2.0 * alpha * t1_blood * m0 * -math.expm1(-tau / t1_blood)
    return _ML_PER_100G_PER_MIN * lam * delta_m * math.exp(pld / t1_blood) / denom


def effective_labelling_efficiency(alpha_label, n_pulses=0, per_pulse=0.95):
    """Total labelling efficiency with background suppression: α = α_label · α_BS^n.

    Every background-suppression inversion pulse also inverts the label imperfectly,
    so each costs a fraction of the ASL signal (≈ 0.93-0.95 per pulse for adiabatic
    inversions [4]_; the white paper [2]_ asks to account for it).

    Parameters
    ----------
    alpha_label : float
        Labelling efficiency of the labelling scheme (pCASL 0.85).
    n_pulses : int
        Number of background-suppression pulses after labelling
        (BIDS ``BackgroundSuppressionNumberPulses``).
    per_pulse : float
        Inversion efficiency of one pulse.

    References
    ----------
    .. [2] Alsop et al. 2015, doi:10.1002/mrm.25197
    .. [4] Garcia et al. 2005, doi:10.1002/mrm.20556
    """
    if n_pulses < 0 or int(n_pulses) != n_pulses:
        raise ValueError(f"n_pulses must be a non-negative integer (got {n_pulses!r})")
    if not 0 < per_pulse <= 1 or not 0 < alpha_label <= 1:
        raise ValueError("efficiencies must be in (0, 1]")
    return alpha_label * per_pulse ** int(n_pulses)


def m0_recovery_factor(tr, t1_tissue):
    """Factor by which an M0 image acquired with repetition time ``tr`` underestimates M0.

    A saturation-recovery M0 scan with a short TR has recovered to M0 (1 - e^{-TR/T1});
    the white paper [2]_ recommends TR ≥ 5 s or dividing by this factor. Returns
    ``1 - exp(-tr / t1_tissue)`` (tr, t1_tissue in s).

    References
    ----------
    .. [2] Alsop et al. 2015, doi:10.1002/mrm.25197
    """
    _positive(tr=tr, t1_tissue=t1_tissue)
    return -np.expm1(-np.asarray(tr, dtype=float) / t1_tissue)


def background_suppression_mz(t, pulse_times, t1, saturation_time=0.0, inversion_efficiency=1.0):
    """Longitudinal magnetisation Mz(t)/M0 of static tissue under background suppression.

    The tissue is saturated (Mz = 0) at ``saturation_time`` and then inverted by each pulse
    of ``pulse_times`` (Mz -> -η Mz, η = ``inversion_efficiency``); between events it relaxes
    as Mz(t) = 1 - (1 - Mz(t0)) e^{-(t - t0)/T1} (Bloch equation without transverse terms).
    Timed well, the pulses bring the static-tissue signal close to zero at the readout, which
    removes most physiological noise from the control - label subtraction [4]_.

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

    References
    ----------
    .. [4] Garcia et al. 2005, doi:10.1002/mrm.20556
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
    edges = pulses + [np.inf]
    for edge in edges:
        sel = (t >= t0) & (t < edge)
        out[sel] = 1.0 - (1.0 - m) * np.exp(-(t[sel] - t0) / t1)
        if np.isfinite(edge):
            m_before = 1.0 - (1.0 - m) * math.exp(-(edge - t0) / t1)
            t0, m = edge, -inversion_efficiency * m_before
    return out


def att_bias(att, pld=WHITEPAPER_PLD, tau=WHITEPAPER_LABEL_DURATION, t1_blood=T1_BLOOD_3T,
             t1_tissue=None, cbf=60.0):
    """Ratio of white-paper CBF to true CBF for a voxel with arterial transit time ``att``.

    Simulates ΔM with :func:`kinetic_curve` at t = τ + PLD and quantifies it with
    :func:`whitepaper_cbf`. Equals 1 when ``att`` ≤ ``pld`` under the single-compartment
    assumption; falls below 1 when the label has not yet arrived (``att`` > ``pld``), which
    is why the white paper sets PLD longer than the longest expected transit time.

    Returns
    -------
    numpy.ndarray
        Estimated / true CBF (dimensionless), one value per ``att``.
    """
    atts = np.atleast_1d(np.asarray(att, dtype=float))
    dm = np.array([kinetic_curve(tau + pld, cbf=cbf, att=a, tau=tau, t1_blood=t1_blood,
                                 t1_tissue=t1_tissue) for a in atts]).ravel()
    return whitepaper_cbf(dm, 1.0, pld=pld, tau=tau, t1_blood=t1_blood) / cbf


# --------------------------------------------------------------------------- figures
def plot_kinetic_curves(ax=None, cbf=60.0, atts=(0.8, 1.2, 1.8), pld=WHITEPAPER_PLD,
                        tau=WHITEPAPER_LABEL_DURATION):
    """Plot ΔM(t)/M0 (%) of pCASL for several arterial transit times, and of PASL.

    Marks the labelling period and the white-paper readout time t = τ + PLD.
    Returns the matplotlib Axes.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.8), layout="constrained")
    t = np.linspace(0, 6, 1201)
    colours = plt.get_cmap("viridis")(np.linspace(0.0, 0.8, len(atts)))
    for a, c in zip(atts, colours):
        ax.plot(t, 100 * kinetic_curve(t, cbf=cbf, att=a, tau=tau), color=c, lw=2,
                label=f"pCASL, ATT {a:.1f} s")
    ax.plot(t, 100 * kinetic_curve(t, cbf=cbf, att=0.7, tau=0.8, labelling="pasl"),
            color="0.4", lw=1.5, ls="--", label="PASL, ATT 0.7 s, TI1 0.8 s")
    ax.axvspan(0, tau, color="tab:orange", alpha=0.12, lw=0)
    ax.text(tau / 2, ax.get_ylim()[1] * 0.95, "labelling\n(τ = %.1f s)" % tau, ha="center",
            va="top", fontsize=8, color="tab:orange")
    ax.axvline(tau + pld, color="tab:red", lw=1, ls=":")
    ax.text(tau + pld + 0.05, ax.get_ylim()[1] * 0.97, "readout\nt = τ + PLD", fontsize=8,
            color="tab:red", ha="left", va="top")
    ax.set_xlabel("time since the start of labelling (s)")
    ax.set_ylabel("ΔM / M0 (%)")
    ax.set_title(f"General kinetic model, CBF = {cbf:g} ml/100 g/min, 3 T")
    ax.legend(fontsize=8, frameon=False, loc="center right")
    ax.set_xlim(0, 6)
    return ax


def plot_att_bias(ax=None, plds=(1.5, 1.8, 2.0), tau=WHITEPAPER_LABEL_DURATION):
    """Plot white-paper CBF / true CBF against arterial transit time for several PLDs."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.4), layout="constrained")
    att = np.linspace(0.3, 2.8, 251)
    for pld in plds:
        ax.plot(att, 100 * att_bias(att, pld=pld, tau=tau), lw=2, label=f"PLD {pld:.1f} s")
    ax.axhline(100, color="0.5", lw=0.8)
    ax.set_xlabel("arterial transit time (s)")
    ax.set_ylabel("estimated / true CBF (%)")
    ax.set_title(f"Single-PLD pCASL, τ = {tau:.1f} s")
    ax.legend(fontsize=8, frameon=False)
    return ax


def plot_background_suppression(ax=None, pulse_times=(1.8, 3.18), readout=3.6):
    """Plot Mz/M0 of grey matter, white matter and CSF under two-pulse background suppression.

    T1 at 3 T: grey matter 1.33 s, white matter 0.83 s, CSF 4.2 s (typical literature
    values; illustrative). Pre-saturation at t = 0 (start of labelling).
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.4), layout="constrained")
    t = np.linspace(0, readout + 0.4, 1001)
    for name, t1, c in (("grey matter", 1.33, "tab:purple"), ("white matter", 0.83, "tab:olive"),
                        ("CSF", 4.2, "tab:cyan")):
        ax.plot(t, background_suppression_mz(t, pulse_times, t1), lw=2, color=c,
                label=f"{name} (T1 {t1:g} s)")
    for p in pulse_times:
        ax.axvline(p, color="0.3", lw=0.8, ls="--")
    ax.axvline(readout, color="tab:red", lw=1, ls=":")
    ax.axhline(0, color="0.5", lw=0.8)
    ax.set_xlabel("time since pre-saturation (s)")
    ax.set_ylabel("Mz / M0")
    ax.set_title(f"Background suppression, {len(pulse_times)} inversion pulses")
    ax.legend(fontsize=8, frameon=False, loc="lower left")
    return ax
