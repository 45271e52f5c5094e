"""hanode: a two-node failover agent that reads Linux-HA Heartbeat's configuration.

Theory of operation
-------------------
``hanode.core`` is a sans-IO state machine: it is fed bytes from the serial
line and the current time, and answers with frames to send and actions to
perform.  Everything else in this package is a thin adapter around one piece
of the outside world (the UART, netlink for the VIP, ARP, init scripts, the
watchdog, systemd, the control socket), and ``hanode.agent`` is the asyncio
loop that wires the core to the adapters and is the only place that reads a
clock.  See docs/ and the README for the protocol and the state tables.
"""

__version__ = "0.1.0"
