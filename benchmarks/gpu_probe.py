"""GPU probe (not a benchmark): where a stacked LeNet step spends its time; does torch.compile help?"""
import os
import sys
import time

import torch
from torch.profiler import ProfilerActivity, profile

from lth.data import load_splits
from lth.engine import NetworkStack
from lth.models import build_model
from lth.training import TrainConfig, TrainStep, make_optimizer, matmul_precision

dev = torch.device("cuda")
print(torch.__version__, torch.cuda.get_device_name(), flush=True)
mnist = load_splits("mnist").to(dev)


def make(M, graphed, model="lenet300", compiled=False):
    st = NetworkStack.build(lambda s: build_model(model, (1, 28, 28), 10, seed=s), list(range(M)), dev)
    step = TrainStep(st, mnist, make_optimizer(list(st.params.values()), TrainConfig(), graphed), list(range(M)), 60,
                     graphed, chunk=100, precision="tf32")
    if compiled:
        step._losses = torch.compile(step._losses)
    return step


with matmul_precision("tf32"):
    step = make(20, graphed=False)
    step.run(0, [1e-3] * 20)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        step.run(20, [1e-3] * 50)
        torch.cuda.synchronize()
    events = [e for e in prof.key_averages() if e.device_type.name == "CUDA"]
    total = sum(e.self_device_time_total for e in events)
    count = sum(e.count for e in events)
    print(f"eager M=20: {count / 50:.1f} kernels/step, {total / 50:.1f} us GPU time/step", flush=True)
    print(prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=25), flush=True)
    for M in (1, 20):
        for compiled in (False, True):
            try:
                step = make(M, graphed=True, compiled=compiled)
                t0 = time.perf_counter()
                step.run(0, [1e-3] * 210)
                torch.cuda.synchronize()
                warm = time.perf_counter() - t0
                t0 = time.perf_counter()
                step.run(1000, [1e-3] * 5000)
                torch.cuda.synchronize()
                r = 5000 / (time.perf_counter() - t0)
                print(f"graphed M={M} compiled={compiled}: {r:.0f} steps/s ({r * M:.0f} net-it/s), warm-up {warm:.1f} s",
                      flush=True)
            except Exception as err:  # noqa: BLE001
                print(f"M={M} compiled={compiled} FAILED {type(err).__name__}: {str(err)[:800]}", flush=True)
sys.exit(0)
