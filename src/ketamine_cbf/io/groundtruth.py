"""The one reader of a simulated dataset's ground truth (``<bids>/derivatives/groundtruth``).

``ketamine-cbf simulate`` writes the truth beside the raw data: ``truth.json`` (options,
seed, planted effects, correlations and receptor loadings, one record per scan), true maps
in MNI space (``space-<tpl>_res-<r>_desc-<name>_cbf.nii.gz``) and per scan
(``sub-X/ses-Y/perf/<entities>_desc-true_cbf.nii.gz``, the true scanner -> MNI affine
``<entities>_from-scanner_to-<tpl>_mode-image_xfm.txt``). Stages use these functions and
never spell the folder out; on real data (no ground truth) every reader returns ``None``
or ``False``, so a stage checks :func:`is_simulated` once.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ketamine_cbf.errors import InputError
from ketamine_cbf.io.layout import TEMPLATE_SPACE, bids_name, scan_entities

__all__ = ["groundtruth_dir", "truth_path", "is_simulated", "load_truth", "read_truth",
           "true_map_paths", "true_transform_path", "read_true_transform"]


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


def true_transform_path(bids_dir, participant_id: str, session_id: str | None,
                        run: str | int | None) -> Path | None:
    """Return the true scanner -> MNI affine of one scan, or None (real data, or missing).

    ``sub-X/[ses-Y/]perf/<entities>_from-scanner_to-<tpl>_mode-image_xfm.txt`` (4x4 RAS
    matrix, ``numpy.savetxt``).
    """
    if bids_dir is None:
        return None
    ent = scan_entities(participant_id, session_id, run)
    ent.update({"from": "scanner", "to": TEMPLATE_SPACE, "mode": "image"})
    folder = groundtruth_dir(bids_dir) / f"sub-{ent['sub']}"
    if "ses" in ent:
        folder = folder / f"ses-{ent['ses']}"
    f = folder / "perf" / bids_name(ent, "xfm", ".txt")
    return f if f.is_file() else None


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
