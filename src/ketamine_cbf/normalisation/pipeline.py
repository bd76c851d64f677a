"""Stage 2's entry point: normalise every CBF map of a folder, with caching and QC tables.

:func:`normalise_dataset` is a short sequence of named steps: check the parameters, list the
inputs and the design, register the T1w images (optional, once per subject), build one job
per scan, run the jobs that the cache does not hold (in parallel worker processes,
``ketamine_cbf.normalisation._worker``), and write the per-scan files and the tables
``cbf_maps.tsv`` (what stages 3-5 read, through
:func:`ketamine_cbf.io.derivatives.read_cbf_maps`) and ``registration_qc.tsv``.

Caching. Each scan (and each T1w registration) is cached under a key that hashes its input
files, the parameters, the ANTs version and the code of this package
(:func:`ketamine_cbf.io.provenance.code_digest`), so a changed module never serves a stale
result. Determinism: ANTs runs single-threaded with a seed derived from the master seed;
identical inputs and parameters give byte-identical outputs with any number of workers.

Files written to ``out_dir`` (``<r>`` = ``resolution``; per scan under
``sub-X/[ses-Y/]perf/`` with the scan's entities as prefix):

* ``*_space-MNI152NLin2009aSym_res-<r>_cbf.nii.gz``: CBF (ml/100 g/min), linear
  interpolation, 0 outside the scan's field of view;
* ``*_space-..._res-<r>_desc-smooth_cbf.nii.gz``: the same smoothed (``fwhm``);
* ``*_space-..._res-<r>_desc-brain_mask.nii.gz``: the warped stage-1 brain mask;
* ``*_space-..._res-<r>_aslref.nii.gz``: the warped registration reference (QC);
* ``*_from-scanner_to-MNI152NLin2009aSym_mode-image_xfm.txt``: 4x4 RAS affine,
  ``x_MNI = A @ [x_scanner, 1]``;
  ``..._xfm.mat``: the same as an ITK transform in ANTs' direction (template ->
  native points), and with ``syn`` ``..._desc-warp_xfm.nii.gz``; apply with
  ``ants.apply_transforms(fixed=template, moving=native, transformlist=[warp, mat])``;
* ``space-..._res-<r>_desc-brain_mask.nii.gz`` and ``..._label-GM_probseg.nii.gz``;
* ``cbf_maps.tsv``, ``registration_qc.tsv``, ``dataset_description.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ketamine_cbf._docs import fill_doc
from ketamine_cbf.config import DEFAULT_SEED
from ketamine_cbf.errors import InputError, UsageError
from ketamine_cbf.io import provenance as prov
from ketamine_cbf.io.groundtruth import true_transform_path, true_warp_path
from ketamine_cbf.io.layout import (
    TEMPLATE_SPACE,
    bids_name,
    derivative_description,
    participant_ids,
    scan_entities,
)
from ketamine_cbf.normalisation import _docs  # noqa: F401  (registers the stage's parameter texts)
from ketamine_cbf.imaging import resolve_n_jobs, run_jobs
from ketamine_cbf.normalisation._worker import process_scan, process_t1w
from ketamine_cbf.normalisation.inputs import (
    design_table,
    find_inputs,
    find_t1w,
    merge_design,
    quantification_qc_pass,
    raw_asl_geometry,
)
from ketamine_cbf.normalisation.maps import DEFAULT_FWHM, template_grid_masks
from ketamine_cbf.normalisation.qc import flag_registration
from ketamine_cbf.normalisation.registration import registration_settings, transform_stages
from ketamine_cbf.stattools import int_seed

__all__ = ["NormalisationResult", "normalise_dataset", "code_version", "ants_seed"]

_STAGE_NUMBER = 2
_PROGRESS = "[02_normalisation]"  # prefix of the progress bars
_QC_COLUMNS = ("voxel_size_mm", "dice", "gm_corr", "coverage", "scale", "rotation_deg",
               "det_sign", "error_mean_mm", "error_max_mm", "error_acc_mm", "global_gm_cbf")
_DESIGN_COLUMNS = ["participant_id", "session_id", "run", "arm", "period", "timepoint"]
_MAPS_COLUMNS = ["cbf", "cbf_smooth", "brain_mask", "global_gm_cbf", "dice", "coverage",
                 "error_mean_mm", "error_max_mm", "registration_qc_pass", "quant_qc_pass",
                 "qc_pass"]
_REGISTRATION_QC_COLUMNS = ["input", "mode", "method", "voxel_size_mm", "dice", "gm_corr",
                            "coverage", "scale", "rotation_deg", "det_sign", "error_mean_mm",
                            "error_max_mm", "error_acc_mm", "flags", "registration_qc_pass"]


@dataclass
class NormalisationResult:
    """Tables and timing of :func:`normalise_dataset`.

    Attributes
    ----------
    maps : pandas.DataFrame
        ``cbf_maps.tsv`` (one row per scan; what stages 03-05 read).
    qc : pandas.DataFrame
        ``registration_qc.tsv``.
    timing : dict
        ``wall_seconds``, ``n_computed``, ``n_cached``, ``n_jobs``, ``cpu_seconds_per_scan``
        (list).
    """

    maps: pd.DataFrame
    qc: pd.DataFrame
    timing: dict = field(default_factory=dict)


def code_version() -> str:
    """Digest of the code the cache keys on: this package and :mod:`ketamine_cbf.imaging`.

    Returns
    -------
    str
        :func:`ketamine_cbf.io.provenance.code_digest` of ``normalisation`` and ``imaging``.
    """
    return prov.code_digest("normalisation", "imaging")


@fill_doc
def ants_seed(seed: int) -> int:
    """Return the ANTs random seed of stage 2 under the master ``seed``.

    Parameters
    ----------
    %(seed)s

    Returns
    -------
    int
        :func:`ketamine_cbf.stattools.int_seed` of ``(seed, 2)``, in ``[1, 2**31 - 1)``.
    """
    return int_seed(int(seed), _STAGE_NUMBER)


# --------------------------------------------------------------------------------------
# steps
# --------------------------------------------------------------------------------------

def _check_parameters(resolution, transform, fwhm, global_gm_threshold, registration,
                      qc_thresholds, use_t1w, bids_dir, seed) -> dict:
    """Validate the parameters; return those that define the per-scan results."""
    if int(resolution) != resolution or not 1 <= int(resolution) <= 8:
        raise UsageError(f"resolution must be an integer number of mm in 1..8 (got {resolution})")
    transform_stages(transform)
    if fwhm is None or float(fwhm) < 0:
        raise UsageError(f"fwhm must be >= 0 mm (got {fwhm})")
    if not 0 < float(global_gm_threshold) <= 1:
        raise UsageError(f"global_gm_threshold must be in (0, 1] (got {global_gm_threshold})")
    settings = registration_settings(registration)
    flag_registration({}, qc_thresholds)  # validate names early
    if use_t1w and bids_dir is None:
        raise UsageError("use_t1w needs the BIDS dataset (bids_dir) to find the T1w images")
    return {"resolution": int(resolution), "transform": transform, "fwhm": float(fwhm),
            "global_gm_threshold": float(global_gm_threshold), "registration": settings,
            "ants_seed": ants_seed(seed), "use_t1w": bool(use_t1w)}


def _select_inputs(cbf_dir, cbf_desc, participant_label) -> pd.DataFrame:
    inputs = find_inputs(cbf_dir, cbf_desc=cbf_desc)
    if participant_label:
        wanted = participant_ids(participant_label)
        inputs = inputs[inputs["participant_id"].isin(wanted)].reset_index(drop=True)
        if inputs.empty:
            raise InputError(f"{cbf_dir}: no CBF maps for participant(s) {', '.join(sorted(wanted))}")
    return inputs


def _ants_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:  # not `import ants`: ITK must be pinned to one thread before it loads
        return version("antspyx")
    except PackageNotFoundError:  # pragma: no cover - antspyx is a hard dependency
        return "unknown"


def _file_digest(path) -> str | None:
    return prov.sha256_file(path) if path else None


class _Cache:
    """Where finished jobs live: ``cache_dir`` (persistent) or a scratch folder (this run)."""

    def __init__(self, cache_dir, scratch: Path, params: dict):
        self.root = Path(cache_dir) if cache_dir else None
        self.scratch = scratch
        self.stamp = {"params": params, "code": code_version(), "ants": _ants_version()}

    def entry(self, sub: str, name: str, key_items: dict) -> Path:
        key = prov.digest({**key_items, **self.stamp})[:20]
        if self.root is None:
            return self.scratch / sub / name
        return self.root / sub / f"{name}-{key}"

    def hit(self, entry: Path, marker: str) -> dict | None:
        done = entry / marker
        return json.loads(done.read_text()) if self.root and done.is_file() else None

    @staticmethod
    def workdir(entry: Path) -> Path:
        return entry.with_name(entry.name + ".tmp")

    @staticmethod
    def store(entry: Path, marker: str, record: dict) -> None:
        """Write ``record`` into the job's work folder and move it into place."""
        tmp = _Cache.workdir(entry)
        prov.write_json(tmp / marker, record)
        if entry.exists():
            shutil.rmtree(entry)
        tmp.rename(entry)


