"""haresources: one resource group per line, ``<preferred node> <resource> ...``.

Resources are ``script[::arg...]`` or an address (``IPaddr``/``IPaddr2`` or a
bare address, Heartbeat's ``isip``), read as Heartbeat's ResourceManager reads
them: a trailing ``\\`` continues the line, the first resource names the group.
"""

from hanode.core.config.model import MAX_GROUPS, Resource, ResourceGroup
from hanode.core.config.problems import HARESOURCES, FileParser
from hanode.core.config.values import DIGITS, is_digits, mask_to_prefix, parse_ipv4, split_lines


class HaresourcesParser(FileParser):
    """haresources into ``Config.groups`` (needs ha.cf's nodes and resource_dirs first)."""

    FILE = HARESOURCES

    def parse(self, text, ha_cf_read):
        """``ha_cf_read``: ha.cf was read, so its nodes and media can be checked against."""
        nodes_known = ha_cf_read and bool(self.cfg.nodes)
        logical = []
        pending, pending_line = None, 0
        for n, raw in enumerate(split_lines(text)):
            line = n + 1
            hash_at = raw.find("#")
            body = raw if hash_at < 0 else raw[:hash_at]
            if pending is not None:
                if pending and body and not pending[-1].isspace() and not body[0].isspace():
                    self.warn(line, "line %d continues on line %d without a blank in between: they are "
                                    "joined into one word, as Heartbeat does; indent the continued line if "
                                    "the fields are separate" % (pending_line, line))
                body = pending + body
                start = pending_line
            else:
                start = line
            if body.endswith("\\"):
                pending, pending_line = body[:-1], start
                continue
            if body.rstrip().endswith("\\"):
                self.warn(line, "blanks after the final '\\' mean the line is not continued (as in "
                                "Heartbeat); remove them to continue the line")
            pending = None
            if body.strip():
                logical.append((start, body))
        if pending is not None and pending.strip():
            logical.append((pending_line, pending))

        keys = {}
        vips = {}
        too_many = False
        incomplete = []  # lines with a resource in error: an "unprobed" warning would only add noise
        for (line, body) in logical:
            toks = body.split()
            node = toks[0].lower()
            if len(toks) < 2:
                self.err(line, "the group for [%s] lists no resources; write '<preferred node> <resource> "
                               "[<resource> ...]', e.g. 'node1 192.0.2.100 httpd'" % toks[0])
                continue
            complete = True  # no error on the line yet (else it says what to fix first)
            if nodes_known and node not in self.cfg.nodes:
                complete = False
                self.err(line, "preferred node [%s] is not a node in ha.cf (nodes: %s); the first field of "
                               "each line is the node the group prefers" % (node, ", ".join(self.cfg.nodes)))
            key = toks[1]
            if key in keys:
                complete = False
                self.err(line, "group key [%s] is already used by the group on line %d; the first resource "
                               "of each line must be unique (groups are known by it)" % (key, keys[key]))
            else:
                keys[key] = line
            resources = []
            for tok in toks[1:]:
                r = self._resource(line, tok)
                if r is None:
                    complete = False
                    continue
                if r.is_ip and r.ip:
                    if r.ip in vips:
                        self.warn(line, "address %s is also managed by the group on line %d" % (r.ip, vips[r.ip]))
                    else:
                        vips[r.ip] = line
                resources.append(r)
            if len(self.cfg.groups) >= MAX_GROUPS:
                if not too_many:
                    too_many = True
                    self.err(line, "more than %d resource groups: hanode's frame has one bit per group for "
                                   "%d groups; merge lines (a group may hold many resources)"
                             % (MAX_GROUPS, MAX_GROUPS))
                continue
            self.cfg.groups.append(ResourceGroup(node, key, resources, line))
            if not complete:
                incomplete.append(line)
        if not logical:
            self.warn(0, "no resource groups: hanode will only exchange heartbeats; add a line such as "
                         "'node1 192.0.2.100 httpd'")
        if ha_cf_read and not self.cfg.ucast:
            self._unprobed_groups(incomplete)

    def _unprobed_groups(self, skip_lines):
        """Issue 13 finding 8: only an address can be probed before a group is taken from a silent
        peer; with the serial cable as the only path, a pulled cable runs an address-less group on
        both boxes."""
        for g in self.cfg.groups:
            if g.line in skip_lines or any(r.is_ip for r in g.resources):
                continue
            self.warn(g.line, "group [%s] has no IP address, so nothing can probe whether the silent peer "
                              "still runs it: the serial cable is the only heartbeat path, and when it is "
                              "pulled both boxes think the other dead and both start the group. Add a "
                              "second path ('ucast <interface> <peer address>' in ha.cf) or an address to "
                              "the group (e.g. '%s 192.0.2.100 %s')" % (g.key, g.preferred, g.key))

    def _resource(self, line, tok):
        if looks_like_ip(tok):
            script, args = "IPaddr", [tok]  # Heartbeat's canonname
        else:
            parts = tok.split("::")
            script = parts[0]
            # the shell splits the args on blanks later, so empty ones vanish
            args = [a for a in parts[1:] if a]
        if not script or "/" in script:
            self.err(line, "resource [%s]: the script name must be a plain file name, looked up in %s"
                     % (tok, " then ".join(self.cfg.resource_dirs or ["resource.d", "/etc/init.d"])))
            return None
        r = Resource(tok, script, args)
        if script in ("IPaddr", "IPaddr2"):
            r.is_ip = True
            if len(args) != 1:
                self.err(line, "resource [%s]: %s takes one argument, "
                               "ip[/bits[/interface[:label]][/broadcast]], e.g. %s::192.0.2.100/24/eth0"
                         % (tok, script, script))
                return None
            if not self._ip_arg(line, tok, args[0], r):
                return None
        return r

    def _ip_arg(self, line, tok, arg, r):
        comps = arg.split("/")
        ok = True
        if parse_ipv4(comps[0]) is None:
            self.err(line, "resource [%s]: [%s] is not an IPv4 address; write four numbers 0-255, e.g. "
                           "192.0.2.100" % (tok, comps[0]))
            ok = False
        elif comps[0].startswith("0.") or comps[0].startswith("127.") or int(comps[0].split(".")[0]) >= 224:
            self.err(line, "resource [%s]: %s cannot be a service address (it is a 0/8, loopback, multicast "
                           "or reserved address)" % (tok, comps[0]))
            ok = False
        r.ip = comps[0]
        if len(comps) > 1 and comps[1]:
            p = comps[1]
            if is_digits(p) and int(p) <= 32:
                r.prefixlen = int(p)
            elif mask_to_prefix(p) is not None:
                r.prefixlen = mask_to_prefix(p)
            else:
                self.err(line, "resource [%s]: prefix [%s] must be a number of bits from 0 to 32 (or a "
                               "netmask such as 255.255.255.0)" % (tok, p))
                ok = False
        bcast = None
        rest = comps[2:]
        if rest and rest[0] and rest[0][0] in DIGITS:
            bcast = rest[0]  # a digit in the 3rd place means broadcast, no interface
            extra = rest[1:]
        else:
            if rest and rest[0]:
                dev, label = rest[0], None
                colon = dev.find(":")
                if colon >= 0:
                    dev, label = dev[:colon], dev
                if not dev or len(dev) > 15 or (label is not None and (label.endswith(":") or len(label) > 15)):
                    self.err(line, "resource [%s]: [%s] is not a valid interface[:label]; interface names "
                                   "and labels have at most 15 characters, e.g. eth0 or eth0:1" % (tok, rest[0]))
                    ok = False
                else:
                    r.dev, r.label = dev, label
            bcast = rest[1] if len(rest) > 1 and rest[1] else None
            extra = rest[2:]
        if bcast is not None:
            if parse_ipv4(bcast) is None:
                self.err(line, "resource [%s]: broadcast [%s] is not an IPv4 address" % (tok, bcast))
                ok = False
            else:
                r.broadcast = bcast
        if extra:
            self.err(line, "resource [%s]: too many '/' parts; the syntax is "
                           "ip[/bits[/interface[:label]][/broadcast]]" % tok)
            ok = False
        return ok


def looks_like_ip(tok):
    """Heartbeat's ``isip`` glob ``[0-9]*.[0-9]*.[0-9]*.[0-9]*``."""
    if not tok or tok[0] not in DIGITS:
        return False
    pos = 0
    for _ in range(3):
        found = False
        while True:
            dot = tok.find(".", pos)
            if dot < 0:
                return False
            pos = dot + 1
            if pos < len(tok) and tok[pos] in DIGITS:
                found = True
                break
        if not found:
            return False
    return True
