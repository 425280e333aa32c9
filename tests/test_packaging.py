"""An installed convlab runs from its wheel alone: the bundled datasets and the dashboard's templates are package data.

The wheel is built from a copy of the sources (so the build leaves nothing in the checkout), unpacked into a
temporary directory outside the repository, and exercised in a child process whose working directory is not the
repository; the child proves it imported convlab from there, not from the checkout or an editable install.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from engine.datasets import load_builtin
from service.dashboard.submit import templates

ROOT = Path(__file__).resolve().parents[1]

# Runs in the child, from the unpacked wheel.
CHILD = r"""
import hashlib, json, sys
import engine, convlab, service
from engine.datasets import load_builtin
from service.dashboard.submit import templates

out = {"files": [engine.__file__, convlab.__file__, service.__file__], "datasets": {}}
for name in ("digits", "mnist-5k"):
    ds = load_builtin(name)
    out["datasets"][name] = [list(ds.X.shape), hashlib.sha256(ds.X.tobytes()).hexdigest(),
                             hashlib.sha256(ds.y.tobytes()).hexdigest()]
out["templates"] = templates()
out["heavy"] = sorted(m for m in ("sklearn", "mlxtend", "pandas", "scipy", "matplotlib") if m in sys.modules)
print(json.dumps(out))
"""

pytestmark = pytest.mark.slow  # builds and unpacks a wheel


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A directory holding convlab as pip would install it from its wheel (pure Python: unpacking is installing)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for package in (p.parent for p in ROOT.glob("*/__init__.py")):
        shutil.copytree(package, src / package.name, ignore=shutil.ignore_patterns("__pycache__"))
    # No build isolation: the test extra's setuptools builds it, without reaching for an index.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp / "dist"),
            str(src),
        ],
        check=True,
        cwd=tmp,
    )
    (wheel,) = (tmp / "dist").glob("convlab-*.whl")
    site = tmp / "site"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    return site


def test_wheel_declares_no_dataset_libraries_at_run_time(installed):
    (metadata,) = installed.glob("convlab-*.dist-info/METADATA")
    requires = [line for line in metadata.read_text().splitlines() if line.startswith("Requires-Dist:")]
    runtime = [r for r in requires if "extra ==" not in r]
    assert any(r.startswith("Requires-Dist: numpy") for r in runtime)
    for lib in ("scikit-learn", "mlxtend"):
        assert not [r for r in runtime if lib in r], runtime
        assert [r for r in requires if lib in r and 'extra == "test"' in r], f"{lib} must stay in the test extra"


def test_the_client_is_typed(installed):
    """PEP 561: the installed package says its annotations are to be used."""
    assert (installed / "convlab" / "py.typed").is_file()


def test_installed_copy_loads_datasets_and_templates_outside_the_repository(installed, tmp_path):
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    env = {**os.environ, "PYTHONPATH": str(installed)}
    done = subprocess.run([sys.executable, "-c", CHILD], cwd=cwd, env=env, check=True, capture_output=True, text=True)
    out = json.loads(done.stdout)

    for f in out["files"]:
        assert Path(f).is_relative_to(installed), f"imported {f}, not the installed copy"
    for name, (shape, x_hash, y_hash) in out["datasets"].items():
        ds = load_builtin(name)
        assert shape == list(ds.X.shape)
        assert x_hash == hashlib.sha256(ds.X.tobytes()).hexdigest()
        assert y_hash == hashlib.sha256(ds.y.tobytes()).hexdigest()
    # Every template the checkout shows, with the same specs, read from the installed package.
    assert [t["key"] for t in out["templates"]] == ["cnn-digits", "lenet-mnist", "gradcheck", "ablation-pair"]
    assert out["templates"] == templates()
    assert out["heavy"] == []
