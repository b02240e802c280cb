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
# # Pensia et al. 2020, Experiment 2: pruning redundant random networks (MNIST)
#
# Every weight of a target network (FC 784-500-10, FC 784-500-500-500-10, LeNet-5 with frozen
# random convs) is replaced by r = 5 random paths (a *redundant* network), and the redundant network
# is pruned by edge-popup with no weight training; a *wide* network with as many random weights is
# pruned alike. Test accuracy against the weights that remain, beside the target trained densely
# (black dot) and the paper's figure read off by eye (stars, ±2 pp).
#
# **Statistic.** The paper's curves are the maximum over five runs. Its 16 red and wide read-out points
# are each judged two-sided (±2 pp, the precision of a read-out) on the maximum over our trials, the
# paper's statistic, taken as a point; each row also reports our mean and its 95% t-interval. The
# paper profile runs 5 trials of 5 epochs (the paper: 30 to 150) at the 7 densities from 50% down, to fit
# one GPU call of about 8 minutes, so every row's verdict depends on the shortened schedule (each row says so).
#
# **Profiles.** `quick` (the default, under a minute on a laptop CPU): FC 784-500-10 only, one trial,
# 4 densities, 300 iterations (the paper: 30 epochs). It can show whether the redundant network
# keeps more accuracy than the equally large wide one as density falls; it cannot show the paper's
# accuracies, which need the full schedule, FC-4 or LeNet-5. `paper` (a GPU) runs the recipe; `smoke` (synthetic
# data) judges nothing.

# %% tags=["parameters"]
config = "strong_pensia_redundant"  # gin recipe (name in lth/recipes/ or a path)
profile = "quick"                   # smoke | quick | paper
bindings = []                       # extra gin bindings (a list of strings)
output_dir = "figures"              # figures and tables go to <output_dir>/<profile>/strong_pensia_redundant/
root = "runs"                       # the result store
device = "auto"                     # cpu, cuda or auto

# %%
from IPython.display import Markdown, display

from lth.results import claims
from lth.results import figures
from lth.notebook import run
from lth.results import strong
from lth.notebook import output_folder, save_table

outcome = run(config, profile, bindings, root=root, device=device, kind="pensia")
folder = output_folder(output_dir, "strong_pensia_redundant", profile)
outcome.save_provenance(folder)
networks = strong.with_remaining(outcome.networks, outcome.metrics) if outcome.ran else outcome.networks
display(Markdown(outcome.describe()))

# %% [markdown]
# ## Test accuracy against remaining weights: redundant vs wide vs the dense target

# %%
title = f"Pensia et al. Experiment 2: edge-popup on redundant and wide random networks\n{outcome.context}"
if outcome.ran:
    fig = strong.pensia_figure(networks, title, claims.PENSIA_READ_OUTS)
else:
    fig = figures.not_run_figure(title, [outcome.headline])
figures.save(fig, folder, "pensia_accuracy_vs_weights")

# %% [markdown]
# ## Table: per network, variant and density (mean and maximum over trials)

# %%
if outcome.ran:
    table = networks.groupby(["experiment", "control", "level"]).agg(
        density=("density", "mean"), remaining_weights=("remaining_weights", "mean"),
        test_accuracy=("final_test_accuracy", "mean"), test_accuracy_max=("final_test_accuracy", "max"),
        runs=("trial", "size")).reset_index()
else:
    table = networks
save_table(table, folder, "levels")
save_table(networks, folder, "networks")
table

# %% [markdown]
# ## The paper's 16 figure read-outs, judged on the maximum over our trials

# %%
verdicts = claims.evaluate(claims.STRONG_PENSIA, networks, reason=outcome.reason, context=outcome.context,
                           profile=outcome.profile, dataset=outcome.dataset)
save_table(verdicts, folder, "claims")
verdicts
