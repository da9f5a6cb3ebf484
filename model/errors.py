"""The one exception type that scripts turn into a one-line message."""


class NegstanceError(ValueError):
    """A problem with the user's input, config or checkpoint, explained in one line: scripts
    print ``error: <message>`` and exit 2 (:func:`negstance.model.options.script_main`)."""
