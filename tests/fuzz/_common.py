"""Shared plumbing for the atheris harnesses in this directory.

Theory of operation
-------------------
Each harness is a script with a ``TestOneInput(data: bytes)`` that raises on a
bug (an unexpected exception or a broken invariant) and a ``seeds()`` list of
interesting starting inputs.  ``main(TestOneInput, seeds)`` hands them to atheris with the
hanode package instrumented for coverage (the harness imports it inside
``with instrumented():``); libFuzzer's usual flags pass through
(``-max_total_time=N``, ``-runs=N``, corpus directories, ``-artifact_prefix=``).
atheris is imported only in ``main`` so that the regression inputs in
``regressions/<harness>/`` replay under plain pytest without it.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
if REPO not in sys.path:
    sys.path.insert(0, REPO)


def instrumented():
    """Context for the harness's hanode imports: atheris instruments them for
    coverage when the harness runs as the fuzzer, nothing happens under pytest."""
    main = sys.modules.get("__main__")
    running_harness = os.path.dirname(os.path.abspath(getattr(main, "__file__", "") or "")) == HERE
    if running_harness:
        try:
            import atheris
        except ImportError:
            pass
        else:
            return atheris.instrument_imports(include=["hanode"])
    import contextlib
    return contextlib.nullcontext()


def write_seeds(seeds, directory):
    """Put the harness's seeds into a corpus directory (one file each)."""
    os.makedirs(directory, exist_ok=True)
    for i, data in enumerate(seeds):
        with open(os.path.join(directory, "seed-%03d" % i), "wb") as f:
            f.write(data)


def main(test_one_input, seeds):
    """Run the fuzzer (the harness imported hanode inside ``instrumented()``)."""
    import atheris   # only here: the regression replay must not need it
    argv = list(sys.argv)
    # `--seeds DIR`: write the seeds into DIR (then pass DIR as the corpus)
    if len(argv) > 2 and argv[1] == "--seeds":
        write_seeds(seeds(), argv[2])
        del argv[1:3]
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()
