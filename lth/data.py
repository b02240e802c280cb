"""Data sets as device-resident tensors, with stateless batching and augmentation.

Every random choice here is a pure function of explicit seeds, so training can resume at any
iteration without saved RNG state, and many networks (each with its own seed) can share one split.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F

from lth.paths import data_roots

DATASETS: tuple[str, ...] = ("mnist", "fashion_mnist", "cifar10", "cifar100", "synthetic")

DEFAULT_VAL_SIZE = 5000

# Per-channel (mean, std) of the training images, in [0, 1] pixel units.
_STATS = {
    "mnist": ((0.1307,), (0.3081,)),
    "fashion_mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}
_NUM_CLASSES = {"mnist": 10, "fashion_mnist": 10, "cifar10": 10, "cifar100": 100}
_INPUT_SHAPES = {"mnist": (1, 28, 28), "fashion_mnist": (1, 28, 28), "cifar10": (3, 32, 32), "cifar100": (3, 32, 32)}
# torchvision's class names; for the IDX data sets also the folder torchvision stores them in.
_TORCHVISION = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "cifar10": "CIFAR10", "cifar100": "CIFAR100"}
_CIFAR_DIRS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}
_IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

# Expected distance between two synthetic class means, in units of the (unit) noise: a small MLP
# reaches ~90% (1x28x28) or ~80% (3x32x32) in a few hundred steps, leaving headroom below 100%.
_SYNTHETIC_SEPARATION = 6.0
_CROP_PAD = 4

# (name, root) -> (train_x, train_y, test_x, test_y): uint8 (N, C, H, W) images, int64 labels.
_RAW_CACHE: dict[tuple[str, str], tuple[torch.Tensor, ...]] = {}


@dataclass(frozen=True)
class Split:
    """One split, resident on a device: normalised float32 images and int64 labels."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)

    def to(self, device) -> Split:
        return Split(self.x.to(device), self.y.to(device))

    def sample(self, count: int, seed: int) -> Split:
        """A seeded sample of ``count`` examples without replacement (the whole split for 0 or
        ``count`` >= its size), the same for the same seed on every machine. ValueError for count < 0."""
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"sample size {count!r} must be an int >= 0 (0: the whole split)")
        if count == 0 or count >= len(self):
            return self
        index = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:count].to(self.y.device)
        return Split(self.x[index], self.y[index])


@dataclass(frozen=True)
class DataSplits:
    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int
    input_shape: tuple[int, int, int]
    augment: bool  # whether training batches should go through augment_cifar

    def to(self, device) -> DataSplits:
        return DataSplits(
            self.name, self.train.to(device), self.val.to(device), self.test.to(device),
            self.num_classes, self.input_shape, self.augment,
        )


class DatasetNotFound(FileNotFoundError):
    """A data set is in none of the data roots and was not to be downloaded."""


class DatasetDamaged(ValueError):
    """A data set's file is there but cannot be read (truncated, corrupt); the message names it."""


