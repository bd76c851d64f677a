"""The ASL signal model of the simulation: CBF -> deltaM, and the measured M0.

This is the forward direction of the single-compartment model recommended by the ISMRM
perfusion study group and the European consortium for ASL in dementia ("white paper",
:footcite:t:`alsop2015`, eq. 1) for pCASL with a 3D readout (one PLD for every
voxel). It is written here independently of the quantification module so that the
tests, which check one against the other, compare two implementations.

Constants (recorded in the dataset's ``truth.json``): blood-brain partition coefficient
lambda = 0.9 ml/g, longitudinal relaxation time of arterial blood T1b = 1.65 s at 3 T,
pCASL labelling efficiency 0.85, multiplied by 0.95 per background-suppression pulse
(white paper, section "Labeling efficiency"), tissue T1 = 1.3 s for the saturation
recovery of an M0 acquired with a short TR.

References
----------
.. footbibliography::
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "LAMBDA", "T1_BLOOD", "ALPHA_PCASL", "ALPHA_BS_PULSE", "T1_TISSUE", "labelling_efficiency",
    "cbf_to_deltam_factor", "m0_recovery", "forward_deltam", "proton_density",
]

#: Constants of the model (white paper defaults at 3 T).
LAMBDA = 0.9            # ml/g, blood-brain partition coefficient
T1_BLOOD = 1.65         # s, arterial blood at 3 T
ALPHA_PCASL = 0.85      # labelling efficiency of pCASL
ALPHA_BS_PULSE = 0.95   # efficiency factor per background-suppression pulse
T1_TISSUE = 1.3         # s, single tissue T1 used for the M0 recovery correction

#: Relative proton density (M0) of pure tissues, PD-like contrast CSF > GM > WM.
#: Water content of GM ~0.8-0.85 and WM ~0.7 of CSF (e.g. :footcite:t:`herscovitch1985`,
#: whose brain-average water content gives lambda = 0.9 ml/g).
#:
#: References
#: ----------
#: .. footbibliography::
PD_CSF, PD_GM, PD_WM = 1.0, 0.84, 0.70


def labelling_efficiency(bs_pulses: int, alpha: float = ALPHA_PCASL,
                         per_pulse: float = ALPHA_BS_PULSE) -> float:
    """Return the effective labelling efficiency of pCASL with background suppression.

    alpha_eff = alpha_pCASL x 0.95 ** n_BS (:footcite:t:`alsop2015`, "Labeling
    efficiency": each inversion pulse of background suppression costs ~5 % of the label).

    Parameters
    ----------
    bs_pulses : int
        Number of background-suppression inversion pulses (0 = none).
    alpha, per_pulse : float
        pCASL efficiency and the factor per pulse.

    References
    ----------
    .. footbibliography::
    """
    if bs_pulses < 0:
        raise ValueError(f"bs_pulses must be >= 0 (got {bs_pulses})")
    return float(alpha * per_pulse ** int(bs_pulses))


def cbf_to_deltam_factor(pld: float, tau: float, alpha: float,
                         t1b: float = T1_BLOOD, lam: float = LAMBDA) -> float:
    """Return k such that deltaM = k x CBF x M0 (CBF in ml/100 g/min).

    Inverting the white-paper pCASL equation (:footcite:t:`alsop2015`, eq. 1)::

        CBF = 6000 lambda dM exp(PLD/T1b) / (2 alpha T1b M0 (1 - exp(-tau/T1b)))

    gives ``dM = CBF M0 2 alpha T1b (1 - exp(-tau/T1b)) exp(-PLD/T1b) / (6000 lambda)``.
    The factor 6000 converts ml/g/s to ml/100 g/min.

    Parameters
    ----------
    pld : float
        Post-labelling delay (s); with a 3D readout the same for all voxels.
    tau : float
        Labelling duration (s).
    alpha : float
        Effective labelling efficiency (see :func:`labelling_efficiency`).
    t1b : float
        T1 of arterial blood (s).
    lam : float
        Blood-brain partition coefficient (ml/g).

    References
    ----------
    .. footbibliography::
    """
    return float(2.0 * alpha * t1b * (1.0 - np.exp(-tau / t1b)) * np.exp(-pld / t1b)
                 / (6000.0 * lam))


def m0_recovery(tr: float, t1_tissue: float = T1_TISSUE) -> float:
    """Return the fraction of equilibrium magnetisation an M0 acquired at ``tr`` recovers.

    Saturation recovery, M(TR) = M0 (1 - exp(-TR/T1)), with a single tissue T1
    (:footcite:t:`alsop2015`, "M0 image": a TR < 5 s requires this correction).

    Parameters
    ----------
    tr : float
        Repetition time of the M0 acquisition (s).
    t1_tissue : float
        Tissue T1 (s).

    References
    ----------
    .. footbibliography::
    """
    if tr <= 0:
        raise ValueError(f"M0 repetition time must be > 0 s (got {tr})")
    return float(1.0 - np.exp(-tr / t1_tissue))


def forward_deltam(cbf, m0, pld: float, tau: float, bs_pulses: int) -> np.ndarray:
    """Return deltaM (same units as ``m0``) of tissue with CBF ``cbf`` (ml/100 g/min).

    deltaM = k(PLD, tau, alpha) x CBF x M0 with k from :func:`cbf_to_deltam_factor`
    (:footcite:t:`alsop2015`, eq. 1, inverted). ``m0`` is the fully relaxed
    equilibrium magnetisation of the tissue.

    References
    ----------
    .. footbibliography::
    """
    k = cbf_to_deltam_factor(pld, tau, labelling_efficiency(bs_pulses))
    return k * np.asarray(cbf, dtype=np.float64) * np.asarray(m0, dtype=np.float64)


def proton_density(gm, wm, csf) -> np.ndarray:
    """Return a relative equilibrium magnetisation (M0) from tissue probabilities.

    M0 = PD_GM gm + PD_WM wm + PD_CSF csf (PD-like contrast, CSF > GM > WM).
    """
    return PD_GM * np.asarray(gm) + PD_WM * np.asarray(wm) + PD_CSF * np.asarray(csf)
