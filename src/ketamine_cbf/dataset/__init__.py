"""Stage 00, the dataset: what the study is and what the data hold (``notebooks/00_dataset.ipynb``).

Modules:

* :mod:`~ketamine_cbf.dataset.summary`: tables of the design, participants, clinical scores
  and, for a simulated dataset, the planted truth and what makes the data hard (each
  participant's anatomy, physiology and head motion, the crossover effects);
* :mod:`~ketamine_cbf.dataset.figures`: the design schematic, a written scan beside its
  truth, a participant's brain on the template, the transit-time map, head-motion traces,
  the planted maps and correlations, score distributions.

The design table itself is read from BIDS by :func:`ketamine_cbf.io.design.read_design`
(every stage reads it there).
"""

from ketamine_cbf.dataset import figures, summary

__all__ = ["figures", "summary"]