def _register_t1w_images(inputs, bids_dir, params, cache: _Cache, n_jobs, show) -> dict:
    """T1w -> template, once per subject with a registered scan; ``{participant_id: dict}``."""
    regs, jobs, pending = {}, [], []
    for pid in sorted(set(inputs.loc[inputs["mode"] == "register", "participant_id"])):
        t1 = find_t1w(bids_dir, pid)
        if t1 is None:
            raise InputError(f"{bids_dir}/{pid}: no anat/*_T1w.nii.gz for the two-step "
                             "registration (use_t1w)")
        entry = cache.entry("t1w", pid, {"t1w": _file_digest(t1), "kind": "t1w"})
        done = cache.hit(entry, "registration.json")
        if done is not None:
            regs[pid] = {**done, "t1w": str(t1)}
            continue
        jobs.append({"t1w": str(t1), "workdir": str(cache.workdir(entry)), "params": params})
        pending.append((pid, entry, t1))
    done_jobs = run_jobs(process_t1w, jobs, n_jobs, f"{_PROGRESS} T1w -> MNI", unit="T1w",
                         show=show)
    for (pid, entry, t1), r in zip(pending, done_jobs):
        for k in ("warp", "inverse_warp"):
            if r[k]:
                r[k] = str(entry / Path(r[k]).name)
        cache.store(entry, "registration.json", r)
        regs[pid] = {**r, "t1w": str(t1)}
    return regs


