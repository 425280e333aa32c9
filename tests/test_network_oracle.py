"""Network-level oracle: the engine's forward pass, loss and every gradient against PyTorch.

A seeded generator builds random architectures (convs with non-square
kernels, strides and padding, max/avg pools with overlapping or floored
windows, flatten, dropout, dense layers, every output head and loss).  For
each one the identical PyTorch model is built with the engine's own weights
(docs/reference/weights.md: conv W is (F, C, kh, kw), dense W is (units, inputs), flattening in
C, H, W order) and the two must agree: outputs, loss, every parameter
gradient and the gradient of the loss w.r.t. every layer's input.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from engine import Network, SpecError, validate_model_spec
from engine.layers import Dropout
from tests.helpers import example, rel_err

FORWARD_RTOL = 1e-9
GRAD_RTOL = 1e-7
FLOAT32_RTOL = 1e-4

HIDDEN_ACTIVATIONS = ("relu", "sigmoid", "tanh", "linear")
HEADS = [("softmax", "cross_entropy"), ("sigmoid", "cross_entropy")] + [
    (act, "quadratic") for act in ("softmax", "sigmoid", "relu", "tanh", "linear")
]

TORCH_DTYPES = {"float64": torch.float64, "float32": torch.float32}


# --------------------------------------------------------------------------- random architectures


def random_model(rng: np.random.Generator) -> dict:
    """One random model spec (may be geometrically invalid; the caller filters with the validator)."""
    c, h, w = int(rng.integers(1, 4)), int(rng.integers(6, 17)), int(rng.integers(6, 17))
    layers: list[dict] = []
    for _ in range(int(rng.integers(1, 4))):
        kh, kw = int(rng.integers(1, 5)), int(rng.integers(1, 5))
        conv = {"type": "conv", "filters": int(rng.integers(1, 6)), "kernel": kh if rng.random() < 0.4 else [kh, kw]}
        if rng.random() < 0.8:
            conv["stride"] = int(rng.integers(1, 3))
        if rng.random() < 0.8:
            conv["padding"] = int(rng.integers(0, 2))
        if rng.random() < 0.9:
            conv["activation"] = str(rng.choice(HIDDEN_ACTIVATIONS))
        layers.append(conv)
        if rng.random() < 0.5:
            pool = {"type": str(rng.choice(["maxpool", "avgpool"])), "size": int(rng.integers(2, 4))}
            if rng.random() < 0.7:
                pool["stride"] = int(rng.integers(1, 4))
            layers.append(pool)
    if rng.random() < 0.3:
        layers.append({"type": "flatten"})
    if rng.random() < 0.3:
        layers.append({"type": "dropout", "rate": float(rng.choice([0.2, 0.5]))})
    if rng.random() < 0.5:
        layers.append(
            {"type": "dense", "units": int(rng.integers(2, 9)), "activation": str(rng.choice(HIDDEN_ACTIVATIONS))}
        )
        if rng.random() < 0.3:
            layers.append({"type": "dropout", "rate": 0.3})
    act, loss = HEADS[int(rng.integers(len(HEADS)))]
    layers.append({"type": "dense", "units": int(rng.integers(2, 6)), "activation": act})
    return {"input_shape": [c, h, w], "layers": layers, "loss": loss}


#: Hand-picked corner cases ahead of the random ones: overlapping (stride-1) max-pools after relu,
#: sigmoid and linear convs, a padded 1×1 conv whose border outputs are all equal to the bias
#: (max-pool ties, resolved to the first tap by both), a pool straight after a pool.
FIXED_MODELS = [
    {
        "input_shape": [2, 9, 8],
        "loss": "cross_entropy",
        "layers": [
            {"type": "conv", "filters": 3, "kernel": [2, 3], "padding": 1, "activation": "relu"},
            {"type": "maxpool", "size": 3, "stride": 1},
            {"type": "conv", "filters": 2, "kernel": 2, "stride": 2, "activation": "tanh"},
            {"type": "maxpool", "size": 2, "stride": 1},
            {"type": "dense", "units": 4, "activation": "softmax"},
        ],
    },
    {
        "input_shape": [1, 11, 10],
        "loss": "cross_entropy",
        "layers": [
            {"type": "conv", "filters": 4, "kernel": 3, "activation": "sigmoid"},
            {"type": "maxpool", "size": 3, "stride": 2},
            {"type": "flatten"},
            {"type": "dropout", "rate": 0.5},
            {"type": "dense", "units": 5, "activation": "tanh"},
            {"type": "dense", "units": 3, "activation": "sigmoid"},
        ],
    },
    {
        "input_shape": [3, 7, 7],
        "loss": "quadratic",
        "layers": [
            {"type": "conv", "filters": 2, "kernel": [1, 4], "stride": 2, "padding": 1, "activation": "linear"},
            {"type": "maxpool", "size": 2, "stride": 1},
            {"type": "avgpool", "size": 2, "stride": 1},
            {"type": "dense", "units": 3, "activation": "relu"},
        ],
    },
    {
        "input_shape": [2, 6, 7],
        "loss": "cross_entropy",
        "layers": [
            {"type": "conv", "filters": 3, "kernel": 1, "padding": 1, "activation": "relu"},
            {"type": "maxpool", "size": 2, "stride": 1},
            {"type": "dense", "units": 3, "activation": "softmax"},
        ],
    },
]


def _make_models(count: int = 30, seed: int = 7) -> tuple[list[dict], int]:
    """The fixed models, then ``count`` valid random models from a seeded generator; and how many
    random candidates the validator rejected."""
    rng = np.random.default_rng(seed)
    models, rejected = list(FIXED_MODELS), 0
    while len(models) < len(FIXED_MODELS) + count:
        model = random_model(rng)
        try:
            validate_model_spec(model)
        except SpecError:
            rejected += 1
            continue
        models.append(model)
    return models, rejected


MODELS, REJECTED = _make_models()


def _mid(model: dict) -> str:
    """A compact test id: input shape, layer types and the head."""
    short = {"conv": "c", "maxpool": "M", "avgpool": "A", "dense": "d", "dropout": "o", "flatten": "f"}
    c, h, w = model["input_shape"]
    head = model["layers"][-1]["activation"][:3] + "-" + model["loss"][:4]
    return f"{c}x{h}x{w}-{''.join(short[layer['type']] for layer in model['layers'])}-{head}"


# --------------------------------------------------------------------------- the PyTorch twin


def _torch_activation(name: str, z: torch.Tensor) -> torch.Tensor:
    """σ(z) in PyTorch for an activation name of the spec (softmax over the units axis)."""
    if name == "relu":
        return torch.relu(z)
    if name == "sigmoid":
        return torch.sigmoid(z)
    if name == "tanh":
        return torch.tanh(z)
    if name == "softmax":
        return torch.softmax(z, dim=1)
    assert name == "linear"
    return z


def build_torch_layers(net: Network) -> list[tuple[dict, nn.Module]]:
    """The PyTorch modules of ``net``'s normalised spec, with the engine's weights copied in unchanged."""
    tdtype = TORCH_DTYPES[net.dtype.name]
    modules = []
    for i, layer in enumerate(net.spec["layers"]):
        kind = layer["type"]
        if kind == "conv":
            wgt = net.params[f"layers.{i}.W"]
            m = nn.Conv2d(
                wgt.shape[1],
                layer["filters"],
                tuple(layer["kernel"]),
                stride=layer["stride"],
                padding=layer["padding"],
                dtype=tdtype,
            )
        elif kind == "dense":
            wgt = net.params[f"layers.{i}.W"]
            m = nn.Linear(wgt.shape[1], layer["units"], dtype=tdtype)
        elif kind == "maxpool":
            m = nn.MaxPool2d(layer["size"], stride=layer["stride"])
        elif kind == "avgpool":
            m = nn.AvgPool2d(layer["size"], stride=layer["stride"])
        elif kind == "dropout":
            m = nn.Dropout(layer["rate"])
        else:
            m = nn.Flatten()
        if kind in ("conv", "dense"):
            with torch.no_grad():
                m.weight.copy_(torch.from_numpy(net.params[f"layers.{i}.W"]))
                m.bias.copy_(torch.from_numpy(net.params[f"layers.{i}.b"]))
        m.eval()  # dropout off, as training=False
        modules.append((layer, m))
    return modules


def torch_forward(modules, x: torch.Tensor):
    """Run the twin. Returns (last activations, last z, the input tensor of every layer with grads retained)."""
    inputs, a, z = [], x, None
    for layer, m in modules:
        if a is not x:
            a.retain_grad()
        inputs.append(a)
        if layer["type"] == "dense":
            z = m(a.reshape(a.shape[0], -1))  # implicit flatten in C, H, W order
            a = _torch_activation(layer["activation"], z)
        elif layer["type"] == "conv":
            a = _torch_activation(layer["activation"], m(a))
        else:
            a = m(a)
    return a, z, inputs


def torch_loss(loss: str, activation: str, z: torch.Tensor, a: torch.Tensor, y: np.ndarray) -> torch.Tensor:
    """job-spec.md's losses in PyTorch: CrossEntropyLoss on z for softmax, Nielsen's summed BCE (mean over
    the batch) for sigmoid, and Nielsen's quadratic ½‖y − a‖² summed over outputs, mean over the batch."""
    n, k = a.shape
    yt = torch.from_numpy(y)
    onehot = F.one_hot(yt, k).to(a.dtype)
    if loss == "cross_entropy" and activation == "softmax":
        return F.cross_entropy(z, yt)
    if loss == "cross_entropy" and activation == "sigmoid":
        return F.binary_cross_entropy_with_logits(z, onehot, reduction="sum") / n
    assert loss == "quadratic"
    return 0.5 * ((a - onehot) ** 2).sum() / n


