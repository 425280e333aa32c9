"""Response schemas of the API, defined once: the OpenAPI document embeds them and the
code that builds responses takes its field lists from them (``job_json``, ``error_json``...).

The request schema of a job spec is not here: it is ``engine.spec.job_spec_schema``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from convlab.names import STUDY_STATUSES
from engine.spec import JOB_TYPES, Limits, job_spec_schema
from store import STATUSES


def ref(name: str) -> dict[str, str]:
    """A JSON reference to the component schema ``name``."""
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(properties: dict, required: Iterable[str] | None = None, extra: bool = False, **kw: Any) -> dict:
    """An object schema; every property is required unless ``required`` says otherwise."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties if required is None else required),
        "additionalProperties": extra,
        **kw,
    }


_STR = {"type": "string"}
_INT = {"type": "integer"}
_NUM = {"type": "number"}
_TIME = {"type": "string", "format": "date-time"}
_TIME_OR_NULL = {"type": ["string", "null"], "format": "date-time"}

ERROR = _obj(
    {
        "error": _obj(
            {
                "code": {"type": "string", "description": "machine-readable, e.g. invalid_spec, not_found"},
                "message": _STR,
                "details": {
                    "type": "array",
                    "items": _obj(
                        {
                            "path": {
                                "type": "string",
                                "description": "field path, e.g. model.layers[2].kernel or query.limit",
                            },
                            "message": _STR,
                        }
                    ),
                },
            }
        )
    },
    description="Every error of /api/v1 has this shape.",
)

TRAIN_RESULT = _obj(
    {
        "test_accuracy": _NUM,
        "test_loss": _NUM,
        "val_accuracy": _NUM,
        "epochs_completed": _INT,
        "train_seconds": _NUM,
        "parameter_count": _INT,
        "confusion_matrix": {"type": "array", "items": {"type": "array", "items": _INT}},
    },
    required=[],
    extra=True,
    description="result of a succeeded train job (docs/reference/results.md)",
)

GRADCHECK_RESULT = _obj(
    {
        "passed": {"type": "boolean"},
        "max_relative_error": _NUM,
        "rotate_kernels": {"type": "boolean"},
        "layers": {
            "type": "array",
            "items": _obj(
                {
                    "layer": _INT,
                    "param": {"enum": ["W", "b", "input"]},
                    "max_relative_error": _NUM,
                    "worst_index": {"type": "array", "items": _INT},
                },
                extra=True,
            ),
        },
    },
    required=[],
    extra=True,
    description="result of a gradcheck job (docs/reference/results.md)",
)

JOB = _obj(
    {
        "id": _STR,
        "type": {"enum": list(JOB_TYPES)},
        "name": _STR,
        "tags": {"type": "array", "items": _STR},
        "status": {"enum": list(STATUSES)},
        "spec": ref("JobSpec"),
        "result": {"anyOf": [ref("TrainResult"), ref("GradcheckResult"), {"type": "null"}]},
        "error": {"type": ["string", "null"]},
        "attempts": {"type": "integer", "minimum": 0},
        "progress": _obj({"epoch": _INT, "step": _INT, "total_steps": _INT}),
        "created_at": _TIME,
        "started_at": _TIME_OR_NULL,
        "finished_at": _TIME_OR_NULL,
        "user": {"type": "string", "description": "owner's name"},
        "cancel_requested": {"type": "boolean"},
        "queue_position": {"type": "integer", "minimum": 1, "description": "only while queued; 1 = next"},
        "study_id": {"type": "string", "description": "a study's trial only: its study"},
        "trial_number": {"type": "integer", "minimum": 0, "description": "a study's trial only: its number"},
        "params": {"type": "object", "description": "a study's trial only: the values its space gave it, by path"},
        "queue_eta_s": {
            "type": "number",
            "minimum": 0,
            "description": "only while queued, when there is a basis: estimated seconds until it starts",
        },
        "environment": {
            "type": "object",
            "description": "where it ran (docs/trust.md): convlab, python, numpy, "
            "blas, blas_threads, cpu, cpu_flags, machine, worker",
        },
        "triage": {
            "type": "object",
            "description": "a diverged run's report: step, epoch, layer, phase, history, "
            "gradcheck, hint (docs/trust.md)",
        },
        "reproduces": {"type": "string", "description": "the id of the job this one reproduces"},
        "certificate": {
            "type": "object",
            "description": "a reproduction's verdict (bitwise, within_tolerance, "
            "diverged) once both runs are terminal (docs/trust.md)",
        },
    },
    required=[
        "id",
        "type",
        "name",
        "tags",
        "status",
        "spec",
        "result",
        "error",
        "attempts",
        "progress",
        "created_at",
        "started_at",
        "finished_at",
        "user",
        "cancel_requested",
    ],
)

