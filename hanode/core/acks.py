"""The acknowledgement rule: has the peer seen one of our frames sent since some change?

Theory of operation
-------------------
Every frame echoes the low byte of the generation and sequence number of the
latest frame its sender received (``ack_gen``, ``ack_seq``).  A view of the
peer says something about a change of ours (we started wanting a group, went
standby, failed a start, stalled) only once the peer's frame acknowledges a
frame of ours sent after that change: until then the peer may be answering an
older view.  That is the whole hand-over rule's safety: a group is started
with the peer alive only when the peer has seen us want it and still neither
holds nor wants it (``wants.py``).

Ack bytes are 8-bit (``limits.ACK_MASK``; a status frame of version 2 keeps only 5 bits of
the generation, ``Frame.ack_gen_mask``), so an acknowledgement is trusted
only within ``ACK_WINDOW`` frames of the change; a change unacknowledged for
longer is re-armed on our latest frame (which carries the change too).
"""

from hanode.core.limits import ACK_MASK

ACK_WINDOW = 128   # half the 8-bit ack space: an ack older than this many frames is not trusted


def acked(since_seq, my_seq, my_gen, frame):
    """Did the peer's ``frame`` acknowledge one of our frames numbered ``since_seq`` or later?"""
    if since_seq is None or frame is None:
        return False
    if frame.ack_gen != (my_gen & frame.ack_gen_mask()):
        return False
    sent_since = my_seq - since_seq
    acked_since = (frame.ack_seq - since_seq) & ACK_MASK
    return sent_since < ACK_WINDOW and acked_since <= sent_since


def rearmed(since_seq, my_seq):
    """``since_seq``, moved to ``my_seq`` when it has waited too long for an ack."""
    if since_seq is not None and my_seq - since_seq >= ACK_WINDOW:
        return my_seq
    return since_seq


class Mark:
    """Remembers whether the peer has acknowledged one of our frames sent
    after some change (standby, a failed start, a stall): only then does its
    view say anything about that change."""

    def __init__(self):
        self.since = None
        self.seen = False

    def arm(self, seq):
        self.since = seq + 1     # the next frame we send
        self.seen = False

    def update(self, seq, gen, frame):
        if self.since is None or self.seen:
            return
        if acked(self.since, seq, gen, frame):
            self.seen = True
        else:
            self.since = rearmed(self.since, seq)   # unacknowledged for too long: re-arm on our latest frame
