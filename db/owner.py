"""Who runs a run (host, pid, process start, boot), and whether that process is still alive.

A pid alone is not enough: after the owner dies, the system may give its pid to an unrelated
process. On Linux the owner is pinned by its start time (field 22 of /proc/PID/stat, in clock ticks
after boot) and the boot id (/proc/sys/kernel/random/boot_id), so a reused pid or a reboot is told
apart from the owner. Elsewhere only the pid is known: a live process with the owner's pid is taken
for the owner, which can leave a dead run shown as running, never a live run shown as interrupted.
A process on another host, or in another pid namespace of this one (a container that shares the
host name), cannot be checked at all: its runs are left as they are.
"""
from __future__ import annotations

import json
import os
import socket
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

PROC = Path("/proc")
BOOT_ID = PROC / "sys" / "kernel" / "random" / "boot_id"

Liveness = Literal["alive", "gone", "elsewhere"]


@dataclass(frozen=True)
class Owner:
    """A process: its host, pid, start time (clock ticks after boot), boot id and pid namespace (None
    where unknown)."""

    host: str
    pid: int
    started: int | None = None
    boot_id: str | None = None
    pid_ns: str | None = None

    def to_json(self) -> str:
        """As stored in runs.owner."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> Owner | None:
        """The owner stored in runs.owner; None when there is none or it cannot be read."""
        try:
            data = json.loads(text or "null")
            return cls(str(data["host"]), int(data["pid"]), data.get("started"), data.get("boot_id"),
                       data.get("pid_ns"))
        except (ValueError, TypeError, KeyError):
            return None


def this_process() -> Owner:
    """The calling process as an Owner."""
    pid = os.getpid()
    stat = _stat(pid)
    return Owner(socket.gethostname(), pid, stat[1] if stat else None, _boot_id(), _pid_namespace())


def liveness(owner: Owner) -> Liveness:
    """Whether owner still runs: 'alive', 'gone' (ended, killed, or the machine restarted since), or
    'elsewhere' (another host or pid namespace: cannot be checked)."""
    if owner.host != socket.gethostname() or (owner.pid_ns and owner.pid_ns != _pid_namespace()):
        return "elsewhere"
    boot = _boot_id()
    if (owner.boot_id and boot and owner.boot_id != boot) or not _pid_exists(owner.pid):
        return "gone"
    stat = _stat(owner.pid)
    if stat is None:  # no /proc, or another user's process hidden by it: the pid exists, nothing more is known
        return "alive"
    state, started = stat
    # A zombie has ended (its parent has not yet reaped it); another start time is another process.
    return "gone" if state in "ZX" or (owner.started is not None and started != owner.started) else "alive"


def _pid_exists(pid: int) -> bool:
    if os.name == "nt":  # os.kill would terminate the process there: no honest check without a library
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by another user
        return True
    return True


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in ticks after boot) from /proc/PID/stat; None when it cannot be read.

    The command name (field 2) is in parentheses and may hold spaces and parentheses itself, so the
    fields are counted from the last ')'.
    """
    try:
        text = (PROC / str(pid) / "stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    rest = text[text.rfind(")") + 1:].split()
    try:
        return rest[0], int(rest[19])  # fields 3 (state) and 22 (starttime)
    except (IndexError, ValueError):
        return None


def _pid_namespace() -> str | None:
    try:
        return os.readlink(PROC / "self" / "ns" / "pid")
    except OSError:
        return None


def _boot_id() -> str | None:
    try:
        return BOOT_ID.read_text(encoding="ascii").strip() or None
    except (OSError, UnicodeDecodeError):
        return None
