"""`python -m train prepare|fit|calibrate|evaluate|pack|bench` (see `train.cli`)."""

import sys

from train.cli import main

sys.exit(main())
