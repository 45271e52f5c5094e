"""The lab's shared settings: the key both boxes share and the timing presets.

Plain data, importable by MicroPython too (tools/bench/codec_loop.py runs there),
so the lab, the tests and the benchmarks read one copy of each.
"""

# the hmac-sha256 secret in every lab node's authkeys (a test value, never a real one)
KEY = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"

# ha.cf timings by name: Heartbeat's classic one and the tighter ones the tests and figures use
TIMINGS = {
    "classic": {"keepalive": "1", "warntime": "5", "deadtime": "15", "initdead": "60"},
    "tight": {"keepalive": "100ms", "warntime": "300ms", "deadtime": "500ms", "initdead": "10"},
    "fast": {"keepalive": "50ms", "warntime": "150ms", "deadtime": "250ms", "initdead": "10"},
    "edge": {"keepalive": "50ms", "warntime": "100ms", "deadtime": "150ms", "initdead": "10"},
}
