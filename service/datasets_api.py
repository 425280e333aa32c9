"""``/api/v1/datasets``: upload ``.npz`` datasets (checked by the engine, never unpickled) and list them."""

from __future__ import annotations

import os

from flask import Blueprint, Response, current_app, g, make_response, request, url_for

import store
from engine.datasets import DatasetLimits, load_npz

from .errors import ApiError
from .extension import convlab
from .idempotency import HEADER, once
from .schemas import dataset_json
from .submission import quota_error

bp = Blueprint("datasets", __name__, url_prefix="/datasets")

MAX_NAME_LENGTH = 200
UPLOAD_RETRY_AFTER_S = 5


def _name(filename: str | None) -> str:
    """The dataset's name: the form field ``name``, else the file's name without ``.npz``."""
    name = (request.form.get("name") or "").strip()
    if not name:
        base = os.path.basename((filename or "").replace("\\", "/"))
        name = (base[:-4] if base.lower().endswith(".npz") else base).strip() or "upload"
    if len(name) > MAX_NAME_LENGTH or not name.isprintable():
        raise ApiError(
            422,
            "invalid dataset name",
            code="invalid_dataset",
            details=[{"path": "name", "message": f"must be printable and at most {MAX_NAME_LENGTH} characters"}],
        )
    return name


@bp.get("")
def list_datasets():
    """The datasets the caller uploaded (admins: all), newest first, without their bytes."""
    return {"datasets": [dataset_json(d) for d in store.list_datasets(convlab().store, g.user)]}


@bp.get("/<dataset_id>")
def get_dataset(dataset_id: str):
    """One uploaded dataset's description (its id is what a job spec's ``data.dataset`` names)."""
    info = store.get_dataset(convlab().store, dataset_id, g.user)
    if info is None:
        raise ApiError(404, f"no dataset {dataset_id[:64]!r}")
    return dataset_json(info)


@bp.post("")
def upload_dataset():
    """Upload a dataset: multipart field ``file`` (an ``.npz`` with ``X`` and ``y``), optional ``name``.

    The engine checks it (sizes, dtypes, labels; object arrays are refused,
    nothing is unpickled); an invalid file answers 422 and nothing is stored.
    With an ``Idempotency-Key`` header a retry returns the first answer and stores nothing.
    """
    if request.mimetype != "multipart/form-data":
        raise ApiError(
            415, f"expected multipart/form-data with a file field 'file', got {request.mimetype or 'none'!r}"
        )
    ext = convlab()
    cost = upload_cost(request.content_length, current_app.config["MAX_CONTENT_LENGTH"], ext.dataset_limits)
    with ext.upload_memory.reserved(
        cost,
        lambda: ApiError(
            503,
            "too many uploads are being checked at once: retry in a few seconds",
            code="busy",
            headers={"Retry-After": str(UPLOAD_RETRY_AFTER_S)},
        ),
    ):
        return _upload(ext)


def upload_cost(content_length: int | None, max_request: int | None, limits: DatasetLimits) -> int:
    """The most memory checking one upload can take: its body twice (read, then copied into the
    loader), its arrays decompressed (``max_bytes``, from the zip directory) and the images as
    float64 (8 bytes per value, at most ``max_values`` of them and at most one per decompressed byte)."""
    body = content_length if content_length is not None else (max_request or limits.max_bytes)
    body = min(body, max_request or body)
    return 2 * body + limits.max_bytes + 8 * min(limits.max_values, limits.max_bytes)


def _upload(ext):
    """The upload once its memory is reserved."""
    limits = ext.dataset_limits
    upload = request.files.get("file")  # a body over MAX_CONTENT_LENGTH raises 413 here
    if upload is None:
        raise ApiError(
            422,
            "no file uploaded",
            code="invalid_dataset",
            details=[{"path": "file", "message": "required: a multipart file field 'file'"}],
        )
    name = _name(upload.filename)
    data = upload.stream.read(limits.max_bytes + 1)
    if len(data) > limits.max_bytes:
        raise ApiError(413, f"the dataset is larger than the limit of {limits.max_bytes} bytes")

    def answer(info: dict):
        location = url_for(".get_dataset", dataset_id=info["id"])
        return make_response((dataset_json(info), 201, {"Location": location}))

    def create(idempotency):
        dataset = load_npz(data, limits, name=name)  # DatasetError -> 422 (errors.py)
        try:
            return answer(
                store.save_dataset(
                    ext.store,
                    g.user.id,
                    name,
                    data,
                    samples=int(len(dataset.y)),
                    shape=dataset.input_shape,
                    classes=int(dataset.classes),
                    idempotency=idempotency,
                    quota=ext.quota,
                )
            )
        except store.QuotaExceeded as e:
            raise quota_error(e, "file") from None

    # A retry may carry another multipart boundary: the request is identified by its name and file bytes.
    def replay(ids: list[str]):
        info = store.get_dataset(ext.store, ids[0], g.user)
        if info is None:
            raise ApiError(404, f"the dataset this {HEADER} created is gone")
        return answer(info)

    return once("datasets.upload", name.encode() + b"\0" + data, create=create, replay=replay)


@bp.delete("/<dataset_id>")
def delete_dataset(dataset_id: str):
    """Delete an uploaded dataset (yours; admins: anyone's): 204; 409 while a queued or running job uses it."""
    outcome = store.delete_dataset(convlab().store, dataset_id, g.user)
    if outcome is None:
        raise ApiError(404, f"no dataset {dataset_id[:64]!r}")
    if outcome == "in_use":
        raise ApiError(409, "a queued or running job trains on this dataset: cancel it or let it finish first")
    return Response(status=204)
