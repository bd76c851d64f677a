"""Private per-scan work of stage 2 (runs in worker processes).

A job is a JSON-like dict (paths as strings) built by :mod:`ketamine_cbf.normalisation.pipeline`;
:func:`process_scan` writes one scan's maps, mask and transforms into ``job["workdir"]`` and
returns its QC row; :func:`process_t1w` registers one subject's T1w. The pipeline runs them
with :func:`ketamine_cbf.imaging.run_jobs` (fresh single-threaded processes, the same
runner as stage 1's registrations).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import nibabel as nib
import numpy as np

from ketamine_cbf.imaging import load_image
from ketamine_cbf.io import provenance as prov
from ketamine_cbf.io.groundtruth import mapping_from_files
from ketamine_cbf.io.layout import TEMPLATE_SPACE, bids_name
from ketamine_cbf.imaging import run_jobs, set_single_thread
from ketamine_cbf.normalisation.maps import (
    field_of_view,
    global_gm_cbf,
    resample_to_template,
    smooth_image,
    template_grid_masks,
    warp_mask,
)
from ketamine_cbf.normalisation.qc import affine_summary, dice, gm_correlation, registration_errors
from ketamine_cbf.study import ACC_CENTRES_MNI
from ketamine_cbf.normalisation.registration import (
    Registration,
    apply_registration,
    register_t1w_to_template,
    register_to_template,
    register_via_t1w,
    write_ants_affine,
)

__all__ = ["output_names", "process_scan", "process_t1w"]


def output_names(ent: dict, resolution: int) -> dict:
    """File names of one scan's outputs (BIDS entities ``ent``, template grid ``resolution``)."""
    sp = {**ent, "space": TEMPLATE_SPACE, "res": resolution}
    xf = {**ent, "from": "scanner", "to": TEMPLATE_SPACE, "mode": "image"}
    return {
        "cbf": bids_name(sp, "cbf"),
        "cbf_smooth": bids_name({**sp, "desc": "smooth"}, "cbf"),
        "brain_mask": bids_name({**sp, "desc": "brain"}, "mask"),
        "aslref": bids_name(sp, "aslref"),
        "xfm_txt": bids_name(xf, "xfm", ".txt"),
        "xfm_mat": bids_name(xf, "xfm", ".mat"),
        "xfm_warp": bids_name({**xf, "desc": "warp"}, "xfm", ".nii.gz"),
        "xfm_inverse_warp": bids_name({**xf, "desc": "inverse"}, "xfm", ".nii.gz"),
    }


def _passthrough(job: dict, cbf, brain_tpl, res: int) -> tuple:
    """A map already in an MNI space: resampled only. Returns (warped, mask, fov, row, files)."""
    warped = resample_to_template(cbf, brain_tpl)
    if job.get("mask"):
        wmask = np.asarray(resample_to_template(job["mask"], brain_tpl, "nearest",
                                                "brain mask").dataobj) > 0
    else:
        wmask = np.asarray(warped.dataobj) != 0
    fov = np.ones(brain_tpl.shape, bool)
    row = {"method": f"passthrough: already in space-{job['space']}, resampled to the "
                     f"{TEMPLATE_SPACE} {res} mm grid"
                     + ("" if job["space"] == TEMPLATE_SPACE
                        else f" (treated as {TEMPLATE_SPACE}; 2009c/6Asym differ by 1-2 mm)")}
    return warped, wmask, fov, row, {}


def _registration(job: dict, aslref, mask, regdir: Path) -> Registration:
    p = job["params"]
    if job.get("t1w_registration"):
        return register_via_t1w(aslref, mask, job["t1w"],
                                Registration.from_dict(job["t1w_registration"]),
                                ants_seed=p["ants_seed"], registration=p["registration"])
    return register_to_template(aslref, mask, transform=p["transform"], ants_seed=p["ants_seed"],
                                workdir=regdir, registration=p["registration"])


def _write_transforms(reg: Registration, wd: Path, names: dict) -> dict:
    np.savetxt(wd / names["xfm_txt"], reg.affine, fmt="%.10g")
    write_ants_affine(np.linalg.inv(reg.affine), wd / names["xfm_mat"])
    files = {"xfm": names["xfm_txt"], "xfm_ants": names["xfm_mat"]}
    if reg.warp is not None:
        shutil.copyfile(reg.warp, wd / names["xfm_warp"])
        shutil.copyfile(reg.inverse_warp, wd / names["xfm_inverse_warp"])
        files["xfm_warp"] = names["xfm_warp"]
    return files


