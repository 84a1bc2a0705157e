"""Datasets: problems to solve and the graders that mark answers to them.

``load_dataset("reasoning-gym:gsm_symbolic,size=50")`` builds one from a spec; ``DATASETS`` lists them.
Everything registered here works offline except ``hf`` with a hub name.
"""

# Importing the loaders registers them.
from ponder.tasks.datasets import champ, files, generated, hub, humaneval  # noqa: F401
from ponder.tasks.datasets.base import DATASETS, Dataset, load_dataset
from ponder.tasks.datasets.humaneval import CODE_SYSTEM_PROMPT

__all__ = ["CODE_SYSTEM_PROMPT", "DATASETS", "Dataset", "load_dataset"]
