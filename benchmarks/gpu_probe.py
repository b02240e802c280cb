"""GPU probe (not a benchmark): training-step rate by precision, chunk and stack size."""
import sys
import time

import torch

from lth.data import load_splits
from lth.engine import NetworkStack
from lth.models import build_model
from lth.training import Evaluator, TrainConfig, TrainStep, make_optimizer, matmul_precision

dev = torch.device("cuda")
torch.backends.cudnn.benchmark = True
print(torch.__version__, torch.cuda.get_device_name(), flush=True)
mnist = load_splits("mnist").to(dev)
cifar = load_splits("synthetic", synthetic_shape=(3, 32, 32), synthetic_sizes=(5000, 500, 500)).to(dev)


def rate(model, data, M, bs, opt, precision, chunk, steps):
    st = NetworkStack.build(lambda s: build_model(model, data.input_shape, 10, seed=s), list(range(M)), dev)
    cfg = TrainConfig(batch_size=bs, optimizer=opt, lr=0.01, momentum=0.9)
    with matmul_precision(precision):
        step = TrainStep(st, data, make_optimizer(list(st.params.values()), cfg, True), list(range(M)), bs, True,
                         chunk=chunk, precision=precision)
        step.run(0, [0.01] * (3 + 2 * chunk))
        torch.cuda.synchronize(); t = time.perf_counter()
        step.run(1000, [0.01] * steps)
        torch.cuda.synchronize(); r = steps / (time.perf_counter() - t)
        ev = Evaluator(st, 2000, True, precision)
        ev(data.val); ev(data.test)
        torch.cuda.synchronize(); t = time.perf_counter()
        for _ in range(5):
            ev(data.val); ev(data.test)
        torch.cuda.synchronize(); e = (time.perf_counter() - t) / 5 * 1000
    print(f"{model:8s} M={M:3d} {precision} chunk={chunk:3d}: {r:8.0f} steps/s {r * M:9.0f} net-it/s; "
          f"eval val+test {e:.2f} ms", flush=True)


jobs = [("lenet300", mnist, M, 60, "adam", p, c, 4000) for M in (25, 100) for p in ("fp32", "tf32", "bf16")
        for c in (1, 100)]
jobs += [("conv2", cifar, M, 60, "adam", p, 20, 300) for M in (20, 50) for p in ("fp32", "bf16")]
jobs += [("resnet20", cifar, M, 128, "sgd", p, 10, 60) for M in (20, 48) for p in ("fp32", "bf16")]
for job in jobs:
    try:
        rate(*job)
    except Exception as err:  # noqa: BLE001 (a probe: report and go on)
        print(job[0], job[2:], "FAILED", type(err).__name__, str(err)[:300], flush=True)
print("peak GiB", torch.cuda.max_memory_allocated() / 2**30)
sys.exit(0)
