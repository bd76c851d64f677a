"""Private ANTs glue of stage 2: the ``antsRegistration`` call and ITK's thread count.

:func:`antsreg_args` builds the argument list of ``antsRegistration`` (the syntax of the ANTs
command line) from the settings of :data:`ketamine_cbf.normalisation.registration.
DEFAULT_REGISTRATION`; :func:`run_antsreg` runs it in this process through antspyx.
Bit-reproducible registrations need ITK single-threaded: :func:`set_single_thread` pins it
before ANTs loads, :func:`pinned_in_process` says whether that still worked here.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ketamine_cbf.imaging import ITK_THREADS, pinned_in_process, set_single_thread

__all__ = ["ITK_THREADS", "set_single_thread", "pinned_in_process", "antsreg_args", "run_antsreg"]

def antsreg_args(f, m, stages, settings, seed, fixed_mask=None, moving_mask=None, init="com"):
    """Build the ``antsRegistration`` argument list (same syntax as the ANTs command line)."""
    conv = settings["convergence"]
    metric = settings["metric"]
    bins = int(settings["bins"])
    sampling = float(settings["sampling"])
    args = ["-d", "3"]
    if init == "com":
        args += ["-r", f"[{f},{m},1]"]  # 1: align the intensity centres of mass
    for stage in stages:
        s = settings[stage]
        if stage == "syn":
            args += ["-t", f"SyN[{s['step']},{s['update_sigma']},{s['total_sigma']}]",
                     "-m", f"MI[{f},{m},1,{bins}]"]
        else:
            name = "Rigid" if stage == "rigid" else "Affine"
            rate = float(s["sampling"]) if s.get("sampling") else sampling
            args += ["-t", f"{name}[{settings['step']}]",
                     "-m", f"{metric}[{f},{m},1,{bins},Regular,{rate}]"]
        args += ["-c", f"[{s['iterations']},{conv}]", "-f", s["shrink"], "-s", s["smoothing"]]
        if fixed_mask is not None or moving_mask is not None:
            args += ["-x", f"[{fixed_mask or 'NA'},{moving_mask or 'NA'}]"]
    args += ["-z", "1", "--float", "1", "-u", "1", "--random-seed", str(int(seed)),
             "--write-composite-transform", "0"]
    return args


def _mask_pointer(mask, keep: list):
    if mask is None:
        return None
    m = (mask > 0).clone("float")
    keep.append(m)
    from ants.internal import get_pointer_string

    return get_pointer_string(m)


def run_antsreg(fixed, moving, stages, settings, seed, prefix, fixed_mask=None, moving_mask=None,
                init="com"):
    """Run ``antsRegistration`` on two ``ants.ANTsImage``; return (affine file, warp, inverse warp).

    The forward affine file maps fixed (template) points to moving (native) points; the
    warps are None unless a SyN stage ran.
    """
    from ants.internal import get_lib_fn, get_pointer_string, process_arguments

    fixed = fixed.clone("float")
    moving = moving.clone("float")
    keep = [fixed, moving]  # keep the images alive while ANTs reads them through pointers
    f, m = get_pointer_string(fixed), get_pointer_string(moving)
    fm, mm = _mask_pointer(fixed_mask, keep), _mask_pointer(moving_mask, keep)
    warped_mov, warped_fix = fixed.clone(), moving.clone()
    keep += [warped_mov, warped_fix]
    args = antsreg_args(f, m, stages, settings, seed, fm, mm, init=init)
    args += ["-o", f"[{prefix},{get_pointer_string(warped_mov)},{get_pointer_string(warped_fix)}]"]
    rc = get_lib_fn("antsRegistration")(process_arguments(args))
    if rc != 0:
        raise RuntimeError(f"antsRegistration failed with status {rc}")
    aff = Path(f"{prefix}0GenericAffine.mat")
    warp = Path(f"{prefix}1Warp.nii.gz")
    inv = Path(f"{prefix}1InverseWarp.nii.gz")
    del keep
    return aff, (warp if warp.is_file() else None), (inv if inv.is_file() else None)