def _scan_job(r, bids_dir, design, params, t1w_regs) -> dict:
    """The job of one input row (JSON-like: what the worker needs, and the cache key)."""
    truth = true_transform_path(bids_dir, r["participant_id"], r["session_id"], r["run"])
    warp = true_warp_path(bids_dir, r["participant_id"]) if truth else None
    job = {"entities": scan_entities(r["participant_id"], r["session_id"], r["run"]),
           "mode": r["mode"], "space": r["space"], "cbf": str(r["cbf"]),
           "aslref": str(r["aslref"]) if r["aslref"] else None,
           "mask": str(r["mask"]) if r["mask"] else None,
           "truth": str(truth) if truth else None,
           "truth_warp": str(warp) if warp else None, "params": params,
           "raw_geometry": (raw_asl_geometry(bids_dir, design, r["participant_id"],
                                             r["session_id"], r["run"]) if truth else None)}
    if r["participant_id"] in t1w_regs and r["mode"] == "register":
        t1 = t1w_regs[r["participant_id"]]
        job["t1w"] = t1["t1w"]
        job["t1w_registration"] = {k: t1[k] for k in ("affine", "warp", "inverse_warp", "method")}
    return job


def _scan_cache_entry(job: dict, cache: _Cache) -> Path:
    key_items = {
        "inputs": {k: _file_digest(job[k]) for k in ("cbf", "aslref", "mask", "truth", "truth_warp")},
        "t1w": _file_digest(job.get("t1w")), "t1w_registration": job.get("t1w_registration"),
        "raw_geometry": job["raw_geometry"], "mode": job["mode"], "space": job["space"]}
    return cache.entry("", bids_name(job["entities"], "scan", ""), key_items)


