"""Rules of the repository itself that a reader of the package relies on."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Spelled in two pieces so that this file does not match itself.
FORBIDDEN = ("spec " + "§", "../" + "shared")


def test_package_docs_and_tests_cite_gen3c_files_not_private_notes():
    """Docstrings and docs name GEN3C's own files or docs/; nothing reads the team's notes."""
    offenders = []
    for folder in ("src", "tests", "docs", "benchmarks"):
        for path in (ROOT / folder).rglob("*"):
            if path.suffix not in {".py", ".md", ".txt", ".toml", ".json"} or not path.is_file():
                continue
            text = path.read_text(encoding="utf-8", errors="replace")
            offenders += [f"{path.relative_to(ROOT)}: {word!r}" for word in FORBIDDEN if word in text]
    assert not offenders, offenders
