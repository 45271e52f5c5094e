#!/usr/bin/env python3
"""Fuzz hanode.core.config with random text as ha.cf (the other two files valid).

See _configfuzz.py for the invariants.  Run:
``python3 tests/fuzz/fuzz_hacf.py --seeds /tmp/c /tmp/c -max_total_time=600``.
"""
from _common import instrumented, main

with instrumented():
    import _configfuzz

WHICH = 0


def TestOneInput(data):
    _configfuzz.one_input(WHICH, data)


def seeds():
    return _configfuzz.seeds(WHICH)


if __name__ == "__main__":
    main(TestOneInput, seeds)