def _prepare(model: dict, seed: int, dtype: str, batch: int = 3):
    """Engine net (with random non-zero biases, so they are tested too), input batch and labels."""
    net = Network.from_spec(model, seed=seed, dtype=dtype)
    rng = np.random.default_rng(1000 + seed)
    for key, arr in net.params.items():
        if key.endswith(".b"):
            arr[...] = rng.uniform(-0.3, 0.3, arr.shape)
    x = rng.standard_normal((batch, *model["input_shape"])).astype(dtype)
    y = rng.integers(0, model["layers"][-1]["units"], batch)
    return net, x, y


def compare_with_torch(model: dict, seed: int, dtype: str, fwd_tol: float, grad_tol: float) -> None:
    """Assert the engine and its PyTorch twin agree on outputs, loss, parameter and input gradients."""
    net, x, y = _prepare(model, seed, dtype)
    modules = build_torch_layers(net)
    xt = torch.tensor(x, requires_grad=True)
    a, z, inputs = torch_forward(modules, xt)
    last = net.spec["layers"][-1]
    loss_t = torch_loss(net.loss, last["activation"], z, a, y)
    loss_t.backward()

    out = net.forward(x, training=False)
    assert out.dtype == np.dtype(dtype)
    assert out.shape == tuple(a.shape)
    assert rel_err(out, a.detach().numpy()) <= fwd_tol

    loss, grads, input_grads = net.loss_and_all_gradients(x, y)
    assert net.loss_and_gradients(x, y, training=False)[0] == loss
    assert isinstance(loss, float)
    assert abs(loss - loss_t.item()) <= fwd_tol * max(abs(loss), abs(loss_t.item()), 1e-300), (loss, loss_t.item())

    assert set(grads) == set(net.params)
    for i, (layer, m) in enumerate(modules):
        if layer["type"] in ("conv", "dense"):
            for name, tp in (("W", m.weight), ("b", m.bias)):
                g = grads[f"layers.{i}.{name}"]
                assert g.shape == net.params[f"layers.{i}.{name}"].shape
                err = rel_err(g, tp.grad.numpy())
                assert err <= grad_tol, f"layers.{i}.{name}: relative error {err:.3g}"

    assert set(input_grads) == set(range(len(modules)))
    np.testing.assert_equal(input_grads[0].shape, x.shape)
    for i, t_in in enumerate(inputs):
        err = rel_err(input_grads[i], t_in.grad.numpy())
        assert err <= grad_tol, f"input of layer {i} ({modules[i][0]['type']}): relative error {err:.3g}"


