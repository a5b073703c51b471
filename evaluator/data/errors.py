"""The one error type of data preparation: it always says which file, line and column."""

from __future__ import annotations

from pathlib import Path


class DataFormatError(ValueError):
    """A data file breaks the format; the message names the file, the line and the column."""

    def __init__(
        self,
        file: Path | str,
        problem: str,
        *,
        line: int | None = None,
        column: str | None = None,
    ) -> None:
        self.file = str(file)
        self.line = line
        self.column = column
        self.problem = problem
        where = self.file
        if line is not None:
            where += f", line {line}"
        if column is not None:
            where += f", column {column}"
        super().__init__(f"{where}: {problem}")
