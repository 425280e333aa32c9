"""The OpenAPI 3.1 document, generated from the app's URL map and the schemas defined once
(``service.schemas``; the job spec: ``engine.spec.job_spec_schema``).

Every ``/api/v1`` route appears (plus ``/healthz`` and ``/metrics``); its
description is the view's docstring, its request and responses come from
:data:`OPERATIONS`.
"""

from __future__ import annotations

import importlib.resources
import inspect
import json
import re
from importlib import metadata

from flask import Flask
from werkzeug.routing import IntegerConverter

from engine.spec import JOB_TYPES
from store import STATUSES

from . import idempotency, jobs_api, studies_api
from .extension import API_PREFIX, EXTENSION_KEY
from .schemas import component_schemas, ref

EXAMPLES = importlib.resources.files("convlab") / "examples"  # the dashboard's templates: valid specs
OUTSIDE_PREFIX = ("/healthz", "/metrics")  # documented routes outside /api/v1
_CONVERTER = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


def _json(description: str, schema: dict) -> dict:
    """A JSON response."""
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict:
    """An error response (the one error shape)."""
    return _json(description, ref("Error"))


def _query(name: str, schema: dict, description: str) -> dict:
    """An optional query parameter."""
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


_INVALID_QUERY = _error("invalid query parameters (details: query.<name>)")
_UNAVAILABLE = {
    **_error("the database is unreachable: retry after Retry-After seconds"),
    "headers": {
        "Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer", "minimum": 1}}
    },
}
# IETF draft "The Idempotency-Key HTTP Header Field" (service/idempotency.py).
_IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": idempotency.MAX_KEY_LENGTH},
    "description": "A fresh unique value (a UUID) per logical request, the same on its retries: a retry "
    "answers what the first request answered and creates nothing. Per user, kept "
    "24 h. Bare or as a quoted structured-field string.",
}
_REPLAYED = {
    "Idempotent-Replayed": {
        "description": "true when this answer repeats an earlier request's",
        "schema": {"type": "string", "enum": ["true"]},
    }
}
_KEY_ERRORS = {
    "400": _error("malformed JSON or Idempotency-Key"),
    "422": _error(
        "invalid request (details: field paths), or code idempotency_key_reused: "
        "the Idempotency-Key was used for another request"
    ),
}
_NO_JOB = _error("no such job, or not yours")
_NO_STUDY = _error("no such study, or not yours")
_DELETED = {"description": "deleted, with everything that belongs to it"}
_OVER_LIMIT = {
    **_error("over one of your limits (code quota_exceeded; details name the limit): nothing stored"),
    "headers": {
        "Retry-After": {
            "description": "seconds, when waiting may help (queued jobs)",
            "schema": {"type": "integer", "minimum": 1},
        }
    },
}
_ADMIN_ONLY = _error("only admins")
_CANCELLED = _json("the job", {"type": "object", "properties": {"job": ref("Job")}, "required": ["job"]})

