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
# # Frankle, Dziugaite, Roy & Carbin 2020: instability and linear mode connectivity, LeNet-300-100 on MNIST and ResNet-20
#
# From a network at iteration k (k = 0, 100, 500, 2000), two copies train to the end with different
# data orders; the error on the straight line between them (30 points) gives the instability: the
# highest error on the path minus the mean of the two ends' errors. Dense networks and IMP
# subnetworks (found with rewinding to each k) are analysed; then the paper's claims are judged.
#
# **Networks.** LeNet-300-100 on MNIST (the paper's MNIST case) on every profile; ResNet-20 on Fashion-MNIST
# (`conv_config`, a shortened protocol: lth/recipes/lmc_resnet20.gin) on the paper profile only (a CPU
# needs hours for it). CIFAR-10, the paper's ResNet-20 data set, is absent here: its claims are judged on the
# Fashion-MNIST run and read "not comparable" (the numbers are shown). Its figures and tables end in
# `_resnet20`.

# %% tags=["parameters"]
config = "lmc_lenet300"          # gin recipe (name in lth/recipes/ or a path)
conv_config = "lmc_resnet20"     # the conv net's recipe ("" skips it; the quick and smoke profiles skip it too)
profile = "quick"                # smoke | quick | paper
bindings = []                    # extra gin bindings for every run here (a list of strings)
output_dir = "figures"           # figures and tables go to <output_dir>/<profile>/lmc_instability/
root = "runs"                    # the result store
device = "auto"                  # cpu, cuda or auto

# %%
import pandas as pd
from IPython.display import Markdown, display

from lth.notebook import file_suffix, output_folder, run_networks, save_table
from lth.results import claims, figures, lmc
from lth.results.style import label

folder = output_folder(output_dir, "lmc_instability", profile)
outcomes = run_networks(config, conv_config, profile, bindings, kind="lmc", folder=folder, describe=lmc.describe,
                        show=lambda text: display(Markdown(text)), root=root, device=device)
# one row per pair of copies (empty if not run), and the error along each path
pairs = {network: lmc.pair_table(o.metrics, o.networks) for network, o in outcomes.items()}
paths = {network: lmc.path_table(o.metrics) for network, o in outcomes.items()}

# %% [markdown]
# ## Instability against the fork iteration k, per density (test and train error)

# %%
for network, outcome in outcomes.items():
    if outcome.ran:
        title = f"Instability of {label(outcome.config.model)} and its IMP subnetworks\n{outcome.context}"
        figures.save(lmc.instability_figure(pairs[network], title), folder,
                     f"instability{file_suffix(network, outcome)}")

# %% [markdown]
# ## Test error along the path between the two copies forked at k = 0

# %%
for network, outcome in outcomes.items():
    if outcome.ran:
        title = f"{label(outcome.config.model)}: test error on the linear path, forks at k = 0\n{outcome.context}"
        figures.save(lmc.path_figure(paths[network], 0, title), folder, f"path_k0{file_suffix(network, outcome)}")

# %% [markdown]
# ## Tables: per level and k (mean, min, max over trials), and per pair

# %%
for network, outcome in outcomes.items():
    table = lmc.summary(pairs[network])
    save_table(table, folder, f"instability{file_suffix(network, outcome)}")
    save_table(pairs[network], folder, f"pairs{file_suffix(network, outcome)}")
    display(Markdown(f"**{label(outcome.config.model)}**"), table)

# %% [markdown]
# ## The paper's claims, judged on our results
#
# LeNet-300-100 (MNIST): stable at initialisation, dense and IMP subnetworks, and matching (papers.md §9d).
# ResNet-20 is judged against the paper's CIFAR-10 ResNet-20 claims (unstable at initialisation, IMP
# subnetworks stable once rewound to iteration 500): "not comparable" on Fashion-MNIST.

# %%
rows = []
for network, outcome in outcomes.items():
    paper_claims = claims.LMC_LENET if outcome.config.model == "lenet300" else claims.LMC_RESNET20
    rows.append(claims.evaluate(paper_claims, pairs[network], reason=outcome.reason, context=outcome.context,
                                profile=outcome.profile, dataset=outcome.dataset))
verdicts = pd.concat(rows, ignore_index=True)
save_table(verdicts, folder, "claims")
verdicts
