"""Heartbeat's value syntax, shared by the three files: times, booleans, IPv4, lines.

Each parser returns the value or None (never raises): the caller turns None into
a problem that names the directive and the line.  No floats (the two interpreters
round differently) and no regular expressions (MicroPython's ``re`` is a subset).
"""

DIGITS = "0123456789"
_TRUE = ("true", "on", "yes", "y", "1")
_FALSE = ("false", "off", "no", "n", "0")


def is_digits(s):
    if not s:
        return False
    for c in s:
        if c not in DIGITS:
            return False
    return True


def parse_time_ms(text):
    """Heartbeat's ``cl_get_msec``: ``2`` -> 2000, ``0.5`` -> 500, ``1500 ms`` -> 1500, ``501us`` -> 1.

    Bare numbers are seconds, ``ms``/``msec`` milliseconds and ``us``/``usec``
    microseconds (case-insensitive, blanks allowed before the unit); the result is
    rounded half up to a whole millisecond.  Anything else (a sign, an exponent,
    trailing text) gives None.  The arithmetic is exact decimal, so ``0.0005``
    really is half a millisecond and rounds up, on both interpreters.
    """
    if not isinstance(text, str):
        return None
    s = text.strip()
    i = 0
    while i < len(s) and s[i] in "0123456789.":
        i += 1
    number = s[:i]
    unit = s[i:].strip().lower()
    if number.count(".") > 1 or number.replace(".", "") == "":
        return None
    if unit == "":
        mult, div = 1000, 1
    elif unit in ("ms", "msec"):
        mult, div = 1, 1
    elif unit in ("us", "usec"):
        mult, div = 1, 1000
    else:
        return None
    if "." in number:
        dot = number.find(".")
        whole, frac = number[:dot], number[dot + 1:]
    else:
        whole, frac = number, ""
    num = int(whole + frac) * mult
    den = (10 ** len(frac)) * div
    return (2 * num + den) // (2 * den)


def parse_bool(text):
    """Heartbeat's ``cl_str_to_boolean``: True, False, or None when it is neither."""
    t = text.lower()
    if t in _TRUE:
        return True
    if t in _FALSE:
        return False
    return None


def parse_ipv4(text):
    """Dotted-quad IPv4 as written (no leading zeros: some tools read them as octal) or None."""
    parts = text.split(".")
    if len(parts) != 4:
        return None
    for p in parts:
        if not is_digits(p) or len(p) > 3 or (len(p) > 1 and p[0] == "0") or int(p) > 255:
            return None
    return text


def ipv4_int(text):
    n = 0
    for p in text.split("."):
        n = (n << 8) | int(p)
    return n


def mask_to_prefix(text):
    """255.255.255.0 -> 24; None when not a contiguous netmask."""
    if parse_ipv4(text) is None:
        return None
    n = ipv4_int(text)
    bits = 0
    while bits < 32 and n & (0x80000000 >> bits):
        bits += 1
    if (n << bits) & 0xFFFFFFFF:
        return None
    return bits


def edit_distance(a, b):
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
        prev = cur
    return prev[len(b)]


def split_lines(text):
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines = lines[:-1]
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]


def dirname(path):
    """The directory part of a path ("" for a bare name); os.path is not in the core."""
    slash = path.rfind("/")
    if slash < 0:
        return ""
    return path[:slash] or "/"


def join_path(d, name):
    if not d:
        return name
    return d + name if d.endswith("/") else d + "/" + name
