"""python -m graphc: the graphc command line (see graphc/cli.py)."""
import sys

from .cli import main

sys.exit(main())
