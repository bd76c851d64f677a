"""Provenance and safe writing: hashes, package versions, atomic file writes.

Every stage records, next to its outputs, the parameters it ran with, the seed,
the versions of the packages that computed it and the SHA-256 of its inputs and
outputs (``provenance.json``). Every file is written atomically: to a temporary
file in the destination directory, then renamed over the target, so a crash never
leaves a half-written file under the final name.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Iterator

__all__ = [
    "RECORDED_PACKAGES", "sha256_file", "iter_files", "manifest", "digest", "code_digest",
    "package_versions", "atomic_path", "write_text", "write_json", "write_tsv", "save_nifti",
    "environment_summary",
]

#: Packages whose versions are recorded with every stage's results.
RECORDED_PACKAGES = (
    "ketamine-cbf", "numpy", "scipy", "pandas", "nibabel", "nilearn", "antspyx",
    "numba", "pingouin", "statsmodels", "neuromaps", "brainsmash", "brainspace",
    "papermill", "matplotlib", "seaborn", "scikit-learn",
)

_CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike) -> str:
    """Return the hex SHA-256 digest of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def iter_files(root: str | os.PathLike, exclude: Iterable[str] = ()) -> Iterator[Path]:
    """Yield the regular files under ``root`` in sorted order.

    Hidden files and directories (name starting with ``.``) are skipped, as are
    top-level entries whose name is in ``exclude``.
    """
    root = Path(root)
    exclude = set(exclude)
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        dirnames[:] = sorted(
            d for d in dirnames
            if not d.startswith(".") and not (rel == Path(".") and d in exclude)
        )
        for name in sorted(filenames):
            if name.startswith(".") or (rel == Path(".") and name in exclude):
                continue
            yield Path(dirpath) / name


def manifest(root: str | os.PathLike, exclude: Iterable[str] = ()) -> dict[str, str]:
    """Return ``{relative path: sha256}`` for every file under ``root``."""
    root = Path(root)
    return {str(p.relative_to(root)): sha256_file(p) for p in iter_files(root, exclude)}


def digest(obj: Any) -> str:
    """Return a SHA-256 of a JSON-serialisable object (keys sorted)."""
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()


def code_digest(*packages: str) -> str:
    """Return a digest of the source of ``ketamine_cbf`` subpackages or modules.

    ``code_digest("normalisation", "imaging")`` hashes every ``.py`` file of
    ``ketamine_cbf/normalisation/`` and ``ketamine_cbf/imaging.py``. Stage caches key their
    entries on the stage package's code, so a change anywhere in the package (a module split
    or a kernel fixed) can never serve a stale cached result.
    """
    root = Path(__file__).resolve().parents[1]
    files = {}
    for name in packages:
        target = root / Path(*name.split("."))
        paths = sorted(target.rglob("*.py")) if target.is_dir() else [target.with_suffix(".py")]
        if not paths or not paths[0].is_file():
            raise ValueError(f"code_digest: no package or module ketamine_cbf.{name}")
        files.update({str(p.relative_to(root)): sha256_file(p) for p in paths})
    return digest(files)


def package_versions(names: Iterable[str] = RECORDED_PACKAGES) -> dict[str, str]:
    """Return installed versions of ``names`` (``"not installed"`` if absent)."""
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it over ``target`` on success.

    On an exception the temporary file is removed and ``target`` is untouched.
    The temporary name keeps the target's suffixes (``.nii.gz``, ``.tsv``), so
    writers that choose a format by extension work unchanged.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(target.suffixes)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".partial{suffix}",
                               dir=target.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        if tmp.exists():  # mkstemp creates 0600: give the file the usual umask permissions
            os.chmod(tmp, 0o666 & ~_current_umask())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(target: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``target`` atomically; return the target path."""
    with atomic_path(target) as tmp:
        tmp.write_text(text)
    return Path(target)


def write_json(target: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented, key-sorted JSON atomically."""
    return write_text(target, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def write_tsv(target: str | os.PathLike, df, **kwargs) -> Path:
    """Write a pandas DataFrame as a TSV atomically (``index=False`` unless given).

    Floats are written with 10 significant digits (``%.10g``) so that results are
    byte-identical across runs and readable in a spreadsheet.
    """
    kwargs.setdefault("index", False)
    kwargs.setdefault("float_format", "%.10g")
    kwargs.setdefault("na_rep", "n/a")
    with atomic_path(target) as tmp:
        df.to_csv(tmp, sep="\t", **kwargs)
    return Path(target)


def save_nifti(img, target: str | os.PathLike) -> Path:
    """Save a nibabel image atomically (gzip header without timestamp: reproducible).

    nibabel writes ``.nii.gz`` with ``mtime=0`` in the gzip header, so the same
    image gives the same bytes on every run.
    """
    import nibabel as nib

    with atomic_path(target) as tmp:
        nib.save(img, str(tmp))
    return Path(target)


def _json_default(o):
    import numpy as np

    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def environment_summary() -> dict[str, Any]:
    """Return interpreter, platform and package versions for a provenance record."""
    return {
        "python_executable": sys.executable,
        "platform": platform.platform(),
        "packages": package_versions(),
    }
