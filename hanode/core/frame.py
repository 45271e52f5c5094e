"""The wire codec: status frames, COBS framing, and the receive-side filter.

Theory of operation
-------------------
Every frame is the same 14-byte status body (docs/protocol.md) followed by an
authentication tag from auth.py (8 bytes, 4 for ``crc``), COBS-encoded and
terminated by one 0x00.  COBS guarantees the encoded bytes contain no 0x00,
so a receiver that starts mid-frame or sees line noise simply treats every
0x00 as "a frame may end here": at worst it loses the frame the noise touched
and is back in sync from the next delimiter on.

``encode`` range-checks every field and raises ValueError rather than let a
value wrap (MicroPython's struct wraps silently).

``Decoder`` is one link's receive side.  ``feed(chunk)`` takes whatever the
link delivered - half a frame, three frames, noise - and returns the frames
that are well-formed and carry a valid tag.  Everything else is dropped and
counted by reason in ``counters``; nothing on this path raises.  The buffer is
bounded: more than ``MAX_ENCODED`` bytes without a delimiter cannot be a
frame, so they are thrown away up to the next 0x00 ("overflow").

The decoder only decodes: who sent a frame and whether it is new is the
node's judgement (``node.py``), made once for all links with one
``ReplayGuard``.  The guard keeps the last accepted (gen, seq) per sender, so
the same frame arriving over a second link is recognised as a duplicate (it
still proves that link works) and an old frame played back as a replay;
``set_floor`` lets the agent restore a peer's persisted generation so frames
recorded before our own restart are rejected after it.

Two more frame types carry the rejoin of a box that lost its state
(docs/protocol.md, "Rejoin"): a CHALLENGE (type 1) from the node that keeps
dropping a peer's authentic frames because they are below the generation floor
it holds for that peer, and the peer's REJOIN (type 2) answer.  Both are a
``Control``: sender, target, the sender's (gen, seq), the floor (the newest
(gen, seq) of the target the challenger accepted) and the challenge's nonce,
under the same tag; 32 bytes on the wire with an 8-byte tag, the most a
receiver takes.

The last type, NOTICE (type 3), is a ``Notice``: the same size, saying
"restarting: my groups stay, grant me ``grace_ms``" (the RESTARTING bit, sent
by an agent that exits without releasing) or, without that bit, only the
sender's configuration revision.  A release before this one drops type 3 as
"type" (docs/protocol.md, "Restart without failover").
"""

import struct

from hanode.core.compat import const
from hanode.core.limits import (ACK_MASK, ACK_GEN_MASK_V2, BODY_LENGTH, LAN_WIRE_MAX, CONTROL_BODY_LENGTH,
                                 GROUP_MASK, MAX_ENCODED)

VERSION = const(1)
# Status frames of version 2 carry the sender's LAN health in the top 3 bits of ack_gen (which
# keeps the low ACK_GEN_MASK_V2 bits of the generation): docs/protocol.md, "Versions".  A box
# of the previous release drops them (counted as "version"), so a node sends them only to a peer
# it heard speak version 2 (node.py); control frames stay version 1.
VERSION_LAN = const(2)
TYPE_STATUS = const(0)
TYPE_CHALLENGE = const(1)   # "your frames are below my floor for you: answer this nonce"
TYPE_REJOIN = const(2)      # "here is my new generation, and your nonce"
TYPE_NOTICE = const(3)      # "restarting, my groups stay" or "my config revision is ..."
NOTICE_RESTARTING = const(0x10)   # bit 4 of a notice's `who` byte

# Node states (bits 3-2 of the `who` byte): the one definition the node uses too.
STATE_UP = const(0)          # running, not yet in touch with the peer nor past initdead
STATE_ACTIVE = const(1)      # in touch with the peer, or the peer is known dead
STATE_RELEASING = const(2)   # shutting down: releasing everything
STATE_SHUTDONE = const(3)    # everything released; gone
STATE_NAMES = ("up", "active", "releasing", "shutdone")

