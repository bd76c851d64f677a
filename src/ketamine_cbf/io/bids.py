"""Reading and validating BIDS-ASL scans (BIDS 1.9, ``perf/`` datatype).

What is read for one ``*_asl.nii[.gz]``:

* the sidecar JSON, merged along the BIDS **inheritance principle**: every
  ``*_asl.json`` from the dataset root down to the scan's folder whose entities are
  a subset of the scan's entities applies, deeper (more specific) files overriding
  shallower ones;
* ``*_aslcontext.tsv`` (column ``volume_type``: ``control``, ``label``, ``deltam``,
  ``m0scan``, ``cbf``, ``noRF``), found the same way;
* for ``M0Type: Separate``, the ``*_m0scan.nii[.gz]`` with the scan's entities in the
  same folder, or the one whose sidecar's ``IntendedFor`` names the scan.

Everything a quantification needs is validated *before* anything is computed: a
missing required field or a physically impossible value raises
:class:`~ketamine_cbf.errors.InputError` with a one-line message naming the file and
the field. Values that are wrong in a known, recoverable way (e.g.
``RepetitionTimePreparation: 0``, a Siemens export quirk) are *not* rejected here:
:mod:`ketamine_cbf.quantification.scan` replaces them by a documented fallback and records a
warning in the output sidecar.

The rules are those of the BIDS specification 1.9, "Arterial Spin Labeling"
:footcite:p:`clement2022`.

References
----------
.. footbibliography::
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from ketamine_cbf.errors import InputError
from ketamine_cbf.io.layout import parse_bids_name, participant_ids

__all__ = [
    "VOLUME_TYPES", "M0_TYPES", "ASL_TYPES", "REQUIRED_FIELDS", "ASLScan", "read_json",
    "read_tsv", "inherited_files", "read_aslcontext", "numeric_field", "load_scan",
    "find_asl_files",
]

#: Volume types allowed in ``*_aslcontext.tsv`` (BIDS 1.9).
VOLUME_TYPES = ("control", "label", "deltam", "m0scan", "cbf", "noRF")

#: Allowed values of ``M0Type``.
M0_TYPES = ("Separate", "Included", "Estimate", "Absent")

#: Allowed values of ``ArterialSpinLabelingType``.
ASL_TYPES = ("CASL", "PCASL", "PASL")

#: Fields BIDS requires in every ASL sidecar (the ones this package uses).
REQUIRED_FIELDS = ("ArterialSpinLabelingType", "PostLabelingDelay", "BackgroundSuppression",
                   "M0Type", "MagneticFieldStrength")


@dataclass
class ASLScan:
    """One BIDS-ASL scan with its merged, validated metadata.

    Attributes
    ----------
    path : Path
        The ``*_asl.nii[.gz]`` file.
    entities : dict
        BIDS entities of the file name (``sub``, ``ses``, ``run``, ...).
    metadata : dict
        Sidecar fields after inheritance (most specific file wins).
    sidecars : list of Path
        The JSON files merged into ``metadata``, shallowest first.
    aslcontext : list of str
        ``volume_type`` of each volume.
    aslcontext_path : Path
    shape : tuple
        Spatial shape (3 ints) of the ASL image.
    affine : ndarray
        4 x 4 voxel-to-world (RAS mm) matrix of the ASL image.
    m0_path : Path or None
        Separate M0 image (``M0Type: Separate``).
    m0_metadata : dict
        Sidecar of the separate M0 image (empty otherwise).
    m0_sidecar : Path or None
    """

    path: Path
    entities: dict
    metadata: dict
    sidecars: list
    aslcontext: list
    aslcontext_path: Path
    shape: tuple
    affine: np.ndarray
    m0_path: Path | None = None
    m0_metadata: dict = field(default_factory=dict)
    m0_sidecar: Path | None = None

    @property
    def sidecar(self) -> Path:
        """The most specific sidecar (the one errors about a field name)."""
        return self.sidecars[-1]

    @property
    def n_volumes(self) -> int:
        return len(self.aslcontext)

    def indices(self, volume_type: str) -> list[int]:
        """Return the 0-based indices of volumes of ``volume_type``."""
        return [i for i, v in enumerate(self.aslcontext) if v == volume_type]

    def field_source(self, key: str) -> Path:
        """Return the sidecar that provided ``key`` (the most specific one holding it)."""
        for p in reversed(self.sidecars):
            try:
                if key in _read_json_cached(p):
                    return p
            except InputError:
                continue
        return self.sidecar


# ----------------------------------------------------------------------------- files

_JSON_CACHE: dict = {}


def read_json(path: str | Path) -> dict:
    """Read a JSON sidecar; raise :class:`InputError` naming the file if malformed.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    dict
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise InputError(f"{path}: cannot be read ({e.strerror})") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: not valid JSON (line {e.lineno}: {e.msg})") from None
    if not isinstance(obj, dict):
        raise InputError(f"{path}: a sidecar must be a JSON object (got {type(obj).__name__})")
    return obj


