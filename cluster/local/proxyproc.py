"""The cluster's Toxiproxy server as a process of its own, started before the nodes and stopped after them.

``toxiproxy-server`` from PATH when there is one, else the built-in ``python -m chaos.proxy``. Like the nodes
it runs in its own session (a Ctrl-C in the terminal reaches the harness, which then stops things in
order) and outlives ``rmqh up``. Its command line carries ``<state_dir>/proxy/proxies.json`` as its config
file (an empty list: the harness populates the proxies itself), so ``rmqh down`` can find a server that a
killed harness never wrote into the state file. The built-in server also exits when ``parent_pid`` dies, as
the nodes do; ``toxiproxy-server`` has no such option and is left to ``rmqh down``.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import requests

from chaos.proxy.launcher import find_toxiproxy_server
from cluster.local.process import free_port, pid_alive, terminate_pid
from cluster.local.stopping import stop_together
from harness.errors import ClusterError
from harness.state import ProxyServerState


def proxy_dir(state_dir: Path) -> Path:
    return state_dir / "proxy"


def config_path(state_dir: Path) -> Path:
    """The marker on the server's command line; also a valid (empty) Toxiproxy config file."""
    return proxy_dir(state_dir) / "proxies.json"


def start_proxy_server(state_dir: Path, host: str = "127.0.0.1", parent_pid: int = 0,
                       log_file: Path | None = None, timeout: float = 15.0) -> ProxyServerState:
    """Start the server bound to ``host`` and return once its API answers."""
    proxy_dir(state_dir).mkdir(parents=True, exist_ok=True)
    config_path(state_dir).write_text("[]\n")
    port_file = proxy_dir(state_dir) / "port"
    port_file.unlink(missing_ok=True)
    log = log_file or state_dir / "logs" / "toxiproxy.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    binary = find_toxiproxy_server()
    port = free_port(host) if binary else 0  # toxiproxy-server cannot report a port it picked
    command = _command(binary, state_dir, host, port, port_file, parent_pid)
    with open(log, "ab") as out:
        popen = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                 start_new_session=True, env=_env())
    kind = "toxiproxy-server" if binary else "built-in"
    server = ProxyServerState(kind, popen.pid, psutil.Process(popen.pid).create_time(), host, port, str(log))
    try:
        server.port = _wait_ready(popen, host, port, port_file, timeout)
    except BaseException:
        terminate_pid(popen.pid, server.create_time, 2.0)
        raise
    return server


def _command(binary: str | None, state_dir: Path, host: str, port: int, port_file: Path,
             parent_pid: int) -> list[str]:
    config = str(config_path(state_dir))
    if binary:
        return [binary, "-host", host, "-port", str(port), "-proxy-metrics", "-config", config]
    command = [sys.executable, "-m", "chaos.proxy", "--host", host, "--port", "0", "--port-file", str(port_file),
               "--config", config]
    return command + (["--parent-pid", str(parent_pid)] if parent_pid else [])


def _env() -> dict[str, str]:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])  # the child imports this checkout's chaos package
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    env.pop("LOCUST_SKIP_MONKEY_PATCH", None)
    return env


def _wait_ready(popen: subprocess.Popen[bytes], host: str, port: int, port_file: Path, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if popen.poll() is not None:
            raise ClusterError(f"the Toxiproxy server exited with code {popen.returncode} at start")
        if not port and port_file.exists():
            port = int(port_file.read_text() or 0)
        if port and _answers(host, port):
            return port
        time.sleep(0.02)
    raise ClusterError(f"the Toxiproxy server did not answer within {timeout:.0f}s")


def _answers(host: str, port: int) -> bool:
    try:
        return requests.get(f"http://{host}:{port}/version", timeout=1.0).status_code == 200
    except requests.RequestException:
        return False


def find_proxy_pids(state_dir: Path) -> list[int]:
    """Toxiproxy servers started for this state dir: their command line names its config file exactly."""
    marker = str(config_path(state_dir))
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        if marker in cmdline and ("chaos.proxy" in cmdline or any(p.endswith("toxiproxy-server") for p in cmdline)):
            found.append(proc.info["pid"])
    return found


def stop_proxy_server(state_dir: Path, server: ProxyServerState | None, timeout: float = 5.0) -> int:
    """Stop the recorded server and any other one started for ``state_dir``; returns how many were stopped."""
    procs: list[tuple[int, float | None]] = [(server.pid, server.create_time)] if server is not None else []
    procs += [(pid, None) for pid in find_proxy_pids(state_dir) if server is None or pid != server.pid]
    return stop_together(procs, timeout)


def proxy_alive(server: ProxyServerState) -> bool:
    return pid_alive(server.pid, server.create_time)
