"""Sections of the simulated dataset's ``truth.json`` that describe the model (private to
:mod:`.dataset`): the quantifier's textbook constants, the physics, anatomy, crossover and
imaging actually simulated."""

from __future__ import annotations

import numpy as np

from ketamine_cbf.io.groundtruth import SUBJECT_FRAME
from ketamine_cbf.io.layout import TEMPLATE_SPACE
from ketamine_cbf.simulate import native, physics, scanner, signal

__all__ = ["quantification_doc", "physics_doc", "anatomy_doc", "crossover_doc", "imaging_doc"]


def quantification_doc(o: dict, sc: scanner.Scanner) -> dict:
    """Return the ``quantification`` section of truth.json: the textbook model the quantifier
    assumes (with ``physics='white-paper'`` also the simulation's forward model)."""
    return {
        "formula": "CBF = 6000 lambda dM exp(PLD/T1b) / (2 alpha T1b M0 (1 - exp(-tau/T1b))) "
                   "(Alsop et al. 2015, MRM 73:102)",
        "lambda": signal.LAMBDA, "t1_blood": signal.T1_BLOOD,
        "alpha_pcasl": signal.ALPHA_PCASL, "alpha_bs_per_pulse": signal.ALPHA_BS_PULSE,
        "bs_pulses": o["bs_pulses"], "alpha_effective": sc.alpha_nominal,
        "post_labeling_delay": o["post_labeling_delay"],
        "labeling_duration": o["labeling_duration"],
        "m0_tr": o["m0_tr"], "t1_tissue_m0": signal.T1_TISSUE,
        "m0_recovery_fraction": sc.recovery_nominal,
        "m0_correction": "measured M0 = M0 (1 - exp(-TR_M0 / 1.3 s)); divide it out",
        "deltam_per_cbf_per_m0": sc.k_nominal, "m0_scale_csf": scanner.M0_SCALE,
        "proton_density": {"csf": signal.PD_CSF, "gm": signal.PD_GM, "wm": signal.PD_WM},
        "deltam_scaling": "deltaM is the mean control - label difference, same units as M0",
        "is_forward_model": o["physics"] == "white-paper",
    }


def physics_doc(o: dict) -> dict:
    """Return the ``physics`` section of truth.json: the forward model and its constants."""
    if o["physics"] != "general":
        return {"model": "white-paper (see quantification)"}
    return {
        "model": "Buxton et al. 1998 general kinetic model for pCASL: label decays with the "
                 "participant's blood T1 until arrival (transit time), then with the apparent "
                 "tissue T1 (1/T1' = 1/T1_tissue + f/lambda); deltaM scales with arterial "
                 "blood M0 = PD_BLOOD * M0 scale",
        "t1_tissue_s": {"gm": physics.T1_GM, "wm": physics.T1_WM, "csf": physics.T1_CSF},
        "lambda": {"gm": physics.LAMBDA_GM, "wm": physics.LAMBDA_WM},
        "pd_blood": physics.PD_BLOOD,
        "blood_t1": "1 / T1b = 0.52 Hct + 0.38 s^-1 (Lu et al. 2004)",
        "m0": "sum over tissues of PD_t p_t (1 - exp(-TR_M0 / T1_t))",
        "transit_time_s": {"anterior_gm": o["transit_time"],
                           "posterior_extra": o["transit_time_posterior"],
                           "watershed_extra": o["transit_time_watershed"],
                           "wm_extra": physics.WM_TRANSIT_EXTRA,
                           "participant_shift_sd": o["transit_time_sd"]},
        "labelling_efficiency": {"mean": o["labelling_efficiency"],
                                 "sd": o["labelling_efficiency_sd"]},
        "bs_efficiency_per_pulse": {"mean": o["bs_efficiency"], "sd": o["bs_efficiency_sd"],
                                    "drawn": "per pulse, per scan"},
        "haematocrit": {"mean": o["haematocrit"], "sd": o["haematocrit_sd"]},
    }


