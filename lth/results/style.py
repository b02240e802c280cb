"""The one label and style table of every figure: what a control, method, experiment or network
is called in a legend or title, each control's line style, the axis labels and markers."""

from __future__ import annotations

from lth.experiments.strong import DENSE, GEM, GEM_BEFORE_FINETUNE
from lth.schema import TICKET

LABELS = {
    TICKET: "winning ticket", "reinit": "random reinit", "random_mask": "random mask",
    "iterative": "iterative", "one_shot": "one-shot",
    "lth_conv2": "Conv-2", "lth_conv4": "Conv-4", "lth_conv6": "Conv-6", "lth_lenet300": "LeNet-300-100",
    # pruning at initialisation (lth.experiments.pai): the control column holds the method
    "snip": "SNIP", "grasp": "GraSP", "synflow": "SynFlow", "magnitude": "magnitude at init",
    "random_uniform": "random (uniform)", "random_er": "random (ER)", "random_erk": "random (ERK)",
    "random_balanced": "random (balanced)", "random_pyramidal": "random (pyramidal)",
    # IMP rewinding variants (lth.notebook.run_rewinding)
    "imp_init": "IMP, rewind to init", "imp_weights": "IMP, weight rewinding", "imp_lr": "IMP, LR rewinding",
    "imp_finetune": "IMP, fine-tuning", "rewind_lenet300": "LeNet-300-100", "rewind_conv2": "Conv-2",
    # strong tickets (lth.experiments.strong): the control column holds the method or variant
    "signed_constant": "edge-popup, signed Kaiming constant", "kaiming_normal": "edge-popup, Kaiming normal",
    DENSE: "dense, weights trained", "red": "redundant (r paths per weight), edge-popup",
    "wide": "wide (as many weights), edge-popup", GEM_BEFORE_FINETUNE: "Gem-Miner before fine-tuning",
    GEM: "Gem-Miner fine-tuned", "shuffle": "layerwise mask shuffle, fine-tuned",
    "invert": "scores inverted, fine-tuned",  # Gem-Miner's "reinit" check is the random reinit above
    "gated": "gates on seeded random weights", "baseline": "trained normally",
    # the strong-ticket kinds' networks (their experiment column)
    "lenet300": "LeNet-300-100", "conv2": "Conv-2", "conv4": "Conv-4", "conv6": "Conv-6",
    "fc2": "2-layer FC (500 hidden)", "fc4": "4-layer FC (500-500-500 hidden)", "lenet5": "LeNet-5 (frozen random convs)",
    "resnet20": "ResNet-20", "mlp": "MLP (512-256-128 hidden)", "cnn": "CNN conv32-conv64-fc128",
    # tickets across data sets (lth.experiments.transfer): the ticket itself is the target's own
    "transfer": "transferred ticket",
}
# Zhou et al.'s deconstruction (lth.experiments.deconstruct): its controls share names with other kinds'
# ("reinit", "signed_constant", "random"), so lth.results.deconstruct relabels them from this table.
ZHOU_LABELS = {
    "large_final": "large final |w_f| (IMP)", "small_final": "small final", "large_init": "large init |w_i|",
    "small_init": "small init", "large_init_large_final": "large init & large final",
    "large_final_same_sign": "large final, same sign", "magnitude_increase": "magnitude increase |w_f|-|w_i|",
    "movement": "movement |w_f-w_i|", "random": "random mask",
    # what the kept weights start from (mask: large final) and what the pruned weights hold
    "rewind": "rewind to w_0 (IMP)", "reinit": "random reinit", "reshuffle": "w_0 reshuffled among kept",
    "signed_constant": "signed constant sign(w_0)*std", "zero": "pruned weights zero (IMP)",
    "frozen_init": "pruned weights frozen at w_0",
    # untrained weights under one-shot masks, and the learned supermask's frozen weights
    "init": "weights w_0", "glorot_normal": "Glorot normal", "glorot_signed_constant": "Glorot signed constant",
}
CONTROL_ORDER = [TICKET, "transfer", "reinit", "random_mask"]
CONTROL_STYLE = {
    TICKET: {"color": "C0", "linestyle": "-", "marker": "o"},
    "reinit": {"color": "C1", "linestyle": "--", "marker": "s"},
    "random_mask": {"color": "C2", "linestyle": ":", "marker": "^"},
    "transfer": {"color": "C3", "linestyle": "-", "marker": "D"},
}
AXIS_LABELS = {
    "early_stop_iteration": "Early-stop iteration (iterations)",
    "early_stop_test_accuracy": "Test accuracy at early stop (%)",
    "final_test_accuracy": "Test accuracy at end of training (%)",
    "final_train_accuracy": "Train accuracy at end of training (%)",
    "density": "Percent of weights remaining (%)",
    "early_stop_test_error": "Test error at early stop (%)",
    "final_test_error": "Test error at end of training (%)",
}
PERCENT = {"early_stop_test_accuracy", "final_test_accuracy", "final_train_accuracy", "density",
           "early_stop_test_error", "final_test_error"}
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")


def label(value) -> str:
    """The legend/title text of a control, method, experiment or network name (itself if unknown)."""
    return LABELS.get(value, str(value))
