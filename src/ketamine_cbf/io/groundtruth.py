"""The one reader of a simulated dataset's ground truth (``<bids>/derivatives/groundtruth``).

``ketamine-cbf simulate`` writes the truth beside the raw data: ``truth.json`` (options,
seed, planted effects, correlations and receptor loadings, one record per scan), true maps
in MNI space (``space-<tpl>_res-<r>_desc-<name>_cbf.nii.gz``), per participant the warp of
their own anatomy to the template (``sub-X/anat/sub-X_from-subject_to-<tpl>_mode-points_
xfm.nii.gz``: displacement ``d`` on a grid of the participant frame, ``x_MNI = x + d(x)``)
and per scan (``sub-X/ses-Y/perf/<entities>_desc-true_cbf.nii.gz``, the rigid pose of the
scan's reference volume ``<entities>_from-scanner_to-subject_mode-image_xfm.txt``, the
per-volume head motion ``<entities>_desc-headmotion_timeseries.tsv``). The true mapping of
a scanner point to the template is therefore ``x_MNI = w(A @ x)``
(:func:`read_true_mapping`). Stages use these functions and
never spell the folder out; on real data (no ground truth) every reader returns ``None``
or ``False``, so a stage checks :func:`is_simulated` once.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dataclasses import dataclass

import nibabel as nib
from scipy import ndimage

from ketamine_cbf.errors import InputError
from ketamine_cbf.io.layout import TEMPLATE_SPACE, bids_name, scan_entities

__all__ = ["SUBJECT_FRAME", "groundtruth_dir", "truth_path", "is_simulated", "load_truth",
           "read_truth", "true_map_paths", "true_transform_path", "read_true_transform",
           "true_warp_path", "read_displacement", "TrueMapping", "read_true_mapping",
           "true_motion_path", "mapping_from_files"]

#: The label of a participant's own anatomical frame in transform file names.
SUBJECT_FRAME = "subject"


def groundtruth_dir(bids_dir: str | Path) -> Path:
    """Return ``<bids_dir>/derivatives/groundtruth`` (may not exist)."""
    return Path(bids_dir) / "derivatives" / "groundtruth"


def truth_path(bids_dir: str | Path) -> Path:
    """Return ``<bids_dir>/derivatives/groundtruth/truth.json`` (may not exist)."""
    return groundtruth_dir(bids_dir) / "truth.json"


def is_simulated(bids_dir: str | Path) -> bool:
    """Return True if the dataset carries a ketamine-cbf ground truth."""
    return truth_path(bids_dir).is_file()


def load_truth(bids_dir: str | Path) -> dict:
    """Return the parsed ``truth.json`` of a simulated dataset.

    Raises
    ------
    InputError
        The file is missing or not valid JSON (the message names the file).
    """
    p = truth_path(bids_dir)
    try:
        return json.loads(p.read_text())
    except FileNotFoundError:
        raise InputError(f"{p}: no ground truth (not a simulated dataset)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{p}: cannot be read ({type(e).__name__})") from None
    except json.JSONDecodeError as e:
        raise InputError(f"{p}: not valid JSON ({e.msg}, line {e.lineno})") from None


def read_truth(bids_dir: str | Path | None) -> dict | None:
    """Return ``truth.json`` parsed, or None for real data (no ground truth).

    Raises
    ------
    InputError
        The file exists but is not valid JSON.
    """
    if bids_dir is None or not is_simulated(bids_dir):
        return None
    return load_truth(bids_dir)


def true_map_paths(bids_dir: str | Path, desc: str) -> list[Path]:
    """Return the true MNI maps ``space-<tpl>_res-*_desc-<desc>_cbf.nii.gz``, sorted (may be empty)."""
    return sorted(groundtruth_dir(bids_dir).glob(f"space-{TEMPLATE_SPACE}_res-*_desc-{desc}_cbf.nii.gz"))


def _scan_truth_file(bids_dir, participant_id, session_id, run, extra: dict, suffix: str,
                     ext: str) -> Path | None:
    if bids_dir is None:
        return None
    ent = scan_entities(participant_id, session_id, run)
    ent.update(extra)
    folder = groundtruth_dir(bids_dir) / f"sub-{ent['sub']}"
    if "ses" in ent:
        folder = folder / f"ses-{ent['ses']}"
    f = folder / "perf" / bids_name(ent, suffix, ext)
    return f if f.is_file() else None


def true_transform_path(bids_dir, participant_id: str, session_id: str | None,
                        run: str | int | None) -> Path | None:
    """Return the true rigid pose of one scan, or None (real data, or missing).

    ``sub-X/[ses-Y/]perf/<entities>_from-scanner_to-subject_mode-image_xfm.txt`` (4x4 RAS
    matrix, ``numpy.savetxt``): scanner mm -> the participant's own anatomical frame.
    """
    return _scan_truth_file(bids_dir, participant_id, session_id, run,
                            {"from": "scanner", "to": SUBJECT_FRAME, "mode": "image"}, "xfm",
                            ".txt")


def true_motion_path(bids_dir, participant_id: str, session_id: str | None,
                     run: str | int | None) -> Path | None:
    """Return a scan's true per-volume head motion table, or None.

    ``<entities>_desc-headmotion_timeseries.tsv``: one row per control/label volume,
    ``trans_x/y/z`` (mm) and ``rot_x/y/z`` (degrees) relative to the scan's M0 volume.
    """
    return _scan_truth_file(bids_dir, participant_id, session_id, run, {"desc": "headmotion"},
                            "timeseries", ".tsv")


def true_warp_path(bids_dir, participant_id: str) -> Path | None:
    """Return a participant's true anatomy-to-template displacement field, or None."""
    if bids_dir is None:
        return None
    ent = scan_entities(participant_id, None, None)
    ent.update({"from": SUBJECT_FRAME, "to": TEMPLATE_SPACE, "mode": "points"})
    f = groundtruth_dir(bids_dir) / f"sub-{ent['sub']}" / "anat" / bids_name(ent, "xfm", ".nii.gz")
    return f if f.is_file() else None


