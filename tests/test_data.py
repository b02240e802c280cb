import functools
import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from lth import data
from lth.data import (
    DATASETS,
    DatasetNotFound,
    augment_cifar,
    augment_seed,
    batch_indices,
    data_roots,
    load_splits,
    steps_per_epoch,
)

SHARED_DATA = next((root for root in data_roots() if (root / "MNIST").is_dir()), None)  # real MNIST, where present
needs_real_data = pytest.mark.skipif(SHARED_DATA is None, reason="no MNIST in $LTH_DATA or the default data folders")

# From the data README.
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def counts(*labels: torch.Tensor) -> list[int]:
    return torch.bincount(torch.cat(labels)).tolist()


# --- real data ---------------------------------------------------------------------------------


@needs_real_data
def test_mnist_matches_readme():
    s = load_splits("mnist", root=SHARED_DATA)
    assert (len(s.train), len(s.val), len(s.test)) == (55_000, 5_000, 10_000)
    assert s.train.x.shape == (55_000, 1, 28, 28) and s.train.x.dtype == torch.float32
    assert s.test.y.dtype == torch.int64
    assert (s.input_shape, s.num_classes, s.augment) == ((1, 28, 28), 10, False)
    assert counts(s.train.y, s.val.y) == MNIST_TRAIN_COUNTS
    assert counts(s.test.y) == MNIST_TEST_COUNTS
    pool = torch.cat([s.train.x, s.val.x])
    assert abs(pool.mean().item()) < 1e-3 and abs(pool.std().item() - 1) < 1e-3  # normalised


@needs_real_data
def test_fashion_mnist_loads():
    s = load_splits("fashion_mnist", root=SHARED_DATA)
    assert (len(s.train), len(s.val), len(s.test)) == (55_000, 5_000, 10_000)
    assert s.input_shape == (1, 28, 28)
    assert counts(s.train.y, s.val.y) == [6000] * 10
    assert counts(s.test.y) == [1000] * 10


@needs_real_data
def test_default_roots_are_the_workspace_then_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("LTH_DATA", raising=False)
    monkeypatch.setenv("LTH_HOME", str(tmp_path))
    assert data_roots() == [tmp_path / "data", Path.home() / ".cache" / "lth" / "data"]
    monkeypatch.setenv("LTH_DATA", str(SHARED_DATA))
    assert len(load_splits("mnist").test) == 10_000


@needs_real_data
def test_split_is_seeded_and_val_comes_from_train():
    a, b, c = (load_splits("mnist", seed=s, root=SHARED_DATA) for s in (0, 0, 1))
    assert torch.equal(a.val.x, b.val.x) and torch.equal(a.train.y, b.train.y)
    assert not torch.equal(a.val.x, c.val.x)
    assert torch.equal(a.test.x, c.test.x)  # test set is its own file, never split

    train_idx, val_idx = data._split_indices(60_000, 5_000, seed=0)
    assert len(np.intersect1d(train_idx.numpy(), val_idx.numpy())) == 0
    assert torch.equal(torch.cat([train_idx, val_idx]).sort().values, torch.arange(60_000))
    # The returned splits are exactly those rows of the training file.
    raw_x, raw_y, _, _ = data._decoded("mnist", SHARED_DATA)
    assert torch.equal(a.val.y, raw_y[val_idx]) and torch.equal(a.train.y, raw_y[train_idx])
    assert torch.allclose(a.val.x, (raw_x[val_idx].float() / 255 - 0.1307) / 0.3081)


# --- errors and lookup -------------------------------------------------------------------------


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="imagenet") as err:
        load_splits("imagenet")
    assert all(name in str(err.value) for name in DATASETS)


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_missing_data_names_paths_and_remedies(monkeypatch, tmp_path, name):
    monkeypatch.setenv("LTH_DATA", str(tmp_path))
    assert data_roots() == [tmp_path]
    with pytest.raises(DatasetNotFound) as err:
        load_splits(name)
    message = str(err.value)
    assert isinstance(err.value, FileNotFoundError)
    assert str(tmp_path) in message and "LTH_DATA" in message and "download=True" in message


