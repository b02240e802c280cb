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
# # Zhou, Lan, Liu & Yosinski 2019: deconstructing lottery tickets, LeNet-300-100 on MNIST
#
# What in a lottery ticket matters? Iterative pruning of LeNet-300-100 where each variant of a level
# differs in one thing: the **mask criterion** (large final = IMP, small final, large/small init,
# large init & large final, large final same sign, magnitude increase, movement, random); what the
# **kept weights** start from on IMP's mask (rewind to w_0, random reinit, w_0 reshuffled, signed
# constant sign(w_0)·std); what the **pruned weights** hold (zero, or frozen at w_0). Then
# **supermasks**: untrained networks under each criterion's one-shot mask, and Zhou et al.'s learned
# Bernoulli supermask over frozen random weights. The paper's claims are judged last.

# %% tags=["parameters"]
config = "deconstruct_lenet300"  # gin recipe (name in lth/recipes/ or a path)
profile = "quick"                # smoke | quick | paper
bindings = []                    # extra gin bindings (a list of strings)
output_dir = "figures"           # figures and tables go to <output_dir>/<profile>/deconstruct_tickets/
root = "runs"                    # the result store
device = "auto"                  # cpu, cuda or auto

# %%
from IPython.display import Markdown, display

from lth.notebook import output_folder, run, save_table
from lth.results import claims, deconstruct

outcome = run(config, profile, bindings, root=root, device=device, kind="deconstruct")
folder = output_folder(output_dir, "deconstruct_tickets", profile)
outcome.save_provenance(folder)
display(Markdown(deconstruct.describe(outcome)))
draw = lambda name, what, make: deconstruct.save_figure(outcome, folder, name, what, make)  # noqa: E731


# %% [markdown]
# ## Mask criteria: test accuracy against weights remaining (rewound to w_0, pruned weights zero)

# %%
draw("criteria", "Mask criteria, LeNet-300-100", lambda title: deconstruct.criteria_figure(outcome.networks, title))

# %% [markdown]
# ## Kept weights (rewind, reinit, reshuffle, signed constant) and pruned weights (zero, frozen at w_0)

# %%
draw("treatments", "Treatments of the large-final mask",
     lambda title: deconstruct.treatments_figure(outcome.networks, title))

# %% [markdown]
# ## Supermasks: untrained networks under each criterion's one-shot mask (no training at all)

# %%
draw("untrained", "Untrained networks under one-shot masks",
     lambda title: deconstruct.untrained_figure(outcome.networks, title))

# %% [markdown]
# ## Zhou et al.'s learned supermask: Bernoulli masks trained over frozen Glorot weights

# %%
zhou = next(c for c in claims.DECONSTRUCT if c.id == "zhou_supermask_mnist")
draw("supermask", "Learned supermask",
     lambda title: deconstruct.supermask_figure(outcome.networks, outcome.metrics, title, paper=zhou.paper_value))

# %% [markdown]
# ## Tables: per variant and level (mean, min, max over trials); the learned supermask; every network

# %%
table = deconstruct.level_table(outcome.networks)
save_table(table, folder, "levels")
save_table(deconstruct.supermask_table(outcome.networks, outcome.metrics) if outcome.ran else outcome.networks,
           folder, "supermask")
save_table(outcome.networks, folder, "networks")
table

# %% [markdown]
# ## The paper's claims, judged on our results
#
# MNIST FC 300-100-10 (papers.md §10f): the criteria ranking, signed constant ≈ rewind, the zeros
# (the paper's evidence is CIFAR-10: not comparable here), untrained networks under masks, and the
# learned supermask. The paper profile prunes to 10 of Zhou's 20 densities (two rounds at a time) and
# trains the supermask 100 of 2000 epochs: the supermask verdicts depend on that shortening most (their
# detail says so); `lth.results.claims.deconstruct` says what depends on what.

# %%
verdicts = claims.evaluate(claims.DECONSTRUCT, outcome.networks, reason=outcome.reason, context=outcome.context,
                           profile=outcome.profile, dataset=outcome.dataset)
save_table(verdicts, folder, "claims")
verdicts
