"""lth: lottery-ticket research, reproduced."""

__version__ = "0.1.0"
