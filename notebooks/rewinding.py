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
# # Renda et al. 2020: IMP rewinding to init vs weight rewinding vs learning-rate rewinding vs fine-tuning
#
# After each pruning round, IMP retrains the surviving weights. Four ways, compared at the same
# densities on the same initialisations and data orders:
# - **rewind to init** (Frankle & Carbin): the survivors reset to their initial values, the whole schedule;
# - **weight rewinding**: the survivors and the learning rate reset to iteration k (k = 500 here), retrained
#   for T − k iterations;
# - **learning-rate rewinding** (Renda et al.): the final weights kept, the learning-rate schedule replayed
#   from iteration k, T − k iterations;
# - **fine-tuning**: the final weights kept, trained T − k iterations at the schedule's last (smallest) rate.
#
# The schedule must decay (SGD with momentum, lr ×0.1 at 50% and 75% of training): under a constant rate,
# replaying the rate is a no-op and learning-rate rewinding is fine-tuning (`lth` refuses it). Renda et
# al. work on ResNet-20/56/110 and VGG-16 on CIFAR-10 and ResNet-50 on ImageNet; CIFAR-10 is absent here,
# so we run LeNet-300-100 on MNIST and Conv-2 on Fashion-MNIST, and every verdict reads "not comparable"
# (the numbers are shown). The one number of theirs we found (Rare Gems, Table 4: ResNet-20 at 1.4%
# remaining, 3,000 epochs: LR rewinding 80.21% vs IMP 74.52%) is a protocol we cannot run here.
#
# **Profiles.** `quick` (the default, a laptop CPU in about two minutes): LeNet-300-100 only (Conv-2
# needs ~30 min on a CPU), 2 trials, 1,000 iterations with the drops at 500 and 750, three levels
# (21.1%, 7.0%, 3.6% remaining), k = 250. It can show the ordering of the four methods early in
# training; it cannot settle it (2 trials). `paper` (one GPU, about 5 minutes per network): the recipes
# as written, 5 trials (LeNet) and 3 (Conv-2). `smoke` (LeNet only: the conv recipe is the same IMP kind,
# dry-run by the tests) judges nothing.

# %% tags=["parameters"]
config = "rewind_lenet300"  # IMP recipe with a decaying schedule (name in lth/recipes/ or a path)
conv_config = "rewind_conv"  # the conv net's recipe ("" skips it; the quick and smoke profiles skip it too)
profile = "quick"            # smoke | quick | paper
bindings = []                # extra gin bindings for every run here (a list of strings)
output_dir = "figures"       # figures and tables go to <output_dir>/<profile>/rewinding/
root = "runs"                # the result store
device = "auto"              # cpu, cuda or auto

# %%
import pandas as pd
from IPython.display import Markdown, display

from lth.notebook import level_tables, network_recipes, output_folder, run_rewinding, save_table, skipped
from lth.results import claims, figures

folder = output_folder(output_dir, "rewinding", profile)
results = {}
for network, recipe in network_recipes(config, conv_config, profile).items():
    if not recipe:
        display(Markdown(skipped(network, profile)))
        continue
    outcomes, k = run_rewinding(recipe, profile, bindings, root=root, device=device)
    results[network] = outcomes, k
    for name, outcome in outcomes.items():
        outcome.save_provenance(folder)
        display(Markdown(f"*{network}, {figures.label(name)}:* {outcome.describe()}"))

# %% [markdown]
# ## Test error against the percent of weights remaining, per method (at the end of training and at early stop)

# %%
for network, (outcomes, k) in results.items():
    networks = claims.combine({name: o.networks for name, o in outcomes.items() if o.ran})
    first = outcomes["imp_init"]
    if networks.empty:
        fig = figures.not_run_figure(f"Rewinding: {network}", [first.headline])
    else:
        fig = figures.density_figure(figures.with_errors(networks), ["final_test_error", "early_stop_test_error"],
                                     f"IMP retraining, {figures.label(first.experiment)} (k = {k} iterations)\n"
                                     f"{first.context}", label_by="experiment", controls=["none"])
    figures.save(fig, folder, f"rewinding_{network}")

# %% [markdown]
# ## Tables: per method and level (mean over trials)

# %%
tables = [level_tables(outcomes).assign(network=network) for network, (outcomes, _) in results.items()]
levels = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
save_table(levels, folder, "levels")
levels

# %% [markdown]
# ## Renda et al.'s claims, judged on our results (not comparable: not their networks or data)

# %%
rows = []
for network, (outcomes, _) in results.items():
    networks = claims.combine({name: o.networks for name, o in outcomes.items() if o.ran})
    first = outcomes["imp_init"]
    reason = next((o.reason for o in outcomes.values() if not o.ran), "")
    table = claims.evaluate(claims.RENDA_REWINDING, networks, reason=reason, context=first.context,
                            profile=first.profile, dataset=first.dataset)
    rows.append(table.assign(figure=table.figure + f" ({figures.label(first.experiment)})"))
verdicts = pd.concat(rows, ignore_index=True) if rows else claims.evaluate(claims.RENDA_REWINDING, pd.DataFrame())
save_table(verdicts, folder, "claims")
verdicts
