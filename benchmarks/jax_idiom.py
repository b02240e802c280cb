"""The JAX idiom for training many small networks at once: the whole K-step loop as one compiled
program, ``jit(lax.scan(vmap(train_step)))``, on the LeNet-300-100 workload of `lth`.

M masked LeNet-300-100s (784-300-100-10, ReLU, biases), each with its own batch of ``batch``
training images per step (indices drawn per network), Adam (PyTorch's/optax's arithmetic:
bias-corrected moments, eps outside the square root), masks (density ~0.5, fixed) applied to the
weight gradients, weights zero where masked. A benchmark dependency only: `lth` never imports JAX.

    from jax_idiom import available, time_jax_idiom
    if available(): rate = time_jax_idiom(x, y, networks=20)["steps_per_s"]
"""

from __future__ import annotations

import importlib.util
import os
import time

import numpy as np

SIZES = (784, 300, 100, 10)
PRECISIONS = {"default": None, "highest": "highest"}  # JAX's matmul precision (default: TF32 on recent GPUs)


def available() -> bool:
    """Whether jax can be imported here (no import is attempted when it is not installed)."""
    return importlib.util.find_spec("jax") is not None


def _jax():
    # Share the GPU with PyTorch in one process: allocate on demand instead of taking 75% up front.
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    import jax
    return jax


def build_run(networks: int, batch: int, precision: str = "default", lr: float = 1.2e-3):
    """(init, run): ``init(key) -> state`` and the jitted ``run(state, x, y, idx) -> (state, losses)``
    that trains every network for ``idx.shape[0]`` steps; idx is (K, networks, batch) int32 row
    indices into x (N, 784) float32 and y (N,) int32; losses is (K, networks). Raises ValueError for
    an unknown precision (valid: 'default', 'highest')."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
    jax = _jax()
    import jax.numpy as jnp
    from jax import lax
    dot_precision = PRECISIONS[precision]
    b1, b2, eps = 0.9, 0.999, 1e-8

    def init_one(key):
        params, masks = {}, {}
        for i, (fan_in, fan_out) in enumerate(zip(SIZES[:-1], SIZES[1:])):
            key, kw, km = jax.random.split(key, 3)
            std = (2.0 / (fan_in + fan_out)) ** 0.5  # Glorot normal, as lth's default init
            masks[f"w{i}"] = (jax.random.uniform(km, (fan_in, fan_out)) < 0.5).astype(jnp.float32)
            params[f"w{i}"] = std * jax.random.normal(kw, (fan_in, fan_out)) * masks[f"w{i}"]
            params[f"b{i}"] = jnp.zeros((fan_out,))
        return params, masks

    def loss_fn(params, x, y):
        h = x
        for i in range(len(SIZES) - 1):
            h = jnp.dot(h, params[f"w{i}"], precision=dot_precision) + params[f"b{i}"]
            if i < len(SIZES) - 2:
                h = jax.nn.relu(h)
        logp = jax.nn.log_softmax(h)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

    def train_step(params, m, v, masks, t, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        grads = {k: g * masks[k] if k in masks else g for k, g in grads.items()}  # gradient of w * mask
        m = jax.tree_util.tree_map(lambda a, g: b1 * a + (1 - b1) * g, m, grads)
        v = jax.tree_util.tree_map(lambda a, g: b2 * a + (1 - b2) * g * g, v, grads)
        scale_m, scale_v = 1 / (1 - b1 ** t), 1 / (1 - b2 ** t)
        params = jax.tree_util.tree_map(
            lambda p, a, s: p - lr * (a * scale_m) / (jnp.sqrt(s * scale_v) + eps), params, m, v)
        return params, m, v, loss

    stacked_step = jax.vmap(train_step, in_axes=(0, 0, 0, 0, None, 0, 0))

    def run(state, x, y, idx):
        def body(carry, step_idx):
            params, m, v, masks, t = carry
            t = t + 1
            params, m, v, loss = stacked_step(params, m, v, masks, t.astype(jnp.float32), x[step_idx], y[step_idx])
            return (params, m, v, masks, t), loss
        return lax.scan(body, state, idx)

    def init(key):
        params, masks = jax.vmap(init_one)(jax.random.split(key, networks))
        zeros = lambda: jax.tree_util.tree_map(jnp.zeros_like, params)  # two buffers: both are donated
        return params, zeros(), zeros(), masks, jnp.zeros((), jnp.int32)

    return init, jax.jit(run, donate_argnums=(0,))


def time_jax_idiom(x: np.ndarray, y: np.ndarray, networks: int, batch: int = 60, precision: str = "default",
                   steps_per_call: int = 500, seconds: float = 2.0, seed: int = 0) -> dict:
    """Steps per second of ``networks`` masked LeNet-300-100s trained by ``build_run``'s program.

    x: (N, 784) float32 normalised images; y: (N,) int labels. Each call runs ``steps_per_call``
    steps (one compiled program); the first call (compilation) is not timed, then calls are timed
    for about ``seconds``. Returns dict(steps_per_s, compile_s, device, final_loss)."""
    jax = _jax()
    import jax.numpy as jnp
    import warnings
    warnings.filterwarnings("ignore", message=".*donated buffers were not usable.*")
    init, run = build_run(networks, batch, precision)
    xd, yd = jnp.asarray(np.asarray(x, np.float32).reshape(len(x), -1)), jnp.asarray(np.asarray(y, np.int32))
    key = jax.random.PRNGKey(seed)
    state = init(key)
    idx = jax.random.randint(jax.random.fold_in(key, 1), (steps_per_call, networks, batch), 0, xd.shape[0])
    start = time.perf_counter()
    state, losses = run(state, xd, yd, idx)
    losses.block_until_ready()
    compile_s = time.perf_counter() - start
    start = time.perf_counter()  # one more call to size the timed run
    state, losses = run(state, xd, yd, idx)
    losses.block_until_ready()
    calls = max(1, int(seconds / max(time.perf_counter() - start, 1e-6)))
    start = time.perf_counter()
    for _ in range(calls):
        state, losses = run(state, xd, yd, idx)
    losses.block_until_ready()
    elapsed = time.perf_counter() - start
    final = float(np.asarray(losses[-1]).mean())
    if not np.isfinite(final):
        raise FloatingPointError(f"JAX idiom diverged: final mean loss {final}")
    return dict(steps_per_s=calls * steps_per_call / elapsed, compile_s=compile_s,
                device=str(jax.devices()[0]), final_loss=final)