JOB_LIST = _obj(
    {
        "jobs": {"type": "array", "items": ref("Job")},
        "total": {"type": "integer", "description": "jobs matching the filters, all pages"},
    }
)

METRICS = _obj(
    {
        "series": {
            "type": "object",
            "additionalProperties": {
                "type": "array",
                "description": "[step, value] in step order; value null if it was not finite",
                "items": {
                    "type": "array",
                    "prefixItems": [_INT, {"type": ["number", "null"]}],
                    "items": False,
                    "minItems": 2,
                },
            },
        },
        "nonfinite": {
            "type": "object",
            "description": "every non-finite point of the series asked for, with its kind",
            "additionalProperties": {
                "type": "array",
                "items": {
                    "type": "array",
                    "prefixItems": [_INT, {"enum": ["nan", "inf", "-inf"]}],
                    "items": False,
                    "minItems": 2,
                },
            },
        },
    },
    required=["series"],
)

DATASET = _obj(
    {
        "id": _STR,
        "name": _STR,
        "samples": _INT,
        "shape": {"type": "array", "items": _INT, "minItems": 3, "maxItems": 3, "description": "[C, H, W]"},
        "classes": _INT,
        "size_bytes": _INT,
        "created_at": _TIME,
        "user": _STR,
    }
)

DATASET_LIST = _obj({"datasets": {"type": "array", "items": ref("Dataset")}})

WORKERS = _obj(
    {
        "workers": {
            "type": "array",
            "items": _obj(
                {
                    "name": _STR,
                    "heartbeat_age_s": _NUM,
                    "busy": {"type": "boolean"},
                    "job_id": {
                        "type": ["string", "null"],
                        "description": "null when idle, or (non-admins) another user's job",
                    },
                }
            ),
        }
    }
)

TOKEN = _obj(
    {
        "id": _INT,
        "user": _STR,
        "prefix": {"type": "string", "description": "the token's first characters"},
        "label": {"type": ["string", "null"]},
        "state": {"enum": ["active", "expired", "revoked"]},
        "created_at": _TIME,
        "last_used_at": _TIME_OR_NULL,
        "expires_at": _TIME_OR_NULL,
        "revoked_at": _TIME_OR_NULL,
    },
    description="an API token (never the token itself)",
)
TOKEN_LIST = _obj({"tokens": {"type": "array", "items": ref("Token")}})
TOKEN_ONE = _obj({"token": ref("Token")})

_LIMIT_VALUES = {
    "max_running": {"type": ["integer", "null"], "minimum": 0, "description": "jobs running at once"},
    "max_queued": {"type": ["integer", "null"], "minimum": 0, "description": "jobs queued at once"},
    "max_compute": {
        "type": ["number", "null"],
        "minimum": 0,
        "description": "estimated floating-point operations of one job",
    },
    "max_storage": {
        "type": ["integer", "null"],
        "minimum": 0,
        "description": "bytes of artifacts, datasets and metric points",
    },
}
LIMITS = _obj(_LIMIT_VALUES, description="per-user limits; null: no limit")

USER_LIMITS = _obj(
    {
        "user": _STR,
        "overrides": _obj(_LIMIT_VALUES, description="set by an admin; null: the deployment's default"),
        "effective": ref("Limits"),
    }
)

LIMITS_UPDATE = _obj(
    _LIMIT_VALUES,
    required=[],
    description="the fields to set (null: back to the deployment's default); others are kept",
)

USER_ME = _obj(
    {
        "name": _STR,
        "is_admin": {"type": "boolean"},
        "limits": ref("Limits"),
        "usage": _obj(
            {
                "running": _INT,
                "queued": _INT,
                "storage_bytes": _obj(
                    {
                        "artifacts": _INT,
                        "datasets": _INT,
                        "metric_points": {"type": "integer", "description": "an estimate: points × 64 bytes"},
                        "total": _INT,
                    }
                ),
            }
        ),
    }
)

HEALTH = _obj({"status": {"enum": ["ok", "unavailable"]}, "database": {"enum": ["ok", "unavailable"]}})

UPLOAD = _obj(
    {
        "file": {
            "type": "string",
            "contentMediaType": "application/octet-stream",
            "description": ".npz with arrays X (N,H,W) or (N,C,H,W) and y (N,)",
        },
        "name": {"type": "string", "maxLength": 200},
    },
    required=["file"],
)

