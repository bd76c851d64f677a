"""Progress bars for the long loops of the stages (scans, permutation blocks, null batches).

Inside a stage notebook run by ``ketamine-cbf run``, a bar written to the notebook would be
invisible to the person at the terminal. The runner sets ``KETAMINE_CBF_PROGRESS=1`` in the
kernel's environment when it shows progress (a terminal, no ``--quiet``); :func:`progress`
then writes a tqdm bar to the kernel process's own standard error, which is the terminal.
Otherwise (tests, CI, a log file, ``--quiet``) it returns the iterable unchanged.
"""

from __future__ import annotations

import os
import sys

__all__ = ["progress_enabled", "progress"]

ENV = "KETAMINE_CBF_PROGRESS"


def progress_enabled() -> bool:
    """Return True when progress bars are asked for (``KETAMINE_CBF_PROGRESS=1``)."""
    return os.environ.get(ENV, "") == "1"


def progress(iterable, desc: str, total: int | None = None, unit: str = "it", enabled: bool | None = None):
    """Wrap ``iterable`` in a tqdm bar on the terminal when progress is enabled.

    Parameters
    ----------
    iterable : iterable
    desc : str
        What is counted, e.g. ``"[03_voxelwise] ket_placebo permutations"``.
    total : int, optional
        Number of items (default ``len(iterable)`` when it has one).
    unit : str
        Unit of an item (``"scan"``, ``"block"``).
    enabled : bool, optional
        Force on or off; default :func:`progress_enabled`.
    """
    if not (progress_enabled() if enabled is None else enabled):
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, total=total, unit=unit, file=sys.__stderr__,
                leave=False, dynamic_ncols=True, mininterval=1.0)
