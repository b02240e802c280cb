"""Probe (not a benchmark): where the LeNet-300-100 paper protocol spends its host time, by cProfile.
Usage: python benchmarks/profile_protocol.py [gin bindings...], e.g. 'ImpConfig.levels = 2'."""
import cProfile
import pstats
import sys

import torch

from throughput import PROTOCOL, time_protocol

profiler = cProfile.Profile()
profiler.enable()
result = time_protocol(torch.device("cuda"), PROTOCOL + sys.argv[1:], None)
profiler.disable()
print(result, flush=True)
stats = pstats.Stats(profiler)
stats.sort_stats("cumulative").print_stats(45)
stats.sort_stats("tottime").print_stats(20)
