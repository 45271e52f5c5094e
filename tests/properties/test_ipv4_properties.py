"""hanode.vip's and hanode.arp's IPv4 without the ipaddress module: the same answers as ipaddress.

The agent checks, compares and packs VIPs with the configuration parser's ``parse_ipv4`` and
integer arithmetic (ipaddress was 0.26 MB of its memory); here ipaddress is the oracle for
arbitrary text (digits, dots and the characters that trip a parser: leading zeros, a slash,
spaces, non-ASCII digits) and for every address and prefix length.
"""
import ipaddress

import pytest
from hypothesis import given, settings, strategies as st

from hanode import arp, vip

TEXT = st.text(alphabet="0123456789./ x\u0663", max_size=18)
QUAD = st.lists(st.one_of(st.integers(0, 300).map(str), st.sampled_from(["", "00", "01", "010", "0x1", "1e2"])),
                min_size=3, max_size=5).map(".".join)
ADDRESS = st.integers(0, 2 ** 32 - 1).map(lambda n: str(ipaddress.IPv4Address(n)))


def _ipaddress_accepts(text):
    try:
        ipaddress.IPv4Address(text)
        return True
    except ValueError:
        return False


@settings(max_examples=2000, deadline=None)
@given(st.one_of(TEXT, QUAD, ADDRESS))
def test_a_vip_and_an_arp_address_are_what_ipaddress_accepts(text):
    accepted = _ipaddress_accepts(text)
    if accepted:
        assert vip.Vip(text).ip == str(ipaddress.IPv4Address(text))
        assert vip.Vip("192.0.2.1", broadcast=text).broadcast == text
        assert arp._ip_bytes(text) == ipaddress.IPv4Address(text).packed
    else:
        with pytest.raises(vip.VipError):
            vip.Vip(text)
        with pytest.raises(vip.VipError):
            vip.Vip("192.0.2.1", broadcast=text)
        with pytest.raises(arp.ArpError):
            arp._ip_bytes(text)


@settings(max_examples=2000, deadline=None)
@given(ADDRESS, ADDRESS, st.integers(0, 32))
def test_subnet_and_broadcast_are_ipaddress_s(ip, local, prefixlen):
    net = ipaddress.IPv4Network("%s/%d" % (local, prefixlen), strict=False)
    assert vip.in_subnet(ip, local, prefixlen) == (ipaddress.IPv4Address(ip) in net)
    assert vip.broadcast_address(local, prefixlen) == str(net.broadcast_address)
