import os
import subprocess
import sys

import pytest
import torch

os.environ.setdefault("LTH_QUIET", "1")
# Two cores: more threads than cores makes small matrix products many times slower.
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def synthetic():
    from lth.data import load_splits
    return load_splits("synthetic", synthetic_shape=(1, 8, 8), synthetic_sizes=(600, 120, 200))


@pytest.fixture(autouse=True)
def no_gin_bindings():
    """gin bindings are global: a test that loads a recipe must not configure the next test's objects."""
    import gin
    gin.clear_config()
    yield
    gin.clear_config()


@pytest.fixture
def triton_interpreted():
    """Run Python source in a fresh process with TRITON_INTERPRET=1 (Triton reads it when a kernel is made, so not
    in this process) and no GPU, so Triton's kernels run on the CPU; fails the test with the process's error
    output unless it exits 0. Returns its standard output."""
    def run(source: str, *args: str, timeout: float = 600) -> str:
        env = dict(os.environ, TRITON_INTERPRET="1", CUDA_VISIBLE_DEVICES="")
        done = subprocess.run([sys.executable, "-c", source, *args], env=env, capture_output=True, text=True,
                              timeout=timeout)
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout
    return run
