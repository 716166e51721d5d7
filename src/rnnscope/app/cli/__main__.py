"""`python -m rnnscope.app.cli ...`: the same as the `rnnscope` script."""

import sys

from . import main

sys.exit(main())
