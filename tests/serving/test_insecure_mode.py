"""Insecure dev mode (no API tokens) only on a loopback address and never in a built bento
(the bento case is in tests/serving/test_bento_build.py): asked for anywhere else, nothing
starts."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from serving.settings import load_settings
from serving.startup import InsecureModeRefused, insecure_dev, listen_host

pytestmark = pytest.mark.slow  # starts real servers

BIN = Path(sys.executable).parent


def _env_without_tokens(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADSCORE_API_TOKENS")}
    env.pop("LEADSCORE_BUILT_BENTO", None)
    return {**env, **extra}


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10"])
def test_leadscore_serve_refuses_insecure_dev_off_loopback(host: str) -> None:
    res = subprocess.run(
        [str(BIN / "leadscore"), "serve", "--insecure-dev", "--host", host, "--port", "1"],
        env=_env_without_tokens(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 2, res.stdout + res.stderr
    assert "loopback address only" in res.stderr and host in res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize("host_args", [["--host", "0.0.0.0"], []])  # [] is BentoML's 0.0.0.0
def test_bentoml_serve_with_the_variable_alone_refuses_off_loopback(host_args) -> None:
    res = subprocess.run(
        [str(BIN / "bentoml"), "serve", "serving.service:LeadScoringService", "--port", "1"]
        + host_args,
        env=_env_without_tokens(LEADSCORE_INSECURE_DEV="1"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode != 0
    assert "allowed on a loopback address only, not on 0.0.0.0" in res.stderr, res.stderr[-2000:]


def test_listen_host_reads_the_socket_a_worker_is_handed() -> None:
    for address in ("127.0.0.1", "0.0.0.0"):
        with socket.socket() as s:
            s.bind((address, 0))
            argv = ["worker.py", "x", "--fd", str(s.fileno()), "--worker-id", "1"]
            assert listen_host(argv) == address
            assert listen_host(["worker.py", f"--fd={s.fileno()}"]) == address
    assert listen_host(["/x/bentoml", "serve", "svc", "--host", "127.0.0.1"]) == "127.0.0.1"
    assert listen_host(["/x/bentoml", "serve", "svc"]) == "0.0.0.0"
    assert listen_host(["pytest"]) is None


def test_insecure_dev_is_refused_in_a_built_bento_and_off_loopback(monkeypatch) -> None:
    monkeypatch.delenv("LEADSCORE_BUILT_BENTO", raising=False)
    monkeypatch.delenv("LEADSCORE_INSECURE_DEV", raising=False)
    assert insecure_dev(load_settings()) is False  # not asked for
    monkeypatch.setenv("LEADSCORE_INSECURE_DEV", "1")
    monkeypatch.setattr(sys, "argv", ["/x/bentoml", "serve", "svc", "--host", "127.0.0.1"])
    assert insecure_dev(load_settings()) is True
    monkeypatch.setattr(sys, "argv", ["/x/bentoml", "serve", "svc", "--host", "0.0.0.0"])
    with pytest.raises(InsecureModeRefused, match="loopback"):
        insecure_dev(load_settings())
    monkeypatch.setattr(sys, "argv", ["pytest"])  # the address is unknown: refused too
    with pytest.raises(InsecureModeRefused, match="unknown address"):
        insecure_dev(load_settings())
    monkeypatch.setattr(sys, "argv", ["/x/bentoml", "serve", "svc", "--host", "127.0.0.1"])
    monkeypatch.setenv("LEADSCORE_BUILT_BENTO", "1")
    with pytest.raises(InsecureModeRefused, match="built bento"):
        insecure_dev(load_settings())


@pytest.mark.slow
def test_leadscore_serve_insecure_dev_on_loopback_serves_without_a_token(trained, tmp_path):
    import signal
    import time

    import httpx

    from serving.process import DRAIN_S, free_port

    port = free_port()
    env = _env_without_tokens(
        LEADSCORE_DB_URL=f"sqlite:///{tmp_path / 'p.db'}",
        PATH=f"{BIN}:{os.environ['PATH']}",
    )
    env.pop("LEADSCORE_INSECURE_DEV", None)  # the flag sets it
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "leadscore"), "serve", "--insecure-dev", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            raise AssertionError(log.read_text()[-3000:])
        r = httpx.get(f"http://127.0.0.1:{port}/model")  # no token
        assert r.status_code == 200, r.text
        assert "INSECURE DEV MODE" in log.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(DRAIN_S + 10) == 0