# Flag bits of Frame.flags: Frame.flags is the `who` byte's high nibble
# shifted down, so these are 1/2/4/8 (bits 4/5/6/7 on the wire).
STANDBY = const(0x01)
TAKEOVER = const(0x02)
BUSY = const(0x04)
STALE = const(0x08)
FLAG_NAMES = ((STANDBY, "standby"), (TAKEOVER, "takeover"), (BUSY, "busy"), (STALE, "stale"))

_BODY_FORMAT = ">BBIIBBBB"  # BODY_LENGTH bytes: hdr who gen(4) seq(4) ack_gen ack_seq held want
_CONTROL_FORMAT = ">BBIIIII"  # CONTROL_BODY_LENGTH bytes: hdr who(src, target) gen seq floor_gen floor_seq nonce
_NOTICE_FORMAT = ">BBIIIHIBB"  # CONTROL_BODY_LENGTH bytes: hdr who gen seq grace_ms revision(2+4) held want
_U32 = 0xFFFFFFFF
_U48 = 0xFFFFFFFFFFFF

# Why the Decoder dropped bytes (its counters' keys).
REASONS = ("garbage", "length", "version", "type", "unknown_key", "bad_tag", "overflow")

# ReplayGuard verdicts (the node's judgement of an authentic frame).
NEW = "new"
DUPLICATE = "duplicate"
REPLAY = "replay"


class _ByFields:
    """Equal when of the same class and ``fields()`` match (what goes on the wire)."""

    def __eq__(self, other):
        if not isinstance(other, self.__class__):
            return NotImplemented
        return self.fields() == other.fields()

    def __ne__(self, other):  # MicroPython does not derive != from ==
        result = self.__eq__(other)
        if result is NotImplemented:
            return result
        return not result

    __hash__ = None  # mutable


class Frame(_ByFields):
    """One status frame: the sender's whole view (see docs/protocol.md).

    Plain attributes; nothing is checked until ``encode``.  ``key_index`` is
    set by the decoder (which authkeys index the frame was tagged with) and is
    not part of equality: two frames are equal when they say the same thing.
    """

    def __init__(self, src=0, gen=0, seq=0, state=STATE_UP, flags=0, ack_gen=0,
                 ack_seq=0, held=0, want=0, type=TYPE_STATUS, key_index=None, version=VERSION, lan=0):
        self.src = src
        self.gen = gen
        self.seq = seq
        self.state = state
        self.flags = flags
        self.ack_gen = ack_gen
        self.ack_seq = ack_seq
        self.held = held
        self.want = want
        self.type = type
        self.key_index = key_index
        self.version = version   # VERSION, or VERSION_LAN: then ack_gen is 5 bits and lan is sent
        self.lan = lan           # version 2: the sender's LAN health + 1 (0: not known); version 1: 0

    def fields(self):
        """The values that go on the wire, as a tuple (for comparison and tests)."""
        return (self.src, self.gen, self.seq, self.state, self.flags, self.ack_gen,
                self.ack_seq, self.held, self.want, self.type, self.version, self.lan)

    def ack_gen_mask(self):
        """How many low bits of the receiver's generation this frame's ack_gen keeps."""
        return ACK_GEN_MASK_V2 if self.version == VERSION_LAN else ACK_MASK

    @property
    def who(self):
        """The `who` byte as sent (src, state and flags packed)."""
        return (self.src & 3) | ((self.state & 3) << 2) | ((self.flags & 0x0F) << 4)

    @property
    def standby(self):
        return bool(self.flags & STANDBY)

    @property
    def takeover(self):
        return bool(self.flags & TAKEOVER)

    @property
    def busy(self):
        return bool(self.flags & BUSY)

    @property
    def stale(self):
        return bool(self.flags & STALE)

    @property
    def state_name(self):
        if isinstance(self.state, int) and 0 <= self.state < len(STATE_NAMES):
            return STATE_NAMES[self.state]
        return "state%r" % (self.state,)

    def __repr__(self):
        return ("Frame(src=%r, gen=%r, seq=%r, state=%r, flags=%s, ack_gen=%r, ack_seq=%r,"
                " held=%s, want=%s, type=%r, key_index=%r, version=%r, lan=%r)"
                % (self.src, self.gen, self.seq, self.state, _hex(self.flags), self.ack_gen,
                   self.ack_seq, _hex(self.held), _hex(self.want), self.type, self.key_index,
                   self.version, self.lan))

    def describe(self):
        """One line for logs and the sniffer: ``src=0 gen=7 seq=42 active standby ...``."""
        names = [name for bit, name in FLAG_NAMES if isinstance(self.flags, int) and self.flags & bit]
        return "src=%r gen=%r seq=%r %s%s ack=%r/%r held=%s want=%s%s" % (
            self.src, self.gen, self.seq, self.state_name,
            (" " + ",".join(names)) if names else "", self.ack_gen, self.ack_seq,
            _hex(self.held), _hex(self.want),
            (" v2 lan=%s" % (self.lan - 1 if self.lan else "?")) if self.version == VERSION_LAN else "")


