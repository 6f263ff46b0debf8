"""Starting, watching and stopping node processes (one OS process per node).

Each node runs in its own session (so a Ctrl-C in the harness's terminal reaches the harness, which then
stops nodes in order) and carries its config path on its command line, which lets ``rmqh down`` find it by
scanning processes even when the state file was never written completely.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from cluster.local.config import NodeConfig, dump_config
from harness.errors import ClusterError


@dataclass
class NodeProcess:
    """A started node: its config, pid and process create time (to tell a reused pid apart)."""

    config: NodeConfig
    config_path: Path
    pid: int
    create_time: float

    def is_alive(self) -> bool:
        return pid_alive(self.pid, self.create_time)


def pid_alive(pid: int, create_time: float) -> bool:
    try:
        proc = psutil.Process(pid)
        return abs(proc.create_time() - create_time) < 0.01 and proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def spawn_node(config: NodeConfig, config_path: Path, wait: float = 15.0) -> NodeProcess:
    """Write the config, start the node, and wait until it accepts connections on its listen address."""
    config_path.parent.mkdir(parents=True, exist_ok=True)
    Path(config.data_dir).mkdir(parents=True, exist_ok=True)
    dump_config(config, config_path)
    stderr_path = Path(config.log_file).with_suffix(".stderr")
    stderr_path.parent.mkdir(parents=True, exist_ok=True)
    with open(stderr_path, "ab") as err:
        popen = subprocess.Popen([sys.executable, "-m", "cluster.local.node", str(config_path)],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                 start_new_session=True, env=_node_env())
    node = NodeProcess(config, config_path, popen.pid, psutil.Process(popen.pid).create_time())
    try:
        wait_listening(config.host, config.port, wait, lambda: popen.poll() is None)
    except ClusterError:
        kill_node(node)
        tail = _tail(Path(config.log_file)) or _tail(stderr_path)
        raise ClusterError(f"node {config.node_id} did not start listening on {config.listen_addr} "
                           f"within {wait:.0f}s; last log lines:\n{tail}") from None
    return node


def _node_env() -> dict[str, str]:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    env.pop("LOCUST_SKIP_MONKEY_PATCH", None)
    return env


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def wait_listening(host: str, port: int, timeout: float, still_running: object = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(still_running) and not still_running():
            raise ClusterError(f"process exited before listening on {host}:{port}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise ClusterError(f"nothing listening on {host}:{port} after {timeout:.0f}s")


def signal_node(node: NodeProcess, sig: signal.Signals) -> None:
    if not node.is_alive():
        raise ClusterError(f"node {node.config.node_id} (pid {node.pid}) is not running")
    os.kill(node.pid, sig)


def stop_node(node: NodeProcess, timeout: float = 10.0) -> None:
    """SIGTERM, wait, then SIGKILL: the node is gone when this returns."""
    terminate_pid(node.pid, node.create_time, timeout)


def kill_node(node: NodeProcess) -> None:
    terminate_pid(node.pid, node.create_time, 0.0)


def terminate_pid(pid: int, create_time: float | None, timeout: float) -> None:
    try:
        proc = psutil.Process(pid)
        if create_time is not None and abs(proc.create_time() - create_time) >= 0.01:
            return  # the pid was reused by an unrelated process
        if timeout > 0:
            _send(proc, signal.SIGCONT)  # a paused node cannot handle SIGTERM
            _send(proc, signal.SIGTERM)
            try:
                proc.wait(timeout)
                return
            except psutil.TimeoutExpired:
                pass
        _send(proc, signal.SIGKILL)
        proc.wait(10)
    except (psutil.NoSuchProcess, ChildProcessError):
        return


def _send(proc: psutil.Process, sig: signal.Signals) -> None:
    try:
        proc.send_signal(sig)
    except psutil.NoSuchProcess:
        pass


def find_node_pids(marker: str) -> list[int]:
    """Pids of node processes whose command line mentions ``marker`` (a cluster's state directory)."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        if "cluster.local.node" in cmdline and any(marker in part for part in cmdline):
            found.append(proc.info["pid"])
    return found


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
