"""GPU probe (not a benchmark): where a LeNet-300-100 stack's step and evaluation time goes on the
GPU (all weights kept). Prints graph-replayed rates, evaluation with and without TrainConfig.compile, the kernels of
one training step and one evaluation (torch.profiler, eager launches, device time per kernel), and
the step rate under other torch.compile modes. With --whole-step, the step as one compiled function
(forward, backward by torch.func.grad, masked update) against lth's TrainStep. With --conv-profile,
stacked conv nets (bf16, compiled): rate, FLOP/s and the kernels of one step, in the default layout
and (--layouts) with conv weights and activations in channels-last order and batch norm as plain ops
(under vmap a stack's convolutions are grouped convolutions over (B, M*C, H, W); stored in
(B, H, W, M, C) order they are NHWC convolutions, which cuDNN runs without transposing), or (streams)
each network as a dense channels-last net on its own CUDA stream. With --fused-mlp, masked stacks (density 0.5)
with the FC tail fused into lth.train.fused_mlp's Triton kernel (at each --tiles setting) against torch's
batched matmuls.

    python benchmarks/gpu_probe.py [--stack 20] [--modes max-autotune-no-cudagraphs]
    python benchmarks/gpu_probe.py --whole-step --stack 1 20
    python benchmarks/gpu_probe.py --update-scalars --stack 20 1 100     # Adam's corrections once per tensor or per weight
    python benchmarks/gpu_probe.py --eager-update --stack 20 1           # uncompiled: lth's update op by op or torch's fused
    python benchmarks/gpu_probe.py --conv-profile resnet20 conv2 --layouts default channels_last streams
    python benchmarks/gpu_probe.py --fused-mlp --stack 20 1 50 100 --tiles 64:8 32:4   # FC tail: Triton kernel or matmuls

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
from lth.train import fused_mlp
from lth.train.step import TrainStep, make_optimizer, matmul_precision
from throughput import settle_compile_workers


def half_masked_lenet300(size: int, device: torch.device) -> NetworkStack:
    """A stack of ``size`` LeNet-300-100s (seeds 0..size-1) with random masks at density 0.5."""
    stack = NetworkStack.build(lambda s: build_model("lenet300", (1, 28, 28), 10, seed=s), list(range(size)), device)
    stack.set_masks({n: (torch.rand_like(m) < 0.5).float() for n, m in stack.masks.items()})
    return stack


def lenet300_step(stack: NetworkStack, data, graphed: bool, compile: bool, kind: type = TrainStep) -> TrainStep:
    """A ``kind`` (TrainStep or a subclass) over ``stack``: Adam with TrainConfig's defaults, batches of 60,
    chunks of 100 steps, tf32."""
    return kind(stack, data, make_optimizer(list(stack.params.values()), TrainConfig()), list(range(stack.size)), 60,
                graphed, chunk=100, precision="tf32", compile=compile)


def hundred_steps(step: TrainStep, start: int, lr: float):
    """A function that runs the next 100 steps of ``step`` (from iteration ``start`` on) each time it is called."""
    done = [start]

    def run():
        step.run(done[0], [lr] * 100)
        done[0] += 100
    return run


def timed(fn, repeats: int) -> float:
    fn()
    torch.cuda.synchronize()
    settle_compile_workers(torch.device("cuda"))
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
    parser.add_argument("--stack", type=int, nargs="+", default=[20])
    parser.add_argument("--eval-batch", type=int, default=10000)
    parser.add_argument("--modes", nargs="*", default=["max-autotune-no-cudagraphs"],
                        help="other torch.compile modes for the loss (forward and backward; the update keeps its own)")
    parser.add_argument("--conv-profile", nargs="*", default=[], choices=["conv2", "resnet20"],
                        help="profile these conv stacks (bf16, compiled), then stop")
    parser.add_argument("--layouts", nargs="+", default=["default"], choices=["default", "unfused", "channels_last", "streams"],
                        help="default: lth's step (Conv-2 with lth.train.fused_conv's convolutions); unfused: "
                             "vmap's grouped convolutions; streams: each network a dense channels-last net on its "
                             "own CUDA stream (not vmap)")
    parser.add_argument("--whole-step", action="store_true", help="time the whole step compiled as one, then stop")
    parser.add_argument("--update-scalars", action="store_true",
                        help="Adam's bias corrections computed once per tensor (lth) against inside the update's kernel, then stop")
    parser.add_argument("--fused-mlp", action="store_true",
                        help="compiled steps with the FC tail fused into Triton kernels (lth's default there) against "
                             "torch's batched matmuls, then stop")
    parser.add_argument("--tiles", nargs="+", default=["auto"],
                        help="with --fused-mlp: BLOCK_K:NUM_WARPS settings of lth.train.fused_mlp's kernel to time "
                             "('auto': lth.train.fused_mlp.tiles, by stack size)")
    parser.add_argument("--eager-update", action="store_true",
                        help="uncompiled steps: lth's update op by op against torch's fused Adam, then stop")
    args = parser.parse_args()
    if args.update_scalars:
        return update_scalars(args.stack)
    if args.eager_update:
        return eager_update(args.stack)
    if args.fused_mlp:
        return compare_steps(args.stack, [("tail as batched matmuls", partial(TrainStep, fused=False), True)] + [
            (f"tail fused (lth.train.fused_mlp), {setting}", partial(fused_tile, setting), True) for setting in args.tiles])
    if args.conv_profile:
        for M in args.stack:
            conv_profile(args.conv_profile, M, args.layouts)
        return
    if args.whole_step:
        return whole_step(args.stack)
    dev = torch.device("cuda")
    print(torch.__version__, torch.cuda.get_device_name(), flush=True)
    mnist = load_splits("mnist").to(dev)
    M = args.stack[0]

    def make(compile: bool, graphed: bool = True):
        stack = NetworkStack.build(lambda s: build_model("lenet300", (1, 28, 28), 10, seed=s), list(range(M)), dev)
        step = TrainStep(stack, mnist, make_optimizer(list(stack.params.values()), TrainConfig()),
                         list(range(M)), 60, graphed, chunk=100, precision="tf32", compile=compile)
        step.run(0, [1e-3] * 300)
        return stack, step

    with matmul_precision("tf32"):
        for compile in (False, True):
            stack, step = make(compile)
            t_train = timed(hundred_steps(step, 300, 1e-3), 30)
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
            t_train = timed(hundred_steps(step, 300, 1e-3), 30)
            print(f"\nmode={mode}: compile + 300 steps {warm:.0f} s; 100 steps {t_train * 1e3:.2f} ms "
                  f"({100 / t_train:.0f} steps/s)", flush=True)


def _adam_corrections_inline(weights, grads, masks, exp_avgs, exp_avg_sqs, steps, lr, beta1, beta2, eps, weight_decay):
    """lth.train.optim's Adam update up to commit 7aebb60: the bias corrections computed in the same
    compiled function as the update, so Inductor recomputes them (two powers, a square root) for every weight.
    (Then decorated with @torch.no_grad(); a with-block here, see lth.train.optim.compile_per_shape.)"""
    with torch.no_grad():
        for p, g, mask, m, v, step in zip(weights, grads, masks, exp_avgs, exp_avg_sqs, steps):
            if mask is not None:
                g = g * mask
            if weight_decay:
                g = g + weight_decay * p
            step.add_(1)
            m.lerp_(g, 1 - beta1)
            v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
            p.sub_((lr / (1 - beta1 ** step)) * m / (v.sqrt() / (1 - beta2 ** step).sqrt() + eps))


class CorrectionsInlineStep(TrainStep):
    """TrainStep (Adam) whose update is `_adam_corrections_inline`, compiled as lth compiles its own."""

    def _update(self, k):
        from lth.train.optim import _adam_state, _compiled
        self.stack.before_update()
        params = [p for p in self.stack.params.values()]
        state = [_adam_state(self.optimizer, p) for p in params]
        group = self.optimizer.param_groups[0]
        _compiled(_adam_corrections_inline)([p.detach() for p in params], [p.grad for p in params],
                    [self.stack.gradient_masks.get(n) for n in self.stack.params],
                    [s["exp_avg"] for s in state], [s["exp_avg_sq"] for s in state], [s["step"] for s in state],
                    self.lr_plan[k], *group["betas"], group["eps"], group["weight_decay"])


class TorchFusedStep(TrainStep):
    """TrainStep (uncompiled) whose update masks the gradients in place and runs torch's fused Adam kernel
    (lth.train.optim.masked_update with torch_fused=True), as the engine runs it on a CPU."""

    def _update(self, k):
        from lth.train.optim import masked_update
        self.stack.before_update()
        names = list(self.stack.params)
        masked_update(self.optimizer, [self.stack.params[n] for n in names],
                      [self.stack.gradient_masks.get(n) for n in names], self.lr_plan[k], torch_fused=True)


AUTO_TILES = fused_mlp.tiles  # lth's own choice by stack size


def fused_tile(setting: str, *args, **kwargs) -> TrainStep:
    """A TrainStep whose fused FC tail runs with ``setting``, 'BLOCK_K:NUM_WARPS' or 'auto' (fused_mlp.tiles is read at every
    launch: the setting holds until the next variant is built), at any stack size."""
    if setting == "auto":
        fused_mlp.tiles = AUTO_TILES
    else:
        block_k, warps = map(int, setting.split(":"))
        fused_mlp.tiles = lambda networks: (block_k, warps)
    return TrainStep(*args, fused=True, **kwargs)


def update_scalars(stacks: list[int]) -> None:
    """LeNet-300-100 (tf32, compiled, graphs, masks at density 0.5): steps/s and the kernels of one step with
    Adam's bias corrections computed once per tensor (lth.train.optim.adam_scalars) and inside the update."""
    compare_steps(stacks, [("corrections inside the update", CorrectionsInlineStep, True), ("lth", TrainStep, True)])