class Control(_ByFields):
    """A challenge (``TYPE_CHALLENGE``) or rejoin (``TYPE_REJOIN``) frame.

    ``src`` sends it to ``target``; ``gen``/``seq`` are the sender's, in the same
    sequence as its status frames (so the replay rule guards these too; a rejoin
    carries the new generation).  ``floor_gen``/``floor_seq``: the newest frame of
    the target the challenger accepted (a rejoin echoes them); ``nonce`` is the
    challenge's (echoed by the rejoin).
    """

    def __init__(self, type=TYPE_CHALLENGE, src=0, target=0, gen=0, seq=0, floor_gen=0, floor_seq=0,
                 nonce=0, key_index=None):
        self.type = type
        self.src = src
        self.target = target
        self.gen = gen
        self.seq = seq
        self.floor_gen = floor_gen
        self.floor_seq = floor_seq
        self.nonce = nonce
        self.key_index = key_index

    def fields(self):
        return (self.type, self.src, self.target, self.gen, self.seq, self.floor_gen, self.floor_seq,
                self.nonce)

    def __repr__(self):
        return ("Control(type=%r, src=%r, target=%r, gen=%r, seq=%r, floor_gen=%r, floor_seq=%r, "
                "nonce=%r, key_index=%r)" % (self.type, self.src, self.target, self.gen, self.seq,
                                             self.floor_gen, self.floor_seq, self.nonce, self.key_index))

    def describe(self):
        return "%s src=%r target=%r gen=%r seq=%r floor=%r/%r nonce=%r" % (
            "challenge" if self.type == TYPE_CHALLENGE else "rejoin", self.src, self.target,
            self.gen, self.seq, self.floor_gen, self.floor_seq, self.nonce)


class Notice(_ByFields):
    """A NOTICE frame (``TYPE_NOTICE``): ``src`` tells ``target`` its configuration ``revision``
    (48 bits, 0 unknown) and, with ``restarting`` set, that its agent restarts now leaving the
    groups ``held`` running, and asks the peer not to take them for ``grace_ms``.  ``gen``/``seq``
    are in the sender's status-frame sequence (the replay rule guards notices too)."""

    def __init__(self, src=0, target=0, gen=0, seq=0, restarting=False, grace_ms=0, revision=0,
                 held=0, want=0, key_index=None):
        self.type = TYPE_NOTICE
        self.src = src
        self.target = target
        self.gen = gen
        self.seq = seq
        self.restarting = restarting
        self.grace_ms = grace_ms
        self.revision = revision
        self.held = held
        self.want = want
        self.key_index = key_index

    def fields(self):
        return (self.type, self.src, self.target, self.gen, self.seq, bool(self.restarting),
                self.grace_ms, self.revision, self.held, self.want)

    def __repr__(self):
        return ("Notice(src=%r, target=%r, gen=%r, seq=%r, restarting=%r, grace_ms=%r, revision=%r, held=%s, "
                "want=%s, key_index=%r)" % (self.src, self.target, self.gen, self.seq, self.restarting,
                                            self.grace_ms, self.revision, _hex(self.held), _hex(self.want),
                                            self.key_index))

    def describe(self):
        return "notice src=%r target=%r gen=%r seq=%r%s revision=%012x held=%s" % (
            self.src, self.target, self.gen, self.seq,
            " restarting grace=%r ms" % self.grace_ms if self.restarting else "", self.revision,
            _hex(self.held))