def write_idx(path: Path, array: np.ndarray, gz: bool) -> None:
    header = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(payload) if gz else payload)


def test_reads_decompressed_and_gzipped_idx(tmp_path):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    train_x, test_x = rng.integers(0, 256, (20, 28, 28)), rng.integers(0, 256, (6, 28, 28))
    train_y, test_y = np.arange(20) % 10, np.arange(6)
    # torchvision's layout (decompressed) for some files, the shared .gz layout for others.
    write_idx(raw / "train-images-idx3-ubyte", train_x, gz=False)
    write_idx(raw / "train-labels-idx1-ubyte.gz", train_y, gz=True)
    write_idx(raw / "t10k-images-idx3-ubyte.gz", test_x, gz=True)
    write_idx(raw / "t10k-labels-idx1-ubyte", test_y, gz=False)

    s = load_splits("fashion_mnist", root=tmp_path, val_size=4)
    assert (len(s.train), len(s.val), len(s.test)) == (16, 4, 6)
    assert torch.equal(s.test.y, torch.as_tensor(test_y))
    expected = (torch.as_tensor(test_x, dtype=torch.float32)[:, None] / 255 - 0.2860) / 0.3530
    assert torch.allclose(s.test.x, expected)


# --- CIFAR, with torchvision's loader mocked (no offline copy, never downloaded here) -----------


@functools.cache  # generating 180 MB of noise per test would dominate the run time
def fake_cifar_images(n: int) -> np.ndarray:
    return np.random.default_rng(n).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


class FakeCifar:
    calls: list = []

    def __init__(self, root, train, download):
        FakeCifar.calls.append((root, train, download))
        n = 50_000 if train else 10_000
        self.data = fake_cifar_images(n)
        self.targets = (np.arange(n) % self.num_classes).tolist()


@pytest.fixture
def fake_cifar(monkeypatch):
    FakeCifar.calls = []
    for cls_name, k in (("CIFAR10", 10), ("CIFAR100", 100)):
        monkeypatch.setattr(torchvision.datasets, cls_name, type(cls_name, (FakeCifar,), {"num_classes": k}))
    return FakeCifar


