"""A pipeline is data: a list of layers, each one role with its options, in YAML, JSON or Python.

A layer's schema is its role's options model (``ponder.roles``), told apart by the ``role`` field, so
a layer accepts exactly the options its role takes; unknown fields are errors. Loading reports every
problem with the layer it is in (index and name) and the field::

    pipeline moa.yaml: layer 1 'refine' (generator): field 'n': Input should be greater than or equal to 1

``load_pipeline`` takes a preset name (``moa``, ``archon-basic``, ``generate-verify``, shipped as YAML
next to this file), a path to a ``.yaml``/``.yml``/``.json`` file, a dict, or a ``Pipeline``.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ponder.core.errors import OptionError, UsageError
from ponder.roles import ROLES, RoleOptions

#: every registered role's options model, told apart by ``role``
Layer = Annotated[
    Union[tuple(entry.options for entry in ROLES.entries())],  # noqa: UP007 - built from the registry
    Field(discriminator="role"),
]


class Pipeline(BaseModel):
    """Layers run in order over one candidate pool; the answer is the vote over the final pool."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "pipeline"
    description: str = ""
    layers: list[Layer] = Field(min_length=1)

    def layer_names(self) -> list[str]:
        return [layer_name(layer, index) for index, layer in enumerate(self.layers)]


def layer_name(layer: RoleOptions, index: int) -> str:
    return layer.name or f"{layer.role}{index}"


def presets() -> list[str]:
    """Names of the shipped presets."""
    folder = resources.files("ponder.pipelines") / "presets"
    return sorted(
        entry.name.removesuffix(".yaml") for entry in folder.iterdir() if entry.name.endswith(".yaml")
    )


def load_pipeline(source: str | Path | dict[str, Any] | Pipeline) -> Pipeline:
    """A validated pipeline from a preset name, a YAML/JSON file, a dict, or a Pipeline."""
    if isinstance(source, Pipeline):
        return source
    if isinstance(source, dict):
        return validate(source, repr(source.get("name", "(dict)")))
    text, label = read_source(str(source))
    try:
        data = json.loads(text) if label.endswith(".json") else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise OptionError(f"pipeline {label}: cannot be read: {error}") from None
    if not isinstance(data, dict):
        raise OptionError(f"pipeline {label}: expected a mapping with 'layers', got {type(data).__name__}")
    data.setdefault("name", Path(label).stem)
    return validate(data, label)


def read_source(source: str) -> tuple[str, str]:
    """The text of a preset or file, and the label errors use."""
    if source in presets():
        preset = resources.files("ponder.pipelines") / "presets" / f"{source}.yaml"
        return preset.read_text(encoding="utf-8"), f"{source}.yaml"
    path = Path(source).expanduser()
    if not path.is_file():
        raise UsageError(f"pipeline {source!r} is neither a preset ({', '.join(presets())}) nor a file")
    return path.read_text(encoding="utf-8"), str(path)


def validate(data: dict[str, Any], label: str) -> Pipeline:
    try:
        return Pipeline.model_validate(data)
    except ValidationError as error:
        layers = data.get("layers") if isinstance(data.get("layers"), list) else []
        problems = [describe(problem, layers) for problem in error.errors(include_url=False)]
        raise OptionError(f"pipeline {label}: " + "; ".join(problems)) from None


def describe(problem: dict[str, Any], layers: list[Any]) -> str:
    """One validation problem as 'layer I 'NAME' (ROLE): field 'F': message'."""
    location = list(problem["loc"])
    message = problem["msg"]
    if len(location) < 2 or location[0] != "layers" or not isinstance(location[1], int):
        return f"{'.'.join(map(str, location)) or 'pipeline'}: {message}"
    index = location[1]
    raw = layers[index] if index < len(layers) and isinstance(layers[index], dict) else {}
    where = f"layer {index}" + (f" {raw['name']!r}" if raw.get("name") else "")
    if location[2:] and location[2] == raw.get("role"):
        where += f" ({location[2]})"
        location = location[3:]
    else:
        location = location[2:]
    if problem["type"] == "extra_forbidden" and raw.get("role") in ROLES.names():
        fields = sorted(ROLES.get(raw["role"]).options.model_fields)
        message += f" (valid fields: {', '.join(fields)})"
    if problem["type"] == "union_tag_not_found":
        return f"{where}: field 'role' is required (one of: {', '.join(ROLES.names())})"
    if problem["type"] == "union_tag_invalid":
        return f"{where}: field 'role' must be one of: {', '.join(ROLES.names())}"
    field = ".".join(map(str, location))
    return f"{where}: field {field!r}: {message}" if field else f"{where}: {message}"
