"""Exceptions whose messages are shown to users as one-line errors.

The CLI turns :class:`UsageError` into exit status 2 and :class:`InputError`
into exit status 1, printing only the message (no traceback). Messages must name
the file and the field at fault, e.g. ``"sub-01_asl.json: PostLabelingDelay must
be > 0 s (got 0)"``.
"""

__all__ = ["KetamineCBFError", "UsageError", "InputError", "StageError"]


class KetamineCBFError(Exception):
    """Base class of the errors the command line reports in one line."""

    exit_code = 1


class UsageError(KetamineCBFError):
    """Bad invocation: unknown stage or parameter, missing config or path (exit 2)."""

    exit_code = 2


class InputError(KetamineCBFError):
    """Bad input data: malformed BIDS file, missing or impossible metadata (exit 1)."""

    exit_code = 1


class StageError(KetamineCBFError):
    """A stage notebook failed; the message names the stage and the failing cell (exit 1)."""

    exit_code = 1
