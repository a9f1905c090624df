"""The one error type for bad input: its message names the file, the field and the fix."""


class InputError(ValueError):
    """Raised for input a user can correct; the CLI prints its message without a traceback."""
