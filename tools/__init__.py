"""Developer tools for hanode: the frame sniffer, benchmarks (the cable is ``python -m hanode.lab``).

Run them as modules from the source tree: ``python -m tools.sniff --help``,
``python -m tools.bench --help``.
"""
