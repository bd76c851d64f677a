"""The data contract: what the stages read and write, one reader per stage output.

* :mod:`~ketamine_cbf.io.bids`: reading and validating BIDS-ASL scans (BIDS 1.9 ``perf/``);
* :mod:`~ketamine_cbf.io.design`: the study design read from BIDS, one row per ASL scan;
* :mod:`~ketamine_cbf.io.layout`: names and places of derivatives (BIDS entities, stage folders);
* :mod:`~ketamine_cbf.io.derivatives`: ONE reader per stage output (``qc.tsv``, ``cbf_maps.tsv``,
  template masks, ``contrasts.tsv``, group maps);
* :mod:`~ketamine_cbf.io.groundtruth`: ONE reader of a simulated dataset's ground truth;
* :mod:`~ketamine_cbf.io.provenance`: hashes, versions and atomic writes (TSV, JSON, NIfTI).
"""

from ketamine_cbf.io import bids, derivatives, design, groundtruth, layout, provenance

__all__ = ["bids", "derivatives", "design", "groundtruth", "layout", "provenance"]