def _hex(value):
    if isinstance(value, int) and not isinstance(value, bool):
        return "0x%02x" % value
    return repr(value)


def _check(name, value, high):
    # bool is rejected explicitly: isinstance(True, int) differs between the
    # two interpreters, and a bool in a numeric field is a bug either way.
    if not isinstance(value, int) or isinstance(value, bool) or value < 0 or value > high:
        raise ValueError("frame field %s=%r out of range 0..%d" % (name, value, high))


def pack_body(frame, key_index):
    """The 14 untagged body bytes of ``frame`` with ``key_index`` in the header."""
    src, state, flags, gen, seq = frame.src, frame.state, frame.flags, frame.gen, frame.seq
    ack_gen, ack_seq, held, want, lan = frame.ack_gen, frame.ack_seq, frame.held, frame.want, frame.lan
    # One test for what the core sends every keepalive (a version 2 status frame, every field an
    # int in range: `type(x) is int` refuses a bool on both interpreters), without a call a
    # field; anything else takes the field-by-field checks, which say what is wrong.
    if (frame.version == VERSION_LAN and frame.type == TYPE_STATUS and type(key_index) is int
            and 0 <= key_index <= 0x0F and type(src) is int and 0 <= src <= 3
            and type(state) is int and 0 <= state <= 3 and type(flags) is int and 0 <= flags <= 0x0F
            and type(gen) is int and 0 <= gen <= _U32 and type(seq) is int and 0 <= seq <= _U32
            and type(ack_gen) is int and 0 <= ack_gen <= ACK_GEN_MASK_V2
            and type(ack_seq) is int and 0 <= ack_seq <= ACK_MASK and type(held) is int
            and 0 <= held <= GROUP_MASK and type(want) is int and 0 <= want <= GROUP_MASK
            and type(lan) is int and 0 <= lan <= LAN_WIRE_MAX):
        return struct.pack(_BODY_FORMAT, (VERSION_LAN << 6) | (TYPE_STATUS << 4) | key_index,
                           src | (state << 2) | (flags << 4), gen, seq, (lan << 5) | ack_gen, ack_seq, held, want)
    return _pack_body_checked(frame, key_index)


def _pack_body_checked(frame, key_index):
    _check("src", frame.src, 3)
    _check("state", frame.state, 3)
    _check("flags", frame.flags, 0x0F)
    _check("type", frame.type, 3)
    _check("key_index", key_index, 0x0F)
    _check("gen", frame.gen, _U32)
    _check("seq", frame.seq, _U32)
    _check("ack_seq", frame.ack_seq, ACK_MASK)
    _check("held", frame.held, GROUP_MASK)
    _check("want", frame.want, GROUP_MASK)
    if frame.version == VERSION_LAN:
        if frame.type != TYPE_STATUS:
            raise ValueError("frame version %d is for status frames only" % VERSION_LAN)
        _check("ack_gen", frame.ack_gen, ACK_GEN_MASK_V2)
        _check("lan", frame.lan, LAN_WIRE_MAX)
        ack_byte = (frame.lan << 5) | frame.ack_gen
    elif frame.version == VERSION:
        _check("ack_gen", frame.ack_gen, ACK_MASK)
        _check("lan", frame.lan, 0)     # version 1 has no room for it
        ack_byte = frame.ack_gen
    else:
        raise ValueError("frame version=%r is not %d or %d" % (frame.version, VERSION, VERSION_LAN))
    hdr = (frame.version << 6) | (frame.type << 4) | key_index
    who = frame.src | (frame.state << 2) | (frame.flags << 4)
    return struct.pack(_BODY_FORMAT, hdr, who, frame.gen, frame.seq, ack_byte,
                       frame.ack_seq, frame.held, frame.want)


