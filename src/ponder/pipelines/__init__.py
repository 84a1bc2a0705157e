"""Pipelines as data: layers of roles over one candidate pool, loaded from YAML, JSON or Python."""

from ponder.pipelines.run import build_roles, layers_max_cost, run_layers
from ponder.pipelines.schema import Layer, Pipeline, load_pipeline, presets

__all__ = ["Layer", "Pipeline", "build_roles", "layers_max_cost", "load_pipeline", "presets", "run_layers"]
