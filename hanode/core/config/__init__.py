"""Heartbeat's three configuration files -> one ``Config`` (sans-IO, MicroPython-compatible).

Theory of operation
-------------------
hanode replaces a Heartbeat R1 pair by swapping the daemon, so it reads the same
``ha.cf``, ``authkeys`` and ``haresources`` and must agree with Heartbeat about what
they mean: the same defaults, the same time syntax (``cl_get_msec``), the same
booleans (``cl_str_to_boolean``), the same sanity rules and, where that helps the
user, the same messages.  An unknown directive is an error, as Heartbeat's
``Illegal directive`` (a typo must not leave a default in force), with the known
directive one or two edits away when there is one.  Where hanode differs, the
message says so: hanode needs exactly two nodes and ``crm off``, and it adds a few
directives of its own (VIP probing, watchdog timeout, paths).

The parser never stops at the first problem.  Every line of all three files is
read, each problem becomes a ``Problem(path, line, message, level)``, and when any
of them is an error the whole list is raised at once in ``ConfigError``, so that
``hanode check-config`` can show everything in one run.  Messages say what is wrong
and what would be right.

Text goes in, plain objects come out: no files, no clock, no regular expressions
(MicroPython's ``re`` cannot do named groups), no reliance on dict order (lists
keep file order), and no floats (the two interpreters round differently).

Modules, one per Heartbeat file plus what they share:
  model        Config, AuthKey, Resource, ResourceGroup and the limits (groups, baud rates ...)
  values       value syntax: cl_get_msec times, cl_str_to_boolean, IPv4, lines
  problems     Problem, ConfigError and the collector every parser reports to
  hacf         ha.cf directives and the checks across them
  authkeys     authkeys
  haresources  haresources
This module ties them together: ``check`` and ``parse``.
"""


from hanode.core.config.authkeys import AuthkeysParser
from hanode.core.config.hacf import SYSLOG_FACILITIES, HaCfParser
from hanode.core.config.haresources import HaresourcesParser
from hanode.core.config.model import (AUTH_METHODS, BAUD_RATES, DEFAULT_PATHS, FRAME_WIRE_BYTES,
                                      FRAME_WIRE_BYTES_CRC, MAX_AUTH_INDEX, MAX_GROUPS, MIN_KEY_BYTES,
                                      USABLE_MEDIA, AuthKey, Config, Resource, ResourceGroup,
                                      default_resource_dirs)
from hanode.core.config.problems import ConfigError, Problem, Problems
from hanode.core.config.values import dirname, parse_bool, parse_ipv4, parse_time_ms

__all__ = (
    "AUTH_METHODS", "BAUD_RATES", "DEFAULT_PATHS", "FRAME_WIRE_BYTES", "FRAME_WIRE_BYTES_CRC",
    "MAX_AUTH_INDEX", "MAX_GROUPS", "MIN_KEY_BYTES", "SYSLOG_FACILITIES", "USABLE_MEDIA",
    "AuthKey", "Config", "ConfigError", "Problem", "Resource", "ResourceGroup",
    "check", "parse", "parse_bool", "parse_ipv4", "parse_time_ms",
)


def check(ha_cf_text, authkeys_text, haresources_text, me=None, paths=DEFAULT_PATHS, config_dir=None,
          refuse_example_keys=False):
    """Parse without raising: ``(config or None, problems)``; config is None when any problem is an error.

    A text of None means the caller could not read that file (and reported it):
    its checks, and the cross-checks that need it, are skipped so the user does
    not get a cascade of follow-on errors.  ``config_dir`` (default: the directory
    of ``paths[0]``) is where the default ``resource.d`` is looked for.
    ``refuse_example_keys`` makes a published example key an error instead of a warning.
    """
    if config_dir is None:
        config_dir = dirname(paths[0])
    cfg = Config()
    cfg.paths = tuple(paths)
    cfg.config_dir = config_dir
    problems = Problems(paths)
    if ha_cf_text is not None:
        HaCfParser(cfg, problems, me).parse(ha_cf_text)
    else:
        cfg.resource_dirs = default_resource_dirs(config_dir)
    if authkeys_text is not None:
        AuthkeysParser(cfg, problems, refuse_example_keys).parse(authkeys_text)
    if haresources_text is not None:
        HaresourcesParser(cfg, problems).parse(haresources_text, ha_cf_text is not None)
    found = problems.sorted()
    for q in found:
        if q.level == "error":
            return None, found
    cfg.warnings = found
    return cfg, found


def parse(ha_cf_text, authkeys_text, haresources_text, me=None, paths=DEFAULT_PATHS, config_dir=None):
    """The three texts -> Config; raises ConfigError listing every problem if any is an error."""
    cfg, problems = check(ha_cf_text, authkeys_text, haresources_text, me, paths, config_dir)
    if cfg is None:
        raise ConfigError(problems)
    return cfg
