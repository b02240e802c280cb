"""The stacked engine and the training loop: masks hold, stacks equal single runs, resume is exact."""

import pytest
import torch

from lth.nets.stack import NetworkStack
from lth.nets.models import build_model
from lth.train.config import TrainConfig
from lth.train.evaluate import evaluate
from lth.train.loop import DivergedError, train


def make_stack(seeds, model="fc", **kwargs):
    kwargs = kwargs or {"widths": (32, 16)}
    return NetworkStack.build(lambda s: build_model(model, (1, 8, 8), 10, seed=s, **kwargs), seeds)


def half_masks(stack, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {n: (torch.rand(p.shape, generator=g) < 0.5).float() for n, p in stack.params.items() if n in stack.kinds}


CONFIGS = {
    "adam": TrainConfig(iterations=30, batch_size=20, lr=1e-2, eval_every=10),
    "adam_wd": TrainConfig(iterations=30, batch_size=20, lr=1e-2, weight_decay=0.1, eval_every=10),
    "sgd_momentum_wd": TrainConfig(iterations=30, batch_size=20, optimizer="sgd", lr=0.1, momentum=0.9,
                                   nesterov=True, weight_decay=5e-4, schedule="cosine", warmup=5, eval_every=10),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_masked_weights_stay_exactly_zero(synthetic, name):
    stack = make_stack([1, 2])
    masks = half_masks(stack)
    stack.set_masks(masks)
    before = {n: p.detach().clone() for n, p in stack.params.items()}
    train(stack, synthetic, CONFIGS[name], data_seeds=[0, 1])
    for n, mask in masks.items():
        p = stack.params[n].detach()
        assert torch.all(p[mask == 0] == 0), f"{n}: pruned weights moved under {name}"
        assert not torch.equal(p[mask == 1], before[n][mask == 1]), f"{n}: kept weights did not train"


def test_batched_stack_equals_single_runs(synthetic):
    cfg = CONFIGS["sgd_momentum_wd"]
    stack = make_stack([3, 4, 5])
    stack.set_masks(half_masks(stack))
    masks = stack.state()["masks"]
    history, _ = train(stack, synthetic, cfg, data_seeds=[7, 8, 9])
    for m, (seed, data_seed) in enumerate(zip([3, 4, 5], [7, 8, 9])):
        single = make_stack([seed])
        single.set_masks({n: v[m:m + 1] for n, v in masks.items()})
        single_history, _ = train(single, synthetic, cfg, data_seeds=[data_seed])
        for n in stack.params:
            torch.testing.assert_close(stack.params[n][m], single.params[n][0], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(history.series("val/loss")[m], single_history.series("val/loss")[0])


def test_batchnorm_models_train_stacked(synthetic):
    from lth.data import load_splits
    data = load_splits("synthetic", synthetic_shape=(3, 8, 8), synthetic_sizes=(200, 40, 40))
    stack = NetworkStack.build(lambda s: build_model("resnet20", (3, 8, 8), 10, seed=s), [0, 1])
    history, _ = train(stack, data, TrainConfig(iterations=4, batch_size=8, optimizer="sgd", lr=0.05, eval_every=2),
                       data_seeds=[0, 1])
    assert history.series("val/accuracy").shape == (2, 3)
    running_mean = next(v for k, v in stack.buffers.items() if k.endswith("running_mean"))
    assert not torch.equal(running_mean[0], running_mean[1])  # each network keeps its own statistics


def test_training_learns(synthetic):
    stack = make_stack([0])
    before = evaluate(stack, synthetic.test)["accuracy"].item()
    history, _ = train(stack, synthetic, TrainConfig(iterations=150, batch_size=30, lr=3e-3, eval_every=50), data_seeds=[0])
    after = history.series("test/accuracy")[0, -1].item()
    assert after > max(0.6, before + 0.2), (before, after)
    assert history.iterations == [0, 50, 100, 150]
    assert "train/accuracy" in history.values  # the full training split is scored at the end


class Kill(Exception):
    pass


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU"))]


@pytest.mark.parametrize("through_store", [False, True])
@pytest.mark.parametrize("device", DEVICES)
def test_resume_after_kill_equals_uninterrupted(synthetic, device, through_store, tmp_path):
    """On a GPU the checkpoint's tensors (and its history's) are taken on the device, without waiting.
    ``through_store``: as the runner does, copied to the host and written by the store's writer thread, then
    read back from disk (on a GPU: history and optimiser state return to the device from the host)."""
    from lth.store import RunDir
    run = RunDir(tmp_path, "exp", "a = 1\n")
    synthetic = synthetic.to(device)
    make = lambda seeds: make_stack(seeds).to(device)
    cfg = TrainConfig(iterations=60, batch_size=20, lr=1e-2, eval_every=10, checkpoint_every=20)
    full = make([1, 2])
    full_history, _ = train(full, synthetic, cfg, data_seeds=[5, 6])

    saved = {}

    def kill_at_50(iteration, stack):
        if iteration == 50:
            raise Kill

    killed = make([1, 2])
    with pytest.raises(Kill):
        train(killed, synthetic, cfg, data_seeds=[5, 6], callbacks=[kill_at_50],
              checkpoint=(lambda s: run.save_checkpoint_in_background("progress", s)) if through_store else
              (lambda s: saved.update(state=s)))
    if through_store:
        saved["state"] = run.load_progress("progress")
        assert all(not t.is_cuda for t in saved["state"]["optimizer"]["state"][0].values())
    assert saved["state"]["iteration"] == 40
    resumed = make([1, 2])
    history, _ = train(resumed, synthetic, cfg, data_seeds=[5, 6], resume=saved["state"])
    for n in full.params:
        assert torch.equal(full.params[n], resumed.params[n]), n
    assert history.iterations == full_history.iterations
    for key in full_history.values:
        assert torch.equal(history.series(key), full_history.series(key)), key


def test_snapshot_is_the_weights_of_iteration_k(synthetic):
    cfg = TrainConfig(iterations=20, batch_size=20, lr=1e-2, eval_every=10)
    stack = make_stack([1])
    _, snapshot = train(stack, synthetic, cfg, data_seeds=[0], snapshot_at=7)
    reference = make_stack([1])
    train(reference, synthetic, TrainConfig(iterations=7, batch_size=20, lr=1e-2, eval_every=10), data_seeds=[0])
    for n in reference.params:
        assert torch.equal(snapshot["params"][n], reference.params[n].detach())


def test_a_resumed_checkpoint_with_a_diverged_evaluation_stops_before_training(synthetic):
    """Checkpoints do not wait for the device, so their last evaluations may be unchecked: resuming checks them."""
    cfg = TrainConfig(iterations=60, batch_size=20, lr=1e-2, eval_every=10, checkpoint_every=20)
    saved = {}
    train(make_stack([1, 2]), synthetic, cfg, data_seeds=[5, 6], checkpoint=lambda s: saved.update(state=s))
    state = saved["state"]
    state["history"]["values"]["val/loss"][-1, 1] = float("nan")
    resumed = make_stack([1, 2])
    steps = []
    with pytest.raises(DivergedError, match=f"second diverged .* by iteration {state['iteration']}"):
        train(resumed, synthetic, cfg, data_seeds=[5, 6], resume=state, labels=["first", "second"],
              callbacks=[lambda it, stack: steps.append(it)])
    assert steps == []


def test_divergence_is_a_clear_error(synthetic):
    stack = make_stack([1, 2])
    with torch.no_grad():
        stack.params["fc.0.weight"][1] = float("nan")
    with pytest.raises(DivergedError, match="second.*diverged"):
        train(stack, synthetic, CONFIGS["adam"], data_seeds=[0, 1], labels=["first", "second"])


def test_bad_train_config_names_the_value():
    with pytest.raises(ValueError, match="'rmsprop'.*adam, sgd"):
        TrainConfig(optimizer="rmsprop")
    with pytest.raises(ValueError, match="compile must be True or False, got 'yes'"):
        TrainConfig(compile="yes")
    with pytest.raises(ValueError, match="'50k'"):
        TrainConfig(iterations="50k").steps(1000)


def test_mask_of_wrong_shape_is_rejected():
    stack = make_stack([0])
    with pytest.raises(ValueError, match="shape"):
        stack.set_masks({"fc.0.weight": torch.ones(1, 3, 3)})
    with pytest.raises(KeyError, match="non-prunable"):
        stack.set_masks({"fc.0.bias": torch.ones_like(stack.params["fc.0.bias"])})


@pytest.mark.parametrize("chunk", [4, 100])
def test_steps_in_chunks_equal_steps_one_at_a_time(synthetic, monkeypatch, chunk):
    """Chunks (one CUDA graph each on a GPU) cross epoch boundaries, lr changes and the snapshot."""
    import lth.train.loop
    cfg = TrainConfig(iterations=37, batch_size=30, optimizer="sgd", lr=0.1, momentum=0.9, schedule="cosine",
                      warmup=6, eval_every=10)
    results = []
    for steps in (1, chunk):
        monkeypatch.setattr(lth.train.loop, "GRAPH_STEPS", steps)
        stack = make_stack([1, 2])
        history, snapshot = train(stack, synthetic, cfg, data_seeds=[3, 4], snapshot_at=13)
        results.append((stack.state()["params"], history, snapshot))
    (one, history_one, snap_one), (chunked, history_chunked, snap_chunked) = results
    assert history_one.iterations == history_chunked.iterations == [0, 10, 20, 30, 37]
    for n in one:
        assert torch.equal(one[n], chunked[n]), n
        assert torch.equal(snap_one["params"][n], snap_chunked["params"][n]), n
    for key in history_one.values:
        assert torch.equal(history_one.series(key), history_chunked.series(key)), key


def test_a_data_parallel_replica_trains_on_its_share_of_each_batch(synthetic, monkeypatch):
    import lth.train.step
    from lth.train.step import TrainStep, make_optimizer
    averaged = []
    monkeypatch.setattr(lth.train.step, "_all_mean", lambda tensors: averaged.append(len(tensors)) or tensors)
    stack = make_stack([0, 1])
    step = TrainStep(stack, synthetic, make_optimizer(list(stack.params.values()), CONFIGS["adam"]), [0, 1], 20,
                     graphed=False, replica=(1, 2))
    seen = []
    original = step.losses
    step.losses = lambda *args: seen.append((args[3].shape, args[4].shape)) or original(*args)
    step.run(0, [1e-2] * 3)
    assert seen == [((2, 10, 1, 8, 8), (2, 10))] * 3  # rows 1, 3, 5, ... of each 20-image batch
    assert averaged == [1 + len(stack.params)] * 3  # the losses and every gradient, every step


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("compile", [False, True])
@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_cuda_graphs_equal_eager_steps_on_a_gpu(synthetic, monkeypatch, optimizer, compile):
    """Captured chunks (each step reads its learning rate from the plan; metrics reach the host
    without a wait) equal the same steps run eagerly (same fused optimiser, never captured) across
    warmup and a cosine schedule; NaN is still caught."""
    from lth.train.step import TrainStep
    cfg = TrainConfig(iterations=250, batch_size=30, optimizer=optimizer, lr=0.05, momentum=0.9, schedule="cosine",
                      warmup=20, eval_every=50, compile=compile)
    data = synthetic.to("cuda")
    results = []
    for warmup in (10**9, TrainStep.WARMUP):
        monkeypatch.setattr(TrainStep, "WARMUP", warmup)
        stack = make_stack([1, 2]).to("cuda")
        history, _ = train(stack, data, cfg, data_seeds=[3, 4])
        results.append((stack.state()["params"], history))
    (eager, eager_history), (graphed, graphed_history) = results
    for name in eager:
        torch.testing.assert_close(graphed[name], eager[name], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(graphed_history.series("val/loss"), eager_history.series("val/loss"))
    stack = make_stack([1, 2]).to("cuda")
    with torch.no_grad():
        stack.params["fc.0.weight"][1] = float("nan")
    with pytest.raises(DivergedError, match="second.*diverged"):
        train(stack, data, cfg, data_seeds=[0, 1], labels=["first", "second"])


def test_stacked_matrix_gradients_arrive_in_their_weights_layout(synthetic):
    """Autograd copies every gradient whose strides differ from its parameter's: stacked matrices are
    stored in the order the batched matmul computes their gradient in, so none is copied."""
    from lth.train.step import stacked_losses
    stack = make_stack([0, 1])
    arrived = {}
    for name, param in stack.params.items():  # a leaf's hook sees the gradient before it is stored
        param.register_hook(lambda grad, name=name: arrived.__setitem__(name, grad.stride()))
    x, y = synthetic.train.x[:20], synthetic.train.y[:20]
    total, _ = stacked_losses(stack.template, stack.params, stack.buffers, x.expand(2, *x.shape), y.expand(2, 20), False)
    total.backward()
    assert arrived == {name: param.stride() for name, param in stack.params.items()}
    assert stack.masks["fc.0.weight"].stride() == stack.params["fc.0.weight"].stride()  # one kernel masks them all


@pytest.mark.parametrize("compile", [False, True])
def test_train_step_equals_a_plain_pytorch_loop(synthetic, compile):
    """TrainStep (batch gather and running loss inside the loss, the update reading bool masks) gives
    the weights and losses of the textbook loop: gather the batch, backward, mask the gradient,
    torch.optim.Adam.step."""
    from lth.data import batch_indices
    from lth.train.step import TrainStep, make_optimizer, stacked_losses
    cfg, seeds, steps = CONFIGS["adam_wd"], [5, 6], 4
    stack, reference = make_stack([1, 2]), make_stack([1, 2])
    for s in (stack, reference):
        s.set_masks(half_masks(s))
    step = TrainStep(stack, synthetic, make_optimizer(list(stack.params.values()), cfg), seeds, cfg.batch_size,
                     graphed=False, compile=compile)
    step.run(0, [cfg.lr] * steps)
    adam = torch.optim.Adam(list(reference.params.values()), lr=cfg.lr, weight_decay=cfg.weight_decay)
    running = torch.zeros(2)
    for i in range(steps):
        idx = batch_indices(len(synthetic.train), cfg.batch_size, seeds, i)
        adam.zero_grad()
        total, losses = stacked_losses(reference.template, reference.params, reference.buffers,
                                       synthetic.train.x[idx], synthetic.train.y[idx], False)
        total.backward()
        for name, mask in reference.masks.items():
            reference.params[name].grad.mul_(mask)
        adam.step()
        running += losses
    for name in stack.params:
        torch.testing.assert_close(stack.params[name], reference.params[name], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(step.take_running_loss(), running)
