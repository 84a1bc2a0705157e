"""The ``ponder`` command line."""