def read_tsv(path: str | Path, required=(), *, empty_is_na: bool = False,
             missing: str = "not found") -> pd.DataFrame:
    """Read a BIDS TSV as strings; raise :class:`InputError` naming the file and column.

    Parameters
    ----------
    path : str or Path
    required : sequence of str
        Columns that must be present (the first absent one is named in the error).
    empty_is_na : bool
        Treat empty cells as missing, like ``n/a`` (BIDS writes ``n/a``; hand-edited
        tables often leave cells empty).
    missing : str
        Message when the file does not exist (e.g. which stage writes it).

    Returns
    -------
    pandas.DataFrame
        All columns as strings, ``n/a`` (and with ``empty_is_na`` empty cells) as NaN.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: {missing}")
    try:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False,
                            na_values=["n/a", ""] if empty_is_na else ["n/a"])
    except Exception as e:  # pandas raises several types for malformed text
        detail = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise InputError(f"{path}: cannot be read as a TSV ({type(e).__name__}"
                         f"{': ' + detail if detail else ''})") from None
    for col in required:
        if col not in table.columns:
            raise InputError(f"{path}: missing column '{col}'")
    return table


def _read_json_cached(path: Path) -> dict:
    key = (str(path), path.stat().st_mtime_ns)
    if key not in _JSON_CACHE:
        _JSON_CACHE[key] = read_json(path)
    return _JSON_CACHE[key]


def _strip_ext(name: str) -> str:
    for ext in (".nii.gz", ".nii", ".json", ".tsv"):
        if name.endswith(ext):
            return name[: -len(ext)]
    return name


def inherited_files(bids_dir: str | Path, data_file: str | Path, suffix: str,
                    extension: str) -> list[Path]:
    """Return the files that apply to ``data_file`` under the BIDS inheritance principle.

    A candidate is any ``*_<suffix><extension>`` in ``bids_dir`` or in a folder between
    it and ``data_file``'s folder whose entities are all present, with equal values,
    in ``data_file``'s name. Files are returned from the least to the most specific
    (shallower folders first; within a folder, fewer entities first), so merging
    them in order lets the most specific value win.

    Parameters
    ----------
    bids_dir : str or Path
        Dataset root.
    data_file : str or Path
        The data file (e.g. ``sub-01/ses-1/perf/sub-01_ses-1_run-1_asl.nii.gz``).
    suffix : str
        ``asl``, ``aslcontext``, ``m0scan``.
    extension : str
        ``.json`` or ``.tsv``.

    Returns
    -------
    list of Path
    """
    bids_dir = Path(bids_dir).resolve()
    data_file = Path(data_file).resolve()
    ents, _, _ = parse_bids_name(data_file.name)
    try:
        rel = data_file.parent.relative_to(bids_dir)
        folders = [bids_dir] + [bids_dir.joinpath(*rel.parts[:k + 1]) for k in range(len(rel.parts))]
    except ValueError:  # data file outside the dataset: only its own folder
        folders = [data_file.parent]
    out = []
    for depth, folder in enumerate(folders):
        found = []
        for cand in sorted(folder.glob(f"*{suffix}{extension}")):
            cents, csuffix, cext = parse_bids_name(cand.name)
            if csuffix != suffix or cext != extension:
                continue
            if all(ents.get(k) == v for k, v in cents.items()):
                found.append((len(cents), cand))
        out.extend(p for _, p in sorted(found, key=lambda t: (t[0], str(t[1]))))
    return out


def read_aslcontext(path: str | Path, n_volumes: int | None = None) -> list[str]:
    """Read ``*_aslcontext.tsv`` and return the ``volume_type`` of each volume.

    Parameters
    ----------
    path : str or Path
    n_volumes : int, optional
        Number of volumes of the ASL image; a different row count is an error.

    Raises
    ------
    InputError
        Unreadable file, no ``volume_type`` column, an unknown volume type, or a row
        count different from the image's volume count.
    """
    path = Path(path)
    try:
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except Exception as e:  # pandas raises several types on malformed text
        raise InputError(f"{path}: cannot be read as a TSV ({type(e).__name__})") from None
    if "volume_type" not in df.columns:
        raise InputError(f"{path}: missing column 'volume_type'")
    types = [v.strip() for v in df["volume_type"]]
    bad = sorted({v for v in types if v not in VOLUME_TYPES})
    if bad:
        raise InputError(f"{path}: volume_type has unknown value(s) {', '.join(map(repr, bad))} "
                         f"(allowed: {', '.join(VOLUME_TYPES)})")
    if not types:
        raise InputError(f"{path}: volume_type has no rows")
    if n_volumes is not None and len(types) != n_volumes:
        raise InputError(f"{path}: volume_type has {len(types)} rows but the ASL image has "
                         f"{n_volumes} volume(s)")
    return types


# ----------------------------------------------------------------------------- checks

def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def numeric_field(meta: dict, key: str, source: Path, n_volumes: int | None = None,
                  positive: bool = True, allow_zero: bool = False,
                  allow_array: bool = True) -> np.ndarray | float:
    """Return a numeric sidecar field (scalar or per-volume array), validated.

    Parameters
    ----------
    meta : dict
        Sidecar fields.
    key : str
        Field name.
    source : Path
        File named in error messages.
    n_volumes : int, optional
        Required length of an array value (one per volume, BIDS).
    positive, allow_zero : bool
        Require values > 0 (or >= 0 with ``allow_zero``).
    allow_array : bool
        Accept a list (one value per volume).

    Returns
    -------
    float or numpy.ndarray

    Raises
    ------
    InputError
        Missing, not a number, NaN/inf, wrong array length, or out of range.
    """
    if key not in meta or meta[key] is None:
        raise InputError(f"{source}: missing required field '{key}'")
    v = meta[key]
    if isinstance(v, list):
        if not allow_array:
            raise InputError(f"{source}: {key} must be a single number (got a list)")
        if not v or not all(_is_number(x) for x in v):
            raise InputError(f"{source}: {key} must be a number or a list of numbers")
        arr = np.asarray(v, dtype=float)
        if n_volumes is not None and arr.size != n_volumes:
            raise InputError(f"{source}: {key} has {arr.size} values but the ASL image has "
                             f"{n_volumes} volume(s)")
    elif _is_number(v):
        arr = np.asarray(float(v))
    else:
        raise InputError(f"{source}: {key} must be a number (got {v!r})")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{source}: {key} must be finite (got {v!r})")
    if positive:
        ok = arr >= 0 if allow_zero else arr > 0
        if not np.all(ok):
            bad = float(arr[~ok].flat[0])
            raise InputError(f"{source}: {key} must be {'>= 0' if allow_zero else '> 0'} "
                             f"(got {bad:g})")
    return float(arr) if arr.ndim == 0 else arr


def _bool_field(meta: dict, key: str, source: Path) -> bool:
    if key not in meta:
        raise InputError(f"{source}: missing required field '{key}'")
    v = meta[key]
    if not isinstance(v, bool):
        raise InputError(f"{source}: {key} must be true or false (got {v!r})")
    return v


def _image_header(path: Path) -> nib.Nifti1Image:
    try:
        img = nib.load(str(path))
        img.shape  # noqa: B018 - header read
    except Exception as e:  # nibabel raises several types for broken files
        raise InputError(f"{path}: cannot be read as NIfTI ({type(e).__name__}: {e})") from None
    if len(img.shape) not in (3, 4):
        raise InputError(f"{path}: image must be 3D or 4D (got {len(img.shape)}D)")
    if not np.all(np.isfinite(img.affine)) or abs(np.linalg.det(img.affine[:3, :3])) < 1e-9:
        raise InputError(f"{path}: header has a singular or non-finite affine (sform/qform)")
    return img


def _find_m0scan(bids_dir: Path, asl_path: Path) -> tuple[Path | None, Path | None]:
    """Return (m0scan image, its sidecar) for a scan with ``M0Type: Separate``."""
    stem = _strip_ext(asl_path.name)
    base = stem[: -len("_asl")] if stem.endswith("_asl") else stem
    for ext in (".nii.gz", ".nii"):
        cand = asl_path.parent / f"{base}_m0scan{ext}"
        if cand.is_file():
            js = cand.parent / f"{base}_m0scan.json"
            return cand, js if js.is_file() else None
    # IntendedFor: BIDS URI (bids::sub-01/...) or path relative to the subject folder
    for js in sorted(asl_path.parent.glob("*_m0scan.json")):
        meta = read_json(js)
        targets = meta.get("IntendedFor", [])
        targets = [targets] if isinstance(targets, str) else list(targets or [])
        for t in targets:
            t = str(t).removeprefix("bids::")
            if Path(t).name == asl_path.name:
                for ext in (".nii.gz", ".nii"):
                    cand = js.parent / (_strip_ext(js.name) + ext)
                    if cand.is_file():
                        return cand, js
    return None, None


def _merged_sidecar(bids_dir: Path, asl_path: Path) -> tuple[dict, list[Path]]:
    """Return the sidecar fields merged by inheritance and the files merged, shallowest first."""
    sidecars = inherited_files(bids_dir, asl_path, "asl", ".json")
    if not sidecars:
        own = asl_path.parent / (_strip_ext(asl_path.name) + ".json")
        raise InputError(f"{own}: sidecar JSON not found (needed for the ASL metadata)")
    return {k: v for p in sidecars for k, v in read_json(p).items()}, sidecars


def _scan_aslcontext(bids_dir: Path, asl_path: Path, n_vol: int) -> tuple[list[str], Path]:
    """Return each volume's type and the (most specific) aslcontext file it comes from."""
    ctx_files = inherited_files(bids_dir, asl_path, "aslcontext", ".tsv")
    if not ctx_files:
        ctx_path = asl_path.parent / (_strip_ext(asl_path.name)[: -len("_asl")] + "_aslcontext.tsv")
        raise InputError(f"{ctx_path}: aslcontext file not found (needed to know each volume's type)")
    return read_aslcontext(ctx_files[-1], n_vol), ctx_files[-1]


