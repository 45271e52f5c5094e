"""The layout's rules, checked on the tree: which parts may import which.

Theory of operation: the product runs without the test bed (the appliance image
leaves hanode/lab out), so a copy of the hanode package without hanode/lab must
import every product module and answer ``hanode demo`` with a clear error.
"""
import os
import shutil
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

IMPORT_EVERY_PRODUCT_MODULE = r'''
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
    demo = subprocess.run([sys.executable, "-m", "hanode", "demo"], cwd=str(tmp_path), env=env,
                          capture_output=True, text=True, timeout=60)
    assert demo.returncode == 2 and "hanode.lab.demo is not installed" in demo.stderr, demo
    ran = subprocess.run([sys.executable, "-m", "hanode", "run", "--help"], cwd=str(tmp_path), env=env,
                         capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0 and "usage: hanode run" in ran.stdout, ran