# --------------------------------------------------------------------------- tests


def test_generated_models_cover_every_feature():
    """The seeded generator yields ≥ 25 valid random models (plus the fixed ones).

    They cover every layer type, head, overlap and flooring.
    """
    assert len(MODELS) - len(FIXED_MODELS) >= 25
    types = {layer["type"] for m in MODELS for layer in m["layers"]}
    assert types == {"conv", "maxpool", "avgpool", "dense", "dropout", "flatten"}
    assert {(m["layers"][-1]["activation"], m["loss"]) for m in MODELS} >= {
        ("softmax", "cross_entropy"),
        ("sigmoid", "cross_entropy"),
        ("softmax", "quadratic"),
    }
    assert any(m["loss"] == "quadratic" and m["layers"][-1]["activation"] not in ("softmax", "sigmoid") for m in MODELS)
    norm = [validate_model_spec(m) for m in MODELS]
    pools = [layer for m in norm for layer in m["layers"] if layer["type"] in ("maxpool", "avgpool")]
    # overlapping windows
    assert any(layer["stride"] < layer["size"] for layer in pools if layer["type"] == "maxpool")
    assert any(layer["stride"] < layer["size"] for layer in pools if layer["type"] == "avgpool")
    convs = [layer for m in norm for layer in m["layers"] if layer["type"] == "conv"]
    assert any(layer["kernel"][0] != layer["kernel"][1] for layer in convs)
    assert {layer["stride"] for layer in convs} == {1, 2} and {layer["padding"] for layer in convs} == {0, 1}
    assert {layer["activation"] for layer in convs} == set(HIDDEN_ACTIVATIONS)
    assert REJECTED > 0  # the generator does reach the geometric limits the validator enforces