_CONTROL_LIMITS = (("src", 3), ("target", 3), ("gen", _U32), ("seq", _U32), ("floor_gen", _U32),
                   ("floor_seq", _U32), ("nonce", _U32))


def pack_control(frame, key_index):
    """The 22 untagged body bytes of the Control ``frame``."""
    _check("type", frame.type, 3)
    if frame.type not in (TYPE_CHALLENGE, TYPE_REJOIN):
        raise ValueError("control frame type=%r is not %d or %d" % (frame.type, TYPE_CHALLENGE, TYPE_REJOIN))
    _check("key_index", key_index, 0x0F)
    for name, high in _CONTROL_LIMITS:
        _check(name, getattr(frame, name), high)
    hdr = (VERSION << 6) | (frame.type << 4) | key_index
    return struct.pack(_CONTROL_FORMAT, hdr, frame.src | (frame.target << 2), frame.gen, frame.seq,
                       frame.floor_gen, frame.floor_seq, frame.nonce)


_NOTICE_LIMITS = (("src", 3), ("target", 3), ("gen", _U32), ("seq", _U32), ("grace_ms", _U32),
                  ("revision", _U48), ("held", GROUP_MASK), ("want", GROUP_MASK))


def pack_notice(frame, key_index):
    """The 22 untagged body bytes of the Notice ``frame``."""
    _check("key_index", key_index, 0x0F)
    for name, high in _NOTICE_LIMITS:
        _check(name, getattr(frame, name), high)
    who = frame.src | (frame.target << 2) | (NOTICE_RESTARTING if frame.restarting else 0)
    return struct.pack(_NOTICE_FORMAT, (VERSION << 6) | (TYPE_NOTICE << 4) | key_index, who, frame.gen,
                       frame.seq, frame.grace_ms, frame.revision >> 32, frame.revision & _U32,
                       frame.held, frame.want)


def body_length(frame_type):
    """Untagged body bytes of a frame of this type; None for a type this version does not know."""
    if frame_type == TYPE_STATUS:
        return BODY_LENGTH
    if frame_type == TYPE_CHALLENGE or frame_type == TYPE_REJOIN or frame_type == TYPE_NOTICE:
        return CONTROL_BODY_LENGTH
    return None


def cobs_encode(data):
    """COBS-encode ``data``: the result contains no 0x00 (delimiter not added)."""
    out = bytearray()
    pieces = bytes(data).split(b"\x00")
    last = len(pieces) - 1
    for k in range(len(pieces)):
        piece = pieces[k]
        # A full block (code 0xFF) implies no zero after it, so a piece of
        # exactly 254 bytes needs an empty block after it to carry its zero -
        # except at the very end, where there is no zero to carry.
        while len(piece) > 254 or (len(piece) == 254 and k != last):
            out.append(0xFF)
            out += piece[:254]
            piece = piece[254:]
        if len(piece) == 254:
            out.append(0xFF)
        else:
            out.append(len(piece) + 1)
        out += piece
    return bytes(out)


def cobs_decode(data):
    """Decode one COBS-encoded frame (without its delimiter); None if not valid COBS.

    Strict: a 0x00 anywhere (it can only be a delimiter) or a block running
    past the end makes the whole input invalid.
    """
    if not isinstance(data, (bytes, bytearray)):
        data = bytes(data)
    n = len(data)
    if n == 0 or data.find(b"\x00") >= 0:
        return None
    out = bytearray()
    i = 0
    while i < n:
        code = data[i]
        j = i + code
        if j > n:
            return None
        out += data[i + 1:j]
        i = j
        if code != 0xFF and i < n:
            out.append(0)
    return bytes(out)


