"""A simulated BIDS-ASL dataset of the ketamine x naltrexone crossover, with planted truth.

``simulate_dataset(out_dir, seed=..., **options)`` writes the dataset; the options
(names, defaults, help) are in :mod:`ketamine_cbf.simulate.params`. Modules:

``params``     the options: defaults, checks, help texts (also the CLI's)
``design``     crossover schedule, demographics, scales and exact-correlation planting
``phenotype``  clinical scores planted against the truth-level imaging values
``truth``      ground-truth CBF in MNI space (anatomy, variability, ACC and receptor effects)
``anatomy``    each participant's own anatomy: the template through a smooth random warp
``physics``    the general kinetic model and physiology the quantifier does not assume
``signal``     the textbook (white-paper) ASL model, forward direction
``motion``     head position and per-volume motion; a least-squares realignment check
``scanner``    imaging one participant's scans (anatomy, physics, pose, motion, noise)
``native``     native grids, sampling, partial volume, PSF, coil bias
``write``      BIDS text: descriptions and sidecars
``dataset``    the orchestration (:func:`simulate_dataset`)
``cli``        ``ketamine-cbf simulate``
``figures``    the design schematic and truth figures of the book
"""

from ketamine_cbf.simulate.dataset import simulate_dataset
from ketamine_cbf.simulate.params import DEFAULTS, OPTIONS

__all__ = ["simulate_dataset", "DEFAULTS", "OPTIONS"]
