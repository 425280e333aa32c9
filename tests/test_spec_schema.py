"""The validator and the published JSON Schema agree (engine/spec.py generates both from one set of tables).

Hypothesis mutates valid specs (a value replaced, a key removed or added,
anywhere in the tree), then the spec goes to ``validate_job_spec`` and to
``jsonschema`` with :data:`JOB_SPEC_SCHEMA`.  They must agree, except where
the schema cannot express a rule: those are the cross-field rules listed in
:data:`CROSS_FIELD`, and JSON Schema's ``integer`` admitting ``5.0``.
"""

from __future__ import annotations

import copy
import re

import jsonschema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.constants import (
    ACTIVATIONS,
    DTYPES,
    JOB_TYPES,
    LAYER_TYPES,
    LOSSES,
    OPTIMIZERS,
)
from engine.spec import JOB_SPEC_SCHEMA, SpecError, validate_job_spec
from tests.helpers import example, tiny_train_spec

SCHEMA = jsonschema.Draft202012Validator(JOB_SPEC_SCHEMA)

# Messages of the rules that span several fields: the validator's alone (see job_spec_schema's docstring).
CROSS_FIELD = re.compile(
    "|".join(
        [
            r"is larger than the",
            r"needs a spatial \(C, H, W\) input",
            r"the last layer must be dense",
            r"softmax is only allowed on the last layer",
            r"cross_entropy needs",
            r"parameters, over the",
            r"one batch of",
            r"the check would perturb",
            r"test_fraction \+ validation_fraction",
            r"does not match the sample shape",
            r"units but dataset",
            r"unknown dataset",
        ]
    )
)


def _bases() -> list[dict]:
    adam = tiny_train_spec()
    adam["train"]["optimizer"] = {"type": "adam", "lr": 0.01, "beta2": 0.99}
    adam["tags"] = ["a", "b"]
    flat = tiny_train_spec(dataset="uploaded")
    flat["model"]["layers"][2:2] = [
        {"type": "avgpool", "size": 2, "stride": 1},
        {"type": "flatten"},
        {"type": "dense", "units": 8, "activation": "tanh"},
    ]
    gradcheck = {
        "type": "gradcheck",
        "model": tiny_train_spec()["model"],
        "data": {"dataset": "synthetic"},
        "gradcheck": {"eps": 1e-5, "rotate_kernels": False},
    }
    return [example("lenet-mnist"), tiny_train_spec(), adam, flat, gradcheck]


BASES = _bases()
KEYS = sorted(
    {
        "extra",
        "stride",
        "padding",
        "activation",
        "momentum",
        "beta1",
        "beta2",
        "eps",
        "size",
        "units",
        "rate",
        "kernel",
        "filters",
        "seed",
        "dtype",
        "name",
        "tags",
        "data",
        "train",
        "gradcheck",
        "weight_decay",
        "test_fraction",
        "validation_fraction",
        "batch_size",
        "rotate_kernels",
    }
)
WORDS = sorted(
    {
        *ACTIVATIONS,
        *DTYPES,
        *JOB_TYPES,
        *LAYER_TYPES,
        *LOSSES,
        *OPTIMIZERS,
        "float16",
        "synthetic",
        "digits",
        "",
        "x",
        "x" * 65,
        "x" * 201,
    }
)
EDGES = [
    0,
    1,
    2,
    3,
    4,
    10,
    15,
    16,
    17,
    128,
    129,
    500,
    501,
    512,
    513,
    2048,
    2049,
    4096,
    4097,
    2**32 - 1,
    2**32,
    -1,
    0.0,
    1e-9,
    0.01,
    0.011,
    0.5,
    0.9,
    0.9999,
    1.0,
    1.5,
    2.5,
    3.0,
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from(EDGES),
    st.integers(-5, 40),
    st.sampled_from(WORDS),
    st.floats(-2, 2, allow_nan=False, allow_infinity=False),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(KEYS + ["type"]), inner, max_size=3)
    ),
    max_leaves=6,
)


