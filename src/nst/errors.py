"""nst's two exception types; the CLI turns them into one-line messages."""


class NstError(ValueError):
    """A problem the user can fix: bad input, bad option, missing file.

    The CLI prints its message on one line and exits with status 2.
    """


class NstRuntimeError(RuntimeError):
    """A run that started but could not finish (for example it diverged).

    The CLI prints its message on one line and exits with status 1.
    """
