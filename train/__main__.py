"""`python -m train prepare|fit|evaluate|bench`."""

import sys

from train.cli import main

sys.exit(main())
