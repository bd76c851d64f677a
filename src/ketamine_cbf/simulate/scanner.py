"""The simulated scanner: one participant's true CBF in MNI space -> native ASL and T1w images.

The chain for each ASL scan (the order the physics happens in):

1. **Own anatomy.** The participant's brain is the template deformed by a smooth warp
   (:mod:`ketamine_cbf.simulate.anatomy`): every map defined in MNI space (true CBF, tissue,
   transit time) is pulled back into the participant's own frame, ``V_subj(x) = V(x + d(x))``.
2. **Physics** (:mod:`ketamine_cbf.simulate.physics`, independent of the quantifier's
   constants): with ``physics='general'`` deltaM follows the general kinetic model of
   :footcite:t:`buxton1998` with the tissue T1 after arrival, the participant's arterial
   transit times, labelling efficiency and blood T1 (from haematocrit,
   :footcite:t:`lu2004`), the efficiency of each background-suppression pulse drawn per
   scan, and arterial blood magnetisation (not the voxel's M0 over a brain-average lambda);
   the M0 image recovers with each tissue's own T1. With ``physics='white-paper'`` it is the
   textbook model the quantifier inverts (:mod:`ketamine_cbf.simulate.signal`).
3. **Head position.** Session pose (uniform, ``max_rotation``/``max_translation``), run
   repositioning between the pre and during scans (``run_motion``), and within-series
   motion per volume (:mod:`ketamine_cbf.simulate.motion`) relative to the M0 volume, whose
   pose is the scan's reference (the truth's ``from-scanner_to-subject`` transform).
4. **Imaging.** Supersampled sampling of the native voxels (partial volume), Gaussian
   point-spread function of the 3D readout :footcite:p:`vidorreta2013`, then each volume's
   motion applied to the imaged head on the native grid (cubic spline; the PSF is applied
   before the motion, an approximation for rotations of a few degrees), the receive-coil
   bias (fixed in the scanner, so after motion) and thermal noise (Gaussian on
   differences, Rician on magnitude images).

With ``asl_format='deltam'`` (GE-like) the scanner averages its ``n_pairs`` control-label
differences into one deltaM; each pair's volumes have their own head position, so
subtraction errors of moving static tissue remain in the average. With ``'pairs'`` every
control and label volume is written.

References
----------
.. footbibliography::
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ketamine_cbf.simulate import anatomy as sanat
from ketamine_cbf.simulate import motion, native, physics, signal, truth

__all__ = [
    "M0_SCALE", "BS_RESIDUAL", "REFERENCE_VOXEL", "T1W_SNR", "SubjectPhysics", "draw_physics",
    "Scanner", "ParticipantScanner", "ScanImages",
]

#: Arbitrary units of a fully relaxed M0 of pure CSF (GE images are in the thousands).
M0_SCALE = 10000.0
#: Residual static tissue signal of control/label images with background suppression.
BS_RESIDUAL = 0.05
#: Voxel size (mm) at which the SNR options are given.
REFERENCE_VOXEL = (3.5, 3.5, 4.0)
#: Signal-to-noise ratio of the simulated T1w (white matter).
T1W_SNR = 40.0


@dataclass(frozen=True)
class SubjectPhysics:
    """A participant's physiology that the quantifier does not know."""

    labelling_efficiency: float  # pCASL inversion efficiency before background suppression
    haematocrit: float
    t1_blood: float  # s
    transit_shift: float  # s, added to the population transit-time map

    def record(self) -> dict:
        """Return the truth record (JSON-serialisable)."""
        return {"labelling_efficiency": self.labelling_efficiency,
                "haematocrit": self.haematocrit, "t1_blood": self.t1_blood,
                "transit_time_shift": self.transit_shift}


def draw_physics(rng: np.random.Generator, o: dict) -> SubjectPhysics:
    """Draw a participant's labelling efficiency, haematocrit (hence blood T1) and transit shift.

    Each is Gaussian around the option's mean with the option's SD, clipped to a
    physiological range (efficiency 0.5-0.99, haematocrit 0.25-0.6, shift >= -0.5 s).
    """
    alpha = float(np.clip(o["labelling_efficiency"] + o["labelling_efficiency_sd"]
                          * rng.standard_normal(), 0.5, 0.99))
    hct = float(np.clip(o["haematocrit"] + o["haematocrit_sd"] * rng.standard_normal(),
                        0.25, 0.6))
    shift = float(max(-0.5, o["transit_time_sd"] * rng.standard_normal()))
    return SubjectPhysics(alpha, hct, physics.blood_t1(hct), shift)


@dataclass
class ScanImages:
    """One imaged scan: the 4D series, the true native CBF, volume types and motion truth."""

    series: np.ndarray  # (X, Y, Z, n) float32, last volume M0
    true_native: np.ndarray  # true CBF on the native grid at the reference (M0) pose
    types: list
    motion: np.ndarray  # (n_asl_shots, 6): per control/label shot, relative to the M0 pose
    shot_types: list  # "control"/"label" of each motion row
    alpha: float  # effective labelling efficiency of this scan (with its BS pulses)


