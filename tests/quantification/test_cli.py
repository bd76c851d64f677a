"""``ketamine-cbf quantify``: its options build the same parameters as the package defaults."""

from ketamine_cbf.cli.main import build_parser
from ketamine_cbf.cli.quantify import params_from_args
from ketamine_cbf.quantification.constants import QuantParams
from ketamine_cbf.quantification.qc import QCParams


def test_default_options_are_the_default_parameters():
    q, c = params_from_args(build_parser().parse_args(["quantify", "bids", "out"]))
    assert q == QuantParams() and c == QCParams()


def test_every_option_reaches_its_parameter():
    args = build_parser().parse_args([
        "quantify", "bids", "out", "--t1-blood", "1.5", "--labeling-efficiency", "0.7",
        "--m0-tr", "4", "--att-bounds", "0.1,2.5", "--plausible-cbf", "1,300",
        "--no-plausibility-check", "--gm-cbf-range", "10,90", "--min-qei", "0.4", "--seed", "3"])
    q, c = params_from_args(args)
    assert (q.t1_blood, q.labeling_efficiency, q.m0_tr) == (1.5, 0.7, 4.0)
    assert q.att_bounds == (0.1, 2.5) and q.plausible_cbf == (1.0, 300.0) and not q.check_plausible
    assert c.gm_cbf_range == (10.0, 90.0) and c.min_qei == 0.4 and c.seed == 3
