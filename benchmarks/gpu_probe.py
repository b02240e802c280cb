"""GPU probe (not a benchmark): where a LeNet-300-100 stack's step and evaluation time goes on the
GPU. Prints graph-replayed rates, evaluation with and without TrainConfig.compile, the kernels of
one training step and one evaluation (torch.profiler, eager launches, device time per kernel), and
the step rate under other torch.compile modes. With --layouts, stacked conv nets' steps with
activations and conv weights in channels-last memory order against the default (under vmap a
stack's convolutions are grouped convolutions over (B, M*C, H, W); stored in (B, H, W, M, C) order
they run as NHWC convolutions, and their outputs keep that order).

    python benchmarks/gpu_probe.py [--stack 20] [--modes max-autotune-no-cudagraphs] [--layouts conv2 resnet20]

Earlier findings of this probe (REPRODUCIBILITY.md, Performance): evaluating on a second stream
while training did not pay (28.2 ms per 100 steps + evaluation vs 27.2 ms serial); compiled code
is reused by every level."""
import argparse
import time
from functools import partial

import torch
from torch.profiler import ProfilerActivity, profile

import lth.train.step as training
from lth.data import load_splits
from lth.nets.stack import NetworkStack
from lth.nets.models import build_model
from lth.train.config import TrainConfig
from lth.train.evaluate import evaluate
from lth.train.step import TrainStep, make_optimizer, matmul_precision


def timed(fn, repeats: int) -> float:
    fn()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


def kernel_table(fn, repeats: int, title: str) -> None:
    """Device time of every kernel ``fn`` launches, per call, most expensive first."""
    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(repeats):
            fn()
        torch.cuda.synchronize()
    events = [e for e in prof.key_averages() if e.device_time_total > 0]
    total = sum(e.device_time_total for e in events) / repeats
    launches = sum(e.count for e in events) / repeats
    print(f"\n{title}: {launches:.0f} kernels, {total:.1f} us of device time per call")
    for e in sorted(events, key=lambda e: -e.device_time_total)[:25]:
        print(f"  {e.device_time_total / repeats:8.1f} us  x{e.count / repeats:4.1f}  {e.key[:110]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stack", type=int, default=20)
    parser.add_argument("--eval-batch", type=int, default=10000)
    parser.add_argument("--modes", nargs="*", default=["max-autotune-no-cudagraphs"],
                        help="other torch.compile modes to time the training step with")
    parser.add_argument("--layouts", nargs="*", default=[], choices=["conv2", "resnet20"],
                        help="time these conv stacks with and without channels-last layouts, then stop")
    args = parser.parse_args()
    if args.layouts:
        return layouts(args.layouts, args.stack)
    dev = torch.device("cuda")
    print(torch.__version__, torch.cuda.get_device_name(), flush=True)
    mnist = load_splits("mnist").to(dev)
    M = args.stack

    def make(compile: bool, graphed: bool = True):
        stack = NetworkStack.build(lambda s: build_model("lenet300", (1, 28, 28), 10, seed=s), list(range(M)), dev)
        step = TrainStep(stack, mnist, make_optimizer(list(stack.params.values()), TrainConfig()),
                         list(range(M)), 60, graphed, chunk=100, precision="tf32", compile=compile)
        step.run(0, [1e-3] * 300)
        return stack, step

    def hundred_steps(step):
        done = [300]

        def run():
            step.run(done[0], [1e-3] * 100)
            done[0] += 100
        return run

    with matmul_precision("tf32"):
        for compile in (False, True):
            stack, step = make(compile)
            t_train = timed(hundred_steps(step), 30)
            evaluator = partial(evaluate, stack, batch_size=args.eval_batch, precision="tf32", compile=compile, graphs={})
            t_eval = timed(lambda: [evaluator(mnist.val), evaluator(mnist.test)], 30)
            print(f"compile={compile} M={M}: 100 steps {t_train * 1e3:.2f} ms ({100 / t_train:.0f} steps/s); "
                  f"val+test evaluation {t_eval * 1e3:.2f} ms", flush=True)

        eager_stack, eager_step = make(compile=True, graphed=False)
        kernel_table(lambda: eager_step.run(0, [1e-3]), 20, f"one compiled training step, M={M}")
        evaluator = partial(evaluate, eager_stack, batch_size=args.eval_batch, precision="tf32", compile=True)
        kernel_table(lambda: [evaluator(mnist.val), evaluator(mnist.test)], 10, "val+test evaluation, compiled")
        evaluator = partial(evaluate, eager_stack, batch_size=args.eval_batch, precision="tf32", compile=False)
        kernel_table(lambda: [evaluator(mnist.val), evaluator(mnist.test)], 10, "val+test evaluation, eager")

        for mode in args.modes:
            training.compiled = lambda fn: torch.compile(fn, dynamic=False, mode=mode)
            start = time.perf_counter()
            _, step = make(compile=True)
            warm = time.perf_counter() - start
            t_train = timed(hundred_steps(step), 30)
            print(f"\nmode={mode}: compile + 300 steps {warm:.0f} s; 100 steps {t_train * 1e3:.2f} ms "
                  f"({100 / t_train:.0f} steps/s)", flush=True)


def channels_last_stacked(t: torch.Tensor) -> torch.Tensor:
    """(M, B, C, H, W) or (M, O, I, kh, kw) stored in (B, H, W, M, C) / (O, kh, kw, M, I) order."""
    return t.permute(1, 3, 4, 0, 2).contiguous().permute(3, 0, 4, 1, 2)


def layouts(workloads: list[str], M: int) -> None:
    from benchmarks.throughput import WORKLOADS
    dev = torch.device("cuda")
    data = load_splits("synthetic", synthetic_shape=(3, 32, 32), synthetic_sizes=(45000, 5000, 10000)).to(dev)
    for workload in workloads:
        model_name, _, batch, opt_name, lr = WORKLOADS[workload]
        for compile in (False, True):
            for channels_last in (False, True):
                stack = NetworkStack.build(lambda s: build_model(model_name, (3, 32, 32), 10, seed=s), list(range(M)), dev)
                if channels_last:
                    stack.params = {k: channels_last_stacked(v.detach()).requires_grad_(True) if v.dim() == 5 else v
                                    for k, v in stack.params.items()}
                    stack.set_masks(dict(stack.masks))  # masks in their weights' layout
                cfg = TrainConfig(batch_size=batch, optimizer=opt_name, lr=lr, momentum=0.9)
                step = TrainStep(stack, data, make_optimizer(list(stack.params.values()), cfg), list(range(M)),
                                 batch, True, chunk=100, precision="bf16", compile=compile)
                if channels_last:
                    losses = step.losses
                    step.losses = lambda t, p, b, x, y, a: losses(t, p, b, channels_last_stacked(x), y, a)
                with matmul_precision("bf16"):
                    start = time.perf_counter()
                    try:
                        step.run(0, [lr] * 200)
                    except RuntimeError as error:  # vmapped batch norm refuses channels-last inputs
                        print(f"{workload} M={M} bf16 compile={compile} channels_last={channels_last}: "
                              f"{str(error).splitlines()[0]}", flush=True)
                        continue
                    torch.cuda.synchronize()
                    warm = time.perf_counter() - start
                    done = [200]

                    def hundred():
                        step.run(done[0], [lr] * 100)
                        done[0] += 100
                    t = timed(hundred, 3)
                print(f"{workload} M={M} bf16 compile={compile} channels_last={channels_last}: "
                      f"{100 / t:.1f} steps/s ({100 * M / t:.0f} network-it/s); warm-up + capture {warm:.0f} s", flush=True)


if __name__ == "__main__":
    main()
