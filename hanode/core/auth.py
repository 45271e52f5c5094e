"""authkeys methods for the wire: tag a frame, verify a frame's tag.

Theory of operation
-------------------
Heartbeat's ``authkeys`` lists numbered keys (index 0..15), each with a
method, and ``auth N`` picks the one used for sending.  hanode keeps that
model: the sender tags every frame with key ``send_index`` and writes the
index into the frame header; a receiver accepts a frame tagged with any key
it has, so keys can be rolled one node at a time as with Heartbeat.

Tags are short because the serial line is slow (see docs/protocol.md):

* ``crc``: CRC-32 of the frame, 4 bytes big-endian.  Integrity only -
  anybody can compute it, exactly as Heartbeat's ``crc``.
* ``md5``, ``sha1``, ``hmac-sha256``: HMAC (RFC 2104) with the key,
  truncated to 8 bytes.  Together with the replay guard in frame.py, forging
  a frame takes about 2**64 tries on a line that carries ~80 frames/s.

Verification compares in constant time.  An unknown index never raises on
the receive path (``verify`` is False, ``tag_length`` is None): the decoder
counts it as "unknown_key".
"""

from hanode.core.compat import Hmac, compare_digest, crc32
from hanode.core.limits import AUTH_METHODS as METHODS
from hanode.core.limits import CRC_TAG_LENGTH, MAC_TAG_LENGTH
from hanode.core.limits import MAX_AUTH_INDEX as MAX_INDEX  # Heartbeat's MAXAUTH is 16

_HASH_OF = {"md5": "md5", "sha1": "sha1", "hmac-sha256": "sha256"}


class _Key:
    """One authkeys line, ready to tag: method, tag length, and the primed HMAC."""

    def __init__(self, index, method, key):
        self.index = index
        self.method = method
        if method == "crc":
            self.length = CRC_TAG_LENGTH
            self.mac = None
        else:
            if not key:
                raise ValueError("auth key %d: method %s requires a key" % (index, method))
            self.length = MAC_TAG_LENGTH
            self.mac = Hmac(_HASH_OF[method], key)

    def tag(self, data):
        if self.mac is None:
            return crc32(data).to_bytes(4, "big")
        return self.mac.digest(data)[:MAC_TAG_LENGTH]


def _key_bytes(key):
    if key is None:
        return b""
    if isinstance(key, str):
        return key.encode()
    return bytes(key)


class Auth:
    """The node's keys: ``Auth(send_index, {index: (method, key_bytes)})``.

    Raises ValueError for a configuration it cannot use (unknown method, index
    outside 0..15, a MAC method without a key, ``send_index`` not among the
    keys); config.py reports those with file and line first, so this is the
    last line of defence, not the user-facing check.
    """

    def __init__(self, send_index, keys):
        self._keys = {}
        for index in keys:
            method, key = keys[index]
            if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index <= MAX_INDEX:
                raise ValueError("auth key index %r out of range 0..%d" % (index, MAX_INDEX))
            if method not in METHODS:
                raise ValueError("auth key %d: unknown method %r (use %s)"
                                 % (index, method, ", ".join(METHODS)))
            self._keys[index] = _Key(index, method, _key_bytes(key))
        if send_index not in self._keys:
            raise ValueError("auth %r: no such key index" % (send_index,))
        self.send_index = send_index

    @classmethod
    def from_config(cls, cfg):
        """Build from a Config: ``cfg.auth_index`` and ``cfg.auth_keys``.

        Duck-typed so the wire code does not depend on config.py: each value of
        ``auth_keys`` needs ``.method`` and ``.key`` (``.key_bytes`` also works).
        """
        keys = {}
        for index in cfg.auth_keys:
            entry = cfg.auth_keys[index]
            key = getattr(entry, "key", None)
            if key is None:
                key = getattr(entry, "key_bytes", None)
            keys[index] = (entry.method, key)
        return cls(cfg.auth_index, keys)

    def indexes(self):
        return sorted(self._keys)

    def method(self, index):
        """The method name of key ``index``, or None if there is no such key."""
        k = self._keys.get(index)
        return None if k is None else k.method

    def tag_length(self, index):
        """Bytes of tag for key ``index``: 4 (crc), 8 (MACs), None if unknown."""
        k = self._keys.get(index)
        return None if k is None else k.length

    def tag(self, index, data):
        """Tag ``data`` with key ``index``; ValueError if there is no such key."""
        k = self._keys.get(index)
        if k is None:
            raise ValueError("no auth key %r" % (index,))
        return k.tag(data)

    def verify(self, index, data, tag):
        """True if ``tag`` is key ``index``'s tag of ``data``; never raises."""
        k = self._keys.get(index)
        if k is None:
            return False
        return compare_digest(k.tag(data), tag)

    def __repr__(self):
        # Never print key material: logs and tracebacks end up in bug reports.
        return "Auth(send_index=%d, keys={%s})" % (
            self.send_index,
            ", ".join("%d: %s" % (i, self._keys[i].method) for i in sorted(self._keys)))
