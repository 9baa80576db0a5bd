"""The environment of a child Python process that must import this checkout's gen3c."""

import os
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def child_env(*first: str | os.PathLike, **variables: str) -> dict[str, str]:
    """``os.environ`` with ``first`` then SRC at the head of PYTHONPATH, and ``variables`` set.

    The caller's own PYTHONPATH stays behind them: where packages are installed that way (wheels
    unpacked onto PYTHONPATH, as on a GPU host without pip access) the child must still find them.
    """
    paths = [*map(str, first), str(SRC), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p), **variables}
