"""Tests of engine/spec.py (the job-spec contract, docs/reference/job-spec.md) and engine/shapes.py."""

from __future__ import annotations

import copy
import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from engine.shapes import estimate_batch_memory, output_size, parameter_count, plan_model
from engine.spec import (
    ACTIVATIONS,
    BUILTIN_DATASETS,
    DTYPES,
    JOB_SPEC_SCHEMA,
    LAYER_TYPES,
    LOSSES,
    OPTIMIZERS,
    Limits,
    SpecError,
    job_spec_schema,
    validate_job_spec,
    validate_model_spec,
)
from tests.helpers import example as load_example

# The example of docs/reference/job-spec.md, as examples/lenet-mnist.json holds it.
EXAMPLE = load_example("lenet-mnist")
LENET = EXAMPLE["model"]


def example(**changes):
    """A deep copy of the job-spec.md example."""
    spec = copy.deepcopy(EXAMPLE)
    spec.update(copy.deepcopy(changes))
    return spec


def minimal_train(model=None, dataset="digits"):
    return {
        "type": "train",
        "model": model
        or {
            "input_shape": [1, 8, 8],
            "layers": [
                {"type": "conv", "filters": 4, "kernel": 3},
                {"type": "dense", "units": 10, "activation": "softmax"},
            ],
            "loss": "cross_entropy",
        },
        "data": {"dataset": dataset},
        "train": {"epochs": 2, "batch_size": 16, "optimizer": {"type": "sgd", "lr": 0.1}},
    }


def errors_of(spec, **kwargs) -> dict[str, str]:
    """Validate, expect failure, return {path: message} (asserting paths are unique)."""
    with pytest.raises(SpecError) as info:
        validate_job_spec(spec, **kwargs)
    details = info.value.details
    out = {d["path"]: d["message"] for d in details}
    assert len(out) == len(details), details
    return out


# ------------------------------------------------------------------ happy paths


def test_spec_example_validates_and_normalizes():
    spec = example()
    original = copy.deepcopy(spec)
    out = validate_job_spec(spec)
    assert spec == original, "validation must not mutate its input"
    assert out is not spec and out["model"] is not spec["model"]
    layers = out["model"]["layers"]
    assert layers[0] == {
        "type": "conv",
        "filters": 20,
        "kernel": [5, 5],
        "stride": 1,
        "padding": 0,
        "activation": "relu",
    }
    assert layers[1] == {"type": "maxpool", "size": 2, "stride": 2}
    assert layers[2] == {
        "type": "conv",
        "filters": 40,
        "kernel": [5, 5],
        "stride": 1,
        "padding": 0,
        "activation": "relu",
    }
    assert layers[5] == {"type": "dropout", "rate": 0.5}
    assert out["name"] == "lenet-mnist" and out["tags"] == ["baseline"]
    assert out["train"]["optimizer"] == {"type": "sgd", "lr": 0.05, "momentum": 0.9}
    assert out["data"] == {"dataset": "mnist-5k", "test_fraction": 0.2, "validation_fraction": 0.1}
    assert "gradcheck" not in out
    # Normalisation is idempotent and JSON-serialisable.
    assert validate_job_spec(out) == out
    assert json.loads(json.dumps(out)) == out


def test_defaults_filled():
    out = validate_job_spec(minimal_train())
    assert out["name"] == "train-digits"
    assert out["tags"] == []
    assert out["data"] == {"dataset": "digits", "test_fraction": 0.2, "validation_fraction": 0.1}
    assert out["train"] == {
        "epochs": 2,
        "batch_size": 16,
        "seed": 0,
        "dtype": "float32",
        "optimizer": {"type": "sgd", "lr": 0.1, "momentum": 0.0},
        "weight_decay": 0.0,
    }
    assert out["model"]["layers"][0] == {
        "type": "conv",
        "filters": 4,
        "kernel": [3, 3],
        "stride": 1,
        "padding": 0,
        "activation": "relu",
    }


