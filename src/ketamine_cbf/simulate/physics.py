"""A more realistic ASL forward model for the simulator, independent of the quantifier.

The simulator's reference signal model (:mod:`ketamine_cbf.simulate.signal`) is the exact
inverse of the quantification (the single-compartment "white paper" model of
:footcite:t:`alsop2015`: the label relaxes with the T1 of blood until readout, one
labelling efficiency, one blood T1, one partition coefficient), so a simulated dataset
cannot show the biases of that model. This module writes the forward direction with the
physics the white paper deliberately leaves out:

* the general kinetic model of :footcite:t:`buxton1998` for (p)CASL: the label relaxes with
  the T1 of arterial blood until it arrives, after an arterial transit time (ATT) that
  varies over the brain, and with the apparent tissue T1 (1/T1' = 1/T1 + f/lambda) after;
* tissue-specific T1 (:footcite:t:`wansapura1999`, :footcite:t:`lu2005`) and partition
  coefficients (:footcite:t:`herscovitch1985`);
* arterial blood T1 from the haematocrit (:footcite:t:`lu2004`);
* a labelling efficiency reduced by each background-suppression pulse
  (:footcite:t:`alsop2015`, :footcite:t:`garcia2005`);
* an M0 image whose compartments recover each with their own T1 at short TR.

No constant is imported from ``ketamine_cbf.quantification`` or
:mod:`ketamine_cbf.simulate.signal`: the two directions must stay independent.

Constants (3 T)
---------------
``T1_GM = 1.33 s``, ``T1_WM = 0.83 s``: :footcite:t:`wansapura1999` (1331 and 832 ms); the
same values are the 3 T ground truth of the ASL digital reference object ASLDRO
(``hrgt_icbm_2009a_nls_3t``). ``T1_CSF = 4.3 s``: :footcite:t:`lu2005` (measured
3.8 +/- 0.4 s, 4.3 s considered more accurate; ASLDRO uses 3.0 s). ``LAMBDA_GM = 0.98``,
``LAMBDA_WM = 0.82`` ml/g: regional values from tissue water content,
:footcite:t:`herscovitch1985` (whole brain 0.90 ml/g). ``PD_BLOOD``: see its comment.

References
----------
.. footbibliography::
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "T1_GM", "T1_WM", "T1_CSF", "LAMBDA_GM", "LAMBDA_WM", "PD_GM", "PD_WM", "PD_CSF",
    "PD_BLOOD", "HCT_R1_SLOPE", "HCT_R1_INTERCEPT", "blood_t1", "effective_labelling_efficiency",
    "WM_TRANSIT_EXTRA", "transit_time_map", "tissue_t1_map", "m0_relaxed", "gkm_pcasl",
    "white_paper_deltam",
]

#: Tissue T1 at 3 T (s): GM and WM from Wansapura et al. 1999 (1331 +/- 13 ms and
#: 832 +/- 10 ms), CSF from Lu et al. 2005 (see the module docstring).
T1_GM = 1.33
T1_WM = 0.83
T1_CSF = 4.3

#: Tissue-specific brain-blood partition coefficients of water (ml/g): the grey and white
#: matter values computed from tissue water content by Herscovitch & Raichle 1985 (whole
#: brain 0.90), as used for tissue-specific ASL quantification.
LAMBDA_GM = 0.98
LAMBDA_WM = 0.82

#: Relative proton densities of pure tissues (pure CSF = 1, the M0 scale); the values the
#: simulator already uses (PD-like contrast CSF > GM > WM), restated here on purpose.
PD_GM = 0.84
PD_WM = 0.70
PD_CSF = 1.0

#: Equilibrium magnetisation of arterial blood on the same scale (pure CSF = 1). By the
#: definition of the partition coefficient, M0_tissue / lambda_tissue = M0_blood, so it is
#: chosen to make PD_t / LAMBDA_t ~ PD_BLOOD for both tissues: 0.84/0.98 = 0.857 and
#: 0.70/0.82 = 0.854, mean 0.855. (The white paper instead divides the measured M0 by a
#: single lambda = 0.9, which gives 0.933 for GM and 0.778 for WM.)
PD_BLOOD = 0.855

#: Arterial blood (oxygenation ~92 %) at 3 T, 37 C: 1/T1 = 0.52 Hct + 0.38 s^-1
#: (Lu et al. 2004; T1 = 1664 ms quoted at Hct = 0.42).
HCT_R1_SLOPE = 0.52
HCT_R1_INTERCEPT = 0.38

#: Seconds per minute x 100 g: ml/100 g/min -> ml/g/s.
_PER_MIN_100G = 6000.0


def blood_t1(haematocrit: float) -> float:
    """Return the T1 (s) of arterial blood at 3 T from the haematocrit.

    1/T1 = 0.52 Hct + 0.38 s^-1, the in-vitro relation of :footcite:t:`lu2004` for
    arterial blood (oxygenation 92 %, 37 C, Hct 0.38-0.46 measured), which gives
    1664 ms at Hct = 0.42 in that paper (1.671 s from the rounded coefficients).

    Parameters
    ----------
    haematocrit : float
        Volume fraction of red cells (0-1), e.g. 0.42; not a percentage.

    Returns
    -------
    float
        T1 of arterial blood in seconds; decreases with haematocrit.

    Examples
    --------
    >>> round(blood_t1(0.42), 4)
    1.6711
    >>> blood_t1(0.36) > blood_t1(0.46)
    True

    References
    ----------
    .. footbibliography::
    """
    hct = float(haematocrit)
    if not 0.0 < hct < 1.0:
        raise ValueError(f"haematocrit is a fraction in (0, 1) (got {haematocrit})")
    return 1.0 / (HCT_R1_SLOPE * hct + HCT_R1_INTERCEPT)


def effective_labelling_efficiency(alpha_label: float, bs_efficiencies=()) -> float:
    """Return the labelling efficiency left after background suppression.

    alpha_eff = alpha x prod_k beta_k: each background-suppression inversion pulse
    applied after labelling inverts the label imperfectly and keeps a fraction beta_k of
    it (:footcite:t:`alsop2015`, "Labeling efficiency"; measured pulse efficiencies in
    :footcite:t:`garcia2005`). Typical values: alpha = 0.85 for pCASL, beta ~0.95 per pulse.

    Parameters
    ----------
    alpha_label : float
        Inversion efficiency of the labelling itself (0-1].
    bs_efficiencies : iterable of float or float
        Efficiency beta_k (0-1] of each background-suppression pulse; empty for none.

    Returns
    -------
    float

    Examples
    --------
    >>> effective_labelling_efficiency(0.85, [])
    0.85
    >>> round(effective_labelling_efficiency(0.85, [0.95, 0.95]), 6)
    0.767125

    References
    ----------
    .. footbibliography::
    """
    betas = [bs_efficiencies] if np.isscalar(bs_efficiencies) else list(bs_efficiencies)
    for v, name in [(alpha_label, "alpha_label")] + [(b, "bs efficiency") for b in betas]:
        if not 0.0 < float(v) <= 1.0:
            raise ValueError(f"{name} must be in (0, 1] (got {v})")
    return float(alpha_label) * float(np.prod(np.asarray(betas, dtype=np.float64)))


def _smoothstep(s) -> np.ndarray:
    """Return 3 s^2 - 2 s^3 of ``s`` clipped to [0, 1] (0 -> 0, 1 -> 1, flat ends)."""
    s = np.clip(s, 0.0, 1.0)
    return s * s * (3.0 - 2.0 * s)


def _gauss(d, sigma) -> np.ndarray:
    return np.exp(-0.5 * (np.asarray(d) / sigma) ** 2)


#: Geometry of the transit-time map (MNI mm). Posterior ramp: no delay anterior of
#: y = -20, full ``posterior_extra`` at the occipital pole (y = -100). ACA-MCA border zone:
#: parasagittal band at ``|x|`` = 28 mm (sd 8) over the convexity (z > ~25), from frontal
#: (y = +45) to parietal (y = -65). MCA-PCA border zone: a band at y = -62 mm (sd 10),
#: lateral (``|x|`` > ~25), over the temporo-parieto-occipital junction (z -10 to 50).
_RAMP_Y = (-20.0, -100.0)
_ACA_MCA = dict(x=28.0, sx=8.0, z_on=25.0, y_range=(-65.0, 45.0))
_MCA_PCA = dict(y=-62.0, sy=10.0, x_on=25.0, z_range=(-10.0, 50.0))
_EDGE_MM = 8.0


def _soft_range(v, lo, hi, edge=_EDGE_MM) -> np.ndarray:
    """Return ~1 inside [lo, hi], falling smoothly to 0 over ``edge`` mm outside it."""
    return _smoothstep((v - lo) / edge + 1.0) * _smoothstep((hi - v) / edge + 1.0)


#: Extra arterial transit time (s) of pure white matter (fed last, by long medullary arteries).
WM_TRANSIT_EXTRA = 0.4


def transit_time_map(anat, gm_att: float = 1.2, posterior_extra: float = 0.3,
                     watershed_extra: float = 0.3, wm_extra: float = WM_TRANSIT_EXTRA) -> np.ndarray:
    """Return an arterial transit time map (s) on the truth grid of ``anat``.

    ATT = gm_att + posterior_extra x ramp(y) + watershed_extra x band(x, y, z)
    + wm_extra x p_WM. The ramp rises smoothly (smoothstep) from 0 at MNI y = -20 mm to 1
    at the occipital pole (y = -100 mm); the band is the union (1 - (1-a)(1-b)) of two
    smooth Gaussian border zones placed from MNI anatomy: the ACA-MCA zone, a parasagittal
    strip at ``|x|`` ~ 28 mm over the convexity, and the MCA-PCA zone, a coronal strip at
    y ~ -62 mm lateral to ``|x|`` ~ 25 mm; p_WM is the WM probability (deep white matter is fed
    last, by long medullary arteries). With the defaults, GM in the anterior (MCA)
    territory has 1.2 s, occipital GM ~1.5 s, border-zone GM up to ~1.8 s and pure WM
    ~1.6-2.2 s, within the 0.7-2 s range of healthy adults at rest. This is a schematic,
    smooth map, not a vascular-territory atlas.

    Parameters
    ----------
    anat : ketamine_cbf.simulate.truth.Anatomy
        Uses ``coords`` (X, Y, Z, 3 MNI mm) and ``wm`` (probability).
    gm_att : float
        ATT of GM in the anterior/MCA territory (s).
    posterior_extra, watershed_extra, wm_extra : float
        Extra delays (s) at the occipital pole, in the border zones and in pure WM.

    Returns
    -------
    numpy.ndarray
        float32, the shape of ``anat.wm``.
    """
    for v, name in [(gm_att, "gm_att"), (posterior_extra, "posterior_extra"),
                    (watershed_extra, "watershed_extra"), (wm_extra, "wm_extra")]:
        if not np.isfinite(v) or v < 0:
            raise ValueError(f"{name} must be a finite number >= 0 (got {v})")
    c = np.asarray(anat.coords, dtype=np.float64)
    x, y, z = np.abs(c[..., 0]), c[..., 1], c[..., 2]
    ramp = _smoothstep((_RAMP_Y[0] - y) / (_RAMP_Y[0] - _RAMP_Y[1]))
    a = (_gauss(x - _ACA_MCA["x"], _ACA_MCA["sx"]) * _smoothstep((z - _ACA_MCA["z_on"]) / 15.0 + 0.5)
         * _soft_range(y, *_ACA_MCA["y_range"]))
    b = (_gauss(y - _MCA_PCA["y"], _MCA_PCA["sy"]) * _smoothstep((x - _MCA_PCA["x_on"]) / 15.0 + 0.5)
         * _soft_range(z, *_MCA_PCA["z_range"]))
    band = 1.0 - (1.0 - a) * (1.0 - b)
    wm = np.clip(np.asarray(anat.wm, dtype=np.float64), 0.0, 1.0)
    att = gm_att + posterior_extra * ramp + watershed_extra * band + wm_extra * wm
    return att.astype(np.float32)


def tissue_t1_map(gm, wm, csf) -> np.ndarray:
    """Return the T1 (s) of the perfused tissue of each voxel, for the kinetic model.

    T1 = (p_GM T1_GM + p_WM T1_WM) / (p_GM + p_WM) where p_GM + p_WM > 0, else T1_GM:
    the label exchanges into perfused tissue only, so CSF (``csf``, accepted for symmetry)
    does not enter; T1 values of :footcite:t:`wansapura1999`. A probability-weighted mean
    of T1, not of the signal: it is the T1 of the tissue mixture the label sees.

    Parameters
    ----------
    gm, wm, csf : array_like
        Tissue probabilities (broadcastable).

    Returns
    -------
    numpy.ndarray
        float32.

    References
    ----------
    .. footbibliography::
    """
    g = np.clip(np.asarray(gm, dtype=np.float64), 0.0, None)
    w = np.clip(np.asarray(wm, dtype=np.float64), 0.0, None)
    tot = g + w
    safe = np.where(tot > 1e-6, tot, 1.0)
    t1 = np.where(tot > 1e-6, (g * T1_GM + w * T1_WM) / safe, T1_GM)
    return t1.astype(np.float32)


def m0_relaxed(pd, gm, wm, csf, tr: float) -> np.ndarray:
    """Return the measured M0 of a saturation-recovery M0 image with repetition time ``tr``.

    M0(TR) = sum_t PD_t p_t (1 - exp(-TR / T1_t)) over t in (GM, WM, CSF): each compartment
    recovers with its own T1 (T1 of :footcite:t:`wansapura1999` and :footcite:t:`lu2005`),
    so a short TR lowers CSF (T1 4.3 s) far more than WM (0.83 s). ``tr = inf`` gives the
    fully relaxed, PD-weighted sum.

    Parameters
    ----------
    pd : sequence of 3 floats or arrays, or None
        (PD_GM, PD_WM, PD_CSF), relative proton densities of the pure tissues (pure CSF = 1);
        None for this module's ``PD_GM``, ``PD_WM``, ``PD_CSF``.
    gm, wm, csf : array_like
        Tissue probabilities (volume fractions) of each voxel.
    tr : float
        Repetition time (s) of the M0 acquisition, > 0 (``numpy.inf`` allowed).

    Returns
    -------
    numpy.ndarray
        float32.

    References
    ----------
    .. footbibliography::
    """
    if not tr > 0:
        raise ValueError(f"M0 repetition time must be > 0 s (got {tr})")
    pd_gm, pd_wm, pd_csf = (PD_GM, PD_WM, PD_CSF) if pd is None else pd
    out = 0.0
    for p, prob, t1 in [(pd_gm, gm, T1_GM), (pd_wm, wm, T1_WM), (pd_csf, csf, T1_CSF)]:
        rec = 1.0 - np.exp(-float(tr) / t1)
        out = out + np.asarray(p, dtype=np.float64) * np.asarray(prob, dtype=np.float64) * rec
    return np.asarray(out, dtype=np.float32)


def gkm_pcasl(cbf, m0_blood, att, t1_tissue, t1_blood, alpha, pld, tau, lam=0.9) -> np.ndarray:
    """Return the (p)CASL difference signal of the general kinetic model (control - label).

    :footcite:t:`buxton1998` (continuous labelling, plug flow, single well-mixed tissue
    compartment). With t = tau + PLD the time since the start of labelling, f = CBF/6000
    (ml/g/s), 1/T1' = 1/T1_tissue + f/lambda and Delta = ATT::

        dM = 0                                                            t < Delta
        dM = 2 a M0b f T1' e^(-Delta/T1b) (1 - e^(-(t-Delta)/T1'))        Delta <= t < Delta+tau
        dM = 2 a M0b f T1' e^(-Delta/T1b) e^(-(t-tau-Delta)/T1') (1 - e^(-tau/T1'))
                                                                          t >= Delta+tau

    The label relaxes with the T1 of blood during the transit and with T1' once in the
    tissue. The factor 2 is the inversion (control minus label). With T1_tissue = T1b,
    f/lambda -> 0, ATT <= PLD and M0b = M0/lambda this is :func:`white_paper_deltam`.

    Parameters
    ----------
    cbf : array_like
        CBF in ml/100 g/min.
    m0_blood : array_like
        Equilibrium magnetisation of arterial blood (units of the returned dM), e.g.
        ``PD_BLOOD`` times the M0 scale.
    att : array_like
        Arterial transit time (s).
    t1_tissue : array_like
        T1 of the tissue (s), e.g. from :func:`tissue_t1_map`.
    t1_blood : float or array_like
        T1 of arterial blood (s), e.g. from :func:`blood_t1`.
    alpha : float or array_like
        Effective labelling efficiency (:func:`effective_labelling_efficiency`).
    pld, tau : float or array_like
        Post-labelling delay and labelling duration (s).
    lam : float or array_like
        Partition coefficient (ml/g) in T1' only.

    Returns
    -------
    numpy.ndarray
        float64 dM, broadcast over the inputs.

    Examples
    --------
    >>> dm = gkm_pcasl(60.0, 1.0, 1.2, 1.33, 1.65, 0.85, 2.0, 1.5, lam=0.98)
    >>> print(f"{float(dm):.6f}")
    0.003991
    >>> float(gkm_pcasl(60.0, 1.0, 3.6, 1.33, 1.65, 0.85, 2.0, 1.5))  # bolus not arrived
    0.0

    References
    ----------
    .. footbibliography::
    """
    f = np.asarray(cbf, dtype=np.float64) / _PER_MIN_100G
    m0b = np.asarray(m0_blood, dtype=np.float64)
    delta = np.asarray(att, dtype=np.float64)
    t1t = np.asarray(t1_tissue, dtype=np.float64)
    t1b = np.asarray(t1_blood, dtype=np.float64)
    a = np.asarray(alpha, dtype=np.float64)
    tau = np.asarray(tau, dtype=np.float64)
    t = tau + np.asarray(pld, dtype=np.float64)
    lam = np.asarray(lam, dtype=np.float64)
    if np.any(t1t <= 0) or np.any(t1b <= 0) or np.any(lam <= 0):
        raise ValueError("T1 of tissue and blood and lambda must be > 0")
    t1p = 1.0 / (1.0 / t1t + f / lam)
    amp = 2.0 * a * m0b * f * t1p * np.exp(-delta / t1b)
    arriving = amp * -np.expm1(-np.maximum(t - delta, 0.0) / t1p)
    arrived = amp * np.exp(-np.maximum(t - tau - delta, 0.0) / t1p) * -np.expm1(-tau / t1p)
    return np.where(t < delta, 0.0, np.where(t < delta + tau, arriving, arrived))


def white_paper_deltam(cbf, m0_tissue, t1_blood, alpha, pld, tau, lam=0.9) -> np.ndarray:
    """Return dM of the single-compartment white-paper model (its eq. 1, inverted).

    :footcite:t:`alsop2015`, eq. 1 for pCASL, solved for dM::

        dM = 2 a T1b (1 - e^(-tau/T1b)) e^(-PLD/T1b) CBF M0 / (6000 lambda)

    i.e. the label relaxes with T1 of blood throughout and all of it has arrived by the
    readout. Here only to reduce :func:`gkm_pcasl` to it and to measure the bias of its
    inverse on general-kinetic-model data.

    Parameters
    ----------
    cbf : array_like
        CBF in ml/100 g/min.
    m0_tissue : array_like
        Fully relaxed tissue M0 (units of dM).
    t1_blood, alpha, pld, tau, lam : float or array_like
        As in :func:`gkm_pcasl`.

    Returns
    -------
    numpy.ndarray
        float64.

    References
    ----------
    .. footbibliography::
    """
    t1b = np.asarray(t1_blood, dtype=np.float64)
    tau = np.asarray(tau, dtype=np.float64)
    k = (2.0 * np.asarray(alpha, dtype=np.float64) * t1b * -np.expm1(-tau / t1b)
         * np.exp(-np.asarray(pld, dtype=np.float64) / t1b)
         / (_PER_MIN_100G * np.asarray(lam, dtype=np.float64)))
    return k * np.asarray(cbf, dtype=np.float64) * np.asarray(m0_tissue, dtype=np.float64)
