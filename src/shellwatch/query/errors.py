"""Errors a query front end raises: the query is wrong, or valid but uses what shellwatch cannot run yet."""

from __future__ import annotations


class QueryError(ValueError):
    """The query text is invalid; ``position`` (line, column, both 1-based) points at the fault when known."""

    def __init__(self, message: str, position: tuple[int, int] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.position = position

    def __str__(self) -> str:
        if self.position is None:
            return self.message
        line, column = self.position
        return f"line {line}, column {column}: {self.message}"


class UnsupportedQuery(Exception):
    """The query is valid but uses a feature shellwatch does not run (yet); ``feature`` names it."""

    def __init__(self, feature: str, detail: str = "") -> None:
        super().__init__(f"{feature}: {detail}" if detail else feature)
        self.feature = feature
        self.detail = detail
