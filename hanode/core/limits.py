"""Sizes and ranges that the wire format and Heartbeat fix: each defined once, here.

Theory of operation
-------------------
A limit that two modules need (the frame codec and the configuration check,
the authenticator and the config parser, the UART and the config parser) is
imported from this module instead of being written twice, so that the two
cannot drift apart.  Nothing here is tunable: changing a value changes the
wire format (docs/protocol.md) or what ha.cf accepts.
"""

from hanode.core.compat import const

# A frame's held and want fields are one byte each, one bit per resource group.
MAX_GROUPS = const(8)
GROUP_MASK = const(0xFF)
# ack_gen and ack_seq echo only the low byte of the peer's generation and sequence number.
ACK_MASK = const(0xFF)
# A status frame of version 2 keeps the low 5 bits of the generation in ack_gen; the top 3 bits
# carry the sender's LAN health + 1 (0: not known), so health is 0..LAN_WIRE_MAX - 1.
ACK_GEN_MASK_V2 = const(0x1F)
LAN_WIRE_MAX = const(7)

# authkeys: Heartbeat's methods, and the key index that fits the frame header's 4 bits.
AUTH_METHODS = ("crc", "md5", "sha1", "hmac-sha256")
MAX_AUTH_INDEX = const(15)
MAC_TAG_LENGTH = const(8)   # HMAC truncated: ~2**64 tries to forge on a line of ~80 frames/s
CRC_TAG_LENGTH = const(4)

# One status frame: 14 body bytes + tag, COBS adds one byte, the 0x00 delimiter one more.
BODY_LENGTH = const(14)
FRAME_WIRE_BYTES = BODY_LENGTH + MAC_TAG_LENGTH + 2       # 24
FRAME_WIRE_BYTES_CRC = BODY_LENGTH + CRC_TAG_LENGTH + 2   # 20
# A challenge or rejoin frame (frame types 1 and 2, docs/protocol.md): 22 body bytes + tag,
# 32 on the wire with an 8-byte tag: exactly the most a receiver takes (MAX_ENCODED + 1).
CONTROL_BODY_LENGTH = const(22)
CONTROL_WIRE_BYTES = CONTROL_BODY_LENGTH + MAC_TAG_LENGTH + 2   # 32
# Longest run without a delimiter a receiver keeps: the design caps a frame at
# 32 bytes on the wire (31 encoded + the 0x00).
MAX_ENCODED = const(31)

# Serial line speeds Heartbeat accepts (its baud directive), and its default.
BAUD_RATES = (9600, 19200, 38400, 57600, 115200, 230400, 460800)
DEFAULT_BAUD = const(19200)

# restart_grace: how long a peer holds off taking over from an agent that announced its restart
# (docs/protocol.md, "Restart without failover"); the most ha.cf accepts, and the most a peer grants.
DEFAULT_RESTART_GRACE_MS = 30000
MAX_RESTART_GRACE_MS = 600000
