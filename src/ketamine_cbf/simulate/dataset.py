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

The crossover: ``B`` is the participant's own (cortical-thickness-changed) tissue model,
all scans of the naltrexone-first sequence are multiplied by ``1 + sequence_effect`` and
all of period 2 by ``1 + period_effect``, each run by ``1 + co2_reactivity * etco2`` (EtCO2
Gaussian per run), both runs of period 2 carry ``carryover`` times period 1's focal
amplitudes, and the focal amplitude deviations split into a subject part ``u`` (variance
``ketamine_reliability * ketamine_sd^2``) and a session part ``v`` (the rest).

Each scan's true CBF is then imaged by :mod:`ketamine_cbf.simulate.scanner`: the
participant's own anatomy (:mod:`.anatomy`), the general kinetic model (:mod:`.physics`),
session pose, run repositioning and per-volume motion (:mod:`.motion`), partial volume,
PSF, coil bias, thermal noise. Participants are independent (random streams keyed by
participant, session and run) and are simulated in parallel.
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
from ketamine_cbf.io.groundtruth import SUBJECT_FRAME
from ketamine_cbf.io.layout import TEMPLATE_SPACE, bids_name, scan_entities
from ketamine_cbf.io.provenance import save_nifti, write_json, write_text, write_tsv
from ketamine_cbf.simulate import _steps, _truthdoc
from ketamine_cbf.simulate import design as sdesign
from ketamine_cbf.simulate import anatomy as sanat
from ketamine_cbf.simulate import motion, native, scanner, truth, write
from ketamine_cbf.simulate.params import validate
from ketamine_cbf.stattools import rng as _rng
from ketamine_cbf.study import ACC_CENTRES_MNI

__all__ = ["TRUTH_STEP", "simulate_dataset"]

#: RNG stream tags (a stream is ``stattools.rng(seed, tag, *indices)``).
_DESIGN, _SUBJECT, _SESSION, _RUN, _POSE, _NOISE, _PHENO, _ANAT = range(1, 9)
_WARP, _PHYS, _MOTION, _PHYSIO = range(9, 13)
#: The run index of a session's T1w in the pose stream (runs 1, 2 are the ASL scans).
_T1W_RUN = 3


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


def simulate_dataset(out_dir, seed: int = 20261126, overwrite: bool = False,
                     n_jobs: int | None = None, **options) -> Path:
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
    n_jobs : int, optional
        Participants simulated in parallel (forked processes); None: all CPUs. The dataset
        is byte-identical for any value.
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
    jobs = _n_jobs(n_jobs)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial", dir=out_dir.parent))
    try:
        _build(tmp, int(seed), opts, jobs)
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


def _n_jobs(n_jobs) -> int:
    """Resolve ``n_jobs`` (None: the CPUs this process may use)."""
    if n_jobs is None:
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)) or n_jobs < 1:
        raise UsageError(f"simulate: n_jobs must be a positive integer (got {n_jobs!r})")
    return int(n_jobs)


@dataclass
class _Context:
    """What the steps of one build share: dataset root, master seed, options, model, scanner."""

    root: Path
    seed: int
    o: dict
    model: _steps.Planted
    scanner: scanner.Scanner

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


@dataclass
class _Participant:
    """A participant's latent values shared by both sessions."""

    i: int
    pid: str
    order: str
    base: np.ndarray  # B_i g_i s_seq (1 + sigma_f f_i) + t_i P_sg (MNI frame)
    u: dict  # subject part of the focal ketamine amplitudes
    mover: bool  # moves more during the infusion
    imager: scanner.ParticipantScanner
    record: dict


def _build(root: Path, seed: int, o: dict, n_jobs: int = 1) -> None:
    """Write the whole dataset into the empty folder ``root``.

    The steps: the truth-level model, the design, each participant in turn (anatomy,
    physiology, latent values, T1w, both sessions), the phenotypes, the group maps and
    statistics, and ``truth.json``.
    """
    model = _steps.planted_model(o)
    ctx = _Context(root, seed, o, model, scanner.Scanner(o, model.anat))
    participants, sess = _write_design(root, seed, o)
    group = _steps.GroupStats(model.anat.brain)
    truth_rows, scan_records, subject_records = [], [], {}
    people = list(enumerate(zip(participants["participant_id"], participants["order"])))
    for (i, (pid, _)), (subject, scans, rows, contrasts) in zip(
            people, _each_participant(ctx, people, sess, n_jobs)):
        subject_records[pid] = subject
        scan_records += scans
        truth_rows += rows
        group.add(contrasts)
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


#: What forked worker processes share (set before the pool starts, read by _participant_job).
_SHARED: dict = {}