OPERATIONS: dict[str, dict] = {
    "api.jobs.submit_job": {
        "parameters": [_IDEMPOTENCY_KEY],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": ref("JobSpec"),
                    "example": json.loads((EXAMPLES / "cnn-digits.json").read_text()),
                }
            },
        },
        "responses": {
            "201": {
                **_json("the queued job", ref("Job")),
                "headers": {"Location": {"schema": {"type": "string"}}, **_REPLAYED},
            },
            **_KEY_ERRORS,
            "413": _error("body too large"),
            "415": _error("not application/json"),
            "429": _OVER_LIMIT,
        },
    },
    "api.jobs.list_jobs": {
        "parameters": [
            _query("status", {"enum": list(STATUSES)}, "only jobs in this status"),
            _query("type", {"enum": list(JOB_TYPES)}, "only jobs of this type"),
            _query("tag", {"type": "string", "maxLength": 64}, "only jobs with this tag"),
            _query("search", {"type": "string", "maxLength": 200}, "part of the name, or the start of the id"),
            _query(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": jobs_api.MAX_LIMIT, "default": jobs_api.DEFAULT_LIMIT},
                "page size",
            ),
            _query(
                "offset",
                {"type": "integer", "minimum": 0, "maximum": jobs_api.MAX_OFFSET, "default": 0},
                "jobs to skip",
            ),
        ],
        "responses": {"200": _json("a page of jobs, newest first", ref("JobList")), "422": _INVALID_QUERY},
    },
    "api.jobs.get_job": {"responses": {"200": _json("the job", ref("Job")), "404": _NO_JOB}},
    "api.jobs.job_metrics": {
        "parameters": [
            _query("names", {"type": "string"}, "comma-separated series names (default: all)"),
            _query(
                "max_points",
                {"type": "integer", "minimum": 2, "maximum": jobs_api.MAX_POINTS, "default": jobs_api.DEFAULT_POINTS},
                "most points per series",
            ),
        ],
        "responses": {"200": _json("the series", ref("Metrics")), "404": _NO_JOB, "422": _INVALID_QUERY},
    },
    "api.jobs.cancel_job": {
        "responses": {
            "200": _CANCELLED,
            "202": _CANCELLED,
            "404": _NO_JOB,
            "409": _error("the job had already finished"),
        }
    },
    "api.jobs.job_weights": {
        "responses": {
            "200": {
                "description": "weights.npz (docs/reference/weights.md)",
                "content": {
                    "application/octet-stream": {"schema": {"type": "string", "contentMediaType": "application/zip"}}
                },
            },
            "404": _error("no such job, or no weights yet"),
        }
    },
    "api.predict.predict_job": {
        "requestBody": {"required": True, "content": {"application/json": {"schema": ref("PredictRequest")}}},
        "responses": {
            "200": _json("one prediction per input", ref("Prediction")),
            "400": _error("malformed JSON, or not an object"),
            "404": _NO_JOB,
            "409": _error("a gradient check, or a job without trained weights (yet)"),
            "413": _error("body too large, or more inputs than CONVLAB_MAX_PREDICT_BATCH"),
            "415": _error("not application/json"),
            "422": _error("invalid inputs (details: inputs[i], inputs[i][c][y][x])"),
        },
    },
    "api.events.job_events": {
        "parameters": [
            _query(
                "max_points",
                {"type": "integer", "minimum": 2, "maximum": 20000, "default": 2000},
                "most points per series",
            )
        ],
        "responses": {
            "200": {
                "description": "Server-Sent Events: job, series, points, end (http-api.md)",
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
            },
            "404": _NO_JOB,
        },
    },
    "api.specs.summarize_spec": {
        "requestBody": {"required": True, "content": {"application/json": {"schema": ref("JobSpec")}}},
        "responses": {
            "200": _json("the summary (also for an invalid spec: see valid and errors)", ref("ModelSummary")),
            "400": _error("malformed JSON, or not an object"),
            "413": _error("body too large"),
            "415": _error("not application/json"),
        },
    },
    "api.trust.reproduce_job": {
        "parameters": [_IDEMPOTENCY_KEY],
        "requestBody": {
            "required": False,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {"tolerance": {"type": "number", "exclusiveMinimum": 0, "maximum": 1}},
                    }
                }
            },
        },
        "responses": {
            "201": {
                **_json("the queued reproduction", ref("Job")),
                "headers": {"Location": {"schema": {"type": "string"}}, **_REPLAYED},
            },
            **_KEY_ERRORS,
            "404": _NO_JOB,
            "415": _error("not application/json"),
        },
    },
    "api.datasets.list_datasets": {"responses": {"200": _json("the datasets", ref("DatasetList"))}},
    "api.datasets.get_dataset": {
        "responses": {"200": _json("the dataset", ref("Dataset")), "404": _error("no such dataset, or not yours")}
    },
    "api.datasets.upload_dataset": {
        "parameters": [_IDEMPOTENCY_KEY],
        "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": ref("DatasetUpload")}}},
        "responses": {
            "201": {**_json("the stored dataset", ref("Dataset")), "headers": _REPLAYED},
            **_KEY_ERRORS,
            "413": _error("file too large"),
            "415": _error("not multipart/form-data"),
            "429": _OVER_LIMIT,
        },
    },
    "api.datasets.delete_dataset": {
        "responses": {
            "204": _DELETED,
            "404": _error("no such dataset, or not yours"),
            "409": _error("a queued or running job uses the dataset"),
        }
    },
    "api.jobs.delete_job": {
        "responses": {"204": _DELETED, "404": _NO_JOB, "409": _error("the job is running: cancel it first")}
    },
    "api.users.me": {"responses": {"200": _json("you, your limits and what you use", ref("UserMe"))}},
    "api.users.get_limits": {
        "responses": {
            "200": _json("the user's limits", ref("UserLimits")),
            "403": _ADMIN_ONLY,
            "404": _error("no such user"),
        }
    },
    "api.users.put_limits": {
        "requestBody": {"required": True, "content": {"application/json": {"schema": ref("LimitsUpdate")}}},
        "responses": {
            "200": _json("the user's limits now", ref("UserLimits")),
            "400": _error("malformed JSON, or not an object"),
            "403": _ADMIN_ONLY,
            "404": _error("no such user"),
            "415": _error("not application/json"),
            "422": _error("invalid limits (details: the field)"),
        },
    },
    "api.tokens.list_tokens": {"responses": {"200": _json("the tokens", ref("TokenList"))}},
    "api.tokens.revoke_token": {
        "responses": {
            "200": _json("the revoked token", ref("TokenRevoked")),
            "404": _error("no such token, or not yours"),
        }
    },
    "api.studies.create_study": {
        "parameters": [_IDEMPOTENCY_KEY],
        "requestBody": {"required": True, "content": {"application/json": {"schema": ref("StudyRequest")}}},
        "responses": {
            "201": {
                **_json("the study, its first trials queued", ref("Study")),
                "headers": {"Location": {"schema": {"type": "string"}}, **_REPLAYED},
            },
            **_KEY_ERRORS,
            "413": _error("body too large"),
            "415": _error("not application/json"),
        },
    },
    "api.studies.list_studies": {
        "parameters": [
            _query(
                "limit",
                {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": studies_api.MAX_LIMIT,
                    "default": studies_api.DEFAULT_LIMIT,
                },
                "page size",
            ),
            _query("offset", {"type": "integer", "minimum": 0, "default": 0}, "studies to skip"),
        ],
        "responses": {"200": _json("a page of studies, newest first", ref("StudyList")), "422": _INVALID_QUERY},
    },
    "api.studies.get_study": {
        "responses": {"200": _json("the study with its trials and best", ref("Study")), "404": _NO_STUDY}
    },
    "api.studies.study_trials": {"responses": {"200": _json("the trials", ref("TrialList")), "404": _NO_STUDY}},
    "api.studies.study_trials_csv": {
        "responses": {
            "200": {
                "description": "one row per trial: number, job_id, status, seed, value, epochs_completed, then "
                "one JSON-encoded column per space path",
                "content": {"text/csv": {"schema": {"type": "string"}}},
            },
            "404": _NO_STUDY,
        }
    },
    "api.studies.cancel_study": {
        "responses": {
            "200": _json("the study", {"type": "object", "properties": {"study": ref("Study")}, "required": ["study"]}),
            "404": _NO_STUDY,
            "409": _error("the study had already finished"),
        }
    },
    "api.list_workers": {"responses": {"200": _json("live workers", ref("Workers"))}},
    "api.openapi": {"responses": {"200": _json("this document", {"type": "object"})}},
    "health.healthz": {
        "security": [],
        "responses": {
            "200": _json("the API and its database answer", ref("Health")),
            "503": {**_json("the database does not answer", ref("Health")), "headers": _UNAVAILABLE["headers"]},
        },
    },
    "metrics.prometheus": {
        "security": [],
        "responses": {
            "200": {
                "description": "Prometheus text format 0.0.4",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }
        },
    },
}


