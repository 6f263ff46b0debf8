"""The chaos side never pulls in locust or gevent (Locust monkey-patches the interpreter on import)."""
from __future__ import annotations

import subprocess
import sys

import pytest

MODULES = ["chaos.engine", "chaos.context", "chaos.verify", "chaos.faults", "harness.chaos_cli", "cluster.links",
           "cluster.local.proxyproc"]


@pytest.mark.parametrize("module", MODULES)
def test_module_does_not_pull_in_locust_or_gevent(module: str) -> None:
    code = (f"import sys, importlib; importlib.import_module({module!r}); "
            "bad = [m for m in ('locust', 'gevent') if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
