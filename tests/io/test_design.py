"""Reading the crossover design from BIDS files into the scan table."""

import pytest

from ketamine_cbf.io.design import read_design
from ketamine_cbf.errors import InputError


def touch(p, text=""):
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


@pytest.fixture
def bids(tmp_path):
    for sub, arms in (("01", ("placebo", "naltrexone")), ("02", ("naltrexone", "placebo"))):
        touch(tmp_path / f"sub-{sub}" / f"sub-{sub}_sessions.tsv",
              "session_id\tpretreatment\tperiod\n"
              f"ses-1\t{arms[0]}\t1\nses-2\t{arms[1]}\t2\n")
        for ses in ("1", "2"):
            d = tmp_path / f"sub-{sub}" / f"ses-{ses}"
            rows = ["filename\tacq_time\ttimepoint"]
            for run, tp in (("1", "pre"), ("2", "during")):
                name = f"sub-{sub}_ses-{ses}_run-{run}_asl.nii.gz"
                touch(d / "perf" / name)
                rows.append(f"perf/{name}\t2020-01-01T10:00:00\t{tp}")
            touch(d / f"sub-{sub}_ses-{ses}_scans.tsv", "\n".join(rows) + "\n")
    return tmp_path


def test_scan_table_assigns_arm_and_timepoint(bids):
    t = read_design(bids)
    assert len(t) == 8
    row = t[(t.participant_id == "sub-02") & (t.session_id == "ses-1") & (t.run == "2")].iloc[0]
    assert (row.arm, row.period, row.timepoint) == ("naltrexone", "1", "during")
    assert row.asl == "sub-02/ses-1/perf/sub-02_ses-1_run-2_asl.nii.gz"
    assert set(t.arm) == {"placebo", "naltrexone"} and set(t.timepoint) == {"pre", "during"}


def test_participant_label_filter(bids):
    t = read_design(bids, participant_label=["02"])
    assert set(t.participant_id) == {"sub-02"}
    with pytest.raises(InputError, match="sub-99"):
        read_design(bids, participant_label=["sub-99"])


def test_missing_arm_column_names_file_and_column(bids):
    f = bids / "sub-01" / "sub-01_sessions.tsv"
    f.write_text("session_id\tdrug\nses-1\tplacebo\nses-2\tnaltrexone\n")
    with pytest.raises(InputError) as err:
        read_design(bids)
    assert "sub-01_sessions.tsv" in str(err.value) and "'pretreatment'" in str(err.value)
    # a dataset with another column name is read by naming it
    (bids / "sub-02" / "sub-02_sessions.tsv").write_text(
        "session_id\tdrug\nses-1\tnaltrexone\nses-2\tplacebo\n")
    t = read_design(bids, arm_column="drug")
    assert set(t[t.participant_id == "sub-01"].arm) == {"placebo", "naltrexone"}


def test_session_without_row(bids):
    f = bids / "sub-01" / "sub-01_sessions.tsv"
    f.write_text("session_id\tpretreatment\nses-1\tplacebo\n")
    with pytest.raises(InputError, match="no row for session_id 'ses-2'"):
        read_design(bids)


def test_dataset_without_design_files(tmp_path):
    touch(tmp_path / "sub-01" / "perf" / "sub-01_asl.nii.gz")
    t = read_design(tmp_path)
    assert t.to_dict("records") == [{"participant_id": "sub-01", "session_id": "n/a", "run": "n/a",
                                     "arm": "n/a", "period": "n/a", "timepoint": "n/a",
                                     "asl": "sub-01/perf/sub-01_asl.nii.gz"}]


def test_no_scans(tmp_path):
    with pytest.raises(InputError, match="no ASL scans found"):
        read_design(tmp_path)
    with pytest.raises(InputError, match="does not exist"):
        read_design(tmp_path / "missing")
