"""One config-parser harness, parameterised by which of the three files is fuzzed.

Theory of operation
-------------------
The fuzzed bytes become one file's text (decoded the way ``hanode.configdir``
decodes it: authkeys strictly as UTF-8 - the daemon refuses anything else -
the other two with replacement characters) while the other two files stay
valid.  ``check``/``parse`` must then either give a Config or a ConfigError;
any other exception is a crash.  A ConfigError must be consistent with
``check`` and name a real file and line; a Config that is accepted must be
usable: JSON-serialisable ``to_dict``, a Node that starts, and a first frame
that encodes.
"""
import json

from hanode.core.config import ConfigError, check, parse
from hanode.core.node import Node

FILES = ("ha.cf", "authkeys", "haresources")
PATHS = ("/etc/ha.d/ha.cf", "/etc/ha.d/authkeys", "/etc/ha.d/haresources")
VALID = (
    "keepalive 100ms\nwarntime 300ms\ndeadtime 500ms\ninitdead 10\nbaud 19200\nserial /dev/ttyS0\n"
    "auto_failback on\nnode node1\nnode node2\n",
    "auth 1\n1 hmac-sha256 0123456789abcdef0123456789abcdef\n",
    "node1 192.0.2.100 httpd\n",
)


_PLAIN = []


def _uninstrumented_suggestions():
    """Give hacf.py its own edit_distance back, compiled without coverage hooks.

    Every unknown directive is compared with every known one (the did-you-mean
    hint); instrumented, that inner loop makes a random ha.cf cost ~100 ms and the
    fuzzer crawl at ~10 inputs/s.  The same source compiled plainly behaves
    identically; only its own branches drop out of the coverage map.
    """
    if _PLAIN:
        return
    import hanode.core.config.hacf as hacf
    import hanode.core.config.values as values
    namespace = {"__name__": "hanode.core.config.values_plain"}
    with open(values.__file__) as f:
        exec(compile(f.read(), values.__file__, "exec"), namespace)
    hacf.edit_distance = namespace["edit_distance"]
    _PLAIN.append(True)


def decode(which, data):
    if which == 1:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return None       # configdir reports it and never calls the parser
    return data.decode("utf-8", "replace")


def one_input(which, data):
    _uninstrumented_suggestions()
    text = decode(which, bytes(data))
    if text is None:
        return
    texts = list(VALID)
    texts[which] = text
    me = "node1"
    cfg, problems = check(texts[0], texts[1], texts[2], me=me, paths=PATHS)
    lines = [t.count("\n") + 2 + t.count("\r") for t in texts]
    for p in problems:
        if p.path not in PATHS:
            raise AssertionError("problem names an unknown file: %r" % (str(p),))
        if not 0 <= p.line <= lines[PATHS.index(p.path)]:
            raise AssertionError("problem line %d out of range: %s" % (p.line, p))
        if p.level not in ("error", "warning"):
            raise AssertionError("problem level %r" % (p.level,))
        str(p)
    try:
        parsed = parse(texts[0], texts[1], texts[2], me=me, paths=PATHS)
    except ConfigError as e:
        if cfg is not None:
            raise AssertionError("parse raised but check accepted: %s" % e)
        if not e.problems or str(e) == "":
            raise AssertionError("ConfigError without problems")
        return
    if cfg is None:
        raise AssertionError("check refused but parse accepted")
    json.dumps(parsed.to_dict())
    if parsed.me == me and len(parsed.nodes) == 2:
        node = Node(parsed, me=me, generation=1)
        out = node.start(0) + node.tick(parsed.keepalive_ms + 1)
        if not any(o.kind == "send" for o in out):
            raise AssertionError("an accepted config gave a node that sends nothing")
        node.status()


def seeds(which):
    import os
    here = os.path.dirname(os.path.abspath(__file__))
    examples = os.path.join(os.path.dirname(os.path.dirname(here)), "examples")
    out = [VALID[which].encode()]
    for name in sorted(os.listdir(examples)):
        path = os.path.join(examples, name, FILES[which])
        if os.path.isfile(path):
            with open(path, "rb") as f:
                out.append(f.read())
    return out
