"""How long a planned experiment would take on this device, measured rather than guessed (``--dry-run``).

For each training job whose networks can be built before anything has run (level 0 of IMP, every job of
the strong kinds), two training steps of its stack (one where the warm-up took over a second) are timed
after one warm-up step, eagerly (no CUDA graphs, no compilation: on a GPU the estimate is an upper bound,
often by 2-5x), once per distinct stack (parameter shapes, batch size, precision): jobs that differ only
in their masks share the measurement (pruning at initialisation: one job per method, the same stack). A
job that starts from an earlier job's result (IMP's later levels) takes the time per network-step of the
last job measured.
Evaluation is counted as forward passes over the validation and test sets at a third of a training
step's cost per example, every ``eval_every`` iterations.
"""

from __future__ import annotations

import time

from lth.train.config import TrainConfig
from lth.train.step import TrainStep, make_optimizer, matmul_precision, synchronize

WARMUP_STEPS, TIMED_STEPS = 1, 2


def job_seconds(runner) -> dict[str, float | None]:
    """Job key -> estimated seconds of its training on the runner's device (None: no job measurable
    before it, e.g. a compute job first). ``runner``: a `lth.experiments.runner.Runner` (plan_only is fine)."""
    ctx, estimates, per_network_step, measured = runner.context, {}, None, {}
    for job in runner._jobs:
        if job.compute is not None:
            continue
        data = job.data if job.data is not None else ctx.data
        try:
            stack = job.build()
        except Exception:  # needs an earlier job's result (not there in a dry run): use the last rate
            stack = None
        if stack is not None:
            shape = (tuple((name, tuple(p.shape)) for name, p in stack.params.items()), job.train_cfg.batch_size,
                     job.train_cfg.precision, type(stack).__name__)
            if shape not in measured:
                measured[shape] = _seconds_per_network_step(stack, data, job.train_cfg, list(job.data_seeds))
            per_network_step = measured[shape]
        if per_network_step is None:
            estimates[job.key] = None
            continue
        steps = job.train_cfg.steps(len(data.train))
        iterations = steps.total - job.start
        per_example = per_network_step / job.train_cfg.batch_size / 3  # a forward pass is about a third of a step
        evaluations = iterations // steps.eval_every + 1
        evaluation = evaluations * (len(data.val) + len(data.test)) * per_example
        estimates[job.key] = len(job.members) * (iterations * per_network_step + evaluation)
    return estimates


def _seconds_per_network_step(stack, data, cfg: TrainConfig, seeds: list[int]) -> float:
    step = TrainStep(stack, data, make_optimizer(list(stack.params.values()), cfg), seeds, cfg.batch_size,
                     graphed=False, chunk=1, precision=cfg.precision)
    with matmul_precision(cfg.precision):
        start = time.perf_counter()
        step.run(0, [cfg.lr] * WARMUP_STEPS)
        synchronize(stack.device)
        # A step of seconds (a large stack on a CPU) is timed once: the noise is small beside it.
        timed = TIMED_STEPS if time.perf_counter() - start < 1.0 else 1
        start = time.perf_counter()
        step.run(WARMUP_STEPS, [cfg.lr] * timed)
        synchronize(stack.device)
    return (time.perf_counter() - start) / timed / stack.size
