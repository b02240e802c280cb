"""Tickets people can take away: one network of a run as a safetensors file, and back as a plain
``torch.nn.Module`` in ``torch.nn.utils.prune``'s layout.

    from lth.tickets import export_ticket, load_ticket
    path = export_ticket("runs/lth_lenet300/<hash>", level=5, trial=0, include_trained=True, path="t.safetensors")
    model = load_ticket(path)                      # initial weights, masks as weight_orig / weight_mask
    trained = load_ticket(path, weights="trained")
    strong = export_ticket("runs/strong_edgepopup/<hash>", level=None, trial=0, network="lenet300",
                           control="signed_constant", path="s.safetensors")   # seeds + bit-packed masks

The file format is described in `lth.tickets.fileformat`.
"""

from lth.tickets.cli import add_export_arguments, export_command
from lth.tickets.export import export_ticket, read_operative_config
from lth.tickets.fileformat import Ticket, TicketError, read_ticket
from lth.tickets.load import load_ticket
from lth.tickets.strong import export_strong_ticket, export_supermask_ticket

__all__ = ["Ticket", "TicketError", "add_export_arguments", "export_command", "export_strong_ticket",
           "export_supermask_ticket", "export_ticket", "load_ticket", "read_operative_config", "read_ticket"]
