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
# # Pruning at initialisation (SNIP Table 1, LeNet-300-100 on MNIST), random pruning, and IMP rewinding
#
# Each method prunes the same initial networks once, before training, to each density, and the pruned
# networks are trained with SNIP's protocol (SGD with momentum, lr dropped x0.1 twice): SNIP
# (|w · ∂L/∂w| on one minibatch), GraSP (Hessian-gradient product), SynFlow (data-free, 100 rounds),
# the magnitude of the initial weights, and random masks with ERK, balanced or uniform per-layer
# densities. SNIP's Table 1 numbers are drawn as stars and judged as claims.
#
# Then IMP's rewinding variants at the same densities (the LTH recipe, Adam, no controls): rewinding
# to the initialisation, weight rewinding to iteration k, and learning-rate rewinding (the final
# weights retrained on the schedule replayed from k; under the recipe's constant Adam rate that is
# plain continued training for the same number of iterations).
#
# **Profiles.** `quick` (the default, minutes on a laptop CPU): 1 trial, one density (2% kept, 98%
# pruned), SNIP against random ERK only, 200 iterations (SNIP's lr phases compressed); the IMP comparison at the same
# density with 2 trials of 1,000 iterations. It can show whether SNIP's mask beats a random one at 98%
# pruned early in training. It cannot show SNIP's Table 1 accuracies (those need the full schedule),
# GraSP, SynFlow or magnitude pruning, nor any spread over trials. `paper` (a GPU) runs every method,
# density and trial; `smoke` (synthetic data) judges nothing.

# %% tags=["parameters"]
config = "pai_lenet300"  # gin recipe of pruning at init (name in lth/recipes/ or a path)
profile = "quick"        # smoke | quick | paper
bindings = []            # extra gin bindings for every run here (a list of strings)
output_dir = "figures"   # figures and tables go to <output_dir>/<profile>/pai_lenet/
root = "runs"            # the result store (shared with the other notebooks)
device = "auto"          # cpu, cuda or auto
imp_config = "lth_lenet300"  # the IMP recipe of the rewinding comparison ("" skips it)

# %%
from IPython.display import Markdown, display

from lth.results import claims
from lth.results import figures
from lth.results.analysis import level_table
from lth.notebook import level_tables, output_folder, run, run_rewinding, save_table
from lth.results.pai import layer_table

outcome = run(config, profile, bindings, root=root, device=device, kind="pai")
folder = output_folder(output_dir, "pai_lenet", profile)
outcome.save_provenance(folder)
display(Markdown(outcome.describe()))

# %% [markdown]
# ## Test error against the percent of weights remaining, per method (SNIP's Table 1 as stars)

# %%
SNIP_TABLE_1 = {5.0: 1.6, 2.0: 2.4}  # % of weights remaining -> SNIP's test error (%), LeNet-300-100
if outcome.ran:
    fig = figures.method_figure(outcome.networks, ["early_stop_test_error", "final_test_error"],
                                f"Pruning at initialisation: LeNet-300-100\n{outcome.context}",
                                paper_points=SNIP_TABLE_1, paper_label="SNIP, Table 1", order=outcome.methods)
else:
    fig = figures.not_run_figure("Pruning at initialisation: LeNet-300-100", [outcome.headline])
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
# ## IMP: rewinding to init vs weight rewinding vs learning-rate rewinding, at the same densities

# %%
rewinding, k = run_rewinding(imp_config, profile, bindings, outcome.densities, root=root, device=device) \
    if imp_config else ({}, 0)
rewound = claims.combine({name: o.networks for name, o in rewinding.items() if o.ran})
for name, o in rewinding.items():
    display(Markdown(f"*{figures.label(name)}:* {o.describe()}"))
if not rewound.empty:
    fig = figures.density_figure(figures.with_errors(rewound), ["early_stop_test_error", "final_test_error"],
                                 f"IMP rewinding (k = {k} iterations), LeNet-300-100\n{rewinding['imp_init'].context}",
                                 label_by="experiment", controls=["none"])
    figures.save(fig, folder, "imp_rewinding")
rewind_levels = level_tables(rewinding)
save_table(rewind_levels, folder, "rewinding_levels")
rewind_levels

# %% [markdown]
# ## SNIP's claims (Table 1), judged on our results

# %%
verdicts = claims.evaluate(claims.SNIP_LENET300, outcome.networks, reason=outcome.reason, context=outcome.context,
                           profile=outcome.profile, dataset=outcome.dataset)
save_table(verdicts, folder, "claims")
verdicts