def _error_vs_truth(job: dict, native_mask, reg: Registration) -> dict:
    """Mean/max error over the brain and the mean within 10 mm of the ACC centres (NaN: real data)."""
    if not job.get("truth"):
        return {"error_mean_mm": float("nan"), "error_max_mm": float("nan"),
                "error_acc_mm": float("nan")}
    raw = job.get("raw_geometry")
    m_true = (np.asarray(raw["affine"]) if raw and tuple(raw["shape"][:3]) == native_mask.shape
              else None)
    mapping = mapping_from_files(job["truth"], job.get("truth_warp"))
    err = registration_errors(native_mask, reg, mapping, m_true, regions=ACC_CENTRES_MNI)
    return {"error_mean_mm": err["error_mean_mm"], "error_max_mm": err["error_max_mm"],
            "error_acc_mm": err["error_regions_mm"]}


def _register(job: dict, cbf, wd: Path, names: dict, res: int) -> tuple:
    """A native map: registered via its aslref. Returns (warped, mask, fov, row, files)."""
    aslref = load_image(job["aslref"], "aslref")
    mask = load_image(job["mask"], "brain mask") if job.get("mask") else None
    row = {"voxel_size_mm": float(np.prod(np.sqrt((aslref.affine[:3, :3] ** 2).sum(0))) ** (1 / 3))}
    regdir = wd / "reg"
    reg = _registration(job, aslref, mask, regdir)
    row["method"] = reg.method
    row.update(affine_summary(reg.affine))
    warped = apply_registration(cbf, reg, res)
    ref_w = apply_registration(aslref, reg, res)
    ref_w.set_data_dtype(np.int16)  # for QC figures only: 16 bits (scaled) are plenty
    prov.save_nifti(ref_w, wd / names["aslref"])
    native_mask = mask if mask is not None else nib.Nifti1Image(
        (np.asarray(aslref.dataobj) > 0).astype(np.float32), aslref.affine)
    wmask = warp_mask(native_mask, reg, res)
    fov = field_of_view(aslref, reg, res)
    files = _write_transforms(reg, wd, names)
    row.update(_error_vs_truth(job, native_mask, reg))
    shutil.rmtree(regdir, ignore_errors=True)
    return warped, wmask, fov, row, files


def _maps_and_qc(warped, wmask, fov, wd: Path, names: dict, params: dict) -> tuple[dict, dict]:
    """Write the template-grid maps; return the QC values and the file names."""
    brain_tpl, gm_tpl = template_grid_masks(int(params["resolution"]))
    brain = np.asarray(brain_tpl.dataobj) > 0
    row = {"dice": dice(wmask, brain, within=fov),
           "coverage": float((brain & fov & wmask).sum() / brain.sum())}
    mask_img = nib.Nifti1Image(wmask.astype(np.uint8), brain_tpl.affine)
    prov.save_nifti(warped, wd / names["cbf"])
    prov.save_nifti(mask_img, wd / names["brain_mask"])
    fwhm = params["fwhm"]
    prov.save_nifti(smooth_image(warped, fwhm, mask=mask_img if fwhm else None),
                    wd / names["cbf_smooth"])
    row["global_gm_cbf"] = global_gm_cbf(warped, gm_tpl, params["global_gm_threshold"],
                                         valid=mask_img)
    row["gm_corr"] = gm_correlation(warped, gm_tpl, brain & fov & wmask)
    return row, {k: names[k] for k in ("cbf", "cbf_smooth", "brain_mask")}


def process_scan(job: dict) -> dict:
    """Register / resample / smooth one scan into ``job['workdir']``; return its QC row."""
    set_single_thread()
    t0, w0 = time.process_time(), time.time()
    p = job["params"]
    res = int(p["resolution"])
    wd = Path(job["workdir"])
    wd.mkdir(parents=True, exist_ok=True)
    names = output_names(job["entities"], res)
    cbf = load_image(job["cbf"], "CBF")
    row: dict = {"error_mean_mm": float("nan"), "error_max_mm": float("nan"),
                 "error_acc_mm": float("nan"),
                 "voxel_size_mm": float("nan"), "scale": float("nan"), "det_sign": 1,
                 "rotation_deg": float("nan")}
    if job["mode"] == "passthrough":
        warped, wmask, fov, info, files = _passthrough(job, cbf, template_grid_masks(res)[0], res)
    else:
        warped, wmask, fov, info, files = _register(job, cbf, wd, names, res)
    row.update(info)
    measures, maps = _maps_and_qc(warped, wmask, fov, wd, names, p)
    row.update(measures)
    files.update(maps)
    if job["mode"] != "passthrough":
        files["aslref"] = names["aslref"]
    row["files"] = files
    row["cpu_seconds"] = time.process_time() - t0
    row["wall_seconds"] = time.time() - w0
    return row


def process_t1w(job: dict) -> dict:
    """Register one subject's T1w to the template (worker); return the Registration as dict."""
    set_single_thread()
    wd = Path(job["workdir"])
    wd.mkdir(parents=True, exist_ok=True)
    p = job["params"]
    reg = register_t1w_to_template(job["t1w"], transform=p["transform"], ants_seed=p["ants_seed"],
                                   workdir=wd, registration=p["registration"])
    return reg.as_dict()


