"""The one exception type for mistakes a user can fix: the CLI prints it as one line, exit 2."""


class UserError(Exception):
    """Bad input (unknown model, malformed lengths, unwritable folder...): a one-line message."""
