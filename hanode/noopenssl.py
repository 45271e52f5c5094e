"""Keep OpenSSL out of the agent's memory: ``hanode run`` speaks no TLS and hashes little.

OpenSSL comes in two ways, each with its cost measured on the bench's CPython
3.11 (RSS of a bare interpreter plus the import):

- ``ssl`` (libssl + libcrypto, ~4 MB, 0.4 s of a start under emulation):
  ``import asyncio`` imports it when it can and copes when it cannot (its TLS
  entry points then say ssl is missing); pyroute2 0.9 imports it at the top of
  ``pyroute2.netlink.rtnl.probe_msg`` for a TLS probe message hanode never
  sends.  So asyncio is imported with ``ssl`` hidden, and then a stand-in
  goes into ``sys.modules`` that loads the real module on first use of any
  of its names: pyroute2's ``import ssl`` binds the stand-in, and nothing is
  loaded unless something really uses TLS, which then works as before.
- ``_hashlib`` (libcrypto, 3.6 MB): ``hashlib`` and ``hmac`` use it when it is
  there and otherwise CPython's own md5, sha1 and sha256 - the same digests,
  all the frame authentication needs (``hanode.core.compat.Hmac``).  hashlib
  reads ``_hashlib`` as it is imported, so it cannot be deferred: it stays
  out of the agent (``import _hashlib`` raises ImportError in it).

Only ``hanode run`` calls this; every other command leaves imports alone.
"""
import importlib
import importlib.machinery
import importlib.util
import sys
import types

SSL = "ssl"
HASHLIB_OPENSSL = "_hashlib"


def _real_ssl() -> types.ModuleType:
    """The real ssl module, imported on first use; it takes the stand-in's place in sys.modules
    (replaced in place, not removed and re-added: a caller iterating sys.modules is not upset)."""
    current = sys.modules.get(SSL)
    if not isinstance(current, _DeferredModule):
        return importlib.import_module(SSL)
    spec = importlib.machinery.PathFinder.find_spec(SSL)
    if spec is None or spec.loader is None:
        raise ImportError("no module named %r" % SSL, name=SSL)
    real = importlib.util.module_from_spec(spec)
    sys.modules[SSL] = real
    try:
        spec.loader.exec_module(real)
    except BaseException:
        sys.modules[SSL] = current
        raise
    return real


class _DeferredModule(types.ModuleType):
    """A module whose attributes are the real ssl's, loaded when the first one is read.
    ``__spec__`` is None, so ``import ssl`` finds it initialised without reading the real one."""

    def __getattr__(self, name: str):   # called only for names the stand-in does not have
        return getattr(_real_ssl(), name)


def keep_openssl_out() -> None:
    """Hashing without OpenSSL; asyncio imported without ssl, and a stand-in that loads ssl on
    first use.  A module imported before this call stays as it is (no harm, no saving)."""
    if HASHLIB_OPENSSL not in sys.modules and "hashlib" not in sys.modules:
        sys.modules[HASHLIB_OPENSSL] = None   # type: ignore[assignment]  # ImportError from now on
    if SSL in sys.modules or "asyncio" in sys.modules:
        return
    sys.modules[SSL] = None   # type: ignore[assignment]  # asyncio's "import ssl" raises ImportError
    try:
        importlib.import_module("asyncio")
    finally:
        del sys.modules[SSL]
    sys.modules[SSL] = _DeferredModule(SSL, "ssl, loaded on first use (see hanode.noopenssl)")


def openssl_loaded() -> bool:
    """Whether OpenSSL (through the real ssl module or hashlib's backend) is in this process."""
    return "_ssl" in sys.modules or sys.modules.get(HASHLIB_OPENSSL) is not None
