"""The layout's rules (docs/internals.md, "Layout"), checked on the tree: which parts may import which.

Theory of operation
-------------------
Every .py file under hanode/ is parsed with ``ast`` (nothing is imported, so a
module-level side effect cannot hide an import) and each ``import``/``from ...
import`` anywhere in it - at the top, inside a function, relative or absolute -
is resolved to the module it names.  Each module belongs to one part:

- core: ``hanode.core`` and below (sans-IO, MicroPython);
- lab: ``hanode.lab`` and below (the test bed);
- loop: ``hanode.agent``; portability: ``hanode.aio`` (asyncio subset and clock);
- daemon: ``hanode.daemon``; CLI: ``hanode.cli``, ``hanode.__main__``, ``hanode.checkconfig``;
- adapters: every other module of the package (so a new module is an adapter
  until it is listed elsewhere), and the ``hanode`` package itself.

The imports that must never exist: core -> anything outside core; adapters ->
loop, daemon or CLI; anything outside the lab -> lab (``hanode demo`` reaches it
through cli.py's ``importlib`` call by name, which is not an import statement).
A second test runs a copy of the package without hanode/lab, as the appliance
image has it: every product module imports and ``hanode demo`` says what is missing.
"""
import ast
import os
import shutil
import subprocess
import sys
from typing import List, Optional

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

LOOP = {"hanode.agent"}
PORTABILITY = {"hanode.aio"}
DAEMON = {"hanode.daemon"}
CLI = {"hanode.cli", "hanode.__main__", "hanode.checkconfig"}


def part_of(module: str) -> str:
    if module == "hanode.core" or module.startswith("hanode.core."):
        return "core"
    if module == "hanode.lab" or module.startswith("hanode.lab."):
        return "lab"
    for part, members in (("loop", LOOP), ("portability", PORTABILITY), ("daemon", DAEMON), ("CLI", CLI)):
        if module in members:
            return part
    return "adapters"


def forbidden(importer: str, imported: str) -> Optional[str]:
    """Why ``importer`` must not import ``imported`` (None when it may)."""
    source, target = part_of(importer), part_of(imported)
    if source == "core" and target != "core":
        return "the core imports nothing outside hanode/core"
    if source == "adapters" and target in ("loop", "daemon", "CLI"):
        return "adapters never import the loop, the daemon or the CLI"
    if source != "lab" and target == "lab":
        return "the product never imports the test bed (hanode/lab)"
    return None


def module_name(package_root: str, path: str) -> str:
    rel = os.path.relpath(path, os.path.dirname(package_root))[:-len(".py")].split(os.sep)
    return ".".join(rel[:-1] if rel[-1] == "__init__" else rel)


def imported_modules(node: ast.AST, importer: str, is_package: bool, known: set) -> List[str]:
    """The hanode modules one import statement names (``from hanode import arp`` names hanode.arp)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    assert isinstance(node, ast.ImportFrom)
    base = node.module or ""
    if node.level:
        anchor = importer.split(".")
        anchor = anchor[:len(anchor) - node.level + (1 if is_package else 0)]
        base = ".".join(anchor + ([base] if base else []))
    names = []
    for alias in node.names:
        sub = "%s.%s" % (base, alias.name)
        names.append(sub if sub in known else base)
    return names


def layout_violations(package_root: str) -> List[str]:
    """Every forbidden import under package_root (a directory named hanode), as "file:line: ..."."""
    files = []
    for folder, dirs, names in os.walk(package_root):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        files += [os.path.join(folder, n) for n in sorted(names) if n.endswith(".py")]
    known = {module_name(package_root, f) for f in files}
    problems = []
    for path in files:
        importer = module_name(package_root, path)
        with open(path) as f:
            tree = ast.parse(f.read(), path)
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            for imported in imported_modules(node, importer, path.endswith("__init__.py"), known):
                if imported != "hanode" and not imported.startswith("hanode."):
                    continue
                why = forbidden(importer, imported)
                if why:
                    problems.append("%s:%d: %s imports %s (%s -> %s): %s" % (
                        os.path.relpath(path, os.path.dirname(package_root)), node.lineno, importer, imported,
                        part_of(importer), part_of(imported), why))
    return problems


def test_no_forbidden_import_in_the_tree():
    assert layout_violations(os.path.join(REPO, "hanode")) == []


def test_the_checker_finds_each_kind_of_forbidden_import(tmp_path):
    """A planted tree with one import of each forbidden kind, and allowed ones that must pass."""
    files = {
        "__init__.py": "",
        "core/__init__.py": "",
        "core/node.py": "from hanode.core import frame\nfrom . import frame as f2\n",
        "core/frame.py": "def f():\n    from hanode import vip  # lazy, still forbidden\n",
        "vip.py": "from hanode import aio\nfrom hanode.core.frame import f\n",
        "uart.py": "import hanode.agent\n",
        "aio.py": "",
        "agent.py": "from hanode import aio\n",
        "daemon.py": "from hanode import agent, vip\nfrom .lab import bed\n",
        "cli.py": "import importlib\nimportlib.import_module('hanode.lab.demo')\n",
        "lab/__init__.py": "",
        "lab/bed.py": "from hanode import daemon\nfrom ..core import node\n",
    }
    root = tmp_path / "hanode"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    found = layout_violations(str(root))
    assert sorted(line.split(": ", 1)[1].split(" (")[0] for line in found) == [
        "hanode.core.frame imports hanode.vip",
        "hanode.daemon imports hanode.lab.bed",
        "hanode.uart imports hanode.agent",
    ], found

# An editable install (pip install -e, as tools/setup does) puts a finder on sys.meta_path that
# serves every hanode.* name from the checkout, so `hanode.lab` would be found there although the
# copy leaves it out: the children drop that finder first, as an installed image has none.
WITHOUT_EDITABLE_FINDER = (
    "import sys; sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in "
    "getattr(f, '__module__', '') and 'editable' not in getattr(f, '__name__', '')]\n")

IMPORT_EVERY_PRODUCT_MODULE = WITHOUT_EDITABLE_FINDER + r'''
import importlib, pkgutil, sys
import hanode
names = [m.name for m in pkgutil.walk_packages(hanode.__path__, "hanode.") if m.name != "hanode.__main__"]
for name in names:
    importlib.import_module(name)
assert not any(n == "hanode.lab" or n.startswith("hanode.lab.") for n in sys.modules), sorted(sys.modules)
print(len(names))
'''


def test_the_product_runs_without_the_lab(tmp_path):
    shutil.copytree(os.path.join(REPO, "hanode"), str(tmp_path / "hanode"),
                    ignore=shutil.ignore_patterns("lab", "__pycache__"))
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    imported = subprocess.run([sys.executable, "-c", IMPORT_EVERY_PRODUCT_MODULE], cwd=str(tmp_path), env=env,
                              capture_output=True, text=True, timeout=120)
    assert imported.returncode == 0, imported.stderr
    assert int(imported.stdout) >= 20, imported.stdout  # walked the whole package, not an empty one
    as_main = (WITHOUT_EDITABLE_FINDER
               + "import runpy; sys.argv[0] = 'hanode'; runpy.run_module('hanode', run_name='__main__')")
    demo = subprocess.run([sys.executable, "-c", as_main, "demo"], cwd=str(tmp_path), env=env,
                          capture_output=True, text=True, timeout=60)
    assert demo.returncode == 2 and "hanode.lab.demo is not installed" in demo.stderr, demo
    ran = subprocess.run([sys.executable, "-c", as_main, "run", "--help"], cwd=str(tmp_path), env=env,
                         capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0 and "usage: hanode run" in ran.stdout, ran
