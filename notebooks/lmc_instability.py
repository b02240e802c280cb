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
# # Frankle, Dziugaite, Roy & Carbin 2020: instability and linear mode connectivity, LeNet-300-100 on MNIST
#
# From a network at iteration k (k = 0, 100, 500, 2000), two copies train to the end with different
# data orders; the error on the straight line between them (30 points) gives the instability: the
# highest error on the path minus the mean of the two ends' errors. Dense networks and IMP
# subnetworks (found with rewinding to each k) are analysed; then the paper's claims are judged.

# %% tags=["parameters"]
config = "lmc_lenet300"  # gin recipe (name in lth/recipes/ or a path)
profile = "quick"        # smoke | quick | paper
bindings = []            # extra gin bindings (a list of strings)
output_dir = "figures"   # figures and tables go to <output_dir>/<profile>/lmc_instability/
root = "runs"            # the result store
device = "auto"          # cpu, cuda or auto

# %%
from IPython.display import Markdown, display

from lth.notebook import output_folder, run, save_table
from lth.results import claims, figures, lmc
from lth.results.style import label

outcome = run(config, profile, bindings, root=root, device=device, kind="lmc")
folder = output_folder(output_dir, "lmc_instability", profile)
outcome.save_provenance(folder)
display(Markdown(lmc.describe(outcome)))
pairs = lmc.pair_table(outcome.metrics, outcome.networks)  # one row per pair of copies (empty if not run)
path = lmc.path_table(outcome.metrics)

# %% [markdown]
# ## Instability against the fork iteration k, per density (test and train error)

# %%
if outcome.ran:
    network = label(outcome.config.model)
    fig = lmc.instability_figure(pairs, f"Instability of {network} and its IMP subnetworks\n{outcome.context}")
    figures.save(fig, folder, "instability")

# %% [markdown]
# ## Test error along the path between the two copies forked at k = 0

# %%
if outcome.ran:
    fig = lmc.path_figure(path, 0, f"Test error on the linear path, forks at k = 0\n{outcome.context}")
    figures.save(fig, folder, "path_k0")

# %% [markdown]
# ## Tables: per level and k (mean, min, max over trials), and per pair

# %%
table = lmc.summary(pairs)
save_table(table, folder, "instability")
save_table(pairs, folder, "pairs")
table

# %% [markdown]
# ## The paper's claims, judged on our results
#
# LeNet-300-100 (MNIST): stable at initialisation, dense and IMP subnetworks, and matching (papers.md §9d).
# Another network (e.g. `config = "lmc_resnet20"`) is judged against the paper's CIFAR-10 ResNet-20 claims:
# "not comparable" on Fashion-MNIST.

# %%
paper_claims = claims.LMC_LENET if outcome.config.model == "lenet300" else claims.LMC_RESNET20
verdicts = claims.evaluate(paper_claims, pairs, reason=outcome.reason, context=outcome.context,
                           profile=outcome.profile, dataset=outcome.dataset)
save_table(verdicts, folder, "claims")
verdicts
