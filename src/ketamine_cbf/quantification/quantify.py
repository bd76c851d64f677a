"""CBF quantification from ASL: white-paper single-delay models and a multi-delay kinetic fit.

All CBF values are in ml/100 g/min, times in s, lengths in mm.

Models
------
* Single-PLD (P)CASL (Alsop et al. 2015, eq. 1)::

      CBF = 6000 λ ΔM exp(PLD/T1b) / (2 α T1b M0 (1 − exp(−τ/T1b)))

* Single-TI PASL with QUIPSS II / Q2TIPS bolus cut-off (Alsop et al. 2015, eq. 2)::

      CBF = 6000 λ ΔM exp(TI/T1b) / (2 α TI1 M0)

* Multi-PLD / multi-TI: the general kinetic model (Buxton et al. 1998) for plug-flow
  delivery with arterial transit time ATT, labelled water relaxing with T1 of blood
  throughout (the white-paper assumption, as in the multi-timepoint consensus of
  Woods et al. 2024; BASIL's model of Chappell et al. 2009 with tissue T1 set to blood
  T1 and no dispersion). CBF and ATT are fitted voxel-wise by least squares
  (see :func:`fit_kinetic_model`).

Constants (every one a parameter of :class:`QuantParams`, recorded in the output sidecar)
--------------------------------------------------------------------------------------
* λ = 0.9 ml/g, brain-blood partition coefficient of water (Herscovitch & Raichle 1985).
* T1 of arterial blood: 1.65 s at 3 T (Lu et al. 2004), 1.35 s at 1.5 T (Alsop et al. 2015).
* Labelling efficiency α: the sidecar's ``LabelingEfficiency`` if present, else 0.85 PCASL,
  0.68 CASL, 0.98 PASL (Alsop et al. 2015), times 0.95 per background-suppression
  inversion pulse (Garcia et al. 2005) when ``BackgroundSuppression`` is true.
* M0 incomplete recovery: M0 = M0_measured / (1 − exp(−TR_M0/T1_tissue)), T1_tissue = 1.3 s
  (Alsop et al. 2015, p. 113; the factor is < 2 % for TR > 5 s), times an M0 scale factor
  (default 1).

References
----------
Alsop D.C. et al. (2015). Recommended implementation of arterial spin-labeled perfusion
MRI for clinical applications. MRM 73:102-116. doi:10.1002/mrm.25197
Buxton R.B. et al. (1998). A general kinetic model for quantitative perfusion imaging with
arterial spin labeling. MRM 40:383-396. doi:10.1002/mrm.1910400308
Chappell M.A. et al. (2009). Variational Bayesian inference for a nonlinear forward model.
IEEE Trans Signal Process 57:223-236. doi:10.1109/TSP.2008.2005752
Woods J.G. et al. (2024). Recommendations for quantitative cerebral perfusion MRI using
multi-timepoint arterial spin labeling. MRM 92:469-495. doi:10.1002/mrm.30091
Herscovitch P., Raichle M.E. (1985). What is the correct value for the brain-blood
partition coefficient for water? JCBFM 5:65-69. doi:10.1038/jcbfm.1985.9
Lu H. et al. (2004). Determining the longitudinal relaxation time (T1) of blood at 3.0
Tesla. MRM 52:679-682. doi:10.1002/mrm.20178
Garcia D.M., Duhamel G., Alsop D.C. (2005). Efficiency of inversion pulses for
background suppressed arterial spin labeling. MRM 54:366-372. doi:10.1002/mrm.20556
Golub G., Pereyra V. (1973). The differentiation of pseudo-inverses and nonlinear least
squares problems whose variables separate. SIAM J Numer Anal 10:413-432.
doi:10.1137/0710036
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import nibabel as nib
import numpy as np

from ketamine_cbf.io.bids import ASLScan
from ketamine_cbf.errors import InputError, UsageError

#: ml/g/s -> ml/100 g/min.
UNIT_CONVERSION = 6000.0

#: Default labelling efficiency by labelling type (Alsop et al. 2015, Table 1 footnotes).
DEFAULT_LABELING_EFFICIENCY = {"PCASL": 0.85, "CASL": 0.68, "PASL": 0.98}

#: T1 of arterial blood (s) by field strength (T): 3 T Lu et al. 2004; 1.5 T Alsop et al. 2015.
T1_BLOOD_BY_FIELD = {1.5: 1.35, 3.0: 1.65}


@dataclass(frozen=True)
class QuantParams:
    """Constants and options of the quantification (defaults cited in the module docstring).

    Attributes
    ----------
    partition_coefficient : float
        λ, brain-blood partition coefficient of water (ml/g).
    t1_blood : float or None
        T1 of arterial blood (s); None: from ``MagneticFieldStrength``.
    t1_tissue : float
        T1 of grey matter used for the M0 recovery correction (s).
    labeling_efficiency : float or None
        α before background suppression; None: sidecar ``LabelingEfficiency``, else the
        labelling type's default.
    bs_pulse_efficiency : float
        Efficiency factor per background-suppression inversion pulse.
    m0_scale : float
        Multiplies M0 (e.g. a vendor scaling between M0 and ASL volumes).
    m0_tr : float or None
        Override of the M0 repetition time (s); None: ``RepetitionTimePreparation``.
    m0_fwhm : float
        Gaussian smoothing of the M0 image (mm FWHM) before division; 0 = none.
    att_bounds : tuple of float
        Search interval of the arterial transit time in the multi-delay fit (s).
    plausible_cbf : tuple of float
        Median brain CBF outside this range (ml/100 g/min) stops the scan with an error
        (a wrong M0 scale or efficiency is far likelier than such physiology).
    check_plausible : bool
        Apply the ``plausible_cbf`` check.
    """

    partition_coefficient: float = 0.9
    t1_blood: float | None = None
    t1_tissue: float = 1.3
    labeling_efficiency: float | None = None
    bs_pulse_efficiency: float = 0.95
    m0_scale: float = 1.0
    m0_tr: float | None = None
    m0_fwhm: float = 0.0
    att_bounds: tuple = (0.0, 3.0)
    plausible_cbf: tuple = (5.0, 200.0)
    check_plausible: bool = True

    def __post_init__(self):
        checks = {
            "partition_coefficient": self.partition_coefficient,
            "t1_tissue": self.t1_tissue, "bs_pulse_efficiency": self.bs_pulse_efficiency,
            "m0_scale": self.m0_scale,
        }
        for k in ("t1_blood", "labeling_efficiency", "m0_tr"):
            if getattr(self, k) is not None:
                checks[k] = getattr(self, k)
        for k, v in checks.items():
            if not np.isfinite(v) or v <= 0:
                raise UsageError(f"quantification parameter {k} must be > 0 (got {v})")
        for k in ("labeling_efficiency", "bs_pulse_efficiency"):
            v = getattr(self, k)
            if v is not None and v > 1:
                raise UsageError(f"quantification parameter {k} must be <= 1 (got {v})")
        if self.m0_fwhm < 0:
            raise UsageError(f"quantification parameter m0_fwhm must be >= 0 (got {self.m0_fwhm})")
        lo, hi = self.att_bounds
        if not 0 <= lo < hi:
            raise UsageError(f"quantification parameter att_bounds must satisfy 0 <= lo < hi "
                             f"(got {self.att_bounds})")

    def as_dict(self) -> dict:
        """Return the parameters as a JSON-serialisable dict."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


