"""Run ``privagg serve`` as a real process on a free loopback port (for tests and benchmarks).

>>> with ServiceProcess(db="/tmp/s.sqlite") as svc:     # doctest: +SKIP
...     httpx.get(svc.url + "/v1/health").json()
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import httpx

#: A small synthetic World: starts in well under a second.
SMALL_WORLD = ("--synthetic-users", "300", "--synthetic-cells", "40", "--synthetic-days", "2")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServiceProcess:
    """``privagg serve`` in a child process, listening on 127.0.0.1 only.

    Parameters
    ----------
    db
        The service database (path or URL).
    args
        Further options of ``privagg serve`` (default: a small synthetic World).
    env
        Extra environment variables of the process.
    log
        File receiving the server's output (default: beside an SQLite db, else discarded).
    """

    def __init__(self, db: str | Path, args: Sequence[str] = SMALL_WORLD, env: dict[str, str] | None = None,
                 log: str | Path | None = None, startup_timeout: float = 120.0) -> None:
        self.db, self.args, self.env = str(db), list(args), dict(env or {})
        self.log = Path(log) if log else None
        self.startup_timeout = startup_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServiceProcess:
        self.port = free_port()
        cmd = [sys.executable, "-m", "privagg.cli", "serve", "--db", self.db, "--host", "127.0.0.1",
               "--port", str(self.port), *self.args]
        out: Any = open(self.log, "ab") if self.log else subprocess.DEVNULL
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **self.env})
        if self.log:
            out.close()
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                shown = self.log.read_text()[-2000:] if self.log and self.log.exists() else ""
                raise RuntimeError(f"privagg serve exited with {self.proc.returncode}: {shown}")
            try:
                if httpx.get(self.url + "/v1/health", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"privagg serve did not answer within {self.startup_timeout:g} s")

    def kill(self) -> None:
        """SIGKILL: no shutdown of any kind, as in a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
