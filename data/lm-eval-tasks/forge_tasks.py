"""Dataset loaders for Forge's offline lm-eval tasks.

lm-eval hands `dataset_kwargs.data_files` to `datasets.load_dataset("json", ...)`, which
resolves relative paths against the current directory, not the task file. These loaders
(`custom_dataset: !function forge_tasks.<name>`, resolved by lm-eval relative to the YAML)
find the JSONL files next to this module, so the tasks work from any working directory.
"""

from pathlib import Path
from typing import Any

import datasets

HERE = Path(__file__).resolve().parent


def _load(name: str) -> datasets.DatasetDict:
    files = {
        "test": str(HERE / f"{name}.test.jsonl"),
        "train": str(HERE / f"{name}.fewshot.jsonl"),
    }
    return datasets.load_dataset("json", data_files=files)


def forge_mc(**_metadata: Any) -> datasets.DatasetDict:
    """The multiple-choice task: `test` (48 questions) and `train` (5 few-shot examples)."""
    return _load("forge_mc")


def forge_math(**_metadata: Any) -> datasets.DatasetDict:
    """The word-problem task: `test` (48 problems) and `train` (5 few-shot examples)."""
    return _load("forge_math")