# ---------------------------------------------------------------------------- constants

def t1_blood_for_field(field_strength: float, source: str = "MagneticFieldStrength") -> float:
    """Return the T1 of arterial blood (s) for a field strength (T).

    1.65 s at 3 T (Lu et al. 2004), 1.35 s at 1.5 T (Alsop et al. 2015). Other field
    strengths need an explicit value (``t1_blood``).

    Raises
    ------
    InputError
        Field strength not within 0.1 T of 1.5 or 3 T.
    """
    for b0, t1 in T1_BLOOD_BY_FIELD.items():
        if abs(float(field_strength) - b0) <= 0.1:
            return t1
    raise InputError(f"{source}: MagneticFieldStrength {field_strength:g} T has no default blood "
                     "T1 (1.5 or 3 T); set it explicitly (--t1-blood / t1_blood)")


def labeling_efficiency(metadata: dict, params: QuantParams) -> tuple[float, dict]:
    """Return the effective labelling efficiency α and how it was obtained.

    α = α_label · η_BS^n, with α_label the parameter override, else the sidecar's
    ``LabelingEfficiency``, else the labelling type's default (0.85 PCASL, 0.68 CASL,
    0.98 PASL; Alsop et al. 2015), and η_BS = 0.95 per background-suppression pulse
    (Garcia et al. 2005), n = ``BackgroundSuppressionNumberPulses`` when
    ``BackgroundSuppression`` is true.

    Returns
    -------
    alpha : float
    info : dict
        ``LabelingEfficiencyLabel``, ``LabelingEfficiencySource``,
        ``BackgroundSuppressionPulses``, ``BackgroundSuppressionEfficiency``, ``warnings``.
    """
    warnings = []
    asl_type = metadata["ArterialSpinLabelingType"]
    if params.labeling_efficiency is not None:
        a, source = params.labeling_efficiency, "parameter"
    elif "LabelingEfficiency" in metadata:
        a, source = float(metadata["LabelingEfficiency"]), "sidecar LabelingEfficiency"
    else:
        a, source = DEFAULT_LABELING_EFFICIENCY[asl_type], f"default for {asl_type} (Alsop et al. 2015)"
    n = 0
    if metadata.get("BackgroundSuppression"):
        if "BackgroundSuppressionNumberPulses" in metadata:
            n = int(metadata["BackgroundSuppressionNumberPulses"])
        else:
            warnings.append("BackgroundSuppression is true but BackgroundSuppressionNumberPulses "
                            "is missing: no background-suppression efficiency applied")
    bs = params.bs_pulse_efficiency ** n
    return a * bs, {"LabelingEfficiencyLabel": a, "LabelingEfficiencySource": source,
                    "BackgroundSuppressionPulses": n, "BackgroundSuppressionEfficiency": bs,
                    "warnings": warnings}


