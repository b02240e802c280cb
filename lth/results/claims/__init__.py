"""The papers' claims as data, one module per paper family, each claim beside the rule that judges
it; `lth.results.verdicts` holds the machinery (statistics, rules, the claims table).

    lenet      Frankle & Carbin, LeNet-300-100: Figures 3, 4a-c
    conv       Frankle & Carbin, Conv-2/4/6: Figure 5
    pai        SNIP's Table 1 (pruning at initialisation)
    strong     edge-popup, Zhou et al., Pensia Exp. 2, Gem-Miner, train_ticket
    subsetsum  Pensia et al. Exp. 1
    lmc        Frankle et al. 2020, linear mode connectivity (instability)
    deconstruct  Zhou et al. 2019, deconstructing lottery tickets (criteria, treatments, supermasks)
"""

from lth.results.analysis import MissingData, combine
from lth.results.claims.conv import CONV
from lth.results.claims.deconstruct import DECONSTRUCT
from lth.results.claims.lenet import LENET_CURVES, LENET_ITERATIVE, LENET_ONE_SHOT
from lth.results.claims.lmc import LMC_LENET, LMC_RESNET20
from lth.results.claims.pai import SNIP_LENET300, SNIP_LENET5_CAFFE
from lth.results.claims.strong import STRONG_EDGEPOPUP, STRONG_GEM_MINER, STRONG_PENSIA, STRONG_TRAIN_TICKET
from lth.results.claims.subsetsum import PENSIA_SUBSETSUM
from lth.results.verdicts import BASE_COLUMNS, COLUMNS, VERDICTS, Claim, Rule, Sample, evaluate

ALL = {"lenet_iterative": LENET_ITERATIVE, "lenet_curves": LENET_CURVES, "lenet_one_shot": LENET_ONE_SHOT,
       "conv": CONV, "snip_lenet300": SNIP_LENET300, "snip_lenet5_caffe": SNIP_LENET5_CAFFE,
       "strong_edgepopup": STRONG_EDGEPOPUP, "strong_pensia": STRONG_PENSIA, "strong_gem_miner": STRONG_GEM_MINER,
       "strong_train_ticket": STRONG_TRAIN_TICKET, "pensia_subsetsum": PENSIA_SUBSETSUM,
       "lmc_lenet": LMC_LENET, "lmc_resnet20": LMC_RESNET20, "deconstruct": DECONSTRUCT}

__all__ = ["ALL", "BASE_COLUMNS", "COLUMNS", "CONV", "DECONSTRUCT", "Claim", "LENET_CURVES", "LENET_ITERATIVE", "LENET_ONE_SHOT", "LMC_LENET", "LMC_RESNET20",
           "MissingData", "PENSIA_SUBSETSUM", "Rule", "SNIP_LENET300", "SNIP_LENET5_CAFFE", "STRONG_EDGEPOPUP",
           "STRONG_GEM_MINER", "STRONG_PENSIA", "STRONG_TRAIN_TICKET", "Sample", "VERDICTS", "combine", "evaluate"]