def _participant_job(person) -> tuple:
    """Simulate one participant in a worker; return its records and true contrast maps."""
    ctx, sess = _SHARED["ctx"], _SHARED["sess"]
    i, (pid, order) = person
    subject, scans, rows, deltas = _simulate_participant(ctx, i, pid, order, sess)
    return subject, scans, rows, _steps.contrast_maps(deltas)


def _each_participant(ctx: _Context, people: list, sess: pd.DataFrame, n_jobs: int):
    """Yield each participant's (record, scan records, truth rows, contrast maps), in order.

    Participants are independent (each draws from streams keyed by its index and writes its
    own files), so ``n_jobs`` forked processes give the same bytes as one.
    """
    _SHARED.update(ctx=ctx, sess=sess)
    try:
        if n_jobs <= 1 or len(people) < 2:
            yield from map(_participant_job, people)
            return
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(min(n_jobs, len(people)),
                                 mp_context=multiprocessing.get_context("fork")) as pool:
            yield from pool.map(_participant_job, people)
    finally:
        _SHARED.clear()


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


def _simulate_participant(ctx: _Context, i: int, pid: str, order: str, sess: pd.DataFrame):
    """Simulate and write participant ``i``: anatomy, latent values, T1w, both sessions.

    Returns (subject record, scan records, one truth row per session, true deltaCBF map
    per arm).
    """
    part = _draw_subject(ctx, i, pid, order)
    _write_anatomy(ctx, part)
    scan_records, truth_rows, deltas = [], [], {}
    carried = {roi: 0.0 for roi in ACC_CENTRES_MNI}  # period 1's focal effect, into period 2
    for _, srow in sess[sess["participant_id"] == pid].sort_values("period").iterrows():
        scans, trow, delta, amps = _simulate_session(ctx, part, srow, carried)
        carried = {roi: ctx.o["carryover"] * a for roi, a in amps.items()}
        scan_records += scans
        truth_rows.append(trow)
        deltas[srow["pretreatment"]] = delta
    ent_sub = scan_entities(pid, None, None)
    write_tsv(ctx.root / pid / bids_name(ent_sub, "sessions", ".tsv"),
              sess.loc[sess["participant_id"] == pid, ["session_id", "pretreatment", "period"]])
    # the legacy bids-validator accepts no top-level sessions.json: one per participant
    write_json(ctx.root / pid / bids_name(ent_sub, "sessions", ".json"), write.sessions_json())
    return part.record, scan_records, truth_rows, deltas


def _draw_subject(ctx: _Context, i: int, pid: str, order: str) -> _Participant:
    """Draw participant ``i``: own anatomy (warp stream), physiology (physics stream), then
    from the subject stream g_i, f_i, t_i and the subject part u_i of the focal response.

    The baseline is built from the participant's own tissue maps (MNI frame), scaled by the
    sequence effect for the naltrexone-first order.
    """
    o, m = ctx.o, ctx.model
    sa = sanat.draw_subject_anatomy(
        m.anat, _rng(ctx.seed, _WARP, i), brain_size_sd=o["brain_size_sd"],
        warp_rms=o["warp_rms"], warp_fwhm=o["warp_fwhm"], ventricle_sd=o["ventricle_sd"],
        cortical_thickness_sd=o["cortical_thickness_sd"])
    phys = scanner.draw_physics(_rng(ctx.seed, _PHYS, i), o)
    rs = _rng(ctx.seed, _SUBJECT, i)
    g_i = max(0.5, 1.0 + o["subject_sd"] * rs.standard_normal())
    f_i = m.fields(rs)
    trait = o["sgacc_trait_sd"] * rs.standard_normal()
    sd_u = o["ketamine_sd"] * np.sqrt(o["ketamine_reliability"])
    u = {roi: sd_u * rs.standard_normal() for roi in ACC_CENTRES_MNI}
    seq = 1.0 + (o["sequence_effect"] if order == "NP" else 0.0)
    base_i = (o["gm_cbf"] * sa.gm * m.anat.pattern + o["wm_cbf"] * sa.wm).astype(np.float32)
    base = base_i * np.float32(g_i * seq) * (1 + np.float32(o["subject_field_sd"]) * f_i) \
        + np.float32(trait) * m.blobs["sgACC"]
    mover = bool(_rng(ctx.seed, _MOTION, i).random() < o["mover_fraction"])
    record = {"global_factor": g_i, "sgacc_trait": trait, "ketamine_subject_deviation": u,
              "order": order, "sequence_factor": seq, "mover": mover,
              "anatomy": sa.record, "physiology": phys.record()}
    return _Participant(i, pid, order, base, u, mover, ctx.scanner.participant(sa, phys), record)