def load_splits(
    name: str,
    *,
    seed: int = 0,
    val_size: int | None = None,
    device="cpu",
    download: bool = False,
    root: Path | None = None,
    synthetic_shape: tuple = (1, 28, 28),
    synthetic_classes: int = 10,
    synthetic_sizes: tuple[int, int, int] = (1200, 200, 400),
) -> DataSplits:
    """Train/val/test splits of a data set; `seed` picks which training examples form val.

    `root` replaces data_roots() as the only place looked in (and downloaded to). For "synthetic",
    train + val together hold sum(synthetic_sizes[:2]) examples and val_size defaults to
    synthetic_sizes[1]; the data themselves do not depend on `seed`, only the split does.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; expected one of: {', '.join(DATASETS)}")
    if name == "synthetic":
        shape = tuple(int(d) for d in synthetic_shape)
        pool_x, pool_y, test_x, test_y = _synthetic(shape, synthetic_classes, tuple(synthetic_sizes))
        num_classes = synthetic_classes
        val_size = synthetic_sizes[1] if val_size is None else val_size
    else:
        roots = [Path(root)] if root is not None else data_roots()
        pool_x, pool_y, test_x, test_y = _raw_arrays(name, roots, download)
        num_classes = _NUM_CLASSES[name]
        val_size = DEFAULT_VAL_SIZE if val_size is None else val_size

    train_idx, val_idx = _split_indices(len(pool_y), val_size, seed)

    def split(x: torch.Tensor, y: torch.Tensor) -> Split:
        return Split(_normalise(x, name, device), y.to(device))

    return DataSplits(
        name=name,
        train=split(pool_x[train_idx], pool_y[train_idx]),
        val=split(pool_x[val_idx], pool_y[val_idx]),
        test=split(test_x, test_y),
        num_classes=num_classes,
        input_shape=tuple(pool_x.shape[1:]),
        augment=name in _CIFAR_DIRS,
    )


def shape_of(name: str, synthetic_shape: tuple = (1, 28, 28),
             synthetic_classes: int = 10) -> tuple[tuple[int, int, int], int]:
    """(input shape (C, H, W), number of classes) of a data set, known without loading it (for
    ``synthetic``: the given shape and class count). ValueError for an unknown name."""
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; expected one of: {', '.join(DATASETS)}")
    if name == "synthetic":
        return tuple(int(d) for d in synthetic_shape), int(synthetic_classes)
    return _INPUT_SHAPES[name], _NUM_CLASSES[name]


def steps_per_epoch(n: int, batch_size: int) -> int:
    if batch_size <= 0 or n < batch_size:
        raise ValueError(f"batch_size must be in [1, {n}] for a split of {n} examples, got {batch_size}")
    return n // batch_size


def batch_indices(n: int, batch_size: int, seeds: Sequence[int], iteration: int) -> torch.Tensor:
    """(M, batch_size) int64 indices into a split of size n for this iteration, one row per seed.

    Epoch e = iteration // steps_per_epoch(n, batch_size) is a fresh permutation seeded by
    (seed, e), so the order is a pure function of (seed, iteration). The last partial batch of
    each epoch is dropped.
    """
    if iteration < 0:
        raise ValueError(f"iteration must be >= 0, got {iteration}")
    epoch, step = divmod(iteration, steps_per_epoch(n, batch_size))
    start = step * batch_size
    rows = [_epoch_permutation(n, int(seed), epoch)[start : start + batch_size] for seed in seeds]
    return torch.stack(rows) if rows else torch.empty(0, batch_size, dtype=torch.int64)


def epoch_batches(n: int, batch_size: int, seeds: Sequence[int], epoch: int, device="cpu") -> torch.Tensor:
    """(steps_per_epoch, M, batch_size): every batch of one epoch for all seeds at once, on
    ``device``; row j equals ``batch_indices(n, batch_size, seeds, epoch * steps_per_epoch + j)``."""
    steps = steps_per_epoch(n, batch_size)
    perms = torch.stack([_epoch_permutation(n, int(seed), epoch)[: steps * batch_size] for seed in seeds])
    if torch.device(device).type == "cuda":  # from pinned memory the copy does not wait for the GPU's queue to drain
        perms = perms.pin_memory()
    return perms.to(device, non_blocking=True).view(len(seeds), steps, batch_size).transpose(0, 1)


def augment_seed(seed: int, iteration: int) -> int:
    """Seed for the augmentation of one (seed, iteration), so augmentation too needs no RNG state."""
    return derive_seed("augment", seed, iteration)


def augment_cifar(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random horizontal flip (p=0.5) and 4-pixel zero-pad + random crop, drawn per image.

    x is (..., C, H, W) on any device. The pad value is 0, which for normalised input is the
    per-channel mean colour.
    """
    if x.dim() < 3:
        raise ValueError(f"expected (..., C, H, W), got shape {tuple(x.shape)}")
    *_, c, h, w = x.shape
    images = x.reshape(-1, c, h, w)
    b, dev = images.shape[0], x.device
    # Draw on the generator's own device so that a given generator gives the same augmentation
    # whichever device x lives on.
    flip = torch.rand(b, generator=generator, device=generator.device).lt(0.5).to(dev)
    shift = torch.randint(0, 2 * _CROP_PAD + 1, (b, 2), generator=generator, device=generator.device).to(dev)
    rows = shift[:, :1] + torch.arange(h, device=dev)  # (b, h) rows of the padded image
    cols = shift[:, 1:] + torch.arange(w, device=dev)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    padded = F.pad(images, (_CROP_PAD,) * 4).permute(0, 2, 3, 1)  # (b, H+8, W+8, c)
    out = padded[torch.arange(b, device=dev)[:, None, None], rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2).contiguous().view(x.shape)


