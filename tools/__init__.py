"""Developer tools for hanode: the null-modem simulator CLI, the frame sniffer, benchmarks.

Run them as modules from the source tree: ``python -m tools.nullmodem --help``,
``python -m tools.sniff --help``.
"""
