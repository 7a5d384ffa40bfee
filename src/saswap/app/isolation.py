"""Keep one visitor's files away from another's: a cookie per browser (or API client) and a file owner list.

Gradio serves any file of its upload folder to whoever asks for its URL. The web app puts that folder
inside its own temporary folder and wraps the server in :class:`VisitorIsolation`, an ASGI middleware
that

- gives each visitor a random ``saswap_visitor`` cookie (HttpOnly, SameSite=Strict); browsers and
  ``gradio_client`` both send it back with every request,
- records which visitor uploaded which file (the answer of Gradio's upload route names the files),
- answers 404 to a request for a file of that folder the visitor does not own: not their upload, not
  under their results folder, not a public file (template thumbnails).

The app's handlers check with :meth:`VisitorFiles.owns` that the files they are given belong to the
visitor too, so a visitor cannot swap with a path copied from someone else's session either.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import threading
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

__all__ = ["COOKIE", "VisitorFiles", "VisitorIsolation", "visitor_token"]

#: Name of the visitor cookie.
COOKIE = "saswap_visitor"
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{32,64}$")
_FILE_ROUTE = re.compile(r"/file(?:=|/)(?P<path>.+)$")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _real(path: str | os.PathLike) -> str:
    return os.path.realpath(os.path.abspath(os.fspath(path)))


class VisitorFiles:
    """Who owns which file under the app's served folder.

    Layout under ``root`` (Gradio's upload folder): uploads where Gradio puts them; ``results/<visitor>/<job>/``
    for what the app writes for a visitor (``<visitor>`` is a hash of the cookie, never the cookie);
    ``public/`` for files every visitor may see.

    Args:
        root: the folder to guard (created if missing).
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(_real(root))
        self.public = self.root / "public"
        self.results = self.root / "results"
        for folder in (self.root, self.public, self.results):
            folder.mkdir(parents=True, exist_ok=True)
        self._uploads: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def digest(token: str) -> str:
        """The folder name of a visitor: a hash of the cookie (so a URL does not reveal it).

        Example:
            >>> len(VisitorFiles.digest("x" * 43))
            32
        """
        return hashlib.sha256(token.encode()).hexdigest()[:32]

    def results_folder(self, token: str) -> Path:
        """The visitor's results folder (not created)."""
        return self.results / self.digest(token)

    def new_job_folder(self, token: str) -> Path:
        """A new, empty folder for one job's output, inside the visitor's results folder."""
        folder = self.results_folder(token) / uuid.uuid4().hex
        folder.mkdir(parents=True)
        return folder

    def add_upload(self, token: str, path: str | os.PathLike) -> None:
        """Record that the visitor uploaded this file."""
        with self._lock:
            self._uploads.setdefault(token, set()).add(_real(path))

    def release(self, token: str) -> list[str]:
        """Forget the visitor's uploads; returns those no other visitor uploaded too (Gradio stores one copy of
        identical files), which may be removed."""
        with self._lock:
            mine = self._uploads.pop(token, set())
            others = set().union(*self._uploads.values()) if self._uploads else set()
        return sorted(mine - others)

    def guarded(self, path: str | os.PathLike) -> bool:
        """Whether the path lies in the guarded folder."""
        return _inside(_real(path), str(self.root))

    def owns(self, token: str | None, path: str | os.PathLike) -> bool:
        """Whether the visitor may read this file: their upload, their result, a public file, or a file
        outside the guarded folder (which Gradio's own rules then govern)."""
        real = _real(path)
        if not _inside(real, str(self.root)) or _inside(real, str(self.public)):
            return True
        if token is None:
            return False
        if _inside(real, str(self.results_folder(token))):
            return True
        with self._lock:
            return real in self._uploads.get(token, ())


def _cookies(headers: list[tuple[bytes, bytes]]) -> list[str]:
    return [v.decode("latin-1") for k, v in headers if k == b"cookie"]


def visitor_token(cookie_header: str | None) -> str | None:
    """The visitor token in a Cookie header, or None when absent or malformed.

    Example:
        >>> visitor_token("a=1; saswap_visitor=" + "A" * 40)
        'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'
        >>> visitor_token("saswap_visitor=short") is None
        True
    """
    for part in (cookie_header or "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE and _TOKEN.match(value):
            return value
    return None


class VisitorIsolation:
    """ASGI middleware: a visitor cookie on every response, uploads recorded, other visitors' files refused.

    Args:
        app: the ASGI app (Gradio's FastAPI app).
        files: the :class:`VisitorFiles` registry.
    """

    def __init__(self, app: Callable, files: VisitorFiles) -> None:
        self.app = app
        self.files = files

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = list(scope.get("headers", []))
        cookie_values = _cookies(headers)
        token = visitor_token("; ".join(cookie_values))
        new_token = None
        if token is None:
            token = new_token = secrets.token_urlsafe(32)
            joined = "; ".join([*cookie_values, f"{COOKIE}={token}"])
            scope = dict(scope)
            scope["headers"] = [(k, v) for k, v in headers if k != b"cookie"] + [(b"cookie", joined.encode("latin-1"))]
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return

        path = scope.get("path", "")
        match = _FILE_ROUTE.search(path)
        if match is not None and scope.get("method") in ("GET", "HEAD"):
            requested = match.group("path")
            if self.files.guarded(requested) and not (
                os.path.isfile(_real(requested)) and self.files.owns(token, requested)
            ):
                await _not_found(send, new_token)
                return

        is_upload = scope.get("method") == "POST" and path.rstrip("/").endswith("/upload")

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start" and new_token is not None:
                message = dict(message)
                message["headers"] = [*message.get("headers", []), _set_cookie(new_token)]
            await send(message)

        if not is_upload:
            await self.app(scope, receive, send_wrapper)
            return

        # Gradio's upload route answers with the list of stored paths: hold the body until it is complete,
        # record the files as the visitor's, then pass it on (so the visitor's next request finds them).
        held: list[Message] = []
        status = [200]

        async def upload_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message.get("status", 200))
                await send_wrapper(message)
                return
            if message["type"] != "http.response.body":
                await send_wrapper(message)
                return
            held.append(message)
            if message.get("more_body", False):
                return
            if status[0] == 200:
                body = b"".join(m.get("body", b"") for m in held)
                try:
                    stored = json.loads(body)
                except ValueError:
                    stored = []
                for item in stored if isinstance(stored, list) else []:
                    if isinstance(item, str):
                        self.files.add_upload(token, item)
            for m in held:
                await send(m)
            held.clear()

        await self.app(scope, receive, upload_send)


def _set_cookie(token: str) -> tuple[bytes, bytes]:
    return b"set-cookie", f"{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict".encode("latin-1")


async def _not_found(send: Send, new_token: str | None) -> None:
    body = b'{"detail":"File not found."}'
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if new_token is not None:
        headers.append(_set_cookie(new_token))
    await send({"type": "http.response.start", "status": 404, "headers": headers})
    await send({"type": "http.response.body", "body": body})