def _check_required_fields(meta: dict, src: Path) -> None:
    """Check that the required fields are present, with allowed values and types."""
    for key in REQUIRED_FIELDS:
        if key not in meta:
            raise InputError(f"{src}: missing required field '{key}'")
    for key, values in (("ArterialSpinLabelingType", ASL_TYPES), ("M0Type", M0_TYPES)):
        if meta[key] not in values:
            raise InputError(f"{src}: {key} must be one of {', '.join(values)} (got {meta[key]!r})")
    _bool_field(meta, "BackgroundSuppression", src)
    numeric_field(meta, "MagneticFieldStrength", src, allow_array=False)


def _check_labelling_timing(meta: dict, src: Path, context: list[str], n_vol: int) -> None:
    """Check PostLabelingDelay (LabelingDuration unless PASL) > 0 for label/control/deltam."""
    # m0scan volumes of a multi-delay series carry PostLabelingDelay 0 (BIDS): not checked
    signal_idx = np.flatnonzero(np.isin(context, ("control", "label", "deltam")))
    pasl = meta["ArterialSpinLabelingType"] == "PASL"
    for key in ("PostLabelingDelay",) + (() if pasl else ("LabelingDuration",)):
        vals = np.atleast_1d(numeric_field(meta, key, src, n_vol, allow_zero=True))
        used = vals[signal_idx] if vals.size > 1 else vals
        if signal_idx.size and np.any(used <= 0):
            raise InputError(f"{src}: {key} must be > 0 s for label/control/deltam volumes "
                             f"(got {used.min():g})")