def _normalise_scans(jobs: list[dict], cache: _Cache, n_jobs, show) -> tuple[list, list, int]:
    """Run the scans the cache lacks; return (results, cache entries, number cached)."""
    entries = [_scan_cache_entry(job, cache) for job in jobs]
    results = [cache.hit(entry, "result.json") for entry in entries]
    todo = [i for i, res in enumerate(results) if res is None]
    for i in todo:
        jobs[i]["workdir"] = str(cache.workdir(entries[i]))
    computed = run_jobs(process_scan, [jobs[i] for i in todo], n_jobs,
                        f"{_PROGRESS} registering scans", show=show)
    for i, res in zip(todo, computed):
        record = {k: v for k, v in res.items() if k not in ("cpu_seconds", "wall_seconds")}
        cache.store(entries[i], "result.json", record | {"cpu_seconds": res["cpu_seconds"]})
        results[i] = res
    return results, entries, len(jobs) - len(todo)


def _place_files(src: Path, dst: Path, names) -> None:
    """Place cached files in the output: hard links (no second copy on disk), else copies."""
    for name in names:
        with prov.atomic_path(dst / name) as tmp:
            try:
                tmp.unlink()
                os.link(src / name, tmp)
            except OSError:
                shutil.copyfile(src / name, tmp)


def _relpath(path, root) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path(root).resolve()))
    except ValueError:
        return str(path)


def _scan_rows(inputs, results, entries, out_dir, cbf_dir, qc_thresholds) -> list[dict]:
    """Place each scan's files in ``out_dir``; return one table row per scan."""
    rows = []
    for (_, r), res, entry in zip(inputs.iterrows(), results, entries):
        ent = scan_entities(r["participant_id"], r["session_id"], r["run"])
        rel = Path(f"sub-{ent['sub']}") / (f"ses-{ent['ses']}" if "ses" in ent else "") / "perf"
        _place_files(entry, out_dir / rel, res["files"].values())
        flags = flag_registration(res, qc_thresholds)
        rows.append({"participant_id": r["participant_id"], "session_id": r["session_id"],
                     "run": r["run"], "input": _relpath(r["cbf"], cbf_dir), "mode": r["mode"],
                     "method": res["method"], **{k: res[k] for k in _QC_COLUMNS},
                     "cpu_seconds": res.get("cpu_seconds", float("nan")),
                     "flags": "; ".join(flags) if flags else "n/a",
                     "registration_qc_pass": not flags,
                     **{k: str(rel / v) for k, v in res["files"].items()}})
    return rows


def _bools_as_text(df: pd.DataFrame) -> pd.DataFrame:
    """Booleans as ``true``/``false`` (as stage 01's ``qc.tsv``)."""
    out = df.copy()
    for c in out.columns:
        if out[c].dtype == bool:
            out[c] = out[c].map({True: "true", False: "false"})
    return out