def encode(frame, auth):
    """``frame`` as wire bytes: body + tag (key ``auth.send_index``), COBS, 0x00.

    Raises ValueError if a field is out of range (the core must not wrap).
    """
    index = auth.send_index
    if isinstance(frame, Notice):
        body = pack_notice(frame, index)
    elif isinstance(frame, Control):
        body = pack_control(frame, index)
    else:
        body = pack_body(frame, index)
    return cobs_encode(body + auth.tag(index, body)) + b"\x00"


def frame_size(auth, index=None):
    """Bytes one frame takes on the wire with key ``index`` (default: the send key).

    The body plus tag is under 254 bytes, so COBS adds exactly one byte, and
    the delimiter one more: 24 with an 8-byte MAC, 20 with crc.
    """
    if index is None:
        index = auth.send_index
    return BODY_LENGTH + auth.tag_length(index) + 2


def decode_one(payload, auth):
    """Decode and verify one frame (``payload`` without its 0x00).

    Returns ``(frame, "ok")`` or ``(None, reason)`` with reason one of
    "garbage", "version", "type", "unknown_key", "length", "bad_tag".
    Does not look at replay or at who sent it; never raises on bytes input.
    """
    raw = cobs_decode(payload)
    if not raw:
        return None, "garbage"
    hdr = raw[0]
    version = hdr >> 6
    frame_type = (hdr >> 4) & 3
    if version != VERSION and not (version == VERSION_LAN and frame_type == TYPE_STATUS):
        return None, "version"
    length = body_length(frame_type)
    if length is None:
        return None, "type"
    index = hdr & 0x0F
    tag_length = auth.tag_length(index)
    if tag_length is None:
        return None, "unknown_key"
    if len(raw) != length + tag_length:
        return None, "length"
    body = raw[:length]
    if not auth.verify(index, body, raw[length:]):
        return None, "bad_tag"
    if frame_type == TYPE_NOTICE:
        hdr, who, gen, seq, grace_ms, rev_hi, rev_lo, held, want = struct.unpack(_NOTICE_FORMAT, body)
        return Notice(src=who & 3, target=(who >> 2) & 3, gen=gen, seq=seq,
                      restarting=bool(who & NOTICE_RESTARTING), grace_ms=grace_ms,
                      revision=(rev_hi << 32) | rev_lo, held=held, want=want, key_index=index), "ok"
    if frame_type != TYPE_STATUS:
        hdr, who, gen, seq, floor_gen, floor_seq, nonce = struct.unpack(_CONTROL_FORMAT, body)
        return Control(type=frame_type, src=who & 3, target=(who >> 2) & 3, gen=gen, seq=seq,
                       floor_gen=floor_gen, floor_seq=floor_seq, nonce=nonce, key_index=index), "ok"
    hdr, who, gen, seq, ack_gen, ack_seq, held, want = struct.unpack(_BODY_FORMAT, body)
    lan = 0
    if version == VERSION_LAN:
        lan, ack_gen = ack_gen >> 5, ack_gen & ACK_GEN_MASK_V2
    return Frame(src=who & 3, gen=gen, seq=seq, state=(who >> 2) & 3, flags=who >> 4,
                 ack_gen=ack_gen, ack_seq=ack_seq, held=held, want=want,
                 type=(hdr >> 4) & 3, key_index=index, version=version, lan=lan), "ok"


class ReplayGuard:
    """Last accepted (gen, seq) per sender id, plus an optional generation floor.

    ``check`` classifies, ``commit`` records (the node does both for every
    authentic frame); ``set_floor`` is set at start from the persisted peer
    generation.
    """

    def __init__(self):
        self._last = {}
        self._floor = {}

    def check(self, src, gen, seq):
        """"new" (newer than anything accepted), "duplicate" (same as the last
        accepted) or "replay" (older, or below the floor)."""
        floor = self._floor.get(src)
        if floor is not None and gen < floor:
            return REPLAY
        last = self._last.get(src)
        if last is None:
            return NEW
        last_gen, last_seq = last
        if gen > last_gen or (gen == last_gen and seq > last_seq):
            return NEW
        if gen == last_gen and seq == last_seq:
            return DUPLICATE
        return REPLAY

    def commit(self, src, gen, seq):
        """Record (gen, seq) as accepted from ``src``; never moves backwards."""
        if self.check(src, gen, seq) == NEW:
            self._last[src] = (gen, seq)

    def last(self, src):
        """The last accepted (gen, seq) from ``src``, or None."""
        return self._last.get(src)

    def set_floor(self, src, gen):
        """Reject every generation below ``gen`` from ``src`` from now on.

        The floor generation itself is still accepted with any seq (the peer
        may have kept running while we restarted), so after a restart one frame
        of that generation recorded earlier could still get through once; the
        peer's next real frame supersedes it.
        """
        self._floor[src] = gen

    def floor(self, src):
        """The floor set for ``src``, or None."""
        return self._floor.get(src)


