"""Where each constant comes from: options, sidecar fields and cited defaults."""

import math

import numpy as np
import pytest

from _synth_asl import BASE_SIDECAR
from ketamine_cbf.errors import InputError, UsageError
from ketamine_cbf.quantification.constants import (
    QuantParams,
    labeling_efficiency,
    m0_repetition_time,
    t1_blood_for_field,
)
from ketamine_cbf.quantification.models import effective_labelling_efficiency, m0_recovery_factor


def test_labeling_efficiency_sources():
    meta = dict(BASE_SIDECAR, BackgroundSuppression=True, BackgroundSuppressionNumberPulses=3)
    a, info = labeling_efficiency(meta, QuantParams())
    assert a == pytest.approx(0.85 * 0.95 ** 3)
    assert info["LabelingEfficiencySource"].startswith("default")
    a, info = labeling_efficiency(dict(meta, LabelingEfficiency=0.7), QuantParams())
    assert a == pytest.approx(0.7 * 0.95 ** 3)
    meta.pop("BackgroundSuppressionNumberPulses")
    a, info = labeling_efficiency(meta, QuantParams())
    assert a == pytest.approx(0.85) and info["warnings"]
    assert 1 / m0_recovery_factor(1.3, 1.3) == pytest.approx(1 / (1 - math.exp(-1)))


def test_labeling_efficiency_uses_the_one_background_suppression_formula():
    meta = dict(BASE_SIDECAR, BackgroundSuppression=True, BackgroundSuppressionNumberPulses=4,
                LabelingEfficiency=0.72)
    params = QuantParams(bs_pulse_efficiency=0.93)
    a, info = labeling_efficiency(meta, params)
    assert a == effective_labelling_efficiency(0.72, 4, 0.93)
    assert info["BackgroundSuppressionEfficiency"] == effective_labelling_efficiency(1.0, 4, 0.93)
    a, info = labeling_efficiency(meta, QuantParams(labeling_efficiency=0.5))
    assert info["LabelingEfficiencySource"] == "parameter" and a == pytest.approx(0.5 * 0.95 ** 4)


def test_field_strength_sets_blood_t1():
    assert t1_blood_for_field(3.0) == 1.65 and t1_blood_for_field(1.5) == 1.35
    assert t1_blood_for_field(2.95) == 1.65
    with pytest.raises(InputError, match="MagneticFieldStrength 7"):
        t1_blood_for_field(7.0, "x.json")


def test_parameters_are_checked():
    with pytest.raises(UsageError, match="m0_scale"):
        QuantParams(m0_scale=0)
    with pytest.raises(UsageError, match="labeling_efficiency"):
        QuantParams(labeling_efficiency=1.2)
    with pytest.raises(UsageError, match="att_bounds"):
        QuantParams(att_bounds=(2.0, 1.0))
    with pytest.raises(UsageError, match="m0_fwhm"):
        QuantParams(m0_fwhm=-1)
    assert QuantParams().as_dict()["plausible_cbf"] == [5.0, 200.0]


def test_m0_repetition_time_sources_and_fallbacks():
    w = []
    tr, src = m0_repetition_time({"RepetitionTimePreparation": 4.0}, [2], "a.json", QuantParams(), w)
    assert src == "RepetitionTimePreparation" and list(tr) == [4.0] and w == []
    tr, src = m0_repetition_time({"RepetitionTimePreparation": [4.0, 4.0, 2.5]}, [2], "a.json",
                                 QuantParams(), w)
    assert list(tr) == [2.5]
    tr, src = m0_repetition_time({"RepetitionTimePreparation": 0, "RepetitionTime": 3.5}, [4, 5],
                                 "a.json", QuantParams(), w)
    assert src == "RepetitionTime (fallback)" and list(tr) == [3.5, 3.5]
    assert any("RepetitionTimePreparation is 0" in x for x in w)
    tr, src = m0_repetition_time({}, [0], "a.json", QuantParams(m0_tr=5.0), [])
    assert src == "parameter m0_tr" and np.array_equal(tr, [5.0])
    w = []
    tr, src = m0_repetition_time({}, [0], "a.json", QuantParams(), w)
    assert tr is None and src == "none" and "not corrected" in w[0]
