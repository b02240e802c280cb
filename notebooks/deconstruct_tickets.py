# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Zhou, Lan, Liu & Yosinski 2019: deconstructing lottery tickets, LeNet-300-100 on MNIST and Conv-2
#
# What in a lottery ticket matters? Iterative pruning where each variant of a level differs in one thing:
# the **mask criterion** (large final = IMP, small final, large/small init, large init & large final, large
# final same sign, magnitude increase, movement, random); what the **kept weights** start from on IMP's mask
# (rewind to w_0, random reinit, w_0 reshuffled, signed constant sign(w_0)·std); what the **pruned weights**
# hold (zero, or frozen at w_0). Then **supermasks**: untrained networks under each criterion's one-shot
# mask, and Zhou et al.'s learned Bernoulli supermask over frozen random weights. The paper's claims are
# judged last.
#
# **Networks.** LeNet-300-100 on MNIST on every profile; Conv-2 on Fashion-MNIST (`conv_config`,
# lth/recipes/deconstruct_conv2.gin: 4 densities, 10K of ~20K iterations, no learned supermask) on the paper
# profile only (a CPU needs hours for it). Zhou et al.'s Conv nets train on CIFAR-10, absent here: Conv-2's
# claims read "not comparable" (the numbers are shown). Its figures and tables end in `_conv2`.

# %% tags=["parameters"]
config = "deconstruct_lenet300"     # gin recipe (name in lth/recipes/ or a path)
conv_config = "deconstruct_conv2"   # the conv net's recipe ("" skips it; the quick and smoke profiles skip it too)
profile = "quick"                   # smoke | quick | paper
bindings = []                       # extra gin bindings for every run here (a list of strings)
output_dir = "figures"              # figures and tables go to <output_dir>/<profile>/deconstruct_tickets/
root = "runs"                       # the result store
device = "auto"                     # cpu, cuda or auto

# %%
import pandas as pd
from IPython.display import Markdown, display

from lth.notebook import file_suffix, output_folder, run_networks, save_table
from lth.results import claims, deconstruct
from lth.results.style import label

folder = output_folder(output_dir, "deconstruct_tickets", profile)
outcomes = run_networks(config, conv_config, profile, bindings, kind="deconstruct", folder=folder, describe=deconstruct.describe,
                        show=lambda text: display(Markdown(text)), root=root, device=device)


def draw(name, what, make):
    """One figure per network: ``make(networks_frame, title)``, saved as <name><suffix>."""
    for network, outcome in outcomes.items():
        deconstruct.save_figure(outcome, folder, f"{name}{file_suffix(network, outcome)}",
                                f"{what}, {label(outcome.config.model)}",
                                lambda title, o=outcome: make(o, title))


# %% [markdown]
# ## Mask criteria: test accuracy against weights remaining (rewound to w_0, pruned weights zero)

# %%
draw("criteria", "Mask criteria", lambda o, title: deconstruct.criteria_figure(o.networks, title))

# %% [markdown]
# ## Kept weights (rewind, reinit, reshuffle, signed constant) and pruned weights (zero, frozen at w_0)

# %%
draw("treatments", "Treatments of the large-final mask",
     lambda o, title: deconstruct.treatments_figure(o.networks, title))

# %% [markdown]
# ## Supermasks: untrained networks under each criterion's one-shot mask (no training at all)

# %%
draw("untrained", "Untrained networks under one-shot masks",
     lambda o, title: deconstruct.untrained_figure(o.networks, title))

# %% [markdown]
# ## Zhou et al.'s learned supermask: Bernoulli masks trained over frozen Glorot weights (LeNet-300-100)

# %%
zhou = next(c for c in claims.DECONSTRUCT if c.id == "zhou_supermask_mnist")
outcome = outcomes["lenet300"]
deconstruct.save_figure(outcome, folder, "supermask", "Learned supermask, LeNet-300-100",
                        lambda title: deconstruct.supermask_figure(outcome.networks, outcome.metrics, title,
                                                                   paper=zhou.paper_value))

# %% [markdown]
# ## Tables: per variant and level (mean, min, max over trials); the learned supermask; every network

# %%
for network, outcome in outcomes.items():
    suffix = file_suffix(network, outcome)
    table = deconstruct.level_table(outcome.networks)
    save_table(table, folder, f"levels{suffix}")
    if outcome.config.supermask_weights:
        save_table(deconstruct.supermask_table(outcome.networks, outcome.metrics) if outcome.ran
                   else outcome.networks, folder, f"supermask{suffix}")
    save_table(outcome.networks, folder, f"networks{suffix}")
    display(Markdown(f"**{label(outcome.config.model)}**"), table)

# %% [markdown]
# ## The paper's claims, judged on our results
#
# MNIST FC 300-100-10 (papers.md §10f): the criteria ranking, signed constant ≈ rewind, the zeros
# (the paper's evidence is CIFAR-10: not comparable here), untrained networks under masks, and the
# learned supermask. The paper profile prunes to 10 of Zhou's 20 densities (two rounds at a time) and
# trains the supermask 100 of 2000 epochs: the supermask verdicts depend on that shortening most (their
# detail says so); `lth.results.claims.deconstruct` says what depends on what.
#
# Conv-2 (`lth.results.claims.deconstruct.DECONSTRUCT_CONV`): what Zhou et al. say of their CIFAR-10 Conv nets,
# among it the zeros (the paper's clearest evidence) and the best untrained supermask's 41%, measured on
# Fashion-MNIST: "not comparable", the numbers shown. The LeNet claims come first in the table (rejudged from
# networks.csv, the Conv-2 ones from networks_conv2.csv: `lth.results.rejudge`).

# %%
rows = []
for network, outcome in outcomes.items():
    paper_claims = claims.DECONSTRUCT if outcome.config.model == "lenet300" else claims.DECONSTRUCT_CONV
    rows.append(claims.evaluate(paper_claims, outcome.networks, reason=outcome.reason, context=outcome.context,
                                profile=outcome.profile, dataset=outcome.dataset))
verdicts = pd.concat(rows, ignore_index=True)
save_table(verdicts, folder, "claims")
verdicts
