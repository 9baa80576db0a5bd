"""sha256 of files, read in chunks so a multi-GB weight file is never held in memory whole.

One loop for every file gen3c hashes: a checkpoint's files against ``checksums.json``
(:mod:`gen3c.models.verify`), fetched weights against the hub's sha256 and GEN3C's MD5, a LoRA
adapter's weights, a run's input files and a batch job's outputs.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import Any

#: Bytes read at a time.
CHUNK_BYTES = 8 << 20


def update_from_file(digest: Any, path: str | os.PathLike, progress: Callable[[int], None] | None = None) -> None:
    """Feed the bytes of the file ``path`` to ``digest`` (a :mod:`hashlib` object, or a tuple of
    them: one read for several sums), a chunk at a time; ``progress(n)`` is called after each chunk
    of ``n`` bytes (they sum to the file's size)."""
    digests = digest if isinstance(digest, tuple) else (digest,)
    with open(path, "rb") as handle:
        while block := handle.read(CHUNK_BYTES):
            for each in digests:
                each.update(block)
            if progress is not None:
                progress(len(block))


def sha256_file(path: str | os.PathLike, progress: Callable[[int], None] | None = None) -> str:
    """The sha256 of the file ``path``, as ``sha256sum`` prints it; ``progress``: see :func:`update_from_file`."""
    digest = hashlib.sha256()
    update_from_file(digest, path, progress)
    return digest.hexdigest()
