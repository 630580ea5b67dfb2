"""Files are named by integer ids or server-made names, never by client paths; downloads name themselves safely."""

from __future__ import annotations

import io
import socket
import threading
import time
import zipfile
from pathlib import PurePosixPath

import pytest
import uvicorn
from fastapi.routing import APIRoute

from app.main import create_app
from tests.factories import add_class, label, png_bytes

# Path parameters that are names, not ids; none of them reaches the file system.
NAMED_PARAMS = {("/api/tags/{name}/retire", "name"), ("/quality/actions/{action}", "action")}
LEAKS = (b"root:x:", b"class Settings", b"SQLite format", b"[build-system]")
TRAVERSALS = [
    "/api/images/..%2f..%2fetc%2fpasswd/file",
    "/api/images/..%2F..%2F..%2Fapp%2Fconfig.py/file",
    "/api/images/%2e%2e%2f%2e%2e%2fetc%2fpasswd/thumb",
    "/api/images/1/..%2f..%2f..%2fapp%2fconfig.py",
    "/api/images/1%2f..%2f..%2fetc%2fpasswd/file",
    "/api/jobs/..%2f..%2floupe.db/model",
    "/api/snapshots/..%2f..%2fpyproject.toml/export",
    "/static/../app/config.py",
    "/static/..%2fapp%2fconfig.py",
    "/static/%2e%2e/app/config.py",
    "/static/%2e%2e%2fapp%2fconfig.py",
    "/static/..%5capp%5cconfig.py",
    "/static/....//app/config.py",
    "/static//etc/passwd",
    "/static/%2fetc%2fpasswd",
    "/static/" + "..%2f" * 12 + "etc%2fpasswd",
    "/static/js/../../pyproject.toml",
]


def test_every_path_parameter_is_an_integer_id_or_a_known_name(settings):
    app = create_app(settings)
    for route in app.routes:
        if not isinstance(route, APIRoute):
            continue
        for param in route.dependant.path_params:
            if (route.path, param.name) in NAMED_PARAMS:
                continue
            assert param.field_info.annotation is int, f"{route.path}: {param.name} is not an integer id"
            bounds = {type(m).__name__ for m in param.field_info.metadata}
            assert {"Ge", "Le"} <= bounds, f"{route.path}: {param.name} has no range (ids fit the database)"


@pytest.fixture
def served(settings):
    """The app behind a real uvicorn on a free port: raw request targets reach it unnormalised."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    yield port
    server.should_exit = True
    thread.join(timeout=10)


def _raw_get(port: int, target: str) -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def test_traversal_attempts_get_4xx_and_never_file_contents(served):
    status, body = _raw_get(served, "/static/js/app.js")
    assert status == 200 and b"loupe" in body  # the same request path works for a real static file
    for target in TRAVERSALS:
        status, body = _raw_get(served, target)
        assert status in (400, 404, 422), (target, status)
        assert not any(leak in body for leak in LEAKS), target


def test_downloads_name_themselves_without_header_injection(client, tmp_path):
    name = 'evil";\r\nX-Injected: yes\r\n\\.png'
    r = client.post("/api/images", data={"source": "s"}, files=[("files", (name, png_bytes(0), "image/png"))])
    (item,) = r.json()["imported"]
    r = client.get(f"/api/images/{item['id']}/file")
    assert r.status_code == 200 and "x-injected" not in r.headers
    disposition = r.headers["content-disposition"]
    assert disposition.startswith("inline; filename")
    assert "\r" not in disposition and "\n" not in disposition and disposition.count('"') in (0, 2)

    add_class(client, "shirt")
    label(client, item["id"], "shirt")
    add_class(client, "coat")
    other = client.post("/api/images", data={"source": "s"},
                        files=[("files", ("b.png", png_bytes(1), "image/png"))]).json()["imported"][0]["id"]
    label(client, other, "coat")
    snap = client.post("/api/snapshots", json={"name": 'rel"ease\\ 1;\tx=y', "split": {"val": 0.0, "folds": 2}})
    assert snap.status_code == 201, snap.text
    for fmt in ("csv", "jsonl", "imagefolder"):
        r = client.get(f"/api/snapshots/{snap.json()['id']}/export", params={"format": fmt})
        assert r.status_code == 200, r.text
        disposition = r.headers["content-disposition"]
        assert disposition.count('"') == 2 and ";" not in disposition.split("filename=")[1], disposition
    entries = zipfile.ZipFile(io.BytesIO(r.content)).namelist()
    assert entries and all(not PurePosixPath(e).is_absolute() and ".." not in PurePosixPath(e).parts
                           for e in entries), entries