def _write_tables(rows, design, cbf_dir, out_dir: Path, params) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Write ``cbf_maps.tsv``, ``registration_qc.tsv`` and the description; return the first two."""
    table = merge_design(pd.DataFrame(rows), design)
    quant = quantification_qc_pass(cbf_dir)
    table["quant_qc_pass"] = [quant.get((r.participant_id, r.session_id, str(r.run)), True)
                              for r in table.itertuples()]
    table["qc_pass"] = table["registration_qc_pass"] & table["quant_qc_pass"]
    maps = table[_DESIGN_COLUMNS + _MAPS_COLUMNS].copy()
    qc = table[_DESIGN_COLUMNS + _REGISTRATION_QC_COLUMNS].copy()
    for df in (maps, qc):
        for c in ("registration_qc_pass", "quant_qc_pass", "qc_pass"):
            if c in df:
                df[c] = df[c].astype(bool)
    prov.write_tsv(out_dir / "cbf_maps.tsv", _bools_as_text(maps))
    prov.write_tsv(out_dir / "registration_qc.tsv", _bools_as_text(qc))
    prov.write_json(out_dir / "dataset_description.json", derivative_description(
        "ketamine-cbf stage 02: spatial normalisation",
        "ANTs registration of aslref to MNI152NLin2009aSym (antspyx), resampling, Gaussian "
        "smoothing", Parameters=params))
    return maps, qc


def _write_template_masks(out_dir: Path, resolution: int) -> None:
    brain_tpl, gm_tpl = template_grid_masks(resolution)
    tpl = {"space": TEMPLATE_SPACE, "res": resolution}
    prov.save_nifti(brain_tpl, out_dir / bids_name({**tpl, "desc": "brain"}, "mask"))
    prov.save_nifti(gm_tpl, out_dir / bids_name({**tpl, "label": "GM"}, "probseg"))


# --------------------------------------------------------------------------------------
# the entry point
# --------------------------------------------------------------------------------------

@fill_doc
def normalise_dataset(cbf_dir, out_dir, *, bids_dir=None, design: pd.DataFrame | None = None,
                      resolution: int = 2, transform: str = "affine", use_t1w: bool = False,
                      fwhm: float = DEFAULT_FWHM, global_gm_threshold: float = 0.5,
                      cache_dir=None, n_jobs: int = 0, seed: int = DEFAULT_SEED,
                      qc_thresholds: dict | None = None, registration: dict | None = None,
                      participant_label=None, cbf_desc: str | None = None,
                      progress: bool | None = None) -> NormalisationResult:
    """Normalise every CBF map of ``cbf_dir`` to the template; write ``out_dir``.

    Parameters
    ----------
    cbf_dir : path
        Stage-01 ``quantification/`` folder (native maps + aslref + brain masks), or a
        folder of already-normalised maps (see :func:`ketamine_cbf.normalisation.inputs.find_inputs`).
    out_dir : path
        The ``normalisation/`` folder (created).
    bids_dir : path, optional
        Raw dataset: the design (:func:`ketamine_cbf.io.design.read_design`), the T1w
        images, and, for simulated data, the ground-truth transforms for the error QC.
    design : pandas.DataFrame, optional
        Scan table (default: read from ``bids_dir``, else ``cbf_dir/qc.tsv``, else none).
    %(resolution)s
    %(transform)s
    %(use_t1w)s
    %(fwhm)s
        Kernel of the ``desc-smooth`` maps (0: copies of the unsmoothed maps).
    %(global_gm_threshold)s
    %(cache_dir)s
    %(n_jobs)s
    %(seed)s
        The ANTs seed derives from it (:func:`ants_seed`).
    %(qc_thresholds)s
    %(registration)s
    participant_label : list of str, optional
        Only these participants.
    %(cbf_desc)s
    progress : bool or None
        Progress bar of the scan loop: True forces it on (a terminal), False off; None
        (default) draws it only when the runner turned progress on.

    Returns
    -------
    NormalisationResult

    Raises
    ------
    UsageError
        A parameter out of range or unknown.
    InputError
        Missing or malformed inputs (the message names the file and field).

    Notes
    -----
    The files written are listed in the module docstring
    (:mod:`ketamine_cbf.normalisation.pipeline`).

    References
    ----------
    .. footbibliography::
    """
    w0 = time.time()
    params = _check_parameters(resolution, transform, fwhm, global_gm_threshold, registration,
                               qc_thresholds, use_t1w, bids_dir, seed)
    n_jobs = resolve_n_jobs(n_jobs)
    inputs = _select_inputs(cbf_dir, cbf_desc, participant_label)
    design = design_table(design, bids_dir, cbf_dir, participant_label)
    out_dir = Path(out_dir)
    scratch = Path(tempfile.mkdtemp(prefix="kcbf-norm-"))
    try:
        cache = _Cache(cache_dir, scratch, params)
        t1w_regs = (_register_t1w_images(inputs, bids_dir, params, cache, n_jobs, progress)
                    if use_t1w else {})
        jobs = [_scan_job(r, bids_dir, design, params, t1w_regs) for _, r in inputs.iterrows()]
        results, entries, n_cached = _normalise_scans(jobs, cache, n_jobs, progress)
        out_dir.mkdir(parents=True, exist_ok=True)
        _write_template_masks(out_dir, params["resolution"])
        rows = _scan_rows(inputs, results, entries, out_dir, cbf_dir, qc_thresholds)
        maps, qc = _write_tables(rows, design, cbf_dir, out_dir, params)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    timing = {"wall_seconds": time.time() - w0, "n_computed": len(jobs) - n_cached,
              "n_cached": n_cached, "n_jobs": n_jobs,
              "cpu_seconds_per_scan": [float(r.get("cpu_seconds", float("nan"))) for r in results]}
    return NormalisationResult(maps=maps, qc=qc, timing=timing)
