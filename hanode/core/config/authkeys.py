"""authkeys: which key signs (``auth N``) and the keys accepted (``N method [key]``).

Heartbeat's rules and messages (index 0-15, a key for every method but crc), plus
hanode's hmac-sha256 and warnings where a key authenticates little.  Keys are
kept as bytes and never put in a message: the line may be a secret.
"""

from hanode.core.config.model import AUTH_METHODS, MAX_AUTH_INDEX, MIN_KEY_BYTES, AuthKey
from hanode.core.config.problems import AUTHKEYS, FileParser
from hanode.core.config.values import is_digits, split_lines


# Keys published with hanode (issue 13 finding 12): a pair using one is authenticated by nothing.
# tests/adapters/test_checkconfig.py checks that every key in examples/ is listed here and that
# board/ holds none (image/build makes the pair key).
EXAMPLE_KEYS = {
    "example-pair-key-change-me": "an older factory image (board/<board>/data/etc/ha.d/authkeys)",
    "9f3c1e7a52d08b64c2e5f19a7d3b80e6a4c95f2718d06be3f7a1c48e2b95d063": "examples/tight/authkeys",
    "SomeSecretKey": "docs/protocol.md",
}


class AuthkeysParser(FileParser):
    """authkeys into ``Config.auth_index`` and ``Config.auth_keys``.

    ``refuse_example_keys``: a published key is an error (check-config, ``hanode run``, reload)
    rather than a warning (readers that only translate a configuration, e.g. the export).
    """

    FILE = AUTHKEYS

    def __init__(self, cfg, problems, refuse_example_keys=False):
        FileParser.__init__(self, cfg, problems)
        self.refuse_example_keys = refuse_example_keys

    def parse(self, text):
        c = self.cfg
        bad = []  # indexes whose line had an error: "auth N not found" would only repeat it
        auth_line = 0
        key_lines = {}
        for n, raw in enumerate(split_lines(text)):
            line = n + 1
            toks = raw.split()
            if not toks or toks[0].startswith("#"):
                continue
            first = toks[0]
            if first.lower() == "auth":
                if len(toks) < 2 or not is_digits(toks[1]) or int(toks[1]) > MAX_AUTH_INDEX:
                    self.err(line, "Invalid auth line [%s]; write 'auth N' with N the index (0-%d) of the "
                                   "key to sign with" % (raw.strip(), MAX_AUTH_INDEX))
                    continue
                if auth_line:
                    self.warn(line, "auth given again (first on line %d); the last one is used" % auth_line)
                if len(toks) > 2:
                    self.warn(line, "text after 'auth %s' is ignored" % toks[1])
                auth_line = line
                c.auth_index = int(toks[1])
                continue
            if not is_digits(first):
                # never echo the line: it may hold a key
                self.err(line, "Invalid authnum [%s]; lines are 'auth N' or 'N method [key]', e.g. "
                               "'1 hmac-sha256 <long random secret>'" % first)
                continue
            index = int(first)
            if index > MAX_AUTH_INDEX:
                self.err(line, "Invalid authnum [%d]; key indexes are 0 to %d" % (index, MAX_AUTH_INDEX))
                continue
            if len(toks) < 2:
                self.err(line, "key %d has no method; write '%d hmac-sha256 <secret>' (or crc, md5, sha1)"
                         % (index, index))
                bad.append(index)
                continue
            method = toks[1].lower()
            key = toks[2] if len(toks) > 2 else None
            if method not in AUTH_METHODS:
                self.err(line, "Invalid authtype [%s]; use one of %s" % (toks[1], ", ".join(AUTH_METHODS)))
                bad.append(index)
                continue
            if len(toks) > 3:
                self.warn(line, "the key ends at the first blank: the %d words after it are ignored, as in "
                                "Heartbeat; a key cannot contain blanks" % (len(toks) - 3))
            if method == "crc":
                if key is not None:
                    self.err(line, "Auth method [crc] doesn't use a key; write '%d crc' or, better, a keyed "
                                   "method: '%d hmac-sha256 <secret>'" % (index, index))
                    bad.append(index)
                    continue
                self.warn(line, "auth method crc authenticates nothing: anyone on the serial line or LAN can "
                                "forge frames; use '%d hmac-sha256 <long random secret>'" % index)
                key_bytes = None
            else:
                if key is None:
                    self.err(line, "Auth method [%s] requires a key: '%d %s <secret>'" % (method, index, method))
                    bad.append(index)
                    continue
                key_bytes = key.encode()
                published = EXAMPLE_KEYS.get(key)
                if published is not None:
                    (self.err if self.refuse_example_keys else self.warn)(
                        line, "key %d is the published example key of %s: anyone with a copy of hanode can "
                              "forge frames. Make a new key on one box and copy the file to the other: printf "
                              "'auth %d\\n%d %s %%s\\n' \"$(openssl rand -hex 32)\" > %s; chmod 600 %s"
                        % (index, published, index, index, method, self.path, self.path))
                elif len(key_bytes) < MIN_KEY_BYTES:
                    self.warn(line, "the %s key for index %d is only %d bytes; use at least %d random bytes "
                                    "(e.g. from 'openssl rand -hex 32')"
                              % (method, index, len(key_bytes), MIN_KEY_BYTES))
            if index in key_lines:
                self.warn(line, "key index %d defined again (first on line %d); the later line is used"
                          % (index, key_lines[index]))
            key_lines[index] = line
            c.auth_keys[index] = AuthKey(index, method, key_bytes)
        if c.auth_index is None:
            self.err(0, "Missing auth directive in keyfile [%s]; add a line 'auth N' naming the key to sign "
                        "with" % self.path)
        elif c.auth_index not in c.auth_keys and c.auth_index not in bad:
            self.err(auth_line, "Auth Key [%d] not found in keyfile [%s]; add a line '%d hmac-sha256 "
                                "<secret>' or change 'auth %d' to one of the listed keys"
                     % (c.auth_index, self.path, c.auth_index, c.auth_index))

    # -- haresources
