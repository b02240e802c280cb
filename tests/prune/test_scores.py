"""Pruning at initialisation and random pruning: exact densities, the layer rules, the scores by
hand, layer collapse (lth.prune.scores, lth.prune.densities)."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from lth.prune import densities as layer_rules, scores as pruners
from lth.prune import targets as pruning
from lth.data import batch_indices, load_splits
from lth.nets.stack import NetworkStack
from lth.nets.models import build_model

SHAPE = (1, 8, 8)
WIDTHS = (32, 16)  # layers of 2048, 512 and 160 weights


def fc_stack(seeds=(0, 1), widths=WIDTHS):
    return NetworkStack.build(lambda s: build_model("fc", SHAPE, 10, seed=s, widths=widths), list(seeds))


def kept(masks):
    return sum(m.flatten(1).sum(1) for m in masks.values()).tolist()


def sizes_shapes_kinds(stack):
    return pruning.layer_sizes(stack), layer_rules.layer_shapes(stack), stack.kinds


# ---- exact densities ------------------------------------------------------------------------

@pytest.mark.parametrize("method", pruners.SCORED)
@pytest.mark.parametrize("scope", pruning.SCOPES)
def test_scored_methods_hit_the_target_count_exactly(synthetic, method, scope):
    stack = fc_stack()
    total = sum(pruning.layer_sizes(stack).values())
    for density in (0.5, 0.1, 0.013):
        masks = pruners.prune_at_init(stack, method, density, scope, data=synthetic, batch_size=20, rounds=20,
                                  layer_collapse_ok=True)  # GraSP empties a layer at 1.3%: tested below
        assert kept(masks) == [pruning.keep_count(total, density)] * 2
        if scope == "layerwise":  # every layer at the density, to the weight
            for name, mask in masks.items():
                assert abs(float(mask[0].float().mean()) - density) <= 1 / mask[0].numel()
    assert all(torch.all(m == 1) for m in stack.masks.values()), "prune_at_init must not set masks itself"


def test_synflow_with_its_100_rounds_hits_the_target_count_exactly():
    stack = fc_stack()
    masks = pruners.prune_at_init(stack, "synflow", 0.013)
    assert kept(masks) == [pruning.keep_count(2720, 0.013)] * 2


@pytest.mark.parametrize("method", pruners.RANDOM)
def test_random_methods_hit_the_rule_counts_exactly(method):
    stack = fc_stack()
    sizes, shapes, kinds = sizes_shapes_kinds(stack)
    density = 0.2
    masks = pruners.prune_at_init(stack, method, density, seeds=[5, 6])
    groups = layer_rules.random_targets(sizes, shapes, kinds, density, method.removeprefix("random_"))
    pruning.check_density(masks, groups)
    assert kept(masks) == [pruning.keep_count(sum(sizes.values()), density)] * 2


def test_masks_apply_through_the_stack(synthetic):
    stack = fc_stack()
    stack.set_masks(pruners.prune_at_init(stack, "snip", 0.1, data=synthetic, batch_size=20))
    assert torch.allclose(stack.density(), torch.full((2,), pruning.keep_count(2720, 0.1) / 2720))
    for name, mask in stack.masks.items():
        assert torch.all(stack.params[name][mask == 0] == 0)


def test_synflow_and_magnitude_keep_already_pruned_weights_pruned():
    stack = fc_stack()
    first = pruners.prune_at_init(stack, "magnitude", 0.5)
    stack.set_masks(first)
    for method in ("magnitude", "synflow"):
        second = pruners.prune_at_init(stack, method, 0.2, rounds=10)
        assert all(torch.all(second[n] <= first[n]) for n in first)


# ---- layer density rules ------------------------------------------------------------------------

LENET = {"fc.0.weight": (300, 784), "fc.1.weight": (100, 300), "fc.2.weight": (10, 100)}
CONV = {"conv.0.weight": (16, 3, 3, 3), "conv.1.weight": (32, 16, 3, 3), "fc.0.weight": (64, 512),
        "fc.1.weight": (10, 64)}


def rule(shapes, density, name):
    sizes = {n: math.prod(s) for n, s in shapes.items()}
    kinds = {n: "fc" for n in shapes}
    return sizes, layer_rules.layer_densities(sizes, shapes, kinds, density, name)


@pytest.mark.parametrize("name", layer_rules.RULES)
@pytest.mark.parametrize("density", [0.5, 0.05, 0.01])
def test_every_rule_keeps_the_target_in_total(name, density):
    for shapes in (LENET, CONV):
        sizes, densities = rule(shapes, density, name)
        assert sum(densities[n] * sizes[n] for n in sizes) == pytest.approx(density * sum(sizes.values()), rel=1e-9)
        assert all(0 <= d <= 1 for d in densities.values())
        total = pruning.keep_count(sum(sizes.values()), density)
        assert sum(layer_rules.keep_counts(sizes, densities, total).values()) == total


def test_erk_follows_its_formula_and_is_denser_in_smaller_layers():
    sizes, densities = rule(CONV, 0.1, "erk")
    raw = {n: sum(s) / math.prod(s) for n, s in CONV.items()}
    ratios = {n: densities[n] / raw[n] for n in CONV if densities[n] < 1}
    assert len(ratios) >= 3 and max(ratios.values()) == pytest.approx(min(ratios.values()))  # one epsilon
    sizes, densities = rule(LENET, 0.02, "erk")  # fully connected: smaller layers, higher density
    by_size = sorted(sizes, key=sizes.get)
    assert [densities[n] for n in by_size] == sorted(densities.values(), reverse=True)
    assert densities["fc.2.weight"] > 10 * densities["fc.0.weight"]


def test_er_ignores_kernel_dims_and_erk_counts_them():
    _, er = rule(CONV, 0.1, "er")
    _, erk = rule(CONV, 0.1, "erk")
    n_out, n_in = CONV["conv.1.weight"][:2]
    n2_out, n2_in = CONV["fc.0.weight"]
    assert er["conv.1.weight"] / er["fc.0.weight"] == pytest.approx(
        ((n_in + n_out) / (n_in * n_out)) / ((n2_in + n2_out) / (n2_in * n2_out)))
    assert er != erk


def test_erk_makes_overfull_layers_dense_and_resolves_epsilon():
    sizes, densities = rule(LENET, 0.2, "erk")
    assert densities["fc.2.weight"] == 1.0  # eps * 110/1000 would be 3.7
    eps = (0.2 * sum(sizes.values()) - 1000) / (784 + 300 + 300 + 100)  # re-solved over the other two
    assert densities["fc.1.weight"] == pytest.approx(eps * 400 / 30000) and densities["fc.1.weight"] < 1
    assert densities["fc.0.weight"] == pytest.approx(eps * 1084 / 235200)
    sizes, densities = rule(LENET, 0.5, "erk")  # two rounds: the output layer, then the middle one
    assert densities["fc.2.weight"] == densities["fc.1.weight"] == 1.0
    assert densities["fc.0.weight"] == pytest.approx((0.5 * sum(sizes.values()) - 31000) / 235200)


def test_balanced_keeps_equal_counts_where_not_capped():
    sizes, densities = rule(LENET, 0.05, "balanced")
    counts = {n: densities[n] * sizes[n] for n in sizes}
    assert counts["fc.0.weight"] == pytest.approx(counts["fc.1.weight"])
    assert densities["fc.2.weight"] == 1.0  # 1,000 weights < the equal share: capped, the rest shared
    sizes, densities = rule(LENET, 0.5, "balanced")
    assert densities["fc.2.weight"] == 1.0 and densities["fc.1.weight"] == 1.0


def test_pyramidal_is_geometric_in_depth():
    _, densities = rule(CONV, 0.2, "pyramidal")
    d = list(densities.values())
    p = d[0]
    assert d == pytest.approx([p ** depth for depth in range(1, len(d) + 1)])


def test_uniform_is_the_density_everywhere():
    _, densities = rule(CONV, 0.3, "uniform")
    assert set(densities.values()) == {0.3}


def test_keep_counts_round_to_an_exact_total_near_the_ideal():
    sizes = {"a": 7, "b": 7, "c": 7}
    counts = layer_rules.keep_counts(sizes, {"a": 0.5, "b": 0.5, "c": 0.5}, 10)
    assert sum(counts.values()) == 10 and all(3 <= c <= 4 for c in counts.values())
    with pytest.raises(ValueError, match="cannot keep"):
        layer_rules.keep_counts(sizes, {"a": 1, "b": 1, "c": 1}, 22)


# ---- determinism, collapse, errors ----------------------------------------------------------------

@pytest.mark.parametrize("method", ["snip", "grasp", "synflow", "random_erk"])
def test_a_fixed_seed_gives_the_same_masks(synthetic, method):
    one = pruners.prune_at_init(fc_stack(), method, 0.1, data=synthetic, seeds=[7, 8], batch_size=20, rounds=20)
    two = pruners.prune_at_init(fc_stack(), method, 0.1, data=synthetic, seeds=[7, 8], batch_size=20, rounds=20)
    assert all(torch.equal(one[n], two[n]) for n in one)


def test_random_masks_differ_between_seeds_and_not_with_the_stack():
    stack = fc_stack()
    masks = pruners.prune_at_init(stack, "random_uniform", 0.1, seeds=[1, 2])
    assert not torch.equal(masks["fc.0.weight"][0], masks["fc.0.weight"][1])
    alone = pruners.prune_at_init(fc_stack(seeds=(1,)), "random_uniform", 0.1, seeds=[2])
    assert torch.equal(alone["fc.0.weight"][0], masks["fc.0.weight"][1])  # a network's mask is its own


def test_layer_collapse_raises_naming_the_layer_unless_allowed():
    stack = fc_stack()
    with torch.no_grad():
        stack.params["fc.1.weight"].mul_(1e-6)  # the smallest weights of all: magnitude drops them first
    with pytest.raises(pruners.LayerCollapse, match=r"fc\.1\.weight \(networks \[0, 1\]\)"):
        pruners.prune_at_init(stack, "magnitude", 0.2)
    masks = pruners.prune_at_init(stack, "magnitude", 0.2, layer_collapse_ok=True)
    assert kept({"x": masks["fc.1.weight"]}) == [0, 0]
    with pytest.raises(pruners.LayerCollapse, match=r"fc\.2\.weight"):
        pruners.prune_at_init(fc_stack(), "random_pyramidal", 0.1)  # p^3 of 160 weights rounds to 0


def test_unknown_method_and_bad_density_say_what_is_valid(synthetic):
    stack = fc_stack()
    with pytest.raises(ValueError, match="unknown pruning-at-init method 'snipp'; valid: snip, grasp, synflow"):
        pruners.prune_at_init(stack, "snipp", 0.1)
    for density in (0, 1.5, -0.1):
        with pytest.raises(ValueError, match=r"density must be in \(0, 1\]"):
            pruners.prune_at_init(stack, "snip", density, data=synthetic)
    with pytest.raises(ValueError, match="snip scores weights on a minibatch: pass data"):
        pruners.prune_at_init(stack, "snip", 0.1)
    with pytest.raises(ValueError, match="unknown pruning scope"):
        pruners.prune_at_init(stack, "magnitude", 0.1, scope="local")


# ---- the scores ---------------------------------------------------------------------------------

def test_synflow_needs_no_data_and_ignores_it():
    other = load_splits("synthetic", synthetic_shape=SHAPE, synthetic_sizes=(300, 50, 50), synthetic_classes=10)
    shifted = load_splits("synthetic", synthetic_shape=SHAPE, synthetic_sizes=(500, 60, 60), seed=3)
    stack = fc_stack()
    without = pruners.prune_at_init(stack, "synflow", 0.05, rounds=20)
    for data in (other, shifted):
        with_data = pruners.prune_at_init(stack, "synflow", 0.05, data=data, rounds=20)
        assert all(torch.equal(without[n], with_data[n]) for n in without)


def test_synflow_on_a_batchnorm_resnet_is_finite_and_leaves_statistics_alone():
    stack = NetworkStack.build(lambda s: build_model("resnet20", (3, 8, 8), 10, seed=s, width=4), [0])
    before = {n: b.clone() for n, b in stack.buffers.items()}
    scores = pruners.synflow_scores(stack, (3, 8, 8))
    assert all(torch.isfinite(s).all() and (s >= 0).all() for s in scores.values())
    assert sum(float(s.sum()) for s in scores.values()) > 0
    masks = pruners.prune_at_init(stack, "synflow", 0.1, input_shape=(3, 8, 8), rounds=5, layer_collapse_ok=True)
    assert kept(masks) == [pruning.keep_count(sum(pruning.layer_sizes(stack).values()), 0.1)]
    assert all(torch.equal(before[n], stack.buffers[n]) for n in before)
    with pytest.raises(ValueError, match="input_shape"):
        pruners.prune_at_init(stack, "synflow", 0.1)


def by_hand(stack, synthetic, seeds, batch_size, grad_fn):
    """Per network, with a plain module: the quantity grad_fn(module, x, y) returns."""
    out = []
    for m, seed in enumerate(seeds):
        model = build_model("fc", SHAPE, 10, seed=0, widths=(4,))
        state = {n: v[m].detach().clone() for n, v in stack.params.items()}
        model.load_state_dict(state)
        idx = batch_indices(len(synthetic.train), batch_size, [seed], 0)[0]
        out.append(grad_fn(model, synthetic.train.x[idx], synthetic.train.y[idx]))
    return out


def test_snip_scores_are_w_times_grad_normalised():
    data = load_splits("synthetic", synthetic_shape=SHAPE, synthetic_sizes=(300, 50, 50))
    stack = fc_stack(seeds=(3, 4), widths=(4,))
    seeds = [11, 12]
    scores = pruners.snip_scores(stack, data, seeds, batch_size=16)

    def snip(model, x, y):
        loss = F.cross_entropy(model(x), y)
        weights = [model.fc[0].weight, model.fc[1].weight]
        grads = torch.autograd.grad(loss, weights)
        raw = [(w * g).abs() for w, g in zip(weights, grads)]
        total = sum(r.sum() for r in raw)
        return [r / total for r in raw]

    for m, expected in enumerate(by_hand(stack, data, seeds, 16, snip)):
        for name, want in zip(("fc.0.weight", "fc.1.weight"), expected):
            assert torch.allclose(scores[name][m], want, rtol=1e-4, atol=1e-9)


def test_grasp_scores_are_w_times_hessian_gradient():
    data = load_splits("synthetic", synthetic_shape=SHAPE, synthetic_sizes=(300, 50, 50))
    stack = fc_stack(seeds=(3, 4), widths=(4,))
    seeds = [11, 12]
    scores = pruners.grasp_scores(stack, data, seeds, batch_size=16, temperature=2.0)

    def grasp(model, x, y):
        weights = [model.fc[0].weight, model.fc[1].weight]
        flat = lambda ws: torch.cat([w.flatten() for w in ws])
        names = ("fc.0.weight", "fc.1.weight")

        def loss_of(vector):
            parts = dict(zip(names, vector.split([w.numel() for w in weights])))
            params = {n: p.detach() for n, p in model.named_parameters()}
            params.update({n: parts[n].view_as(dict(model.named_parameters())[n]) for n in names})
            return F.cross_entropy(functional_call(model, params, (x,)) / 2.0, y)

        theta = flat(weights).detach()
        g = torch.autograd.functional.jacobian(loss_of, theta)
        hessian = torch.autograd.functional.hessian(loss_of, theta, vectorize=True)
        score = theta * (hessian @ g)
        return list(score.split([w.numel() for w in weights]))

    for m, expected in enumerate(by_hand(stack, data, seeds, 16, grasp)):
        for name, want in zip(("fc.0.weight", "fc.1.weight"), expected):
            assert torch.allclose(scores[name][m].flatten(), want, rtol=1e-3, atol=1e-8)
