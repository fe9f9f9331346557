"""`python -m rating ...` is the `rating` command."""

import sys

from rating.cli import main

sys.exit(main())
