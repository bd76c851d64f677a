"""Figures of the book's ASL primer: the kinetic model, ATT bias, background suppression.

The book's ASL primer (``book/primer.md``) renders its figures from the ``plot_*``
functions below at build time (matplotlib's ``plot`` directive), so a figure can never
disagree with the equations: every curve is computed by the formulas of
:mod:`ketamine_cbf.quantification.models`, the same ones the stage-1 quantifier uses
(tested there against an independent numerical integration of the model). The formulas
the primer's text and exercises name are re-exported here. The figures show the general
kinetic model :footcite:p:`buxton1998`, the white paper's single-delay quantification
:footcite:p:`alsop2015` and background suppression :footcite:p:`garcia2005`.

Units throughout: CBF in ml/100 g/min, times in s, signals as fractions of the
equilibrium magnetisation of tissue (M0).

References
----------
.. footbibliography::
"""

from __future__ import annotations

import numpy as np

# the primer's formulas live in models; re-exported for the book's pages and exercises
from ketamine_cbf.quantification.models import (
    T1_BLOOD_3T,
    WHITEPAPER_LABEL_DURATION,
    WHITEPAPER_PLD,
    att_bias,
    background_suppression_mz,
    effective_labelling_efficiency,
    kinetic_curve,
    m0_recovery_factor,
    whitepaper_cbf,
)

# The formulas the plots use are importable from here too (the book's primer page imports
# them as ``primer.kinetic_curve`` ...); they are documented where they live, in ``models``.
__all__ = ["plot_kinetic_curves", "plot_att_bias", "plot_background_suppression"]


def _axes(ax, figsize):
    """``ax``, or the axes of a new figure of ``figsize`` inches."""
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=figsize, layout="constrained")[1]


def plot_kinetic_curves(ax=None, cbf=60.0, atts=(0.8, 1.2, 1.8), pld=WHITEPAPER_PLD,
                        tau=WHITEPAPER_LABEL_DURATION):
    """Plot ΔM(t)/M0 (%) of pCASL for several arterial transit times, and of PASL.

    Marks the labelling period and the white-paper readout time t = τ + PLD.

    Parameters
    ----------
    ax : matplotlib.axes.Axes, optional
        Where to draw (default: a new figure).
    cbf : float
        CBF of the curves, ml/100 g/min.
    atts : sequence of float
        Arterial transit times of the pCASL curves, s.
    pld, tau : float
        Post-labelling delay and labelling duration, s.

    Returns
    -------
    matplotlib.axes.Axes
        One ΔM(t) curve per transit time, and the PASL curve.
    """
    import matplotlib.pyplot as plt

    ax = _axes(ax, (7, 3.8))
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
    """Plot white-paper CBF / true CBF against arterial transit time for several PLDs.

    Parameters
    ----------
    ax : matplotlib.axes.Axes, optional
        Where to draw (default: a new figure).
    plds : sequence of float
        Post-labelling delays, s (one curve each).
    tau : float
        Labelling duration, s.

    Returns
    -------
    matplotlib.axes.Axes
        One bias curve per PLD.
    """
    ax = _axes(ax, (6, 3.4))
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

    Parameters
    ----------
    ax : matplotlib.axes.Axes, optional
        Where to draw (default: a new figure).
    pulse_times : sequence of float
        Times of the inversion pulses, s.
    readout : float
        Time of the readout, s (red line).

    Returns
    -------
    matplotlib.axes.Axes
        One Mz(t) curve per tissue.
    """
    ax = _axes(ax, (6, 3.4))
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