def test_adam_defaults_and_dense_default_activation():
    spec = minimal_train(
        {
            "input_shape": [1, 8, 8],
            "layers": [
                {"type": "flatten"},
                {"type": "dense", "units": 32},
                {"type": "dense", "units": 10, "activation": "sigmoid"},
            ],
            "loss": "cross_entropy",
        }
    )
    spec["train"]["optimizer"] = {"type": "adam", "lr": 1e-3}
    out = validate_job_spec(spec)
    assert out["train"]["optimizer"] == {"type": "adam", "lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}
    assert out["model"]["layers"][1]["activation"] == "relu"


def test_gradcheck_job_defaults():
    spec = {"type": "gradcheck", "model": minimal_train()["model"], "gradcheck": {}}
    out = validate_job_spec(spec)
    assert out["gradcheck"] == {"batch_size": 2, "eps": 1e-6, "seed": 0, "rotate_kernels": True}
    assert out["name"] == "gradcheck"
    assert "train" not in out and "data" not in out


def test_gradcheck_job_rules():
    model = minimal_train()["model"]
    errs = errors_of(
        {
            "type": "gradcheck",
            "model": model,
            "train": {"epochs": 1, "batch_size": 1, "optimizer": {"type": "sgd", "lr": 1}},
        }
    )
    assert errs == {"gradcheck": "required field", "train": "not allowed in a gradcheck job"}
    # data is optional for a gradcheck, and validated when present.
    out = validate_job_spec(
        {
            "type": "gradcheck",
            "model": model,
            "data": {"dataset": "digits"},
            "gradcheck": {"rotate_kernels": False, "batch_size": 3},
        }
    )
    assert out["gradcheck"]["rotate_kernels"] is False and out["name"] == "gradcheck-digits"
    errs = errors_of(
        {"type": "gradcheck", "model": model, "gradcheck": {"batch_size": 17, "eps": 0.1, "rotate_kernels": 1}}
    )
    assert set(errs) == {"gradcheck.batch_size", "gradcheck.eps", "gradcheck.rotate_kernels"}


def test_gradcheck_parameter_limit():
    errs = errors_of({"type": "gradcheck", "model": LENET, "gradcheck": {}})
    assert "85,670" in errs["model"] and "20,000" in errs["model"]


def test_train_job_requires_sections():
    errs = errors_of({"type": "train", "model": LENET})
    assert errs == {"data": "required field", "train": "required field"}
    assert errors_of({"model": LENET})["type"] == "required field"


# ------------------------------------------------------------------ messages and paths


def test_kernel_larger_than_input():
    spec = minimal_train(
        {
            "input_shape": [1, 12, 12],
            "layers": [
                {"type": "conv", "filters": 2, "kernel": 3},
                {"type": "maxpool", "size": 2},
                {"type": "conv", "filters": 2, "kernel": 7},
                {"type": "dense", "units": 4, "activation": "softmax"},
            ],
            "loss": "cross_entropy",
        },
        dataset="synthetic",
    )
    assert errors_of(spec) == {"model.layers[2].kernel": "7 is larger than the 5×5 input"}


def test_kernel_larger_than_padded_input_mentions_padding():
    spec = minimal_train(
        {
            "input_shape": [1, 3, 3],
            "layers": [
                {"type": "conv", "filters": 2, "kernel": 7, "padding": 1},
                {"type": "dense", "units": 10, "activation": "softmax"},
            ],
            "loss": "cross_entropy",
        },
        dataset="other",
    )
    msg = errors_of(spec)["model.layers[0].kernel"]
    assert msg.startswith("7 is larger than the 3×3 input") and "padding 1" in msg and "5×5" in msg


def test_pool_larger_than_input():
    spec = minimal_train(
        {
            "input_shape": [1, 8, 8],
            "layers": [
                {"type": "conv", "filters": 2, "kernel": 5},
                {"type": "avgpool", "size": 5},
                {"type": "dense", "units": 10, "activation": "softmax"},
            ],
            "loss": "cross_entropy",
        }
    )
    assert errors_of(spec) == {"model.layers[1].size": "5 is larger than the 4×4 input"}


def test_unknown_fields_everywhere():
    spec = example(extra=1)
    spec["train"]["optimizer"]["momentun"] = 0.9
    spec["model"]["layers"][1]["padding"] = 1
    spec["model"]["colour"] = "red"
    spec["data"]["shuffle"] = True
    errs = errors_of(spec)
    assert errs == {
        "extra": "unknown field",
        "train.optimizer.momentun": "unknown field",
        "model.layers[1].padding": "unknown field",
        "model.colour": "unknown field",
        "data.shuffle": "unknown field",
    }
    err = pytest.raises(SpecError, validate_job_spec, spec).value
    assert "train.optimizer.momentun: unknown field" in str(err).splitlines()


def test_adam_fields_not_allowed_on_sgd():
    spec = example()
    spec["train"]["optimizer"]["beta1"] = 0.9
    assert errors_of(spec) == {"train.optimizer.beta1": "unknown field"}


@pytest.mark.parametrize(
    "path,value",
    [
        (("train", "epochs"), "10"),
        (("train", "epochs"), 10.0),
        (("train", "epochs"), 10.5),
        (("train", "epochs"), None),
        (("train", "batch_size"), [32]),
        (("train", "optimizer", "lr"), "0.1"),
        (("train", "dtype"), "float16"),
        (("train", "seed"), -1),
        (("train", "seed"), 2**32),
        (("model", "loss"), "mse"),
        (("data", "dataset"), 5),
        (("data", "test_fraction"), 1.0),
        (("name",), 3),
    ],
)
def test_wrong_types_and_values(path, value):
    spec = example()
    target = spec
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert list(errors_of(spec)) == [".".join(path)]


@pytest.mark.parametrize("field", ["epochs", "batch_size", "seed"])
def test_bool_is_not_an_int(field):
    spec = example()
    spec["train"][field] = True
    msg = errors_of(spec)[f"train.{field}"]
    assert "integer" in msg and "boolean" in msg


def test_bool_is_not_a_number_and_layer_bools():
    spec = example()
    spec["train"]["optimizer"]["lr"] = True
    spec["model"]["layers"][0]["filters"] = False
    errs = errors_of(spec)
    assert set(errs) == {"train.optimizer.lr", "model.layers[0].filters"}


def test_seed_bounds_accepted():
    spec = example()
    spec["train"]["seed"] = 2**32 - 1
    assert validate_job_spec(spec)["train"]["seed"] == 2**32 - 1


def test_root_not_an_object():
    with pytest.raises(SpecError) as info:
        validate_job_spec([EXAMPLE])
    assert info.value.details[0]["path"] == ""
    assert "object" in info.value.details[0]["message"]


def test_multiple_errors_collected():
    spec = example()
    spec["type"] = "training"
    spec["model"]["layers"][0]["kernel"] = 0
    spec["model"]["layers"][4]["units"] = -3
    spec["data"]["validation_fraction"] = "x"
    spec["train"]["optimizer"]["momentum"] = 1.0
    spec["tags"] = ["a", "a", ""]
    errs = errors_of(spec)
    assert set(errs) == {
        "type",
        "model.layers[0].kernel",
        "model.layers[4].units",
        "data.validation_fraction",
        "train.optimizer.momentum",
        "tags[1]",
        "tags[2]",
    }
    err = pytest.raises(SpecError, validate_job_spec, spec).value
    assert isinstance(err, ValueError)
    assert len(str(err).splitlines()) == 7


def test_geometry_still_reported_alongside_other_errors():
    spec = minimal_train(
        {
            "input_shape": [1, 5, 5],
            "layers": [
                {"type": "conv", "filters": 2, "kernel": 7},
                {"type": "dense", "units": 10, "activation": "softmax"},
            ],
            "loss": "crossentropy",
        },
        dataset="other",
    )
    errs = errors_of(spec)
    assert errs["model.layers[0].kernel"] == "7 is larger than the 5×5 input"
    assert "model.loss" in errs


def test_softmax_not_last():
    model = copy.deepcopy(LENET)
    model["layers"][4]["activation"] = "softmax"
    errs = errors_of(example(model=model))
    assert errs == {"model.layers[4].activation": "softmax is only allowed on the last layer"}


def test_cross_entropy_with_linear_last_layer():
    model = copy.deepcopy(LENET)
    model["layers"][-1]["activation"] = "linear"
    errs = errors_of(example(model=model))
    assert list(errs) == ["model.loss"]
    assert "softmax or sigmoid" in errs["model.loss"] and "linear" in errs["model.loss"]
    model["loss"] = "quadratic"
    validate_job_spec(example(model=model))


def test_last_layer_activation_required_and_last_layer_dense():
    model = copy.deepcopy(LENET)
    del model["layers"][-1]["activation"]
    assert errors_of(example(model=model)) == {"model.layers[6].activation": "required field"}
    model = copy.deepcopy(LENET)
    model["layers"].append({"type": "dropout", "rate": 0.1})
    assert "last layer must be dense" in errors_of(example(model=model))["model.layers[7]"]


def test_conv_after_dense():
    model = {
        "input_shape": [1, 8, 8],
        "loss": "cross_entropy",
        "layers": [
            {"type": "dense", "units": 32},
            {"type": "conv", "filters": 2, "kernel": 3},
            {"type": "maxpool", "size": 2},
            {"type": "dense", "units": 10, "activation": "softmax"},
        ],
    }
    errs = errors_of(minimal_train(model))
    assert set(errs) == {"model.layers[1]", "model.layers[2]"}
    assert "spatial" in errs["model.layers[1]"]
    model["layers"][0] = {"type": "flatten"}
    assert set(errors_of(minimal_train(model))) == {"model.layers[1]", "model.layers[2]"}


def test_dropout_rate_bounds():
    model = copy.deepcopy(LENET)
    model["layers"][5]["rate"] = 1
    assert set(errors_of(example(model=model))) == {"model.layers[5].rate"}
    model["layers"][5]["rate"] = 0
    validate_job_spec(example(model=model))


def test_fraction_sum():
    spec = example(data={"dataset": "mnist-5k", "test_fraction": 0.5, "validation_fraction": 0.4})
    assert set(errors_of(spec)) == {"data"}


def test_unknown_layer_type():
    model = copy.deepcopy(LENET)
    model["layers"][1]["type"] = "pool"
    assert set(errors_of(example(model=model))) == {"model.layers[1].type"}


# ------------------------------------------------------------------ limits


def test_limit_parameter_count():
    model = {
        "input_shape": [16, 128, 128],
        "loss": "cross_entropy",
        "layers": [
            {"type": "conv", "filters": 8, "kernel": 3, "padding": 1},
            {"type": "dense", "units": 4096},
            {"type": "dense", "units": 10, "activation": "softmax"},
        ],
    }
    errs = errors_of(minimal_train(model, dataset="upload-1"))
    msg = errs["model"]
    n = 8 * 16 * 9 + 8 + 8 * 128 * 128 * 4096 + 4096 + 4096 * 10 + 10
    assert f"{n:,}" in msg and "5,000,000" in msg
    # A custom limit applies.
    small = copy.deepcopy(LENET)
    assert "model" in errors_of(example(model=small), limits=Limits(max_parameters=80_000))


def test_limit_batch_memory():
    spec = example()
    spec["train"]["batch_size"] = 2048
    msg = errors_of(spec)["train.batch_size"]
    assert "MB" in msg and "1,024.0 MB" in msg
    est = estimate_batch_memory(validate_model_spec(LENET), 2048, "float32")
    assert f"{est / 2**20:,.1f} MB" in msg


def test_limit_epochs_batch_size_and_sizes():
    spec = example()
    spec["train"]["epochs"] = 501
    spec["train"]["batch_size"] = 4096
    spec["model"]["layers"][0]["filters"] = 513
    spec["model"]["layers"][2]["kernel"] = [5, 16]
    spec["model"]["layers"][4]["units"] = 5000
    spec["model"]["input_shape"] = [17, 28, 129]
    errs = errors_of(spec)
    assert set(errs) == {
        "train.epochs",
        "train.batch_size",
        "model.layers[0].filters",
        "model.layers[2].kernel[1]",
        "model.layers[4].units",
        "model.input_shape[0]",
        "model.input_shape[2]",
    }
    assert "500" in errs["train.epochs"]


def test_limit_layers_tags_name():
    model = copy.deepcopy(LENET)
    model["layers"] = [{"type": "dropout", "rate": 0.1}] * 32 + model["layers"]
    spec = example(model=model, tags=[f"t{i}" for i in range(17)], name="x" * 201)
    assert set(errors_of(spec)) == {"model.layers", "tags", "name"}
    assert set(errors_of(example(tags=["x" * 65]))) == {"tags[0]"}


def test_limits_from_mapping():
    lim = Limits.from_mapping({"max_epochs": "7", "unknown": 1, "max_layers": 3})
    assert lim.max_epochs == 7 and lim.max_layers == 3 and lim.max_units == Limits().max_units
    with pytest.raises(ValueError):
        Limits.from_mapping({"max_epochs": 0})


# ------------------------------------------------------------------ datasets


def test_dataset_shape_mismatch():
    spec = example(data={"dataset": "digits"})
    errs = errors_of(spec)
    assert set(errs) == {"model.input_shape"}
    assert "[1, 8, 8]" in errs["model.input_shape"]


def test_dataset_classes_mismatch():
    model = copy.deepcopy(LENET)
    model["input_shape"] = [1, 12, 12]
    model["layers"] = [
        {"type": "conv", "filters": 2, "kernel": 3},
        {"type": "dense", "units": 10, "activation": "softmax"},
    ]
    errs = errors_of(example(model=model, data={"dataset": "synthetic"}))
    assert set(errs) == {"model.layers[1].units"}
    assert "4 classes" in errs["model.layers[1].units"]


def test_uploaded_datasets_lookup():
    model = minimal_train()["model"]
    lookup = {"ds-1": (1, 8, 8), "ds-2": (3, 8, 8)}.get
    validate_job_spec(minimal_train(model, dataset="ds-1"), datasets=lookup)
    assert set(errors_of(minimal_train(model, dataset="ds-2"), datasets=lookup)) == {"model.input_shape"}
    assert set(errors_of(minimal_train(model, dataset="nope"), datasets=lookup)) == {"data.dataset"}
    # Without a lookup, an unknown id is accepted (its shape is not known here).
    validate_job_spec(minimal_train(model, dataset="nope"))
    assert BUILTIN_DATASETS["mnist-5k"] == {"shape": (1, 28, 28), "classes": 10, "samples": 5000}


# ------------------------------------------------------------------ shape inference


def test_plan_model_lenet():
    model = validate_model_spec(LENET)
    plans = plan_model(model)
    assert [p.out_shape for p in plans] == [(20, 24, 24), (20, 12, 12), (40, 8, 8), (40, 4, 4), (100,), (100,), (10,)]
    assert plans[0].in_shape == (1, 28, 28) and plans[4].in_shape == (40, 4, 4)
    assert plans[0].param_shapes == {"W": (20, 1, 5, 5), "b": (20,)}
    assert plans[2].param_shapes == {"W": (40, 20, 5, 5), "b": (40,)}
    assert plans[4].param_shapes == {"W": (100, 640), "b": (100,)}
    assert plans[1].param_shapes == {} and plans[5].param_shapes == {}
    assert [p.index for p in plans] == list(range(7))
    expected = (20 * 25 + 20) + (40 * 20 * 25 + 40) + (640 * 100 + 100) + (100 * 10 + 10)
    assert parameter_count(model) == expected == 85670


def test_plan_odd_sizes_floor_like_pytorch():
    # Values as torch.nn.Conv2d / MaxPool2d give them: floor((H + 2p - k) / s) + 1.
    model = validate_model_spec(
        {
            "input_shape": [3, 10, 9],
            "loss": "quadratic",
            "layers": [
                {"type": "conv", "filters": 4, "kernel": [3, 2], "stride": 2},  # (10-3)//2+1=4, (9-2)//2+1=4
                {"type": "conv", "filters": 5, "kernel": 3, "stride": 2, "padding": 1},  # (4+2-3)//2+1=2
                {"type": "flatten"},
                {"type": "dense", "units": 3, "activation": "linear"},
            ],
        }
    )
    assert [p.out_shape for p in plan_model(model)] == [(4, 4, 4), (5, 2, 2), (20,), (3,)]
    model = validate_model_spec(
        {
            "input_shape": [1, 7, 7],
            "loss": "quadratic",
            "layers": [
                {"type": "conv", "filters": 2, "kernel": 3, "stride": 2, "padding": 1},  # (7+2-3)//2+1=4
                {"type": "maxpool", "size": 3, "stride": 1},  # 4-3+1=2
                {"type": "dense", "units": 1, "activation": "tanh"},
            ],
        }
    )
    assert [p.out_shape for p in plan_model(model)] == [(2, 4, 4), (2, 2, 2), (1,)]
    model = validate_model_spec(
        {
            "input_shape": [1, 7, 7],
            "loss": "quadratic",
            "layers": [
                {"type": "avgpool", "size": 3},  # (7-3)//3+1=2
                {"type": "dense", "units": 1, "activation": "linear"},
            ],
        }
    )
    assert plan_model(model)[0].out_shape == (1, 2, 2)


def test_estimate_batch_memory_formula():
    model = validate_model_spec(
        {
            "input_shape": [2, 6, 6],
            "loss": "quadratic",
            "layers": [
                {"type": "conv", "filters": 3, "kernel": 3},
                {"type": "dense", "units": 4, "activation": "linear"},
            ],
        }
    )
    n = 5
    conv = n * (2 * 36 + 3 * 16) + n * 16 * 2 * 9 + n * 36 * 3 * 9
    dense = n * (48 + 4)
    params = (3 * 2 * 9 + 3) + (4 * 48 + 4)
    assert estimate_batch_memory(model, n, "float64") == (conv + dense + 11 * params) * 8
    assert estimate_batch_memory(model, n, "float32") == (conv + dense + 11 * params) * 4


def test_validate_model_spec_path_and_error():
    with pytest.raises(SpecError) as info:
        validate_model_spec({"input_shape": [1, 8, 8], "layers": [], "loss": "quadratic"}, path="m")
    assert info.value.details == [{"path": "m.layers", "message": "must contain at least one layer"}]


def test_spec_error_pickles():
    err = SpecError([{"path": "a.b", "message": "bad"}])
    again = pickle.loads(pickle.dumps(err))
    assert again.details == err.details and str(again) == "a.b: bad"


# ------------------------------------------------------------------ JSON Schema


def _walk(node):
    yield node
    if isinstance(node, dict):
        for v in node.values():
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)


