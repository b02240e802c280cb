"""GPU probe (not a benchmark): several LeNet-300-100 stacks trained at once, each replaying its captured
steps on its own CUDA stream, against the same networks in one stack. A stack of 20 spends most of its
~130 us step in small, latency-bound kernels (REPRODUCIBILITY.md, Performance), so two stacks side by side
might fill the GPU better; and the paper protocol's only sequential part is the tickets' chain (a stack of 5),
beside which its controls could train in other stacks.

    python benchmarks/concurrent_stacks.py 20 10,10 5,15 4,4,4,4,4 5 15 5,45 45

Each argument is a set of stack sizes trained at once (tf32, compiled, CUDA graphs, masks at density 0.5,
Adam, batches of 60): its rate in network-iterations/s and the time of 100 steps of every stack in the set.
Found on one H200: stacks on streams do not beat one stack (benchmarks/results/h200/concurrent_stacks.txt)."""
import argparse
import time

import torch

from gpu_probe import half_masked_lenet300, lenet300_step
from lth.data import load_splits
from lth.train.step import TrainStep, matmul_precision
from throughput import settle_compile_workers


def make_step(size: int, data, device: torch.device) -> TrainStep:
    """A compiled, graphed TrainStep of ``size`` LeNet-300-100s at density 0.5, its graph captured."""
    step = lenet300_step(half_masked_lenet300(size, device), data, graphed=True, compile=True)
    step.run(0, [1e-3] * 300)
    return step


def hundred_steps_at_once(steps: list[TrainStep], streams: list[torch.cuda.Stream], done: int) -> None:
    """The next 100 steps of every stack, each launched on its own stream (the host only enqueues)."""
    main = torch.cuda.current_stream()
    for step, stream in zip(steps, streams):
        stream.wait_stream(main)
        with torch.cuda.stream(stream):
            step.run(done, [1e-3] * 100)
    for stream in streams:
        main.wait_stream(stream)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sets", nargs="+", help="comma-separated stack sizes trained at once, e.g. 5,15")
    parser.add_argument("--repeats", type=int, default=50, help="chunks of 100 steps timed per set")
    parser.add_argument("--no-settle", action="store_true",
                        help="time at once, without waiting for Inductor's compile workers to start")
    parser.add_argument("--single-unbatched", action="store_true",
                        help="a stack of one network runs its forward pass without vmap (plain matmuls, not bmm)")
    args = parser.parse_args()
    if args.single_unbatched:
        import lth.train.step
        batched = lth.train.step.stacked_forward

        def forward(template, params, buffers, x, shared_input=False):
            if next(iter(params.values())).shape[0] != 1:
                return batched(template, params, buffers, x, shared_input)
            one = torch.func.functional_call(template, ({k: v[0] for k, v in params.items()},
                                                        {k: v[0] for k, v in buffers.items()}),
                                             (x if shared_input else x[0],))
            return one.unsqueeze(0)
        lth.train.step.stacked_forward = forward
    device = torch.device("cuda")
    data = load_splits("mnist").to(device)
    print(f"# torch {torch.__version__}, {torch.cuda.get_device_name()}, BLAS {torch.backends.cuda.preferred_blas_library()}"
          f"{', single network unbatched' if args.single_unbatched else ''}", flush=True)
    with matmul_precision("tf32"):
        for spec in args.sets:
            sizes = [int(s) for s in spec.split(",")]
            steps = [make_step(size, data, device) for size in sizes]
            streams = [torch.cuda.Stream(device) for _ in sizes]
            done = 300
            hundred_steps_at_once(steps, streams, done)
            torch.cuda.synchronize()
            if not args.no_settle:
                settle_compile_workers(device)
            start = time.perf_counter()
            for _ in range(args.repeats):
                done += 100
                hundred_steps_at_once(steps, streams, done)
            torch.cuda.synchronize()
            seconds = (time.perf_counter() - start) / args.repeats
            print(f"stacks {spec:>10}: 100 steps of each {seconds * 1e3:7.2f} ms ({seconds * 1e4:6.1f} us a step), "
                  f"{100 * sum(sizes) / seconds:9,.0f} network-it/s", flush=True)


if __name__ == "__main__":
    main()
