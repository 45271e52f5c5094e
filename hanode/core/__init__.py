"""The sans-IO core of hanode (runs unchanged on CPython and MicroPython).

Theory of operation
-------------------
Nothing in this package touches a file, socket, clock or thread.  Callers hand
it text (the three Heartbeat configuration files), bytes (what arrived on a
link) and times (``now_ms``, an integer millisecond counter), and it hands back
plain objects: parsed configuration, decoded frames, and lists of outputs
(``Send``, ``Acquire``, ``Release``, ``Probe``, ``Log`` ...) for the agent to
perform.  Because time is an argument, every scenario - a late heartbeat, a
pulled cable, both nodes booting at once - is a deterministic unit test.

Modules:
  config    ha.cf / authkeys / haresources text -> Config, ConfigError(path, line, message)
  compat    const, HMAC (RFC 2104) and constant-time compare for both interpreters
  auth      authkeys methods: crc, md5, sha1, hmac-sha256 -> tag / verify
  frame     the wire codec: COBS framing, 22-byte status frame, Decoder with replay guard
  liveness  per-link and per-node up/dead/late bookkeeping from keepalive/warntime/deadtime/initdead
  ownership per-group ownership state machine (an explicit transition table)
  node      the whole node: start/receive/tick/completed/probed/standby/takeover/shutdown
"""
