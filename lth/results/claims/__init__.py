"""The papers' claims as data, one module per paper family, each claim beside the rule that judges
it; `lth.results.verdicts` holds the machinery (statistics, rules, the claims table).

    lenet      Frankle & Carbin, LeNet-300-100: Figures 3, 4a-c
    conv       Frankle & Carbin, Conv-2/4/6: Figure 5
    pai        SNIP's Table 1 (pruning at initialisation)
    strong     edge-popup, Zhou et al., Pensia Exp. 2, Gem-Miner, train_ticket
    subsetsum  Pensia et al. Exp. 1
    lmc        Frankle et al. 2020, linear mode connectivity (instability)
    rewinding  Renda et al. 2020: learning-rate rewinding vs weight rewinding vs fine-tuning
    transfer   Morcos et al. 2019 and Mehta 2019, tickets across data sets (MNIST <-> Fashion-MNIST)
    deconstruct  Zhou et al. 2019, deconstructing lottery tickets (criteria, treatments, supermasks)
"""

from lth.results.analysis import MissingData, combine
from lth.results.claims.conv import CONV
from lth.results.claims.deconstruct import DECONSTRUCT, DECONSTRUCT_CONV
from lth.results.claims.lenet import LENET_CURVES, LENET_ITERATIVE, LENET_ONE_SHOT
from lth.results.claims.lmc import LMC_LENET, LMC_RESNET20
from lth.results.claims.pai import SNIP_LENET300, SNIP_LENET5_CAFFE, snip_ablation
from lth.results.claims.rewinding import RENDA_REWINDING
from lth.results.claims.strong import (PENSIA_READ_OUTS, STRONG_EDGEPOPUP, STRONG_GEM_MINER, STRONG_PENSIA,
                                       STRONG_TRAIN_TICKET)
from lth.results.claims.subsetsum import PENSIA_SUBSETSUM
from lth.results.claims.transfer import TRANSFER_MNIST
from lth.results.verdicts import BASE_COLUMNS, COLUMNS, VERDICTS, Claim, Rule, Sample, evaluate

ALL = {"lenet_iterative": LENET_ITERATIVE, "lenet_curves": LENET_CURVES, "lenet_one_shot": LENET_ONE_SHOT,
       "conv": CONV, "snip_lenet300": SNIP_LENET300, "snip_lenet5_caffe": SNIP_LENET5_CAFFE,
       "strong_edgepopup": STRONG_EDGEPOPUP, "strong_pensia": STRONG_PENSIA, "strong_gem_miner": STRONG_GEM_MINER,
       "strong_train_ticket": STRONG_TRAIN_TICKET, "pensia_subsetsum": PENSIA_SUBSETSUM,
       "lmc_lenet": LMC_LENET, "lmc_resnet20": LMC_RESNET20, "renda_rewinding": RENDA_REWINDING,
       "transfer_mnist": TRANSFER_MNIST, "deconstruct": DECONSTRUCT,
       "deconstruct_conv": DECONSTRUCT_CONV}

__all__ = ["ALL", "BASE_COLUMNS", "COLUMNS", "CONV", "DECONSTRUCT", "DECONSTRUCT_CONV", "Claim", "LENET_CURVES", "LENET_ITERATIVE", "LENET_ONE_SHOT",
           "LMC_LENET", "LMC_RESNET20", "MissingData", "PENSIA_READ_OUTS", "PENSIA_SUBSETSUM", "RENDA_REWINDING", "Rule",
           "SNIP_LENET300", "SNIP_LENET5_CAFFE", "STRONG_EDGEPOPUP", "STRONG_GEM_MINER", "STRONG_PENSIA", "STRONG_TRAIN_TICKET",
           "Sample", "TRANSFER_MNIST", "VERDICTS", "combine", "evaluate", "snip_ablation"]
