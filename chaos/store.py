"""Active faults of a cluster, kept in its state dir so one command can inject and another heal.

``<state_dir>/chaos/active.json`` holds the Effects not healed yet and the id counter. Every change runs
inside :meth:`FaultStore.transaction`: an exclusive ``flock`` (chaos commands of several terminals, a
``--for`` timer and ``rmqh down`` take turns), then an atomic rewrite, also when the body failed part-way
(what was done is then recorded, so it can still be healed).
"""
from __future__ import annotations

import contextlib
import fcntl
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from chaos.base import Effect
from harness.errors import ClusterError, ConfigError
from harness.rundir import write_json_atomic


@dataclass
class ActiveFaults:
    next_id: int = 1
    active: list[Effect] = field(default_factory=list)

    def new_id(self, fault: str) -> str:
        fault_id = f"{fault}-{self.next_id}"
        self.next_id += 1
        return fault_id

    def find(self, fault_id: str) -> Effect:
        for effect in self.active:
            if effect.fault_id == fault_id:
                return effect
        known = ", ".join(e.fault_id for e in self.active) or "none are active"
        raise ConfigError(f"no active fault {fault_id!r}; active faults: {known}")

    def remove(self, fault_id: str) -> None:
        self.active = [e for e in self.active if e.fault_id != fault_id]


class FaultStore:
    def __init__(self, state_dir: Path) -> None:
        self.dir = Path(state_dir) / "chaos"
        self.path = self.dir / "active.json"

    def read(self) -> ActiveFaults:
        """A snapshot without the lock (the file is replaced atomically, so it is always whole)."""
        try:
            raw = json.loads(self.path.read_text())
        except FileNotFoundError:
            return ActiveFaults()
        except ValueError as exc:
            raise ClusterError(f"{self.path} is not valid JSON: {exc}") from None
        return ActiveFaults(int(raw.get("next_id", 1)), [Effect.from_json(e) for e in raw.get("active", [])])

    @contextlib.contextmanager
    def transaction(self) -> Iterator[ActiveFaults]:
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            faults = self.read()
            try:
                yield faults
            finally:
                self._write(faults)

    def _write(self, faults: ActiveFaults) -> None:
        body = {"next_id": faults.next_id, "active": [e.to_json() for e in faults.active]}
        write_json_atomic(self.path, body)
