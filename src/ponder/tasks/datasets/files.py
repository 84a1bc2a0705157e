"""Problems from your own files: JSON lines or CSV, with the field names given as options.

A row's ``id`` field is its id unless ``id=`` names another (rows without one are numbered by line).
Rows without a question or an answer, malformed JSON lines and duplicate ids are skipped and listed in
``skipped`` with their line numbers; a file with no usable row at all is an error that shows why.
"""

from __future__ import annotations

import abc
import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, TextIO

from ponder.core.errors import UsageError
from ponder.core.types import Problem
from ponder.tasks.datasets.base import DATASETS, Dataset, MathGrading, RowOptions, RowReader


class FileOptions(RowOptions):
    positional_field: ClassVar[str | None] = "path"

    path: str


class _FileDataset(MathGrading, Dataset):
    options: FileOptions

    def __init__(self, options: FileOptions):
        super().__init__(options)
        self.grader = options.grader

    def _load(self) -> list[Problem]:
        path = Path(self.options.path).expanduser()
        if not path.is_file():
            raise UsageError(f"dataset file not found: {path}")
        reader = RowReader(self.options, str(path), "line", default_id_field="id")
        try:
            with open(path, encoding="utf-8-sig", newline="") as file:
                problems = [
                    problem
                    for row, line in self._rows(file, reader)
                    if (problem := reader.read(row, line)) is not None
                ]
        except (OSError, UnicodeDecodeError, csv.Error) as error:
            raise UsageError(f"cannot read {path}: {error}") from error
        self.skipped = reader.skipped
        return reader.finish(problems)

    @abc.abstractmethod
    def _rows(self, file: TextIO, reader: RowReader) -> Iterator[tuple[Any, int]]:
        """Each row with its line number; rows that cannot even be parsed go to ``reader.skipped``."""


@DATASETS.register("jsonl", FileOptions)
class JsonLinesDataset(_FileDataset):
    """A JSON-lines file (positional: path), one problem per line, graded by answer equivalence."""

    kind = "jsonl"

    def _rows(self, file: TextIO, reader: RowReader) -> Iterator[tuple[Any, int]]:
        for line, text in enumerate(file, start=1):
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as error:
                reader.skip(line, f"invalid JSON ({error.msg})")
                continue
            yield row, line


@DATASETS.register("csv", FileOptions)
class CsvDataset(_FileDataset):
    """A CSV file with a header row (positional: path), graded by answer equivalence."""

    kind = "csv"

    def _rows(self, file: TextIO, reader: RowReader) -> Iterator[tuple[Any, int]]:
        rows = csv.DictReader(file)
        for row in rows:  # numbered by the line a row ends on: where it starts too, unless a cell is quoted
            if None in row:  # DictReader files cells beyond the header under None
                reader.skip(rows.line_num, "more cells than the header has")
            else:
                yield row, rows.line_num
