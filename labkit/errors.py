"""Errors written for people: the CLI prints them without a traceback."""


class LabkitError(RuntimeError):
    """Something the user can fix; the message says how."""
