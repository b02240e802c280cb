"""``python -m lth export RUN --trial T [--level L] [--control C] [--network N] [--replicate R] [--trained] -o FILE``
(argparse glue for `lth.cli`)."""

from __future__ import annotations

import argparse
import sys

from lth.schema import TICKET


def add_export_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the export command's arguments to ``parser`` (a subparser of ``python -m lth``)."""
    parser.add_argument("run", help="a run folder, runs/<experiment>/<hash>")
    parser.add_argument("--level", type=int, help="pruning level (0 = dense); strong runs: the density's index "
                                                   "(may be left out where the run has one)")
    parser.add_argument("--trial", type=int, required=True, help="trial, from 0")
    parser.add_argument("--control", help=f"IMP: {TICKET} (the ticket, default), reinit or random_mask; strong runs: "
                                          "the method or variant (e.g. signed_constant; left out where the run has one)")
    parser.add_argument("--network", help="strong runs: the network (e.g. lenet300; left out where the run has one)")
    parser.add_argument("--replicate", type=int, default=0, help="which random reinitialisation (control reinit)")
    parser.add_argument("--trained", action="store_true", help="also store the trained weights (tickets only)")
    parser.add_argument("-o", "--output", help="the .safetensors file (default: <run>/tickets/...)")
    return parser


def export_command(args: argparse.Namespace) -> int:
    """Run the export; print the file, its size and density. 0 on success, 2 on a bad request."""
    from lth.tickets.export import export_ticket
    from lth.tickets.fileformat import TicketError, read_ticket
    try:
        path = export_ticket(args.run, args.level, args.trial, args.control, args.replicate, args.trained,
                             path=args.output, network=args.network)
    except TicketError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    meta = read_ticket(path).meta
    print(f"{path}: {path.stat().st_size:,} bytes, {meta['model']} at density {meta['density']:.4f} "
          f"(level {meta['level']}, trial {meta['trial']}, control {meta['control']})")
    return 0
