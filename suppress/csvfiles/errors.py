"""The one error for a CSV file that cannot be read as a whole; a row's problem is not one."""


class CsvError(ValueError):
    """The file as a whole cannot be read; the message says what to fix."""