def test_schema_serialisable_with_enums():
    text = json.dumps(JOB_SPEC_SCHEMA)
    assert json.loads(text) == JOB_SPEC_SCHEMA
    enums = [tuple(n["enum"]) for n in _walk(JOB_SPEC_SCHEMA) if isinstance(n, dict) and "enum" in n]
    for values in (ACTIVATIONS, LOSSES, DTYPES):
        assert values in enums
    consts = {n["const"] for n in _walk(JOB_SPEC_SCHEMA) if isinstance(n, dict) and "const" in n}
    assert set(LAYER_TYPES) | set(OPTIMIZERS) | {"train", "gradcheck"} <= consts
    assert "$ref" not in text
    assert JOB_SPEC_SCHEMA["$schema"].endswith("2020-12/schema")


def test_schema_follows_limits():
    schema = job_spec_schema(Limits(max_epochs=7, max_filters=9))
    text = json.dumps(schema)
    train_job = schema["oneOf"][0]
    assert train_job["properties"]["train"]["properties"]["epochs"]["maximum"] == 7
    conv = train_job["properties"]["model"]["properties"]["layers"]["items"]["oneOf"][0]
    assert conv["properties"]["filters"]["maximum"] == 9
    assert conv["additionalProperties"] is False
    assert '"maximum": 500' not in text


