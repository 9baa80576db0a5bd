"""Hugging Face Hub access for depth weights: local cache first, a quick reachability check,
then the download — so that being offline is a one-line error within seconds, not a minute of
retries."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from gen3c.errors import Gen3cModelError, first_line, quoted_path

CONNECT_TIMEOUT_S = 5.0


def hub_offline_reason() -> str | None:
    """Why the hub cannot be reached now (HF_HUB_OFFLINE, no DNS, no connection), or None."""
    # huggingface_hub's own switch: HF_HUB_OFFLINE, else (when it is unset or empty) TRANSFORMERS_OFFLINE.
    switch = "HF_HUB_OFFLINE" if os.environ.get("HF_HUB_OFFLINE") else "TRANSFORMERS_OFFLINE"
    if os.environ.get(switch, "").strip().lower() in ("1", "true", "yes", "on"):
        return f"{switch} is set"
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host, port = endpoint.hostname or "huggingface.co", endpoint.port or (80 if endpoint.scheme == "http" else 443)
    if os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy"):
        return None  # the proxy decides; let the download try
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
            return None
    except OSError as exc:
        return f"cannot reach {host}: {exc.strerror or type(exc).__name__}"


def hub_file(repo_id: str, filename: str, what: str) -> Path:
    """``filename`` of hub repository ``repo_id``: from the local cache, else downloaded.

    Raises:
        Gen3cModelError: with the reason (offline, not found) and the fix.
        Gen3cDependencyError: huggingface_hub is missing or broken (``gen3c[depth]``).
    """
    from gen3c.dependencies import require

    hf_hub_download = require("huggingface_hub", f"downloading {what} {quoted_path(repo_id)}", extra="depth").hf_hub_download
    try:
        return Path(hf_hub_download(repo_id=repo_id, filename=filename, local_files_only=True))
    except Exception:  # not cached: download below
        pass
    reason = hub_offline_reason()
    if reason is not None:
        raise Gen3cModelError(
            f"{what} {quoted_path(repo_id)} is not in the local Hugging Face cache and {reason}: download {filename} on a machine with internet and pass its path as --depth_estimator"
        )
    try:
        return Path(hf_hub_download(repo_id=repo_id, filename=filename))
    except Exception as exc:
        text = first_line(exc, 160)
        raise Gen3cModelError(
            f"could not download {filename} of {what} {quoted_path(repo_id)} ({type(exc).__name__}: {text}): check the id and the network, or pass a local path"
        ) from None
