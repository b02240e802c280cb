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
# # Morcos et al. 2019 and Mehta 2019: lottery tickets across data sets, MNIST ↔ Fashion-MNIST
#
# IMP runs on MNIST and on Fashion-MNIST from the same initialisations. At every density, each data set
# trains its own ticket beside the other data set's ticket (mask and initial weights, unchanged), that
# mask on fresh weights (random reinit) and a random mask with the same per-layer densities. The figure
# shows both directions; then the papers' claims are judged. Neither paper ran this setup (they used
# VGG19 / ResNet50 on natural images, and no number of theirs was readable), so every claim is
# *not comparable* and the numbers are shown.
#
# **Networks.** LeNet-300-100 on every profile; Conv-2 (`conv_config`, lth/recipes/transfer_conv2.gin: 10K of
# Frankle & Carbin's 20K iterations) on the paper profile only (a CPU needs tens of minutes for it). Conv-2's
# figures and tables end in `_conv2`; the claims table holds both networks (named in the figure column).

# %% tags=["parameters"]
config = "transfer_lenet300"     # gin recipe (name in lth/recipes/ or a path)
conv_config = "transfer_conv2"   # the conv net's recipe ("" skips it; the quick and smoke profiles skip it too)
profile = "quick"                # smoke | quick | paper
bindings = []                    # extra gin bindings for every run here (a list of strings)
output_dir = "figures"           # figures and tables go to <output_dir>/<profile>/transfer_tickets/
root = "runs"                    # the result store
device = "auto"                  # cpu, cuda or auto

# %%
import pandas as pd
from IPython.display import Markdown, display

from lth.notebook import file_suffix, output_folder, run_networks, save_table
from lth.results import claims, figures, transfer
from lth.results.style import label

folder = output_folder(output_dir, "transfer_tickets", profile)
outcomes = run_networks(config, conv_config, profile, bindings, kind="transfer", folder=folder, describe=transfer.describe,
                        show=lambda text: display(Markdown(text)), root=root, device=device)

# %% [markdown]
# ## Test accuracy at early stop against density, per condition, both directions

# %%
for network, outcome in outcomes.items():
    if outcome.ran:
        title = f"Tickets across data sets, {label(outcome.config.model)}\n{outcome.context}"
        fig = transfer.figure(outcome.networks, (outcome.config.dataset, outcome.config.target), title)
        figures.save(fig, folder, f"transfer_accuracy{file_suffix(network, outcome)}")

# %% [markdown]
# ## Tables: per direction, level and condition (mean, min, max over trials); per-trial gaps

# %%
for network, outcome in outcomes.items():
    if outcome.ran:
        datasets, suffix = (outcome.config.dataset, outcome.config.target), file_suffix(network, outcome)
        gaps = transfer.gaps(outcome.networks, datasets)
        save_table(transfer.summary(outcome.networks, datasets), folder, f"transfer{suffix}")
        save_table(gaps, folder, f"gaps{suffix}")
        save_table(outcome.networks, folder, f"networks{suffix}")
        display(Markdown(f"**{label(outcome.config.model)}**"), transfer.gap_summary(gaps))

# %% [markdown]
# ## The papers' claims, judged on our results
#
# Morcos et al.: transferred tickets beat random tickets (more so at higher sparsity) and come close to the
# target's own ticket; Mehta: transferred subnetworks at 90–95% sparsity match the dense network. The
# stronger random-reinit control is ours (papers.md §11d.2). Two claims this setup cannot test are listed
# as *not run*. Each network's claims are judged on its own run (the network in the figure column).

# %%
rows = []
for network, outcome in outcomes.items():
    table = claims.evaluate(claims.TRANSFER_MNIST, outcome.networks, reason=outcome.reason,
                            context=outcome.context, profile=outcome.profile)
    rows.append(table.assign(figure=table.figure + f" ({label(outcome.config.model)})"))
verdicts = pd.concat(rows, ignore_index=True)
save_table(verdicts, folder, "claims")
verdicts
