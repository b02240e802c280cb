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
# # Frankle & Carbin 2019, Figure 5: Conv-2, Conv-4 and Conv-6 on CIFAR-10, iterative pruning
#
# The early-stop iteration, the test accuracy at early stop and at the end of training of winning
# tickets (solid) and their random reinitialisations (dashed) against the percent of weights
# remaining. The paper trains on CIFAR-10; where it is absent this notebook says so and marks the
# claims *not run*. A binding such as `ImpConfig.dataset = 'fashion_mnist'` runs the same protocol
# on another data set, named in the titles and the claims.
#
# **Profiles.** Without CIFAR-10 (these machines) the notebook only says so, on every profile. With it,
# `quick` trains Conv-2, -4 and -6 at the LeNet quick settings (2 trials, 1,000 iterations, four
# levels): tens of minutes on a CPU, beyond the 10-minute batch; `paper` needs a GPU.

# %% tags=["parameters"]
configs = ["lth_conv2", "lth_conv4", "lth_conv6"]  # gin recipes, one experiment each
config = ""              # one recipe instead of `configs`, e.g. "lth_conv2"
profile = "quick"        # smoke | quick | paper
bindings = []            # extra gin bindings for every recipe (a list of strings)
output_dir = "figures"   # figures and tables go to <output_dir>/<profile>/lth_conv/
root = "runs"            # the result store
device = "auto"          # cpu, cuda or auto

# %%
from IPython.display import Markdown, display

from lth.results import claims
from lth.results import figures
from lth.notebook import level_tables, output_folder, run, save_table

outcomes = {name: run(name, profile, bindings, root=root, device=device, kind="imp")
            for name in ([config] if config else configs)}
folder = output_folder(output_dir, "lth_conv", profile)
for outcome in outcomes.values():
    outcome.save_provenance(folder)
ran = {o.experiment: o.networks for o in outcomes.values() if o.ran}
context = next(iter(outcomes.values())).context
for outcome in outcomes.values():
    display(Markdown(outcome.describe()))

# %% [markdown]
# ## Figure 5: early stop, test accuracy at early stop and at the end of training

# %%
title = f"Figure 5 rebuilt: {', '.join(figures.label(o.experiment) for o in outcomes.values())}, iterative pruning\n{context}"
if ran:
    fig = figures.density_figure(claims.combine(ran),
                                 ["early_stop_iteration", "early_stop_test_accuracy", "final_test_accuracy"],
                                 title, label_by=["experiment", "control"], controls=["none", "reinit"])
else:
    fig = figures.not_run_figure(title, sorted({o.headline for o in outcomes.values()}))
figures.save(fig, folder, "figure_5")

# %% [markdown]
# ## Table: per network and level (mean over runs)

# %%
levels = level_tables(outcomes)
save_table(levels, folder, "levels")
levels

# %% [markdown]
# ## The paper's claims, judged on our results

# %%
reasons = {o.experiment: o.reason for o in outcomes.values()}
wanted = {o.experiment for o in outcomes.values()}
verdicts = claims.evaluate([c for c in claims.CONV if c.experiment in wanted], ran, reason=reasons, context=context,
                           profile=profile, dataset={o.experiment: o.dataset for o in outcomes.values()})
save_table(verdicts, folder, "claims")
verdicts
