"""``sane mcp --http``: the same server over MCP's Streamable HTTP transport.

Why HTTP beside stdio: a client that cannot spawn sane (a remote agent host, an
Inspector in a browser, several agents sharing one warm server) reaches it by URL. The
tools, progress, cancellation and resources are those of :func:`sane.mcp.server.
build_server`; only the transport differs (the SDK's session manager, served by
uvicorn).

Why loopback only and a bearer token always: every tool runs shell commands as this
user. On 127.0.0.1 any local user or any web page the user opens (DNS rebinding,
which the SDK's Host/Origin check refuses) could reach the port; the token, compared in
constant time on every request, keeps them out. A non-loopback address is refused
unless the caller says so by name (``allow_non_loopback``): plain HTTP sends the token
and every command's output in clear over the network. An ssh tunnel (``ssh -L``) to a
loopback server is the safe way to reach it from elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import os
import secrets
import signal
import socket
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from sane import errors
from sane.paths import private_dir, sane_home

if TYPE_CHECKING:
    from sane.mcp.stopping import Termination

TOKEN_ENV = "SANE_MCP_TOKEN"
MIN_TOKEN_LENGTH = 16
PATH = "/mcp"
# A token sane makes: 32 random bytes, URL-safe text (43 characters).
_GENERATED_BYTES = 32


class Address(NamedTuple):
    host: str
    port: int


def parse_address(text: str) -> Address:
    """``[HOST:]PORT`` (``[::1]:PORT`` for IPv6); the host defaults to 127.0.0.1 and
    port 0 lets the system choose a free one."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "127.0.0.1", text
    elif host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not port.isdigit() or not 0 <= int(port) <= 65535 or not host:
        raise errors.InvalidArgument(
            f"not an address to listen on: {text!r} (expected [HOST:]PORT, PORT 0-65535)",
            address=text,
        )
    return Address(host, int(port))


def is_loopback(host: str) -> bool:
    """Only literal loopback addresses and ``localhost`` (no name is looked up: a name
    that resolves to loopback today may not tomorrow)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Token(NamedTuple):
    """The bearer token and where it came from; ``generated``: sane made it just now
    (the only time it is shown)."""

    value: str
    source: str  # "env", "file" or "generated"
    path: str | None
    generated: bool


def token_path() -> Path:
    return sane_home() / "mcp" / "http-token"


def _read_private(path: Path) -> str:
    """A token file's text; refused when others may read it (as ssh refuses a key)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise errors.InvalidArgument(
            f"cannot read the token file {path}: {exc.strerror}", path=str(path)
        ) from None
    with os.fdopen(fd, "rb") as fh:
        mode = os.fstat(fh.fileno()).st_mode
        if mode & 0o077:
            raise errors.InvalidArgument(
                f"the token file {path} is readable by others (mode {mode & 0o777:o}): "
                "chmod 600 it",
                path=str(path),
            )
        return fh.read().decode("utf-8", "replace").strip()


def _checked(value: str, where: str) -> str:
    if len(value) < MIN_TOKEN_LENGTH or not value.isprintable() or " " in value:
        raise errors.InvalidArgument(
            f"the token from {where} is not usable: at least {MIN_TOKEN_LENGTH} printable "
            "characters without spaces",
            source=where,
        )
    return value


def load_token(token_file: str | None = None) -> Token:
    """The token: from ``token_file``, else ``$SANE_MCP_TOKEN``, else sane's own file
    (``$SANE_HOME/mcp/http-token``, 0600 in a 0700 directory), made on first use."""
    if token_file is not None:
        path = Path(token_file)
        return Token(_checked(_read_private(path), str(path)), "file", str(path), False)
    from_env = os.environ.get(TOKEN_ENV)
    if from_env:
        return Token(_checked(from_env, TOKEN_ENV), "env", None, False)
    path = token_path()
    if path.exists():
        return Token(_checked(_read_private(path), str(path)), "file", str(path), False)
    from sane.state import write_atomic

    private_dir(path.parent)
    value = secrets.token_urlsafe(_GENERATED_BYTES)
    write_atomic(path, value.encode() + b"\n")  # mkstemp: 0600 from the start
    return Token(value, "generated", str(path), True)


