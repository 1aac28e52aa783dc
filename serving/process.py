"""Running the BentoML server as a child process: start it (each with its own Prometheus
folder, serving/bentoml_serve.py), wait until it is ready, stop it with everything it
started, and stop it when a signal asks the command that started it to stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def bentoml_bin() -> str:
    here = Path(sys.executable).parent / "bentoml"
    return str(here) if here.exists() else "bentoml"


def start_server(
    tag: str,
    port: int,
    host: str = "127.0.0.1",
    extra_env: dict | None = None,
    log_file: Path | None = None,
    target: str = "serving.service:LeadScoringService",
    cwd: Path | None = None,
) -> subprocess.Popen:
    """Start `bentoml serve` for the service with the given BentoML model tag (``target``
    may also be a bento tag); stdout and stderr go to ``log_file`` when given. ``cwd``:
    the working directory, whose packages come first (a benchmark serves another
    checkout so)."""
    env = {**os.environ, "LEADSCORE_BENTO_MODEL": tag, **(extra_env or {})}
    out = open(log_file, "ab") if log_file is not None else None  # noqa: SIM115
    try:
        return subprocess.Popen(
            # `bentoml serve` with a metrics folder of its own (serving/bentoml_serve.py)
            [
                sys.executable,
                "-m",
                "serving.bentoml_serve",
                target,
                "--host",
                host,
                "--port",
                str(port),
            ],  # fmt: skip
            env=env,
            cwd=cwd,
            start_new_session=True,
            stdout=out,
            stderr=subprocess.STDOUT if out is not None else None,
        )
    finally:
        if out is not None:
            out.close()


def wait_ready(port: int, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"the service exited with code {proc.returncode} before it was ready"
            )
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the service was not ready on port {port} after {timeout:.0f} s")


#: Seconds `leadscore serve` waits, after SIGTERM, for the server to answer the requests in
#: flight and flush the prediction log, before it kills what is left.
DRAIN_S = 35.0


def server_processes(proc: subprocess.Popen) -> list[Any]:
    """The server's workers (psutil processes). BentoML starts each in a process group of
    its own, so signalling the server's group does not reach them."""
    import psutil

    try:
        return psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def stop_server(proc: subprocess.Popen, timeout: float = DRAIN_S) -> None:
    """SIGTERM to the server (it drains and stops its workers), then, ``timeout`` seconds
    later, SIGKILL to whatever of the server and its workers is still there."""
    import psutil

    workers = server_processes(proc)
    deadline = time.monotonic() + timeout
    if proc.poll() is None:
        _killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    _, alive = psutil.wait_procs(workers, timeout=max(0.1, deadline - time.monotonic()))
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=10)


def port_in_use(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be listened on (e.g. a server left running), or None."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            s.bind((host, port))
        except OSError as e:
            return e.strerror or str(e)
    return None


class _Stop(Exception):
    """A signal asked `leadscore serve` to stop."""


def run_until_signal(
    proc: subprocess.Popen, drain: float = DRAIN_S, say: Callable[[str], None] = print
) -> int:
    """Wait for the server; on SIGTERM, SIGINT or SIGHUP stop it (:func:`stop_server`) and
    return 0. The server runs in a session of its own, so without this a signal to the
    command would end only the command and leave the server serving."""

    def stop(signum: int, frame: Any) -> None:
        raise _Stop(signum)

    sigs = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    old = {sig: signal.signal(sig, stop) for sig in sigs}
    try:
        return proc.wait()
    except (_Stop, KeyboardInterrupt):
        for sig in sigs:  # a second signal must not interrupt the drain
            signal.signal(sig, signal.SIG_IGN)
        say(f"stopping: finishing the requests in flight (at most {drain:.0f} s)")
        stop_server(proc, drain)
        return 0
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
