"""The failures a stage reports in one line, kept import-free so every stage can catch them cheaply."""


class StageError(Exception):
    """An expected failure with a message that says what to do; no traceback needed."""


class Terminated(BaseException):
    """SIGTERM, turned into an exception so MLflow runs close as KILLED rather than stay RUNNING."""
