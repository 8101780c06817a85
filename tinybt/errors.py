"""The one exception type that reaches the user as a message instead of a traceback."""


class TinyBTError(Exception):
    """Something the user can fix: a wrong path, a corrupt file, an impossible option.

    The message is one line that says what was wrong and what to do. The command-line
    programs print it as `error: <message>` and exit with status 2.
    """
