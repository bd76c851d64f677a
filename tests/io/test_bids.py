"""Reading BIDS-ASL and the errors users see for malformed input (CLI end to end)."""

import json

import nibabel as nib
import numpy as np
import pytest

from _synth_asl import pcasl_scan
from ketamine_cbf import cli
from ketamine_cbf.io.bids import inherited_files, load_scan, read_aslcontext
from ketamine_cbf.errors import InputError


def _json(path):
    return json.loads(path.read_text())


def test_sidecar_inheritance_most_specific_wins(tmp_path):
    path, *_ = pcasl_scan(tmp_path)
    own = path.with_name(path.name.replace(".nii.gz", ".json"))
    meta = _json(own)
    # move the labelling fields up to the dataset root and subject level
    (tmp_path / "asl.json").write_text(json.dumps({"LabelingDuration": 1.8, "PostLabelingDelay": 1.0}))
    (tmp_path / "sub-01" / "sub-01_asl.json").write_text(json.dumps({"PostLabelingDelay": 1.8}))
    meta.pop("LabelingDuration")
    meta.pop("PostLabelingDelay")
    own.write_text(json.dumps(meta))
    files = inherited_files(tmp_path, path, "asl", ".json")
    assert [f.name for f in files] == ["asl.json", "sub-01_asl.json", own.name]
    scan = load_scan(tmp_path, path)
    assert scan.metadata["PostLabelingDelay"] == 1.8 and scan.metadata["LabelingDuration"] == 1.8
    assert scan.field_source("LabelingDuration").name == "asl.json"
    # a sidecar of another run does not apply
    (tmp_path / "sub-01" / "ses-1" / "perf" / "sub-01_ses-1_run-2_asl.json").write_text("{}")
    assert len(inherited_files(tmp_path, path, "asl", ".json")) == 3


def test_aslcontext_reader(tmp_path):
    f = tmp_path / "x_aslcontext.tsv"
    f.write_text("volume_type\ncontrol\nlabel\nm0scan\nnoRF\n")
    assert read_aslcontext(f, 4) == ["control", "label", "m0scan", "noRF"]
    with pytest.raises(InputError, match="4 rows but the ASL image has 3"):
        read_aslcontext(f, 3)


def test_real_scan_metadata_loads():
    from ketamine_cbf.reference.paths import ds000240_dir

    d = ds000240_dir()
    scan = load_scan(d, d / "sub-01" / "perf" / "sub-01_asl.nii.gz")
    assert scan.aslcontext.count("m0scan") == 10 and scan.aslcontext.count("label") == 50
    assert scan.metadata["RepetitionTimePreparation"] == 0  # the quirk, handled in quantify



# --------------------------------------------------------------- load_scan steps (direct)

def _scan_with(tmp_path, **fields):
    """Write one PCASL scan whose sidecar is updated by ``fields`` (None drops a field)."""
    path, *_ = pcasl_scan(tmp_path)
    side = path.with_name(path.name.replace(".nii.gz", ".json"))
    meta = dict(_json(side), **fields)
    side.write_text(json.dumps({k: v for k, v in meta.items() if v is not None}))
    return path, side


_PASL = dict(ArterialSpinLabelingType="PASL", BolusCutOffFlag=True)

