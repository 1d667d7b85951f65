import sys

from burro.cli import main

sys.exit(main())
