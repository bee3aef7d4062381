"""`python -m animerec`: see animerec.cli."""

import sys

from animerec.cli import main

sys.exit(main())
