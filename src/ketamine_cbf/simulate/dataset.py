"""Build the simulated BIDS-ASL dataset and its ground truth (:func:`simulate_dataset`).

Generative model of the true CBF of participant ``i``, session ``s`` (pre-treatment
``a``), run ``r`` on the MNI grid (ml/100 g/min)::

    S      = [B(x) g_i (1 + sigma_f f_i(x)) + t_i P_sg(x)] (1 + e_is)(1 + sigma_g g_is(x))
    pre    C = S (1 + e_isr)(1 + sigma_g g_isr(x))                                 (run-1)
    during C = S (1 + e_isr)(1 + sigma_g g_isr(x)) (1 + k_global)
               + sum_roi A_{roi,i,s} P_roi(x) + R_ket(x) +- R_int(x) / 2             (run-2)

with ``B`` the anatomical baseline (:func:`ketamine_cbf.simulate.truth.baseline_cbf`),
``g_i`` a global subject factor, ``f, g`` smooth unit-SD random fields, ``t_i`` a
subject-specific sgACC deviation, ``P_roi`` GM-masked Gaussian blobs at the ACC centres
with amplitudes ``A = mean (x (1 - attenuation) under naltrexone) + u_i,roi + v_is,roi``,
``R_ket`` and ``R_int`` receptor-shaped maps (+R_int/2 under naltrexone, -R_int/2 under
placebo, so that the pooled effect is unchanged and naltrexone - placebo = R_int), and
``e`` Gaussian global deviations (SDs ``subject_sd``, ``session_sd``, ``run_sd``). The
true maps are stored (and used) with a step of 0.01 ml/100 g/min and clipped at 0.

Each scan's true CBF is then imaged (:mod:`ketamine_cbf.simulate.native`,
:mod:`ketamine_cbf.simulate.signal`): rigid pose, partial volume, PSF, white-paper
deltaM, M0 with incomplete recovery, coil bias, thermal noise.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import nibabel as nib
import numpy as np
import pandas as pd

from ketamine_cbf import __version__
from ketamine_cbf.errors import UsageError
from ketamine_cbf.io.layout import TEMPLATE_SPACE, bids_name, scan_entities
from ketamine_cbf.io.provenance import save_nifti, write_json, write_text, write_tsv
from ketamine_cbf.simulate import _steps
from ketamine_cbf.simulate import design as sdesign
from ketamine_cbf.simulate import native, signal, truth, write
from ketamine_cbf.simulate.params import validate
from ketamine_cbf.stattools import rng as _rng
from ketamine_cbf.study import ACC_CENTRES_MNI

__all__ = [
    "M0_SCALE", "BS_RESIDUAL", "REFERENCE_VOXEL", "T1W_SNR", "TRUTH_STEP", "simulate_dataset",
]

#: Arbitrary units of a fully relaxed M0 of pure CSF (GE images are in the thousands).
M0_SCALE = 10000.0
#: Residual static tissue signal of control/label images with background suppression.
BS_RESIDUAL = 0.05
#: Voxel size (mm) at which the SNR options are given.
REFERENCE_VOXEL = (3.5, 3.5, 4.0)
#: Signal-to-noise ratio of the simulated T1w (white matter).
T1W_SNR = 40.0
#: RNG stream tags (a stream is ``stattools.rng(seed, tag, *indices)``).
_DESIGN, _SUBJECT, _SESSION, _RUN, _POSE, _NOISE, _PHENO, _ANAT = range(1, 9)


def _check_out_dir(out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"{out_dir}: OUT_DIR exists and is not a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise UsageError(f"{out_dir}: OUT_DIR exists and is not empty (use --overwrite / "
                         "overwrite=True to replace it)")


def _xfm_text(A: np.ndarray) -> str:
    lines = [" ".join(f"{v:.10f}" for v in row) for row in A]
    return "\n".join(lines) + "\n"


#: Storage step of the ground-truth CBF maps (int16 with this slope): 0.01 ml/100 g/min.
TRUTH_STEP = np.float32(0.01)


def _quantise(cbf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (int16 codes, float values as read back) of a CBF map stored with TRUTH_STEP."""
    q = np.round(np.clip(cbf, 0, 327.0) / TRUTH_STEP).astype(np.int16)
    return q, (q.astype(np.float64) * float(TRUTH_STEP)).astype(np.float32)