STEP_CASES = [
    # (id, sidecar fields, exact message after "<sidecar>: ")
    ("pasl-no-technique", _PASL, "missing required field 'BolusCutOffTechnique' (BolusCutOffFlag is true)"),
    ("pasl-quipss1", dict(_PASL, BolusCutOffTechnique="QUIPSS"),
     "BolusCutOffTechnique 'QUIPSS' is not supported (QUIPSSII or Q2TIPS; QUIPSS I needs the bolus "
     "width model of Wong et al. 1998, not implemented)"),
    ("q2tips-one-delay", dict(_PASL, BolusCutOffTechnique="Q2TIPS", BolusCutOffDelayTime=0.7),
     "BolusCutOffDelayTime must have 2 values for Q2TIPS (got 1)"),
    ("quipss2-two-delays", dict(_PASL, BolusCutOffTechnique="QUIPSSII", BolusCutOffDelayTime=[0.7, 1.6]),
     "BolusCutOffDelayTime must be a single number for QUIPSSII (got 2 values)"),
    ("bs-pulses-negative", dict(BackgroundSuppression=True, BackgroundSuppressionNumberPulses=-1),
     "BackgroundSuppressionNumberPulses must be an integer >= 0 (got -1)"),
    ("slicetiming-not-numbers", dict(MRAcquisitionType="2D", SliceTiming="0 0.1"),
     "SliceTiming must be a list of numbers"),
    # several faults: the first check in load_scan's order names its field
    ("pld-before-efficiency", dict(PostLabelingDelay=0, LabelingEfficiency=1.7),
     "PostLabelingDelay must be > 0 s for label/control/deltam volumes (got 0)"),
    ("required-before-timing", dict(PostLabelingDelay=-1, MagneticFieldStrength=None),
     "missing required field 'MagneticFieldStrength'"),
    ("m0type-before-bs", dict(M0Type="Inside", BackgroundSuppression="yes"),
     "M0Type must be one of Separate, Included, Estimate, Absent (got 'Inside')"),
]


@pytest.mark.parametrize("case", STEP_CASES, ids=[c[0] for c in STEP_CASES])
def test_load_scan_exact_messages(tmp_path, case):
    _, fields, message = case
    path, side = _scan_with(tmp_path, **fields)
    with pytest.raises(InputError) as info:
        load_scan(tmp_path, path)
    assert str(info.value) == f"{side}: {message}"


def test_load_scan_sidecar_checks_precede_aslcontext_pairing(tmp_path):
    path, side = _scan_with(tmp_path, LabelingEfficiency=1.7)
    ctx = path.with_name(path.name.replace("_asl.nii.gz", "_aslcontext.tsv"))
    ctx.write_text("volume_type\nlabel\nlabel\nlabel\ncontrol\nm0scan\n")
    with pytest.raises(InputError, match=r"LabelingEfficiency must be in \(0, 1\] \(got 1\.7\)"):
        load_scan(tmp_path, path)


def test_load_scan_relative_path_and_absent_m0(tmp_path):
    path, side = _scan_with(tmp_path, M0Type="Absent")
    scan = load_scan(tmp_path, path.relative_to(tmp_path))
    assert scan.path == path and scan.m0_path is None and scan.m0_metadata == {}
    ctx = path.with_name(path.name.replace("_asl.nii.gz", "_aslcontext.tsv"))
    ctx.write_text("volume_type\ndeltam\ndeltam\ndeltam\ndeltam\nm0scan\n")
    with pytest.raises(InputError) as info:
        load_scan(tmp_path, path)
    assert str(info.value) == (f"{side}: M0Type is 'Absent' and there are no control (or cbf) "
                               "volumes: CBF cannot be quantified without an M0")


@pytest.mark.parametrize("how", ["same-entities", "intended-for"])
def test_load_scan_finds_separate_m0(tmp_path, how):
    path, _ = _scan_with(tmp_path, M0Type="Separate")
    img = nib.load(str(path))
    stem = "sub-01_ses-1_run-1" if how == "same-entities" else "sub-01_ses-1_acq-m0"
    m0 = path.with_name(f"{stem}_m0scan.nii.gz")
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj)[..., -1:], img.affine), str(m0))
    m0_side = m0.with_name(f"{stem}_m0scan.json")
    meta = {"RepetitionTimePreparation": 6.0}
    if how == "intended-for":
        meta["IntendedFor"] = f"bids::{path.relative_to(tmp_path)}"
    m0_side.write_text(json.dumps(meta))
    scan = load_scan(tmp_path, path)
    assert (scan.m0_path, scan.m0_sidecar, scan.m0_metadata) == (m0, m0_side, meta)
    m0_side.unlink()
    if how == "same-entities":
        with pytest.raises(InputError) as info:
            load_scan(tmp_path, path)
        assert str(info.value) == f"{m0}: sidecar JSON of the M0 scan not found"


# --------------------------------------------------------------- malformed input (CLI)

def _set(**kv):
    def f(path, side, ctx):
        side.update(kv)
    return f


def _drop(key):
    def f(path, side, ctx):
        side.pop(key)
    return f


