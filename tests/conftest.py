import os

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