def m0_recovery_factor(tr, t1_tissue: float = 1.3):
    """Return 1 / (1 − exp(−TR/T1_tissue)), the M0 incomplete-recovery correction.

    Multiply a measured M0 acquired with repetition time ``TR`` (s) by this factor to
    obtain the fully relaxed M0 (Alsop et al. 2015, p. 113). Vectorised over ``tr``.
    """
    tr = np.asarray(tr, dtype=float)
    return 1.0 / (1.0 - np.exp(-tr / t1_tissue))


# ---------------------------------------------------------------------------- models

def cbf_pcasl(deltam, m0, pld, tau, alpha, t1_blood, partition_coefficient=0.9):
    """Single-PLD (P)CASL CBF (ml/100 g/min), Alsop et al. 2015 eq. 1.

    CBF = 6000 λ ΔM exp(PLD/T1b) / (2 α T1b M0 (1 − exp(−τ/T1b)))

    Parameters
    ----------
    deltam, m0 : array_like
        Control − label difference and equilibrium magnetisation (same units).
    pld, tau : float or array_like
        Post-labelling delay and labelling duration (s); broadcast with ``deltam``.
    alpha : float
        Labelling efficiency (including background suppression).
    t1_blood : float
        T1 of arterial blood (s).
    partition_coefficient : float
        λ (ml/g).
    """
    deltam, m0 = np.asarray(deltam, float), np.asarray(m0, float)
    return (UNIT_CONVERSION * partition_coefficient * deltam * np.exp(np.asarray(pld) / t1_blood)
            / (2.0 * alpha * t1_blood * m0 * (1.0 - np.exp(-np.asarray(tau) / t1_blood))))


def cbf_pasl(deltam, m0, ti, ti1, alpha, t1_blood, partition_coefficient=0.9):
    """Single-TI PASL CBF (ml/100 g/min) with QUIPSS II / Q2TIPS, Alsop et al. 2015 eq. 2.

    CBF = 6000 λ ΔM exp(TI/T1b) / (2 α TI1 M0)

    Parameters
    ----------
    ti : float or array_like
        Inversion time TI (BIDS ``PostLabelingDelay`` for PASL), s.
    ti1 : float
        Bolus duration TI1 (BIDS ``BolusCutOffDelayTime``; first value for Q2TIPS), s.
    """
    deltam, m0 = np.asarray(deltam, float), np.asarray(m0, float)
    return (UNIT_CONVERSION * partition_coefficient * deltam * np.exp(np.asarray(ti) / t1_blood)
            / (2.0 * alpha * ti1 * m0))


def kinetic_pcasl(cbf, att, pld, tau, alpha, t1_blood, partition_coefficient=0.9, m0=1.0):
    """ΔM of the general kinetic model for (P)CASL (Buxton et al. 1998).

    With f = CBF/6000 (ml/g/s) and labelled water relaxing with T1b (Alsop et al. 2015;
    Woods et al. 2024, eq. 2)::

        ΔM = 0                                                      PLD + τ ≤ ATT
        ΔM = 2 α M0 f T1b/λ · e^(−ATT/T1b) (1 − e^(−(τ+PLD−ATT)/T1b))   PLD < ATT < PLD + τ
        ΔM = 2 α M0 f T1b/λ · e^(−PLD/T1b) (1 − e^(−τ/T1b))             ATT ≤ PLD

    All arguments broadcast; returns ΔM in the units of ``m0``.
    """
    cbf, att, pld, tau = (np.asarray(x, float) for x in (cbf, att, pld, tau))
    f = cbf / UNIT_CONVERSION
    scale = 2.0 * alpha * np.asarray(m0, float) * f * t1_blood / partition_coefficient
    during = np.exp(-att / t1_blood) * (1.0 - np.exp(-(tau + pld - att) / t1_blood))
    after = np.exp(-pld / t1_blood) * (1.0 - np.exp(-tau / t1_blood))
    shape = np.where(att <= pld, after, np.where(att < pld + tau, during, 0.0))
    return scale * shape


def kinetic_pasl(cbf, att, ti, ti1, alpha, t1_blood, partition_coefficient=0.9, m0=1.0):
    """ΔM of the general kinetic model for PASL with bolus duration TI1 (Buxton et al. 1998)::

        ΔM = 0                                            TI ≤ ATT
        ΔM = 2 α M0 f/λ (TI − ATT) e^(−TI/T1b)              ATT < TI < ATT + TI1
        ΔM = 2 α M0 f/λ TI1 e^(−TI/T1b)                     TI ≥ ATT + TI1

    f = CBF/6000 (ml/g/s). All arguments broadcast.
    """
    cbf, att, ti = (np.asarray(x, float) for x in (cbf, att, ti))
    f = cbf / UNIT_CONVERSION
    scale = 2.0 * alpha * np.asarray(m0, float) * f / partition_coefficient * np.exp(-ti / t1_blood)
    width = np.clip(ti - att, 0.0, ti1)
    return scale * width