class Scanner:
    """What every scan of the dataset shares: options, model maps, native grid, noise levels."""

    def __init__(self, opts: dict, anat: truth.Anatomy):
        self.o = opts
        self.anat = anat
        self.grid = native.NativeGrid.from_fov(native.ASL_FOV, opts["voxel_size"])
        self.sub = self.grid.supersampling(anat.resolution)
        self.fine_affine = self.grid.fine_affine(self.sub)
        self.fine_shape = self.grid.fine_shape(self.sub)
        self.t1w_grid = native.NativeGrid.from_fov(native.T1W_FOV, opts["anat_voxel_size"])
        #: WM - GM contrast of the template T1 (medians in pure tissue), for own-anatomy T1w
        self.t1_contrast = float(np.median(anat.t1[anat.wm > 0.9])
                                 - np.median(anat.t1[anat.gm > 0.9]))
        #: population arterial transit time (s) in MNI space
        self.att = physics.transit_time_map(anat, opts["transit_time"],
                                            opts["transit_time_posterior"],
                                            opts["transit_time_watershed"],
                                            )
        # noise SDs relative to pure GM at the mean GM CBF under the textbook model (coil
        # bias 1), so that the SNR options mean the same with either physics. Thermal
        # noise per voxel does not depend on voxel size while signal grows with its
        # volume, so the SNR options (given for a reference voxel) scale with the volume.
        alpha_nominal = signal.labelling_efficiency(opts["bs_pulses"])
        k = signal.cbf_to_deltam_factor(opts["post_labeling_delay"], opts["labeling_duration"],
                                        alpha_nominal)
        recovery = signal.m0_recovery(opts["m0_tr"])
        self.snr_scale = float(np.prod(opts["voxel_size"]) / np.prod(REFERENCE_VOXEL))
        self.sigma_dm = (k * opts["gm_cbf"] * signal.PD_GM * M0_SCALE
                         / (opts["snr_deltam"] * self.snr_scale))
        self.sigma_m0 = signal.PD_GM * M0_SCALE * recovery / (opts["snr_m0"] * self.snr_scale)
        self.alpha_nominal = alpha_nominal
        self.k_nominal = k
        self.recovery_nominal = recovery

    def participant(self, sa: sanat.SubjectAnatomy, phys: SubjectPhysics) -> "ParticipantScanner":
        """Return the imager of one participant (its static maps in its own frame)."""
        return ParticipantScanner(self, sa, phys)

    def n_shots(self) -> int:
        """Number of control/label volumes acquired per scan (2 x ``n_pairs``)."""
        return 2 * int(self.o["n_pairs"])