def _truth_image(codes: np.ndarray, affine: np.ndarray, code: int) -> nib.Nifti1Image:
    """A ground-truth CBF image: int16 codes, slope 0.01 (ml/100 g/min), given xform code."""
    img = nib.Nifti1Image(codes, affine)
    img.header.set_slope_inter(float(TRUTH_STEP), 0.0)
    img.set_sform(affine, code=code)
    img.set_qform(affine, code=code)
    img.header.set_xyzt_units("mm", "sec")
    img.header["descrip"] = b"true CBF, ml/100 g/min"
    return img


def _native_image(data: np.ndarray, affine: np.ndarray, dtype=np.float32, tr: float | None = None):
    img = nib.Nifti1Image(np.asarray(data, dtype=np.float32), affine, dtype=dtype)
    img.set_sform(affine, code=1)
    img.set_qform(affine, code=1)
    img.header.set_xyzt_units("mm", "sec")
    if tr is not None and data.ndim == 4:
        zooms = list(img.header.get_zooms()[:3]) + [tr]
        img.header.set_zooms(zooms)
    return img


class _Imager:
    """Images one scan's true CBF into native ASL volumes (one instance per dataset)."""

    def __init__(self, opts: dict, anat: truth.Anatomy):
        self.o = opts
        self.anat = anat
        self.grid = native.NativeGrid.from_fov(native.ASL_FOV, opts["voxel_size"])
        self.sub = self.grid.supersampling(anat.resolution)
        self.fine_affine = self.grid.fine_affine(self.sub)
        self.fine_shape = self.grid.fine_shape(self.sub)
        self.pd = signal.proton_density(anat.gm, anat.wm, anat.csf).astype(np.float32)
        self.alpha = signal.labelling_efficiency(opts["bs_pulses"])
        self.k = signal.cbf_to_deltam_factor(opts["post_labeling_delay"],
                                            opts["labeling_duration"], self.alpha)
        self.recovery = signal.m0_recovery(opts["m0_tr"])
        # noise SDs: relative to pure GM at the mean GM CBF (coil bias 1). Thermal noise
        # per voxel does not depend on voxel size while signal grows with its volume, so
        # the SNR options (given for a reference voxel) scale with the volume.
        self.snr_scale = float(np.prod(opts["voxel_size"]) / np.prod(REFERENCE_VOXEL))
        self.sigma_dm = (self.k * opts["gm_cbf"] * signal.PD_GM * M0_SCALE
                         / (opts["snr_deltam"] * self.snr_scale))
        self.sigma_m0 = signal.PD_GM * M0_SCALE * self.recovery / (opts["snr_m0"] * self.snr_scale)

    def image(self, cbf: np.ndarray, A: np.ndarray, bias: np.ndarray, rng: np.random.Generator):
        """Return (asl 4D array, native true CBF, volume types) for one scan."""
        o = self.o
        cbf_f, pd_f = native.sample_truth([cbf, self.pd], self.anat.affine,
                                          A @ self.fine_affine, self.fine_shape)
        true_native = native.block_mean(cbf_f, self.sub)
        m0_f = pd_f * M0_SCALE
        dm_f = signal.forward_deltam(cbf_f, m0_f, o["post_labeling_delay"],
                                     o["labeling_duration"], o["bs_pulses"]).astype(np.float32)
        dm = native.block_mean(native.apply_psf(dm_f, self.sub, o["psf_fwhm"]), self.sub) * bias
        m0 = native.block_mean(native.apply_psf(m0_f, self.sub, o["psf_fwhm"]), self.sub) * bias
        m0_meas = m0 * self.recovery
        shape = dm.shape
        m0_noisy = np.sqrt((m0_meas + rng.normal(0, self.sigma_m0, shape)) ** 2
                           + rng.normal(0, self.sigma_m0, shape) ** 2)  # magnitude: Rician
        if o["asl_format"] == "deltam":
            vols = [dm + rng.normal(0, self.sigma_dm, shape), m0_noisy]
            types = ["deltam", "m0scan"]
        else:
            n = o["n_pairs"]
            sigma_img = self.sigma_dm * np.sqrt(n / 2.0)
            static = BS_RESIDUAL * m0 if o["bs_pulses"] > 0 else m0_meas
            vols, types = [], []
            for _ in range(n):
                vols.append(static + dm + rng.normal(0, sigma_img, shape))
                vols.append(static + rng.normal(0, sigma_img, shape))
                types += ["control", "label"]
            vols.append(m0_noisy)
            types.append("m0scan")
        return np.stack(vols, axis=-1).astype(np.float32), true_native.astype(np.float32), types


