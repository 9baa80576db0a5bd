"""Rules of the repository itself that a reader of the package relies on."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Spelled in pieces so that this file does not match itself: a section sign after "spec" (however
# punctuated) and the path of the team's notes folder.
FORBIDDEN = re.compile(r"\bspec\W{0,3}" + "§" + "|" + re.escape("../" + "shared"))


def test_package_docs_and_tests_cite_gen3c_files_not_private_notes():
    """Docstrings and docs name GEN3C's own files or docs/; nothing reads the team's notes."""
    offenders = []
    paths = [ROOT / "README.md"]
    for folder in ("src", "tests", "docs", "benchmarks", "scripts"):
        paths += (ROOT / folder).rglob("*")
    for path in paths:
        if path.suffix not in {".py", ".md", ".txt", ".toml", ".json"} or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        offenders += [f"{path.relative_to(ROOT)}: {m.group(0)!r}" for m in FORBIDDEN.finditer(text)]
    assert not offenders, offenders
