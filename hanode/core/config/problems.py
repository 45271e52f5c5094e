"""The problem collector: every problem of the three files, each with its file and line.

The parsers never stop at the first problem: each one becomes a ``Problem`` and
the caller gets them all, sorted by file then line, in one ``ConfigError`` (or one
``check-config`` run).
"""

# index of each file in ``paths`` (ha.cf, authkeys, haresources)
HA_CF, AUTHKEYS, HARESOURCES = 0, 1, 2


class Problem:
    """One thing wrong (or worth knowing) about a configuration file, with its place."""

    def __init__(self, path, line, message, level="error"):
        self.path = path
        self.line = line
        self.message = message
        self.level = level

    def __str__(self):
        if self.line:
            return "%s:%d: %s: %s" % (self.path, self.line, self.level, self.message)
        return "%s: %s: %s" % (self.path, self.level, self.message)

    def __repr__(self):
        return "Problem(%r, %r, %r, %r)" % (self.path, self.line, self.message, self.level)

    def to_dict(self):
        return {"path": self.path, "line": self.line, "level": self.level,
                "message": self.message, "text": str(self)}


class ConfigError(Exception):
    """Raised when at least one problem is an error; ``problems`` holds all of them."""

    def __init__(self, problems):
        self.problems = list(problems)
        first = None
        for p in self.problems:
            if p.level == "error":
                first = p
                break
        if first is None and self.problems:
            first = self.problems[0]
        self.path = first.path if first else None
        self.line = first.line if first else 0
        self.message = first.message if first else "configuration error"
        super().__init__(self._text())

    def _text(self):
        return "\n".join([str(p) for p in self.problems])

    def __str__(self):
        return self._text()


class Problems:
    """Collects problems from the three file parsers; ``sorted()`` gives them in file order."""

    def __init__(self, paths):
        self.paths = paths
        self._items = []  # (file index, line, sequence, Problem)

    def add(self, f, line, message, level):
        self._items.append((f, line, len(self._items), Problem(self.paths[f], line, message, level)))

    def sorted(self):
        items = list(self._items)
        items.sort(key=lambda t: (t[0], t[1], t[2]))  # the sequence keeps it stable on MicroPython
        return [t[3] for t in items]


class FileParser:
    """Base of the three file parsers: the Config being filled and problems of its own file."""

    FILE = HA_CF

    def __init__(self, cfg, problems):
        self.cfg = cfg
        self.problems = problems
        self.path = problems.paths[self.FILE]

    def err(self, line, message):
        self.problems.add(self.FILE, line, message, "error")

    def warn(self, line, message):
        self.problems.add(self.FILE, line, message, "warning")