# OpenAPI links: which call's answer gives the id another call takes, so that a client (or a fuzzer,
# tests/test_fuzz.py) can follow a created job or dataset to the calls that take its id.
_JOB_ID = {"job_id": "$response.body#/id"}
LINKS: dict[tuple[str, str], dict[str, dict]] = {
    ("api.jobs.submit_job", "201"): {
        "GetJob": {"operationId": "api_jobs_get_job", "parameters": _JOB_ID},
        "GetJobMetrics": {"operationId": "api_jobs_job_metrics", "parameters": _JOB_ID},
        "CancelJob": {"operationId": "api_jobs_cancel_job", "parameters": _JOB_ID},
        "GetJobWeights": {"operationId": "api_jobs_job_weights", "parameters": _JOB_ID},
        "PredictWithJob": {"operationId": "api_predict_predict_job", "parameters": _JOB_ID},
    },
    ("api.jobs.get_job", "200"): {
        "GetJobMetrics": {"operationId": "api_jobs_job_metrics", "parameters": _JOB_ID},
        "CancelJob": {"operationId": "api_jobs_cancel_job", "parameters": _JOB_ID},
    },
    ("api.datasets.upload_dataset", "201"): {
        "GetDataset": {"operationId": "api_datasets_get_dataset", "parameters": {"dataset_id": "$response.body#/id"}},
    },
}


