"""convlab's engine: a pure-NumPy CNN whose backpropagation reads like its derivation.

Public API (docs/reference/engine-api.md)::

    from engine import Network, gradcheck
    net = Network.from_spec(model_spec, seed=0, dtype="float64")
"""
from .gradcheck import gradcheck
from .network import Network
from .spec import Limits, SpecError, validate_job_spec, validate_model_spec

__all__ = ["Network", "gradcheck", "Limits", "SpecError", "validate_job_spec", "validate_model_spec"]
