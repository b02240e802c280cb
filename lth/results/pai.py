"""Tables of pruning-at-initialisation runs (`lth.experiments.pai`)."""

from __future__ import annotations

import pandas as pd

from lth.schema import MASK_SPLIT


def layer_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per method, density level and layer: the mean fraction of the layer's weights kept."""
    rows = metrics[metrics.split == MASK_SPLIT]
    if rows.empty:
        return pd.DataFrame(columns=["control", "level", "density", "layer", "layer_density"])
    table = rows.groupby(["control", "level", "metric"], sort=False).agg(
        density=("density", "mean"), layer_density=("value", "mean")).reset_index()
    return table.rename(columns={"metric": "layer"})[["control", "level", "density", "layer", "layer_density"]]