def eager_update(stacks: list[int]) -> None:
    """LeNet-300-100 (tf32, graphs, masks at density 0.5), uncompiled steps (the default TrainConfig.compile):
    lth's update op by op against torch's fused Adam kernel after masking (what a CPU runs), and the compiled step."""
    compare_steps(stacks, [("uncompiled, lth update op by op", TrainStep, False),
                           ("uncompiled, torch's fused Adam", TorchFusedStep, False), ("compiled", TrainStep, True)])


def compare_steps(stacks: list[int], variants: list[tuple[str, type, bool]]) -> None:
    """Steps/s of each (name, TrainStep class, compile) variant per stack size; kernels of one step at the first."""
    dev = torch.device("cuda")
    mnist = load_splits("mnist").to(dev)
    print(torch.__version__, torch.cuda.get_device_name(), flush=True)
    with matmul_precision("tf32"):
        for M in stacks:
            for name, kind, compile in variants:
                stack = half_masked_lenet300(M, dev)
                make = lambda graphed: lenet300_step(stack, mnist, graphed, compile, kind)
                step = make(True)
                step.run(0, [1e-3] * 300)
                rate = 100 / timed(hundred_steps(step, 300, 1e-3), max(10, 2000 // M))
                print(f"lenet300 tf32 M={M} {name}: {rate:,.0f} steps/s ({rate * M:,.0f} network-it/s)", flush=True)
                if M == stacks[0]:
                    eager = make(False)
                    eager.run(0, [1e-3] * 3)
                    kernel_table(lambda: eager.run(0, [1e-3]), 20, f"lenet300 tf32 M={M} {name}, one step")


def _fused_step(template, params, buffers, masks, states, x, y, lr, running, hyper):
    """Forward, backward (torch.func.grad), the masked Adam update and the running loss as one function."""
    from lth.train.optim import _adam, adam_scalars
    from lth.train.step import stacked_losses
    grads, losses = torch.func.grad(lambda p: stacked_losses(template, p, buffers, x, y, False), has_aux=True)(params)
    exp_avgs, exp_avg_sqs, steps = states
    _adam(list(params.values()), [grads[k] for k in params], masks, exp_avgs, exp_avg_sqs,
          adam_scalars(steps, lr, hyper[0], hyper[1]), *hyper)
    running.add_(losses)


def whole_step_kind(options: dict) -> type:
    """A TrainStep (Adam, no weight decay, plain data) whose step is `_fused_step` compiled with Inductor ``options``."""
    from lth.train.optim import _adam_state
    fused = torch.compile(_fused_step, dynamic=False, options=options)

    class WholeStep(TrainStep):
        def _body(self, k):
            opt, names, idx = self.optimizer, list(self.stack.params), self.plan[k]
            state = [_adam_state(opt, self.stack.params[n]) for n in names]
            fused(self.stack.template, {n: self.stack.params[n].detach() for n in names}, self.stack.buffers,
                  [self.stack.gradient_masks.get(n) for n in names],
                  ([s["exp_avg"] for s in state], [s["exp_avg_sq"] for s in state], [s["step"] for s in state]),
                  self.data.train.x[idx], self.data.train.y[idx], self.lr_plan[k], self.running,
                  (*opt.param_groups[0]["betas"], opt.param_groups[0]["eps"], 0.0))
    return WholeStep


def whole_step(stacks: list[int]) -> None:
    """LeNet-300-100 (tf32, graphs, masks at density 0.5): lth's TrainStep against the same step as one
    torch.compile'd function, with and without Inductor's max-autotune: rate and kernels."""
    variants = {"whole step": {"combo_kernels": True},
                "whole step, max-autotune": {"combo_kernels": True, "max_autotune": True, "triton.cudagraphs": False}}
    dev = torch.device("cuda")
    mnist = load_splits("mnist").to(dev)
    with matmul_precision("tf32"):
        for M in stacks:
            kinds = {"TrainStep": TrainStep, **{name: whole_step_kind(options) for name, options in variants.items()}}
            for name, kind in kinds.items():
                for graphed in (True, False):
                    stack = half_masked_lenet300(M, dev)
                    step = lenet300_step(stack, mnist, graphed, compile=True, kind=kind)
                    start = time.perf_counter()
                    step.run(0, [1e-3] * 300)
                    torch.cuda.synchronize()
                    warm = time.perf_counter() - start
                    if graphed:
                        t = timed(hundred_steps(step, 300, 1e-3), 30)
                        stack.check_masks()
                        print(f"lenet300 tf32 M={M} {name}: {100 / t:,.0f} steps/s, warm-up + compile {warm:.1f} s, "
                              f"loss finite {bool(torch.isfinite(step.take_running_loss()).all())}", flush=True)
                    else:
                        kernel_table(lambda: step.run(0, [1e-3]), 20, f"lenet300 tf32 M={M} {name}, one step")


class ExplicitBatchNorm2d(torch.nn.BatchNorm2d):
    """nn.BatchNorm2d's training and evaluation arithmetic as plain tensor ops (vmapped batch norm refuses
    channels-last inputs), in fp32 as lth.nets.models.BatchNorm2d."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float() if x.dtype in (torch.bfloat16, torch.float16) else x
        if self.training:
            mean, var = x.mean((0, 2, 3)), x.var((0, 2, 3), unbiased=False)
            n = x.numel() // x.shape[1]
            with torch.no_grad():
                self.running_mean.lerp_(mean.detach(), self.momentum)
                self.running_var.lerp_(var.detach() * (n / (n - 1)), self.momentum)
                self.num_batches_tracked.add_(1)
        else:
            mean, var = self.running_mean, self.running_var
        scale = torch.rsqrt(var + self.eps) * (self.weight if self.affine else 1)
        shift = (self.bias if self.affine else 0) - mean * scale
        return x * scale[:, None, None] + shift[:, None, None]


def explicit_batch_norm(module: torch.nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, torch.nn.BatchNorm2d):
            setattr(module, name, ExplicitBatchNorm2d(child.num_features, child.eps, child.momentum, child.affine,
                                                      device="meta"))
        else:
            explicit_batch_norm(child)


def channels_last_weights(stack: NetworkStack, step: TrainStep) -> None:
    """Each network's conv weights (M, O, I, kh, kw) stored as (M, O, kh, kw, I): every network's weight
    is channels-last; masks and the (reset) optimiser follow."""
    masks = dict(stack.masks)
    stack.params = {k: v.detach().permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3).requires_grad_(True)
                    if v.dim() == 5 else v for k, v in stack.params.items()}
    stack.masks, stack.gradient_masks = {}, {}
    stack.set_masks(masks)
    step.optimizer.param_groups[0]["params"] = list(stack.params.values())
    step.optimizer.state.clear()


def one_network_loss(template: torch.nn.Module, params: dict, buffers: dict, x: torch.Tensor, y: torch.Tensor,
                     autocast: bool) -> torch.Tensor:
    """Mean cross-entropy of one network (its own tensors, no vmap) on its (B, C, H, W) batch."""
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=autocast):
        logits = torch.func.functional_call(template, (params, buffers), (x,)).float()
    return torch.nn.functional.cross_entropy(logits, y)


class StreamedStep(TrainStep):
    """Each network's forward (and with it, autograd's backward) as its own dense channels-last network
    on its own CUDA stream: the single loop's convolution kernels, M of them at once, instead of cuDNN's
    grouped ones. The update stays one masked_update of the stack. (On a CPU: the same, one after another.)"""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        cuda = self.stack.device.type == "cuda"
        self.streams = [torch.cuda.Stream(self.stack.device) for _ in range(self.stack.size)] if cuda else None
        self.one_loss = training.compiled(one_network_loss) if self.compile else one_network_loss

    def _body(self, k: int) -> None:
        from contextlib import nullcontext
        stack, idx = self.stack, self.plan[k]
        self.optimizer.zero_grad(set_to_none=True)
        x = self.x if self.data.augment else self.data.train.x[idx]
        y = self.data.train.y[idx]
        params = {n: p.unbind(0) for n, p in stack.params.items()}  # one stack of M gradients per tensor
        buffers = {n: b.unbind(0) for n, b in stack.buffers.items()}
        main = torch.cuda.current_stream() if self.streams else None
        losses = []
        for m in range(stack.size):
            if self.streams:
                self.streams[m].wait_stream(main)
            with torch.cuda.stream(self.streams[m]) if self.streams else nullcontext():
                losses.append(self.one_loss(stack.template, {n: v[m] for n, v in params.items()},
                                            {n: v[m] for n, v in buffers.items()},
                                            x[m].contiguous(memory_format=torch.channels_last), y[m], self.autocast))
        for stream in self.streams or ():
            main.wait_stream(stream)
        losses = torch.stack(losses)
        losses.sum().backward(self.one)
        self._update(k)
        self.running += losses.detach()


def channels_last(stack: NetworkStack, step: TrainStep) -> None:
    """Each network's conv weights (M, O, I, kh, kw) stored as (M, O, kh, kw, I) (the grouped conv's
    (M*O, I, kh, kw) weight is then a channels-last view), inputs (M, B, C, H, W) stored as (B, H, W, M, C)
    (its (B, M*C, H, W) input is NHWC), batch norm as explicit ops; masks and optimiser state follow."""
    explicit_batch_norm(stack.template)
    channels_last_weights(stack, step)
    losses = step.losses

    def channels_last_losses(template, params, buffers, x, y, autocast, fused=None):
        x = x.permute(1, 3, 4, 0, 2).contiguous().permute(3, 0, 4, 1, 2)
        return losses(template, params, buffers, x, y, autocast, fused)

    def channels_last_indexed(template, params, buffers, x, y, idx, running, autocast, fused=None):
        total, each = channels_last_losses(template, params, buffers, x[idx], y[idx], autocast, fused)
        running.add_(each)
        return total
    step.losses, step.indexed_losses = channels_last_losses, channels_last_indexed


def conv_step(workload: str, data, M: int, graphed: bool, layout: str = "default"):
    from side_by_side import WORKLOADS
    model_name, _, batch, opt_name, lr = WORKLOADS[workload]
    stack = NetworkStack.build(lambda s: build_model(model_name, (3, 32, 32), 10, seed=s), list(range(M)), data.train.x.device)
    stack.set_masks({n: (torch.rand(m.shape, device=m.device) < 0.5).float() for n, m in stack.masks.items()})
    cfg = TrainConfig(batch_size=batch, optimizer=opt_name, lr=lr, momentum=0.9, weight_decay=1e-4 if opt_name == "sgd" else 0)
    kind = StreamedStep if layout == "streams" else TrainStep
    extra = {} if layout == "default" else {"fused": False}
    step = kind(stack, data, make_optimizer(list(stack.params.values()), cfg), list(range(M)), batch, graphed,
                chunk=100, precision="bf16", compile=True, **extra)
    if layout == "channels_last":
        channels_last(stack, step)
    elif layout == "streams":
        channels_last_weights(stack, step)
    return stack, step, batch, lr


def conv_rate(step: TrainStep, lr: float) -> tuple[float, float]:
    """(steps/s over >= 2 s of graph replays, seconds of warm-up + compilation + capture)."""
    start = time.perf_counter()
    step.run(0, [lr] * 200)
    torch.cuda.synchronize()
    warm = time.perf_counter() - start
    hundred = hundred_steps(step, 200, lr)
    repeats = max(2, int(2.0 / timed(hundred, 1)))
    return 100 / timed(hundred, repeats), warm


def step_flops(workload: str, data, M: int) -> float:
    """FLOPs of one step of the stacked workload, 3x its forward pass (counted in the default layout: under
    vmap, batch norm rejects channels-last inputs)."""
    from torch.utils.flop_counter import FlopCounterMode
    stack, step, _, _ = conv_step(workload, data, M, False)
    step._prepare(0, [0.0])
    idx = step.plan[0]
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        step.losses(stack.template, stack.params, stack.buffers, data.train.x[idx], data.train.y[idx], True)
    return 3 * counter.get_total_flops()


def conv_profile(workloads: list[str], M: int, layouts: list[str]) -> None:
    """Rate, peak memory, FLOP/s and the kernels of one step of stacked conv nets (bf16, compiled, synthetic
    CIFAR-shaped data without augmentation, masks at density 0.5) in each layout.
    FLOPs: 3x the forward pass's (torch's FlopCounterMode counts a grouped convolution's backward as if
    it were not grouped, M times too many)."""
    dev = torch.device("cuda")
    data = load_splits("synthetic", synthetic_shape=(3, 32, 32), synthetic_sizes=(45000, 5000, 10000)).to(dev)
    with matmul_precision("bf16"):
        for workload in workloads:
            for layout in layouts:
                stack, step, batch, lr = conv_step(workload, data, M, True, layout)
                try:
                    rate, warm = conv_rate(step, lr)
                except RuntimeError as error:
                    print(f"{workload} M={M} {layout}: {str(error).splitlines()[0]}", flush=True)
                    continue
                flops = step_flops(workload, data, M)
                print(f"{workload} bf16 M={M} {layout}: {rate:,.1f} steps/s ({rate * M:,.0f} network-it/s, "
                      f"{rate * M * batch:,.0f} images/s), {flops / 1e9:.0f} GFLOP per step (3x forward) -> "
                      f"{flops * rate / 1e12:.1f} TFLOP/s; warm-up + compile {warm:.0f} s; peak "
                      f"{torch.cuda.max_memory_allocated() / 2**30:.1f} GiB", flush=True)
                _, eager, _, _ = conv_step(workload, data, M, False, layout)
                eager.run(0, [lr] * 3)
                kernel_table(lambda: eager.run(0, [lr]), 5, f"{workload} bf16 M={M} {layout}, one step")
                del stack, step, eager
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()


if __name__ == "__main__":
    main()