# --- internals ---------------------------------------------------------------------------------


def derive_seed(*parts: object) -> int:
    """A 63-bit seed hashed from parts: unlike seed + offset schemes, nearby seeds, epochs and
    purposes never share or overlap random streams."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@lru_cache(maxsize=256)  # one live epoch per concurrently trained network (up to ~110 MB at n=55k)
def _epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    return torch.randperm(n, generator=_generator(derive_seed("batches", seed, epoch)))


def _split_indices(n: int, val_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, val) indices into the n training examples, each sorted: the split is a set, and
    batch order comes from batch_indices."""
    if not 0 <= val_size < n:
        raise ValueError(f"val_size must be in [0, {n}), got {val_size}")
    perm = torch.randperm(n, generator=_generator(derive_seed("split", seed)))
    return perm[val_size:].sort().values, perm[:val_size].sort().values


def _normalise(x: torch.Tensor, name: str, device) -> torch.Tensor:
    if name == "synthetic":  # generated already standardised
        return x.to(device)
    mean, std = (torch.tensor(s, device=device).view(-1, 1, 1) for s in _STATS[name])
    return (x.to(device).float() / 255 - mean) / std


def _synthetic(shape: tuple[int, ...], classes: int, sizes: tuple[int, int, int]) -> tuple[torch.Tensor, ...]:
    """Class-conditional Gaussian blobs: a fixed random mean pattern per class plus unit noise."""
    dim = math.prod(shape)
    # Scaling by 1/sqrt(2 dim) makes the expected distance between two means the same for any shape.
    means = torch.randn(classes, dim, generator=_generator(derive_seed("synthetic", shape, classes)))
    means *= _SYNTHETIC_SEPARATION / math.sqrt(2 * dim)

    def draw(n: int, part: str) -> tuple[torch.Tensor, torch.Tensor]:
        g = _generator(derive_seed("synthetic", shape, classes, part))
        y = (torch.arange(n) % classes)[torch.randperm(n, generator=g)]  # balanced classes
        x = means[y] + torch.randn(n, dim, generator=g)
        return x.view(n, *shape), y

    return (*draw(sizes[0] + sizes[1], "train"), *draw(sizes[2], "test"))


def _raw_arrays(name: str, roots: list[Path], download: bool) -> tuple[torch.Tensor, ...]:
    for root in roots:
        if _is_present(name, root):
            return _decoded(name, root)
    if not download:
        raise DatasetNotFound(_not_found_message(name, roots))
    from torchvision import datasets  # slow import, only needed off the IDX fast path

    root = roots[0]
    root.mkdir(parents=True, exist_ok=True)
    for train in (True, False):
        getattr(datasets, _TORCHVISION[name])(str(root), train=train, download=True)
    return _decoded(name, root)


def _is_present(name: str, root: Path) -> bool:
    if name in _CIFAR_DIRS:
        return (root / _CIFAR_DIRS[name]).is_dir()
    return _idx_paths(name, root) is not None


def _idx_paths(name: str, root: Path) -> list[Path] | None:
    """The four IDX files, each decompressed (torchvision's layout) or gzipped; None if any is missing."""
    raw = root / _TORCHVISION[name] / "raw"
    paths = []
    for stem in _IDX_FILES:
        found = next((p for p in (raw / stem, raw / f"{stem}.gz") if p.is_file()), None)
        if found is None:
            return None
        paths.append(found)
    return paths