def _t1w(anat: truth.Anatomy, opts: dict, A: np.ndarray, rng: np.random.Generator):
    grid = native.NativeGrid.from_fov(native.T1W_FOV, opts["anat_voxel_size"])
    (t1,) = native.sample_truth([anat.t1], anat.affine, A @ grid.affine, grid.shape)
    bias, _ = native.coil_sensitivity(grid, rng, 0.1)
    data = 1000.0 * t1 * bias
    sigma = 1000.0 / T1W_SNR
    data = np.sqrt((data + rng.normal(0, sigma, data.shape)) ** 2 + rng.normal(0, sigma, data.shape) ** 2)
    return _native_image(data, grid.affine, dtype=np.int16)
def simulate_dataset(out_dir, seed: int = 20261126, overwrite: bool = False, **options) -> Path:
    """Write a simulated BIDS-ASL crossover dataset with planted ground truth.

    Parameters
    ----------
    out_dir : str or Path
        Dataset root to create. Built in a temporary folder beside it and renamed at the
        end, so a failure leaves nothing behind.
    seed : int
        Master seed; the same seed and options give a byte-identical dataset.
    overwrite : bool
        Replace an existing non-empty ``out_dir``.
    **options
        Simulation options, the keys of the configuration's ``simulate:`` mapping (see
        :data:`ketamine_cbf.simulate.params.OPTIONS`: ``subjects``, ``null``,
        ``resolution``, ``asl_format``, effect sizes ...).

    Returns
    -------
    pathlib.Path
        ``out_dir``.

    Raises
    ------
    UsageError
        Invalid options, or ``out_dir`` exists and is not empty without ``overwrite``
        (nothing is written).
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UsageError(f"simulate: seed must be a non-negative integer (got {seed!r})")
    opts = validate(options)
    out_dir = Path(out_dir).expanduser().absolute()
    _check_out_dir(out_dir, overwrite)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial", dir=out_dir.parent))
    try:
        _build(tmp, int(seed), opts)
        if out_dir.exists():
            trash = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".old",
                                          dir=out_dir.parent))
            os.replace(out_dir, trash / "old")
            os.replace(tmp, out_dir)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


@dataclass
class _Context:
    """What the steps of one build share: dataset root, master seed, options, model, imager."""

    root: Path
    seed: int
    o: dict
    model: _steps.Planted
    imager: _Imager

    @property
    def gt(self) -> Path:
        """The ground-truth derivative folder."""
        return self.root / "derivatives" / "groundtruth"


class _Scan(NamedTuple):
    """One ASL scan: participant index and ID, session, period, run, time point, arm."""

    i: int
    pid: str
    ses: str
    period: int
    run: int
    tp: str
    arm: str


def _build(root: Path, seed: int, o: dict) -> None:
    """Write the whole dataset into the empty folder ``root``.

    The steps: the truth-level model, the design, each participant in turn (latent
    values, T1w, both sessions), the phenotypes, the group maps and statistics, and
    ``truth.json``.
    """
    model = _steps.planted_model(o)
    ctx = _Context(root, seed, o, model, _Imager(o, model.anat))
    participants, sess = _write_design(root, seed, o)
    group = _steps.GroupStats(model.anat.brain)
    truth_rows, scan_records, subject_records = [], [], {}
    for i, pid in enumerate(participants["participant_id"]):
        subject, scans, rows, deltas = _simulate_participant(ctx, i, pid, sess)
        subject_records[pid] = subject
        scan_records += scans
        truth_rows += rows
        group.add(_steps.contrast_maps(deltas))
    planted = _steps.write_phenotypes(root, truth_rows, o, _rng(seed, _PHENO))
    ket_map = (model.ket_fixed + model.r_ket).astype(np.float32)
    int_map = (model.int_fixed + model.r_int).astype(np.float32)
    _steps.write_group_maps(ctx.gt, model.anat, o["resolution"], ket_map, int_map)
    tstats, sample_maps = _steps.true_group_t(group, model.anat, model.rois)
    rstats = _steps.receptor_stats(model.anat, {
        "ketamineEffect": ket_map, "interactionEffect": int_map,
        "sample_mean_ket_pooled": sample_maps["ket_pooled"],
        "sample_mean_interaction": sample_maps["interaction"]})
    doc = _truth_document(ctx, rstats, tstats, planted, subject_records, scan_records)
    write_json(ctx.gt / "truth.json", doc)
    _fix_permissions(root)


def _write_design(root: Path, seed: int, o: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Draw the crossover design and write the dataset's text files and participants.tsv.

    Returns the participants and sessions tables.
    """
    participants = sdesign.crossover(o["subjects"], _rng(seed, _DESIGN))
    sess = sdesign.sessions(participants)
    write.write_text_files(root, o, seed)
    write_tsv(root / "participants.tsv", participants)
    write_json(root / "derivatives" / "groundtruth" / "dataset_description.json",
               write.groundtruth_description(seed))
    return participants, sess


