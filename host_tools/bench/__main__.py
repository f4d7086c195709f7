"""`python -m host_tools.bench` (`make bench`)."""

import sys

from .sessions import main

sys.exit(main())