@pytest.mark.parametrize("index", range(len(MODELS)), ids=[f"{i}-{_mid(m)}" for i, m in enumerate(MODELS)])
def test_network_matches_torch_float64(index):
    """Random architecture, float64: outputs and loss to 1e-9, every parameter and input gradient to 1e-7."""
    compare_with_torch(MODELS[index], seed=index, dtype="float64", fwd_tol=FORWARD_RTOL, grad_tol=GRAD_RTOL)


@pytest.mark.parametrize("index", [0, 1, 9, 15, 21, 27], ids=lambda i: f"{i}-{_mid(MODELS[i])}")
def test_network_matches_torch_float32(index):
    """The same comparison in float32 against PyTorch in float32, to 1e-4."""
    compare_with_torch(MODELS[index], seed=index, dtype="float32", fwd_tol=FLOAT32_RTOL, grad_tol=FLOAT32_RTOL)


LENET = example("lenet-mnist")["model"]  # docs/reference/job-spec.md's example model


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_lenet_params_layout(dtype):
    """LeNet (examples/lenet-mnist.json): net.params keys and shapes as weights.md says, softmax rows."""
    net = Network.from_spec(LENET, seed=0, dtype=dtype)
    expected = {
        "layers.0.W": (20, 1, 5, 5),
        "layers.0.b": (20,),
        "layers.2.W": (40, 20, 5, 5),
        "layers.2.b": (40,),
        "layers.4.W": (100, 40 * 4 * 4),
        "layers.4.b": (100,),
        "layers.6.W": (10, 100),
        "layers.6.b": (10,),
    }
    assert {k: v.shape for k, v in net.params.items()} == expected
    assert all(v.dtype == np.dtype(dtype) for v in net.params.values())
    assert net.parameter_count == sum(int(np.prod(s)) for s in expected.values()) == 85670
    x = np.random.default_rng(0).uniform(0, 1, (2, 1, 28, 28))
    out = net.forward(x, training=False)
    assert out.shape == (2, 10) and out.dtype == np.dtype(dtype)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)
    loss, grads = net.loss_and_gradients(x, np.array([3, 7]), training=False)
    assert {k: v.shape for k, v in grads.items()} == expected


def test_lenet_matches_torch():
    """LeNet (examples/lenet-mnist.json) in float64 agrees with the same model in PyTorch (dropout off)."""
    compare_with_torch(LENET, seed=3, dtype="float64", fwd_tol=FORWARD_RTOL, grad_tol=GRAD_RTOL)


FUSABLE = [i for i, m in enumerate(MODELS) if Network.from_spec(m).relu_under_pool]


def test_some_generated_models_have_a_relu_under_a_max_pool():
    assert len(FUSABLE) >= 3


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("quantized", [False, True], ids=["continuous", "ties"])
@pytest.mark.parametrize("index", FUSABLE, ids=lambda i: f"{i}-{_mid(MODELS[i])}")
def test_relu_after_the_pool_gives_the_same_numbers(index, quantized, dtype):
    """A conv's ReLU applied after the max-pool above it (``fuse``): the same output, loss and parameter
    gradients, bit for bit, as the layers one by one.  "ties": inputs and weights on a coarse grid, so
    windows tie and many maxima are exactly zero or negative (where the winner differs but the
    gradient is zero either way)."""
    net, x, y = _prepare(MODELS[index], seed=index, dtype=dtype, batch=5)
    if quantized:
        x = np.round(x)
        for arr in net.params.values():
            arr[...] = np.round(arr * 4) / 4
    for training in (False, True):
        outputs, results = [], []
        for fuse in (False, True):
            for layer in net.layers:  # the same dropout masks in both passes
                if isinstance(layer, Dropout):
                    layer.rng = np.random.default_rng(9)
            out, caches = net.forward_cached(x, training, fuse=fuse)
            loss, delta = net.loss_and_delta(out, y, caches)
            grads, _ = net.backward(delta, caches)
            outputs.append(out)
            results.append((loss, grads))
        np.testing.assert_array_equal(outputs[0], outputs[1])
        (loss, grads), (fused_loss, fused_grads) = results
        assert fused_loss == loss
        assert fused_grads.keys() == grads.keys()
        for key, g in grads.items():
            np.testing.assert_array_equal(fused_grads[key], g, err_msg=key)


def test_a_fused_pass_cannot_be_observed():
    net = Network.from_spec(LENET)
    with pytest.raises(ValueError, match="observe"):
        net.forward_cached(np.zeros((1, 1, 28, 28)), observe=object(), fuse=True)
