"""A stand-in for the Hugging Face Hub on 127.0.0.1, for tests without the internet.

It answers the requests huggingface_hub makes to list a repository and fetch its files, as the
hub answers them: ``GET /api/models/{repo}/revision/{rev}`` (model info; with ``blobs`` each
file's size and, for LFS files, its sha256), ``GET /api/models/{repo}/tree/{rev}`` (the file
list ``snapshot_download`` reads), and ``HEAD``/``GET /{repo}/resolve/{rev}/{file}``
with ``X-Repo-Commit``, ``ETag`` (git blob sha1, or the sha256 for LFS files, also in
``X-Linked-Etag`` with ``X-Linked-Size``), ``Content-Length`` and ``Range`` requests. No
``X-Xet-*`` header is sent, so huggingface_hub downloads over plain HTTP.

Switches make the failures tests need: a gated repository (401/403 with ``X-Error-Code:
GatedRepo``), a file served corrupted (same length, bytes flipped) a number of times, a body cut
off after some bytes (the connection drops once), a body sent slowly, and listed sizes that are
not the real ones.
Every request is counted.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

LFS_SUFFIXES = (".pt", ".jit", ".safetensors", ".bin", ".model", ".h5")


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Request:
    method: str
    path: str
    range: str | None


@dataclass
class HubServer:
    """Serves ``repos`` ({repo id: {file name: bytes}}) until :meth:`stop`."""

    repos: dict[str, dict[str, bytes]]
    requests: list[Request] = field(default_factory=list)
    gated: dict[str, int] = field(default_factory=dict)  # repo id -> 401 or 403
    corrupt: dict[tuple[str, str], int] = field(default_factory=dict)  # (repo, file) -> times to serve it corrupted
    cut: dict[tuple[str, str], int] = field(default_factory=dict)  # (repo, file) -> drop the connection after N bytes, once
    listed_sizes: dict[tuple[str, str], int] = field(default_factory=dict)  # (repo, file) -> size the listing claims
    slow: dict[tuple[str, str], float] = field(default_factory=dict)  # (repo, file) -> seconds its whole body takes to send

    def __post_init__(self) -> None:
        self.commits = {repo: hashlib.sha1(repo.encode()).hexdigest() for repo in self.repos}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def count(self, method: str | None = None, contains: str = "") -> int:
        with self._lock:
            return sum(1 for r in self.requests if (method is None or r.method == method) and contains in r.path)

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    def log(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)


def _handler(hub: HubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet
            pass

        def do_HEAD(self) -> None:
            self._serve(body=False)

        def do_GET(self) -> None:
            self._serve(body=True)

        def _reply(self, status: int, headers: dict[str, str], payload: bytes = b"", body: bool = True) -> None:
            self.send_response(status)
            for key, value in {**headers, "Content-Length": str(len(payload))}.items():
                self.send_header(key, value)
            self.end_headers()
            if body:
                self.wfile.write(payload)

        def _error(self, status: int, code: str, message: str, commit: str | None = None, body: bool = True) -> None:
            headers = {"X-Error-Code": code, "X-Error-Message": message, "Content-Type": "application/json"}
            if commit:
                headers["X-Repo-Commit"] = commit
            self._reply(status, headers, json.dumps({"error": message}).encode(), body)

        def _serve(self, body: bool) -> None:
            path = unquote(urlsplit(self.path).path)
            hub.log(Request(self.command, path, self.headers.get("Range")))
            if path.startswith("/api/models/") and "/tree/" in path:
                repo_id, _, revision = path[len("/api/models/") :].partition("/tree/")
                return self._tree(repo_id, revision, body)
            if path.startswith("/api/models/"):
                rest = path[len("/api/models/") :]
                repo_id, _, revision = rest.partition("/revision/")
                return self._model_info(repo_id, revision or "main", body)
            parts = path.strip("/").split("/")
            if len(parts) >= 5 and parts[2] == "resolve":
                return self._file("/".join(parts[:2]), parts[3], "/".join(parts[4:]), body)
            if len(parts) >= 4 and parts[1] == "resolve":  # a repository id without an owner ("gpt2")
                return self._file(parts[0], parts[2], "/".join(parts[3:]), body)
            self._error(404, "EntryNotFound", f"no route {path}", body=body)

        def _check_repo(self, repo_id: str, revision: str, body: bool) -> bool:
            if repo_id not in hub.repos:
                self._error(404, "RepoNotFound", f"Repository Not Found for {repo_id}", body=body)
                return False
            if repo_id in hub.gated:
                self._error(hub.gated[repo_id], "GatedRepo", f"Access to model {repo_id} is restricted. You must have access to it and be authenticated to access it. Please log in.", body=body)  # fmt: skip
                return False
            if revision not in ("main", hub.commits[repo_id]):
                self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}", body=body)
                return False
            return True

        def _model_info(self, repo_id: str, revision: str, body: bool) -> None:
            if not self._check_repo(repo_id, revision, body):
                return
            siblings = []
            for name, data in sorted(hub.repos[repo_id].items()):
                size = hub.listed_sizes.get((repo_id, name), len(data))
                sibling = {"rfilename": name, "size": size, "blobId": git_blob_sha1(data)}
                if name.endswith(LFS_SUFFIXES):
                    sibling["lfs"] = {"sha256": hashlib.sha256(data).hexdigest(), "size": size, "pointerSize": 134}
                siblings.append(sibling)
            info = {"_id": repo_id, "id": repo_id, "modelId": repo_id, "sha": hub.commits[repo_id], "private": False,
                    "gated": False, "disabled": False, "tags": [], "siblings": siblings}  # fmt: skip
            self._reply(200, {"Content-Type": "application/json"}, json.dumps(info).encode(), body)

        def _tree(self, repo_id: str, revision: str, body: bool) -> None:
            """``GET /api/models/{repo}/tree/{rev}?recursive=true`` (what ``snapshot_download``
            lists): every file, one page, as the hub answers it (folders left out)."""
            if not self._check_repo(repo_id, revision, body):
                return
            entries = []
            for name, data in sorted(hub.repos[repo_id].items()):
                entry = {"type": "file", "oid": git_blob_sha1(data), "size": len(data), "path": name}
                if name.endswith(LFS_SUFFIXES):
                    entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
                entries.append(entry)
            self._reply(200, {"Content-Type": "application/json"}, json.dumps(entries).encode(), body)

        def _file(self, repo_id: str, revision: str, name: str, body: bool) -> None:
            if not self._check_repo(repo_id, revision, body):
                return
            commit = hub.commits[repo_id]
            data = hub.repos[repo_id].get(name)
            if data is None:
                return self._error(404, "EntryNotFound", f"{name} does not exist on {revision}", commit, body)
            lfs = name.endswith(LFS_SUFFIXES)
            etag = hashlib.sha256(data).hexdigest() if lfs else git_blob_sha1(data)
            headers = {"X-Repo-Commit": commit, "ETag": f'"{etag}"', "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
            if lfs:
                headers.update({"X-Linked-Etag": f'"{etag}"', "X-Linked-Size": str(len(data))})
            key = (repo_id, name)
            if body:
                with hub._lock:
                    corrupt = hub.corrupt.get(key, 0) > 0
                    if corrupt:
                        hub.corrupt[key] -= 1
                    cut = hub.cut.pop(key, None) if self.headers.get("Range") is None else None
                if corrupt:
                    middle = len(data) // 2
                    data = data[:middle] + bytes(b ^ 0xFF for b in data[middle : middle + 64]) + data[middle + 64 :]
            else:
                cut = None
            start = 0
            range_header = self.headers.get("Range")
            if range_header and range_header.startswith("bytes=") and range_header.endswith("-"):
                start = int(range_header[len("bytes=") : -1])
            if start:
                headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
                return self._reply(206, headers, data[start:], body)
            pace = hub.slow.get(key, 0.0) / max(len(data), 1) if body else 0.0  # seconds a byte
            if cut is None and not pace:
                return self._reply(200, headers, data, body)
            # Sent slowly, or the connection drops part-way: the full length is announced, only `cut` bytes come.
            self.send_response(200)
            for k, v in {**headers, "Content-Length": str(len(data))}.items():
                self.send_header(k, v)
            self.end_headers()
            self._write(data if cut is None else data[:cut], pace)
            if cut is not None:
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True

        def _write(self, data: bytes, pace: float) -> None:
            """``data`` at once, or with ``pace`` (seconds a byte) in 20 pieces."""
            step = max(len(data) // 20, 1) if pace else max(len(data), 1)
            for start in range(0, len(data), step):
                time.sleep(pace * step)
                self.wfile.write(data[start : start + step])
                self.wfile.flush()

    return Handler


# -- GEN3C's weights at the tiny size, in the official layout -----------------------------------


def official_repos(checkpoints: Path) -> dict[str, dict[str, bytes]]:
    """The hub repositories of a GEN3C checkpoints folder (``write_official_checkpoint``'s layout),
    plus files gen3c must not fetch (GEN3C's repos hold more than the conversion reads)."""
    from gen3c.models.convert import DIT_FILE, T5_DIR, TOKENIZER_DIR

    def folder(path: Path) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in sorted(path.iterdir()) if p.is_file()}

    return {
        "nvidia/Gen3C-Cosmos-7B": {DIT_FILE.name: (checkpoints / DIT_FILE).read_bytes(), "README.md": b"# GEN3C (test copy)\n"},
        "nvidia/Cosmos-Tokenize1-CV8x8x8-720p": {**folder(checkpoints / TOKENIZER_DIR), "autoencoder.jit": b"not fetched"},
        "google-t5/t5-11b": {**folder(checkpoints / T5_DIR), "tf_model.h5": b"not fetched either"},
    }


def tiny_official(md5: dict[str, str]):
    """:data:`gen3c.models.weights.GEN3C_7B` at the tiny configuration, with the served files' MD5 sums."""
    from gen3c.models import configs, weights

    base = weights.GEN3C_7B
    return replace(
        base,
        dit=replace(base.dit, md5={"model.pt": md5["model.pt"]}),
        tokenizer=replace(base.tokenizer, md5={"mean_std.pt": md5["mean_std.pt"]}),
        transformer_config=configs.TRANSFORMER_TINY,
        vae_config=configs.VAE_TINY,
        model_info={"chunk_frames": 17},  # the tiny DiT's positional embedding holds 8 latent frames
    )


def served_md5(repos: dict[str, dict[str, bytes]]) -> dict[str, str]:
    return {
        "model.pt": hashlib.md5(repos["nvidia/Gen3C-Cosmos-7B"]["model.pt"]).hexdigest(),
        "mean_std.pt": hashlib.md5(repos["nvidia/Cosmos-Tokenize1-CV8x8x8-720p"]["mean_std.pt"]).hexdigest(),
    }
