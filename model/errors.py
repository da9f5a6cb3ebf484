"""The one exception type that scripts turn into a one-line message."""

from __future__ import annotations


class NegstanceError(ValueError):
    """A problem with the user's input, config or checkpoint, explained in one line.

    Scripts print ``error: <message>`` and exit with status 2 for these; anything
    else is a bug and keeps its traceback.
    """