def _simulate_participant(ctx: _Context, i: int, pid: str, sess: pd.DataFrame):
    """Simulate and write participant ``i``: latent values, T1w, both sessions, sessions files.

    Returns (subject record, scan records, one truth row per session, true deltaCBF map
    per arm).
    """
    subj_base, subject = _draw_subject(ctx, i)
    subject["t1w_pose"] = _write_t1w(ctx, i, pid)
    scan_records, truth_rows, deltas = [], [], {}
    for _, srow in sess[sess["participant_id"] == pid].iterrows():
        scans, trow, delta = _simulate_session(ctx, i, pid, srow, subj_base, subject)
        scan_records += scans
        truth_rows.append(trow)
        deltas[srow["pretreatment"]] = delta
    ent_sub = scan_entities(pid, None, None)
    write_tsv(ctx.root / pid / bids_name(ent_sub, "sessions", ".tsv"),
              sess.loc[sess["participant_id"] == pid, ["session_id", "pretreatment", "period"]])
    # the legacy bids-validator accepts no top-level sessions.json: one per participant
    write_json(ctx.root / pid / bids_name(ent_sub, "sessions", ".json"), write.sessions_json())
    return subject, scan_records, truth_rows, deltas


def _draw_subject(ctx: _Context, i: int) -> tuple[np.ndarray, dict]:
    """Draw participant ``i``'s latent values from its stream (g_i, f_i, t_i, then u_i).

    Returns the subject's baseline ``B g_i (1 + sigma_f f_i) + t_i P_sg`` and its record.
    """
    o, m = ctx.o, ctx.model
    rs = _rng(ctx.seed, _SUBJECT, i)
    g_i = max(0.5, 1.0 + o["subject_sd"] * rs.standard_normal())
    f_i = m.fields(rs)
    trait = o["sgacc_trait_sd"] * rs.standard_normal()
    u = {roi: o["ketamine_sd"] * rs.standard_normal() for roi in ACC_CENTRES_MNI}
    subj_base = m.base * np.float32(g_i) * (1 + np.float32(o["subject_field_sd"]) * f_i) \
        + np.float32(trait) * m.blobs["sgACC"]
    return subj_base, {"global_factor": g_i, "sgacc_trait": trait,
                       "ketamine_subject_deviation": u}


def _write_t1w(ctx: _Context, i: int, pid: str) -> dict:
    """Image participant ``i``'s T1w (ses-1, own pose); write it and its true transform.

    Returns the pose record.
    """
    o = ctx.o
    A_t1, pose_t1 = native.random_pose(_rng(ctx.seed, _POSE, i, 0, 0), o["max_rotation"],
                                       o["max_translation"])
    t1_img = _t1w(ctx.model.anat, o, A_t1, _rng(ctx.seed, _ANAT, i))
    ent1 = scan_entities(pid, "ses-1", None)
    save_nifti(t1_img, ctx.root / pid / "ses-1" / "anat" / bids_name(ent1, "T1w"))
    write_json(ctx.root / pid / "ses-1" / "anat" / bids_name(ent1, "T1w", ".json"),
               write.t1w_sidecar())
    _write_xfm(ctx.gt / pid / "ses-1" / "anat", ent1, A_t1)
    return {**pose_t1, "matrix": A_t1.tolist()}


