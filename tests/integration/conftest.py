"""Shared fixtures for the integration tests: throw-away network namespaces.

Theory of operation: ``netns_lan(n=2, ...)`` builds a ``helpers.Lan`` (N node
namespaces joined by a bridge that lives in its own namespace, addresses from
192.0.2.0/24, MACs 02:68:6e:..) and the fixture's ``finally`` tears every one
of them down, even when the test fails or is interrupted. ``lan2`` is the
common case: two nodes, ``eth0`` = 192.0.2.1 and 192.0.2.2. Other helpers
(running commands or Python callables inside a namespace) live in
``tests/support/helpers.py``; import them with ``from helpers import in_netns, ns_run``.

Tests here need root (they create namespaces); without it they are skipped
with the reason, rather than failing in confusing ways.
"""
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "support"))
import helpers  # noqa: E402  (needs the path above)


def _require_privileges() -> None:
    if not helpers.have_netns_privileges():
        pytest.skip("needs root and iproute2 to create network namespaces")


@pytest.fixture
def netns_lan():
    """Factory: ``lan = netns_lan(n=2, subnet="192.0.2", ifname="eth0")``; all torn down afterwards."""
    _require_privileges()
    made = []

    def make(n: int = 2, **kwargs):
        lan = helpers.Lan(n, **kwargs)
        made.append(lan)
        return lan

    try:
        yield make
    finally:
        errors = []
        for lan in reversed(made):
            try:
                lan.close()
            except Exception as e:  # keep tearing the others down
                errors.append(str(e))
        if errors:
            raise RuntimeError("; ".join(errors))


@pytest.fixture
def lan2(netns_lan):
    """Two nodes on one segment: nodes[0] eth0 192.0.2.1/24, nodes[1] eth0 192.0.2.2/24."""
    return netns_lan(2)


@pytest.fixture
def netns1(netns_lan):
    """One node namespace with eth0 192.0.2.1/24 on a bridge of its own."""
    return netns_lan(1)
