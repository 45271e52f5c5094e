"""hanode/noopenssl.py: `hanode run` without OpenSSL, in fresh interpreters (a real import of
asyncio, hashlib and pyroute2's IPRoute each time; the process's own /proc/self/maps is read).

Each check runs in a child ``python3 -S`` (as the appliance starts the agent) with the
checkout and the dependencies on PYTHONPATH, since what is imported is process-wide.
"""
import json
import subprocess
import sys

from hanode.lab.bed import agent_env

# RFC 4231 test case 2 (HMAC-SHA256) and RFC 2202 test case 2 (HMAC-MD5, HMAC-SHA1): key "Jefe"
VECTORS = {
    "sha256": "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
    "md5": "750c783e6ab0b503eaa86e310a5db738",
    "sha1": "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79",
}

CHILD = r'''
import json, sys
from hanode.noopenssl import keep_openssl_out, openssl_loaded
keep_openssl_out()
import asyncio, hashlib, hmac
import hanode.vip
hanode.vip.iproute_class()                      # pyroute2 imports ssl: it gets the stand-in
from hanode.core.compat import Hmac
MSG = b"what do ya want for nothing?"
out = {"loaded_after_imports": openssl_loaded(),
       "maps_after_imports": [l for l in ("libssl", "libcrypto") if l in open("/proc/self/maps").read()],
       "hmac": {n: hmac.new(b"Jefe", MSG, n).hexdigest() for n in ("sha256", "md5", "sha1")},
       "core_hmac": Hmac("sha256", b"Jefe").digest(MSG).hex()}
if sys.argv[1] == "use-tls":
    import ssl
    out["tls_constant"] = int(ssl.PROTOCOL_TLS_CLIENT)   # the stand-in loads the real module
    out["real_in_sys_modules"] = type(sys.modules["ssl"]).__name__ == "module"
    out["ssl_loaded_after_use"] = "_ssl" in sys.modules
print(json.dumps(out))
'''


def _child(mode):
    env = agent_env()   # the lab's PYTHONPATH for agents started with -S
    r = subprocess.run([sys.executable, "-S", "-c", CHILD, mode], capture_output=True, text=True,
                       env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_the_agents_imports_leave_openssl_out_and_hash_the_same():
    out = _child("no-tls")
    assert out["loaded_after_imports"] is False
    assert out["maps_after_imports"] == []
    assert out["hmac"] == VECTORS
    assert out["core_hmac"] == VECTORS["sha256"]


def test_ssl_still_works_when_something_uses_it():
    out = _child("use-tls")
    assert out["loaded_after_imports"] is False
    assert out["tls_constant"] > 0
    assert out["real_in_sys_modules"] is True
    assert out["ssl_loaded_after_use"] is True