def _write_xfm(folder: Path, ent: dict, A: np.ndarray) -> None:
    """Write a scan's true scanner-to-MNI transform (``x_MNI = A @ [x_scanner, 1]``)."""
    write_text(folder / bids_name(
        {**ent, "from": "scanner", "to": TEMPLATE_SPACE, "mode": "image"}, "xfm", ".txt"),
        _xfm_text(A))


def _simulate_session(ctx: _Context, i: int, pid: str, srow: pd.Series,
                      subj_base: np.ndarray, subject: dict):
    """Simulate and write one session: the pre and during runs and the scans.tsv.

    Returns (the two scan records, the session's truth row, true deltaCBF during - pre).
    """
    ses, arm, period = srow["session_id"], srow["pretreatment"], int(srow["period"])
    ses_base, amps, bias, bias_par, times = _draw_session(
        ctx, i, period, arm, subj_base, subject["ketamine_subject_deviation"])
    maps, scans_rows, records = {}, [], []
    for run, tp in ((1, "pre"), (2, "during")):
        scan = _Scan(i, pid, ses, period, run, tp, arm)
        codes, maps[tp] = _true_cbf(ctx, scan, ses_base, amps)
        asl_name, pose = _write_scan(ctx, scan, codes, maps[tp], bias)
        scans_rows.append({"filename": f"perf/{asl_name}", "acq_time": times[tp],
                           "timepoint": tp})
        records.append({**_scan_values(ctx.model, scan, maps[tp]), "pose": pose,
                        "coil_bias": bias_par})
    write_tsv(ctx.root / pid / ses / bids_name(scan_entities(pid, ses, None), "scans", ".tsv"),
              pd.DataFrame(scans_rows))
    trow = _session_truth_row(records[0], records[1], period, amps, subject)
    return records, trow, maps["during"] - maps["pre"]


def _draw_session(ctx: _Context, i: int, period: int, arm: str, subj_base: np.ndarray,
                  u: dict):
    """Draw a session's latent values from its stream (e_is, g_is, v_is, coil bias, times).

    Returns (session baseline S, focal amplitudes A_roi, coil bias field and parameters,
    acquisition times).
    """
    o, m = ctx.o, ctx.model
    rss = _rng(ctx.seed, _SESSION, i, period)
    e_s = o["session_sd"] * rss.standard_normal()
    g_s = m.fields(rss)
    v = {roi: o["ketamine_session_sd"] * rss.standard_normal() for roi in ACC_CENTRES_MNI}
    bias, bias_par = native.coil_sensitivity(ctx.imager.grid, rss, o["coil_bias"])
    ses_base = subj_base * np.float32(1 + e_s) * (1 + np.float32(o["run_field_sd"]) * g_s)
    factor = (1 - m.att) if arm == "naltrexone" else 1.0
    amps = {roi: 0.0 if m.null else m.focal_mean[roi] * factor + u[roi] + v[roi]
            for roi in ACC_CENTRES_MNI}
    times = sdesign.scan_times(period, i, rss)
    return ses_base, amps, bias, bias_par, times


def _true_cbf(ctx: _Context, scan: _Scan, ses_base: np.ndarray, amps: dict):
    """Draw a run's deviations (e_isr, g_isr) and return its true CBF as stored.

    During the infusion the global, focal and receptor ketamine effects are added.
    Returns (int16 codes, float values), see :func:`_quantise`.
    """
    o, m = ctx.o, ctx.model
    rr = _rng(ctx.seed, _RUN, scan.i, scan.period, scan.run)
    e_r = o["run_sd"] * rr.standard_normal()
    g_r = m.fields(rr)
    cbf = ses_base * np.float32(1 + e_r) * (1 + np.float32(o["run_field_sd"]) * g_r)
    if scan.tp == "during":
        cbf = cbf * np.float32(1 + m.k_global)
        for roi, a in amps.items():
            cbf = cbf + np.float32(a) * m.blobs[roi]
        cbf = cbf + m.r_ket + (0.5 if scan.arm == "naltrexone" else -0.5) * m.r_int
    return _quantise(cbf)


