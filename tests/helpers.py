"""Small helpers shared by the tests (imported explicitly)."""
from __future__ import annotations

import copy
import json
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "convlab" / "examples"


def example(name: str) -> dict:
    """A fresh copy of one of the example specs in convlab/examples/ (the dashboard's templates)."""
    return copy.deepcopy(json.loads((EXAMPLES / f"{name}.json").read_text()))


def tiny_train_spec(epochs: int = 2, dataset: str = "synthetic", **train) -> dict:
    """A small, quick training job on the synthetic dataset."""
    spec = {
        "type": "train",
        "name": "tiny",
        "model": {
            "input_shape": [1, 12, 12],
            "layers": [
                {"type": "conv", "filters": 6, "kernel": 3, "activation": "relu"},
                {"type": "maxpool", "size": 2},
                {"type": "dropout", "rate": 0.2},
                {"type": "dense", "units": 4, "activation": "softmax"},
            ],
            "loss": "cross_entropy",
        },
        "data": {"dataset": dataset},
        "train": {"epochs": epochs, "batch_size": 32, "seed": 0,
                  "optimizer": {"type": "sgd", "lr": 0.1, "momentum": 0.9}},
    }
    spec["train"].update(train)
    return spec
