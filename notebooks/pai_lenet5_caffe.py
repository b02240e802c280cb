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
# # Pruning at initialisation: SNIP Table 1, LeNet-5-Caffe on MNIST
#
# SNIP's second Table 1 row: LeNet-5-Caffe (conv 20-50, fc 500) pruned at initialisation to 2% and
# 1% of its weights, beside GraSP, SynFlow, magnitude at init and random pruning, all trained with
# SNIP's protocol. The `pai_lenet` notebook explains the methods; this one only changes the network.
#
# **Profiles.** `quick` (the default, about 2 minutes on a laptop CPU, most of it evaluating a
# convolutional network on MNIST): 1 trial, 2% kept only, SNIP against random ERK, 200 iterations. It
# can show whether the two masks train at all and which is ahead early on; it cannot show SNIP's Table 1
# accuracies, the 1% density, or the other methods. `paper` (a GPU) runs them all; `smoke` (synthetic
# data) judges nothing.

# %% tags=["parameters"]
config = "pai_lenet5_caffe"  # gin recipe of pruning at init (name in lth/recipes/ or a path)
profile = "quick"            # smoke | quick | paper
bindings = []                # extra gin bindings (a list of strings)
output_dir = "figures"       # figures and tables go to <output_dir>/<profile>/pai_lenet5_caffe/
root = "runs"                # the result store
device = "auto"              # cpu, cuda or auto

# %%
from IPython.display import Markdown, display

from lth.results import claims
from lth.results import figures
from lth.results.analysis import level_table
from lth.notebook import output_folder, run, save_table
from lth.results.pai import layer_table

outcome = run(config, profile, bindings, root=root, device=device, kind="pai")
folder = output_folder(output_dir, "pai_lenet5_caffe", profile)
outcome.save_provenance(folder)
display(Markdown(outcome.describe()))

# %% [markdown]
# ## Test error against the percent of weights remaining, per method (SNIP's Table 1 as stars)

# %%
SNIP_TABLE_1 = {2.0: 0.8, 1.0: 1.1}  # % of weights remaining -> SNIP's test error (%), LeNet-5-Caffe
if outcome.ran:
    fig = figures.method_figure(outcome.networks, ["early_stop_test_error", "final_test_error"],
                                f"Pruning at initialisation: LeNet-5-Caffe\n{outcome.context}",
                                paper_points=SNIP_TABLE_1, paper_label="SNIP, Table 1", order=outcome.methods)
else:
    fig = figures.not_run_figure("Pruning at initialisation: LeNet-5-Caffe", [outcome.headline])
figures.save(fig, folder, "pai_error")

# %% [markdown]
# ## Tables: per method and density (mean over trials), per network, and each layer's density

# %%
save_table(level_table(outcome.metrics) if outcome.ran else outcome.networks, folder, "levels")
save_table(outcome.networks, folder, "networks")
layers = layer_table(outcome.metrics) if outcome.ran else outcome.networks
save_table(layers, folder, "layer_densities")
layers.pivot_table(index=["control", "density"], columns="layer", values="layer_density") if outcome.ran else layers

# %% [markdown]
# ## SNIP's claims (Table 1), judged on our results

# %%
verdicts = claims.evaluate(claims.SNIP_LENET5_CAFFE, outcome.networks, reason=outcome.reason, context=outcome.context,
                           profile=outcome.profile, dataset=outcome.dataset)
save_table(verdicts, folder, "claims")
verdicts