def _write_scan(ctx: _Context, scan: _Scan, codes: np.ndarray, cbf: np.ndarray,
                bias: np.ndarray) -> tuple[str, dict]:
    """Image one run and write it: true CBF (MNI and native), transform, ASL, sidecars.

    Returns (ASL file name, pose record).
    """
    o, imager = ctx.o, ctx.imager
    ent = scan_entities(scan.pid, scan.ses, scan.run)
    perf = Path(scan.pid) / scan.ses / "perf"
    save_nifti(_truth_image(codes, ctx.model.anat.affine, 4), ctx.gt / perf / bids_name(
        {**ent, "space": TEMPLATE_SPACE, "res": o["resolution"], "desc": "true"}, "cbf"))
    A, pose = native.random_pose(_rng(ctx.seed, _POSE, scan.i, scan.period, scan.run),
                                 o["max_rotation"], o["max_translation"])
    _write_xfm(ctx.gt / perf, ent, A)
    asl, true_native, types = imager.image(
        cbf, A, bias, _rng(ctx.seed, _NOISE, scan.i, scan.period, scan.run))
    save_nifti(_truth_image(_quantise(true_native)[0], imager.grid.affine, 1),
               ctx.gt / perf / bids_name({**ent, "desc": "true"}, "cbf"))
    asl_name = bids_name(ent, "asl")
    save_nifti(_native_image(asl, imager.grid.affine, dtype=np.int16, tr=o["tr"]),
               ctx.root / perf / asl_name)
    write_json(ctx.root / perf / bids_name(ent, "asl", ".json"),
               write.asl_sidecar(o, len(types) - 1, len(types) - 1))
    write_tsv(ctx.root / perf / bids_name(ent, "aslcontext", ".tsv"),
              pd.DataFrame({"volume_type": types}))
    return asl_name, {**pose, "matrix": A.tolist()}


def _scan_values(model: _steps.Planted, scan: _Scan, cbf: np.ndarray) -> dict:
    """Return a scan's truth-level values: global GM CBF and the mean CBF of each ACC ROI."""
    row = {"participant_id": scan.pid, "session_id": scan.ses, "run": scan.run,
           "timepoint": scan.tp, "pretreatment": scan.arm,
           "global_gm_cbf": float(cbf[model.anat.gm_mask].mean())}
    for roi, m in model.rois.items():
        row[f"{roi.lower()}_cbf"] = float(cbf[m].mean())
    return row


def _session_truth_row(p: dict, d: dict, period: int, amps: dict, subject: dict) -> dict:
    """Return a session's row of phenotype_truth.tsv from its pre (p) and during (d) values."""
    trow = {"participant_id": p["participant_id"], "session_id": p["session_id"],
            "pretreatment": p["pretreatment"], "period": period,
            "global_gm_cbf_pre": p["global_gm_cbf"],
            "global_gm_cbf_during": d["global_gm_cbf"]}
    for roi in ACC_CENTRES_MNI:
        key = roi.lower()
        trow[f"{key}_pre_cbf"] = p[f"{key}_cbf"]
        trow[f"{key}_during_cbf"] = d[f"{key}_cbf"]
        trow[f"{key}_delta_cbf"] = d[f"{key}_cbf"] - p[f"{key}_cbf"]
        trow[f"{key}_pre_rcbf"] = p[f"{key}_cbf"] / p["global_gm_cbf"]
        trow[f"{key}_delta_rcbf"] = (d[f"{key}_cbf"] / d["global_gm_cbf"]
                                     - p[f"{key}_cbf"] / p["global_gm_cbf"])
        trow[f"ketamine_amplitude_{key}"] = amps[roi]
    trow["sgacc_trait"] = subject["sgacc_trait"]
    trow["global_factor"] = subject["global_factor"]
    return trow