def _decoded(name: str, root: Path) -> tuple[torch.Tensor, ...]:
    key = (name, str(root.resolve()))
    if key not in _RAW_CACHE:
        _RAW_CACHE[key] = _decode_cifar(name, root) if name in _CIFAR_DIRS else _decode_idx(name, root)
    return _RAW_CACHE[key]


def _decode_idx(name: str, root: Path) -> tuple[torch.Tensor, ...]:
    train_x, train_y, test_x, test_y = (_read_idx(p) for p in _idx_paths(name, root))
    return train_x.unsqueeze(1), train_y.long(), test_x.unsqueeze(1), test_y.long()


def _read_idx(path: Path) -> torch.Tensor:
    try:
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = gzip.decompress(data)
    except (EOFError, OSError, zlib.error) as err:  # gzip.BadGzipFile is an OSError
        problem = "truncated" if isinstance(err, EOFError) else f"{type(err).__name__}: {err}"
        raise DatasetDamaged(_damaged_message(path, problem)) from err
    if len(data) < 4 or data[:3] != b"\x00\x00\x08":  # 0x08: uint8 elements
        raise DatasetDamaged(_damaged_message(path, "not a uint8 IDX file"))
    ndim = data[3]
    header = 4 + 4 * ndim
    shape = struct.unpack(f">{ndim}I", data[4:header])
    if len(data) - header != math.prod(shape):
        raise DatasetDamaged(_damaged_message(path, f"header says shape {shape} but it holds {len(data) - header} bytes"))
    # bytearray: torch.frombuffer wants a writable buffer.
    return torch.frombuffer(bytearray(data), dtype=torch.uint8, offset=header).view(shape)


def _decode_cifar(name: str, root: Path) -> tuple[torch.Tensor, ...]:
    from torchvision import datasets

    arrays = []
    for train in (True, False):
        try:  # torchvision checks every file's md5 first
            ds = getattr(datasets, _TORCHVISION[name])(str(root), train=train, download=False)
        except (RuntimeError, EOFError, OSError, ValueError) as err:
            folder = root / _CIFAR_DIRS[name]
            raise DatasetDamaged(f"data set {name!r} in {folder} is damaged (a file is missing, truncated or fails "
                                 f"its md5 check: {err}); delete the folder and download it again "
                                 f"(`python -m lth download {name}`)") from err
        arrays.append(torch.as_tensor(ds.data).permute(0, 3, 1, 2).contiguous())  # NHWC -> NCHW
        arrays.append(torch.as_tensor(ds.targets, dtype=torch.int64))
    return tuple(arrays)


def _not_found_message(name: str, roots: list[Path]) -> str:
    if name in _CIFAR_DIRS:
        looked, expected = [r / _CIFAR_DIRS[name] for r in roots], ""
    else:
        looked = [r / _TORCHVISION[name] / "raw" for r in roots]
        expected = f" (for {', '.join(f + '[.gz]' for f in _IDX_FILES)})"
    return (
        f"data set {name!r} not found. Looked in{expected}:\n"
        + "".join(f"  {p}\n" for p in looked)
        + f"Set LTH_DATA to a folder that holds it, or, online, call load_splits({name!r}, download=True)"
        f" or run `python -m lth download {name}`."
    )


def _damaged_message(path: Path, problem: str) -> str:
    name = next((n for n, folder in _TORCHVISION.items() if folder in path.parts), None)
    again = f" (`python -m lth download {name}`)" if name else ""
    return f"data file {path} is damaged ({problem}); delete it and download it again{again}"


def raw_arrays(name: str, roots: list[Path] | None = None) -> tuple[torch.Tensor, ...]:
    """(train_x, train_y, test_x, test_y) of a stored data set as read from disk (uint8 (N, C, H, W)
    images, int64 labels), decoded once per process; DatasetNotFound, or DatasetDamaged naming the
    file that cannot be read. For pre-flight checks (`lth.checks.check_data`)."""
    if name not in _TORCHVISION:
        raise ValueError(f"unknown stored data set {name!r}; expected one of: {', '.join(_TORCHVISION)}")
    return _raw_arrays(name, data_roots() if roots is None else roots, download=False)
