"""Two tiny notebooks for lth.report.batch: one keeps the contract (a figure, a claim), one raises."""

from lth.report import batch

PARAMETERS = '''# %% tags=["parameters"]
profile = "quick"
bindings = []
output_dir = "figures"
root = "runs"
device = "auto"
'''

GOOD = PARAMETERS + '''
# %% [markdown]
# A notebook that keeps the contract.

# %%
import csv
from pathlib import Path
import matplotlib.pyplot as plt
import pandas as pd
folder = Path(output_dir) / profile / "good"
folder.mkdir(parents=True, exist_ok=True)
print(f"writing to {folder.resolve()}")
fig, ax = plt.subplots(figsize=(3, 2))
ax.plot([1.0, 0.5, 0.2], [97.0, 98.0, 96.5])
fig.savefig(folder / "accuracy.png")
fig.savefig(folder / "accuracy.svg")
[folder / "accuracy.png", folder / "accuracy.svg"]

# %%
with open(folder / "claims.csv", "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["figure", "claim", "paper", "ours", "verdict", "detail"])
    writer.writerow(["Fig. 1", "Tickets learn faster", "98.1%", "98.0%", "reproduced", "at 20% density"])
pd.read_csv(folder / "claims.csv")
'''

BAD = PARAMETERS + '''
# %%
print("before the error")

# %%
raise ValueError("deliberate failure")
'''


def run_batch(folder, monkeypatch, *args):
    """lth.report.batch's command line on the notebooks in folder/notebooks, everything written inside folder."""
    monkeypatch.setattr(batch, "NOTEBOOK_DIR", folder / "notebooks")
    return batch.main(["--profile", "smoke", "--output-dir", str(folder / "figures"), "--root", str(folder / "runs"),
                       "--build-dir", str(folder / "build"), "--report-dir", str(folder / "report"), *args])

