"""``python tests/hub_cli.py ARGS…``: the gen3c command line with GEN3C's official weights at the
tiny size — the same repositories and files, the tiny configs, and the MD5 sums of the files the
test hub serves (``$GEN3C_TEST_MD5``, JSON). The test sets HF_ENDPOINT to its local hub
(tests/hub_server.py), HF_HOME and GEN3C_CACHE_DIR to temporary folders; everything else is the
real code path."""

from __future__ import annotations

import json
import os
import sys

from hub_server import tiny_official

from gen3c.cli import main
from gen3c.models import weights

if __name__ == "__main__":
    weights.OFFICIAL = tiny_official(json.loads(os.environ["GEN3C_TEST_MD5"]))
    sys.argv[0] = "gen3c"
    sys.exit(main())