def _write_anatomy(ctx: _Context, part: _Participant) -> None:
    """Write the T1w (session 1, own pose), its true tissue maps and transform, and the warp."""
    o = ctx.o
    A_s = _session_pose(ctx, part.i, 1)[0]
    offset = motion.run_offset(_rng(ctx.seed, _POSE, part.i, 1, _T1W_RUN), o["run_motion"],
                               o["run_motion"] / 2)
    A_t1 = A_s @ motion.rigid_matrix(offset)
    data, tissues = part.imager.t1w(A_t1, _rng(ctx.seed, _ANAT, part.i))
    grid = ctx.scanner.t1w_grid
    ent1 = scan_entities(part.pid, "ses-1", None)
    anat_dir = Path(part.pid) / "ses-1" / "anat"
    save_nifti(_native_image(data, grid.affine, dtype=np.int16),
               ctx.root / anat_dir / bids_name(ent1, "T1w"))
    write_json(ctx.root / anat_dir / bids_name(ent1, "T1w", ".json"), write.t1w_sidecar())
    for label, prob in tissues.items():  # uint8, scaled by nibabel: probabilities to ~0.004
        img = _native_image(np.clip(prob, 0, 1), grid.affine, dtype=np.uint8)
        save_nifti(img, ctx.gt / anat_dir / bids_name({**ent1, "label": label}, "probseg"))
    _write_xfm(ctx.gt / anat_dir, ent1, A_t1)
    ent_sub = scan_entities(part.pid, None, None)
    save_nifti(sanat.displacement_image(part.imager.sa), ctx.gt / part.pid / "anat" / bids_name(
        {**ent_sub, "from": SUBJECT_FRAME, "to": TEMPLATE_SPACE, "mode": "points"},
        "xfm", ".nii.gz"))
    part.record["t1w_pose"] = {"matrix": A_t1.tolist(), "run_offset": offset.tolist()}


def _write_xfm(folder: Path, ent: dict, A: np.ndarray) -> None:
    """Write a scan's true rigid pose, scanner -> participant frame (``x = A @ [x_scanner, 1]``)."""
    write_text(folder / bids_name(
        {**ent, "from": "scanner", "to": SUBJECT_FRAME, "mode": "image"}, "xfm", ".txt"),
        _xfm_text(A))


def _session_pose(ctx: _Context, i: int, period: int) -> tuple[np.ndarray, dict]:
    """Return the head position of a session (uniform within the max rotation/translation)."""
    return native.random_pose(_rng(ctx.seed, _POSE, i, period, 0), ctx.o["max_rotation"],
                              ctx.o["max_translation"])


def _simulate_session(ctx: _Context, part: _Participant, srow: pd.Series, carried: dict):
    """Simulate and write one session: the pre and during runs and the scans.tsv.

    Returns (the two scan records, the session's truth row, true deltaCBF during - pre,
    the focal amplitudes of the session).
    """
    ses, arm, period = srow["session_id"], srow["pretreatment"], int(srow["period"])
    ses_base, amps, bias, bias_par, times = _draw_session(ctx, part, period, arm)
    A_s, pose = _session_pose(ctx, part.i, period)
    maps, scans_rows, records = {}, [], []
    for run, tp in ((1, "pre"), (2, "during")):
        scan = _Scan(part.i, part.pid, ses, period, run, tp, arm)
        codes, maps[tp], physio = _true_cbf(ctx, scan, ses_base, amps, carried)
        asl_name, scan_rec = _write_scan(ctx, part, scan, codes, maps[tp], bias, A_s)
        scans_rows.append({"filename": f"perf/{asl_name}", "acq_time": times[tp],
                           "timepoint": tp})
        records.append({**_scan_values(ctx.model, scan, maps[tp]), **scan_rec, **physio,
                        "session_pose": pose, "coil_bias": bias_par})
    write_tsv(ctx.root / part.pid / ses / bids_name(scan_entities(part.pid, ses, None), "scans",
                                                  ".tsv"), pd.DataFrame(scans_rows))
    trow = _session_truth_row(records[0], records[1], period, amps, part.record, carried)
    return records, trow, maps["during"] - maps["pre"], amps


