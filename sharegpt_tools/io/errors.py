"""The one exception type the readers raise for a file the user must fix."""

from __future__ import annotations


class InputError(Exception):
    """A problem with an input file that the user must fix; printed as one line, no traceback."""
