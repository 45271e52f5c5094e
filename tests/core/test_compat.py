"""compat: HMAC against the RFC vectors, constant-time compare, crc32, const.

Plain test_* functions without pytest imports: this file also runs under
MicroPython, where the HMAC is the only one there is.
"""

from binascii import unhexlify

from hanode.core import compat
from hanode.core.compat import Hmac, compare_digest, const, crc32, hmac_digest
from tests.core.util import raises as _raises


# (key, data, md5 hex, sha1 hex) - RFC 2202 sections 2 and 3, test cases 1-7.
# Keys differ between the two sections for cases 1, 3 and 5 (16 vs 20 bytes).
_RFC2202 = (
    (b"\x0b" * 16, b"\x0b" * 20, b"Hi There",
     "9294727a3638bb1c13f48ef8158bfc9d", "b617318655057264e28bc0b6fb378c8ef146be00"),
    (b"Jefe", b"Jefe", b"what do ya want for nothing?",
     "750c783e6ab0b503eaa86e310a5db738", "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"),
    (b"\xaa" * 16, b"\xaa" * 20, b"\xdd" * 50,
     "56be34521d144c88dbb8c733f0e8b3f6", "125d7342b9ac11cd91a39af48aa17b4f63f175d3"),
    (bytes(range(1, 26)), bytes(range(1, 26)), b"\xcd" * 50,
     "697eaf0aca3a3aea3a75164746ffaa79", "4c9007f4026250c6bc8414f9bf50c86c2d7235da"),
    (b"\x0c" * 16, b"\x0c" * 20, b"Test With Truncation",
     "56461ef2342edc00f9bab995690efd4c", "4c1a03424b55e07fe7f27be1d58bb9324a9a5a04"),
    (b"\xaa" * 80, b"\xaa" * 80, b"Test Using Larger Than Block-Size Key - Hash Key First",
     "6b1ab7fe4bd7bf8f0b62e6ce61b9d0cd", "aa4ae5e15272d00e95705637ce8a3b55ed402112"),
    (b"\xaa" * 80, b"\xaa" * 80,
     b"Test Using Larger Than Block-Size Key and Larger Than One Block-Size Data",
     "6f630fad67cda0ee1fb1f562db3aa53e", "e8e99d0f45237d786d6bbaa7965c7808bbff1a91"),
)

# (key, data, HMAC-SHA-256 hex) - RFC 4231 test cases 1-4, 6, 7 (case 5 below).
_RFC4231 = (
    (b"\x0b" * 20, b"Hi There",
     "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
    (b"Jefe", b"what do ya want for nothing?",
     "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
    (b"\xaa" * 20, b"\xdd" * 50,
     "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
    (bytes(range(1, 26)), b"\xcd" * 50,
     "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
    (b"\xaa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First",
     "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
    (b"\xaa" * 131,
     b"This is a test using a larger than block-size key and a larger than block-size data."
     b" The key needs to be hashed before being used by the HMAC algorithm.",
     "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"),
)


def test_hmac_md5_rfc2202():
    for key, _, data, want, _ in _RFC2202:
        assert hmac_digest("md5", key, data) == unhexlify(want), (key, data)


def test_hmac_sha1_rfc2202():
    for _, key, data, _, want in _RFC2202:
        assert hmac_digest("sha1", key, data) == unhexlify(want), (key, data)


def test_hmac_sha256_rfc4231():
    for key, data, want in _RFC4231:
        assert hmac_digest("sha256", key, data) == unhexlify(want), (key, data)


def test_hmac_sha256_rfc4231_truncated_case5():
    # Case 5 only specifies the first 128 bits - the same truncation idea as
    # the 8-byte frame tags.
    got = hmac_digest("sha256", b"\x0c" * 20, b"Test With Truncation")
    assert got[:16] == unhexlify("a3b6167473100ee06e0c796c2955552b")
    assert len(got) == 32


def test_hmac_object_is_reusable():
    # MicroPython finalises a hash on digest(): the key object must build new
    # hash objects every time, so a second digest gives the same answer.
    key, data, want = _RFC4231[1]
    mac = Hmac("sha256", key)
    assert mac.digest(data) == unhexlify(want)
    assert mac.digest(data) == unhexlify(want)
    assert mac.digest(b"other") != unhexlify(want)
    assert mac.digest_size == 32 and mac.name == "sha256"


def test_hmac_key_of_exactly_one_block_is_not_hashed():
    # RFC 2104: only keys LONGER than the block are hashed first.
    key64 = bytes(range(64))
    key65 = bytes(range(65))
    import hashlib
    assert hmac_digest("sha256", key64, b"m") != hmac_digest("sha256", hashlib.sha256(key64).digest(), b"m")
    assert hmac_digest("sha256", key65, b"m") == hmac_digest("sha256", hashlib.sha256(key65).digest(), b"m")
    # Zero padding is part of the construction: a short key equals itself padded.
    assert hmac_digest("sha1", b"k", b"m") == hmac_digest("sha1", b"k" + bytes(63), b"m")


def test_hmac_empty_message_and_key():
    # RFC-independent anchors computed once with CPython's hmac module.
    assert hmac_digest("sha256", b"", b"") == unhexlify(
        "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad")
    assert hmac_digest("md5", b"", b"") == unhexlify("74e6f7298a9c2d168935f58c001bad88")


def test_hash_constructor_rejects_unknown():
    assert _raises(ValueError, compat.hash_constructor, "sha512")
    assert _raises(ValueError, Hmac, "blake2b", b"k")
    assert compat.hash_constructor("sha1") is not None


def test_primed_and_fresh_hmac_agree():
    # CPython copies hash objects primed with the padded key; MicroPython (no copy()) builds
    # them fresh for each message: both ways give RFC 4231's answers, again and again.
    for key, data, want in _RFC4231:
        primed, fresh = Hmac("sha256", key), Hmac("sha256", key)
        fresh._inner = fresh._outer = None
        for _ in range(2):
            assert primed.digest(data) == fresh.digest(data) == unhexlify(want)


def test_compare_digest():
    for same in (compare_digest, compat._compare_digest):   # the interpreter's, and the hand-written
        _check_compare(same)


def _check_compare(compare_digest):
    a = bytes(range(8))
    assert compare_digest(a, bytes(range(8)))
    assert compare_digest(b"", b"")
    for i in range(8):
        for bit in (0x01, 0x80):
            b = bytearray(a)
            b[i] ^= bit
            assert not compare_digest(a, bytes(b)), (i, bit)
    assert not compare_digest(a, a[:7])
    assert not compare_digest(a[:7], a)
    assert compare_digest(a, bytearray(a))
    assert compare_digest(a, memoryview(a))


def test_crc32_check_value():
    # The standard CRC-32 check value, and unsigned even for the high bit set.
    assert crc32(b"123456789") == 0xCBF43926
    assert crc32(b"") == 0
    assert crc32(b"\xff" * 4) == 0xFFFFFFFF
    assert crc32(b"hello") == 0x3610A686


def test_const_is_identity_on_values():
    assert const(5) == 5
    assert const(0xFF) == 255
