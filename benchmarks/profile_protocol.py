"""Probe (not a benchmark): where the LeNet-300-100 paper protocol's wall time goes on a GPU. Runs the
protocol (with the given gin bindings) cold, then warm in the same process (compiled code and CUDA
context reused), with CUDA events around every chunk of training steps and every evaluation: device time
in steps (by stack size), in evaluation, and the rest of the span (small copies, and the device idle while
the host prepares a level, checkpoints or waits), plus Dynamo's compile times of the cold run. Each
``--variant`` adds a warm run with extra bindings (e.g. without mid-level checkpoints).

    python benchmarks/profile_protocol.py 'ImpConfig.levels = 2' 'TrainConfig.compile = True' \\
        --variant 'TrainConfig.checkpoint_every = 50000'

A cold run compiles from nothing only with a fresh Inductor cache (TORCHINDUCTOR_CACHE_DIR=$(mktemp -d)).

(cProfile is no help here: under torch.compile its call counts and cumulative times come out garbled.)"""
import argparse
import time
from collections import defaultdict

import torch

import lth.train.loop
from lth.train.step import TrainStep
from throughput import PROTOCOL, time_protocol


class DeviceTimeline:
    """Timing CUDA events recorded around calls of wrapped functions, summed per kind after a sync."""

    def __init__(self):
        self.marks = []  # (kind, start event, end event)

    def wrap(self, fn, kind):
        def timed(*args, **kwargs):
            start = torch.cuda.Event(enable_timing=True)
            start.record()
            out = fn(*args, **kwargs)
            end = torch.cuda.Event(enable_timing=True)
            end.record()
            self.marks.append((kind(*args), start, end))
            return out
        return timed

    def report(self) -> str:
        torch.cuda.synchronize()
        totals, calls = defaultdict(float), defaultdict(int)
        for kind, start, end in self.marks:
            totals[kind] += start.elapsed_time(end) / 1e3
            calls[kind] += 1
        span = self.marks[0][1].elapsed_time(self.marks[-1][2]) / 1e3
        gaps = [a[2].elapsed_time(b[1]) / 1e3 for a, b in zip(self.marks, self.marks[1:])]
        lines = [f"  {totals[k]:8.2f} s  {calls[k]:6d} calls  {k}" for k in sorted(totals)]
        lines.append(f"  {span - sum(totals.values()):8.2f} s  between them ({sum(g > 0.05 for g in gaps)} gaps over "
                     f"50 ms: {sum(g for g in gaps if g > 0.05):.2f} s)")
        lines.append(f"  {span:8.2f} s  device span, first step to last evaluation")
        self.marks = []
        return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bindings", nargs="*", help="gin bindings added to the protocol's")
    parser.add_argument("--variant", action="append", default=[], help="a warm run with this binding added too")
    parser.add_argument("--eager-evaluation", action="store_true",
                        help="evaluate uncompiled (still CUDA-graph captured) while the steps compile")
    args = parser.parse_args()
    if args.eager_evaluation:
        evaluate = lth.train.loop.evaluate
        lth.train.loop.evaluate = lambda stack, split, batch, precision, compile, **kw: evaluate(
            stack, split, batch, precision, False, **kw)
    timeline = DeviceTimeline()
    TrainStep.run = timeline.wrap(TrainStep.run, lambda step, *_: f"steps, stacks of {step.stack.size}")
    lth.train.loop.evaluate = timeline.wrap(lth.train.loop.evaluate, lambda *_: "evaluation")
    device = torch.device("cuda")
    bindings = PROTOCOL + args.bindings
    for label, extra in [("cold", []), ("warm", [])] + [(f"warm, {v}", [v]) for v in args.variant]:
        start = time.perf_counter()
        result = time_protocol(device, bindings + extra, None)
        print(f"\n{label}: {time.perf_counter() - start:.1f} s wall, {result['levels']} levels, final test accuracy "
              f"by level {result['final_test_accuracy_by_level']}\n{timeline.report()}", flush=True)
        if label == "cold":
            print(torch._dynamo.utils.compile_times(repr="str"), flush=True)


if __name__ == "__main__":
    main()
