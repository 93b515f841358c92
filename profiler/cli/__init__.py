"""Layer 5, the command line: the parser, one module per command, and console output."""

from profiler.cli.main import main

__all__ = ["main"]
