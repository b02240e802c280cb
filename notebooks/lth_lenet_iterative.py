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
# # Frankle & Carbin 2019, Figures 1, 4a and 4b: LeNet-300-100 on MNIST, iterative pruning
#
# Rebuilds the early-stop iteration (minimum validation loss) and the test accuracy at early stop
# (Figures 1 and 4a), and the test accuracy at the end of training (Figure 4b), against the percent of
# weights remaining, for winning tickets, their random reinitialisation and random masks of the same
# per-layer densities. Then checks the paper's claims about them against our numbers.
#
# **Profiles.** `quick` (the default, minutes on a laptop CPU): 2 trials, 1,000 iterations (about one
# epoch), the random reinitialisation as the only control (no random masks), and three levels straight
# to 21.1%, 7.0% and 3.6% of weights remaining (three rounds, not the paper's 15). It can show the gap between winning tickets and
# their reinitialisations at small densities. It cannot show the early-stop iteration (the networks are
# still learning at 1,000 iterations, so the minimum validation loss is mostly the last evaluation),
# the 13.5% level (claims there are *missing data*), or the paper's 20 rounds of 20% pruning; with 2
# trials its verdicts are weak. `paper` (a GPU) runs the recipe as written; `smoke` judges nothing.

# %% tags=["parameters"]
config = "lth_lenet300"  # gin recipe (name in lth/recipes/ or a path)
profile = "quick"        # smoke | quick | paper
bindings = []            # extra gin bindings (a list of strings)
output_dir = "figures"   # figures and tables go to <output_dir>/<profile>/lth_lenet_iterative/
root = "runs"            # the result store (shared with the other LeNet notebooks)
device = "auto"          # cpu, cuda or auto

# %%
from IPython.display import Markdown, display

from lth.results import claims
from lth.results import figures
from lth.results.analysis import level_table
from lth.notebook import output_folder, run, save_table

outcome = run(config, profile, bindings, root=root, device=device, kind="imp")
folder = output_folder(output_dir, "lth_lenet_iterative", profile)
outcome.save_provenance(folder)
display(Markdown(outcome.describe()))

# %% [markdown]
# ## Figures 1 and 4a: early stop and test accuracy at early stop

# %%
if outcome.ran:
    fig = figures.density_figure(outcome.networks, ["early_stop_iteration", "early_stop_test_accuracy"],
                                 f"Figure 4a rebuilt: LeNet-300-100, iterative pruning\n{outcome.context}")
    figures.save(fig, folder, "figure_4a")

# %% [markdown]
# ## Figure 4b: test accuracy at the end of training

# %%
if outcome.ran:
    fig = figures.density_figure(outcome.networks, ["final_test_accuracy"],
                                 f"Figure 4b rebuilt: LeNet-300-100\n{outcome.context}")
    figures.save(fig, folder, "figure_4b")

# %% [markdown]
# ## Tables: per level (mean over runs) and per network

# %%
levels = level_table(outcome.metrics) if outcome.ran else outcome.networks
save_table(levels, folder, "levels")
save_table(outcome.networks, folder, "networks")
levels

# %% [markdown]
# ## The paper's claims, judged on our results

# %%
verdicts = claims.evaluate(claims.LENET_ITERATIVE, outcome.networks, reason=outcome.reason, context=outcome.context,
                           profile=outcome.profile, dataset=outcome.dataset)
save_table(verdicts, folder, "claims")
verdicts