@pytest.mark.parametrize(("name", "folder", "classes"), [("cifar10", "cifar-10-batches-py", 10), ("cifar100", "cifar-100-python", 100)])
def test_cifar_splits(fake_cifar, tmp_path, name, folder, classes):
    (tmp_path / folder).mkdir()
    s = load_splits(name, root=tmp_path)
    assert (len(s.train), len(s.val), len(s.test)) == (45_000, 5_000, 10_000)
    assert s.train.x.shape == (45_000, 3, 32, 32) and s.test.x.shape == (10_000, 3, 32, 32)
    assert (s.input_shape, s.num_classes, s.augment) == ((3, 32, 32), classes, True)
    assert fake_cifar.calls == [(str(tmp_path), True, False), (str(tmp_path), False, False)]
    # Channels come out in NCHW with the CIFAR statistics applied.
    raw = torch.as_tensor(fake_cifar_images(10_000))
    mean, std = data._STATS[name]
    expected = (raw.permute(0, 3, 1, 2).float() / 255 - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
    assert torch.allclose(s.test.x, expected, atol=1e-5)


def test_cifar_download_goes_to_first_root(fake_cifar, monkeypatch, tmp_path):
    monkeypatch.setenv("LTH_DATA", str(tmp_path / "data"))
    s = load_splits("cifar10", download=True)
    assert len(s.val) == 5_000
    assert [(root, download) for root, _, download in fake_cifar.calls[:2]] == [(str(tmp_path / "data"), True)] * 2


# --- synthetic ---------------------------------------------------------------------------------


def test_synthetic_shape_and_learnable():
    s = load_splits("synthetic", synthetic_shape=(3, 8, 8), synthetic_classes=5, synthetic_sizes=(500, 100, 200))
    assert s.train.x.shape == (500, 3, 8, 8) and len(s.val) == 100 and len(s.test) == 200
    assert (s.input_shape, s.num_classes) == ((3, 8, 8), 5)
    means = torch.stack([s.train.x[s.train.y == c].mean(0) for c in range(5)]).flatten(1)
    predicted = torch.cdist(s.test.x.flatten(1), means).argmin(1)
    assert (predicted == s.test.y).float().mean() > 0.5

    again = load_splits("synthetic", synthetic_shape=(3, 8, 8), synthetic_classes=5, synthetic_sizes=(500, 100, 200))
    assert torch.equal(s.train.x, again.train.x)


def test_small_net_learns_synthetic_with_batch_indices():
    s = load_splits("synthetic")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    for it in range(200):
        idx = batch_indices(len(s.train), 60, [0], it)[0]
        loss = torch.nn.functional.cross_entropy(net(s.train.x[idx]), s.train.y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        assert (net(s.test.x).argmax(1) == s.test.y).float().mean() > 0.5


def test_to_device_keeps_contents():
    s = load_splits("synthetic", synthetic_sizes=(30, 10, 10))
    moved = s.to("cpu")
    assert moved.name == s.name and moved.input_shape == s.input_shape
    assert torch.equal(moved.train.x, s.train.x) and torch.equal(moved.test.y, s.test.y)


# --- batching and augmentation -----------------------------------------------------------------


def test_batch_indices_deterministic_and_per_seed():
    a = batch_indices(1000, 32, [0, 1, 2], 7)
    assert a.shape == (3, 32) and a.dtype == torch.int64
    data._epoch_permutation.cache_clear()  # must not depend on what was computed before
    assert torch.equal(a, batch_indices(1000, 32, [0, 1, 2], 7))
    assert torch.equal(a[1], batch_indices(1000, 32, [1], 7)[0])
    assert not torch.equal(a[0], a[1]) and not torch.equal(a[1], a[2])


def test_batch_indices_cover_each_epoch_once_dropping_the_remainder():
    n, bs = 105, 10
    spe = steps_per_epoch(n, bs)
    assert spe == 10
    epochs = [torch.cat([batch_indices(n, bs, [3], e * spe + i)[0] for i in range(spe)]) for e in range(2)]
    for order in epochs:
        assert len(order) == 100 and len(order.unique()) == 100 and order.max() < n
    assert not torch.equal(epochs[0], epochs[1])
    full = torch.cat([batch_indices(100, 10, [5], i)[0] for i in range(10)])
    assert torch.equal(full.sort().values, torch.arange(100))


def test_batch_indices_rejects_bad_arguments():
    with pytest.raises(ValueError):
        batch_indices(10, 20, [0], 0)
    with pytest.raises(ValueError):
        batch_indices(10, 5, [0], -1)


def reference_augmentations(image: torch.Tensor) -> list[torch.Tensor]:
    """Every image a flip + 4-pixel pad-crop can produce, the slow obvious way."""
    h, w = image.shape[-2:]
    padded = torch.nn.functional.pad(image, (4, 4, 4, 4))
    crops = [padded[:, dy : dy + h, dx : dx + w] for dy in range(9) for dx in range(9)]
    return crops + [c.flip(-1) for c in crops]


def test_augment_cifar():
    x = torch.randn(2, 16, 3, 8, 8)  # leading (networks, batch) dims
    out = augment_cifar(x, torch.Generator().manual_seed(augment_seed(0, 5)))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.equal(out, augment_cifar(x, torch.Generator().manual_seed(augment_seed(0, 5))))
    assert not torch.equal(out, augment_cifar(x, torch.Generator().manual_seed(augment_seed(0, 6))))
    changed = [not torch.equal(o, i) for o, i in zip(out.flatten(0, 1), x.flatten(0, 1))]
    assert sum(changed) > len(changed) // 2
    for o, i in zip(out.flatten(0, 1), x.flatten(0, 1)):
        assert any(torch.equal(o, candidate) for candidate in reference_augmentations(i))


def test_augment_seed_is_pure_and_distinct():
    assert augment_seed(1, 2) == augment_seed(1, 2)
    assert len({augment_seed(s, i) for s in range(10) for i in range(10)}) == 100
