"""The failures a stage reports in one line, kept import-free so every stage can catch them cheaply."""


class StageError(Exception):
    """An expected failure with a message that says what to do; no traceback needed."""


class Terminated(BaseException):
    """SIGTERM, turned into an exception so MLflow runs close as KILLED rather than stay RUNNING."""


def first_line(exc: BaseException) -> str:
    """An exception's first line for a one-line message; its type where it says nothing."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