def _draw_session(ctx: _Context, part: _Participant, period: int, arm: str):
    """Draw a session's latent values from its stream (e_is, g_is, v_is, coil bias, times).

    Returns (session baseline S with the period effect, focal amplitudes A_roi, coil bias
    field and parameters, acquisition times).
    """
    o, m = ctx.o, ctx.model
    rss = _rng(ctx.seed, _SESSION, part.i, period)
    e_s = o["session_sd"] * rss.standard_normal()
    g_s = m.fields(rss)
    sd_v = o["ketamine_sd"] * np.sqrt(1.0 - o["ketamine_reliability"])
    v = {roi: sd_v * rss.standard_normal() for roi in ACC_CENTRES_MNI}
    bias, bias_par = native.coil_sensitivity(ctx.scanner.grid, rss, o["coil_bias"])
    per = 1.0 + (o["period_effect"] if period == 2 else 0.0)
    ses_base = part.base * np.float32((1 + e_s) * per) * (1 + np.float32(o["run_field_sd"]) * g_s)
    factor = (1 - m.att) if arm == "naltrexone" else 1.0
    amps = {roi: 0.0 if m.null else m.focal_mean[roi] * factor + part.u[roi] + v[roi]
            for roi in ACC_CENTRES_MNI}
    times = sdesign.scan_times(period, part.i, rss)
    return ses_base, amps, bias, bias_par, times


def _true_cbf(ctx: _Context, scan: _Scan, ses_base: np.ndarray, amps: dict, carried: dict):
    """Draw a run's deviations (e_isr, g_isr, end-tidal CO2) and return its true CBF as stored.

    Period 1's carried-over focal effect is present in both runs of period 2. During the
    infusion the global, focal and receptor ketamine effects are added. Returns (int16
    codes, float values, physiology record), see :func:`_quantise`.
    """
    o, m = ctx.o, ctx.model
    rr = _rng(ctx.seed, _RUN, scan.i, scan.period, scan.run)
    e_r = o["run_sd"] * rr.standard_normal()
    g_r = m.fields(rr)
    etco2 = o["etco2_sd"] * _rng(ctx.seed, _PHYSIO, scan.i, scan.period, scan.run).standard_normal()
    co2 = max(0.5, 1.0 + o["co2_reactivity"] * etco2)
    cbf = ses_base * np.float32((1 + e_r) * co2) * (1 + np.float32(o["run_field_sd"]) * g_r)
    for roi, a in carried.items():
        if a:
            cbf = cbf + np.float32(a) * m.blobs[roi]
    if scan.tp == "during":
        cbf = cbf * np.float32(1 + m.k_global)
        for roi, a in amps.items():
            cbf = cbf + np.float32(a) * m.blobs[roi]
        cbf = cbf + m.r_ket + (0.5 if scan.arm == "naltrexone" else -0.5) * m.r_int
    codes, values = _quantise(cbf)
    return codes, values, {"etco2_mmhg": etco2, "co2_factor": co2}


def _write_scan(ctx: _Context, part: _Participant, scan: _Scan, codes: np.ndarray,
                cbf: np.ndarray, bias: np.ndarray, A_s: np.ndarray) -> tuple[str, dict]:
    """Image one run and write it: true CBF (MNI and native), pose, motion, ASL, sidecars.

    Returns (ASL file name, scan record: pose, motion summary, effective labelling
    efficiency).
    """
    o, sc = ctx.o, ctx.scanner
    ent = scan_entities(scan.pid, scan.ses, scan.run)
    perf = Path(scan.pid) / scan.ses / "perf"
    save_nifti(_truth_image(codes, ctx.model.anat.affine, 4), ctx.gt / perf / bids_name(
        {**ent, "space": TEMPLATE_SPACE, "res": o["resolution"], "desc": "true"}, "cbf"))
    offset = motion.run_offset(_rng(ctx.seed, _POSE, scan.i, scan.period, scan.run),
                               o["run_motion"], o["run_motion"] / 2)
    A = A_s @ motion.rigid_matrix(offset)
    _write_xfm(ctx.gt / perf, ent, A)
    factor = o["infusion_motion_factor"] if (part.mover and scan.tp == "during") else 1.0
    shots = motion.motion_trace(_rng(ctx.seed, _MOTION, scan.i, scan.period, scan.run),
                                sc.n_shots(), o["motion_rms"], factor=factor,
                                spike_rate=o["spike_rate"], spike_mm=o["spike_mm"], tr=o["tr"])
    alpha = part.imager.scan_alpha(_rng(ctx.seed, _PHYS, scan.i, scan.period, scan.run))
    img = part.imager.image(cbf, A, bias, shots, alpha,
                            _rng(ctx.seed, _NOISE, scan.i, scan.period, scan.run))
    save_nifti(_truth_image(_quantise(img.true_native)[0], sc.grid.affine, 1),
               ctx.gt / perf / bids_name({**ent, "desc": "true"}, "cbf"))
    _write_motion(ctx.gt / perf, ent, img)
    asl_name = bids_name(ent, "asl")
    save_nifti(_native_image(img.series, sc.grid.affine, dtype=np.int16, tr=o["tr"]),
               ctx.root / perf / asl_name)
    write_json(ctx.root / perf / bids_name(ent, "asl", ".json"),
               write.asl_sidecar(o, len(img.types) - 1, len(img.types) - 1))
    write_tsv(ctx.root / perf / bids_name(ent, "aslcontext", ".tsv"),
              pd.DataFrame({"volume_type": img.types}))
    fd = motion.framewise_displacement(img.motion)
    return asl_name, {"pose": {"matrix": A.tolist(), "run_offset": offset.tolist()},
                      "motion": {"factor": factor, "mean_fd_mm": float(fd.mean()),
                                 "max_fd_mm": float(fd.max())},
                      "alpha_effective": img.alpha}