PREDICT_REQUEST = _obj(
    {
        "inputs": {
            "type": "array",
            "minItems": 1,
            "description": "at most CONVLAB_MAX_PREDICT_BATCH inputs (more: 413); docs/predictions.md",
            "items": {
                "oneOf": [
                    {
                        "type": "array",
                        "description": "C × H × W numbers in [0, 1], scaled as the job's dataset",
                        "items": {
                            "type": "array",
                            "items": {"type": "array", "items": {"type": "number", "minimum": 0, "maximum": 1}},
                        },
                    },
                    {
                        "type": "string",
                        "contentEncoding": "base64",
                        "contentMediaType": "image/png",
                        "description": "an 8-bit PNG (grey, RGB, RGBA, palette; not interlaced), optionally as a "
                        "data:image/png;base64, URL: scaled pixel / 255, alpha onto black, converted to the "
                        "model's channels and area-resized to its H × W",
                    },
                ]
            },
        }
    }
)

PREDICTION = _obj(
    {
        "predictions": {"type": "array", "items": _INT, "description": "argmax of each row of probabilities"},
        "probabilities": {
            "type": "array",
            "items": {"type": "array", "items": {"type": ["number", "null"]}},
            "description": "the output layer's activations (softmax: probabilities summing to 1), "
            "one row per input, computed in the job's dtype; null if not finite",
        },
    }
)

_DETAIL = _obj({"path": _STR, "message": _STR})
_COUNT_OR_NULL = {"type": ["integer", "null"], "minimum": 0}
MODEL_SUMMARY = _obj(
    {
        "valid": {"type": "boolean", "description": "POST /jobs would accept this spec"},
        "errors": {"type": "array", "items": _DETAIL, "description": "the validation's problems, as a 422 lists them"},
        "input_shape": {"type": ["array", "null"], "items": _INT, "description": "[C, H, W]; null if unreadable"},
        "batch_size": {
            "type": ["integer", "null"],
            "description": "train.batch_size or gradcheck.batch_size; null if invalid (memory is then per sample)",
        },
        "dtype": {"enum": ["float32", "float64"]},
        "layers": {
            "type": "array",
            "items": _obj(
                {
                    "index": _INT,
                    "path": _STR,
                    "type": {"type": ["string", "null"]},
                    "layer": {"type": ["object", "null"], "description": "the normalised layer; null if invalid"},
                    "output_shape": {"type": ["array", "null"], "items": _INT},
                    "parameters": _COUNT_OR_NULL,
                    "multiply_adds": {**_COUNT_OR_NULL, "description": "forward pass, per sample"},
                    "memory_bytes": {**_COUNT_OR_NULL, "description": "activations and im2col buffers of one batch"},
                    "errors": {"type": "array", "items": _DETAIL, "description": "the errors about this layer"},
                }
            ),
        },
        "totals": _obj(
            {
                "parameters": _INT,
                "multiply_adds": _INT,
                "memory_bytes": {
                    "type": "integer",
                    "description": "the layers' plus 4 copies of the parameters: the batch-memory estimate",
                },
                "complete": {"type": "boolean", "description": "every layer could be summed"},
            }
        ),
        "limits": {"type": "object", "additionalProperties": _INT},
    },
    description="docs/reference/http-api.md#model-summary",
)

_NUM_OR_NULL = {"type": ["number", "null"]}

TRIAL = _obj(
    {
        "job_id": _STR,
        "number": _INT,
        "params": {"type": "object", "description": "field path -> value"},
        "seed": {"type": ["integer", "null"], "description": "the trial's train.seed"},
        "status": {"enum": list(STATUSES)},
        "value": {
            "type": ["number", "null"],
            "description": "last value of the objective series (null: none yet, or not finite)",
        },
        "epochs_completed": _INT,
        "error": {"type": ["string", "null"]},
        "started_at": _TIME_OR_NULL,
        "finished_at": _TIME_OR_NULL,
    }
)

TRIAL_LIST = _obj({"trials": {"type": "array", "items": ref("Trial")}})

STUDY_BEST = _obj(
    {
        "job_id": {"type": "string", "description": "the best configuration's best seed"},
        "params": {"type": "object"},
        "value": {"type": "number", "description": "mean over the seeds"},
        "std": {"type": "number", "description": "sample standard deviation over the seeds (0 for one seed)"},
        "seeds": _INT,
        "configuration": _INT,
    }
)

CONFIGURATION = _obj(
    {
        "index": _INT,
        "params": {"type": "object"},
        "job_ids": {"type": "array", "items": _STR},
        "statuses": {"type": "array", "items": {"enum": list(STATUSES)}},
        "complete": {"type": "boolean", "description": "every seed succeeded with a finite objective"},
        "mean": _NUM_OR_NULL,
        "std": _NUM_OR_NULL,
    }
)

STUDY = _obj(
    {
        "id": _STR,
        "name": _STR,
        "status": {"enum": list(STUDY_STATUSES)},
        "spec": {"type": "object", "description": "the study spec, normalised (docs/reference/studies.md)"},
        "counts": {"type": "object", "additionalProperties": _INT, "description": "trials by status"},
        "best": {"anyOf": [ref("StudyBest"), {"type": "null"}]},
        "configurations": {"type": "array", "items": ref("Configuration")},
        "trials": {"type": "array", "items": ref("Trial")},
        "created_at": _TIME,
        "finished_at": _TIME_OR_NULL,
        "user": _STR,
    },
    required=["id", "name", "status", "spec", "counts", "best", "created_at", "finished_at", "user"],
)

