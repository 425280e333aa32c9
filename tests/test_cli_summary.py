"""``convlab summary SPEC``: the model summary on the command line, computed by the validator's code."""

from __future__ import annotations

import json

import numpy as np
import pytest

from convlab.cli import main
from tests.helpers import example, tiny_train_spec


def _run(capsys, tmp_path, spec, *args) -> tuple[int, str, str]:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    code = main(["summary", str(path), *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_summary_table_of_lenet(capsys, tmp_path):
    code, out, _ = _run(capsys, tmp_path, example("lenet-mnist"))
    assert code == 0
    lines = out.splitlines()
    assert lines[-1] == "valid"
    conv = next(line for line in lines if line.lstrip().startswith("0 conv"))
    assert conv.split()[5:8] == ["20×24×24", "520", "288,000"]
    total = next(line for line in lines if line.lstrip().startswith("total"))
    assert "85,670" in total and "1,633,000" in total and "batch of 32, float32" in total
    assert "5,000,000" in next(line for line in lines if line.lstrip().startswith("limits"))
    assert not any(line.startswith("!") for line in lines)


def test_the_offending_layer_is_marked(capsys, tmp_path):
    spec = example("lenet-mnist")
    spec["model"]["layers"][2]["kernel"] = 15
    code, out, _ = _run(capsys, tmp_path, spec)
    assert code == 1
    marked = [line for line in out.splitlines() if line.startswith("!")]
    assert len(marked) == 1 and marked[0].split()[1:3] == ["2", "conv"]
    assert "model.layers[2].kernel: 15 is larger than the 12×12 input" in out
    assert out.splitlines()[-1] == "invalid: 1 problem(s)"


def test_json_equals_the_engine_summary_and_other_errors_are_listed(capsys, tmp_path):
    from engine.summary import model_summary

    spec = tiny_train_spec()
    spec["train"]["momentun"] = 0.9
    code, out, _ = _run(capsys, tmp_path, spec, "--json")
    assert code == 1 and json.loads(out) == model_summary(spec)
    code, out, _ = _run(capsys, tmp_path, spec)
    assert "errors:\n  train.momentun: unknown field" in out


def test_limits_come_from_the_environment(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("CONVLAB_LIMIT_MAX_PARAMETERS", "100")
    code, out, _ = _run(capsys, tmp_path, tiny_train_spec(), "--json")
    summary = json.loads(out)
    assert code == 1 and summary["limits"]["max_parameters"] == 100
    assert summary["errors"][0]["message"].endswith("over the limit of 100")
    monkeypatch.setenv("CONVLAB_LIMIT_MAX_PARAMETRS", "1")
    code, _, err = _run(capsys, tmp_path, tiny_train_spec())
    assert code == 2 and "CONVLAB_LIMIT_MAX_PARAMETRS is not a limit" in err


def test_a_local_npz_dataset_is_checked(capsys, tmp_path):
    npz = tmp_path / "d.npz"
    np.savez(npz, X=np.zeros((8, 10, 10)), y=np.arange(8) % 2)
    code, out, _ = _run(capsys, tmp_path, tiny_train_spec(dataset=str(npz)), "--json")
    assert code == 1
    assert "model.input_shape" in [e["path"] for e in json.loads(out)["errors"]]


@pytest.mark.parametrize("text", ["{", "[1, 2]"])
def test_unreadable_specs(capsys, tmp_path, text):
    path = tmp_path / "bad.json"
    path.write_text(text)
    code = main(["summary", str(path)])
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    if text == "{":
        assert code == 2 and "not valid JSON" in out.err
    else:
        assert code == 1 and "must be a JSON object" in out.out