INT_EDGES = [v for v in EDGES if type(v) is int]
FLOAT_EDGES = [v for v in EDGES if type(v) is float]


def _like(value) -> st.SearchStrategy:
    """Values of the same JSON type as ``value``, around the bounds: most stay valid or fail one rule."""
    if isinstance(value, bool):
        return st.booleans()
    if isinstance(value, int):
        return st.one_of(st.sampled_from(INT_EDGES), st.integers(0, 20))
    if isinstance(value, float):
        return st.one_of(st.sampled_from(FLOAT_EDGES), st.floats(0, 1.2, allow_nan=False))
    if isinstance(value, str):
        return st.sampled_from(WORDS)
    return values


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, prefix + (i,))


@st.composite
def mutated_specs(draw):
    """A valid spec with one to three random changes anywhere in it."""
    spec = copy.deepcopy(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.sampled_from([1, 1, 2, 3]))):
        path = draw(st.sampled_from([p for p in _paths(spec) if p]))
        parent = spec
        for key in path[:-1]:
            parent = parent[key]
        op = draw(st.sampled_from(["like", "like", "like", "replace", "delete", "add"]))
        if op == "delete" and isinstance(parent, dict):
            del parent[path[-1]]
        elif op == "add" and isinstance(parent, dict):
            parent[draw(st.sampled_from(KEYS))] = draw(values)
        elif op == "like":
            parent[path[-1]] = draw(_like(parent[path[-1]]))
        else:
            parent[path[-1]] = draw(values)
    return spec


def _validator_errors(spec) -> list[dict] | None:
    """None when the validator accepts ``spec``, else its error details."""
    try:
        validate_job_spec(spec)
    except SpecError as err:
        return err.details
    return None


def _beyond_schema(detail: dict) -> bool:
    """An error the schema cannot express: a cross-field rule, or an integral float where an int is due.

    Only the last layer's activation is required (a dense layer elsewhere
    defaults to relu), which JSON Schema cannot say about one item of an array.
    """
    message = detail["message"]
    return (
        bool(CROSS_FIELD.search(message))
        or bool(re.fullmatch(r"must be an integer, got number -?\d+\.0", message))
        or (message == "required field" and bool(re.fullmatch(r"model\.layers\[\d+\]\.activation", detail["path"])))
    )


def _disagreement(spec) -> str | None:
    errors = _validator_errors(spec)
    schema_errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in SCHEMA.iter_errors(spec)]
    if errors is None and schema_errors:
        return f"validator accepts, schema rejects: {schema_errors[:3]}"
    if errors is not None and not schema_errors and not all(_beyond_schema(d) for d in errors):
        return f"schema accepts, validator rejects on per-field rules: {errors}"
    return None


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_specs())
def test_validator_and_schema_agree_on_mutated_specs(spec):
    """Both accept or both reject, unless every validator error is one the schema cannot express."""
    assert _disagreement(spec) is None


def test_the_comparison_can_fail():
    """The property above is not vacuous: each direction of disagreement is detected."""
    lenient = copy.deepcopy(BASES[1])
    lenient["train"]["epochs"] = 501  # validator rejects (limit); make the schema lenient
    schema = copy.deepcopy(JOB_SPEC_SCHEMA)
    schema["oneOf"][0]["properties"]["train"]["properties"]["epochs"]["maximum"] = 10**6
    global SCHEMA
    saved, SCHEMA = SCHEMA, jsonschema.Draft202012Validator(schema)
    try:
        assert "validator rejects on per-field rules" in _disagreement(lenient)
        strict = copy.deepcopy(BASES[1])
        schema["oneOf"][0]["properties"]["train"]["properties"]["epochs"]["maximum"] = 1
        SCHEMA = jsonschema.Draft202012Validator(schema)
        assert "schema rejects" in _disagreement(strict)
    finally:
        SCHEMA = saved
    assert _disagreement(lenient) is None and _disagreement(BASES[1]) is None


def test_normalised_specs_are_schema_valid():
    """Every default the validator fills in is one the schema allows (and states)."""
    for base in BASES:
        SCHEMA.validate(validate_job_spec(base))