def _ctx(text):
    def f(path, side, ctx):
        ctx.write_text(text)
    return f


def _img(fn):
    def f(path, side, ctx):
        img = nib.load(str(path))
        data = np.asarray(img.dataobj, dtype=np.float64)
        nib.save(nib.Nifti1Image(fn(data), img.affine), str(path))
    return f


def _broken_json(path, side, ctx):
    side["__raw__"] = '{"PostLabelingDelay": 1.8,'


def _m0_zero(data):
    data = data.copy()
    data[..., -1] = 0.0
    return data


def _m0_negative(data):
    data = data.copy()
    data[..., -1] = -np.abs(data[..., -1]) - 1
    return data


def _nan_brain(data):
    data = data.copy()
    data[10:40, 10:50, 10:40, :] = np.nan
    return data


CASES = [
    # (id, mutation, fragment of the message naming the field, file suffix named)
    ("missing-pld", _drop("PostLabelingDelay"), "PostLabelingDelay", "_asl.json"),
    ("pld-zero", _set(PostLabelingDelay=0), "PostLabelingDelay must be > 0", "_asl.json"),
    ("pld-negative", _set(PostLabelingDelay=-1.5), "PostLabelingDelay must be >= 0", "_asl.json"),
    ("pld-string", _set(PostLabelingDelay="1.8"), "PostLabelingDelay must be a number", "_asl.json"),
    ("pld-wrong-length", _set(PostLabelingDelay=[1.8, 1.8]), "PostLabelingDelay has 2 values", "_asl.json"),
    ("tau-zero", _set(LabelingDuration=0), "LabelingDuration must be > 0", "_asl.json"),
    ("missing-tau", _drop("LabelingDuration"), "LabelingDuration", "_asl.json"),
    ("missing-m0type", _drop("M0Type"), "M0Type", "_asl.json"),
    ("bad-m0type", _set(M0Type="Inside"), "M0Type must be one of", "_asl.json"),
    ("bad-asl-type", _set(ArterialSpinLabelingType="VSASL"), "ArterialSpinLabelingType", "_asl.json"),
    ("missing-bs", _drop("BackgroundSuppression"), "BackgroundSuppression", "_asl.json"),
    ("bs-not-bool", _set(BackgroundSuppression="yes"), "BackgroundSuppression must be true or false", "_asl.json"),
    ("missing-field-strength", _drop("MagneticFieldStrength"), "MagneticFieldStrength", "_asl.json"),
    ("field-strength-7T", _set(MagneticFieldStrength=7), "MagneticFieldStrength 7 T", "_asl.json"),
    ("efficiency-above-1", _set(LabelingEfficiency=1.7), "LabelingEfficiency must be in (0, 1]", "_asl.json"),
    ("estimate-without-value", _set(M0Type="Estimate"), "M0Estimate", "_asl.json"),
    ("estimate-negative", _set(M0Type="Estimate", M0Estimate=-5), "M0Estimate must be > 0", "_asl.json"),
    ("separate-without-file", _set(M0Type="Separate"), "no *_m0scan", "_asl.json"),
    ("absent-with-bs", _set(M0Type="Absent", BackgroundSuppression=True,
                             BackgroundSuppressionNumberPulses=2), "BackgroundSuppression is true", "_asl.json"),
    ("pasl-no-cutoff", _set(ArterialSpinLabelingType="PASL", BolusCutOffFlag=False), "BolusCutOffFlag", "_asl.json"),
    ("slicetiming-length", _set(MRAcquisitionType="2D", SliceTiming=[0.0, 0.1]), "SliceTiming has 2 values", "_asl.json"),
    ("json-syntax", _broken_json, "not valid JSON", "_asl.json"),
    ("context-rows", _ctx("volume_type\nlabel\ncontrol\n"), "volume_type has 2 rows", "_aslcontext.tsv"),
    ("context-unknown-type", _ctx("volume_type\nlabel\ncontrol\nlabel\ntag\nm0scan\n"), "unknown value(s) 'tag'", "_aslcontext.tsv"),
    ("context-no-column", _ctx("type\nlabel\ncontrol\nlabel\ncontrol\nm0scan\n"), "missing column 'volume_type'", "_aslcontext.tsv"),
    ("context-unpaired", _ctx("volume_type\nlabel\nlabel\nlabel\ncontrol\nm0scan\n"), "3 label and 1 control", "_aslcontext.tsv"),
    ("included-without-m0", _ctx("volume_type\nlabel\ncontrol\nlabel\ncontrol\nnoRF\n"), "no m0scan volume", "_aslcontext.tsv"),
    ("m0-all-zero", _img(_m0_zero), "no positive signal", "_asl.nii.gz"),
    ("m0-negative", _img(_m0_negative), "no positive signal", "_asl.nii.gz"),
    ("nan-in-brain", _img(_nan_brain), "NaN/inf", "_asl.nii.gz"),
    ("rtp-nan-string", _set(RepetitionTimePreparation=None, RepetitionTime=0, PostLabelingDelay=40.0),
     "plausible range", "_asl.nii.gz"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_malformed_input_one_line_error_nothing_written(tmp_path, capsys, case):
    _, mutate, fragment, suffix = case
    bids = tmp_path / "bids"
    # two scans: the good first one must not be written either
    pcasl_scan(bids, run="1")
    path, *_ = pcasl_scan(bids, run="2")
    sidecar = path.with_name(path.name.replace(".nii.gz", ".json"))
    ctx = path.with_name(path.name.replace("_asl.nii.gz", "_aslcontext.tsv"))
    side = _json(sidecar)
    mutate(path, side, ctx)
    raw = side.pop("__raw__", None)
    sidecar.write_text(raw if raw is not None else json.dumps(side))
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("earlier result")
    rc = cli.main(["quantify", str(bids), str(out), "--quiet", "--cache-dir", str(tmp_path / "c")])
    err = capsys.readouterr().err.strip()
    assert rc == 1
    assert len(err.splitlines()) == 1, err
    assert err.startswith("ketamine-cbf: error: ")
    assert fragment in err, err
    assert "run-2" in err and suffix in err, err
    assert sorted(p.name for p in out.rglob("*")) == ["keep.txt"]


def test_failure_on_new_out_dir_leaves_no_folder(tmp_path, capsys):
    bids = tmp_path / "bids"
    path, *_ = pcasl_scan(bids)
    side = path.with_name(path.name.replace(".nii.gz", ".json"))
    side.write_text(json.dumps(dict(_json(side), PostLabelingDelay=0)))
    rc = cli.main(["quantify", str(bids), str(tmp_path / "new_out"), "--quiet"])
    assert rc == 1 and not (tmp_path / "new_out").exists()


def test_usage_errors_exit_2(tmp_path, capsys):
    rc = cli.main(["quantify", str(tmp_path / "missing"), str(tmp_path / "o")])
    assert rc == 2
    bids = tmp_path / "bids"
    pcasl_scan(bids)
    rc = cli.main(["quantify", str(bids), str(tmp_path / "o"), "--m0-scale", "0"])
    assert rc == 2 and "m0_scale" in capsys.readouterr().err
    rc = cli.main(["quantify", str(bids), str(tmp_path / "o"), "--participant-label", "99"])
    assert rc == 1 and "sub-99" in capsys.readouterr().err


def test_read_tsv_names_file_and_column(tmp_path):
    from ketamine_cbf.io.bids import read_tsv

    f = tmp_path / "t.tsv"
    f.write_text("participant_id\tscore\nsub-01\tn/a\nsub-02\t\n")
    t = read_tsv(f, ["participant_id"])
    assert t["score"].isna().tolist() == [True, False]          # only n/a is missing
    assert read_tsv(f, empty_is_na=True)["score"].isna().all()  # empty cells too
    with pytest.raises(InputError, match=r"t\.tsv: missing column 'session_id'"):
        read_tsv(f, ["participant_id", "session_id"])
    with pytest.raises(InputError, match=r"nope\.tsv: run stage 9 first"):
        read_tsv(tmp_path / "nope.tsv", missing="run stage 9 first")
    f.write_text('a\tb\n"unterminated\t1\n')
    with pytest.raises(InputError, match=r"t\.tsv: cannot be read as a TSV \(\w+"):
        read_tsv(f)
