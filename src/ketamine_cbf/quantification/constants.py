"""Where each constant of a scan's quantification comes from: options, sidecar, defaults.

:class:`QuantParams` holds the options (every one recorded in the output sidecar; its
defaults equal the parameters cell of ``notebooks/01_quantification.ipynb`` and the options
of ``ketamine-cbf quantify``). The functions here resolve, for one scan, the T1 of blood
(:func:`t1_blood_for_field`), the labelling efficiency (:func:`labeling_efficiency`) and
the M0 repetition time (:func:`m0_repetition_time`), each with the source it came from, so
the sidecar can say "parameter", "sidecar" or "default".

Defaults (cited in :mod:`ketamine_cbf.quantification.models`): λ = 0.9 ml/g; T1 of blood
1.65 s at 3 T, 1.35 s at 1.5 T; α 0.85 PCASL, 0.68 CASL, 0.98 PASL, times 0.95 per
background-suppression pulse; tissue T1 1.3 s for the M0 recovery correction.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ketamine_cbf._docs import fill_doc
from ketamine_cbf.errors import InputError, UsageError
from ketamine_cbf.quantification import _docs  # noqa: F401 - registers the stage's parameter texts
from ketamine_cbf.quantification.models import (
    DEFAULT_LABELING_EFFICIENCY,
    PARTITION_COEFFICIENT,
    T1_BLOOD_BY_FIELD,
    effective_labelling_efficiency,
)

__all__ = ["QuantParams", "t1_blood_for_field", "labeling_efficiency", "m0_repetition_time"]


@fill_doc
@dataclass(frozen=True)
class QuantParams:
    """Constants and options of the quantification (defaults cited in :mod:`~ketamine_cbf.quantification.models`).

    Attributes
    ----------
    %(partition_coefficient)s
    t1_blood : float or None
        T1 of arterial blood (s); None: from ``MagneticFieldStrength``.
    %(t1_tissue)s
    %(labeling_efficiency)s
    bs_pulse_efficiency : float
        Efficiency factor per background-suppression inversion pulse.
    %(m0_scale)s
    m0_tr : float or None
        Override of the M0 repetition time (s); None: ``RepetitionTimePreparation``.
    %(m0_fwhm)s
    att_bounds : tuple of float
        Search interval of the arterial transit time in the multi-delay fit (s).
    %(plausible_cbf)s
    check_plausible : bool
        Apply the ``plausible_cbf`` check.

    Raises
    ------
    UsageError
        A constant not > 0, an efficiency above 1, a negative smoothing or bad ATT bounds.

    References
    ----------
    .. footbibliography::
    """

    partition_coefficient: float = PARTITION_COEFFICIENT
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


def t1_blood_for_field(field_strength: float, source: str = "MagneticFieldStrength") -> float:
    """Return the T1 of arterial blood (s) for a field strength (T).

    1.65 s at 3 T :footcite:p:`lu2004`, 1.35 s at 1.5 T :footcite:p:`alsop2015`. Other field
    strengths need an explicit value (``t1_blood``).

    Parameters
    ----------
    field_strength : float
        Static field, T (BIDS ``MagneticFieldStrength``).
    source : str
        The file the value came from, named in the error message.

    Returns
    -------
    float

    Raises
    ------
    InputError
        Field strength not within 0.1 T of 1.5 or 3 T.

    References
    ----------
    .. footbibliography::
    """
    for b0, t1 in T1_BLOOD_BY_FIELD.items():
        if abs(float(field_strength) - b0) <= 0.1:
            return t1
    raise InputError(f"{source}: MagneticFieldStrength {field_strength:g} T has no default blood "
                     "T1 (1.5 or 3 T); set it explicitly (--t1-blood / t1_blood)")


def labeling_efficiency(metadata: dict, params: QuantParams) -> tuple[float, dict]:
    """Return the effective labelling efficiency α of a scan and how it was obtained.

    α = α_label · η_BS^n (:func:`~ketamine_cbf.quantification.models.effective_labelling_efficiency`),
    with α_label the parameter override, else the sidecar's ``LabelingEfficiency``, else
    the labelling type's default (0.85 PCASL, 0.68 CASL, 0.98 PASL; :footcite:t:`alsop2015`),
    and η_BS = ``params.bs_pulse_efficiency`` per background-suppression pulse
    :footcite:p:`garcia2005`, n = ``BackgroundSuppressionNumberPulses`` when
    ``BackgroundSuppression`` is true.

    Parameters
    ----------
    metadata : dict
        The scan's merged sidecar.
    params : QuantParams

    Returns
    -------
    alpha : float
    info : dict
        ``LabelingEfficiencyLabel``, ``LabelingEfficiencySource``,
        ``BackgroundSuppressionPulses``, ``BackgroundSuppressionEfficiency``, ``warnings``.

    References
    ----------
    .. footbibliography::
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
    bs = effective_labelling_efficiency(1.0, n, params.bs_pulse_efficiency)
    return a * bs, {"LabelingEfficiencyLabel": a, "LabelingEfficiencySource": source,
                    "BackgroundSuppressionPulses": n, "BackgroundSuppressionEfficiency": bs,
                    "warnings": warnings}


def m0_repetition_time(metadata: dict, idx, source: str, params: QuantParams,
                       warnings: list) -> tuple[np.ndarray | None, str]:
    """Return the repetition time of the M0 volumes (s, one per volume) and its source.

    ``params.m0_tr`` if set, else ``RepetitionTimePreparation`` (per volume when it is a
    list), else ``RepetitionTime`` with a warning (a zero or missing
    ``RepetitionTimePreparation``, as in OpenNeuro ds000240, is not physical), else None
    (no recovery correction) with a warning.

    Parameters
    ----------
    metadata : dict
        Sidecar of the series holding the M0 volumes.
    idx : list of int or None
        Indices of the M0 volumes in that series.
    source : str
        The sidecar's name, for the warnings.
    params : QuantParams
    warnings : list of str
        Receives the fallbacks taken.

    Returns
    -------
    tr : numpy.ndarray or None
    source : str
        ``"parameter m0_tr"``, ``"RepetitionTimePreparation"``,
        ``"RepetitionTime (fallback)"`` or ``"none"``.
    """
    if params.m0_tr is not None:
        return np.full(max(len(idx), 1), params.m0_tr), "parameter m0_tr"
    rtp = metadata.get("RepetitionTimePreparation")
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
    tr = metadata.get("RepetitionTime")
    if isinstance(tr, (int, float)) and not isinstance(tr, bool) and np.isfinite(tr) and tr > 0:
        warnings.append(f"{source}: M0 repetition time taken from RepetitionTime ({tr:g} s) as "
                        "a fallback for RepetitionTimePreparation")
        return np.full(max(len(idx) if idx is not None else 1, 1), float(tr)), \
            "RepetitionTime (fallback)"
    warnings.append(f"{source}: no valid RepetitionTimePreparation or RepetitionTime: M0 not "
                    "corrected for incomplete recovery (CBF overestimated if TR_M0 < 5 s)")
    return None, "none"
