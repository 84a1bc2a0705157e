"""Any table that Hugging Face ``datasets`` can load: a hub dataset (GSM8K, MATH-500...), a builder
such as ``json``/``csv``/``parquet`` with ``data_files``, or a local file or directory.

``datasets`` is an optional dependency (``pip install 'ponder[hf]'``), imported only here. With
``data_files`` (or a local file as the name) the files become the requested ``split``, so the default
``split=test`` works for them too.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from ponder.core.errors import UsageError
from ponder.core.extras import import_extra
from ponder.core.types import Problem
from ponder.tasks.datasets.base import DATASETS, Dataset, MathGrading, RowOptions, RowReader

_BUILDERS = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet", ".arrow": "arrow"}


class HuggingFaceOptions(RowOptions):
    positional_field: ClassVar[str | None] = "path"

    path: str
    config: str | None = None
    split: str = "test"
    data_files: str | None = None
    answer_format: Literal["plain", "gsm8k"] = "plain"


@DATASETS.register("hf", HuggingFaceOptions)
class HuggingFaceDataset(MathGrading, Dataset):
    """A Hugging Face dataset split (positional: hub name, builder or local path), graded by equivalence."""

    kind = "hf"
    options: HuggingFaceOptions

    def __init__(self, options: HuggingFaceOptions):
        super().__init__(options)
        self.grader = options.grader

    def _load(self) -> list[Problem]:
        datasets = import_extra("datasets", "hf", f"dataset {self.name}")
        options = self.options
        path, data_files = options.path, options.data_files
        local = Path(path).expanduser()
        if local.is_file():  # a single file: load it with the builder its suffix names
            path, data_files = _BUILDERS.get(local.suffix.lower(), "json"), str(local)
        arguments = {"name": options.config, "split": options.split}
        if data_files is not None:
            arguments["data_files"] = {options.split: data_files}
        try:
            table = datasets.load_dataset(path, **arguments)
        except Exception as error:  # hub unreachable, unknown name, split or config, unreadable files
            raise UsageError(
                f"cannot load Hugging Face dataset {options.path!r} (split {options.split!r}): "
                f"{type(error).__name__}: {error}"
            ) from error
        reader = RowReader(options, self.name, "row", options.answer_format)
        problems = [
            problem for number, row in enumerate(table) if (problem := reader.read(row, number)) is not None
        ]
        self.skipped = reader.skipped
        return reader.finish(problems)
