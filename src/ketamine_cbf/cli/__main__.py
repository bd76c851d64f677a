"""``python -m ketamine_cbf.cli``: the same as the ``ketamine-cbf`` command."""

import sys

from ketamine_cbf.cli.main import main

sys.exit(main())
