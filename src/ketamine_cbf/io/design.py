"""The study design as read from a BIDS dataset: one row per ASL scan.

Where the design lives in BIDS (and in the simulated dataset):

* ``participants.tsv``: ``participant_id`` (+ ``order``, ``age``, ``sex``, ...);
* ``sub-<s>/sub-<s>_sessions.tsv``: ``session_id`` and the arm column
  (default ``pretreatment``: ``placebo`` or ``naltrexone``), ``period`` (1 or 2);
* ``sub-<s>/ses-<x>/sub-<s>_ses-<x>_scans.tsv``: ``filename`` and the time-point
  column (default ``timepoint``: ``pre`` = before infusion, ``during`` = during
  ketamine infusion).

A dataset without these files (e.g. a single resting scan such as ds000240) still
gives a table; ``arm`` and ``timepoint`` are then ``n/a``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ketamine_cbf.errors import InputError
from ketamine_cbf.io.bids import find_asl_files, read_tsv
from ketamine_cbf.io.layout import parse_bids_name, participant_ids

__all__ = ["DESIGN_COLUMNS", "read_design"]

DESIGN_COLUMNS = ["participant_id", "session_id", "run", "arm", "period", "timepoint", "asl"]


def read_design(bids_dir: str | Path, arm_column: str = "pretreatment",
                timepoint_column: str = "timepoint",
                participant_label: list[str] | None = None) -> pd.DataFrame:
    """Return the scan table of a BIDS-ASL dataset.

    Parameters
    ----------
    bids_dir : str or Path
        Root of a BIDS dataset.
    arm_column : str
        Column of ``sub-*_sessions.tsv`` naming the pre-treatment arm.
    timepoint_column : str
        Column of ``sub-*_ses-*_scans.tsv`` naming the time point of each scan.
    participant_label : list of str, optional
        Restrict to these participants (with or without the ``sub-`` prefix).

    Returns
    -------
    pandas.DataFrame
        One row per ``*_asl.nii.gz`` with columns ``participant_id``,
        ``session_id``, ``run``, ``arm``, ``period``, ``timepoint`` and ``asl``
        (path relative to ``bids_dir``), sorted by participant, session, run.

    Raises
    ------
    InputError
        No ASL scans, a requested participant without data, or a design file
        missing a required column (the message names the file and column).
    """
    bids_dir = Path(bids_dir)
    if not bids_dir.is_dir():
        raise InputError(f"{bids_dir}: BIDS directory does not exist")
    wanted = participant_ids(participant_label)
    rows = []
    for asl in find_asl_files(bids_dir, participant_label):
        ent, _, _ = parse_bids_name(asl.name)
        rows.append({
            "participant_id": f"sub-{ent['sub']}",
            "session_id": f"ses-{ent['ses']}" if "ses" in ent else "n/a",
            "run": ent.get("run", "n/a"),
            "arm": "n/a", "period": "n/a", "timepoint": "n/a",
            "asl": str(asl.relative_to(bids_dir)),
        })
    if wanted is not None:
        missing = sorted(wanted - {r["participant_id"] for r in rows})
        if missing:
            raise InputError(f"{bids_dir}: no ASL scans for participant(s) {', '.join(missing)}")
    if not rows:
        raise InputError(f"{bids_dir}: no ASL scans found (expected sub-*/[ses-*/]perf/*_asl.nii.gz)")
    table = pd.DataFrame(rows)

    for pid, sub in table.groupby("participant_id"):
        sess_file = bids_dir / pid / f"{pid}_sessions.tsv"
        if sess_file.is_file():
            sess = read_tsv(sess_file, ("session_id", arm_column)).set_index("session_id")
            for i in sub.index:
                ses = table.at[i, "session_id"]
                if ses not in sess.index:
                    raise InputError(f"{sess_file}: no row for session_id '{ses}'")
                table.at[i, "arm"] = sess.at[ses, arm_column]
                if "period" in sess.columns:
                    table.at[i, "period"] = sess.at[ses, "period"]
        for ses, ssub in sub.groupby("session_id"):
            prefix = pid if ses == "n/a" else f"{pid}_{ses}"
            folder = bids_dir / pid if ses == "n/a" else bids_dir / pid / ses
            scans_file = folder / f"{prefix}_scans.tsv"
            if not scans_file.is_file():
                continue
            scans = read_tsv(scans_file, ("filename",))
            if timepoint_column not in scans.columns:
                continue
            lookup = dict(zip(scans["filename"], scans[timepoint_column]))
            for i in ssub.index:
                rel = str(Path(table.at[i, "asl"]).relative_to(folder.relative_to(bids_dir)))
                if rel in lookup:
                    table.at[i, "timepoint"] = lookup[rel]
    table = table.fillna("n/a")
    return table.sort_values(["participant_id", "session_id", "run"]).reset_index(drop=True)[DESIGN_COLUMNS]
