"""What the service checks and starts when it starts, never at import: API tokens or a
permitted insecure dev mode, the token gate in front of the app, and, in a worker of
`bentoml serve`, the watch on the server process that started it.

The checks run twice on purpose: in the `bentoml serve` process itself (it exits with a
clear message before any worker starts) and in every worker (a backstop that stops the
whole server, for the ways of starting a server that skip the first check).
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from serving.auth import BearerTokenMiddleware, is_loopback
from serving.settings import ServiceSettings, env_name

logger = logging.getLogger("bentoml.leadscore")

INSECURE_ENV = env_name("insecure_dev")
TOKENS_HINT = "configure LEADSCORE_API_TOKENS or LEADSCORE_API_TOKENS_FILE"


class InsecureModeRefused(RuntimeError):
    """LEADSCORE_INSECURE_DEV asked for where it is not allowed."""


def is_bentoml_serve(argv: list[str]) -> bool:
    """True in the `bentoml serve` process itself (not in its workers)."""
    return Path(argv[0]).name == "bentoml" and "serve" in argv[1:3]


def listen_host(argv: list[str] | None = None) -> str | None:
    """The address this server listens on: in a worker, the address of the socket BentoML
    handed it (``--fd N``); in `bentoml serve` itself, its ``--host`` (BentoML's default is
    0.0.0.0). None when neither is known (e.g. the service used in-process)."""
    argv = sys.argv if argv is None else argv
    options = dict(a.split("=", 1) for a in argv if a.startswith("--") and "=" in a)
    for i, a in enumerate(argv[:-1]):
        if a in ("--fd", "--host"):
            options.setdefault(a, argv[i + 1])
    if "--fd" in options:
        try:
            with socket.socket(fileno=os.dup(int(options["--fd"]))) as sock:
                name = sock.getsockname()
        except (OSError, ValueError):
            return None
        return str(name[0]) if isinstance(name, tuple) else None
    if is_bentoml_serve(argv):
        return options.get("--host", "0.0.0.0")
    return None


def insecure_dev(settings: ServiceSettings, argv: list[str] | None = None) -> bool:
    """True when LEADSCORE_INSECURE_DEV asks to serve without tokens and that is allowed:
    never in a built bento, and only on a loopback address (what `leadscore serve
    --insecure-dev` sets up). Asked for anywhere else, it raises
    :class:`InsecureModeRefused`: the server does not start."""
    if not settings.insecure_dev:
        return False
    if settings.built_bento:
        raise InsecureModeRefused(f"{INSECURE_ENV} is refused in a built bento: {TOKENS_HINT}")
    host = listen_host(argv)
    if host is None or not is_loopback(host):
        raise InsecureModeRefused(
            f"{INSECURE_ENV} (no authentication) is allowed on a loopback address only, not "
            f"on {host or 'an unknown address'}: {TOKENS_HINT}"
        )
    return True


class AuthGate:
    """Bearer tokens from the settings, checked when the worker builds its app: with no
    token configured the worker refuses to start, unless insecure dev mode is on."""

    def __init__(self, app: Any, settings: ServiceSettings) -> None:
        tokens = settings.api_token_set()
        if tokens:
            self.app = BearerTokenMiddleware(app, tokens)
        elif insecure_dev(settings):
            logger.warning(
                "INSECURE DEV MODE: no API tokens, every caller is let in. Never do this "
                "outside a laptop."
            )
            self.app = app
        else:
            raise RuntimeError(
                "no API tokens configured: set LEADSCORE_API_TOKENS or "
                "LEADSCORE_API_TOKENS_FILE (or run `leadscore serve --insecure-dev` locally)"
            )

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


def refuse_without_tokens(
    settings: ServiceSettings, in_worker: bool = False, argv: list[str] | None = None
) -> None:
    """Stop here, with a clear message, when no API token is configured (and insecure dev
    mode is off). In `bentoml serve` itself this exits before any worker starts; in a worker
    (a backstop) it stops the whole server, since an exception in a worker's start-up would
    only turn every answer into a 500."""
    try:
        if settings.api_token_set() or insecure_dev(settings, argv):
            return
        message = (
            "refusing to start: no API tokens configured. Set LEADSCORE_API_TOKENS "
            "(comma-separated) or LEADSCORE_API_TOKENS_FILE, or run `leadscore serve "
            "--insecure-dev` on a laptop"
        )
    except (InsecureModeRefused, ValueError) as e:  # a short token, an unreadable file
        message = f"refusing to start: {e}"
    if in_worker:
        logger.error(message)
        os.kill(os.getppid(), signal.SIGTERM)
        raise RuntimeError(message)
    raise SystemExit(message)


#: Seconds a worker whose server process died gets to finish its requests and flush the log.
ORPHAN_GRACE_S = 35.0


def watch_parent(interval: float = 0.5, grace: float = ORPHAN_GRACE_S) -> threading.Thread:
    """A worker stops when the `bentoml serve` process that started it is gone.

    BentoML starts each worker in a process group of its own, so a SIGKILLed server leaves
    them serving on the shared socket, and the next `leadscore serve` on that port fails. A
    daemon thread polls the parent pid: once the worker has been re-parented it sends itself
    SIGTERM (uvicorn drains, the prediction log is flushed) and exits hard after ``grace``
    seconds if that did not end it. (Polling rather than prctl(PR_SET_PDEATHSIG): that
    signal fires when the parent *thread* that forked the worker exits, which is not the
    same thing in an arbiter with threads.)"""
    parent = os.getppid()

    def run() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        logger.error(
            "the BentoML server process (pid %d) is gone: this worker (pid %d) stops",
            parent,
            os.getpid(),
        )
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(grace)
        os._exit(1)

    thread = threading.Thread(target=run, name="leadscore-parent-watch", daemon=True)
    thread.start()
    return thread


def freeze_heap() -> None:
    """Keep what lives as long as the worker (the model, libraries, caches) out of the
    cyclic garbage collector's scans: collected once, then frozen. A full collection
    otherwise walks ~400k objects, and a 1,000-lead request allocates enough to trigger
    several; each such walk also evicts the CPU caches the next request would have used
    (a one-lead request scored right after a full collection of an unfrozen heap takes
    ~2 ms instead of ~0.9: benchmarks/single_lead.py freezes as a worker does)."""
    gc.collect()
    gc.freeze()


__all__ = [
    "ORPHAN_GRACE_S",
    "AuthGate",
    "InsecureModeRefused",
    "freeze_heap",
    "insecure_dev",
    "is_bentoml_serve",
    "listen_host",
    "refuse_without_tokens",
    "watch_parent",
]