class ParticipantScanner:
    """Images one participant: static maps (M0, T1, transit time) in the participant's frame."""

    def __init__(self, scanner: Scanner, sa: sanat.SubjectAnatomy, phys: SubjectPhysics):
        self.s = scanner
        self.sa = sa
        self.phys = phys
        o = scanner.o
        gm, wm, csf = sa.gm, sa.wm, sa.csf
        pd = signal.proton_density(gm, wm, csf)
        if o["physics"] == "general":
            m0_meas = physics.m0_relaxed(None, gm, wm, csf, o["m0_tr"])
            m0_full = physics.m0_relaxed(None, gm, wm, csf, np.inf)
            t1 = sa.to_subject(physics.tissue_t1_map(gm, wm, csf))
            self.t1_tissue = np.where(t1 > 0, t1, np.float32(physics.T1_GM))  # 0 off the grid
            self.att = np.maximum(sa.to_subject(scanner.att) + np.float32(phys.transit_shift),
                                  0.0).astype(np.float32)
        else:
            m0_full = pd
            m0_meas = pd * scanner.recovery_nominal
            self.t1_tissue = self.att = None
            self.m0_relaxed = sa.to_subject(np.asarray(pd, np.float32)) * np.float32(M0_SCALE)
        # The static tissue signal of the control and label images is the measured M0
        # scaled: with background suppression BS_RESIDUAL of the relaxed M0 of a typical
        # (GM) voxel, without it the measured M0 itself. One map serves both (one
        # interpolation per scan); the M0 volume is that map divided by the fraction.
        self.static_fraction = (BS_RESIDUAL / float(np.median(
            (m0_meas / np.maximum(m0_full, 1e-6))[gm > 0.5])) if o["bs_pulses"] > 0 else 1.0)
        self.m0_static = (sa.to_subject(np.asarray(m0_meas, np.float32))
                          * np.float32(M0_SCALE * self.static_fraction))

    def deltam(self, cbf_subject: np.ndarray, alpha: float) -> np.ndarray:
        """Return deltaM (M0 units) of true CBF in the participant's frame (truth grid)."""
        o = self.s.o
        pld, tau = o["post_labeling_delay"], o["labeling_duration"]
        if o["physics"] == "general":
            dm = physics.gkm_pcasl(cbf_subject, physics.PD_BLOOD * M0_SCALE, self.att,
                                   self.t1_tissue, self.phys.t1_blood, alpha, pld, tau)
        else:
            dm = signal.forward_deltam(cbf_subject, self.m0_relaxed, pld, tau, o["bs_pulses"])
        return np.asarray(dm, np.float32)

    def scan_alpha(self, rng: np.random.Generator) -> float:
        """Draw this scan's background-suppression pulse efficiencies; return the effective alpha."""
        o = self.s.o
        if o["physics"] != "general":
            return self.s.alpha_nominal
        betas = np.clip(o["bs_efficiency"] + o["bs_efficiency_sd"]
                        * rng.standard_normal(int(o["bs_pulses"])), 0.5, 1.0)
        return physics.effective_labelling_efficiency(self.phys.labelling_efficiency, betas)

    def image(self, cbf_mni: np.ndarray, A: np.ndarray, bias: np.ndarray, shots: np.ndarray,
              alpha: float, rng: np.random.Generator) -> ScanImages:
        """Image one scan.

        Parameters
        ----------
        cbf_mni : ndarray
            True CBF on the MNI truth grid.
        A : (4, 4) array
            Reference (M0) pose, scanner -> participant frame.
        bias : ndarray
            Receive-coil bias on the native grid.
        shots : (n_shots, 6) array
            Motion of each control/label volume relative to the reference
            (:func:`ketamine_cbf.simulate.motion.rigid_matrix` parameters).
        alpha : float
            Effective labelling efficiency of the scan.
        rng : numpy.random.Generator
            Thermal noise.
        """
        s, o = self.s, self.s.o
        cbf_subj = self.sa.to_subject(cbf_mni)
        dm_subj = self.deltam(cbf_subj, alpha)
        vols = [cbf_subj, dm_subj, self.m0_static]
        fine = native.sample_truth(vols, self.sa.affine, A @ s.fine_affine, s.fine_shape)
        true_native = native.block_mean(fine[0], s.sub)
        dm, m0_static = (native.block_mean(native.apply_psf(f, s.sub, o["psf_fwhm"]), s.sub)
                         for f in fine[1:])
        m0_meas = m0_static * np.float32(1.0 / self.static_fraction)
        static = m0_static
        shape = dm.shape
        g = s.grid.affine
        imaged = []
        c_label = motion.spline_coefficients(static)  # the prefilter is linear: filter once
        c_control = c_label + motion.spline_coefficients(dm)
        for j, p in enumerate(shots):
            content = c_control if j % 2 == 0 else c_label  # control, label
            imaged.append(motion.move_volume(content, g, motion.rigid_matrix(p),
                                             prefiltered=True) * bias)
        m0_noisy = np.sqrt((m0_meas * bias + rng.normal(0, s.sigma_m0, shape)) ** 2
                           + rng.normal(0, s.sigma_m0, shape) ** 2)  # magnitude: Rician
        n = len(shots) // 2
        if o["asl_format"] == "deltam":
            diff = np.mean([imaged[2 * j] - imaged[2 * j + 1] for j in range(n)], axis=0)
            series = [diff + rng.normal(0, s.sigma_dm, shape), m0_noisy]
            types = ["deltam", "m0scan"]
        else:
            sigma_img = s.sigma_dm * np.sqrt(n / 2.0)
            series = [v + rng.normal(0, sigma_img, shape) for v in imaged] + [m0_noisy]
            types = ["control", "label"] * n + ["m0scan"]
        return ScanImages(np.stack(series, axis=-1).astype(np.float32),
                          true_native.astype(np.float32), types, np.asarray(shots, float),
                          ["control", "label"] * n, float(alpha))

    def _t1_contrast(self) -> np.ndarray:
        """The template T1 intensities with the participant's GM/WM boundary (MNI frame).

        Where the cortical-thickness change turned GM into WM (or back), the intensity moves
        by the changed WM fraction times the WM-GM contrast (medians of the template T1 in
        pure WM and GM).
        """
        anat = self.s.anat
        return (anat.t1 + (self.sa.wm - anat.wm) * np.float32(self.s.t1_contrast)).astype(np.float32)

    def t1w(self, A: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
        """Return the T1w image data (tissue contrast, coil bias, Rician noise) and the true
        tissue probabilities on the T1w grid at pose ``A``."""
        s, sa = self.s, self.sa
        grid = s.t1w_grid
        vols = [sa.to_subject(v) for v in (self._t1_contrast(), sa.gm, sa.wm, sa.csf)]
        t1, gm, wm, csf = native.sample_truth(vols, sa.affine, A @ grid.affine, grid.shape)
        bias, _ = native.coil_sensitivity(grid, rng, 0.1)
        data = 1000.0 * t1 * bias
        sigma = 1000.0 / T1W_SNR
        data = np.sqrt((data + rng.normal(0, sigma, data.shape)) ** 2
                       + rng.normal(0, sigma, data.shape) ** 2)
        return data.astype(np.float32), {"GM": gm, "WM": wm, "CSF": csf}
