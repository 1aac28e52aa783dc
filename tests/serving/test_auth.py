"""BearerTokenMiddleware and token loading, against a tiny ASGI app."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from serving.auth import BearerTokenMiddleware, load_tokens, parse_tokens_file

TOKEN = "tok-0123456789abcdef"
OTHER = "tok-fedcba9876543210"
ERROR = {"error": "missing or invalid bearer token", "field": "Authorization"}


async def tiny_app(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 1000})
        return
    body = f"ok {scope['path']}".encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    await send({"type": "http.response.body", "body": body})


class Client:
    """A synchronous wrapper over httpx.ASGITransport (no server, no TestClient)."""

    def __init__(self, app) -> None:
        self.app = app

    def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                return await c.request(method, path, **kwargs)

        return asyncio.run(go())

    def get(self, path: str, **kwargs) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs) -> httpx.Response:
        return self.request("POST", path, **kwargs)


@pytest.fixture
def client() -> Client:
    return Client(BearerTokenMiddleware(tiny_app, tokens=frozenset({TOKEN, OTHER})))


def run_asgi(app, scope: dict, incoming: list[dict]) -> list[dict]:
    """Drive an ASGI app by hand; returns what it sent."""
    sent: list[dict] = []
    queue = list(incoming)

    async def receive() -> dict:
        return queue.pop(0) if queue else {"type": "websocket.disconnect", "code": 1000}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def assert_401(resp: httpx.Response) -> None:
    assert resp.status_code == 401
    assert resp.json() == ERROR
    assert resp.headers["www-authenticate"] == "Bearer"
    assert resp.headers["content-type"] == "application/json"


def test_missing_token_is_401(client: Client) -> None:
    assert_401(client.post("/score", json={"lead_id": "L1"}))
    assert_401(client.get("/"))


@pytest.mark.parametrize(
    "header",
    [
        "Bearer wrong-token-0000000000",
        f"Bearer {TOKEN}x",
        f"Bearer {TOKEN[:-1]}",
        f"Basic {TOKEN}",
        TOKEN,
        "Bearer ",
        "Bearer",
        "",
    ],
)
def test_wrong_token_is_401(client: Client, header: str) -> None:
    assert_401(client.post("/score", headers={"Authorization": header}))


def test_right_token_passes(client: Client) -> None:
    for tok in (TOKEN, OTHER):
        resp = client.post("/score", headers={"Authorization": f"Bearer {tok}"})
        assert resp.status_code == 200 and resp.text == "ok /score"
    resp = client.get("/score", headers={"Authorization": f"bearer   {TOKEN}  "})
    assert resp.status_code == 200


def test_two_authorization_headers_are_refused(client: Client) -> None:
    headers = [("Authorization", f"Bearer {TOKEN}"), ("Authorization", "Bearer nope")]
    assert_401(client.get("/score", headers=headers))


@pytest.mark.parametrize(
    "path", ["/livez", "/readyz", "/healthz", "/metrics", "/docs.json", "/metrics/"]
)
def test_open_paths_need_no_token(client: Client, path: str) -> None:
    resp = client.get(path)
    assert resp.status_code == 200 and resp.text == f"ok {path}"


def test_open_paths_are_exact(client: Client) -> None:
    assert_401(client.get("/livez-extra"))
    assert_401(client.get("/metrics/../score"))
    assert_401(client.get("/docs"))


def test_custom_open_paths() -> None:
    c = Client(BearerTokenMiddleware(tiny_app, tokens={TOKEN}, open_paths=("/public",)))
    assert c.get("/public").status_code == 200
    assert_401(c.get("/livez"))


def test_lifespan_passes_through() -> None:
    app = BearerTokenMiddleware(tiny_app, tokens={TOKEN})
    sent = run_asgi(
        app, {"type": "lifespan"}, [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    )
    assert [m["type"] for m in sent] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]


def test_websocket_needs_a_token_too() -> None:
    app = BearerTokenMiddleware(tiny_app, tokens={TOKEN})
    scope = {"type": "websocket", "path": "/ws", "headers": []}
    connect = [{"type": "websocket.connect"}]
    assert run_asgi(app, scope, connect) == [{"type": "websocket.close", "code": 1008}]
    scope["headers"] = [(b"authorization", f"Bearer {TOKEN}".encode())]
    assert run_asgi(app, scope, connect)[0] == {"type": "websocket.accept"}


def test_no_tokens_is_refused() -> None:
    with pytest.raises(ValueError, match="LEADSCORE_API_TOKENS"):
        BearerTokenMiddleware(tiny_app, tokens=frozenset())


# ----------------------------------------------------------------- token loading


def test_load_tokens_from_env() -> None:
    env = {"LEADSCORE_API_TOKENS": f" {TOKEN} ,, {OTHER},  ,"}
    assert load_tokens(env) == frozenset({TOKEN, OTHER})
    assert load_tokens({}) == frozenset()
    assert load_tokens({"LEADSCORE_API_TOKENS": " , "}) == frozenset()


def test_load_tokens_from_file(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text(
        f"# production tokens\n\n  {TOKEN}  \n{OTHER} # the CRM\n   # indented comment\n"
    )
    env = {"LEADSCORE_API_TOKENS_FILE": str(path)}
    assert load_tokens(env) == frozenset({TOKEN, OTHER})
    both = {**env, "LEADSCORE_API_TOKENS": "tok-from-env-000000000"}
    assert load_tokens(both) == frozenset({TOKEN, OTHER, "tok-from-env-000000000"})


def test_load_tokens_errors_never_echo_the_token(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read"):
        load_tokens({"LEADSCORE_API_TOKENS_FILE": str(tmp_path / "missing")})
    with pytest.raises(ValueError, match="token #2") as err:
        parse_tokens_file(f"{TOKEN}\nsecret with-space-123456\n")
    assert "secret" not in str(err.value)
    with pytest.raises(ValueError):
        load_tokens({"LEADSCORE_API_TOKENS": "tökén-0123456789abcdef"})


def test_short_token_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    for short in ("abc", "x" * 15):
        with pytest.raises(ValueError, match="token #2 is shorter than 16 characters") as err:
            load_tokens({"LEADSCORE_API_TOKENS": f"{TOKEN},{short}"})
        assert short not in str(err.value).replace("shorter", "")
    path = tmp_path / "tokens"
    path.write_text(f"{TOKEN}\nabc\n")
    with pytest.raises(ValueError, match="token #2 is shorter than 16"):
        load_tokens({"LEADSCORE_API_TOKENS_FILE": str(path)})
    assert load_tokens({"LEADSCORE_API_TOKENS": "x" * 16}) == frozenset({"x" * 16})
