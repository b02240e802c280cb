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
# # Edge-popup (Ramanujan et al. 2020): supermasks of untrained networks, accuracy against density
#
# Every weight is frozen at its random initialisation (signed Kaiming constant, or Kaiming normal);
# only a score per weight is trained, and each layer keeps the top-k of |score| (k = the fraction of
# weights kept). The dashed line is the same network with its weights trained densely. The paper's
# Conv nets are CIFAR-10 networks: CIFAR-10 is not on these machines, so they run on the recipe's
# data set (MNIST), named in every title and claim.
#
# **Profiles.** `quick` (the default, well under a minute on a laptop CPU): LeNet-300-100 only, one
# trial, densities 50%, 30% and 10%, 400 iterations. It can show that a supermask of frozen random
# weights classifies MNIST far above chance, and the accuracy's trend with density; it cannot show the
# Conv networks, the accuracy the paper reaches after 100 epochs, or spreads over trials. `paper` (a GPU)
# runs the recipe's networks; `smoke` (synthetic data) judges nothing.

# %% tags=["parameters"]
config = "strong_edgepopup"  # gin recipe (name in lth/recipes/ or a path)
profile = "quick"            # smoke | quick | paper
bindings = []                # extra gin bindings (a list of strings)
output_dir = "figures"       # figures and tables go to <output_dir>/<profile>/strong_edgepopup/
root = "runs"                # the result store
device = "auto"              # cpu, cuda or auto

# %%
from IPython.display import Markdown, display

from lth.results import claims
from lth.results import figures
from lth.notebook import run
from lth.results import strong
from lth.results.analysis import level_table
from lth.notebook import output_folder, save_table

outcome = run(config, profile, bindings, root=root, device=device, kind="edgepopup")
folder = output_folder(output_dir, "strong_edgepopup", profile)
outcome.save_provenance(folder)
display(Markdown(outcome.describe()))

# %% [markdown]
# ## Test accuracy against the percent of weights kept, per network

# %%
title = f"Edge-popup: untrained networks, supermasks only\n{outcome.context}"
if outcome.ran:
    fig = strong.edgepopup_figure(outcome.networks, title)
else:
    fig = figures.not_run_figure(title, [outcome.headline])
figures.save(fig, folder, "edgepopup_accuracy")

# %% [markdown]
# ## Tables: per network, method and density (mean over trials), and per network

# %%
save_table(level_table(outcome.metrics) if outcome.ran else outcome.networks, folder, "levels")
save_table(outcome.networks, folder, "networks")
outcome.networks

# %% [markdown]
# ## The papers' claims, judged on our results

# %%
verdicts = claims.evaluate(claims.STRONG_EDGEPOPUP, outcome.networks, reason=outcome.reason, context=outcome.context,
                           profile=outcome.profile, dataset=outcome.dataset)
save_table(verdicts, folder, "claims")
verdicts
