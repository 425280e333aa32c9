"""The engine's vocabulary and defaults: one home for each, free of NumPy.

The names a job spec may use (layer types, activations, losses, optimizers,
dtypes) and the default of every optional numeric setting live here, and
only here.  The spec contract (:mod:`engine.spec`) publishes them in its
JSON Schema and fills them in when it normalises a spec; the optimizers,
the network and the gradient check read the same values when they are
called directly.  Importing this module imports nothing but the standard
library, so the API process can read it without the numeric stack.
"""

from __future__ import annotations

JOB_TYPES = ("train", "gradcheck")
LAYER_TYPES = ("conv", "maxpool", "avgpool", "dense", "dropout", "flatten")
ACTIVATIONS = ("relu", "sigmoid", "tanh", "softmax", "linear")
LOSSES = ("cross_entropy", "quadratic")
OPTIMIZERS = ("sgd", "adam")

#: Floating-point types a network computes in, with their sizes in bytes (NumPy's names).
ITEMSIZE = {"float32": 4, "float64": 8}
DTYPES = tuple(ITEMSIZE)
DEFAULT_DTYPE = "float32"
#: The gradient check always runs in float64: float32 rounding would swamp a centred difference.
GRADCHECK_DTYPE = "float64"

SGD_DEFAULTS = {"momentum": 0.0}
ADAM_DEFAULTS = {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8}
TRAIN_DEFAULTS = {"seed": 0, "dtype": DEFAULT_DTYPE, "weight_decay": 0.0}
DATA_DEFAULTS = {"test_fraction": 0.2, "validation_fraction": 0.1}
GRADCHECK_DEFAULTS = {"batch_size": 2, "eps": 1e-6, "seed": 0, "rotate_kernels": True}
