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

Modules (each imports only those above it):
  compat    const, HMAC (RFC 2104) and constant-time compare for both interpreters
  limits    sizes and ranges the wire and Heartbeat fix (groups, auth methods, bauds, frame bytes)
  config    ha.cf / authkeys / haresources text -> Config, ConfigError(path, line, message)
  auth      authkeys methods: crc, md5, sha1, hmac-sha256 -> tag / verify
  frame     the wire codec: COBS framing, status frame, node states, Decoder; ReplayGuard
  liveness  per-link and per-node up/dead/late bookkeeping (a transition table)
  ownership per-group ownership state machine (a transition table)
  acks      the acknowledgement rule: has the peer seen our frames since a change?
  wants     what the node wants of each group, and the event that fires (a table)
  status    read-only views: status dict, rscstatus, peer state, systemd summary
  node      the whole node: start/receive/tick/completed/probed/standby/takeover/shutdown
"""
