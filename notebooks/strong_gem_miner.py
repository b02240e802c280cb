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
# # Gem-Miner (Sreenivasan et al. 2022, Rare Gems): ResNet-20, before and after fine-tuning, with sanity checks
#
# Scores in [0, 1] on frozen signed-constant weights, mask = 1[score ≥ 0.5], L2 on the scores and
# iterative freezing down to the target density; then the weights are fine-tuned under the mask.
# The sanity checks fine-tune the same number of weights per layer under a layerwise shuffled mask,
# with reinitialised weights, and under the inverted scores. **Data:** the paper uses CIFAR-10,
# which these machines do not have; the recipe names the data set used (Fashion-MNIST), and every
# title and claim says which it was. No paper number is on that data set: the claims compare the
# sanity-check gaps.
#
# **Freezing.** As the official code: after every T epochs of mining *before* its end, the lowest free
# scores are frozen at 0, each freeze keeping the same fraction of the free scores, so that the last
# one (one period before the end) reaches the target: 29 freezes of 10.7% for 150 epochs and T = 5.
# After each freeze, and before the mined mask's final evaluation, BatchNorm statistics are recomputed
# under the new mask (stale ones made an accurate mask score chance). The first bar is the mask as
# mined, before any weight is trained: Rare Gems' claim is that it is already accurate.
#
# **Profiles.** `quick` (the default, under a minute on a laptop CPU): LeNet-300-100 instead of ResNet-20
# (ResNet-20 takes an hour on a CPU), 600 iterations of score training and of fine-tuning, freezing every
# 50 iterations (11 freezes), one trial. It can show the mechanics (the mask reached, scores-only and fine-tuned
# accuracy, the sanity checks beside it); gaps of a point or two between the sanity checks are within
# noise here. It cannot say anything about ResNet-20 or CIFAR-10. `paper` (a GPU) runs ResNet-20, 3 trials,
# 20 epochs of mining (29 freezes, every 2/3 epoch: the paper's ratio) and 20 of fine-tuning instead of 150 + 150;
# `smoke` (synthetic data) judges nothing.

# %% tags=["parameters"]
config = "strong_gem_miner"  # gin recipe (name in lth/recipes/ or a path)
profile = "quick"            # smoke | quick | paper
bindings = []                # extra gin bindings (a list of strings)
output_dir = "figures"       # figures and tables go to <output_dir>/<profile>/strong_gem_miner/
root = "runs"                # the result store
device = "auto"              # cpu, cuda or auto

# %%
from IPython.display import Markdown, display

from lth.results import claims
from lth.results import figures
from lth.notebook import run
from lth.results import strong
from lth.notebook import output_folder, save_table

outcome = run(config, profile, bindings, root=root, device=device, kind="gem_miner")
folder = output_folder(output_dir, "strong_gem_miner", profile)
outcome.save_provenance(folder)
display(Markdown(outcome.describe()))

# %% [markdown]
# ## Test accuracy: Gem-Miner before and after fine-tuning, and the sanity checks

# %%
title = f"Gem-Miner on {strong.label(outcome.networks_run[0])} and its sanity checks\n{outcome.context}"
order = [strong.GEM_BEFORE_FINETUNE, strong.GEM, *strong.SANITY_CHECKS]
if outcome.ran:
    fig = strong.bar_figure(outcome.networks, title, order)
else:
    fig = figures.not_run_figure(title, [outcome.headline])
figures.save(fig, folder, "gem_miner_sanity_checks")

# %% [markdown]
# ## Tables: per network, and each layer's density of the mined mask

# %%
save_table(outcome.networks, folder, "networks")
if outcome.ran:
    masks = outcome.metrics[(outcome.metrics.split == strong.MASK_SPLIT)
                            & (outcome.metrics.control == strong.GEM_BEFORE_FINETUNE)]
    layers = masks.groupby("metric", sort=False)["value"].mean().rename("layer_density").reset_index()
else:
    layers = outcome.networks
save_table(layers, folder, "layer_densities")
outcome.networks

# %% [markdown]
# ## The paper's claims (the mask before fine-tuning; Table 2's sanity checks), judged on our results

# %%
verdicts = claims.evaluate(claims.STRONG_GEM_MINER, outcome.networks, reason=outcome.reason, context=outcome.context,
                           profile=outcome.profile, dataset=outcome.dataset)
save_table(verdicts, folder, "claims")
verdicts
