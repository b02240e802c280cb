"""On a lent GPU: run strong-ticket recipes (what their notebooks call) on the paper profile into
/tmp/store, in order, until a time budget is spent. Usage: device_strong.py BUDGET_S RECIPE..."""
import sys
import time

from lth import strong

budget, recipes = float(sys.argv[1]), sys.argv[2:]
start = time.time()
for recipe in recipes:
    if time.time() - start > budget:
        print(f"{recipe}: not started (budget spent)", flush=True)
        continue
    t = time.time()
    outcome = strong.run_strong_experiment(recipe, "paper", [], root="/tmp/store", device="cuda")
    print(f"{recipe}: {time.time() - t:.0f} s. {outcome.describe()}", flush=True)
