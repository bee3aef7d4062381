import sys

from measure.bench import main

sys.exit(main())
