"""The one exception the filter language raises for bad input."""
from __future__ import annotations


class FilterError(ValueError):
    """A filter the client wrote is invalid.

    The message is meant to be sent back to the client as is: it says what is wrong and,
    for syntax errors, where (a 0-based character offset into the filter text). It never
    echoes string values from the filter, only fixed words, operators and field names
    (which the lexer restricts to ASCII identifier characters).
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
