"""`python -m maildesk` runs the command line."""

import sys

from maildesk.cli import main

sys.exit(main())
