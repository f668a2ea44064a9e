"""Subcommands of the ``privagg`` command line, one module each (see :mod:`privagg.cli`)."""
