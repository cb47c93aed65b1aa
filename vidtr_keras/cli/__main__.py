"""`python -m vidtr_keras.cli` = the `vidtr` command."""

import sys

from vidtr_keras.cli import main

sys.exit(main())