def _truth_document(ctx: _Context, rstats: dict, tstats: dict, planted: dict,
                    subjects: dict, scans: list) -> dict:
    """Return the content of ``truth.json``: options, model, imaging, effects, latent values."""
    o, m = ctx.o, ctx.model
    return {
        "description": write.SIM_NOTICE,
        "package": "ketamine-cbf", "version": __version__, "seed": ctx.seed,
        "options": {k: (list(v) if isinstance(v, tuple) else v) for k, v in o.items()},
        "null": m.null,
        "model": {
            "cbf_units": "ml/100 g/min",
            "baseline": "gm_cbf * gm * pattern + wm_cbf * wm; pattern = Holiga 2018 group CBF "
                        f"normalised to GM mean 1, clipped to {list(truth.PATTERN_CLIP)}",
            "gm_threshold": truth.GM_THRESHOLD,
            "global_gm_cbf": f"mean true CBF over template GM probability > {truth.GM_THRESHOLD}",
            "relative_cbf": "ROI mean / global GM mean of the same scan",
            "interaction_split": "+R_int/2 under naltrexone, -R_int/2 under placebo",
        },
        "quantification": _quantification_doc(o, ctx.imager),
        "imaging": _imaging_doc(o, ctx.imager),
        **_steps.acc_doc(o, m),
        "ketamine_global_fraction": m.k_global,
        "receptors": {"ketamine": m.rec_ket, "interaction": m.rec_int,
                      "parcellation": "Schaefer 2018, 200 parcels, 7 networks (parcel means "
                                      "over all voxels of each parcel)",
                      "construction": "sum_k a_k e_k of the parcel-level unique components, "
                                      "painted smoothly into GM, corrected to zero parcel r "
                                      "with non-target maps (see truth.receptor_effect)",
                      "correlations": rstats},
        "true_group_t": tstats,
        "planted_correlations": planted,
        "subjects": subjects,
        "scans": scans,
    }


def _quantification_doc(o: dict, imager: _Imager) -> dict:
    """Return the ``quantification`` section of truth.json: the forward model's constants."""
    return {
        "formula": "CBF = 6000 lambda dM exp(PLD/T1b) / (2 alpha T1b M0 (1 - exp(-tau/T1b))) "
                   "(Alsop et al. 2015, MRM 73:102)",
        "lambda": signal.LAMBDA, "t1_blood": signal.T1_BLOOD,
        "alpha_pcasl": signal.ALPHA_PCASL, "alpha_bs_per_pulse": signal.ALPHA_BS_PULSE,
        "bs_pulses": o["bs_pulses"], "alpha_effective": imager.alpha,
        "post_labeling_delay": o["post_labeling_delay"],
        "labeling_duration": o["labeling_duration"],
        "m0_tr": o["m0_tr"], "t1_tissue_m0": signal.T1_TISSUE,
        "m0_recovery_fraction": imager.recovery,
        "m0_correction": "measured M0 = M0 (1 - exp(-TR_M0 / 1.3 s)); divide it out",
        "deltam_per_cbf_per_m0": imager.k, "m0_scale_csf": M0_SCALE,
        "proton_density": {"csf": signal.PD_CSF, "gm": signal.PD_GM, "wm": signal.PD_WM},
        "deltam_scaling": "deltaM is the mean control - label difference, same units as M0",
    }


def _imaging_doc(o: dict, imager: _Imager) -> dict:
    """Return the ``imaging`` section of truth.json: native grid, PSF, noise, poses."""
    return {
        "native_grid_shape": list(imager.grid.shape),
        "native_voxel_size": list(imager.grid.voxel_size),
        "native_affine": imager.grid.affine.tolist(),
        "supersampling": list(imager.sub),
        "psf_fwhm_voxels": list(o["psf_fwhm"]),
        "noise_sd_deltam": imager.sigma_dm, "noise_sd_m0": imager.sigma_m0,
        "snr_voxel_volume_factor": imager.snr_scale,
        "snr_reference_voxel_mm": list(REFERENCE_VOXEL),
        "truth_storage": "int16 with scl_slope 0.01 (ml/100 g/min); values as read back",
        "noise": "Gaussian on deltaM and control/label, Rician (magnitude) on M0 and T1w",
        "bs_residual_static_fraction": BS_RESIDUAL,
        "head_centre_mni": list(native.HEAD_CENTRE_MNI),
        "pose_convention": "x_MNI = A @ [x_scanner, 1] (world mm, RAS)",
    }


def _fix_permissions(root: Path) -> None:
    """Give the dataset ordinary permissions (temporary files and dirs are created 0600/0700)."""
    umask = os.umask(0)
    os.umask(umask)
    for dirpath, dirnames, filenames in os.walk(root):
        os.chmod(dirpath, 0o777 & ~umask)
        for f in filenames:
            os.chmod(os.path.join(dirpath, f), 0o666 & ~umask)