def fit_kinetic_model(deltam, m0, plds, tau_or_ti1, alpha, t1_blood, partition_coefficient=0.9,
                      model="pcasl", att_bounds=(0.0, 3.0), weights=None, grid_step=0.01,
                      n_refine=40):
    """Fit CBF and ATT of the general kinetic model voxel-wise (vectorised).

    For a fixed ATT the model is linear in CBF, so CBF is eliminated in closed form
    (variable projection, Golub & Pereyra 1973): CBF(ATT) = Σ w b y / Σ w b², with
    b the model for CBF = 1 and y = ΔM/M0, leaving a 1-D residual in ATT. It is
    minimised globally on a grid (``grid_step``) over ``att_bounds`` and refined by a
    golden-section search in the bracketing grid cell, all voxels at once. This finds the
    global least-squares optimum (the ATT residual is not convex: a local
    Levenberg-Marquardt started at the wrong side of a PLD can stall) and is exact to
    ~1e-9 s on noiseless data; see ``benchmarks/bench_multipld_fit.py`` for the
    comparison with ``scipy.optimize.least_squares`` per voxel.

    Parameters
    ----------
    deltam : ndarray, shape (V, T)
        ΔM of V voxels at T delays.
    m0 : ndarray, shape (V,)
        M0 of each voxel (> 0).
    plds : ndarray, shape (T,) or (V, T)
        PLD (PCASL) or TI (PASL) of each measurement, s (per voxel with slice timing).
    tau_or_ti1 : float or ndarray, shape (T,) or (V, T)
        Labelling duration τ (PCASL) or bolus duration TI1 (PASL), s.
    alpha, t1_blood, partition_coefficient : float
    model : {"pcasl", "pasl"}
    att_bounds : tuple of float
        ATT search interval (s).
    weights : ndarray, shape (T,), optional
        Weight of each measurement (e.g. number of averages).
    grid_step : float
        Grid spacing of the global search (s).
    n_refine : int
        Golden-section iterations (interval shrinks by 0.618 each).

    Returns
    -------
    cbf : ndarray (V,)
        ml/100 g/min.
    att : ndarray (V,)
        s. Where ATT is not identifiable (all delays longer than the transit time gives
        an ATT-independent signal) the shortest ATT consistent with the data is returned.
    rss : ndarray (V,)
        Weighted residual sum of squares of ΔM/M0.
    """
    y = np.asarray(deltam, float) / np.asarray(m0, float)[:, None]
    V, T = y.shape
    plds = np.broadcast_to(np.asarray(plds, float), (V, T)) if np.ndim(plds) == 2 else \
        np.broadcast_to(np.asarray(plds, float)[None, :], (V, T))
    tt = np.asarray(tau_or_ti1, float)
    tt = np.broadcast_to(tt if tt.ndim == 2 else np.atleast_1d(tt)[None, :], (V, T))
    w = np.ones(T) if weights is None else np.asarray(weights, float)
    fn = {"pcasl": kinetic_pcasl, "pasl": kinetic_pasl}[model]

    def profile(att):  # att (V,) -> cbf (V,), rss (V,)
        b = fn(1.0, att[:, None], plds, tt, alpha, t1_blood, partition_coefficient)
        sbb = (w * b * b).sum(1)
        sby = (w * b * y).sum(1)
        with np.errstate(divide="ignore", invalid="ignore"):
            cbf = np.where(sbb > 0, sby / sbb, 0.0)
            rss = (w * y * y).sum(1) - np.where(sbb > 0, sby * sby / sbb, 0.0)
        return cbf, rss

    lo, hi = att_bounds
    grid = np.arange(lo, hi + grid_step / 2, grid_step)
    best_rss = np.full(V, np.inf)
    best_k = np.zeros(V, int)
    for k, a in enumerate(grid):
        _, rss = profile(np.full(V, a))
        # strict improvement beyond rounding: in a flat profile the shortest ATT is kept
        with np.errstate(invalid="ignore"):
            better = rss < np.where(np.isfinite(best_rss), best_rss - 1e-12 * np.abs(best_rss), np.inf)
        best_rss = np.where(better, rss, best_rss)
        best_k = np.where(better, k, best_k)
    a_lo = np.maximum(grid[best_k] - grid_step, lo)
    a_hi = np.minimum(grid[best_k] + grid_step, hi)
    g = (np.sqrt(5.0) - 1.0) / 2.0
    c = a_hi - g * (a_hi - a_lo)
    d = a_lo + g * (a_hi - a_lo)
    fc, fd = profile(c)[1], profile(d)[1]
    for _ in range(n_refine):
        left = fc <= fd
        a_hi = np.where(left, d, a_hi)
        a_lo = np.where(left, a_lo, c)
        new_c = a_hi - g * (a_hi - a_lo)
        new_d = a_lo + g * (a_hi - a_lo)
        c_next = np.where(left, new_c, d)
        d_next = np.where(left, c, new_d)
        fc_next = np.where(left, np.nan, fd)
        fd_next = np.where(left, fc, np.nan)
        need_c, need_d = np.isnan(fc_next), np.isnan(fd_next)
        if need_c.any():
            fc_next = np.where(need_c, profile(c_next)[1], fc_next)
        if need_d.any():
            fd_next = np.where(need_d, profile(d_next)[1], fd_next)
        c, d, fc, fd = c_next, d_next, fc_next, fd_next
    att = 0.5 * (a_lo + a_hi)
    cbf, rss = profile(att)
    grid_att = grid[best_k]
    cbf_g, rss_g = profile(grid_att)
    use_grid = rss_g < rss  # flat profiles: keep the grid optimum
    att = np.where(use_grid, grid_att, att)
    cbf = np.where(use_grid, cbf_g, cbf)
    rss = np.where(use_grid, rss_g, rss)
    return cbf, att, rss


