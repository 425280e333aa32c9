"""Response schemas of the API, defined once: the OpenAPI document embeds them and the
code that builds responses takes its field lists from them (``job_json``, ``error_json``...).

The request schema of a job spec is not here: it is ``engine.spec.job_spec_schema``.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from engine.spec import JOB_TYPES, Limits, job_spec_schema
from store import STATUSES


def ref(name: str) -> dict[str, str]:
    """A JSON reference to the component schema ``name``."""
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(properties: dict, required: Iterable[str] | None = None, extra: bool = False, **kw: Any) -> dict:
    """An object schema; every property is required unless ``required`` says otherwise."""
    return {"type": "object", "properties": properties,
            "required": list(properties if required is None else required),
            "additionalProperties": extra, **kw}


_STR = {"type": "string"}
_INT = {"type": "integer"}
_NUM = {"type": "number"}
_TIME = {"type": "string", "format": "date-time"}
_TIME_OR_NULL = {"type": ["string", "null"], "format": "date-time"}

ERROR = _obj({"error": _obj({
    "code": {"type": "string", "description": "machine-readable, e.g. invalid_spec, not_found"},
    "message": _STR,
    "details": {"type": "array", "items": _obj({
        "path": {"type": "string", "description": "field path, e.g. model.layers[2].kernel or query.limit"},
        "message": _STR})},
})}, description="Every error of /api/v1 has this shape.")

TRAIN_RESULT = _obj({
    "test_accuracy": _NUM, "test_loss": _NUM, "val_accuracy": _NUM, "epochs_completed": _INT,
    "train_seconds": _NUM, "parameter_count": _INT,
    "confusion_matrix": {"type": "array", "items": {"type": "array", "items": _INT}},
}, required=[], extra=True, description="result of a succeeded train job (docs/reference/results.md)")

GRADCHECK_RESULT = _obj({
    "passed": {"type": "boolean"}, "max_relative_error": _NUM, "rotate_kernels": {"type": "boolean"},
    "layers": {"type": "array", "items": _obj({
        "layer": _INT, "param": {"enum": ["W", "b", "input"]}, "max_relative_error": _NUM,
        "worst_index": {"type": "array", "items": _INT}}, extra=True)},
}, required=[], extra=True, description="result of a gradcheck job (docs/reference/results.md)")

JOB = _obj({
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
    "environment": {"type": "object", "description": "where it ran (docs/trust.md): convlab, python, numpy, "
                    "blas, blas_threads, cpu, cpu_flags, machine, worker"},
    "triage": {"type": "object", "description": "a diverged run's report: step, epoch, layer, phase, history, "
               "gradcheck, hint (docs/trust.md)"},
    "reproduces": {"type": "string", "description": "the id of the job this one reproduces"},
    "certificate": {"type": "object", "description": "a reproduction's verdict (bitwise, within_tolerance, "
                    "diverged) once both runs are terminal (docs/trust.md)"},
}, required=["id", "type", "name", "tags", "status", "spec", "result", "error", "attempts", "progress",
             "created_at", "started_at", "finished_at", "user", "cancel_requested"])

JOB_LIST = _obj({"jobs": {"type": "array", "items": ref("Job")},
                 "total": {"type": "integer", "description": "jobs matching the filters, all pages"}})

METRICS = _obj({"series": {"type": "object", "additionalProperties": {
    "type": "array", "description": "[step, value] in step order; value null if it was not finite",
    "items": {"type": "array", "prefixItems": [_INT, {"type": ["number", "null"]}], "items": False,
              "minItems": 2}}},
    "nonfinite": {"type": "object", "description": "every non-finite point of the series asked for, with its kind",
                  "additionalProperties": {"type": "array", "items": {
                      "type": "array", "prefixItems": [_INT, {"enum": ["nan", "inf", "-inf"]}], "items": False,
                      "minItems": 2}}}}, required=["series"])

DATASET = _obj({
    "id": _STR, "name": _STR, "samples": _INT,
    "shape": {"type": "array", "items": _INT, "minItems": 3, "maxItems": 3, "description": "[C, H, W]"},
    "classes": _INT, "size_bytes": _INT, "created_at": _TIME, "user": _STR,
})

DATASET_LIST = _obj({"datasets": {"type": "array", "items": ref("Dataset")}})

WORKERS = _obj({"workers": {"type": "array", "items": _obj({
    "name": _STR, "heartbeat_age_s": _NUM, "job_id": {"type": ["string", "null"]}})}})

HEALTH = _obj({"status": {"enum": ["ok", "unavailable"]}, "database": {"enum": ["ok", "unavailable"]}})

UPLOAD = _obj({"file": {"type": "string", "contentMediaType": "application/octet-stream",
                        "description": ".npz with arrays X (N,H,W) or (N,C,H,W) and y (N,)"},
               "name": {"type": "string", "maxLength": 200}}, required=["file"])

PREDICT_REQUEST = _obj({"inputs": {
    "type": "array", "minItems": 1,
    "description": "at most CONVLAB_MAX_PREDICT_BATCH inputs (more: 413); docs/predictions.md",
    "items": {"oneOf": [
        {"type": "array", "description": "C × H × W numbers in [0, 1], scaled as the job's dataset",
         "items": {"type": "array", "items": {"type": "array", "items": {"type": "number", "minimum": 0,
                                                                          "maximum": 1}}}},
        {"type": "string", "contentEncoding": "base64", "contentMediaType": "image/png",
         "description": "an 8-bit PNG (grey, RGB, RGBA, palette; not interlaced), optionally as a "
                        "data:image/png;base64, URL: scaled pixel / 255, alpha onto black, converted to the "
                        "model's channels and area-resized to its H × W"}]}}})

PREDICTION = _obj({
    "predictions": {"type": "array", "items": _INT, "description": "argmax of each row of probabilities"},
    "probabilities": {"type": "array", "items": {"type": "array", "items": {"type": ["number", "null"]}},
                      "description": "the output layer's activations (softmax: probabilities summing to 1), "
                                     "one row per input, computed in the job's dtype; null if not finite"}})


def component_schemas(limits: Limits) -> dict[str, dict]:
    """Every named schema of the OpenAPI document (the job spec from the engine, for ``limits``)."""
    return {"JobSpec": job_spec_schema(limits), "Job": JOB, "JobList": JOB_LIST, "Error": ERROR,
            "TrainResult": TRAIN_RESULT, "GradcheckResult": GRADCHECK_RESULT, "Metrics": METRICS,
            "Dataset": DATASET, "DatasetList": DATASET_LIST, "Workers": WORKERS, "Health": HEALTH,
            "DatasetUpload": UPLOAD, "PredictRequest": PREDICT_REQUEST, "Prediction": PREDICTION}


def _project(schema: dict, row: dict[str, Any]) -> dict[str, Any]:
    """The schema's fields of ``row``, in schema order (a required field missing is a bug: KeyError)."""
    out = {key: row[key] for key in schema["required"]}
    out.update((k, row[k]) for k in schema["properties"] if k not in out and row.get(k) is not None)
    return out


def job_json(job: dict[str, Any], queue_position: int | None = None) -> dict[str, Any]:
    """A store job as the API shows it: :data:`JOB`'s fields, ``queue_position`` while queued."""
    return _project(JOB, {**job, "queue_position": queue_position})


def dataset_json(dataset: dict[str, Any]) -> dict[str, Any]:
    """A store dataset as the API shows it (:data:`DATASET`'s fields)."""
    return _project(DATASET, dataset)


def error_json(code: str, message: str, details: Iterable[dict] = ()) -> dict[str, Any]:
    """The one error body of the API (:data:`ERROR`)."""
    details = [{"path": str(d["path"]), "message": str(d["message"])} for d in details]
    return {"error": _project(ERROR["properties"]["error"], {"code": code, "message": message, "details": details})}
