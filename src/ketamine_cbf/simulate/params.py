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

__all__ = ["Option", "OPTIONS", "OPTION_BY_NAME", "DEFAULTS", "PRESETS", "RENAMED", "validate"]

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


#: Acquisition presets: option values a preset sets unless they are given explicitly.
PRESETS: dict[str, dict[str, Any]] = {
    "ge": {},
    "siemens-motion": {"asl_format": "pairs", "n_pairs": 10, "motion_rms": 0.5,
                       "mover_fraction": 0.5, "spike_rate": 0.05},
}

#: Every option of the simulation: name, default, check and help text (the CLI's options).
OPTIONS: tuple[Option, ...] = (
    # --- study size and format --------------------------------------------------------
    Option("subjects", 26, "int", "number of participants (the study: 26)", _subjects, "dataset"),
    Option("null", False, "bool", "no ketamine, receptor or clinical effects at all "
           "(for false-positive checks); everything else identical", None, "dataset"),
    Option("resolution", 2, "int", "grid of the ground truth in MNI space (mm); 4 gives a "
           "tiny fast dataset", _resolution, "dataset"),
    Option("preset", "ge", "str", "acquisition preset: 'ge' (GE-like 3D pCASL: the scanner "
           "averages the pairs into one deltaM, plus M0; the study) or 'siemens-motion' "
           "(label/control series with more head motion, for realignment and outlier "
           "rejection); options given explicitly override the preset's", None, "dataset",
           tuple(PRESETS)),
    Option("asl_format", "deltam", "str", "ASL series: 'deltam' (GE-style deltaM + M0) or "
           "'pairs' (control/label pairs + M0)", None, "dataset", ("deltam", "pairs")),
    Option("voxel_size", (3.5, 3.5, 4.0), "floats3", "native ASL voxel size (mm, x y z), "
           "3D pCASL-like", _voxels, "acquisition"),
    Option("anat_voxel_size", (2.0, 2.0, 2.0), "floats3", "voxel size of the simulated T1w "
           "(mm)", _voxels, "acquisition"),
    Option("n_pairs", 3, "int", "control/label pairs acquired per scan: written as a "
           "series with asl_format 'pairs', averaged by the scanner into one deltaM with "
           "'deltam'", _positive, "acquisition"),
    # --- acquisition ----------------------------------------------------------------
    Option("post_labeling_delay", 2.0, "float", "PostLabelingDelay (s)", _positive, "acquisition"),
    Option("labeling_duration", 1.5, "float", "LabelingDuration (s)", _positive, "acquisition"),
    Option("bs_pulses", 4, "int", "number of background-suppression pulses (each costs a "
           "few % of the label, see bs_efficiency)", _non_negative, "acquisition"),
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
    Option("physics", "general", "str", "ASL signal model of the simulation: 'general' (Buxton "
           "general kinetic model with tissue T1 after arrival, per-participant labelling "
           "efficiency, blood T1, transit times, tissue-specific lambda) or 'white-paper' (the "
           "quantifier's own textbook model: exact inverse, no model bias)", None, "physics",
           ("general", "white-paper")),
    Option("labelling_efficiency", 0.85, "float", "mean pCASL labelling efficiency (before "
           "background suppression)", _unit_interval, "physics"),
    Option("labelling_efficiency_sd", 0.04, "float", "between-participant SD of the labelling "
           "efficiency", _non_negative, "physics"),
    Option("bs_efficiency", 0.95, "float", "mean inversion efficiency of one background-"
           "suppression pulse (the label kept per pulse)", _unit_interval, "physics"),
    Option("bs_efficiency_sd", 0.01, "float", "SD of each pulse's efficiency, drawn per scan",
           _non_negative, "physics"),
    Option("haematocrit", 0.42, "float", "mean haematocrit (sets arterial blood T1, "
           "Lu et al. 2004)", lambda v: None if 0.2 <= v <= 0.65 else "must be in [0.2, 0.65]",
           "physics"),
    Option("haematocrit_sd", 0.03, "float", "between-participant SD of the haematocrit",
           _non_negative, "physics"),
    Option("transit_time", 1.2, "float", "arterial transit time of anterior grey matter (s)",
           _positive, "physics"),
    Option("transit_time_posterior", 0.3, "float", "extra transit time at the occipital pole "
           "(s)", _non_negative, "physics"),
    Option("transit_time_watershed", 0.3, "float", "extra transit time in the watershed "
           "territories (s)", _non_negative, "physics"),
    Option("transit_time_sd", 0.1, "float", "between-participant SD of a global transit-time "
           "shift (s)", _non_negative, "physics"),
    # --- anatomy --------------------------------------------------------------------------
    Option("brain_size_sd", 0.033, "float", "between-participant SD of the linear brain size "
           "(fraction; intracranial volume varies by ~10 %)", _fraction, "anatomy"),
    Option("warp_rms", 5.0, "float", "RMS over the brain of each participant's smooth "
           "nonlinear deviation from the template (mm)", _non_negative, "anatomy"),
    Option("warp_fwhm", 30.0, "float", "smoothness of that deviation (mm FWHM)", _positive,
           "anatomy"),
    Option("ventricle_sd", 1.5, "float", "between-participant SD of the lateral-ventricle "
           "boundary displacement (mm; + larger ventricles)", _non_negative, "anatomy"),
    Option("cortical_thickness_sd", 0.25, "float", "SD of the smooth cortical-thickness "
           "deviation (mm)", _non_negative, "anatomy"),
    # --- head position and motion ---------------------------------------------------------
    Option("max_rotation", 3.0, "float", "largest head rotation of a session's position about "
           "each axis (degrees)", _non_negative, "motion"),
    Option("max_translation", 10.0, "float", "largest head translation of a session's position "
           "along each axis (mm)", _non_negative, "motion"),
    Option("run_motion", 1.0, "float", "SD of the head repositioning between the pre and "
           "during runs of a session (mm per axis, and the same number of degrees / 2)",
           _non_negative, "motion"),
    Option("motion_rms", 0.3, "float", "RMS within-series head displacement of a still "
           "participant (mm)", _non_negative, "motion"),
    Option("mover_fraction", 0.3, "float", "fraction of participants who move more during "
           "the infusion", _unit_interval, "motion"),
    Option("infusion_motion_factor", 3.0, "float", "within-series motion of those "
           "participants during the infusion, as a multiple of motion_rms",
           lambda v: None if v >= 1 else "must be >= 1", "motion"),
    Option("spike_rate", 0.03, "float", "probability that a volume is hit by a sudden "
           "movement (spike)", _unit_interval, "motion"),
    Option("spike_mm", 1.5, "float", "size of a spike (mm)", _non_negative, "motion"),
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
    Option("etco2_sd", 1.0, "float", "SD of end-tidal CO2 between scans (mmHg); CBF follows "
           "it by co2_reactivity", _non_negative, "physiology"),
    Option("co2_reactivity", 0.04, "float", "CBF change per mmHg of arterial CO2 (fraction)",
           _non_negative, "physiology"),
    Option("sgacc_trait_sd", 10.0, "float", "between-subject SD of a subject-specific sgACC "
           "baseline CBF deviation (ml/100 g/min, peak)", _non_negative, "physiology"),
    # --- ketamine effects --------------------------------------------------------------
    Option("ketamine_global", 0.03, "float", "global CBF increase during ketamine (fraction)",
           lambda v: None if -0.5 < v < 1 else "must be in (-0.5, 1)", "ketamine"),
    *(Option(f"ketamine_{roi.lower()}", peak, "float",
             f"mean focal CBF increase at the {roi} peak (ml/100 g/min)", None, "ketamine")
      for roi, peak in (("sgACC", 10.0), ("pgACC", 12.0), ("dACC", 11.0))),
    Option("ketamine_sd", 8.0, "float", "SD of a session's focal ACC increase around its mean "
           "(ml/100 g/min): subject and session parts, split by ketamine_reliability",
           _non_negative, "ketamine"),
    Option("ketamine_reliability", 0.5, "float", "between-session reliability (intraclass "
           "correlation) of the focal ketamine response: the subject part's share of "
           "ketamine_sd^2 (regional ASL test-retest ICCs are about 0.5-0.8, a change score's "
           "lower)", _unit_interval, "ketamine"),
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
    # --- crossover -------------------------------------------------------------------------
    Option("period_effect", -0.03, "float", "global CBF of period 2 relative to period 1 "
           "(fraction; habituation to the scanner and the infusion)",
           lambda v: None if -0.5 < v < 0.5 else "must be in (-0.5, 0.5)", "crossover"),
    Option("sequence_effect", 0.02, "float", "global CBF of the naltrexone-first sequence "
           "relative to placebo-first (fraction; a between-group difference)",
           lambda v: None if -0.5 < v < 0.5 else "must be in (-0.5, 0.5)", "crossover"),
    Option("carryover", 0.0, "float", "fraction of period 1's focal ACC ketamine effect still "
           "present at the period-2 baseline (pre) scan", _unit_interval, "crossover"),
    Option("period_madrs", -2.0, "float", "MADRS baseline of period 2 minus period 1 "
           "(points)", None, "crossover"),
    Option("carryover_madrs", 0.0, "float", "MADRS improvement of period 1 still present at the "
           "period-2 baseline (points, lowers it)", _non_negative, "crossover"),
    Option("madrs_reliability", 0.7, "float", "correlation of a participant's MADRS (and "
           "QIDS-SR) baselines between the two periods", _unit_interval, "crossover"),
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


#: Options of earlier versions and what replaced them (named in the error message).
RENAMED = {"ketamine_session_sd": "replaced by ketamine_reliability, the subject share of "
                                  "ketamine_sd^2"}


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
    renamed = [f"{k} ({RENAMED[k]})" for k in unknown if k in RENAMED]
    if renamed:
        raise UsageError(f"simulate: option(s) {', '.join(renamed)}")
    if unknown:
        raise UsageError(f"simulate: unknown option(s) {', '.join(unknown)}; "
                         f"allowed: {', '.join(OPTION_BY_NAME)}")
    out = dict(DEFAULTS)
    preset = options.get("preset", DEFAULTS["preset"])
    if preset not in PRESETS:
        raise UsageError(f"simulate: preset must be one of {', '.join(PRESETS)} (got {preset!r})")
    options = {**PRESETS[preset], **options}
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
