"""auth: tag lengths, tag values per method, verify, key roll-over, config errors.

Plain test_* functions without pytest imports: this file also runs under MicroPython.
"""

from binascii import unhexlify

from hanode.core.auth import METHODS, Auth
from tests.core.util import raises as _raises

_DATA = b"what do ya want for nothing?"


def _all_methods():
    return Auth(4, {1: ("crc", None), 2: ("md5", b"Jefe"), 3: ("sha1", b"Jefe"),
                    4: ("hmac-sha256", b"Jefe")})


def test_tag_lengths():
    auth = _all_methods()
    assert auth.tag_length(1) == 4
    assert auth.tag_length(2) == 8
    assert auth.tag_length(3) == 8
    assert auth.tag_length(4) == 8
    assert auth.tag_length(0) is None
    assert auth.tag_length(15) is None
    assert auth.tag_length(99) is None
    for index in (1, 2, 3, 4):
        assert len(auth.tag(index, _DATA)) == auth.tag_length(index)


def test_tags_are_truncated_rfc_hmacs_and_crc32():
    auth = _all_methods()
    # First 8 bytes of the RFC 2202 / RFC 4231 "Jefe" vectors.
    assert auth.tag(2, _DATA) == unhexlify("750c783e6ab0b503")
    assert auth.tag(3, _DATA) == unhexlify("effcdf6ae5eb2fa2")
    assert auth.tag(4, _DATA) == unhexlify("5bdcc146bf60754e")
    # CRC-32 check value, big-endian.
    assert auth.tag(1, b"123456789") == unhexlify("cbf43926")


def test_send_index_and_method():
    auth = _all_methods()
    assert auth.send_index == 4
    assert auth.method(1) == "crc"
    assert auth.method(4) == "hmac-sha256"
    assert auth.method(7) is None
    assert auth.indexes() == [1, 2, 3, 4]
    assert tuple(sorted(METHODS)) == ("crc", "hmac-sha256", "md5", "sha1")


def test_verify_accepts_own_tag_and_rejects_every_single_bit_flip():
    auth = _all_methods()
    for index in (1, 2, 3, 4):
        tag = auth.tag(index, _DATA)
        assert auth.verify(index, _DATA, tag)
        for i in range(len(tag)):
            for bit in range(8):
                bad = bytearray(tag)
                bad[i] ^= 1 << bit
                assert not auth.verify(index, _DATA, bytes(bad)), (index, i, bit)
        for i in range(len(_DATA)):
            bad = bytearray(_DATA)
            bad[i] ^= 0x04
            assert not auth.verify(index, bytes(bad), tag), (index, i)


def test_verify_rejects_wrong_length_unknown_index_and_other_key():
    auth = _all_methods()
    tag = auth.tag(4, _DATA)
    assert not auth.verify(4, _DATA, tag[:7])
    assert not auth.verify(4, _DATA, tag + b"\x00")
    assert not auth.verify(4, _DATA, b"")
    assert not auth.verify(9, _DATA, tag)
    # Same message, same key text, other method: a different tag.
    assert not auth.verify(3, _DATA, tag)
    assert not auth.verify(2, _DATA, tag)


def test_different_keys_give_different_tags():
    a = Auth(1, {1: ("hmac-sha256", b"key-a")})
    b = Auth(1, {1: ("hmac-sha256", b"key-b")})
    assert a.tag(1, _DATA) != b.tag(1, _DATA)
    assert not b.verify(1, _DATA, a.tag(1, _DATA))


def test_key_rollover_receiver_accepts_every_listed_key():
    # Old node signs with key 1, upgraded node with key 2; a receiver listing
    # both accepts either, as Heartbeat's authkeys does.
    old = Auth(1, {1: ("sha1", b"old-secret")})
    new = Auth(2, {2: ("hmac-sha256", b"new-secret")})
    both = Auth(2, {1: ("sha1", b"old-secret"), 2: ("hmac-sha256", b"new-secret")})
    assert both.verify(1, _DATA, old.tag(old.send_index, _DATA))
    assert both.verify(2, _DATA, new.tag(new.send_index, _DATA))
    assert not old.verify(2, _DATA, new.tag(2, _DATA))


def test_str_key_is_utf8():
    assert Auth(1, {1: ("md5", "Jefe")}).tag(1, _DATA) == unhexlify("750c783e6ab0b503")


def test_crc_ignores_key():
    assert Auth(0, {0: ("crc", b"whatever")}).tag(0, b"123456789") == unhexlify("cbf43926")
    assert Auth(0, {0: ("crc", None)}).tag(0, b"123456789") == unhexlify("cbf43926")


def test_bad_configuration_raises_valueerror():
    assert _raises(ValueError, Auth, 1, {1: ("sha512", b"k")})
    assert _raises(ValueError, Auth, 16, {16: ("crc", None)})
    assert _raises(ValueError, Auth, -1, {-1: ("crc", None)})
    assert _raises(ValueError, Auth, 1, {1: ("md5", b"")})
    assert _raises(ValueError, Auth, 1, {1: ("sha1", None)})
    assert _raises(ValueError, Auth, 2, {1: ("crc", None)})
    assert _raises(ValueError, Auth, 1, {})
    assert _raises(ValueError, Auth, "1", {"1": ("crc", None)})
    # Boundaries that are fine.
    assert Auth(0, {0: ("crc", None), 15: ("md5", b"k")}).tag_length(15) == 8


def test_tag_with_unknown_index_raises():
    auth = _all_methods()
    assert _raises(ValueError, auth.tag, 7, _DATA)


class _Key:
    def __init__(self, index, method, key):
        self.index = index
        self.method = method
        self.key = key


class _KeyBytes:
    def __init__(self, index, method, key_bytes):
        self.index = index
        self.method = method
        self.key_bytes = key_bytes


class _Cfg:
    def __init__(self, index, keys):
        self.auth_index = index
        self.auth_keys = keys


def test_from_config_duck_typed():
    cfg = _Cfg(2, {1: _Key(1, "crc", None), 2: _Key(2, "hmac-sha256", b"Jefe")})
    auth = Auth.from_config(cfg)
    assert auth.send_index == 2
    assert auth.tag(2, _DATA) == unhexlify("5bdcc146bf60754e")
    assert auth.tag_length(1) == 4
    auth = Auth.from_config(_Cfg(3, {3: _KeyBytes(3, "sha1", b"Jefe")}))
    assert auth.tag(3, _DATA) == unhexlify("effcdf6ae5eb2fa2")


def test_repr_hides_keys():
    text = repr(Auth(1, {1: ("hmac-sha256", b"TopSecretKey")}))
    assert "TopSecretKey" not in text
    assert "hmac-sha256" in text
