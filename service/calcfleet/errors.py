"""The base of every error calcfleet raises on purpose."""


class CalcfleetError(Exception):
    """A failure that the user can act on; shown as one line, never a traceback."""
