"""Hashes, manifests and atomic writes."""

import hashlib

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from ketamine_cbf.io import provenance as prov


def test_sha256_file_matches_hashlib(tmp_path):
    p = tmp_path / "x.bin"
    blob = np.random.default_rng(0).bytes(3 * (1 << 20) + 17)  # spans several read chunks
    p.write_bytes(blob)
    assert prov.sha256_file(p) == hashlib.sha256(blob).hexdigest()


def test_manifest_skips_hidden_and_excluded(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f.txt").write_text("1")
    (tmp_path / ".hidden").write_text("2")
    (tmp_path / "derivatives").mkdir()
    (tmp_path / "derivatives" / "g.txt").write_text("3")
    m = prov.manifest(tmp_path, exclude=("derivatives",))
    assert list(m) == ["a/f.txt"]


def test_atomic_write_leaves_target_untouched_on_error(tmp_path):
    target = tmp_path / "table.tsv"
    target.write_text("old\n")
    with pytest.raises(RuntimeError):
        with prov.atomic_path(target) as tmp:
            tmp.write_text("half-written")
            raise RuntimeError("crash")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["table.tsv"]


def test_write_tsv_is_byte_reproducible(tmp_path):
    df = pd.DataFrame({"a": [0.1 + 0.2, 1 / 3], "b": ["x", None]})
    prov.write_tsv(tmp_path / "1.tsv", df)
    prov.write_tsv(tmp_path / "2.tsv", df.copy())
    assert (tmp_path / "1.tsv").read_bytes() == (tmp_path / "2.tsv").read_bytes()
    assert "n/a" in (tmp_path / "1.tsv").read_text()


def test_save_nifti_is_byte_reproducible_across_names(tmp_path):
    img = nib.Nifti1Image(np.arange(24, dtype=np.float32).reshape(2, 3, 4), np.eye(4))
    a = prov.save_nifti(img, tmp_path / "a.nii.gz")
    b = prov.save_nifti(img, tmp_path / "sub" / "b.nii.gz")
    assert a.read_bytes() == b.read_bytes()
    assert np.array_equal(nib.load(a).get_fdata(), img.get_fdata())


def test_write_json_handles_numpy(tmp_path):
    p = prov.write_json(tmp_path / "x.json", {"n": np.int64(3), "v": np.array([1.5]), "f": np.float32(2)})
    assert p.read_text().strip().startswith("{")
    import json

    assert json.loads(p.read_text()) == {"f": 2.0, "n": 3, "v": [1.5]}


def test_atomic_files_get_umask_permissions(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        p = prov.write_text(tmp_path / "x.txt", "1")
    finally:
        os.umask(old)
    assert (p.stat().st_mode & 0o777) == 0o644
