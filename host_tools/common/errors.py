class SpottyError(Exception):
    """A user-facing failure: the CLI prints it and exits non-zero."""
