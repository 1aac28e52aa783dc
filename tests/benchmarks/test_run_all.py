"""The `make bench` runner (benchmarks/run_all.py): a step's processes are all stopped when
the step ends, a server started in a session of its own included; a missing script is
reported, not a crash."""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]


def _runner():
    spec = importlib.util.spec_from_file_location("run_all", ROOT / "benchmarks" / "run_all.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["run_all"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


# a "benchmark" that starts a server in a new session (as serve.py's servers are), writes
# its pid, and then hangs
HANGS = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"],
                         start_new_session=True)
open(sys.argv[1], "w").write(str(child.pid))
print("started", flush=True)
time.sleep(600)
"""


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_step_that_hangs_is_stopped_with_the_server_it_started(tmp_path: Path) -> None:
    run_all = _runner()
    pid_file = tmp_path / "server.pid"
    step = run_all.run_step(
        "hangs", [sys.executable, "-c", HANGS, str(pid_file)], {}, tmp_path, timeout=5
    )
    assert not step.ok and "timed out" in step.note
    assert "started" in step.output
    server = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while not _gone(server) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _gone(server), f"server {server} left running"


def test_a_step_that_ends_reports_its_output_and_a_missing_script_is_named(
    tmp_path: Path,
) -> None:
    run_all = _runner()
    step = run_all.run_step("ok", [sys.executable, "-c", "print('figure 42')"], {}, tmp_path, 30)
    assert step.ok and "figure 42" in step.output and step.wall_s > 0
    bench = run_all.Bench(tmp_path, 100, 1, 100, 100, 1000, "pandas", {}, 30)
    missing = bench.run("nothing", [], script="no_such_benchmark.py")
    assert missing.note == "not present" and run_all._status(missing) == "not present"