def _write_motion(folder: Path, ent: dict, img: scanner.ScanImages) -> None:
    """Write the per-volume head motion of a scan (relative to its M0 volume) and its sidecar."""
    table = pd.DataFrame(img.motion, columns=list(motion.PARAM_NAMES))
    table.insert(0, "volume_type", img.shot_types)
    table["framewise_displacement"] = motion.framewise_displacement(img.motion)
    write_tsv(folder / bids_name({**ent, "desc": "headmotion"}, "timeseries", ".tsv"), table)
    write_json(folder / bids_name({**ent, "desc": "headmotion"}, "timeseries", ".json"),
               write.motion_json(len(img.types)))


def _scan_values(model: _steps.Planted, scan: _Scan, cbf: np.ndarray) -> dict:
    """Return a scan's truth-level values: global GM CBF and the mean CBF of each ACC ROI."""
    row = {"participant_id": scan.pid, "session_id": scan.ses, "run": scan.run,
           "timepoint": scan.tp, "pretreatment": scan.arm,
           "global_gm_cbf": float(cbf[model.anat.gm_mask].mean())}
    for roi, m in model.rois.items():
        row[f"{roi.lower()}_cbf"] = float(cbf[m].mean())
    return row


def _session_truth_row(p: dict, d: dict, period: int, amps: dict, subject: dict,
                       carried: dict) -> dict:
    """Return a session's row of phenotype_truth.tsv from its pre (p) and during (d) values."""
    trow = {"participant_id": p["participant_id"], "session_id": p["session_id"],
            "pretreatment": p["pretreatment"], "period": period, "order": subject["order"],
            "global_gm_cbf_pre": p["global_gm_cbf"],
            "global_gm_cbf_during": d["global_gm_cbf"],
            "etco2_pre": p["etco2_mmhg"], "etco2_during": d["etco2_mmhg"]}
    for roi in ACC_CENTRES_MNI:
        key = roi.lower()
        trow[f"{key}_pre_cbf"] = p[f"{key}_cbf"]
        trow[f"{key}_during_cbf"] = d[f"{key}_cbf"]
        trow[f"{key}_delta_cbf"] = d[f"{key}_cbf"] - p[f"{key}_cbf"]
        trow[f"{key}_pre_rcbf"] = p[f"{key}_cbf"] / p["global_gm_cbf"]
        trow[f"{key}_delta_rcbf"] = (d[f"{key}_cbf"] / d["global_gm_cbf"]
                                     - p[f"{key}_cbf"] / p["global_gm_cbf"])
        trow[f"ketamine_amplitude_{key}"] = amps[roi]
        trow[f"carryover_amplitude_{key}"] = carried[roi]
    trow["sgacc_trait"] = subject["sgacc_trait"]
    trow["global_factor"] = subject["global_factor"]
    trow["mean_fd_pre"] = p["motion"]["mean_fd_mm"]
    trow["mean_fd_during"] = d["motion"]["mean_fd_mm"]
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
        "quantification": _truthdoc.quantification_doc(o, ctx.scanner),
        "physics": _truthdoc.physics_doc(o),
        "anatomy": _truthdoc.anatomy_doc(o),
        "crossover": _truthdoc.crossover_doc(o),
        "imaging": _truthdoc.imaging_doc(o, ctx.scanner),
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


def _fix_permissions(root: Path) -> None:
    """Give the dataset ordinary permissions (temporary files and dirs are created 0600/0700)."""
    umask = os.umask(0)
    os.umask(umask)
    for dirpath, dirnames, filenames in os.walk(root):
        os.chmod(dirpath, 0o777 & ~umask)
        for f in filenames:
            os.chmod(os.path.join(dirpath, f), 0o666 & ~umask)

