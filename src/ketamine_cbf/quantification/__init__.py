"""Stage 1: CBF quantification of BIDS-ASL scans on their native grids, with quality control.

Each ``*_asl.nii.gz`` is validated, turned into a CBF map (ml/100 g/min) with the
white-paper single-delay model or a multi-delay kinetic fit, and checked against template
tissue maps registered to the scan. Every constant used is recorded in the map's sidecar.

Modules, one job each:

* :mod:`~ketamine_cbf.quantification.pipeline`: :func:`run_quantification`, the stage's
  entry point over a dataset (validation, per-scan steps, atomic BIDS-derivative output,
  ``qc.tsv``);
* :mod:`~ketamine_cbf.quantification.scan`: :func:`quantify_scan`, one scan's CBF as a
  sequence of named steps;
* :mod:`~ketamine_cbf.quantification.constants`: :class:`QuantParams` and where each
  constant comes from (parameter, sidecar, default): blood T1, labelling efficiency, M0
  repetition time;
* :mod:`~ketamine_cbf.quantification.models`: the formulas (white-paper CBF, kinetic model,
  M0 recovery, labelling efficiency, background suppression), pure and doctested;
* :mod:`~ketamine_cbf.quantification.multipld`: the multi-delay fit of CBF and arterial
  transit time;
* :mod:`~ketamine_cbf.quantification.registration`: MNI152 template to aslref registration
  (ANTs) and native tissue maps;
* :mod:`~ketamine_cbf.quantification.qc`: :class:`QCParams`, the QC metrics (QEI, spatial
  CoV...), the pass/fail decision and its summary;
* :mod:`~ketamine_cbf.quantification.truth`: estimated against true GM CBF on a simulated
  dataset;
* :mod:`~ketamine_cbf.quantification.figures`: one scan in detail, montages, the accuracy
  scatter;
* :mod:`~ketamine_cbf.quantification.primer`: the figures of the book's ASL primer;
* ``_images`` (reading 4D voxel data, Gaussian smoothing in mm) and ``_docs`` (parameter
  texts of this stage) are private.

Later stages read the stage's ``qc.tsv`` with
:func:`ketamine_cbf.io.derivatives.read_qc_table`.
"""

from ketamine_cbf.quantification import (
    constants,
    figures,
    models,
    multipld,
    pipeline,
    primer,
    qc,
    registration,
    scan,
    truth,
)
from ketamine_cbf.quantification.constants import QuantParams
from ketamine_cbf.quantification.pipeline import run_quantification
from ketamine_cbf.quantification.qc import QCParams
from ketamine_cbf.quantification.scan import QuantResult, quantify_scan
from ketamine_cbf.quantification.truth import truth_comparison

__all__ = ["constants", "figures", "models", "multipld", "pipeline", "primer", "qc",
           "registration", "scan", "truth", "run_quantification", "quantify_scan",
           "QuantResult", "QuantParams", "QCParams", "truth_comparison"]
