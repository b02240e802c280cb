"""Pre-flight checks, run before any training so that the machine's faults are one clear line:
the device (`check_device`), the output folder (`check_writable`), the data set (`check_data`).

Each raises ValueError with one line naming the bad value and what would work.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

import torch

from lth import data as datasets

# Shapes of the stored data sets as decoded by lth.data: (train images, test images), uint8 (N, C, H, W).
_SHAPES = {
    "mnist": ((60000, 1, 28, 28), (10000, 1, 28, 28)),
    "fashion_mnist": ((60000, 1, 28, 28), (10000, 1, 28, 28)),
    "cifar10": ((50000, 3, 32, 32), (10000, 3, 32, 32)),
    "cifar100": ((50000, 3, 32, 32), (10000, 3, 32, 32)),
}
_INSTALL = "https://pytorch.org/get-started/locally/"


def check_device(name: str | torch.device) -> tuple[torch.device, str]:
    """(device, description) for a device name: 'auto', 'cpu', 'cuda', 'cuda:N', 'mps'.

    'auto' picks the first GPU if one is usable, else the CPU; the description (one line, for the
    caller to print) says which and why. ValueError (one line) for a name torch does not know, a
    device this machine lacks (listing those it has) or a GPU that is there but unusable (saying
    why and how to install a matching torch)."""
    text = str(name).strip()
    if text == "auto":
        if _cuda_usable():
            device = torch.device("cuda:0")
            return device, f"device auto -> {device} ({_describe_gpu(0)})"
        trouble = _gpu_trouble()
        return torch.device("cpu"), "device auto -> cpu" + (f" ({trouble})" if trouble else " (no GPU found)")
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise ValueError(f"device {text!r} is not a device name; valid: auto, cpu, cuda, cuda:N; "
                         f"{_existing()}") from None
    if device.type == "cpu":
        return device, "device cpu"
    if device.type == "cuda":
        return _check_cuda(device, text)
    if device.type == "mps":
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return device, "device mps (Apple GPU)"
        raise ValueError(f"device {text!r}: no Apple GPU (MPS) on this machine; {_existing()}")
    raise ValueError(f"device {text!r} is not supported here; valid: auto, cpu, cuda, cuda:N; {_existing()}")


def _check_cuda(device: torch.device, text: str) -> tuple[torch.device, str]:
    if not _cuda_usable():
        trouble = _gpu_trouble()
        raise ValueError(f"device {text!r}: " + (trouble or "this machine has no GPU") + f"; {_existing()}")
    count = torch.cuda.device_count()
    index = 0 if device.index is None else device.index
    if index >= count:
        raise ValueError(f"device {text!r} does not exist; {_existing()}")
    device = torch.device("cuda", index)
    try:  # a GPU that torch sees may still refuse work (no kernel for its architecture, exclusive mode, ...)
        (torch.ones(1, device=device) + 1).item()
    except Exception as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"device {text!r} ({_describe_gpu(index)}) is not usable: {first}; "
                         f"see {_INSTALL} for a torch that matches it") from None
    return device, f"device {device} ({_describe_gpu(index)})"


def _cuda_usable() -> bool:
    try:
        return torch.cuda.is_available() and torch.cuda.device_count() > 0
    except Exception:
        return False


def _gpu_present() -> bool:
    return Path("/dev/nvidia0").exists() or shutil.which("nvidia-smi") is not None


def _gpu_trouble() -> str | None:
    """Why a GPU that is physically there cannot be used (None if there seems to be none)."""
    if not _gpu_present():
        return None
    if torch.version.cuda is None:
        return (f"an NVIDIA GPU is present but this torch ({torch.__version__}) is a CPU-only build; install a "
                f"CUDA build of torch ({_INSTALL})")
    try:
        torch.cuda.init()
    except Exception as err:  # e.g. "The NVIDIA driver on your system is too old (found version 11040)"
        reason = " ".join(str(err).split())
        reason = re.split(r"(?<=\))\. ", reason)[0] if "too old" in reason else reason[:200]
        return (f"an NVIDIA GPU is present but torch {torch.__version__} (CUDA {torch.version.cuda}) cannot use it: "
                f"{reason}; update the driver or install a torch built for its CUDA version ({_INSTALL})")
    return (f"an NVIDIA GPU is present but torch {torch.__version__} (CUDA {torch.version.cuda}) sees none "
            f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}); check the driver "
            f"with nvidia-smi, or install a torch that matches it ({_INSTALL})")


def _describe_gpu(index: int) -> str:
    props = torch.cuda.get_device_properties(index)
    return f"{props.name}, {props.total_memory / 2**30:.0f} GiB"


def _existing() -> str:
    devices = ["cpu"]
    if _cuda_usable():
        devices += [f"cuda:{i} ({_describe_gpu(i)})" for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        devices.append("mps")
    return "this machine has: " + ", ".join(devices)


def check_writable(folder: str | Path) -> Path:
    """The folder, resolved, once it is known that it exists or can be made, and can be written.

    Creates nothing (a probe file in the nearest existing folder is removed at once). ValueError
    naming the folder and the reason: a file in the way, no write permission, a read-only disk."""
    path = Path(folder).expanduser()
    path = path if path.is_absolute() else Path.cwd() / path
    existing = path
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"cannot write to {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write to {path}: {existing} is not writable by this user")
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".lth-write-check.")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise ValueError(f"cannot write to {path}: {existing}: {err.strerror or err}") from None
    return path.resolve()


def check_data(name: str) -> str:
    """One line describing where data set ``name`` was found, once its files are read and have the
    expected sizes. ValueError (one line) when it is missing, a file is damaged or a size differs.
    The decoded arrays stay cached, so loading the data next costs nothing more."""
    if name == "synthetic":
        return "data set synthetic (generated)"
    if name not in _SHAPES:
        raise ValueError(f"unknown data set {name!r}; expected one of: {', '.join(datasets.DATASETS)}")
    for root in datasets.data_roots():
        try:
            train_x, train_y, test_x, test_y = datasets.raw_arrays(name, [root])
        except datasets.DatasetNotFound:
            continue
        except datasets.DatasetDamaged as err:
            raise ValueError(str(err)) from None
        expected_train, expected_test = _SHAPES[name]
        for what, got, want in (("training images", train_x.shape, expected_train),
                                ("test images", test_x.shape, expected_test),
                                ("training labels", train_y.shape, expected_train[:1]),
                                ("test labels", test_y.shape, expected_test[:1])):
            if tuple(got) != want:
                raise ValueError(f"data set {name!r} in {root}: {what} have shape {tuple(got)}, expected {want}; "
                                 f"delete it and download it again (`python -m lth download {name}`)")
        return f"data set {name} in {root}"
    raise ValueError(" ".join(datasets._not_found_message(name, datasets.data_roots()).split()))
