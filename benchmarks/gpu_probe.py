"""GPU probe (not a benchmark): where the LeNet paper protocol's time goes between training steps
and evaluations, whether evaluations can overlap training on a second stream, and whether a
torch.compile'd loss keeps its compiled code across levels (new stacks of the same shape)."""
import sys
import time

import torch

from lth.data import load_splits
from lth.engine import NetworkStack
from lth.models import build_model
from lth.training import Evaluator, TrainConfig, TrainStep, make_optimizer, matmul_precision

dev = torch.device("cuda")
print(torch.__version__, torch.cuda.get_device_name(), flush=True)
mnist = load_splits("mnist").to(dev)
M = 20


def make(seed0=0, compile=False):
    st = NetworkStack.build(lambda s: build_model("lenet300", (1, 28, 28), 10, seed=s), list(range(seed0, seed0 + M)), dev)
    step = TrainStep(st, mnist, make_optimizer(list(st.params.values()), TrainConfig(), True), list(range(M)), 60,
                     True, chunk=100, precision="tf32", compile=compile)
    return st, step


def timed(fn, repeats):
    fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / repeats


with matmul_precision("tf32"):
    st, step = make()
    step.run(0, [1e-3] * 300)
    ev = Evaluator(st, 2000, True, "tf32")
    ev16 = Evaluator(st, 2000, True, "bf16")
    ev10k = Evaluator(st, 10000, True, "tf32")
    it = [300]

    def train100():
        step.run(it[0], [1e-3] * 100)
        it[0] += 100

    def evals(e):
        return lambda: [e(mnist.val), e(mnist.test)]

    t_train = timed(train100, 30)
    t_eval = timed(evals(ev), 30)
    t_eval16 = timed(evals(ev16), 30)
    t_eval10k = timed(evals(ev10k), 30)
    t_serial = timed(lambda: (train100(), [v["loss"].cpu() for v in evals(ev)()]), 30)
    print(f"M={M}: 100 steps {t_train * 1e3:.2f} ms ({100 / t_train:.0f} steps/s); val+test eval {t_eval * 1e3:.2f} ms "
          f"(bf16 {t_eval16 * 1e3:.2f} ms, eval batch 10000 {t_eval10k * 1e3:.2f} ms); serial cycle {t_serial * 1e3:.2f} ms",
          flush=True)

    # Overlap: evaluate a frozen copy of the weights on a side stream while the next 100 steps train.
    frozen = NetworkStack(st.template, {k: v.detach().clone() for k, v in st.params.items()},
                          {k: v.clone() for k, v in st.buffers.items()})
    evf = Evaluator(frozen, 2000, True, "tf32")
    side = torch.cuda.Stream()
    keys = list(st.params) + list(st.buffers)
    src = lambda: [st.params[k].detach() if k in st.params else st.buffers[k] for k in keys]
    dst = [frozen.params[k].detach() if k in frozen.params else frozen.buffers[k] for k in keys]
    host = torch.zeros(4, M, pin_memory=True)

    def overlapped():
        torch.cuda.current_stream().wait_stream(side)  # the previous evaluation has read the frozen copy
        torch._foreach_copy_(dst, src())
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            v, t = evf(mnist.val), evf(mnist.test)
            host.copy_(torch.stack([v["loss"], v["accuracy"], t["loss"], t["accuracy"]]), non_blocking=True)
        train100()

    t_over = timed(overlapped, 30)
    print(f"overlapped cycle {t_over * 1e3:.2f} ms (serial {t_serial * 1e3:.2f}, train only {t_train * 1e3:.2f})", flush=True)

    # TrainConfig.compile: does a second and third stack (a new level) reuse the compiled code?
    for level in range(3):
        st2, step2 = make(seed0=100 * level, compile=True)
        t0 = time.perf_counter()
        step2.run(0, [1e-3] * 300)
        torch.cuda.synchronize()
        warm = time.perf_counter() - t0
        n = [300]

        def run2():
            step2.run(n[0], [1e-3] * 100)
            n[0] += 100
        t2 = timed(run2, 30)
        print(f"compiled level {level}: warm-up {warm:.1f} s, 100 steps {t2 * 1e3:.2f} ms ({100 / t2:.0f} steps/s)", flush=True)
sys.exit(0)
