"""Small shims so the core runs unchanged on CPython and MicroPython.

Theory of operation
-------------------
The core never reads a clock (time is always an argument), so the only things
that differ between the two interpreters and matter here are:

* ``const``: ``micropython.const`` lets the MicroPython compiler fold integer
  constants; on CPython it is the identity.
* HMAC: MicroPython has no ``hmac`` module, and its hash objects finalise on
  ``digest()`` and have no ``copy()``/``hexdigest()``.  ``Hmac`` is RFC 2104
  written out over ``hashlib``: it pads the key once, so a frame costs two
  fresh hash objects and two ``digest()`` calls.  Where hash objects can be
  copied (CPython) the two are primed with the padded key once and copied per
  frame instead: no hash set-up and no key block hashed again on each frame.
* ``compare_digest``: written by hand on MicroPython (there is no
  ``hmac.compare_digest``) so that the time taken does not depend on where
  two tags differ; CPython's own (in C) where there is one.
* ``crc32``: ``binascii.crc32`` exists on both; masked to 32 bits because old
  CPythons and some ports returned a signed value.
"""

import binascii
import hashlib

try:
    from micropython import const
except ImportError:  # CPython
    def const(value):
        return value


BLOCK_SIZE = 64  # md5, sha1 and sha256 all use 64-byte blocks (RFC 2104's B)

_DIGEST_SIZES = {"md5": 16, "sha1": 20, "sha256": 32}


def hash_constructor(name):
    """Return hashlib's constructor for ``name`` ("sha256", "sha1", "md5").

    Looked up by attribute because MicroPython has no ``hashlib.new`` and a
    port may be built without md5/sha1; that is reported as a ValueError
    naming the algorithm rather than an AttributeError deep in a send path.
    """
    if name not in _DIGEST_SIZES:
        raise ValueError("unsupported hash %r (use sha256, sha1 or md5)" % (name,))
    ctor = getattr(hashlib, name, None)
    if ctor is None:
        raise ValueError("hash %r is not available in this Python's hashlib" % (name,))
    return ctor


def _xor_pad(key, pad):
    return bytes([b ^ pad for b in key])


class Hmac:
    """A reusable HMAC key: ``Hmac("sha256", key).digest(msg)``.

    The padded inner and outer keys are computed once here; each ``digest``
    builds two new hash objects (MicroPython cannot copy a primed one).
    """

    def __init__(self, name, key):
        ctor = hash_constructor(name)
        key = bytes(key)
        if len(key) > BLOCK_SIZE:
            key = ctor(key).digest()
        key = key + bytes(BLOCK_SIZE - len(key))
        self.name = name
        self.digest_size = _DIGEST_SIZES[name]
        self._ctor = ctor
        self._ipad = _xor_pad(key, 0x36)
        self._opad = _xor_pad(key, 0x5C)
        inner, outer = ctor(self._ipad), ctor(self._opad)
        if hasattr(inner, "copy"):
            self._inner, self._outer = inner, outer   # primed: copied for each message
        else:
            self._inner = self._outer = None

    def digest(self, msg):
        if self._inner is not None:
            inner = self._inner.copy()
            inner.update(msg)
            outer = self._outer.copy()
        else:
            inner = self._ctor(self._ipad)
            inner.update(msg)
            outer = self._ctor(self._opad)
        outer.update(inner.digest())
        return outer.digest()


def hmac_digest(name, key, msg):
    """One-shot HMAC-``name``(key, msg) -> bytes (full length)."""
    return Hmac(name, key).digest(msg)


def _compare_digest(a, b):
    """Constant-time equality of two byte strings.

    Only the length may leak (tags have a public, fixed length); otherwise
    every byte is looked at whatever the first difference is.
    """
    if len(a) != len(b):
        return False
    diff = 0
    for i in range(len(a)):
        diff |= a[i] ^ b[i]
    return diff == 0


try:
    from hmac import compare_digest   # CPython: the same rule, in C
except ImportError:   # MicroPython
    compare_digest = _compare_digest


def crc32(data):
    """CRC-32 (the zlib/IEEE 802.3 one) of ``data`` as an unsigned int."""
    return binascii.crc32(data) & 0xFFFFFFFF
