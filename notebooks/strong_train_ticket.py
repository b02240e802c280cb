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
# # catid/train_ticket: gates on seeded random weights vs the same network trained normally (MNIST)
#
# The middle layers of an MLP and of a small CNN keep frozen random weights, regenerated from one
# seed per layer (the network is stored as seeds + gates), each weight behind a gate trained with
# a straight-through estimator (on while the gate is positive; all start on). The first and last
# layers and the biases train normally. The same networks trained normally are the baseline.
# train_ticket's README: baseline 98.77% in 38 epochs, ticket 98.37% in 100 epochs.
#
# **Do the gates gate?** train_ticket's gates start at 1.0; under Adam (steps of about the learning rate,
# 1e-3) a gate needs about a thousand steps of one sign to close, and the trained first and last layers
# fit MNIST long before: with that start no gate closed in 20 epochs (density 1.000), so the comparison
# was of a frozen random layer, not of gating. The recipe starts the gates at 0.01 (`gate_init`), where
# they do close. The table below gives the fraction of gates off in each gated layer; the claims are
# judged only where at least 5% of each gated layer's gates are off, and are "inconclusive" otherwise.
# "Converges in N epochs" is read as train_ticket stops: the epoch of the best validation accuracy
# before 10 epochs pass without a better one.
#
# **Profiles.** `quick` (the default, under a minute on a laptop CPU): the MLP only, one trial, 2 epochs
# (the README's runs: 38 and 100). It can show the gated network of frozen random weights training to
# within about a point of the normal one; it cannot show the CNN, the README's final accuracies or a
# spread over trials. `paper` (a GPU) runs the recipe; `smoke` (synthetic data) judges nothing.

# %% tags=["parameters"]
config = "strong_train_ticket"  # gin recipe (name in lth/recipes/ or a path)
profile = "quick"               # smoke | quick | paper
bindings = []                   # extra gin bindings (a list of strings)
output_dir = "figures"          # figures and tables go to <output_dir>/<profile>/strong_train_ticket/
root = "runs"                   # the result store
device = "auto"                 # cpu, cuda or auto

# %%
from IPython.display import Markdown, display

from lth.results import claims
from lth.results import figures
from lth.notebook import run
from lth.results import strong
from lth.notebook import output_folder, save_table

outcome = run(config, profile, bindings, root=root, device=device, kind="train_ticket")
folder = output_folder(output_dir, "strong_train_ticket", profile)
outcome.save_provenance(folder)
display(Markdown(outcome.describe()))

# %% [markdown]
# ## Test accuracy over training

# %%
title = f"train_ticket: gated random weights vs normal training\n{outcome.context}"
if outcome.ran:
    fig = strong.epoch_curves_figure(outcome.metrics, title)
else:
    fig = figures.not_run_figure(title, [outcome.headline])
figures.save(fig, folder, "train_ticket_curves")

# %% [markdown]
# ## Tables: accuracy, epochs to 95% and to the best validation accuracy (also under patience 10), per network; the fraction of gates off per gated layer

# %%
if outcome.ran:
    keys = ["experiment", "level", "control", "trial", "replicate"]
    networks = outcome.networks.merge(strong.epochs_to(outcome.metrics, 0.95, patience=10), on=keys)
    networks = strong.with_gates_off(networks, outcome.metrics)
    table = networks.groupby(["experiment", "control"]).agg(
        test_accuracy=("final_test_accuracy", "mean"), best_val_accuracy=("best_val_accuracy", "mean"),
        epochs_to_95=("epochs_to_95", "mean"), epochs_to_best=("epochs_to_best", "mean"),
        epochs_to_best_patience=("epochs_to_best_patience", "mean"),
        stop_epoch_patience=("stop_epoch_patience", "mean"),
        gates_on=("density", "mean"), runs=("trial", "size")).reset_index()
    gates = strong.gates_off(outcome.metrics).groupby(["experiment", "layer"], sort=False).agg(
        gates_off=("gates_off", "mean"), gates_off_min=("gates_off", "min"), gates_off_max=("gates_off", "max"),
        runs=("trial", "size")).reset_index()
else:
    networks = table = gates = outcome.networks
save_table(table, folder, "summary")
save_table(gates, folder, "gates_off")
save_table(networks, folder, "networks")
display(gates)
table

# %% [markdown]
# ## train_ticket's README claims, judged on our results

# %%
verdicts = claims.evaluate(claims.STRONG_TRAIN_TICKET, networks, reason=outcome.reason, context=outcome.context,
                           profile=outcome.profile, dataset=outcome.dataset)
save_table(verdicts, folder, "claims")
verdicts