class BearerGuard:
    """ASGI middleware: every HTTP request must carry ``Authorization: Bearer <token>``,
    or it gets 401 before the MCP layer sees it (no session is made, nothing is read)."""

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self.expected = token.encode()

    def _authorized(self, scope: dict[str, Any]) -> bool | None:
        """True, False (a wrong token) or None (no bearer token at all)."""
        header = next((v for k, v in scope.get("headers", ()) if k == b"authorization"), None)
        if header is None:
            return None
        scheme, _, presented = bytes(header).partition(b" ")
        if scheme.lower() != b"bearer":
            return None
        return hmac.compare_digest(presented.strip(), self.expected)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":  # lifespan: the session manager's start and stop
            await self.app(scope, receive, send)
            return
        verdict = self._authorized(scope)
        if verdict:
            await self.app(scope, receive, send)
            return
        challenge = b'Bearer realm="sane"' + (
            b"" if verdict is None else b', error="invalid_token"'
        )
        body = json.dumps(
            {
                "error": "invalid_token",
                "error_description": (
                    "this sane mcp needs the header Authorization: Bearer <token> "
                    "(the token sane mcp --http printed, or its token file)"
                    if verdict is None
                    else "the bearer token is not this server's"
                ),
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", challenge),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def bind(address: Address, allow_non_loopback: bool = False) -> socket.socket:
    """A listening socket on ``address`` (port 0: a free port the system picks)."""
    if not is_loopback(address.host) and not allow_non_loopback:
        raise errors.InvalidArgument(
            f"sane mcp --http listens on loopback only ({address.host} is not): plain HTTP "
            "would carry the token and every command's output in clear; use an ssh tunnel "
            "(ssh -L) or, knowing that, --allow-non-loopback",
            host=address.host,
            option="--allow-non-loopback",
        )
    try:
        infos = socket.getaddrinfo(
            address.host, address.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise errors.InvalidArgument(
            f"cannot listen on {address.host}: {exc.strerror}", host=address.host
        ) from None
    family, kind, proto, _, where = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(where)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise errors.InvalidArgument(
            f"cannot listen on {address.host}:{address.port}: {exc.strerror}",
            host=address.host,
            port=address.port,
        ) from None
    sock.set_inheritable(False)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}{PATH}"


def app(server: Any, token: str, host: str) -> Any:
    """The ASGI application: the SDK's Streamable HTTP app (its Host/Origin check on
    for loopback) behind the bearer check."""
    from sane.mcp.http_answers import JsonAnswers, sessions_of

    starlette = server.streamable_http_app(
        streamable_http_path=PATH, host="127.0.0.1" if is_loopback(host) else host
    )
    return BearerGuard(JsonAnswers(starlette, sessions_of(server), PATH), token)


class _GatheredWrites:
    """A connection's transport whose writes made in one turn of the event loop go out
    as one ``write``: uvicorn writes a response's head and its body separately, two
    segments on the wire, so the client wakes twice to read one answer (and the kernel
    runs a loopback send's whole receive path twice). Everything else is the
    transport's own; ``close`` sends what is held first."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._held: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if not self._held:
            asyncio.get_running_loop().call_soon(self._flush)
        self._held.append(bytes(data))

    def writelines(self, pieces: Iterable[bytes | bytearray | memoryview]) -> None:
        for piece in pieces:
            self.write(piece)

    def _flush(self) -> None:
        if self._held:
            data = b"".join(self._held)
            self._held.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def one_write_protocol() -> type[asyncio.Protocol]:
    """The HTTP protocol uvicorn would choose, each connection's writes gathered
    (:class:`_GatheredWrites`). uvicorn chooses ``httptools`` (a C parser, a dependency
    of the ``mcp`` extra) when it is installed, else h11 (pure Python): parsing a request
    and framing its answer with h11 was a quarter of the server's CPU for a ``ping``;
    with httptools a call costs the server 0.16-0.39 ms (6-21%) less (docs/performance.md,
    "MCP server"). Without it the server still works, only slower."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    class OneWrite(AutoHTTPProtocol):  # type: ignore[misc,valid-type]
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(_GatheredWrites(transport))  # type: ignore[arg-type]

    return OneWrite


KEEP_ALIVE_S = 120
"""How long an idle kept-alive connection stays open on the server's side: longer than
clients keep theirs (the TypeScript SDK's undici 4 s, httpx 5 s, aiohttp 15 s, Go's
net/http 90 s), so the client is the one that closes it. With uvicorn's default of 5 s
the server closed connections the client still held as idle: a client that picked one
as the server closed it got "other side closed" for a POST it may not send again (the
TypeScript SDK: ``TypeError: fetch failed``, seen under load, when its timer for a 4 s
idle socket ran late). Not announced in a ``Keep-Alive`` header: a client would then keep
its connections as long, and the race would be back at that length."""


async def serve_socket(
    asgi: Any, sock: socket.socket, on_ready: Callable[[], None], termination: Termination
) -> None:
    """Serve ``asgi`` on ``sock`` until SIGINT/SIGTERM (noted by ``termination``, whose
    handlers are in place before the URL is out: a client may stop us at once), then
    return (after in-flight requests, at most 5 s): the caller still has cancelled
    calls to wind down and background deploys to let finish."""
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            # uvicorn's own would replace the deferring handlers, and re-raise the
            # signal once it has shut down, killing the process before the wind-down.
            yield

    config = uvicorn.Config(
        asgi,
        http=one_write_protocol(),
        log_level="warning",
        access_log=False,  # never a line per request (nor a header in one)
        lifespan="on",
        timeout_graceful_shutdown=5,
        timeout_keep_alive=KEEP_ALIVE_S,
    )
    server = Server(config)
    termination.on_signal = lambda: server.handle_exit(signal.SIGTERM, None)
    try:
        if termination.came is not None:
            return
        on_ready()
        await server.serve(sockets=[sock])
    finally:
        termination.on_signal = None
