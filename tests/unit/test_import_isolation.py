"""Only loadtests/ may import locust: importing it monkey-patches the interpreter (gevent)."""
from __future__ import annotations

import subprocess
import sys

import pytest

MODULES = ["harness.cli", "harness.demo", "harness.status", "harness.remoting.frame", "cluster.local.cluster",
           "cluster.local.node", "reports"]


@pytest.mark.parametrize("module", MODULES)
def test_module_does_not_pull_in_locust_or_gevent(module: str) -> None:
    code = (f"import sys, importlib; importlib.import_module({module!r}); "
            "bad = [m for m in ('locust', 'gevent') if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