class Decoder:
    """One link's receive side: bytes in, authentic frames out.

    ``Decoder(auth)``.  After ``feed``: ``counters`` (reason -> frames dropped,
    every reason present) and ``accepted`` (authentic frames returned so far).
    """

    def __init__(self, auth):
        self.counters = {}
        for reason in REASONS:
            self.counters[reason] = 0
        self.accepted = 0
        self._buf = bytearray()
        self._discarding = False
        self.resynced = 0   # frames recovered from behind noise or a half frame
        self.rekey(auth)

    def rekey(self, auth):
        """Verify with ``auth`` (a reload's keys) from now on; the counters and a half-received
        frame stay."""
        self.auth = auth
        # the COBS length of a status or control frame for each tag length in use, longest first
        sizes = []
        for index in auth.indexes():
            for length in (BODY_LENGTH, CONTROL_BODY_LENGTH):
                size = length + auth.tag_length(index) + 1
                if size not in sizes:
                    sizes.append(size)
        sizes.sort()
        self._sizes = sizes[::-1] if sizes else []

    @property
    def buffered(self):
        """Bytes held waiting for a delimiter (never more than MAX_ENCODED)."""
        return len(self._buf)

    def reset(self):
        """Forget a partial frame (e.g. after the link was reopened)."""
        self._buf = bytearray()
        self._discarding = False

    def feed(self, data):
        """Consume ``data`` (any chunking); return the newly accepted Frames."""
        if not isinstance(data, (bytes, bytearray)):
            data = bytes(data)  # memoryview has no find()
        out = []
        n = len(data)
        pos = 0
        while pos < n:
            z = data.find(b"\x00", pos)
            end = n if z < 0 else z
            self._buf += data[pos:end]
            if len(self._buf) > MAX_ENCODED:
                if not self._discarding:
                    self.counters["overflow"] += 1
                    self._discarding = True
                # keep only the tail: the frame that ends this run may still be whole in it
                self._buf = self._buf[len(self._buf) - MAX_ENCODED:]
            if z < 0:
                break
            payload = bytes(self._buf)
            self._buf = bytearray()
            if self._discarding:
                self._discarding = False
                self._tail(payload, out)   # the head was counted as overflow already
            else:
                self._payload(payload, out)
            pos = z + 1
        return out

    def _tail(self, payload, out):
        """Noise on the line, or the half frame a cut left, ends up in front of the next frame
        (there is no leading delimiter: 24 bytes on the wire).  Every status frame has a fixed
        COBS length, so try the tail of the run as a frame before giving it up.  Returns True
        if a frame was found."""
        for size in self._sizes:
            # (equal: after an overflow the run was cut to MAX_ENCODED, which a control frame fills)
            if len(payload) >= size:
                frame, reason = decode_one(payload[len(payload) - size:], self.auth)
                if frame is not None:
                    self.resynced += 1
                    self._accept(frame, out)
                    return True
        return False

    def _payload(self, payload, out):
        frame, reason = decode_one(payload, self.auth)
        if frame is None:
            if not self._tail(payload, out):
                self.counters[reason] += 1
            return
        self._accept(frame, out)

    def _accept(self, frame, out):
        self.accepted += 1
        out.append(frame)
