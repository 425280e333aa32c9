"""``convlab run``: one job in this process, no service."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from engine.datasets import DatasetError, load_npz
from engine.environment import environment
from engine.jobs import Hooks, run_job
from engine.spec import SpecError, validate_job_spec
from engine.watch import json_safe

from .blas import apply_blas_threads
from .config import blas_threads_from_env
from .names import WEIGHTS
from .progress import ProgressBar


def _npz_shape(dataset: str) -> tuple[int, ...] | None:
    """A local ``.npz`` path as a dataset: its sample shape, checked by the safe loader."""
    if not dataset.endswith(".npz") or not Path(dataset).is_file():
        return None
    return load_npz(dataset, name=dataset).input_shape


def read_json(path: str):
    """A JSON file (``-``: stdin); ValueError says where it is malformed."""
    text = sys.stdin.read() if path == "-" else Path(path).read_text()
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON: {exc}") from None


def read_spec(path: str) -> dict:
    """Parse and validate a spec file; SpecError / ValueError carry a message for the user."""
    return validate_job_spec(read_json(path), datasets=_npz_shape)


def run(spec_path: str, out_dir: str | None) -> int:
    """Run the job; the result JSON goes to stdout, weights to ``out_dir/weights.npz``."""
    try:
        spec = read_spec(spec_path)
    except (SpecError, DatasetError, ValueError, OSError) as exc:
        print(f"convlab run: invalid spec:\n{exc}", file=sys.stderr)
        return 2
    apply_blas_threads(blas_threads_from_env())  # as the workers do: same threads, same numbers
    bar = ProgressBar()
    epochs = spec["train"]["epochs"] if spec["type"] == "train" else None
    hooks = Hooks(on_metric=bar.metric, on_progress=lambda e, s, t: bar.update(e, s, t, epochs))
    try:
        outcome = run_job(spec, hooks, resolve_dataset=lambda p: load_npz(p, name=p))
    except KeyboardInterrupt:
        bar.close()
        print("convlab run: interrupted", file=sys.stderr)
        return 130
    bar.close()
    if out_dir and outcome.weights is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / WEIGHTS).write_bytes(outcome.weights)
    report = {"status": outcome.status, "type": spec["type"], "name": spec["name"], "result": outcome.result}
    if outcome.status == "failed":
        report.update(error=outcome.error, triage=outcome.triage)
    report["environment"] = environment(None)
    # JSON has no NaN: non-finite numbers are spelled "nan", "inf", "-inf" (docs/reference/results.md).
    json.dump(json_safe(report), sys.stdout, indent=2, allow_nan=False)
    sys.stdout.write("\n")
    if outcome.status == "failed":
        print(f"convlab run: {outcome.error}\nhint: {outcome.triage['hint']}", file=sys.stderr)
        return 1
    if spec["type"] == "gradcheck" and not outcome.result["passed"]:
        # Scripts can tell a failed check by the exit code; the report is on stdout either way.
        print(f"gradcheck failed: max relative error {outcome.result['max_relative_error']:.3g}", file=sys.stderr)
        return 1
    return 0
