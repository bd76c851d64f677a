"""Options of the simulated dataset: one table gives names, defaults, checks and help.

The names are the keys of the YAML configuration's ``simulate:`` mapping, the keyword
arguments of :func:`ketamine_cbf.simulate.dataset.simulate_dataset` and (with ``-`` for ``_``)
the options of ``ketamine-cbf simulate``. Defaults reproduce the published study
(26 participants, ketamine raises ACC CBF in both arms, clinical correlations under
placebo only); every effect size can be changed to see what an analysis recovers.

Units: CBF in ml/100 g/min, times in s, distances in mm, fractions are relative
changes (0.1 = 10 %).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

from ketamine_cbf.errors import UsageError
from ketamine_cbf.study import RECEPTORS

__all__ = ["Option", "OPTIONS", "OPTION_BY_NAME", "DEFAULTS", "validate"]

#: PET maps a receptor component can be planted from (keys of ketamine_cbf.reference.paths.RECEPTOR_FILES).


@dataclass(frozen=True)
class Option:
    """One simulation option: name, default, kind (for parsing) and help text."""

    name: str
    default: Any
    kind: str  # int | float | bool | str | floats3 | receptors
    help: str
    check: Callable[[Any], str | None] | None = None
    group: str = "general"
    choices: tuple = field(default=())


def _positive(v):
    return None if v > 0 else "must be > 0"


def _non_negative(v):
    return None if v >= 0 else "must be >= 0"


def _fraction(v):
    return None if 0 <= v < 1 else "must be in [0, 1)"


def _unit_interval(v):
    return None if 0 <= v <= 1 else "must be in [0, 1]"


def _corr(v):
    return None if -0.95 <= v <= 0.95 else "must be a correlation in [-0.95, 0.95]"


def _resolution(v):
    return None if v in (1, 2, 3, 4, 5, 6) else "must be an integer number of mm in 1..6"


def _subjects(v):
    return None if 4 <= v <= 500 else "must be between 4 and 500 (the crossover needs both orders)"


def _voxels(v):
    if len(v) != 3 or any(not (0.5 <= x <= 12) for x in v):
        return "must be three voxel sizes in mm, each 0.5-12"
    return None


def _receptors(v):
    bad = sorted(set(v) - set(RECEPTORS))
    if bad:
        return f"unknown receptor map(s) {', '.join(bad)}; choose from {', '.join(RECEPTORS)}"
    if any(not math.isfinite(float(a)) for a in v.values()):
        return "amplitudes must be finite numbers"
    return None


#: Every option of the simulation: name, default, check and help text (the CLI's options).
OPTIONS: tuple[Option, ...] = (
    # --- study size and format --------------------------------------------------------
    Option("subjects", 26, "int", "number of participants (the study: 26)", _subjects, "dataset"),
    Option("null", False, "bool", "no ketamine, receptor or clinical effects at all "
           "(for false-positive checks); everything else identical", None, "dataset"),
    Option("resolution", 2, "int", "grid of the ground truth in MNI space (mm); 4 gives a "
           "tiny fast dataset", _resolution, "dataset"),
    Option("asl_format", "deltam", "str", "ASL series: 'deltam' (GE-style deltaM + M0) or "
           "'pairs' (control/label pairs + M0)", None, "dataset", ("deltam", "pairs")),
    Option("voxel_size", (3.5, 3.5, 4.0), "floats3", "native ASL voxel size (mm, x y z), "
           "3D pCASL-like", _voxels, "acquisition"),
    Option("anat_voxel_size", (2.0, 2.0, 2.0), "floats3", "voxel size of the simulated T1w "
           "(mm)", _voxels, "acquisition"),
    Option("n_pairs", 6, "int", "number of control/label pairs with asl_format 'pairs'",
           _positive, "acquisition"),
    # --- acquisition ----------------------------------------------------------------
    Option("post_labeling_delay", 2.0, "float", "PostLabelingDelay (s)", _positive, "acquisition"),
    Option("labeling_duration", 1.5, "float", "LabelingDuration (s)", _positive, "acquisition"),
    Option("bs_pulses", 4, "int", "number of background-suppression pulses (each lowers "
           "labelling efficiency by 5 %)", _non_negative, "acquisition"),
    Option("tr", 4.852, "float", "RepetitionTimePreparation of the ASL volumes (s)", _positive,
           "acquisition"),
    Option("m0_tr", 2.0, "float", "RepetitionTimePreparation of the M0 volume (s); < 5 s means "
           "incomplete recovery that quantification must correct", _positive, "acquisition"),
    Option("snr_deltam", 6.0, "float", "signal-to-noise ratio of deltaM in pure grey matter at "
           "the mean GM CBF, for a 3.5 x 3.5 x 4 mm voxel (scales with the voxel volume)",
           _positive, "acquisition"),
    Option("snr_m0", 60.0, "float", "signal-to-noise ratio of the M0 image in grey matter, "
           "for a 3.5 x 3.5 x 4 mm voxel (scales with the voxel volume)", _positive,
           "acquisition"),
    Option("psf_fwhm", (1.1, 1.1, 1.6), "floats3", "point-spread function FWHM in native "
           "voxels (x y z); 3D readouts blur most through-plane", lambda v: None if (
               len(v) == 3 and all(0 <= x <= 5 for x in v)) else "must be three values 0-5",
           "acquisition"),
    Option("coil_bias", 0.25, "float", "strength of the smooth receive-coil bias field "
           "(log-amplitude); it multiplies deltaM and M0 alike", _non_negative, "acquisition"),
    Option("max_rotation", 3.0, "float", "largest head rotation about each axis (degrees)",
           _non_negative, "acquisition"),
    Option("max_translation", 10.0, "float", "largest head translation along each axis (mm)",
           _non_negative, "acquisition"),
    # --- baseline CBF and its variability ----------------------------------------------
    Option("gm_cbf", 55.0, "float", "mean CBF of pure grey matter (ml/100 g/min)", _positive,
           "physiology"),
    Option("wm_cbf", 20.0, "float", "CBF of pure white matter (ml/100 g/min)", _positive,
           "physiology"),
    Option("subject_sd", 0.10, "float", "between-subject SD of global CBF (fraction)",
           _fraction, "physiology"),
    Option("subject_field_sd", 0.05, "float", "SD of smooth subject-specific regional CBF "
           "deviations (fraction)", _fraction, "physiology"),
    Option("session_sd", 0.04, "float", "between-session SD of global CBF (fraction)",
           _fraction, "physiology"),
    Option("run_sd", 0.05, "float", "between-run (within-session) SD of global CBF "
           "(fraction)", _fraction,
           "physiology"),
    Option("run_field_sd", 0.02, "float", "SD of smooth session- and run-specific regional "
           "deviations (fraction)", _fraction, "physiology"),
    Option("field_fwhm", 20.0, "float", "smoothness of the regional deviations (mm FWHM)",
           _positive, "physiology"),
    Option("sgacc_trait_sd", 10.0, "float", "between-subject SD of a subject-specific sgACC "
           "baseline CBF deviation (ml/100 g/min, peak)", _non_negative, "physiology"),
    # --- ketamine effects --------------------------------------------------------------
    Option("ketamine_global", 0.03, "float", "global CBF increase during ketamine (fraction)",
           lambda v: None if -0.5 < v < 1 else "must be in (-0.5, 1)", "ketamine"),
    *(Option(f"ketamine_{roi.lower()}", peak, "float",
             f"mean focal CBF increase at the {roi} peak (ml/100 g/min)", None, "ketamine")
      for roi, peak in (("sgACC", 10.0), ("pgACC", 12.0), ("dACC", 11.0))),
    Option("ketamine_sd", 8.0, "float", "between-subject SD of the focal ACC increases "
           "(ml/100 g/min)", _non_negative, "ketamine"),
    Option("ketamine_session_sd", 2.0, "float", "within-subject (between-session) SD of the "
           "focal ACC increases (ml/100 g/min)", _non_negative, "ketamine"),
    Option("blob_fwhm", 14.0, "float", "size of the focal ACC effects (mm FWHM)", _positive,
           "ketamine"),
    Option("naltrexone_attenuation", 0.0, "float", "fraction of the focal ketamine effect "
           "removed by naltrexone (the study: none)",
           _unit_interval, "ketamine"),
    Option("ketamine_receptors", {"MOR": 2.5, "mGluR5": 1.6}, "receptors",
           "receptor components of the ketamine effect: NAME=AMP, AMP in ml/100 g/min of "
           "parcel-mean CBF change per SD of the PET map across Schaefer-200 parcels; the part "
           "explained by the non-target maps is removed", _receptors, "receptors"),
    Option("interaction_receptors", {"MOR": -1.0, "GABAA-a5": -1.0}, "receptors",
           "receptor components of the interaction (effect after naltrexone - after "
           "placebo): NAME=AMP", _receptors, "receptors"),
    Option("receptor_specificity", 0.9, "float", "fraction (0-1) of the target maps' variance "
           "shared with the non-target PET maps that is removed from the planted receptor "
           "components (1: non-target maps exactly uncorrelated, target r capped near 0.5)",
           _unit_interval, "receptors"),
    # --- clinical correlations -----------------------------------------------------------
    *(Option(name, r, "float", f"planted r (placebo): {brain} vs {score}", _corr, "clinical")
      for name, r, brain, score in (
          ("r_psi_delusional", 0.56, "pgACC relative CBF change", "PSI delusional thinking"),
          ("r_psi_perceptual", 0.64, "pgACC relative CBF change", "PSI perceptual distortion"),
          ("r_madrs", 0.60, "baseline sgACC relative CBF", "day-1 MADRS improvement"),
          ("r_qids", 0.67, "baseline sgACC relative CBF", "day-1 QIDS-SR improvement"))),
    Option("r_naltrexone", 0.0, "float", "planted r of the same four pairs under naltrexone",
           _corr, "clinical"),
    Option("roi_radius", 10.0, "float", "radius of the spheres (mm, within GM) defining the "
           "truth-level ACC values the correlations are planted against", _positive, "clinical"),
)

OPTION_BY_NAME = {o.name: o for o in OPTIONS}
DEFAULTS = {o.name: o.default for o in OPTIONS}


def _coerce(opt: Option, value):
    kind = opt.kind
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ValueError("must be true or false")
    if kind == "int":
        if isinstance(value, bool):
            raise ValueError("must be an integer")
        f = float(value)
        if not f.is_integer():
            raise ValueError("must be an integer")
        return int(f)
    if kind == "float":
        if isinstance(value, bool):
            raise ValueError("must be a number")
        f = float(value)
        if not math.isfinite(f):
            raise ValueError("must be a finite number")
        return f
    if kind == "str":
        value = str(value)
        if opt.choices and value not in opt.choices:
            raise ValueError(f"must be one of {', '.join(opt.choices)}")
        return value
    if kind == "floats3":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = [value] * 3
        vals = tuple(float(v) for v in value)
        return vals
    if kind == "receptors":
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ValueError("must be a mapping of receptor name to amplitude")
        return {str(k): float(v) for k, v in value.items()}
    raise AssertionError(kind)  # pragma: no cover


def validate(options: dict) -> dict:
    """Return the complete, checked option set: defaults updated with ``options``.

    Parameters
    ----------
    options : dict
        Option values by name (the ``simulate:`` mapping of a configuration).

    Returns
    -------
    dict
        Every option of :data:`OPTIONS`, coerced to its type.

    Raises
    ------
    UsageError
        Unknown option name or a value out of range; the message names the option.
    """
    unknown = sorted(set(options) - set(OPTION_BY_NAME))
    if unknown:
        raise UsageError(f"simulate: unknown option(s) {', '.join(unknown)}; "
                         f"allowed: {', '.join(OPTION_BY_NAME)}")
    out = dict(DEFAULTS)
    for name, value in options.items():
        opt = OPTION_BY_NAME[name]
        try:
            v = _coerce(opt, value)
        except (TypeError, ValueError) as e:
            msg = str(e) if str(e).startswith("must") else f"must be of type {opt.kind}"
            raise UsageError(f"simulate: {name} {msg} (got {value!r})") from None
        problem = opt.check(v) if opt.check else None
        if problem:
            raise UsageError(f"simulate: {name} {problem} (got {value!r})")
        out[name] = v
    return out