# ---------------------------------------------------------------------------- scans

@dataclass
class QuantResult:
    """CBF of one scan on its native grid, with everything needed to write it.

    Attributes
    ----------
    cbf : nibabel.Nifti1Image
        ml/100 g/min, float32, zero outside the brain mask.
    aslref : nibabel.Nifti1Image
        Registration reference (M0, else mean control, else mean ΔM or CBF).
    mask : nibabel.Nifti1Image
        Brain mask (uint8).
    att : nibabel.Nifti1Image or None
        Arterial transit time (s), multi-delay data only.
    sidecar : dict
        Metadata of the CBF map: model, every constant used, sources, warnings.
    """

    cbf: nib.Nifti1Image
    aslref: nib.Nifti1Image
    mask: nib.Nifti1Image
    att: nib.Nifti1Image | None
    sidecar: dict
    warnings: list = field(default_factory=list)


def _load_data(path, what) -> np.ndarray:
    try:
        data = np.asarray(nib.load(str(path)).dataobj, dtype=np.float64)
    except Exception as e:  # noqa: BLE001 - nibabel raises several types for broken data
        raise InputError(f"{path}: voxel data cannot be read ({type(e).__name__}: {e})") from None
    return data


def _smooth(data3d, affine, fwhm):
    if not fwhm:
        return data3d
    from nilearn.image import smooth_img

    return smooth_img(nib.Nifti1Image(data3d, affine), fwhm).get_fdata()


def _per_volume(meta, key, n):
    v = meta.get(key)
    arr = np.atleast_1d(np.asarray(v, dtype=float))
    return np.full(n, float(arr[0])) if arr.size == 1 else arr


def _m0_tr(meta: dict, idx, source, params: QuantParams, warnings: list):
    """Return the M0 repetition time (s, array per M0 volume) or None, with fallbacks."""
    if params.m0_tr is not None:
        return np.full(max(len(idx), 1), params.m0_tr), "parameter m0_tr"
    rtp = meta.get("RepetitionTimePreparation")
    if rtp is not None:
        arr = np.atleast_1d(np.asarray(rtp, dtype=float))
        if arr.size > 1:
            if idx is None or max(idx, default=-1) >= arr.size:
                arr = arr[:1]
            else:
                arr = arr[idx]
        if np.all(np.isfinite(arr)) and np.all(arr > 0):
            return arr, "RepetitionTimePreparation"
        warnings.append(f"{source}: RepetitionTimePreparation is {rtp!r}, which is not physical "
                        "(must be > 0 s)")
    tr = meta.get("RepetitionTime")
    if isinstance(tr, (int, float)) and not isinstance(tr, bool) and np.isfinite(tr) and tr > 0:
        warnings.append(f"{source}: M0 repetition time taken from RepetitionTime ({tr:g} s) as "
                        "a fallback for RepetitionTimePreparation")
        return np.full(max(len(idx) if idx is not None else 1, 1), float(tr)), \
            "RepetitionTime (fallback)"
    warnings.append(f"{source}: no valid RepetitionTimePreparation or RepetitionTime: M0 not "
                    "corrected for incomplete recovery (CBF overestimated if TR_M0 < 5 s)")
    return None, "none"