def _check_bolus_cutoff(meta: dict, src: Path) -> None:
    """Check the PASL bolus cut-off fields (QUIPSS II or Q2TIPS and its delay times)."""
    if not _bool_field(meta, "BolusCutOffFlag", src):
        raise InputError(f"{src}: BolusCutOffFlag is false: PASL without a bolus cut-off "
                         "(QUIPSS II / Q2TIPS) has no defined bolus duration TI1 and cannot "
                         "be quantified with the white-paper model")
    tech = meta.get("BolusCutOffTechnique")
    if tech is None:
        raise InputError(f"{src}: missing required field 'BolusCutOffTechnique' "
                         "(BolusCutOffFlag is true)")
    if tech not in ("QUIPSSII", "Q2TIPS"):
        raise InputError(f"{src}: BolusCutOffTechnique {tech!r} is not supported "
                         "(QUIPSSII or Q2TIPS; QUIPSS I needs the bolus width model of "
                         "Wong et al. 1998, not implemented)")
    n_delay = np.size(numeric_field(meta, "BolusCutOffDelayTime", src))
    if tech == "Q2TIPS" and n_delay != 2:
        raise InputError(f"{src}: BolusCutOffDelayTime must have 2 values for Q2TIPS "
                         f"(got {n_delay})")
    if tech == "QUIPSSII" and n_delay != 1:
        raise InputError(f"{src}: BolusCutOffDelayTime must be a single number for "
                         f"{tech} (got {n_delay} values)")