def _version() -> str:
    """The installed package's version."""
    try:
        return metadata.version("convlab")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def _path_schema(converter) -> dict:
    """A path parameter's schema from its URL converter: ``<int:x>`` is a non-negative integer."""
    if isinstance(converter, IntegerConverter):
        return {"type": "integer", "minimum": 0, **({"maximum": converter.max} if converter.max is not None else {})}
    return {"type": "string", "minLength": 1}


def _operation(app: Flask, endpoint: str, path: str, arguments, converters: dict) -> dict:
    """The operation object of one route."""
    doc = inspect.getdoc(app.view_functions[endpoint]) or ""
    spec = OPERATIONS.get(endpoint, {})
    op: dict = {
        "operationId": endpoint.replace(".", "_"),
        "summary": " ".join(doc.split("\n\n", 1)[0].split()),
        "description": doc,
        "tags": [endpoint.split(".")[-2] if "." in endpoint else endpoint],
    }
    params = [
        {"name": a, "in": "path", "required": True, "schema": _path_schema(converters.get(a))}
        for a in sorted(arguments)
    ]
    params += spec.get("parameters", [])
    if params:
        op["parameters"] = params
    if "requestBody" in spec:
        op["requestBody"] = spec["requestBody"]
    op["responses"] = dict(spec.get("responses", {}))
    for (linked, status), links in LINKS.items():
        if linked == endpoint and status in op["responses"]:
            op["responses"][status] = {**op["responses"][status], "links": links}
    op["responses"].setdefault("503", _UNAVAILABLE)  # every call needs the database
    if "security" in spec:
        op["security"] = spec["security"]
    elif path.startswith(API_PREFIX):
        op["responses"]["401"] = _error("missing or invalid token")
    return op


def openapi_document(app: Flask) -> dict:
    """The OpenAPI 3.1 document of ``app``'s API."""
    paths: dict[str, dict] = {}
    used: set[str] = set()
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if not (rule.rule.startswith(API_PREFIX + "/") or rule.rule in OUTSIDE_PREFIX):
            continue
        path = _CONVERTER.sub(r"{\1}", rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            op = _operation(app, rule.endpoint, path, rule.arguments, rule._converters)
            if op["operationId"] in used:  # one view on two paths (/healthz)
                op["operationId"] += "_" + re.sub(r"\W+", "_", path).strip("_")
            used.add(op["operationId"])
            paths.setdefault(path, {})[method.lower()] = op
    limits = app.extensions[EXTENSION_KEY].limits
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "convlab",
            "version": _version(),
            "description": "Train and verify convolutional networks as a service (docs/reference/http-api.md).",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": component_schemas(limits),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }
