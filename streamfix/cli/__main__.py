"""`python -m streamfix.cli ...` is the `streamfix` command."""

import sys

from streamfix.cli.main import main

sys.exit(main())