def _check_optional_fields(meta: dict, src: Path) -> None:
    """Check ``LabelingEfficiency`` and ``BackgroundSuppressionNumberPulses`` when given."""
    if "LabelingEfficiency" in meta:
        eff = numeric_field(meta, "LabelingEfficiency", src, allow_array=False)
        if eff > 1:
            raise InputError(f"{src}: LabelingEfficiency must be in (0, 1] (got {eff:g})")
    if meta["BackgroundSuppression"] and "BackgroundSuppressionNumberPulses" in meta:
        n = meta["BackgroundSuppressionNumberPulses"]
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise InputError(f"{src}: BackgroundSuppressionNumberPulses must be an integer >= 0 "
                             f"(got {n!r})")


def _check_volume_types(context: list[str], ctx_path: Path) -> None:
    """Check that labels and controls come in pairs and that some volume carries signal."""
    n_label, n_control = context.count("label"), context.count("control")
    if n_label != n_control:
        raise InputError(f"{ctx_path}: volume_type has {n_label} label and {n_control} control "
                         "volumes (they must come in pairs)")
    if not (n_label or context.count("deltam") or context.count("cbf")):
        raise InputError(f"{ctx_path}: volume_type has no label/control, deltam or cbf volume")


def _scan_m0(bids_dir: Path, asl_path: Path, meta: dict, src: Path, context: list[str],
             ctx_path: Path) -> tuple[Path | None, Path | None, dict]:
    """Check the M0 that ``M0Type`` promises; return a separate one's image, sidecar, fields."""
    m0_type, bs = meta["M0Type"], meta["BackgroundSuppression"]
    if m0_type == "Included" and "m0scan" not in context:
        raise InputError(f"{ctx_path}: M0Type is 'Included' but volume_type has no m0scan volume")
    if m0_type == "Estimate":
        numeric_field(meta, "M0Estimate", src, allow_array=False)
    if m0_type == "Absent" and not context.count("cbf"):
        if not context.count("control"):
            raise InputError(f"{src}: M0Type is 'Absent' and there are no control (or cbf) "
                             "volumes: CBF cannot be quantified without an M0")
        if bs:
            raise InputError(f"{src}: M0Type is 'Absent' and BackgroundSuppression is true: "
                             "background-suppressed control volumes cannot stand in for M0")
    if m0_type != "Separate":
        return None, None, {}
    m0_path, m0_sidecar = _find_m0scan(bids_dir, asl_path)
    if m0_path is None:
        raise InputError(f"{src}: M0Type is 'Separate' but no *_m0scan.nii[.gz] for "
                         f"{asl_path.name} was found in {asl_path.parent}")
    m0_img = _image_header(m0_path)
    if m0_sidecar is None:
        raise InputError(f"{m0_path}: sidecar JSON of the M0 scan not found")
    m0_meta = read_json(m0_sidecar)
    if len(m0_img.shape) == 4 and m0_img.shape[3] == 0:
        raise InputError(f"{m0_path}: M0 image has no volume")
    return m0_path, m0_sidecar, m0_meta