STUDY_LIST = _obj({"studies": {"type": "array", "items": ref("Study")}, "total": _INT})

STUDY_REQUEST = {
    "type": "object",
    "required": ["base", "space"],
    "description": "a study spec (docs/reference/studies.md); every trial spec it can make is validated",
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 150},
        "base": ref("JobSpec"),
        "space": {
            "type": "object",
            "minProperties": 1,
            "description": "field path -> distribution",
            "additionalProperties": {
                "type": "object",
                "required": ["type"],
                "properties": {
                    "type": {"enum": ["choice", "uniform", "log_uniform", "int_uniform"]},
                    "values": {"type": "array"},
                    "low": _NUM,
                    "high": _NUM,
                },
            },
        },
        "algorithm": {"enum": ["grid", "random", "tpe"], "default": "random"},
        "objective": {
            "type": "object",
            "properties": {
                "metric": {"enum": ["val_accuracy", "val_loss"]},
                "direction": {"enum": ["maximize", "minimize"]},
            },
        },
        "max_trials": {"type": "integer", "minimum": 1, "description": "configurations (jobs: x seeds)"},
        "max_concurrent": {"type": "integer", "minimum": 1, "description": "default: live workers"},
        "seeds": {"type": "integer", "minimum": 1, "default": 1},
        "seed": {"type": "integer", "minimum": 0, "default": 0, "description": "the sampler's seed"},
        "pruner": {"type": "object", "properties": {"type": {"enum": ["none", "median", "asha"]}}},
    },
}


def study_json(study: dict[str, Any]) -> dict[str, Any]:
    """A study as the API shows it (:data:`STUDY`'s fields)."""
    return _project(STUDY, study)


def trial_json(trial: dict[str, Any]) -> dict[str, Any]:
    """A study's trial as the API shows it (:data:`TRIAL`'s fields)."""
    return _project(TRIAL, trial)


def component_schemas(limits: Limits) -> dict[str, dict]:
    """Every named schema of the OpenAPI document (the job spec from the engine, for ``limits``)."""
    return {
        "JobSpec": job_spec_schema(limits),
        "Job": JOB,
        "JobList": JOB_LIST,
        "Error": ERROR,
        "TrainResult": TRAIN_RESULT,
        "GradcheckResult": GRADCHECK_RESULT,
        "Metrics": METRICS,
        "Dataset": DATASET,
        "DatasetList": DATASET_LIST,
        "Workers": WORKERS,
        "Health": HEALTH,
        "Token": TOKEN,
        "TokenList": TOKEN_LIST,
        "TokenRevoked": TOKEN_ONE,
        "DatasetUpload": UPLOAD,
        "PredictRequest": PREDICT_REQUEST,
        "Prediction": PREDICTION,
        "Study": STUDY,
        "StudyList": STUDY_LIST,
        "StudyBest": STUDY_BEST,
        "Configuration": CONFIGURATION,
        "Trial": TRIAL,
        "TrialList": TRIAL_LIST,
        "StudyRequest": STUDY_REQUEST,
        "ModelSummary": MODEL_SUMMARY,
        "Limits": LIMITS,
        "UserLimits": USER_LIMITS,
        "LimitsUpdate": LIMITS_UPDATE,
        "UserMe": USER_ME,
    }


def _project(schema: dict, row: dict[str, Any]) -> dict[str, Any]:
    """The schema's fields of ``row``, in schema order (a required field missing is a bug: KeyError)."""
    out = {key: row[key] for key in schema["required"]}
    out.update((k, row[k]) for k in schema["properties"] if k not in out and row.get(k) is not None)
    return out


def job_json(
    job: dict[str, Any], queue_position: int | None = None, queue_eta_s: float | None = None
) -> dict[str, Any]:
    """A store job as the API shows it: :data:`JOB`'s fields, ``queue_position`` (and ``queue_eta_s``) while queued."""
    return _project(JOB, {**job, "queue_position": queue_position, "queue_eta_s": queue_eta_s})


def dataset_json(dataset: dict[str, Any]) -> dict[str, Any]:
    """A store dataset as the API shows it (:data:`DATASET`'s fields)."""
    return _project(DATASET, dataset)


def error_json(code: str, message: str, details: Iterable[dict] = ()) -> dict[str, Any]:
    """The one error body of the API (:data:`ERROR`)."""
    details = [{"path": str(d["path"]), "message": str(d["message"])} for d in details]
    return {"error": _project(ERROR["properties"]["error"], {"code": code, "message": message, "details": details})}
