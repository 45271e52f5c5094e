"""Helpers shared by the core's portable tests (CPython and MicroPython alike; no pytest)."""


def raises(exc, fn, *args):
    """True if fn(*args) raises exc (pytest.raises is not available on MicroPython)."""
    try:
        fn(*args)
    except exc:
        return True
    return False