def quantify_scan(scan: ASLScan, params: QuantParams | None = None,
                  bids_dir=None) -> QuantResult:
    """Quantify CBF for one validated BIDS-ASL scan on its native grid.

    Steps: split volumes by ``aslcontext``; ΔM = mean(control − label) over pairs (or
    mean ``deltam``); M0 from ``m0scan`` volumes (Included), the ``_m0scan`` file
    (Separate), ``M0Estimate`` (Estimate; BIDS defines it as the M0 of blood, so the
    tissue-equivalent λ·M0Estimate enters the formula), or the mean control (Absent,
    allowed only without background suppression, as in ASLPrep); incomplete-recovery
    correction with the M0 repetition time (with a fallback and a warning when
    ``RepetitionTimePreparation`` is not physical); M0 scale factor; slice-time-shifted
    delays for 2D readouts; the single-delay white-paper formula or the multi-delay
    kinetic fit; brain mask from the reference image (nilearn ``compute_epi_mask``)
    restricted to voxels with finite data and M0 > 0.

    Parameters
    ----------
    scan : ASLScan
        From :func:`ketamine_cbf.io.bids.load_scan`.
    params : QuantParams, optional
    bids_dir : str or Path, optional
        Dataset root; file paths in the sidecar are recorded relative to it.

    Returns
    -------
    QuantResult

    Raises
    ------
    InputError
        Non-finite voxels in much of the brain, M0 ≤ 0 in the brain, or a median brain CBF
        outside ``params.plausible_cbf`` (the message names the file and the likely field).
    """
    from pathlib import Path

    params = params or QuantParams()
    meta = scan.metadata
    warnings: list[str] = []
    root = Path(bids_dir).resolve() if bids_dir is not None else None
    rel = (lambda p: str(Path(p).resolve().relative_to(root)) if root is not None
           and Path(p).resolve().is_relative_to(root) else Path(p).name)
    src = rel(scan.sidecar)  # named in warnings: relative, so sidecars are machine-independent
    data = _load_data(scan.path, "ASL")
    if data.ndim == 3:
        data = data[..., None]
    affine = scan.affine
    n_vol = data.shape[3]
    finite = np.all(np.isfinite(data), axis=3)
    data = np.where(np.isfinite(data), data, 0.0)

    ctx = scan.aslcontext
    lab, con, dm_idx = scan.indices("label"), scan.indices("control"), scan.indices("deltam")
    cbf_idx, m0_idx = scan.indices("cbf"), scan.indices("m0scan")
    if "noRF" in ctx:
        warnings.append(f"{rel(scan.aslcontext_path)}: {ctx.count('noRF')} noRF volume(s) ignored")
    asl_type = meta["ArterialSpinLabelingType"]
    m0_type = meta["M0Type"]

    # --- ΔM and its delays
    plds_all = _per_volume(meta, "PostLabelingDelay", n_vol)
    if asl_type == "PASL":
        bco = np.atleast_1d(np.asarray(meta["BolusCutOffDelayTime"], float))
        tt_all = np.full(n_vol, bco[0])
    else:
        tt_all = _per_volume(meta, "LabelingDuration", n_vol)
    use_cbf_volumes = False
    if lab:
        diffs = data[..., con] - data[..., lab]
        d_plds, d_tt = plds_all[con], tt_all[con]
        if not np.allclose(plds_all[lab], plds_all[con]):
            raise InputError(f"{scan.sidecar}: PostLabelingDelay differs between paired label and control "
                             "volumes")
        n_avg = len(lab)
        source_desc = f"{n_avg} control-label pairs"
    elif dm_idx:
        diffs = data[..., dm_idx]
        d_plds, d_tt = plds_all[dm_idx], tt_all[dm_idx]
        n_avg = len(dm_idx)
        source_desc = f"{n_avg} deltam volume(s)"
        if lab or con:
            warnings.append("label/control volumes ignored: deltam volumes used")
    else:
        use_cbf_volumes = True
        diffs = data[..., cbf_idx]
        d_plds, d_tt = plds_all[cbf_idx], tt_all[cbf_idx]
        n_avg = len(cbf_idx)
        source_desc = f"{n_avg} scanner-computed cbf volume(s) (no quantification)"
        warnings.append("CBF taken from the series' cbf volume(s): the scanner's quantification "
                        "and constants are used as is")
    mean_control = data[..., con].mean(axis=3) if con else None

    # --- M0
    m0 = None
    m0_info: dict = {"M0Type": m0_type}
    if not use_cbf_volumes:
        if m0_type == "Included":
            m0_vols = data[..., m0_idx]
            tr, tr_src = _m0_tr(meta, m0_idx, src, params, warnings)
            m0_info["M0Source"] = f"{len(m0_idx)} m0scan volume(s) of {rel(scan.path)}"
        elif m0_type == "Separate":
            m0_img = nib.load(str(scan.m0_path))
            m0_data = _load_data(scan.m0_path, "M0")
            if m0_data.shape[:3] != data.shape[:3] or not np.allclose(m0_img.affine, affine, atol=1e-3):
                from nilearn.image import resample_to_img

                m0_img = resample_to_img(nib.Nifti1Image(m0_data, m0_img.affine),
                                         nib.Nifti1Image(data[..., 0], affine),
                                         interpolation="continuous", force_resample=True,
                                         copy_header=True)
                m0_data = m0_img.get_fdata()
                warnings.append(f"{rel(scan.m0_path)}: M0 on a different grid than the ASL "
                                "series, resampled (trilinear) to the ASL grid")
            m0_vols = m0_data if m0_data.ndim == 4 else m0_data[..., None]
            finite &= np.all(np.isfinite(m0_vols), axis=3)
            m0_vols = np.where(np.isfinite(m0_vols), m0_vols, 0.0)
            tr, tr_src = _m0_tr(scan.m0_metadata, list(range(m0_vols.shape[3])), rel(scan.m0_sidecar),
                                params, warnings)
            m0_info["M0Source"] = rel(scan.m0_path)
        elif m0_type == "Absent":
            m0_vols = data[..., con]
            tr, tr_src = _m0_tr(meta, con, src, params, warnings)
            m0_info["M0Source"] = f"mean of {len(con)} control volume(s) (M0Type Absent)"
            warnings.append("M0Type is Absent: the mean control image stands in for M0 "
                            "(valid only without background suppression)")
        else:  # Estimate
            m0_vols = None
            tr, tr_src = None, "not applicable (M0Estimate)"
            m0_info["M0Source"] = "sidecar M0Estimate (M0 of blood, BIDS): M0_tissue = λ·M0Estimate"
        if m0_vols is not None:
            if m0_vols.shape[3] == 0 or not np.any(m0_vols > 0):
                raise InputError(f"{scan.m0_path or scan.path}: M0 volume(s) have no positive "
                                 "signal (M0 must be > 0 in the brain)")
            if tr is not None:
                fac = m0_recovery_factor(tr, params.t1_tissue)
                fac = np.broadcast_to(fac, (m0_vols.shape[3],)) if fac.size in (1, m0_vols.shape[3]) \
                    else np.full(m0_vols.shape[3], float(np.mean(fac)))
                m0 = (m0_vols * fac).mean(axis=3)
                m0_info["M0RepetitionTime"] = [float(x) for x in np.unique(tr)]
                m0_info["M0RecoveryCorrectionFactor"] = float(np.mean(fac))
            else:
                m0 = m0_vols.mean(axis=3)
                m0_info["M0RepetitionTime"] = None
                m0_info["M0RecoveryCorrectionFactor"] = 1.0
            m0_info["M0RepetitionTimeSource"] = tr_src
            m0 = _smooth(m0, affine, params.m0_fwhm)
            aslref_data = m0_vols.mean(axis=3)
        else:
            m0 = np.full(data.shape[:3], params.partition_coefficient * float(meta["M0Estimate"]))
            m0_info["M0Estimate"] = float(meta["M0Estimate"])
            aslref_data = mean_control if mean_control is not None else diffs.mean(axis=3)
        m0 = m0 * params.m0_scale
        m0_info["M0ScaleFactor"] = params.m0_scale
        m0_info["M0SmoothingFWHM"] = params.m0_fwhm
    else:
        aslref_data = mean_control if mean_control is not None else (
            data[..., m0_idx].mean(axis=3) if m0_idx else diffs.mean(axis=3))

    # --- brain mask
    mask = _brain_mask(aslref_data, affine, finite, scan.path)
    n_mask = int(mask.sum())
    bad = (~finite) & _brain_mask(aslref_data, affine, np.ones_like(finite), scan.path)
    if bad.any():
        frac = bad.sum() / max(n_mask + bad.sum(), 1)
        if frac > 0.05:
            raise InputError(f"{scan.path}: {100 * frac:.1f}% of brain voxels hold NaN/inf values")
        warnings.append(f"{rel(scan.path)}: {int(bad.sum())} brain voxel(s) with NaN/inf excluded "
                        "from the mask")
    if m0 is not None:
        # voxels on the mask's edge with M0 <= 0 (background) are dropped silently; inside
        # the eroded mask they mean a broken M0: a few are dropped with a warning, many
        # stop the scan.
        from scipy.ndimage import binary_erosion

        core = binary_erosion(mask, iterations=1)
        nonpos = core & ~(m0 > 0)
        if nonpos.sum() > 0.01 * max(int(core.sum()), 1):
            raise InputError(f"{scan.m0_path or scan.path}: M0 <= 0 in "
                             f"{100 * nonpos.sum() / max(int(core.sum()), 1):.1f}% of brain "
                             "voxels (M0 must be > 0)")
        if nonpos.any():
            warnings.append(f"{int(nonpos.sum())} brain voxel(s) with M0 <= 0 excluded from the mask")
        mask &= m0 > 0
        n_mask = int(mask.sum())

    # --- constants
    if params.t1_blood is not None:
        t1b, t1b_src = params.t1_blood, "parameter"
    else:
        t1b = t1_blood_for_field(float(meta["MagneticFieldStrength"]), str(scan.sidecar))
        t1b_src = f"default at {float(meta['MagneticFieldStrength']):g} T"
    alpha, eff_info = labeling_efficiency(meta, params)
    warnings.extend(eff_info.pop("warnings"))
    lam = params.partition_coefficient

    # --- slice timing (2D readouts)
    voxel_offset = np.zeros(data.shape[:3])
    slice_timing_used = False
    if meta.get("MRAcquisitionType") == "2D":
        if "SliceTiming" in meta:
            st = np.asarray(meta["SliceTiming"], float)
            direction = str(meta.get("SliceEncodingDirection", "k"))
            axis = "ijk".index(direction[0])
            if direction.endswith("-"):
                st = st[::-1]
            shape = [1, 1, 1]
            shape[axis] = -1
            voxel_offset = np.broadcast_to(st.reshape(shape), data.shape[:3]).copy()
            slice_timing_used = True
        else:
            warnings.append(f"{src}: MRAcquisitionType is 2D but SliceTiming is missing: the same "
                            "PLD is used for every slice (CBF underestimated in later slices)")

    # --- quantify
    vox = np.nonzero(mask)
    unique = sorted({(round(float(p), 6), round(float(t), 6)) for p, t in zip(d_plds, d_tt)})
    multi = len(unique) > 1 and not use_cbf_volumes
    att_img = None
    cbf = np.zeros(data.shape[:3])
    if use_cbf_volumes:
        cbf[vox] = diffs[vox].mean(axis=1)
        model = "scanner-computed CBF volumes (averaged)"
    elif not multi:
        dm = diffs[vox].mean(axis=1)
        pld = d_plds[0] + voxel_offset[vox]
        if asl_type == "PASL":
            cbf[vox] = cbf_pasl(dm, m0[vox], pld, d_tt[0], alpha, t1b, lam)
            model = "single-TI PASL, white paper (Alsop et al. 2015, eq. 2)"
        else:
            cbf[vox] = cbf_pcasl(dm, m0[vox], pld, d_tt[0], alpha, t1b, lam)
            model = f"single-PLD {asl_type}, white paper (Alsop et al. 2015, eq. 1)"
    else:
        groups = [[k for k in range(len(d_plds)) if (round(float(d_plds[k]), 6),
                                                      round(float(d_tt[k]), 6)) == u] for u in unique]
        y = np.stack([diffs[vox][:, g].mean(axis=1) for g in groups], axis=1)
        w = np.array([len(g) for g in groups], float)
        p = np.array([u[0] for u in unique])[None, :] + voxel_offset[vox][:, None]
        tt = np.array([u[1] for u in unique])
        kind = "pasl" if asl_type == "PASL" else "pcasl"
        c, a, _ = fit_kinetic_model(y, m0[vox], p, tt, alpha, t1b, lam, model=kind,
                                    att_bounds=params.att_bounds, weights=w)
        cbf[vox] = c
        att = np.zeros(data.shape[:3])
        att[vox] = a
        att_img = nib.Nifti1Image(att.astype(np.float32), affine)
        att_img.header.set_xyzt_units("mm")
        model = (f"multi-delay {asl_type}: general kinetic model (Buxton et al. 1998), CBF and ATT "
                 "fitted by variable-projection least squares")

    med = float(np.median(cbf[vox])) if n_mask else float("nan")
    lo, hi = params.plausible_cbf
    if params.check_plausible and not (lo <= med <= hi):
        hint = ("check M0 scaling (M0 scale factor), LabelingEfficiency and the M0 volumes"
                if not use_cbf_volumes else "check the cbf volumes' units")
        raise InputError(f"{scan.path}: median brain CBF {med:.3g} ml/100 g/min is outside the "
                         f"plausible range {lo:g}-{hi:g}: {hint}")
    if not (lo <= med <= hi):
        warnings.append(f"median brain CBF {med:.3g} ml/100 g/min is outside {lo:g}-{hi:g}")

    cbf_img = nib.Nifti1Image(cbf.astype(np.float32), affine)
    cbf_img.header.set_xyzt_units("mm")
    aslref = nib.Nifti1Image(aslref_data.astype(np.float32), affine)
    aslref.header.set_xyzt_units("mm")
    mask_img = nib.Nifti1Image(mask.astype(np.uint8), affine)
    mask_img.header.set_xyzt_units("mm")

    sidecar = {
        "Units": "mL/100 g/min",
        "Sources": [rel(scan.path)] + ([rel(scan.m0_path)] if scan.m0_path else []),
        "SidecarsMerged": [rel(p) for p in scan.sidecars],
        "Model": model,
        "DeltaMSource": source_desc,
        "ArterialSpinLabelingType": asl_type,
        "MRAcquisitionType": meta.get("MRAcquisitionType", "n/a"),
        "PostLabelingDelay": sorted({float(x) for x in d_plds}),
        ("BolusCutOffDelayTime" if asl_type == "PASL" else "LabelingDuration"):
            sorted({float(x) for x in d_tt}),
        "SliceTimingCorrection": slice_timing_used,
        "LabelingEfficiency": alpha,
        **eff_info,
        "BloodT1": t1b,
        "BloodT1Source": t1b_src,
        "TissueT1": params.t1_tissue,
        "PartitionCoefficient": lam,
        "MagneticFieldStrength": float(meta["MagneticFieldStrength"]),
        **m0_info,
        "BrainMaskVoxels": n_mask,
        "MedianBrainCBF": med,
        "Parameters": params.as_dict(),
        "Warnings": warnings,
    }
    if multi:
        sidecar["ATTBounds"] = list(params.att_bounds)
    return QuantResult(cbf=cbf_img, aslref=aslref, mask=mask_img, att=att_img, sidecar=sidecar,
                       warnings=warnings)


def _brain_mask(ref, affine, finite, path) -> np.ndarray:
    """Brain mask of a reference image (nilearn ``compute_epi_mask``), restricted to ``finite``."""
    from nilearn.masking import compute_epi_mask

    ref = np.where(finite, ref, 0.0)
    if not np.any(ref > 0):
        raise InputError(f"{path}: reference image (M0 / control) has no positive signal")
    try:
        m = compute_epi_mask(nib.Nifti1Image(ref.astype(np.float32), affine), opening=1)
        m = np.asarray(m.dataobj) > 0
    except ValueError as e:
        raise InputError(f"{path}: no brain mask could be computed from the reference image "
                         f"({e})") from None
    return m & finite
