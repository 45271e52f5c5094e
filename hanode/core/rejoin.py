"""Rejoin of a box that lost its state: two small transition tables.

Theory of operation
-------------------
Each node keeps, per peer, a generation *floor*: the highest boot generation of
the peer it has accepted (persisted, so it survives our own restarts).  Frames
below it are replays.  A box whose state is gone (an RMA swap, a reflash, the
image's tmpfs /data fallback) restarts at generation 1, below its peer's floor
for it, and would be refused forever.  The two sides of the fix
(docs/protocol.md, "Rejoin"):

*Challenger* (the node holding the floor: the newest (gen, seq) of the peer it
accepted, or its persisted generation).  An authentic status frame of the peer
below the floor (an older generation, or the same one more than
``REORDER_FRAMES`` behind) is dropped (it may be a replay) and counted
(``below_floor``); the first one of an episode is logged, once, and answered
with a CHALLENGE frame: our own authenticated frame (our gen/seq, so it is
replay-guarded like our status frames) carrying the floor and a nonce that the
agent supplied (``Node.nonce``: the core never makes randomness).  The
challenge is repeated at most once per keepalive while below-floor frames keep
coming.  A REJOIN frame that echoes the nonce ends the episode: its generation
becomes the floor.

*Rejoiner* (the box that lost its state).  A challenge that is authentic,
addressed to us, fresh under our replay guard, from the peer generation we are
hearing, and whose floor is a frame of ours newer than our own (gen, seq) - a
box that kept its state is always at or past what its peer accepted - makes
us start generation
``floor + REJOIN_JUMP``; the agent persists it first (``NewGeneration``, then
``Node.generation_saved``), and only then do our frames carry it, led by the
REJOIN frame.  The jump leaves room below it for lives of ours that the
peer never saw, so their frames stay replays after the rejoin.

    role        state        event        next         output
    ----------  -----------  -----------  -----------  --------------
    challenger  idle         below_floor  challenging  log            first below-floor frame: say so once, challenge
    challenger  challenging  below_floor  challenging  -              counted; challenged again at most once a keepalive
    challenger  challenging  rejoined     idle         log            a REJOIN echoing our nonce: its generation is the floor
    challenger  challenging  peer_moved   idle         log            a status frame above the floor (the REJOIN was lost, or a restart)
    rejoiner    current      challenged   saving       new_generation persist floor + REJOIN_JUMP before using it
    rejoiner    saving       challenged   saving       -              already saving
    rejoiner    saving       saved        current      rejoin         switch to it: REJOIN frame, then status frames
    rejoiner    saving       save_failed  current      log            stay at the old generation; the next challenge retries

A pair not in the table keeps the state and is counted (``unlisted``).
"""

from hanode.core.compat import const

# How far above the challenger's floor a rejoining box starts: lives of ours the challenger
# never saw (up to this many) stay below the new generation, so their frames stay replays.
REJOIN_JUMP = const(0x10000)

# Frames of the same generation can overtake each other across two links (serial and UDP) by a
# few frames: only a frame this many sequence numbers behind the newest accepted one is taken
# for a box that restarted without its state.
REORDER_FRAMES = const(16)

CHALLENGER = "challenger"
REJOINER = "rejoiner"

IDLE = "idle"
CHALLENGING = "challenging"
CURRENT = "current"
SAVING = "saving"

BELOW_FLOOR = "below_floor"
REJOINED = "rejoined"
PEER_MOVED = "peer_moved"
CHALLENGED = "challenged"
SAVED = "saved"
SAVE_FAILED = "save_failed"

DO_LOG = "log"
DO_NEW_GENERATION = "new_generation"
DO_REJOIN = "rejoin"

TRANSITIONS = {
    (CHALLENGER, IDLE, BELOW_FLOOR): (CHALLENGING, DO_LOG),
    (CHALLENGER, CHALLENGING, BELOW_FLOOR): (CHALLENGING, None),
    (CHALLENGER, CHALLENGING, REJOINED): (IDLE, DO_LOG),
    (CHALLENGER, CHALLENGING, PEER_MOVED): (IDLE, DO_LOG),
    (REJOINER, CURRENT, CHALLENGED): (SAVING, DO_NEW_GENERATION),
    (REJOINER, SAVING, CHALLENGED): (SAVING, None),
    (REJOINER, SAVING, SAVED): (CURRENT, DO_REJOIN),
    (REJOINER, SAVING, SAVE_FAILED): (CURRENT, DO_LOG),
}


def below_floor(gen, seq, floor):
    """Is a replayed-looking frame (gen, seq) of the peer below ``floor`` (the newest (gen, seq)
    accepted): an older generation, or the same one far behind (a box restarted at the
    generation we saw last, having lost its state)?"""
    return gen < floor[0] or (gen == floor[0] and seq + REORDER_FRAMES < floor[1])


class Rejoin:
    """Both roles' state for one node (it has one peer).

    Challenger: ``episode`` (while challenging: since_ms, floor (gen, seq), their_generation,
    below_floor, challenges), ``nonce`` (the agent's next nonce, or None),
    ``sent_nonce`` (the nonce of this episode's challenges), ``last_challenge_ms``,
    ``last`` (how the last episode ended, for status).  Rejoiner: ``pending`` (the
    generation being saved and the nonce to echo).
    """

    def __init__(self):
        self.states = {CHALLENGER: IDLE, REJOINER: CURRENT}
        self.unlisted = 0
        self.episode = None
        self.nonce = None
        self.nonce_asked = False
        self.sent_nonce = None
        self.last_challenge_ms = None
        self.challenge_due = False
        self.last = None
        self.pending = None

    def fire(self, role, event):
        """Apply ``event`` to ``role``'s table; return the output (or None).  An unlisted
        pair keeps the state and is counted."""
        entry = TRANSITIONS.get((role, self.states[role], event))
        if entry is None:
            self.unlisted += 1
            return None
        self.states[role], output = entry
        return output

    def challenging(self):
        return self.states[CHALLENGER] == CHALLENGING

    def saving(self):
        return self.states[REJOINER] == SAVING

    def end_episode(self, now, how, generation):
        """Close the challenger's episode: remember how it ended, forget its nonce."""
        episode = self.episode or {}
        self.last = {"how": how, "generation": generation, "at_ms": now,
                     "below_floor": episode.get("below_floor", 0)}
        self.episode = None
        self.sent_nonce = None
        self.challenge_due = False

    def status(self, now):
        """The rejoin part of the node's status (plain dict)."""
        episode = None
        if self.episode:
            episode = dict(self.episode)
            episode["for_ms"] = now - episode["since_ms"]
        return {
            "state": self.states[CHALLENGER],
            "episode": episode,
            "last": dict(self.last) if self.last else None,
            "own_generation": self.states[REJOINER],
            "saving_generation": self.pending[0] if self.pending else None,
        }
