"""Moved to `vidtr_keras.cli.complexity` (the command line lives in `vidtr_keras/cli/`); these names
stay importable from here for one release."""

from vidtr_keras.cli.complexity import add_info_command, add_reproduce_command, cmd_info, cmd_reproduce  # noqa: F401