def anatomy_doc(o: dict) -> dict:
    """Return the ``anatomy`` section of truth.json: each participant's own anatomy."""
    return {
        "model": "template pulled back through a smooth warp: x_MNI = x + d(x) for x in the "
                 "participant frame (global size, smooth displacement, ventricles), with a "
                 "cortical-thickness change of the template tissue maps (MNI frame)",
        "warp_file": f"sub-X/anat/sub-X_from-{SUBJECT_FRAME}_to-{TEMPLATE_SPACE}_mode-points_"
                     "xfm.nii.gz: displacement d (mm, RAS) on the truth grid",
        "scan_pose_file": f"<scan>_from-scanner_to-{SUBJECT_FRAME}_mode-image_xfm.txt: rigid "
                          "pose of the scan's M0 volume (the reference), scanner -> "
                          "participant frame",
        "scanner_to_template": "x_MNI = w(A @ [x_scanner, 1]) with w(x) = x + d(x)",
        "brain_size_sd": o["brain_size_sd"], "warp_rms_mm": o["warp_rms"],
        "warp_fwhm_mm": o["warp_fwhm"], "ventricle_sd_mm": o["ventricle_sd"],
        "cortical_thickness_sd_mm": o["cortical_thickness_sd"],
    }


def crossover_doc(o: dict) -> dict:
    """Return the ``crossover`` section of truth.json: the planted design effects."""
    return {
        "period_effect": o["period_effect"], "sequence_effect": o["sequence_effect"],
        "carryover": o["carryover"], "period_madrs": o["period_madrs"],
        "carryover_madrs": o["carryover_madrs"], "madrs_reliability": o["madrs_reliability"],
        "ketamine_reliability": o["ketamine_reliability"],
        "ketamine_subject_sd": o["ketamine_sd"] * float(np.sqrt(o["ketamine_reliability"])),
        "ketamine_session_sd": o["ketamine_sd"] * float(np.sqrt(1 - o["ketamine_reliability"])),
        "global_cbf": "all scans of period 2 x (1 + period_effect); all scans of the NP "
                      "sequence x (1 + sequence_effect); each scan x (1 + co2_reactivity * "
                      "etco2), etco2 ~ N(0, etco2_sd)",
        "carryover_model": "both runs of period 2 + carryover x period 1's focal ACC effect",
    }


def imaging_doc(o: dict, sc: scanner.Scanner) -> dict:
    """Return the ``imaging`` section of truth.json: native grid, PSF, noise, motion."""
    return {
        "native_grid_shape": list(sc.grid.shape),
        "native_voxel_size": list(sc.grid.voxel_size),
        "native_affine": sc.grid.affine.tolist(),
        "supersampling": list(sc.sub),
        "psf_fwhm_voxels": list(o["psf_fwhm"]),
        "noise_sd_deltam": sc.sigma_dm, "noise_sd_m0": sc.sigma_m0,
        "snr_voxel_volume_factor": sc.snr_scale,
        "snr_reference_voxel_mm": list(scanner.REFERENCE_VOXEL),
        "truth_storage": "int16 with scl_slope 0.01 (ml/100 g/min); values as read back",
        "noise": "Gaussian on deltaM and control/label, Rician (magnitude) on M0 and T1w",
        "bs_residual_static_fraction": scanner.BS_RESIDUAL,
        "head_centre_mni": list(native.HEAD_CENTRE_MNI),
        "pose_convention": "x_subject = A @ [x_scanner, 1] (world mm, RAS); session pose "
                           "uniform, run offset Gaussian (run_motion), volumes relative to M0",
        "motion_file": "<scan>_desc-headmotion_timeseries.tsv: per control/label volume "
                       "(deltam: the scanner's internal shots), trans mm / rot deg, volume_v(x) "
                       "= reference(M_v x)",
        "shots_per_scan": sc.n_shots(),
    }

