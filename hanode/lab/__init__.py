"""The test bed: instruments that stand in for a second box, a cable and a LAN.

Nothing here is part of the agent: the product modules never import this
package (tests/test_layout.py checks it), the appliance image leaves it out,
and ``hanode demo`` reaches it only through a lazy import in hanode/cli.py.

- ``cable``: ``NullModem``, a null-modem cable between two serial endpoints
  (PTYs, QEMU sockets, file descriptors), paced like a real 8N1 line, with
  loss, bit errors, noise and cuts;
- ``bed``: ``Lab``, two boxes and a client in network namespaces on a private
  bridge, the cable between them, per-node Heartbeat files, watchers;
- ``demo``: ``hanode demo``, the failover story told on a ``Lab``;
- ``python -m hanode.lab``: the cable on the command line (``--help``).
"""