def _check_slice_timing(meta: dict, src: Path, shape: tuple) -> None:
    """Check ``SliceTiming`` of a 2D acquisition: numbers, one per slice, finite and >= 0."""
    if meta.get("MRAcquisitionType") != "2D" or "SliceTiming" not in meta:
        return
    st = meta["SliceTiming"]
    if not isinstance(st, list) or not all(_is_number(x) for x in st):
        raise InputError(f"{src}: SliceTiming must be a list of numbers")
    axis = "ijk".index(str(meta.get("SliceEncodingDirection", "k"))[0])
    if len(st) != shape[axis]:
        raise InputError(f"{src}: SliceTiming has {len(st)} values but the image has "
                         f"{shape[axis]} slices")
    if any((not math.isfinite(x)) or x < 0 for x in st):
        raise InputError(f"{src}: SliceTiming values must be finite and >= 0")


def load_scan(bids_dir: str | Path, asl_path: str | Path) -> ASLScan:
    """Read and validate one BIDS-ASL scan (metadata and headers; voxel data not loaded).

    Parameters
    ----------
    bids_dir : str or Path
        Dataset root (for sidecar inheritance).
    asl_path : str or Path
        The ``*_asl.nii[.gz]`` file (absolute, or relative to ``bids_dir``).

    Returns
    -------
    ASLScan

    Raises
    ------
    InputError
        One line naming the file and the field at fault. Checked: readable image
        (3D/4D, valid affine), sidecar and aslcontext present and well-formed,
        volume count = aslcontext rows, required fields present and of the right
        type, ``ArterialSpinLabelingType`` / ``M0Type`` values, ``PostLabelingDelay``
        and ``LabelingDuration`` > 0 (scalar or one per volume), PASL bolus cut-off
        fields, label/control pairing, an M0 available as ``M0Type`` promises,
        ``M0Estimate`` > 0, ``SliceTiming`` length, separate M0 on a compatible grid.
    """
    bids_dir, asl_path = Path(bids_dir), Path(asl_path)
    if not asl_path.is_absolute() and not asl_path.is_file():
        asl_path = bids_dir / asl_path
    if not asl_path.is_file():
        raise InputError(f"{asl_path}: ASL file does not exist")
    img = _image_header(asl_path)
    n_vol = img.shape[3] if len(img.shape) == 4 else 1
    meta, sidecars = _merged_sidecar(bids_dir, asl_path)
    src = sidecars[-1]
    context, ctx_path = _scan_aslcontext(bids_dir, asl_path, n_vol)
    _check_required_fields(meta, src)
    _check_labelling_timing(meta, src, context, n_vol)
    if meta["ArterialSpinLabelingType"] == "PASL":
        _check_bolus_cutoff(meta, src)
    _check_optional_fields(meta, src)
    _check_volume_types(context, ctx_path)
    m0_path, m0_sidecar, m0_meta = _scan_m0(bids_dir, asl_path, meta, src, context, ctx_path)
    _check_slice_timing(meta, src, img.shape)
    return ASLScan(path=asl_path, entities=parse_bids_name(asl_path.name)[0], metadata=meta,
                   sidecars=sidecars, aslcontext=context, aslcontext_path=ctx_path,
                   shape=tuple(img.shape[:3]), affine=img.affine.copy(), m0_path=m0_path,
                   m0_metadata=m0_meta, m0_sidecar=m0_sidecar)


def find_asl_files(bids_dir: str | Path, participant_label: list[str] | None = None) -> list[Path]:
    """Return the ``*_asl.nii[.gz]`` files of a dataset (derivatives excluded), sorted.

    Parameters
    ----------
    bids_dir : str or Path
    participant_label : list of str, optional
        Restrict to these participants (with or without ``sub-``).
    """
    bids_dir = Path(bids_dir)
    wanted = participant_ids(participant_label)
    out = []
    for p in sorted(bids_dir.glob("sub-*/**/perf/*_asl.nii*")):
        if "derivatives" in p.relative_to(bids_dir).parts:
            continue
        if wanted is not None and p.relative_to(bids_dir).parts[0] not in wanted:
            continue
        out.append(p)
    return out