# ------------------------------------------------------------------ imports


def test_spec_module_does_not_import_numpy():
    """The module docstring promises the API process can validate without the numeric stack."""
    code = (
        "import sys, engine.spec, engine.shapes, engine.constants, engine.summary; "
        "from engine import SpecError, Limits, validate_job_spec; "
        "print(sorted(m for m in sys.modules if m == 'numpy' or m.startswith('numpy.')))"
    )
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
    )
    assert proc.stdout.strip() == "[]", proc.stdout


def test_output_size_is_the_shapes_the_plan_gives():
    """The one output-size formula: a strided, padded conv and a pool over odd sides."""
    assert output_size(10, 3, 2) == 4 and output_size(4, 3, 2, 1) == 2 and output_size(7, 3, 3) == 2
    model = validate_model_spec(
        {
            "input_shape": [1, 9, 10],
            "loss": "quadratic",
            "layers": [
                {"type": "conv", "filters": 1, "kernel": [2, 3], "stride": 3, "padding": 2},
                {"type": "dense", "units": 1, "activation": "linear"},
            ],
        }
    )
    assert plan_model(model)[0].out_shape == (1, output_size(9, 2, 3, 2), output_size(10, 3, 3, 2)) == (1, 4, 4)


def test_tables_cover_the_vocabulary():
    """Each name of engine.constants has its rules in the spec's tables and its class in the engine."""
    from engine import activations, spec
    from engine.constants import GRADCHECK_DEFAULTS

    assert tuple(spec.LAYER_FIELDS) == LAYER_TYPES
    assert tuple(spec.OPTIMIZER_FIELDS) == OPTIMIZERS
    assert tuple(spec.GRADCHECK_FIELDS) == tuple(GRADCHECK_DEFAULTS)
    assert set(activations.BY_NAME) == set(ACTIVATIONS)