def read_displacement(path) -> tuple[np.ndarray, np.ndarray]:
    """Read a displacement field: ((X, Y, Z, 3) array in mm, RAS; grid affine).

    ``path`` is the file, or an image in memory (what the simulation writes).

    Raises
    ------
    InputError
        Unreadable, or not a 5D (X, Y, Z, 1, 3) vector image with finite values.
    """
    try:
        img = path if isinstance(path, nib.Nifti1Image) else nib.load(str(path))
        data = np.asarray(img.dataobj, dtype=np.float32)
    except Exception as e:
        raise InputError(f"{path}: cannot read the displacement field ({type(e).__name__})") from None
    if data.ndim != 5 or data.shape[3:] != (1, 3) or not np.all(np.isfinite(data)):
        raise InputError(f"{path}: not a finite (X, Y, Z, 1, 3) displacement field "
                         f"(shape {data.shape})")
    return data[:, :, :, 0, :], img.affine


@dataclass
class TrueMapping:
    """The true mapping of scanner points to the template: ``x_MNI = w(A @ [x, 1])``.

    ``A`` is the scan's rigid pose (scanner -> participant frame) and ``w(y) = y + d(y)``
    the participant's warp (identity without a displacement field).
    """

    affine: np.ndarray
    displacement: np.ndarray | None = None
    grid_affine: np.ndarray | None = None

    def to_subject(self, xyz: np.ndarray) -> np.ndarray:
        """Map (N, 3) scanner mm to the participant frame (the rigid part)."""
        xyz = np.asarray(xyz, dtype=float)
        return xyz @ self.affine[:3, :3].T + self.affine[:3, 3]

    def warp(self, xyz: np.ndarray) -> np.ndarray:
        """Map (N, 3) participant-frame mm to template mm (trilinear; d = 0 off the grid)."""
        xyz = np.asarray(xyz, dtype=float)
        if self.displacement is None:
            return xyz
        inv = np.linalg.inv(self.grid_affine)
        ijk = (xyz @ inv[:3, :3].T + inv[:3, 3]).T
        d = np.stack([ndimage.map_coordinates(self.displacement[..., k], ijk, order=1,
                                              mode="constant", cval=0.0) for k in range(3)], 1)
        return xyz + d

    def __call__(self, xyz: np.ndarray) -> np.ndarray:
        """Map (N, 3) scanner mm to template mm."""
        return self.warp(self.to_subject(xyz))


def read_true_mapping(bids_dir, participant_id: str, session_id: str | None,
                      run: str | int | None) -> TrueMapping | None:
    """Return the true scanner -> template mapping of one scan, or None (real data).

    Raises
    ------
    InputError
        A truth file exists but cannot be read.
    """
    xfm = true_transform_path(bids_dir, participant_id, session_id, run)
    if xfm is None:
        return None
    return mapping_from_files(xfm, true_warp_path(bids_dir, participant_id))


def mapping_from_files(xfm, warp=None) -> TrueMapping:
    """Return the :class:`TrueMapping` of a pose file and an optional displacement file."""
    if warp is None:
        return TrueMapping(read_true_transform(xfm))
    d, aff = read_displacement(warp)
    return TrueMapping(read_true_transform(xfm), d, aff)


def read_true_transform(path) -> np.ndarray:
    """Read a 4x4 ground-truth affine (``numpy.savetxt``).

    Raises
    ------
    InputError
        Unreadable, or not a finite 4x4 affine with last row ``0 0 0 1``.
    """
    try:
        a = np.loadtxt(path, dtype=float)
    except Exception as e:
        raise InputError(f"{path}: cannot read the 4x4 affine ({type(e).__name__})") from None
    if a.shape != (4, 4) or not np.all(np.isfinite(a)) or not np.allclose(a[3], [0, 0, 0, 1]):
        raise InputError(f"{path}: not a 4x4 affine with last row 0 0 0 1 (matrix)")
    return a
