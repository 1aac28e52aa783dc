"""Importing any module of ours has no effect (docs/ARCHITECTURE.md): in a fresh interpreter
with an empty environment, importing every module reads no environment variable from our
code, starts no thread, exits nothing, installs no signal handler, switches no matplotlib
backend and freezes no garbage. Settings are read at start-up, by the code that starts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from architecture.layers import ALLOWED

ROOT = Path(__file__).resolve().parents[2]

PROBE = r"""
import gc, json, os, signal, sys, threading
root = sys.argv[1]
modules = json.loads(sys.argv[2])
ours = tuple(os.path.join(root, p) + os.sep for p in json.loads(sys.argv[3]))

def our_caller():
    f = sys._getframe(2)
    while f is not None:
        if f.f_code.co_filename.startswith(ours):
            return f"{os.path.relpath(f.f_code.co_filename, root)}:{f.f_lineno}"
        if not f.f_code.co_filename.startswith((os.path.dirname(os.__file__), "<frozen ")):
            return None  # a library read it for itself
        f = f.f_back
    return None

reads = []

class Recording(type(os.environ)):
    def __getitem__(self, key):
        where = our_caller()
        if where:
            reads.append([key, where])
        return super().__getitem__(key)

    def __contains__(self, key):
        where = our_caller()
        if where:
            reads.append([key, where])
        return super().__contains__(key)

recording = Recording(os.environ._data, os.environ.encodekey, os.environ.decodekey,
                      os.environ.encodevalue, os.environ.decodevalue)
os.environ = recording

import matplotlib
backend_calls = []
real_use = matplotlib.use
matplotlib.use = lambda *a, **k: (backend_calls.append(a), real_use(*a, **k))
handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}

import importlib
for name in modules:
    importlib.import_module(name)

print(json.dumps({
    "env_reads": reads,
    "threads": [t.name for t in threading.enumerate() if t is not threading.main_thread()],
    "backend_calls": backend_calls,
    "signals_changed": [s.name for s, h in handlers.items() if signal.getsignal(s) != h],
    "gc_frozen": gc.get_freeze_count(),
    "imported": len(modules),
}))
"""


def our_modules() -> list[str]:
    names = []
    for package in ALLOWED:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_importing_every_module_with_an_empty_environment_has_no_effect(tmp_path: Path):
    modules = our_modules()
    assert len(modules) > 40
    run = subprocess.run(
        [sys.executable, "-c", PROBE, str(ROOT), json.dumps(modules), json.dumps(list(ALLOWED))],
        env={},  # empty: nothing to read, and a module that needs something fails here
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]  # an exit or a failing import shows here
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert seen["imported"] == len(modules)
    assert seen["env_reads"] == [], "environment read at import"
    assert seen["threads"] == [], "thread started at import"
    assert seen["backend_calls"] == [], "matplotlib backend switched at import"
    assert seen["signals_changed"] == [], "signal handler installed at import"
    assert seen["gc_frozen"] == 0, "gc.freeze() at import"


def test_the_probe_sees_an_environment_read_and_a_thread(tmp_path: Path):
    """The probe is not blind: a planted module that reads the environment and starts a
    thread at import is caught."""
    pkg = tmp_path / "crm"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "planted.py").write_text(
        "import os, threading, time\n"
        "TOKEN = os.environ.get('LEADSCORE_API_TOKENS')\n"
        "threading.Thread(target=time.sleep, args=(5,), daemon=True).start()\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path), json.dumps(["crm.planted"]), '["crm"]'],
        env={},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert [key for key, _ in seen["env_reads"]] == ["LEADSCORE_API_TOKENS"]
    assert len(seen["threads"]) == 1
