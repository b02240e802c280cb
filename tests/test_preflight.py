"""Pre-flight checks: a device, a folder or a data set that cannot work is one clear line before
any training; a damaged data file is named."""

import gzip
import os
import shutil
from pathlib import Path

import pytest
import torch

from lth import checks, data


def test_auto_picks_a_device_and_says_which():
    device, about = checks.check_device("auto")
    assert device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert about.startswith("device auto -> ") and "\n" not in about


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
@pytest.mark.parametrize("name", ["cuda", "cuda:7"])
def test_a_gpu_this_machine_lacks_is_one_line_listing_what_exists(name):
    with pytest.raises(ValueError, match=f"device '{name}'.*this machine has: cpu") as err:
        checks.check_device(name)
    assert "\n" not in str(err.value)


def test_a_gpu_index_beyond_the_count_is_refused(monkeypatch):
    monkeypatch.setattr(checks, "_cuda_usable", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(checks, "_describe_gpu", lambda i: "NVIDIA H200, 139 GiB")
    with pytest.raises(ValueError, match=r"device 'cuda:7' does not exist; this machine has: cpu, cuda:0 \(NVIDIA H200"):
        checks.check_device("cuda:7")


@pytest.mark.parametrize("name", ["foo", "gpu", "cuda:x"])
def test_a_name_that_is_no_device_lists_the_valid_names(name):
    with pytest.raises(ValueError, match=f"'{name}' is not a device name; valid: auto, cpu, cuda, cuda:N") as err:
        checks.check_device(name)
    assert "\n" not in str(err.value)


def test_a_gpu_present_but_unusable_says_so_and_how_to_fix_it(monkeypatch):
    monkeypatch.setattr(checks, "_cuda_usable", lambda: False)
    monkeypatch.setattr(checks, "_gpu_present", lambda: True)
    monkeypatch.setattr(torch.version, "cuda", None)
    with pytest.raises(ValueError, match="GPU is present but this torch .* CPU-only build; install a CUDA build"):
        checks.check_device("cuda")
    device, about = checks.check_device("auto")
    assert device.type == "cpu" and "CPU-only build" in about
    monkeypatch.setattr(torch.version, "cuda", "12.8")

    def old_driver():
        raise RuntimeError("The NVIDIA driver on your system is too old (found version 11040). Please update "
                           "your GPU driver by downloading and installing a new version from the URL: ...")

    monkeypatch.setattr(torch.cuda, "init", old_driver)
    with pytest.raises(ValueError, match=r"driver on your system is too old \(found version 11040\); update the driver"):
        checks.check_device("cuda:0")


def test_cpu_is_always_fine():
    assert checks.check_device("cpu")[0] == torch.device("cpu")


def test_a_writable_folder_is_returned_and_nothing_is_created(tmp_path):
    target = tmp_path / "runs" / "deep"
    assert checks.check_writable(target) == target
    assert list(tmp_path.iterdir()) == []


def test_a_file_in_the_way_is_named(tmp_path):
    (tmp_path / "runs").write_text("not a folder")
    with pytest.raises(ValueError, match=f"cannot write to {tmp_path}/runs/x: {tmp_path}/runs is a file"):
        checks.check_writable(tmp_path / "runs" / "x")


def test_a_folder_without_write_permission_is_named(tmp_path, monkeypatch):
    real_access = os.access
    monkeypatch.setattr(checks.os, "access", lambda p, mode: False if Path(p) == tmp_path else real_access(p, mode))
    with pytest.raises(ValueError, match=f"cannot write to {tmp_path}/runs: {tmp_path} is not writable"):
        checks.check_writable(tmp_path / "runs")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc")
def test_a_read_only_file_system_is_named():
    with pytest.raises(ValueError, match="cannot write to /proc/self/runs"):
        checks.check_writable("/proc/self/runs")


def _copy_mnist(tmp_path):
    src = next(root for root in data.data_roots() if (root / "MNIST" / "raw").is_dir()) / "MNIST" / "raw"
    raw = tmp_path / "MNIST" / "raw"
    shutil.copytree(src, raw)
    for f in raw.iterdir():
        f.chmod(0o644)
    return raw


needs_mnist = pytest.mark.skipif(not any((r / "MNIST" / "raw").is_dir() for r in data.data_roots()),
                                 reason="needs MNIST (set LTH_DATA)")


@needs_mnist
def test_check_data_reads_the_files_and_finds_the_expected_sizes():
    assert checks.check_data("mnist").startswith("data set mnist in ")
    assert checks.check_data("synthetic")
    with pytest.raises(ValueError, match="unknown data set 'mnits'"):
        checks.check_data("mnits")


@needs_mnist
@pytest.mark.parametrize("damage", ["truncated", "corrupted", "wrong size"])
def test_a_damaged_gz_data_file_is_one_line_naming_it(tmp_path, monkeypatch, damage):
    raw = _copy_mnist(tmp_path)
    victim = raw / "t10k-labels-idx1-ubyte.gz"
    blob = victim.read_bytes()
    if damage == "truncated":
        victim.write_bytes(blob[: len(blob) // 2])
    elif damage == "corrupted":
        victim.write_bytes(b"garbage!" + blob[8:])
    else:  # a whole gzip whose content lacks its last bytes
        victim.write_bytes(gzip.compress(gzip.decompress(blob)[:-10]))
    monkeypatch.setenv("LTH_DATA", str(tmp_path))
    with pytest.raises(data.DatasetDamaged, match=f"data file {victim} is damaged") as err:
        data.load_splits("mnist")
    assert "\n" not in str(err.value) and "download" in str(err.value)
    with pytest.raises(ValueError, match=f"data file {victim} is damaged"):
        checks.check_data("mnist")
