"""GEN3C's weights in one call (gen3c.models.weights), against a local stand-in for the Hugging
Face Hub (tests/hub_server.py) serving a tiny checkpoint in GEN3C's official layout: official
key names, TorchScript tokenizer, mean_std.pt, a T5 folder. huggingface_hub really downloads
from it (its endpoint is the local server); every request is counted."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

pytest.importorskip("diffusers")
pytest.importorskip("huggingface_hub")

from child_env import child_env
from hub_server import HubServer, Request, official_repos, served_md5, tiny_official  # noqa: E402
from test_convert import TINY, write_official_checkpoint  # noqa: E402
from tiny_model import tiny_components  # noqa: E402

from gen3c.errors import Gen3cInputError, Gen3cModelError  # noqa: E402
from gen3c.models import weights  # noqa: E402
from gen3c.models.convert import T5_DIR, convert_checkpoint  # noqa: E402
from gen3c.models.verify import verify_checksums  # noqa: E402

DIT = "nvidia/Gen3C-Cosmos-7B"
TOKENIZER = "nvidia/Cosmos-Tokenize1-CV8x8x8-720p"
T5 = "google-t5/t5-11b"
TESTS = Path(__file__).parent


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    """(GEN3C's checkpoints folder at the tiny size, its hub repositories, the matching OfficialWeights)."""
    root = tmp_path_factory.mktemp("official")
    write_official_checkpoint(root, tiny_components(seed=3))
    repos = official_repos(root)
    return root, repos, tiny_official(served_md5(repos))


@pytest.fixture(scope="module")
def reference(official, tmp_path_factory):
    """What `gen3c convert` makes of the same checkpoints folder."""
    out = tmp_path_factory.mktemp("reference") / "converted"
    convert_checkpoint(official[0], out, **TINY)
    return out


@pytest.fixture
def hub(official):
    server = HubServer(official[1])
    yield server
    server.stop()


def let_go_of_what_this_process_reads() -> None:
    """Release the holds this process took on what it prepared (weights.hold_for_reading), as its end does."""
    with weights._READING_GUARD:
        for fd in weights._READING.values():
            os.close(fd)
        weights._READING.clear()


@pytest.fixture(autouse=True)
def _holds_end_with_the_test():
    yield
    let_go_of_what_this_process_reads()


def prepare(hub, official, folder: Path, **kwargs) -> weights.PreparedWeights:
    kwargs.setdefault("log", None)
    return weights.prepare_weights(
        weights=official[2], cache_dir=folder / "cache", hub_cache_dir=folder / "hub", endpoint=hub.url, **kwargs
    )


def fetched(hub) -> list[str]:
    """Repository/file of every file downloaded (GET of a resolve URL)."""
    return [r.path.split("/resolve/")[0].strip("/") + "/" + r.path.rsplit("/", 1)[1] for r in hub.requests
            if r.method == "GET" and "/resolve/" in r.path]  # fmt: skip


def state(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return {k: v for f in sorted(folder.glob("*.safetensors")) for k, v in load_file(f).items()}


def leftovers(folder: Path) -> list[str]:
    return [p.name for p in (folder / "cache").glob(weights.TEMP_PREFIX + "*")]


# -- first run, second run ---------------------------------------------------------------------


def test_first_run_fetches_checks_and_converts_then_reuses_without_a_request(hub, official, reference, tmp_path):
    first = prepare(hub, official, tmp_path)
    assert first.converted and first.has_prompt_cache and first.text_encoder is None
    assert sorted(fetched(hub)) == sorted(
        [f"{DIT}/model.pt", f"{TOKENIZER}/encoder.jit", f"{TOKENIZER}/decoder.jit", f"{TOKENIZER}/mean_std.pt"]
        + [f"{T5}/{name}" for name in ("config.json", "tokenizer.json", "model.safetensors", "tokenizer_config.json")]
    )  # GEN3C's README, autoencoder.jit, tf_model.h5 are not needed, so not fetched
    assert hub.count("GET", "/api/models/") == 3  # one listing per repository: sizes and hashes
    assert first.fetch_bytes == sum(len(official[1][r][f]) for r, f in (name.rsplit("/", 1) for name in fetched(hub)))
    # The same checkpoint `gen3c convert` makes, minus T5 (loaded from the hub cache when needed).
    for component in ("transformer", "vae", "prompt_cache"):
        got, want = state(first.checkpoint / component), state(reference / component)
        assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)
    assert not (first.checkpoint / "text_encoder").exists()
    assert verify_checksums(first.checkpoint) > 5  # the manifest included
    assert weights.read_manifest(first.checkpoint)[0]["sources"].keys() == {DIT, TOKENIZER, T5}

    hub.clear()
    second = prepare(hub, official, tmp_path)
    assert hub.count() == 0 and second.checkpoint == first.checkpoint and not second.converted


def test_the_conversion_says_counts_and_the_folder_it_makes_not_every_key(hub, official, tmp_path):
    """The first run said the converter's key-by-key report (a thousand lines at GEN3C's size,
    kept in conversion_report.txt anyway) and ended "done: CACHE/.incomplete-…/…", a temporary
    folder gone once the run ended."""
    lines: list[str] = []
    prepared = prepare(hub, official, tmp_path, log=lines.append)
    kept = (prepared.checkpoint / "conversion_report.txt").read_text().splitlines()
    counts = [f"{head.split()[1]}: {line.strip()}" for head, line in zip(
        [h for h in kept if h.startswith("== ")], [c for c in kept if c.strip().endswith(" mismatched")], strict=False)]  # fmt: skip
    assert [h.split()[1] for h in kept if h.startswith("== ")] == ["transformer", "vae", "text_encoder"]
    assert [line for line in lines if line.endswith(" mismatched")] == counts[:2]  # T5 maps no key: what was loaded
    t5 = next(line.strip() for line in kept if line.strip().startswith("note: T5 encoder loaded with transformers ("))
    assert f"text_encoder: {t5.removeprefix('note: ')}" in lines, lines
    assert not any(" -> " in line or weights.TEMP_PREFIX in line for line in lines), lines
    assert f"done: {prepared.checkpoint}" in lines and f"(key by key in {prepared.checkpoint / 'conversion_report.txt'})" in lines


def test_the_report_says_where_runs_find_t5_left_out_of_the_cache(hub, official, tmp_path):
    """The cached conversion's report said "T5 left out of the output: only the cached prompts can
    be used", while a run with another prompt loads T5 from the hub cache (the next test)."""
    prepared = prepare(hub, official, tmp_path)
    notes = [line.strip() for line in (prepared.checkpoint / "conversion_report.txt").read_text().splitlines() if "T5 left out" in line]
    assert notes == [f"note: T5 left out of the output: other prompts load it from the Hugging Face cache ({T5}, fetched again if removed)"]


def test_a_prompt_outside_the_cache_uses_t5_from_the_hub_cache_without_a_request(hub, official, tmp_path):
    from transformers import AutoTokenizer, T5EncoderModel

    from gen3c.pipelines.loading import load_pipeline

    prepare(hub, official, tmp_path)
    hub.clear()
    prepared = prepare(hub, official, tmp_path, prompts=("a red ball", ""))
    assert hub.count() == 0 and prepared.text_encoder is not None and (prepared.text_encoder / "model.safetensors").exists()
    pipe = load_pipeline(prepared.checkpoint, dtype=torch.float32, text_encoder_dir=prepared.text_encoder)
    got = pipe.encode_prompt("a red ball")
    t5_dir = official[0] / T5_DIR
    tok, enc = AutoTokenizer.from_pretrained(t5_dir), T5EncoderModel.from_pretrained(t5_dir, dtype=torch.float32)
    ids = tok(["a red ball"], padding="max_length", max_length=512, truncation=True, return_tensors="pt")
    want = enc(input_ids=ids.input_ids, attention_mask=ids.attention_mask).last_hidden_state * ids.attention_mask[..., None]
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)  # the same T5, the same numbers up to float32 rounding


def test_without_the_prompt_encoder_t5_waits_until_a_prompt_needs_it(hub, official, reference, tmp_path):
    bare = prepare(hub, official, tmp_path, prompts=())
    assert not bare.has_prompt_cache and not any(name.startswith(T5) for name in fetched(hub))
    assert json.loads((bare.checkpoint / "model_index.json").read_text())["prompt_cache"] == [None, None]
    dit_file = next((bare.checkpoint / "transformer").glob("*.safetensors"))
    before = dit_file.stat()

    hub.clear()
    full = prepare(hub, official, tmp_path)  # the empty prompt: the prompt cache is made now
    assert full.has_prompt_cache and not full.converted
    assert fetched(hub) and all(name.startswith(T5) for name in fetched(hub))
    after = dit_file.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # not converted again
    got, want = state(full.checkpoint / "prompt_cache"), state(reference / "prompt_cache")
    assert all(torch.equal(got[k], want[k]) for k in want)
    assert verify_checksums(full.checkpoint) and weights.read_manifest(full.checkpoint)[1] is None
    index = json.loads((full.checkpoint / "model_index.json").read_text())
    assert index["prompt_cache"] == ["gen3c.models.prompt_cache", "PromptEmbeddingCache"]


def test_a_run_stopped_while_adding_the_prompt_cache_keeps_the_checkpoint(hub, official, tmp_path, monkeypatch):
    """Stopped after the new model_index.json and before the manifest, the checkpoint read as
    damaged and the whole DiT was converted again (with the 7B DiT: fetched again too once its
    download was removed); now the old checkpoint is whole until the new one replaces it."""
    bare = prepare(hub, official, tmp_path, prompts=())
    dit_file = next((bare.checkpoint / "transformer").glob("*.safetensors"))
    before = dit_file.stat()

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(weights, "_write_manifest", stopped)
        with pytest.raises(KeyboardInterrupt):
            prepare(hub, official, tmp_path)
    manifest, problem = weights.read_manifest(bare.checkpoint)
    assert problem is None and not manifest["prompt_cache"] and verify_checksums(bare.checkpoint)
    assert json.loads((bare.checkpoint / "model_index.json").read_text())["prompt_cache"] == [None, None]

    full = prepare(hub, official, tmp_path)
    assert full.has_prompt_cache and not full.converted and not leftovers(tmp_path)
    after = dit_file.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # not converted again
    assert verify_checksums(full.checkpoint) and weights.read_manifest(full.checkpoint)[0]["prompt_cache"]


def test_adding_the_prompt_cache_without_hard_links_checks_the_room_for_the_copy(hub, official, tmp_path, monkeypatch):
    """Where the file system has no hard links, adding the prompt cache copies the whole checkpoint
    (~15 GB at GEN3C's size), and no disk check counted it: the disk filled up half-way."""
    bare = prepare(hub, official, tmp_path, prompts=())
    weights.prepare_weights(weights=official[2], cache_dir=tmp_path / "other", hub_cache_dir=tmp_path / "hub", endpoint=hub.url, log=None)
    size = sum(weights.read_manifest(bare.checkpoint)[0]["files"].values())  # T5 is in the hub cache now: nothing to fetch

    def no_links(src, dst, **kwargs):
        raise PermissionError(1, "Operation not permitted")  # as Linux says it on vfat/exFAT

    monkeypatch.setattr(os, "link", no_links)
    # The dry run said the disk had room (it skipped the hard-link check) and the run then refused.
    for dry_run in (True, False):
        with monkeypatch.context() as patch:
            patch.setattr(weights.shutil, "disk_usage", lambda _path: type("usage", (), {"free": size})())
            with pytest.raises(Gen3cModelError) as err:
                prepare(hub, official, tmp_path, dry_run=dry_run)
        assert str(err.value).startswith(
            f"not enough free disk space in {str(tmp_path / 'cache')!r}: {weights.format_bytes(size + weights.DISK_RESERVE_BYTES)} needed "
            f"({weights.format_bytes(size)} to copy {bare.checkpoint.name} (its file system has no hard links) + "
        ), str(err.value)
        assert not weights.read_manifest(bare.checkpoint)[0]["prompt_cache"] and not leftovers(tmp_path)
    planned = prepare(hub, official, tmp_path, dry_run=True)  # with the room: the copy is counted
    assert planned.added_prompt_cache and planned.copy_bytes == size and not leftovers(tmp_path)
    full = prepare(hub, official, tmp_path)  # with the room: copied
    assert full.has_prompt_cache and verify_checksums(full.checkpoint) and not leftovers(tmp_path)


def test_adding_the_prompt_cache_flushes_the_new_checkpoint_before_the_swap(hub, official, tmp_path, monkeypatch):
    """Runs that reuse the checkpoint take no lock. The swap moved it aside and then flushed the
    new one to the disk (with no hard links, a copied 15 GB) before renaming it into place: for
    all that time the checkpoint was missing to them. Now nothing is flushed for the first time
    while it is missing."""
    import gen3c.io.atomic as atomic

    bare = prepare(hub, official, tmp_path, prompts=())
    real, flushes = atomic._fsync, []

    def spy(path, *args, **kwargs):
        parts = Path(path).parts
        at = next((n for n, part in enumerate(parts) if part.startswith(weights.TEMP_PREFIX)), None)
        if at is not None and len(parts) > at + 2:  # a file or folder in the new checkpoint, named from inside it
            flushes.append(("/".join(parts[at + 2 :]), bare.checkpoint.exists()))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(atomic, "_fsync", spy)
    assert prepare(hub, official, tmp_path).has_prompt_cache and flushes
    assert [name for name, there in flushes if not there and (name, True) not in flushes] == []
    assert verify_checksums(bare.checkpoint) and weights.read_manifest(bare.checkpoint)[0]["prompt_cache"] and not leftovers(tmp_path)


# -- what goes wrong ---------------------------------------------------------------------------


def test_a_dropped_connection_resumes_where_it_stopped(official, tmp_path):
    import io

    # huggingface_hub writes in 10 MB chunks: a model.pt of 24 MB (padded with a training counter
    # the conversion drops) lets the connection drop after a written chunk, as in a real 14 GB file.
    state = torch.load(official[0] / "Gen3C-Cosmos-7B" / "model.pt", weights_only=True)
    state["model"]["net.accum_padding"] = torch.zeros(6_000_000)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    repos = {**official[1], DIT: {**official[1][DIT], "model.pt": buffer.getvalue()}}
    size = len(repos[DIT]["model.pt"])
    hub = HubServer(repos)
    try:
        hub.cut[(DIT, "model.pt")] = size * 2 // 3
        prepared = prepare(hub, (official[0], repos, tiny_official(served_md5(repos))), tmp_path, prompts=())
    finally:
        hub.stop()
    gets = [r.range for r in hub.requests if r.method == "GET" and r.path.endswith("/model.pt")]
    assert len(gets) == 2 and gets[0] is None and gets[1].startswith("bytes=")
    resumed_at = int(gets[1][len("bytes=") : -1])
    assert 0 < resumed_at <= size * 2 // 3  # the rest only, not the whole file again
    assert prepared.converted and weights.read_manifest(prepared.checkpoint)[1] is None


PROGRESS = re.compile(r"fetching (\S+): (.+) of (.+) \((\d+) %\), (.+)")


def slow_fetch(hub, official, monkeypatch, stderr_is_a_terminal: bool, seconds: float = 2.0) -> None:
    """model.pt served over ``seconds``; huggingface_hub writing it in small chunks (as its 10 MB
    ones of a real 14 GB file), gen3c's progress lines every 0.1 s, and stderr a terminal or not."""
    import io

    import huggingface_hub.constants as hub_constants

    class Stderr(io.StringIO):
        def isatty(self) -> bool:
            return stderr_is_a_terminal

    monkeypatch.setattr(sys, "stderr", Stderr())
    monkeypatch.setattr(weights, "PROGRESS_EVERY", 0.1)
    monkeypatch.setattr(hub_constants, "DOWNLOAD_CHUNK_SIZE", max(len(official[1][DIT]["model.pt"]) // 50, 1024))
    hub.slow[(DIT, "model.pt")] = seconds


def progress_threads() -> list[str]:
    import threading

    return [t.name for t in threading.enumerate() if t.name == "gen3c-fetch-progress"]


def wait_until(condition, seconds: float = 60.0) -> bool:
    """Whether ``condition()`` came true within ``seconds`` (polled): a thread's effect awaited on a
    loaded machine without guessing how long it takes."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_a_fetch_logged_to_a_file_says_how_far_it_got_until_it_ends(hub, official, tmp_path, monkeypatch):
    """With stderr not a terminal (a log file, CI, nohup), where huggingface_hub draws no bars, a
    fetch said "fetching REPO (rev): files (size)" and then nothing until it ended, minutes later
    for GEN3C's 30 GB: a slow fetch could not be told from a hung one."""
    slow_fetch(hub, official, monkeypatch, stderr_is_a_terminal=False)
    lines: list[str] = []
    prepare(hub, official, tmp_path, prompts=(), log=lines.append)
    progress = [(i, PROGRESS.fullmatch(line)) for i, line in enumerate(lines) if PROGRESS.fullmatch(line)]
    assert len(progress) >= 5 and {m[1] for _, m in progress} == {DIT}, lines
    size = len(official[1][DIT]["model.pt"])
    assert {m[3] for _, m in progress} == {weights.format_bytes(size)}
    percents = [int(m[4]) for _, m in progress]
    assert percents == sorted(percents) and len(set(percents)) >= 3 and percents[-1] <= 100, lines
    assert any(re.fullmatch(r".+/s, ~1 min left", m[5]) for _, m in progress), lines
    # Said between the fetch's first line and the next repository's, none after.
    start = lines.index(next(line for line in lines if line.startswith(f"fetching {DIT} (")))
    end = lines.index(next(line for line in lines if line.startswith(f"fetching {TOKENIZER} (")))
    assert all(start < i < end for i, _ in progress), lines
    assert not progress_threads()


def test_the_progress_of_a_fetch_counts_no_partial_file_of_another_blob(hub, official, tmp_path, monkeypatch):
    """The progress lines added every blobs/*.incomplete of the repository to what was done: another
    process's partial file of another blob (or a stale one) made the fetch read 100 % from its
    first line. Only the partial file of the blob being fetched (named by its sha256) counts now."""
    import fcntl
    import hashlib

    slow_fetch(hub, official, monkeypatch, stderr_is_a_terminal=False, seconds=1.0)
    data = official[1][DIT]["model.pt"]
    folder = tmp_path / "hub" / f"models--{DIT.replace('/', '--')}"
    (folder / "blobs").mkdir(parents=True)
    (folder / ".." / ".locks" / folder.name).mkdir(parents=True)
    other = "f" * 64
    assert other != hashlib.sha256(data).hexdigest()
    partial = folder / "blobs" / f"{other}.0badf00d.incomplete"
    partial.write_bytes(b"x" * len(data))  # as large as model.pt: every line said 100 %
    lock = tmp_path / "hub" / ".locks" / folder.name / f"{other}.lock"
    lock.write_bytes(b"")
    with open(lock, "rb") as held:  # another process fetching that blob: its partial file is kept
        fcntl.flock(held, fcntl.LOCK_EX)
        lines: list[str] = []
        prepare(hub, official, tmp_path, prompts=(), log=lines.append)
    percents = [int(m[4]) for m in map(PROGRESS.fullmatch, lines) if m]
    assert len(percents) >= 3 and percents[0] < 50 and percents == sorted(percents), lines
    assert partial.stat().st_size == len(data)


def test_the_progress_of_a_fetch_counts_the_partial_file_of_a_file_kept_in_git(hub, official, tmp_path, monkeypatch):
    """A file the hub keeps in git, not LFS, has no sha256: its partial file (named by git's blob id)
    went uncounted, so a slow fetch of one said "0 B of … (0 %), nothing new for N s", as a stalled
    one does, until it ended. Its blob id finds it now, as an LFS file's sha256 does."""
    import hub_server

    monkeypatch.setattr(hub_server, "LFS_SUFFIXES", tuple(s for s in hub_server.LFS_SUFFIXES if s != ".pt"))  # model.pt kept in git
    slow_fetch(hub, official, monkeypatch, stderr_is_a_terminal=False)
    lines: list[str] = []
    prepare(hub, official, tmp_path, prompts=(), log=lines.append)
    percents = [int(m[4]) for m in map(PROGRESS.fullmatch, lines) if m and m[1] == DIT]
    assert len(set(percents)) >= 3 and percents == sorted(percents), lines


def test_a_failed_fetch_says_no_progress_after_it_fails(hub, official, tmp_path, monkeypatch):
    """The progress lines stop with the fetch: none after gen3c's error, none left to come."""
    from types import SimpleNamespace

    import huggingface_hub.file_download as hub_download
    import huggingface_hub.utils._http as hub_http

    slow_fetch(hub, official, monkeypatch, stderr_is_a_terminal=False, seconds=2.0)
    for module in (hub_download, hub_http):
        monkeypatch.setattr(module, "time", SimpleNamespace(sleep=lambda _s: None))  # the hub's retries, without their waits
    hub.cut[(DIT, "model.pt")] = len(official[1][DIT]["model.pt"]) // 2  # the connection drops half-way, and the hub then
    answer(hub, 503, {"X-Error-Message": "Service Unavailable"}, lambda h: h.headers.get("Range") is not None)  # refuses the rest
    lines: list[str] = []
    with pytest.raises(Gen3cModelError, match="answered HTTP 503"):
        prepare(hub, official, tmp_path, prompts=(), log=lines.append)
    assert any(PROGRESS.fullmatch(line) for line in lines), lines
    assert not progress_threads()  # (joined as the fetch failed: no line can come after it)


def test_a_fetch_on_a_terminal_leaves_progress_to_the_hubs_bars(hub, official, tmp_path, monkeypatch):
    slow_fetch(hub, official, monkeypatch, stderr_is_a_terminal=True, seconds=1.0)
    lines: list[str] = []
    prepare(hub, official, tmp_path, prompts=(), log=lines.append)
    assert any(line.startswith(f"fetching {DIT} (") for line in lines) and not [line for line in lines if PROGRESS.fullmatch(line)], lines


def test_a_stalled_fetch_says_for_how_long_nothing_came(tmp_path, monkeypatch):
    """A hung fetch reads as one in a log: no speed, no time left, but how long nothing came."""
    import io

    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal
    monkeypatch.setattr(weights, "PROGRESS_EVERY", 0.05)
    blobs = tmp_path / "models--a--b" / "blobs"
    blobs.mkdir(parents=True)
    (blobs / "0123abcd.incomplete").write_bytes(b"x" * 3000)  # written so far, and no more
    (blobs / "4567ef01.0badf00d.incomplete").write_bytes(b"x" * 9000)  # another file's: not counted
    lines: list[str] = []
    progress = weights._FetchProgress("a/b", tmp_path, {"model.pt": 10_000}, lines.append)
    with progress.downloading("model.pt", 10_000, "0123abcd"):
        assert wait_until(lambda: len(lines) >= 3), lines
    assert all(re.fullmatch(r"fetching a/b: 3\.0 kB of 10\.0 kB \(30 %\), nothing new for \d+ s", line) for line in lines), lines


def test_a_progress_line_that_cannot_be_said_ends_the_lines_and_a_bug_in_them_is_not_hidden(tmp_path, monkeypatch):
    """A log that can no longer be written (stderr closed: ValueError) ends the progress lines
    quietly, the fetch going on; an error of another kind is a bug of the lines, and its traceback
    shows (threading's excepthook), not swallowed with the rest."""
    import io
    import threading

    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal
    monkeypatch.setattr(weights, "PROGRESS_EVERY", 0.05)
    seen: list[BaseException] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: seen.append(args.exc_value))

    tried: list[str] = []

    def closed(line: str) -> None:
        tried.append(line)
        raise ValueError("I/O operation on closed file.")

    with weights._FetchProgress("a/b", tmp_path, {"model.pt": 10_000}, closed).downloading("model.pt", 10_000, "0123abcd"):
        assert wait_until(lambda: not progress_threads())  # the lines ended at the first that failed, the fetch going on
    assert seen == [] and len(tried) == 1

    def buggy(_line: str) -> None:
        raise TypeError("unsupported format string")

    with weights._FetchProgress("a/b", tmp_path, {"model.pt": 10_000}, buggy).downloading("model.pt", 10_000, "0123abcd"):
        assert wait_until(lambda: seen)
    assert [type(e) for e in seen] == [TypeError] and not progress_threads()


def test_a_file_whose_blob_the_hub_cache_holds_is_not_counted_as_a_fetch(hub, official, tmp_path):
    """The hub cache holds model.pt's blob but no link to it at the revision the hub now lists
    (the repository got a commit since another program fetched it): the run said "fetching …
    model.pt", counted its bytes against the free disk space and ended "fetched", though
    huggingface_hub only linked the blob."""
    first = prepare(hub, official, tmp_path, prompts=())
    import shutil

    link = first.sources[DIT][1] / "model.pt"
    link.unlink()  # the blob stays
    shutil.rmtree(first.checkpoint)
    (tmp_path / "cache" / weights.RECORD_FILE).unlink()
    planned = prepare(hub, official, tmp_path, prompts=(), dry_run=True)
    assert planned.to_fetch == [] and planned.converted
    hub.clear()
    lines: list[str] = []
    again = prepare(hub, official, tmp_path, prompts=(), log=lines.append)
    assert again.to_fetch == [] and fetched(hub) == [] and link.is_file() and again.converted
    assert not any(line.startswith("fetching") for line in lines), lines


@pytest.mark.parametrize(("repo", "name", "check"), [(DIT, "model.pt", "MD5"), (T5, "model.safetensors", "sha256")])
def test_a_corrupted_download_is_caught_and_fetched_again(hub, official, tmp_path, repo, name, check):
    hub.corrupt[(repo, name)] = 1
    lines: list[str] = []
    prepared = prepare(hub, official, tmp_path, log=lines.append)
    assert fetched(hub).count(f"{repo}/{name}") == 2
    assert any(f"{repo}/{name}" in line and check in line and "fetching it again" in line for line in lines)
    assert weights.read_manifest(prepared.checkpoint)[1] is None


def test_a_file_that_stays_corrupt_stops_with_nothing_converted(hub, official, tmp_path):
    from huggingface_hub import try_to_load_from_cache

    hub.corrupt[(DIT, "model.pt")] = 5
    with pytest.raises(Gen3cModelError, match=r"model.pt is still corrupt .*MD5 [0-9a-f]{32}, GEN3C publishes") as err:
        prepare(hub, official, tmp_path, prompts=())
    assert "\n" not in str(err.value)
    assert not weights.converted_dir(tmp_path / "cache").exists() and not leftovers(tmp_path)
    commit = hub.commits[DIT]
    assert try_to_load_from_cache(DIT, "model.pt", cache_dir=tmp_path / "hub", revision=commit) is None  # not kept


def test_bit_rot_in_the_hub_cache_is_caught_before_converting(hub, official, tmp_path):
    first = prepare(hub, official, tmp_path, prompts=())
    blob = (first.sources[DIT][1] / "model.pt").resolve()
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    (tmp_path / "cache" / weights.RECORD_FILE).unlink()  # as if fetched by another tool: checked again
    import shutil

    shutil.rmtree(first.checkpoint)
    hub.clear()
    again = prepare(hub, official, tmp_path, prompts=())
    assert fetched(hub) == [f"{DIT}/model.pt"] and again.converted


def test_a_disk_that_fills_up_during_a_fetch_is_named_not_the_network(hub, official, tmp_path, monkeypatch):
    """ENOSPC while huggingface_hub wrote a file was reported as 'cannot reach the hub: check the network'."""
    import errno

    import huggingface_hub.file_download

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(huggingface_hub.file_download, "http_get", full)
    with pytest.raises(Gen3cModelError, match=r"^the disk of .*hub' filled up while fetching nvidia/.*No space left on device.*HF_HOME") as err:
        prepare(hub, official, tmp_path, prompts=())
    assert "network" not in str(err.value) and "\n" not in str(err.value)
    assert not weights.converted_dir(tmp_path / "cache").exists()


@pytest.mark.parametrize("code", ["EACCES", "EROFS"])
def test_a_hub_cache_that_cannot_be_written_is_named_not_the_network(hub, official, tmp_path, monkeypatch, code):
    """A hub cache without write access (another user's HF_HOME, a read-only mount) was reported
    as 'cannot reach the hub: check the network'."""
    import errno

    import huggingface_hub.file_download

    def denied(*args, **kwargs):
        raise OSError(getattr(errno, code), os.strerror(getattr(errno, code)), str(tmp_path / "hub" / "models--x"))

    monkeypatch.setattr(huggingface_hub.file_download, "http_get", denied)
    with pytest.raises(Gen3cModelError, match=r"^the hub cache .*hub' cannot be written .*nvidia/.*HF_HOME") as err:
        prepare(hub, official, tmp_path, prompts=())
    assert "network" not in str(err.value) and "\n" not in str(err.value)
    assert not weights.converted_dir(tmp_path / "cache").exists()


@pytest.mark.parametrize("under", [False, True])
def test_a_hub_cache_that_is_a_file_is_named_not_the_network(hub, official, tmp_path, under):
    """HF_HUB_CACHE naming a file (or a folder under one) ended "cannot reach the hub … check the
    network" (huggingface_hub's NotADirectoryError)."""
    (tmp_path / "afile").write_text("x")
    hub_cache = tmp_path / "afile" / "hub" if under else tmp_path / "afile"
    for dry_run in (True, False):
        with pytest.raises(Gen3cInputError) as err:
            weights.prepare_weights(weights=official[2], prompts=(), cache_dir=tmp_path / "cache", hub_cache_dir=hub_cache, endpoint=hub.url, dry_run=dry_run, log=None)
        where = f"lies under {str(tmp_path / 'afile')!r}, which is" if under else "is"
        assert str(err.value) == f"huggingface_hub's cache {str(hub_cache)!r} (HF_HUB_CACHE, else HF_HOME/hub) {where} a file: point HF_HOME or HF_HUB_CACHE at a folder"
    assert hub.count("GET", "/resolve/") == 0


def test_checksum_mismatches_say_expected_and_got_and_the_fix(hub, official, tmp_path):
    """A fetched file's sha256 mismatch said only that it differed; a converted cache failing
    --verify_checksums said 'corrupt or was changed' with no way out (the cache is gen3c's)."""
    import hashlib

    blob = tmp_path / "model.safetensors"
    blob.write_bytes(b"weights")
    problem = weights._file_problem(blob, 7, "ab" * 32, None)
    assert problem == f"sha256 {hashlib.sha256(b'weights').hexdigest()}, the hub lists {'ab' * 32}"

    prepared = prepare(hub, official, tmp_path, prompts=())
    shard = next((prepared.checkpoint / "vae").glob("*.safetensors"))
    data = bytearray(shard.read_bytes())
    data[-1] ^= 0xFF  # same size: the manifest still holds, only the checksums see it
    shard.write_bytes(bytes(data))
    with pytest.raises(Gen3cModelError, match=r"vae/.*does not match its sha256 in checksums.json \(sha256 [0-9a-f]{16}…, listed [0-9a-f]{16}…\)"
                       r".*`gen3c cache remove Gen3C-Cosmos-7B-v1` and the next run converts it again"):  # fmt: skip
        verify_checksums(prepared.checkpoint)


@pytest.mark.parametrize("status", [401, 403])
def test_a_gated_repository_names_its_license_page_and_the_login(hub, official, tmp_path, status):
    hub.gated[DIT] = status
    with pytest.raises(Gen3cModelError) as err:
        prepare(hub, official, tmp_path)
    message = str(err.value)
    assert "\n" not in message and f"HTTP {status}" in message
    assert f"{hub.url}/{DIT}" in message and "hf auth login" in message
    assert hub.count(contains="/resolve/") == 0 and not weights.converted_dir(tmp_path / "cache").exists()


def answer(hub: HubServer, status: int, headers: dict[str, str], when) -> None:
    """From now on ``hub`` answers the requests ``when(handler)`` picks with ``status`` and
    ``headers`` (an error body, as the hub's), and the rest as before."""
    base = hub._server.RequestHandlerClass

    class Answering(base):
        def _serve(self, body: bool) -> None:
            if not when(self):
                return super()._serve(body)
            hub.log(Request(self.command, self.path, self.headers.get("Range")))
            self._reply(status, {**headers, "Content-Type": "application/json"}, json.dumps({"error": headers.get("X-Error-Message", "")}).encode(), body)

    hub._server.RequestHandlerClass = Answering


@pytest.mark.parametrize("case", ["bad token", "private or missing"])
def test_a_refused_token_or_a_missing_repository_is_not_called_gated(hub, official, tmp_path, monkeypatch, case):
    """Any 401 said "is gated: accept its license … then `hf auth login`": also the hub's answer to
    every request carrying an invalid or expired token (public T5's too), where logging in is no
    cure unless the token changes, and its answer to a repository it does not have (a mirror's
    HF_ENDPOINT) when not logged in."""
    if case == "bad token":
        monkeypatch.setenv("HF_TOKEN", "hf_expired")
        answer(hub, 401, {"X-Error-Message": "Invalid credentials in Authorization header"}, lambda h: "Authorization" in h.headers)
    else:
        answer(hub, 401, {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"}, lambda h: True)
    with pytest.raises(Gen3cModelError) as err:
        prepare(hub, official, tmp_path)
    message = str(err.value)
    assert "\n" not in message and "gated" not in message and "license" not in message
    if case == "bad token":
        assert message.startswith(f"{hub.url} refused the token huggingface_hub sent for {DIT} (HTTP 401: Invalid credentials"), message
        assert "invalid or expired" in message and "hf auth login" in message and "unset HF_TOKEN" in message
    else:
        assert message.startswith(f"{DIT} was not found at {hub.url} (HTTP 401): check HF_ENDPOINT"), message
    assert hub.count(contains="/resolve/") == 0 and not weights.converted_dir(tmp_path / "cache").exists()


@pytest.mark.parametrize(("code", "gone"), [("EntryNotFound", "model.pt, which it listed,"), ("RevisionNotFound", "the commit it listed")])
def test_a_file_or_commit_gone_between_listing_and_fetching_says_run_again(hub, official, tmp_path, code, gone):
    """The hub listed model.pt at a commit, then answered 404 for it (the repository was
    force-pushed, or the file removed, meanwhile): the line said "cannot reach the hub … check the
    network", whose request had been answered."""
    answer(hub, 404, {"X-Error-Code": code, "X-Error-Message": "gone"}, lambda h: h.path.endswith("/model.pt"))
    with pytest.raises(Gen3cModelError) as err:
        prepare(hub, official, tmp_path, prompts=())
    assert str(err.value) == (
        f"{DIT} no longer has {gone} at {hub.url} (HTTP 404; the repository changed while gen3c fetched it): run again, which lists it anew"
    )
    assert not weights.converted_dir(tmp_path / "cache").exists()


def test_a_hub_that_fails_while_fetching_is_not_called_the_network(hub, official, tmp_path, monkeypatch):
    """An HTTP 500 (or 502, 503) for a file, after huggingface_hub's retries, said "cannot reach …
    (LocalEntryNotFoundError: …): check the network", though the hub had answered."""
    from types import SimpleNamespace

    import huggingface_hub.utils._http as hub_http

    monkeypatch.setattr(hub_http, "time", SimpleNamespace(sleep=lambda _s: None))  # its retries, without their waits
    answer(hub, 503, {"X-Error-Message": "Service Unavailable"}, lambda h: "/resolve/" in h.path)
    with pytest.raises(Gen3cModelError) as err:
        prepare(hub, official, tmp_path, prompts=())
    message = str(err.value)
    assert message.startswith(f"{hub.url} answered HTTP 503 for {DIT} (") and message.endswith("): try again later"), message
    assert "network" not in message and hub.count("HEAD", "/resolve/") > 1  # retried first


def test_offline_with_files_missing_is_one_line_and_offline_reuse_works(hub, official, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(Gen3cModelError, match=r"^GEN3C's weights are not all here .*HF_HUB_OFFLINE=1 forbids fetching them"):
        prepare(hub, official, tmp_path)
    assert hub.count() == 0
    monkeypatch.delenv("HF_HUB_OFFLINE")
    prepare(hub, official, tmp_path)
    hub.clear()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert prepare(hub, official, tmp_path, prompts=("another prompt",)).text_encoder is not None  # T5 from the hub cache
    assert hub.count() == 0


def test_offline_with_only_t5_missing_names_the_way_to_run_without_it(hub, official, tmp_path, monkeypatch):
    """Converted without T5, an offline run with a prompt was told to give --checkpoint_dir a
    converted checkpoint (it has one: the cache's), not that --disable_prompt_encoder runs now."""
    bare = prepare(hub, official, tmp_path, prompts=())
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub.clear()
    with pytest.raises(Gen3cModelError, match=r"HF_HUB_OFFLINE=1 forbids") as err:
        prepare(hub, official, tmp_path)
    message = str(err.value)
    assert T5 in message and str(bare.checkpoint) in message and "--disable_prompt_encoder" in message, message
    assert "--checkpoint_dir" not in message and hub.count() == 0
    assert prepare(hub, official, tmp_path, prompts=()).checkpoint == bare.checkpoint  # which runs offline


def test_offline_t5_asked_for_beside_a_whole_checkpoint_names_the_flag_not_a_prompt(hub, official, tmp_path, monkeypatch):
    """`gen3c download --text_encoder` offline, with the checkpoint and its prompt cache converted and
    T5 removed, said T5 was what "a prompt outside the prompt cache needs" and told the user to run
    with --disable_prompt_encoder or --no_text_encoder, though no prompt was given and the
    checkpoint already ran its cached prompts: the flag asked for it."""
    import shutil

    whole = prepare(hub, official, tmp_path)
    let_go_of_what_this_process_reads()
    shutil.rmtree(tmp_path / "hub" / "models--google-t5--t5-11b")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub.clear()
    with pytest.raises(Gen3cModelError) as err:
        prepare(hub, official, tmp_path, text_encoder=True)
    assert str(err.value) == (
        f"GEN3C's weights are converted in {str(whole.checkpoint)!r} with the prompt cache, but T5 ({T5}), which --text_encoder "
        "asks for, is not fetched yet and HF_HUB_OFFLINE=1 forbids fetching it: unset HF_HUB_OFFLINE, or leave out "
        "--text_encoder (runs with the cached prompts need no T5)"
    )
    assert prepare(hub, official, tmp_path).checkpoint == whole.checkpoint and hub.count() == 0  # which runs offline
    with pytest.raises(Gen3cModelError, match="which a prompt outside the prompt cache needs"):  # (a prompt: said as before)
        prepare(hub, official, tmp_path, prompts=("a red ball",))


def test_offline_with_only_t5_missing_before_converting_names_the_way_to_convert_without_it(hub, official, tmp_path, monkeypatch):
    """DiT and tokenizer fetched, nothing converted yet: an offline `gen3c download` was told to give
    `gen3c generate` --checkpoint_dir a converted checkpoint, not that --no_text_encoder converts now."""
    bare = prepare(hub, official, tmp_path, prompts=())
    import shutil

    shutil.rmtree(bare.checkpoint)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub.clear()
    with pytest.raises(Gen3cModelError) as err:
        prepare(hub, official, tmp_path, text_encoder=True)
    assert str(err.value) == (
        f"GEN3C's weights are not all here ({T5} not fetched yet) and HF_HUB_OFFLINE=1 forbids fetching them: unset "
        "HF_HUB_OFFLINE, or run with --disable_prompt_encoder (`gen3c download`: --no_text_encoder), which converts the rest without it"
    )
    assert prepare(hub, official, tmp_path, prompts=()).converted and hub.count() == 0  # which it does, offline


def test_offline_a_file_touched_since_it_was_checked_is_checked_again_not_called_missing(hub, official, tmp_path, monkeypatch):
    """Offline, a hub-cache file whose modification time changed since gen3c checked it (copied
    without it, touched) was reported as "not fetched yet" though it was there."""
    prepare(hub, official, tmp_path, text_encoder=True)
    record = tmp_path / "cache" / weights.RECORD_FILE
    blob = next((tmp_path / "hub").glob("models--google-t5--t5-11b/snapshots/*/model.safetensors")).resolve()
    os.utime(blob, ns=(blob.stat().st_atime_ns, blob.stat().st_mtime_ns + 10**9))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub.clear()
    lines: list[str] = []
    prepared = prepare(hub, official, tmp_path, prompts=("a prompt outside the cache",), log=lines.append)
    assert prepared.text_encoder is not None and hub.count() == 0
    assert [line for line in lines if "checking it again" in line] == [
        f"{T5}/model.safetensors ({str(prepared.text_encoder / 'model.safetensors')!r}) changed since gen3c checked it (its modification time): checking it again"
    ]
    lines.clear()
    prepare(hub, official, tmp_path, prompts=("a prompt outside the cache",), log=lines.append)
    assert not lines  # recorded anew: not hashed again

    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF  # changed, same size
    blob.write_bytes(bytes(data))
    with pytest.raises(Gen3cModelError, match=r"^google-t5/t5-11b/model.safetensors \(.*\) changed since gen3c checked it \(its modification time\) "
                       r"and no longer matches \(sha256 [0-9a-f]{64}, the hub lists [0-9a-f]{64}\), .*unset HF_HUB_OFFLINE"):  # fmt: skip
        prepare(hub, official, tmp_path, prompts=("a prompt outside the cache",))
    data[-1] ^= 0xFF
    blob.write_bytes(bytes(data))
    old = json.loads(record.read_text())  # as a gen3c that recorded no sha256 wrote it
    for entry in old["repos"].values():
        entry["files"] = {name: values[:2] for name, values in entry["files"].items()}
    record.write_text(json.dumps(old))
    with pytest.raises(Gen3cModelError, match=r"changed since gen3c checked it .*HF_HUB_OFFLINE=1 forbids checking it against the hub: unset HF_HUB_OFFLINE"):
        prepare(hub, official, tmp_path, prompts=("a prompt outside the cache",))
    assert hub.count() == 0


def test_an_unreachable_hub_suggests_offline_only_where_offline_would_run(hub, official, tmp_path, monkeypatch):
    """"cannot reach the hub" always ended "or set HF_HUB_OFFLINE=1 to use only what is already
    fetched", also with nothing fetched yet, where the offline run failed in turn."""
    closed = HubServer(official[1])
    closed.stop()

    def unreachable(**kwargs) -> weights.PreparedWeights:
        return weights.prepare_weights(weights=official[2], cache_dir=tmp_path / "cache", hub_cache_dir=tmp_path / "hub", endpoint=closed.url, log=None, **kwargs)

    with pytest.raises(Gen3cModelError, match=f"^cannot reach {closed.url} to fetch ") as err:
        unreachable()
    assert str(err.value).endswith(": check the network (or HF_ENDPOINT), then run again"), str(err.value)
    prepare(hub, official, tmp_path)
    blob = next((tmp_path / "hub").glob("models--google-t5--t5-11b/snapshots/*/model.safetensors")).resolve()
    os.utime(blob, ns=(blob.stat().st_atime_ns, blob.stat().st_mtime_ns + 10**9))  # checked again: online, against the hub
    with pytest.raises(Gen3cModelError, match=f"^cannot reach {closed.url} to fetch {T5} ") as err:
        unreachable(prompts=("another prompt",))
    assert str(err.value).endswith(": check the network, or set HF_HUB_OFFLINE=1 to use what is already fetched"), str(err.value)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert unreachable(prompts=("another prompt",)).text_encoder is not None  # which it does


def test_offline_files_another_program_fetched_are_not_called_missing(hub, official, tmp_path, monkeypatch):
    """Offline, T5 in the hub cache but never checked by gen3c (fetched by transformers or `hf
    download`: no record of it) was reported as "not fetched yet"."""
    prepare(hub, official, tmp_path, prompts=())
    prepare(hub, official, tmp_path, text_encoder=True)
    (tmp_path / "cache" / weights.RECORD_FILE).unlink()  # as if another program had fetched them
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(Gen3cModelError) as err:
        prepare(hub, official, tmp_path, prompts=("a prompt outside the cache",))
    assert str(err.value) == (
        f"GEN3C's weights are converted in {str(weights.converted_dir(tmp_path / 'cache'))!r}, but T5 ({T5}), which a prompt outside the "
        "prompt cache needs, is in the hub cache but not checked by gen3c yet and HF_HUB_OFFLINE=1 forbids checking it: unset "
        "HF_HUB_OFFLINE (a run online checks what the hub cache holds and fetches only what is missing or damaged), or run with "
        "--disable_prompt_encoder (`gen3c download`: --no_text_encoder)"
    )
    import shutil

    shutil.rmtree(weights.converted_dir(tmp_path / "cache"))
    with pytest.raises(Gen3cModelError, match=rf"^GEN3C's weights are not all here \({DIT} in the hub cache but not checked by gen3c yet, "):
        prepare(hub, official, tmp_path, prompts=())


def test_offline_a_moved_hub_cache_is_checked_again_not_called_missing(hub, official, tmp_path, monkeypatch):
    """Offline, with the hub cache moved (HF_HOME pointed at its new place), the files gen3c had
    checked were reported as "not fetched yet" though they were there."""
    import shutil

    prepare(hub, official, tmp_path, text_encoder=True)
    shutil.move(tmp_path / "hub", tmp_path / "moved")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub.clear()
    lines: list[str] = []
    kwargs = {"weights": official[2], "cache_dir": tmp_path / "cache", "hub_cache_dir": tmp_path / "moved", "endpoint": hub.url}
    prepared = weights.prepare_weights(prompts=("a prompt outside the cache",), log=lines.append, **kwargs)
    assert prepared.text_encoder is not None and prepared.text_encoder.is_relative_to(tmp_path / "moved") and hub.count() == 0
    assert f"{T5}/model.safetensors ({str(prepared.text_encoder / 'model.safetensors')!r}) was checked by gen3c in another hub cache ({str(tmp_path / 'hub')!r}): checking it again" in lines
    lines.clear()
    weights.prepare_weights(prompts=("a prompt outside the cache",), log=lines.append, **kwargs)
    assert not lines and hub.count() == 0  # recorded for the new place


def test_a_record_not_of_its_form_is_checked_again_not_a_traceback(hub, official, tmp_path):
    """A downloads.json entry edited by hand (files as a list, a size as text) was a TypeError
    traceback on every later run, until the file was deleted."""
    prepare(hub, official, tmp_path, text_encoder=True)
    record = tmp_path / "cache" / weights.RECORD_FILE
    data = json.loads(record.read_text())
    data["repos"][T5]["files"] = ["model.safetensors"]
    data["repos"][TOKENIZER]["files"]["encoder.jit"] = ["12", 3]
    record.write_text(json.dumps(data))
    hub.clear()
    prepared = prepare(hub, official, tmp_path, prompts=("a prompt outside the cache",))
    assert prepared.text_encoder is not None and hub.count(contains="/resolve/") == 0  # checked again, nothing fetched
    assert T5 in json.loads(record.read_text())["repos"]


def test_the_disk_check_refuses_before_the_first_byte(hub, official, tmp_path):
    hub.listed_sizes[(DIT, "model.pt")] = 10**15  # a petabyte: no disk here has that
    with pytest.raises(Gen3cModelError, match=r"not enough free disk space in .*: 1000000\.3 GB needed \(") as err:
        prepare(hub, official, tmp_path)
    assert "GB free" in str(err.value) and "HF_HOME" in str(err.value)
    assert hub.count(contains="/resolve/") == 0  # only the listings were read
    assert not (tmp_path / "hub").exists() or not any((tmp_path / "hub").rglob("model.pt"))


def test_sizes_are_said_in_decimal_units_and_small_ones_in_bytes():
    """A 40-byte file (a tokenizer's special_tokens_map.json, say) was listed as "0.0 kB"."""
    said = [weights.format_bytes(n) for n in (0, 40, 99, 100, 3000, 791_000, 14_500_000_000, 45_200_000_000)]
    assert said == ["0 B", "40 B", "99 B", "0.1 kB", "3.0 kB", "0.8 MB", "14.5 GB", "45.2 GB"]


def test_the_disk_check_counts_its_reserve_in_what_it_says_is_needed(tmp_path, monkeypatch):
    """Free space above the files' size but within the reserve kept beside them. Before: "1.2 MB
    needed (1.2 MB to fetch), 3.1 MB free", a refusal that gave no reason."""
    free = 200_000_000
    monkeypatch.setattr(weights.shutil, "disk_usage", lambda _path: type("usage", (), {"free": free})())
    with pytest.raises(Gen3cModelError) as err:
        weights._check_disk({tmp_path: (100_000_000, ["100.0 MB to fetch"])})
    assert str(err.value).startswith(
        f"not enough free disk space in {str(tmp_path)!r}: 0.4 GB needed (100.0 MB to fetch + 0.3 GB spare), 0.2 GB free: "
    )


def test_the_dry_run_lists_sizes_and_writes_nothing(hub, official, tmp_path):
    plan = prepare(hub, official, tmp_path, dry_run=True)
    assert plan.converted and {(r, f) for r, f, _ in plan.to_fetch} >= {(DIT, "model.pt"), (T5, "model.safetensors")}
    assert plan.fetch_bytes == sum(len(official[1][r][f]) for r, f, _ in plan.to_fetch)
    assert hub.count(contains="/resolve/") == 0 and not (tmp_path / "hub").exists()
    assert not (tmp_path / "cache").exists()  # not even the folder and its lock file


def files_of(folder: Path) -> list[tuple[str, int, int]]:
    return sorted((p.relative_to(folder).as_posix(), p.lstat().st_size, p.lstat().st_mtime_ns) for p in folder.rglob("*"))


def test_a_read_only_cache_with_a_finished_conversion_serves_without_writing(hub, official, tmp_path, monkeypatch):
    """An admin's read-only shared cache (finished conversion, T5 fetched) refused its users: the
    lock file and a writable folder were needed even to reuse it."""
    import gen3c.io.atomic

    prepare(hub, official, tmp_path, text_encoder=True)
    before = files_of(tmp_path)
    if os.geteuid() != 0:
        for folder in (tmp_path / "cache", tmp_path / "hub"):
            for p in [folder, *folder.rglob("*")]:
                if p.is_dir() and not p.is_symlink():
                    p.chmod(0o555)
    else:  # root writes anywhere: refuse every write the way a read-only folder would
        def refused(*args, **kwargs):
            raise PermissionError(13, "Read-only file system")

        monkeypatch.setattr(weights, "_locked", refused)
        monkeypatch.setattr(gen3c.io.atomic, "ensure_writable_dir", refused)
        monkeypatch.setattr(gen3c.io.atomic, "write_bytes_atomic", refused)
    try:
        hub.clear()
        reused = prepare(hub, official, tmp_path)
        assert not reused.converted and reused.has_prompt_cache
        other = prepare(hub, official, tmp_path, prompts=("a prompt outside the cache",))  # T5 from the hub cache
        assert other.text_encoder is not None and (other.text_encoder / "model.safetensors").is_file()
        assert hub.count() == 0 and files_of(tmp_path) == before
    finally:
        for p in tmp_path.rglob("*"):
            if p.is_dir() and not p.is_symlink():
                p.chmod(0o755)


def test_a_read_only_cache_that_must_be_written_says_why(hub, official, tmp_path, monkeypatch):
    """A read-only shared cache serves while nothing is to write; once something is (its conversion
    damaged, its prompt cache missing), the refusal said only that the folder "is not writable",
    which a user of a cache that served the day before could not explain."""
    import gen3c.io.atomic

    target = prepare(hub, official, tmp_path, prompts=()).checkpoint  # converted without T5
    root = tmp_path / "cache"

    def read_only(folder, what):
        raise Gen3cInputError(f"{what} {str(folder)!r} is not writable: choose a writable folder or fix its permissions")

    monkeypatch.setattr(gen3c.io.atomic, "ensure_writable_dir", read_only)
    refusal = f"the folder of converted weights (--cache_dir / GEN3C_CACHE_DIR) {str(root)!r} is not writable: choose a writable folder or fix its permissions"
    with pytest.raises(Gen3cInputError) as caught:
        prepare(hub, official, tmp_path)
    assert str(caught.value) == f"{str(target)!r} has no prompt cache yet, which this run needs (--disable_prompt_encoder runs without it), but {refusal}"
    (target / "vae" / "config.json").unlink()
    with pytest.raises(Gen3cInputError) as caught:
        prepare(hub, official, tmp_path, prompts=())
    assert str(caught.value) == f"{str(target)!r} is damaged (vae/config.json is missing) and must be converted again, but {refusal}"


def test_a_read_only_cache_fetches_t5_for_a_new_prompt_and_records_it_in_the_users_folder(hub, official, tmp_path, monkeypatch):
    """A read-only shared cache (converted, prompt cache made) refused a prompt outside the prompt
    cache while T5 was not in the user's hub cache: T5 goes to the hub cache, which is writable;
    only its record, downloads.json, was to be written in the cache folder."""
    import gen3c.io.atomic

    kwargs = {"cache_dir": tmp_path / "cache", "hub_cache_dir": tmp_path / "hub", "weights": official[2]}
    prepare(hub, official, tmp_path)
    weights.remove_cached([T5], **kwargs)
    hub.clear()
    root = tmp_path / "cache"
    before = files_of(root)
    ensure_writable_dir, write_bytes_atomic, locked = gen3c.io.atomic.ensure_writable_dir, gen3c.io.atomic.write_bytes_atomic, weights._locked

    def refused(path):
        if Path(path) == root or root in Path(path).parents:
            raise Gen3cInputError(f"the folder {str(root)!r} is not writable: choose a writable folder or fix its permissions")

    monkeypatch.setattr(gen3c.io.atomic, "ensure_writable_dir", lambda folder, what="": refused(folder) or ensure_writable_dir(folder, what))
    monkeypatch.setattr(gen3c.io.atomic, "check_writable_place", lambda folder, what, **kw: refused(folder))
    monkeypatch.setattr(gen3c.io.atomic, "write_bytes_atomic", lambda target, data: refused(target) or write_bytes_atomic(target, data))
    monkeypatch.setattr(weights, "_locked", lambda folder, say: refused(folder) or locked(folder, say))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "home"))
    prompt = ("a prompt outside the cache",)
    plan = prepare(hub, official, tmp_path, prompts=prompt, dry_run=True)
    assert {(r, f) for r, f, _ in plan.to_fetch} >= {(T5, "model.safetensors")} and not plan.converted
    prepared = prepare(hub, official, tmp_path, prompts=prompt)
    assert prepared.text_encoder is not None and (prepared.text_encoder / "model.safetensors").is_file()
    assert fetched(hub) and all(name.startswith(T5) for name in fetched(hub)) and files_of(root) == before
    assert T5 in json.loads((tmp_path / "home" / "gen3c" / weights.RECORD_FILE).read_text())["repos"]
    hub.clear()
    assert prepare(hub, official, tmp_path, prompts=prompt).text_encoder == prepared.text_encoder
    assert hub.count() == 0 and files_of(root) == before  # checked once, recorded in the user's folder
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert prepare(hub, official, tmp_path, prompts=prompt).text_encoder == prepared.text_encoder
    # The user's T5 goes again from the user's hub cache (it was refused: the shared folder is read-only).
    assert [item.name for item in weights.remove_cached([T5], **kwargs)] == [T5] and not (tmp_path / "hub" / "models--google-t5--t5-11b").exists()
    assert T5 not in json.loads((tmp_path / "home" / "gen3c" / weights.RECORD_FILE).read_text())["repos"] and files_of(root) == before


def test_a_full_disk_while_converting_names_the_cache_folder_in_one_line(hub, official, tmp_path, monkeypatch):
    """ENOSPC while adding the prompt cache was a traceback; while converting, the message named
    the temporary CACHE/.incomplete-*/ folder, not the folder the user chose (--cache_dir)."""
    import errno

    import gen3c.models.convert
    from gen3c.models.prompt_cache import PromptEmbeddingCache

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "cache" / ".incomplete-0123" / "x"))

    monkeypatch.setattr(gen3c.models.convert, "write_checksums", full)
    pattern = r"^the disk of the folder of converted weights .*cache' filled up while converting GEN3C's weights \(No space left on device\).*--cache_dir"
    with pytest.raises(Gen3cModelError, match=pattern) as err:
        prepare(hub, official, tmp_path, prompts=())
    assert ".incomplete" not in str(err.value) and "\n" not in str(err.value) and not leftovers(tmp_path)
    monkeypatch.undo()
    prepare(hub, official, tmp_path, prompts=())
    monkeypatch.setattr(PromptEmbeddingCache, "save_pretrained", full)
    with pytest.raises(Gen3cModelError, match=pattern) as err:
        prepare(hub, official, tmp_path)  # the prompt cache is added now
    assert ".incomplete" not in str(err.value) and not leftovers(tmp_path)

    # safetensors' writer reports a full disk as its own error, no OSError (as on a full tmpfs).
    from safetensors import SafetensorError

    def full_safetensors(*args, **kwargs):
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(PromptEmbeddingCache, "save_pretrained", full_safetensors)
    with pytest.raises(Gen3cModelError, match=pattern) as err:
        prepare(hub, official, tmp_path)
    assert not leftovers(tmp_path)


def test_a_full_disk_while_recording_a_download_is_one_line_and_keeps_the_record(hub, official, tmp_path, monkeypatch):
    """ENOSPC while writing downloads.json (after T5 was fetched and checked) was a traceback."""
    import errno

    prepare(hub, official, tmp_path, prompts=())
    record = tmp_path / "cache" / weights.RECORD_FILE
    before = record.read_bytes()
    write_bytes = Path.write_bytes

    def full(path, data):
        if not path.name.startswith(".downloads."):
            return write_bytes(path, data)
        write_bytes(path, data[: len(data) // 2])  # half of it made it to the disk
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(Gen3cModelError) as err:
        prepare(hub, official, tmp_path)  # T5 is fetched and recorded now
    assert str(err.value).startswith(
        f"the disk of the folder of converted weights {str(tmp_path / 'cache')!r} filled up while writing downloads.json "
        "(No space left on device); it was left as it was: free some space"
    ) and "\n" not in str(err.value)
    assert record.read_bytes() == before and sorted(p.name for p in record.parent.iterdir() if p.name.startswith(".downloads")) == []
    monkeypatch.undo()
    assert prepare(hub, official, tmp_path).has_prompt_cache  # once there is room


def test_a_full_disk_under_the_record_kept_for_a_read_only_cache_names_its_own_way_out(tmp_path, monkeypatch):
    """The record a read-only shared cache's user keeps in $XDG_CACHE_HOME/gen3c: --cache_dir
    (the shared folder) is no way out of a full disk there."""
    import errno

    import gen3c.io.atomic

    def full(target, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(gen3c.io.atomic, "write_bytes_atomic", full)
    record = weights._Record(tmp_path / "home" / "gen3c", tmp_path / "hub", also=tmp_path / "shared")
    with pytest.raises(Gen3cModelError) as err:
        record.save()
    assert str(err.value) == (
        f"the disk of gen3c's own cache folder {str(tmp_path / 'home' / 'gen3c')!r} filled up while writing downloads.json (No space "
        "left on device); it was left as it was: free some space, or choose a folder on a larger disk with XDG_CACHE_HOME, then "
        "run again (the downloads are kept)"
    )


def test_partial_downloads_that_killed_runs_left_are_reported_and_removed_by_the_next_fetch(hub, official, tmp_path):
    """huggingface_hub (from 1.18) writes each download to blobs/<blob>.<8 hex>.incomplete and
    never continues one a killed run left: `cache list` said "the next fetch resumes them", and
    they stayed forever. One a running download writes (its huggingface_hub lock held) stays."""
    import fcntl

    kwargs = {"cache_dir": tmp_path / "cache", "hub_cache_dir": tmp_path / "hub", "weights": official[2]}
    folder = tmp_path / "hub" / "models--nvidia--Gen3C-Cosmos-7B"
    (folder / "blobs").mkdir(parents=True)
    stale = folder / "blobs" / "a1b2c3.0badf00d.incomplete"
    stale.write_bytes(b"x" * 2000)
    running = folder / "blobs" / "d4e5f6.12345678.incomplete"
    running.write_bytes(b"y" * 1000)
    lock = tmp_path / "hub" / ".locks" / folder.name / "d4e5f6.lock"
    lock.parent.mkdir(parents=True)
    with lock.open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as huggingface_hub holds it for the whole download
        detail = {item.name: item.detail for item in weights.cached_items(**kwargs)}[DIT]
        assert "2.0 kB of unfinished downloads left by stopped runs (nothing continues them" in detail
        assert "1.0 kB being fetched now" in detail and "resumes" not in detail
        with pytest.raises(Gen3cModelError, match=r"a download into .*models--nvidia--Gen3C-Cosmos-7B' is running.*nothing was removed"):
            weights.remove_cached([DIT], **kwargs)
        lines: list[str] = []
        prepare(hub, official, tmp_path, prompts=(), log=lines.append)
        assert not stale.exists() and running.exists()
        assert any("removed 2.0 kB of unfinished downloads of nvidia/Gen3C-Cosmos-7B" in line for line in lines)


def test_removing_a_hub_repository_asks_first_it_is_shared_with_other_programs(hub, official, tmp_path, monkeypatch):
    """`gen3c cache remove google-t5/t5-11b` deleted the whole folder in the Hugging Face cache,
    which other programs use too, without a word."""
    import huggingface_hub.constants
    from typer.testing import CliRunner

    from gen3c.cli import app

    kwargs = {"cache_dir": tmp_path / "cache", "hub_cache_dir": tmp_path / "hub", "weights": official[2]}
    prepare(hub, official, tmp_path)
    asked: list[list[str]] = []
    assert weights.remove_cached([T5, "Gen3C-Cosmos-7B-v1"], **kwargs, confirm=lambda items: asked.append([i.name for i in items]) and False) == []
    assert asked == [[T5]] and {item.name for item in weights.cached_items(**kwargs)} == {"Gen3C-Cosmos-7B-v1", DIT, TOKENIZER, T5}

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(weights, "OFFICIAL", official[2])
    args = ["cache", "remove", T5, "--cache_dir", str(tmp_path / "cache")]
    refused = CliRunner().invoke(app, args)  # no terminal to ask on
    assert refused.exit_code == 2 and "shared with every program" in refused.output and "pass --yes" in refused.output, refused.output
    # (the sentence ended "they fetch it again after", cut off as it read)
    assert "other projects): they fetch it again afterwards" in " ".join(refused.output.split()), refused.output
    assert (tmp_path / "hub" / "models--google-t5--t5-11b").is_dir()
    done = CliRunner().invoke(app, [*args, "--yes"])
    assert done.exit_code == 0 and f"removed {T5}" in done.output, done.output
    assert not (tmp_path / "hub" / "models--google-t5--t5-11b").exists()


def test_the_conversion_estimate_covers_what_is_written(hub, official, tmp_path):
    prepared = prepare(hub, official, tmp_path)
    written = sum(p.stat().st_size for p in prepared.checkpoint.rglob("*.safetensors"))
    assert written <= weights.conversion_bytes(official[2]) <= written + (2 << 20)
    # GEN3C-7B: 7,237,257,216 DiT parameters in bfloat16 and 105,653,696 tokenizer ones in float32.
    assert weights.conversion_bytes(weights.GEN3C_7B) == 2 * 7_237_257_216 + 4 * 105_653_696 + 2 * 512 * 1024 * 4 + (1 << 20)


def test_a_half_written_or_damaged_cache_folder_is_never_used(hub, official, tmp_path):
    stale = tmp_path / "cache" / (weights.TEMP_PREFIX + "killed") / "Gen3C-Cosmos-7B-v1" / "transformer"
    stale.mkdir(parents=True)
    (stale / "diffusion_pytorch_model.safetensors").write_bytes(b"half")
    prepared = prepare(hub, official, tmp_path, prompts=())
    assert not leftovers(tmp_path) and weights.read_manifest(prepared.checkpoint)[1] is None

    shard = next((prepared.checkpoint / "transformer").glob("*.safetensors"))
    with shard.open("r+b") as fh:
        fh.truncate(shard.stat().st_size // 2)
    hub.clear()
    lines: list[str] = []
    again = prepare(hub, official, tmp_path, prompts=(), log=lines.append)
    assert again.converted and any("is damaged" in line for line in lines)
    assert hub.count() == 0  # the checked downloads were reused: converted again without the network
    assert verify_checksums(again.checkpoint)
    shard = next((again.checkpoint / "transformer").glob("*.safetensors"))
    written = shard.stat().st_size
    with shard.open("r+b") as fh:
        fh.truncate(written // 2)
    planned: list[str] = []
    assert prepare(hub, official, tmp_path, prompts=(), dry_run=True, log=planned.append).converted
    assert planned == [f"{again.checkpoint} is damaged ({shard.relative_to(again.checkpoint).as_posix()} has {written // 2} "
                       f"bytes, {written} were written): a run converts it again"]  # a dry run converts nothing
    assert again.checkpoint.exists()


# -- listing and removing ----------------------------------------------------------------------


def test_cache_list_and_remove(hub, official, tmp_path):
    kwargs = {"cache_dir": tmp_path / "cache", "hub_cache_dir": tmp_path / "hub", "weights": official[2]}
    prepare(hub, official, tmp_path)
    items = {item.name: item for item in weights.cached_items(**kwargs)}
    assert set(items) == {"Gen3C-Cosmos-7B-v1", DIT, TOKENIZER, T5}
    assert items[DIT].size == len(official[1][DIT]["model.pt"]) and "prompt cache" in items["Gen3C-Cosmos-7B-v1"].detail
    assert "unfinished" not in items[DIT].detail
    (items[DIT].path / "blobs" / "0123abcd.incomplete").write_bytes(b"x" * 3000)  # as an interrupted fetch leaves it
    listed = {item.name: item for item in weights.cached_items(**kwargs)}[DIT]
    assert listed.size == items[DIT].size + 3000 and "3.0 kB of unfinished downloads" in listed.detail

    removed = weights.remove_cached([T5.upper()], **kwargs)  # the prompt cache is made: T5 can go (named in any case, as on the hub)
    assert [item.name for item in removed] == [T5] and not items[T5].path.exists()
    hub.clear()
    prepare(hub, official, tmp_path)
    assert hub.count() == 0  # the usual run does not need T5
    prepare(hub, official, tmp_path, prompts=("a new prompt",))
    assert fetched(hub) and all(name.startswith(T5) for name in fetched(hub))

    with pytest.raises(Gen3cModelError, match="'nvidia/other' is not cached"):
        weights.remove_cached(["nvidia/other"], **kwargs)
    weights.remove_cached(["all"], **kwargs)
    assert weights.cached_items(**kwargs) == []


def test_cache_list_and_remove_work_in_a_core_install(hub, official, tmp_path, monkeypatch):
    """`gen3c cache list` in an install without the diffusion extra (no huggingface_hub, no
    filelock) said listing "needs huggingface_hub", though it fetches nothing; `cache remove`
    could not free the disk either."""
    from typer.testing import CliRunner

    from gen3c.cli import app

    prepare(hub, official, tmp_path, prompts=())
    for name in ("huggingface_hub", "huggingface_hub.constants", "filelock"):
        monkeypatch.setitem(sys.modules, name, None)  # importing it now raises ImportError, as in an install without it
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HUGGINGFACE_HUB_CACHE", str(tmp_path / "hub"))  # found as huggingface_hub finds it
    monkeypatch.setenv(weights.CACHE_ENV, str(tmp_path / "cache"))
    listing = CliRunner().invoke(app, ["cache", "list"])
    assert listing.exit_code == 0, listing.output
    assert all(name in listing.output for name in ("Gen3C-Cosmos-7B-v1", DIT, TOKENIZER)), listing.output
    other = CliRunner().invoke(app, ["cache", "remove", TOKENIZER, "--yes", "--cache_dir", str(tmp_path / "new")])  # no cache folder yet
    assert other.exit_code == 0 and f"removed {TOKENIZER}" in other.output, other.output
    removed = CliRunner().invoke(app, ["cache", "remove", "all", "--yes"])
    assert removed.exit_code == 0 and f"removed {DIT}" in removed.output, removed.output
    assert not (tmp_path / "hub" / "models--nvidia--Gen3C-Cosmos-7B").exists() and not weights.converted_dir(tmp_path / "cache").exists()


def test_download_into_another_cache_folder_names_it_for_later_runs(hub, official, tmp_path, monkeypatch):
    """`gen3c download --cache_dir cache` (or GEN3C_CACHE_DIR=cache) ended "runs without
    --checkpoint_dir use it", with the folder relative: a later run without them looked in the
    default folder, and fetched and converted everything again."""
    from huggingface_hub import constants
    from typer.testing import CliRunner

    from gen3c.cli import app

    prepare(hub, official, tmp_path)
    monkeypatch.setattr(weights, "OFFICIAL", official[2])
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv(weights.CACHE_ENV, str(tmp_path / "default"))
    monkeypatch.chdir(tmp_path)
    hub.clear()
    res = CliRunner().invoke(app, ["download", "--cache_dir", "cache"])
    assert res.exit_code == 0 and hub.count() == 0, res.output
    folder = tmp_path / "cache"
    said = " ".join(res.output.split())
    assert f"(reused {folder / 'Gen3C-Cosmos-7B-v1'}); runs given --cache_dir {folder} (or {weights.CACHE_ENV}={folder}) without --checkpoint_dir use it" in said, said
    monkeypatch.setenv(weights.CACHE_ENV, str(folder))  # set for this command only, maybe: named
    res = CliRunner().invoke(app, ["download"])
    assert res.exit_code == 0 and f"runs given --cache_dir {folder} (or" in " ".join(res.output.split()), res.output
    monkeypatch.delenv(weights.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # the default folder: nothing to name
    (tmp_path / "cache").rename(tmp_path / "gen3c")
    res = CliRunner().invoke(app, ["download"])
    assert res.exit_code == 0 and "); runs without --checkpoint_dir use it" in " ".join(res.output.split()), res.output


def test_download_says_it_adds_the_prompt_cache_to_a_checkpoint_converted_without_it(hub, official, tmp_path, monkeypatch):
    """Converted without T5, `gen3c download --dry_run` said "nothing to do" (T5 in the hub cache)
    or only what it fetched, and `gen3c download` then ran T5 and ended "reused": the prompt
    cache it computed and added (minutes with T5-11B) was never said."""
    from huggingface_hub import constants
    from typer.testing import CliRunner

    from gen3c.cli import app

    bare = prepare(hub, official, tmp_path, prompts=())
    monkeypatch.setattr(weights, "OFFICIAL", official[2])
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "ENDPOINT", hub.url)  # (as HF_ENDPOINT sets both at import)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub.url + "/{repo_id}/resolve/{revision}/{filename}")
    t5 = weights.format_bytes(sum(size for _, _, size in prepare(hub, official, tmp_path, dry_run=True).to_fetch))
    args = ["download", "--cache_dir", str(tmp_path / "cache")]
    plan = CliRunner().invoke(app, [*args, "--dry_run"])
    assert plan.exit_code == 0, plan.output
    assert f"dry run: {t5} to fetch, then the prompt cache to compute and add to {bare.checkpoint}; the disk has room" in " ".join(plan.output.split())
    with monkeypatch.context() as patch:  # no hard links: the checkpoint is copied, and the dry run says so
        patch.setattr(os, "link", lambda *a, **k: (_ for _ in ()).throw(PermissionError(1, "Operation not permitted")))
        copied = CliRunner().invoke(app, [*args, "--dry_run"])
    size = weights.format_bytes(sum(weights.read_manifest(bare.checkpoint)[0]["files"].values()))
    assert f"add to {bare.checkpoint} (a copy of {size}: its file system has no hard links); the disk has room" in " ".join(copied.output.split()), copied.output
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 0 and f"(fetched {t5} and added the prompt cache to {bare.checkpoint})" in " ".join(done.output.split()), done.output
    again = CliRunner().invoke(app, [*args, "--dry_run"])
    assert "dry run: nothing to do; the disk has room" in again.output, again.output


def test_download_fetches_t5_only_where_a_default_run_would(hub, official, tmp_path, monkeypatch):
    """`gen3c download` always fetched T5: after `gen3c cache remove google-t5/t5-11b` (the prompt
    cache made), running it again fetched T5-11B's 45.2 GB again, which a default run never needs."""
    from huggingface_hub import constants
    from typer.testing import CliRunner

    from gen3c.cli import app

    prepare(hub, official, tmp_path)
    monkeypatch.setattr(weights, "OFFICIAL", official[2])
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "ENDPOINT", hub.url)  # (as HF_ENDPOINT sets both at import)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub.url + "/{repo_id}/resolve/{revision}/{filename}")
    removed = CliRunner().invoke(app, ["cache", "remove", T5, "--yes", "--cache_dir", str(tmp_path / "cache")])
    assert removed.exit_code == 0, removed.output
    hub.clear()
    args = ["download", "--cache_dir", str(tmp_path / "cache")]
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and hub.count() == 0 and "(reused " in again.output, again.output
    said = f"T5 ({T5}) is not fetched: the first run with a prompt of its own fetches it (--text_encoder fetches it now)"
    assert said in " ".join(again.output.split()), again.output
    asked = CliRunner().invoke(app, [*args, "--text_encoder"])  # for prompts of one's own: asked for
    assert asked.exit_code == 0 and fetched(hub) and all(name.startswith(T5) for name in fetched(hub)), asked.output
    assert "is not fetched" not in asked.output and "is not fetched" not in CliRunner().invoke(app, args).output


def test_removing_all_of_an_empty_cache_says_nothing_was_there(tmp_path, monkeypatch):
    """`gen3c cache remove all` with nothing cached said "freed 0.0 kB"."""
    from huggingface_hub import constants
    from typer.testing import CliRunner

    from gen3c.cli import app

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    res = CliRunner().invoke(app, ["cache", "remove", "all", "--cache_dir", str(tmp_path / "cache")])
    assert res.exit_code == 0, res.output
    assert " ".join(res.output.split()) == f"nothing to remove: nothing is cached (converted weights go to {tmp_path / 'cache'})"


def test_the_cache_folder_is_found_as_the_help_says(tmp_path, monkeypatch):
    """--cache_dir, else $GEN3C_CACHE_DIR, else $XDG_CACHE_HOME/gen3c, else ~/.cache/gen3c; the
    help left $XDG_CACHE_HOME out, so a user who had set it looked in ~/.cache/gen3c."""
    from huggingface_hub import constants
    from typer.testing import CliRunner

    from gen3c.cli import app

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv(weights.CACHE_ENV, raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)

    def said(*args: str) -> str:
        res = CliRunner().invoke(app, ["cache", "list", *args])
        assert res.exit_code == 0, res.output
        return " ".join(res.output.replace("│", " ").split())

    assert said() == f"nothing cached (converted weights go to {tmp_path / 'home' / '.cache' / 'gen3c'})"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert said() == f"nothing cached (converted weights go to {tmp_path / 'xdg' / 'gen3c'})"
    monkeypatch.setenv(weights.CACHE_ENV, str(tmp_path / "env"))
    assert said() == f"nothing cached (converted weights go to {tmp_path / 'env'})"
    assert said("--cache_dir", str(tmp_path / "given")) == f"nothing cached (converted weights go to {tmp_path / 'given'})"
    assert "default $GEN3C_CACHE_DIR, else $XDG_CACHE_HOME/gen3c, else ~/.cache/gen3c" in said("--help")


def test_a_hub_repository_that_cannot_be_deleted_is_one_line(hub, official, tmp_path, monkeypatch):
    """A repository folder of a shared hub cache that another user owns: `cache remove` ended in a
    PermissionError traceback, half-way through the names given."""
    import shutil

    kwargs = {"cache_dir": tmp_path / "cache", "hub_cache_dir": tmp_path / "hub", "weights": official[2]}
    prepare(hub, official, tmp_path, prompts=())
    rmtree = shutil.rmtree
    folder = tmp_path / "hub" / "models--nvidia--Cosmos-Tokenize1-CV8x8x8-720p"
    blob = next((folder / "blobs").iterdir())

    def denied(path, *args, **kwargs):
        if Path(path) == folder:
            raise PermissionError(13, "Permission denied", str(blob))
        return rmtree(path, *args, **kwargs)

    monkeypatch.setattr(weights.shutil, "rmtree", denied)
    with pytest.raises(Gen3cModelError) as err:
        weights.remove_cached([TOKENIZER, DIT], **kwargs)
    assert str(err.value) == (
        f"{TOKENIZER} could not be deleted (Permission denied: {str(blob)!r}); {DIT} removed: fix the permissions of {str(folder)!r}, "
        f"then run `gen3c cache remove {TOKENIZER}` again"
    )


def test_what_a_stopped_conversion_left_is_listed_and_removed_by_cache_remove_all(hub, official, tmp_path):
    """A conversion killed half-way leaves its temporary folder (up to the size of the converted
    checkpoint) until the next run that prepares weights; `gen3c cache list` did not show it and
    `gen3c cache remove all`, run to free the disk, left it."""
    kwargs = {"cache_dir": tmp_path / "cache", "hub_cache_dir": tmp_path / "hub", "weights": official[2]}
    prepare(hub, official, tmp_path, prompts=())
    stale = tmp_path / "cache" / (weights.TEMP_PREFIX + "0123456789ab") / "Gen3C-Cosmos-7B-v1" / "transformer"
    stale.mkdir(parents=True)
    (stale / "diffusion_pytorch_model.safetensors").write_bytes(b"x" * 5000)
    listed = {item.name: item for item in weights.cached_items(**kwargs)}
    left = listed[weights.TEMP_PREFIX + "0123456789ab"]
    assert left.size == 5000 and "stopped" in left.detail
    weights.remove_cached(["all"], **kwargs)
    assert weights.cached_items(**kwargs) == [] and not leftovers(tmp_path)


def test_removing_while_another_process_prepares_says_it_waits(hub, official, tmp_path, capfd, monkeypatch):
    """`gen3c cache remove` waited for a conversion in another process (minutes for the 7B DiT)
    without a word, as if it hung."""
    import fcntl
    import threading

    kwargs = {"cache_dir": tmp_path / "cache", "hub_cache_dir": tmp_path / "hub", "weights": official[2]}
    prepare(hub, official, tmp_path, prompts=())
    capfd.readouterr()
    fd = os.open(tmp_path / "cache" / weights.LOCK_FILE, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)  # as a preparing process holds it
    # Released once the removal says it waits (not after a guessed time, which a slow machine could
    # outlast before the removal reached the lock), or after a minute, where it never says so.
    waiting, to_stderr = threading.Event(), weights._to_stderr

    def say(line: str) -> None:
        to_stderr(line)
        if line.startswith("waiting for another gen3c process"):
            waiting.set()

    def release() -> None:
        waiting.wait(60)
        os.close(fd)

    monkeypatch.setattr(weights, "_to_stderr", say)
    releaser = threading.Thread(target=release)
    releaser.start()
    removed = weights.remove_cached(["Gen3C-Cosmos-7B-v1"], **kwargs)
    releaser.join()
    assert waiting.is_set()
    assert [item.name for item in removed] == ["Gen3C-Cosmos-7B-v1"]
    assert "waiting for another gen3c process" in capfd.readouterr().err


@contextlib.contextmanager
def another_process_reads(hub, official, tmp_path, prompts=("a prompt outside the prompt cache",), reads: str | None = None):
    """A second Python process that prepared the weights in tmp_path's caches (as a run does before
    it loads them; ``reads``: that instead) and keeps running inside the block; yields it."""
    reads = reads or (
        "weights.prepare_weights(weights=official, cache_dir=sys.argv[1], hub_cache_dir=sys.argv[2], endpoint=sys.argv[3],\n"
        "                        prompts=tuple(sys.argv[4:]), log=None)\n"
    )
    script = (
        "import json, os, sys\n"
        "from hub_server import tiny_official\n"
        "from gen3c.models import weights\n"
        "official = tiny_official(json.loads(os.environ['GEN3C_TEST_MD5']))\n"
        f"{reads}"
        "print('ready', flush=True)\n"
        "sys.stdin.read()\n"
    )
    env = child_env(TESTS, GEN3C_TEST_MD5=json.dumps(served_md5(official[1])))
    args = [tmp_path / "cache", tmp_path / "hub", hub.url, *prompts]
    child = subprocess.Popen([sys.executable, "-c", script, *map(str, args)], env=env, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert child.stdout.readline() == "ready\n", child.communicate()[1]
        yield child
    finally:
        child.stdin.close()
        child.wait(timeout=60)
        child.stdout.close()  # (closed here, not by the collector: its ResourceWarning lands in a later test)
        child.stderr.close()


def test_removing_what_another_run_reads_is_refused_naming_that_run(hub, official, tmp_path, monkeypatch):
    """`gen3c cache remove` deleted the converted checkpoint (or T5's hub repository) while another
    gen3c process was loading it, or had loaded it and would read T5 from the hub cache at its
    first prompt, or keeps the model and adds what later prompts need (the GUI, a batch): that run
    then failed half-way. Now the removal is refused in one line naming the process, and nothing
    is removed; once that process ends, the same removal goes through."""
    from huggingface_hub import constants
    from typer.testing import CliRunner

    from gen3c.cli import app

    kwargs = {"cache_dir": tmp_path / "cache", "hub_cache_dir": tmp_path / "hub", "weights": official[2]}
    prepared = prepare(hub, official, tmp_path)  # (this process holds them too: its own removal lets go of its hold)
    t5_folder = tmp_path / "hub" / "models--google-t5--t5-11b"
    monkeypatch.setattr(weights, "OFFICIAL", official[2])
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with another_process_reads(hub, official, tmp_path) as run:
        python = os.path.basename(sys.executable)  # (python3, python3.12 … as the run was started)
        held = f"in use by process {run.pid} ({python} -c "
        listed = {item.name: item.detail for item in weights.cached_items(**kwargs)}
        assert held in listed["Gen3C-Cosmos-7B-v1"] and held in listed[T5], listed
        assert held not in listed[DIT]  # (read only while converting, under the cache's lock)
        for name, folder in (("Gen3C-Cosmos-7B-v1", prepared.checkpoint), (T5, t5_folder)):
            with pytest.raises(Gen3cModelError) as err:
                weights.remove_cached([TOKENIZER, name], **kwargs, confirm=lambda items: pytest.fail("asked before refusing"))
            assert re.fullmatch(
                rf"{re.escape(name)} is in use by process {run.pid} \({re.escape(python)} -c .*\), which loaded it or reads from it "
                rf"\({re.escape(repr(str(folder)))}\): let that run end, or stop it, then run `gen3c cache remove {re.escape(name)}` again; "
                "nothing was removed",
                str(err.value),
            ), str(err.value)
        res = CliRunner().invoke(app, ["cache", "remove", "all", "--yes", "--cache_dir", str(tmp_path / "cache")])
        assert res.exit_code == 2 and len(error_lines_of(res.output)) == 1 and held in res.output, res.output
        assert prepared.checkpoint.is_dir() and t5_folder.is_dir() and (tmp_path / "hub" / "models--nvidia--Gen3C-Cosmos-7B").is_dir()
    removed = weights.remove_cached(["Gen3C-Cosmos-7B-v1", T5], **kwargs)
    assert [item.name for item in removed] == ["Gen3C-Cosmos-7B-v1", T5] and not prepared.checkpoint.exists() and not t5_folder.exists()


def test_a_cached_folder_linked_from_another_disk_goes_with_what_it_names(hub, official, tmp_path):
    """A converted checkpoint moved to another disk and linked back into the cache: `gen3c cache
    remove` said it freed its size but deleted nothing, leaving the link behind as a leftover
    that no later run could delete either. A hub repository so linked was refused as "Cannot call
    rmtree on a symbolic link: fix the permissions"."""
    kwargs = {"cache_dir": tmp_path / "cache", "hub_cache_dir": tmp_path / "hub", "weights": official[2]}
    prepared = prepare(hub, official, tmp_path, prompts=())
    disk = tmp_path / "other_disk"
    disk.mkdir()
    tokenizer = tmp_path / "hub" / "models--nvidia--Cosmos-Tokenize1-CV8x8x8-720p"
    for link in (prepared.checkpoint, tokenizer):
        os.replace(link, disk / link.name)
        link.symlink_to(disk / link.name, target_is_directory=True)
    listed = {item.name: item.size for item in weights.cached_items(**kwargs)}
    assert listed["Gen3C-Cosmos-7B-v1"] > 100_000 and listed[TOKENIZER] > 100_000
    removed = weights.remove_cached(["Gen3C-Cosmos-7B-v1", TOKENIZER], **kwargs)
    assert {item.name: item.size for item in removed} == {name: listed[name] for name in ("Gen3C-Cosmos-7B-v1", TOKENIZER)}
    assert list(disk.iterdir()) == [] and not os.path.lexists(prepared.checkpoint) and not os.path.lexists(tokenizer)
    assert leftovers(tmp_path) == [] and [item.name for item in weights.cached_items(**kwargs)] == [DIT]


def test_a_hub_repository_with_no_file_fetched_whole_says_so(official, tmp_path):
    """A first fetch stopped before any file was whole was listed as "revisions ; 5.0 kB of
    unfinished downloads…"."""
    folder = tmp_path / "hub" / "models--google-t5--t5-11b"
    (folder / "blobs").mkdir(parents=True)
    (folder / "blobs" / "0123abcd.incomplete").write_bytes(b"x" * 5000)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text("8d49864ffd5d74e7509e87fd61b0df9e90064581")
    [item] = weights.cached_items(tmp_path / "cache", tmp_path / "hub", official[2])
    assert item.name == T5 and item.size == 5040
    assert item.detail.startswith("no file fetched whole yet; 5.0 kB of unfinished downloads left by stopped runs"), item.detail


def test_a_run_given_the_cached_checkpoint_by_its_path_holds_it_too(hub, official, tmp_path):
    """`gen3c generate --checkpoint_dir ~/.cache/gen3c/Gen3C-Cosmos-7B-v1` (or from_pretrained of
    that path) read the cache's folder without gen3c knowing it for its own: `gen3c cache remove`
    deleted it under that run."""
    kwargs = {"cache_dir": tmp_path / "cache", "hub_cache_dir": tmp_path / "hub", "weights": official[2]}
    prepared = prepare(hub, official, tmp_path, prompts=())
    loads = f"from gen3c.pipelines.gen3c import Gen3cPipeline\nGen3cPipeline.from_pretrained({str(prepared.checkpoint)!r})\n"
    with another_process_reads(hub, official, tmp_path, reads=loads) as run:
        with pytest.raises(Gen3cModelError, match=f"Gen3C-Cosmos-7B-v1 is in use by process {run.pid} "):
            weights.remove_cached(["Gen3C-Cosmos-7B-v1"], **kwargs)
    assert [item.name for item in weights.remove_cached(["Gen3C-Cosmos-7B-v1"], **kwargs)] == ["Gen3C-Cosmos-7B-v1"]


def error_lines_of(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


def test_a_run_that_starts_while_its_checkpoint_is_being_removed_prepares_it_again(hub, official, tmp_path):
    """A run that found the converted checkpoint whole just as `gen3c cache remove` in another
    process deleted it went on to load a folder that was gone. Now it waits for the removal, then
    converts again."""
    import fcntl
    import shutil
    import threading

    prepared = prepare(hub, official, tmp_path, prompts=())
    let_go_of_what_this_process_reads()  # (as a fresh process)
    fd = os.open(prepared.checkpoint, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)  # as `gen3c cache remove` holds it while deleting it

    # The removal ends once the run, having found the checkpoint whole, asks for its shared lock
    # (a handshake, not a timer: a slow machine's reuse check must not find the folder gone already).
    asks, flock = threading.Event(), fcntl.flock

    def flock_telling(fd_, operation):
        if operation == fcntl.LOCK_SH:
            asks.set()
        return flock(fd_, operation)

    def the_removal_ends():
        asks.wait(timeout=60)
        aside = tmp_path / "cache" / (weights.TEMP_PREFIX + "removed-0123456789ab")
        os.replace(prepared.checkpoint, aside)
        shutil.rmtree(aside)
        os.close(fd)

    remover = threading.Thread(target=the_removal_ends)
    remover.start()
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(fcntl, "flock", flock_telling)
            again = prepare(hub, official, tmp_path, prompts=())
    finally:
        remover.join()
    assert asks.is_set()  # (the run found the folder whole, then waited for the removal)
    assert again.checkpoint == prepared.checkpoint and again.converted
    assert weights.read_manifest(again.checkpoint)[1] is None


@contextlib.contextmanager
def another_process_removes(checkpoint: Path, cache: Path):
    """Inside the block another process holds the weights cache's lock and, once this one says it
    waits for it (a handshake, not a timer: on a loaded machine this one may reach the lock late,
    after the folder went, and test nothing), removes ``checkpoint`` and lets go: what a second
    `gen3c cache remove` does meanwhile."""
    import fcntl
    import shutil
    import threading

    fd = os.open(cache / weights.LOCK_FILE, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    waits, say = threading.Event(), weights._to_stderr

    def saying_it_waits(line: str) -> None:
        say(line)
        if line.startswith("waiting for another gen3c process"):
            waits.set()

    def the_other_removes():
        waits.wait(timeout=60)
        shutil.rmtree(checkpoint)
        os.close(fd)

    other = threading.Thread(target=the_other_removes)
    other.start()
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(weights, "_to_stderr", saying_it_waits)
            yield
    finally:
        other.join()
    assert waits.is_set()  # (this process waited for the other's removal)


def test_removing_what_another_process_removed_meanwhile_is_no_traceback(hub, official, tmp_path):
    """Two `gen3c cache remove` at once: the one that waited for the lock found the folder gone
    and ended in a FileNotFoundError traceback."""
    kwargs = {"cache_dir": tmp_path / "cache", "hub_cache_dir": tmp_path / "hub", "weights": official[2]}
    prepared = prepare(hub, official, tmp_path, prompts=())
    with another_process_removes(prepared.checkpoint, tmp_path / "cache"):
        removed = weights.remove_cached(["Gen3C-Cosmos-7B-v1"], **kwargs)
    assert removed == [] and not prepared.checkpoint.exists()


def test_the_cli_says_what_another_process_removed_meanwhile(hub, official, tmp_path, monkeypatch):
    """`gen3c cache remove NAME` that found NAME gone once it had waited said "freed 0.0 kB"."""
    from huggingface_hub import constants
    from typer.testing import CliRunner

    from gen3c.cli import app

    prepared = prepare(hub, official, tmp_path, prompts=())
    monkeypatch.setattr(weights, "OFFICIAL", official[2])
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with another_process_removes(prepared.checkpoint, tmp_path / "cache"):
        res = CliRunner().invoke(app, ["cache", "remove", "Gen3C-Cosmos-7B-v1", "--cache_dir", str(tmp_path / "cache")])
    assert res.exit_code == 0 and "nothing to remove: Gen3C-Cosmos-7B-v1 was removed by another process meanwhile" in res.output, res.output


def test_a_folder_gen3c_did_not_make_is_never_deleted(hub, official, tmp_path):
    """A folder at the cache's place without gen3c's manifest (here `gen3c convert`'s output put
    there by hand) was taken for a damaged cache and deleted by the next run, then 'converted
    again' from a fresh download; `gen3c cache remove all` deleted it too, and anything else named
    Gen3C-Cosmos-7B-v* (a file, a backup copy)."""
    import shutil

    cache = tmp_path / "cache"
    mine = weights.converted_dir(cache)
    mine.mkdir(parents=True)
    (mine / "model_index.json").write_text("{}")
    backup = cache / "Gen3C-Cosmos-7B-v1-backup"
    shutil.copytree(mine, backup)
    with pytest.raises(Gen3cModelError, match=r"Gen3C-Cosmos-7B-v1' was not made by gen3c \(it has no gen3c_weights.json\).*--checkpoint_dir"):
        prepare(hub, official, tmp_path)
    assert (mine / "model_index.json").exists() and hub.count() == 0
    kwargs = {"cache_dir": cache, "hub_cache_dir": tmp_path / "hub", "weights": official[2]}
    items = weights.cached_items(**kwargs)
    assert [(item.name, item.detail) for item in items] == [("Gen3C-Cosmos-7B-v1", "not made by gen3c (no gen3c_weights.json): left alone")]
    with pytest.raises(Gen3cModelError, match="was not made by gen3c .*nothing was removed"):
        weights.remove_cached(["Gen3C-Cosmos-7B-v1"], **kwargs)
    assert weights.remove_cached(["all"], **kwargs) == []
    assert (mine / "model_index.json").exists() and (backup / "model_index.json").exists()


def test_removing_all_where_only_a_folder_gen3c_did_not_make_is_left_says_so(tmp_path, monkeypatch):
    """`gen3c cache remove all` beside a folder gen3c did not make (which `cache list` shows, and
    "all" leaves alone) said "nothing is cached"."""
    from huggingface_hub import constants
    from typer.testing import CliRunner

    from gen3c.cli import app

    mine = weights.converted_dir(tmp_path / "cache")
    mine.mkdir(parents=True)
    (mine / "model_index.json").write_text("{}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    res = CliRunner().invoke(app, ["cache", "remove", "all", "--cache_dir", str(tmp_path / "cache")])
    assert res.exit_code == 0, res.output
    assert " ".join(res.output.split()) == (
        f"nothing to remove: {mine} was not made by gen3c and is left alone (move or delete it yourself if you mean to); "
        "nothing else is cached"
    )
    assert (mine / "model_index.json").exists()


def test_removing_all_that_removes_something_says_what_it_left_alone_too(tmp_path, monkeypatch):
    """`gen3c cache remove all` that deleted something beside a folder gen3c did not make at the
    converted checkpoint's name (one whose manifest was lost) said only what it removed: the user
    took the cache for empty, and the next run refused that folder."""
    from huggingface_hub import constants
    from typer.testing import CliRunner

    from gen3c.cli import app

    mine = weights.converted_dir(tmp_path / "cache")
    mine.mkdir(parents=True)
    (mine / "model_index.json").write_text("{}")
    stopped = tmp_path / "cache" / f"{weights.TEMP_PREFIX}conversion"  # what a killed conversion left: "all" deletes it
    stopped.mkdir()
    (stopped / "part.safetensors").write_bytes(b"x" * 10)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    res = CliRunner().invoke(app, ["cache", "remove", "all", "--cache_dir", str(tmp_path / "cache")])
    assert res.exit_code == 0, res.output
    said = " ".join(res.output.split())
    assert "removed " in said and "freed " in said and not stopped.exists(), said
    assert said.endswith(f"{mine} was not made by gen3c and is left alone (move or delete it yourself if you mean to)"), said
    assert (mine / "model_index.json").exists()


def test_removing_all_calls_only_a_folder_without_a_manifest_not_made_by_gen3c(tmp_path, monkeypatch):
    """`gen3c cache remove all` that removed nothing (what it chose was gone once it had the lock)
    beside a converted folder another gen3c process finished meanwhile called that one "not made by
    gen3c and left alone" too, though it has its manifest and the next removal deletes it."""
    from huggingface_hub import constants
    from typer.testing import CliRunner

    from gen3c.cli import app

    cache = tmp_path / "cache"
    made = weights.converted_dir(cache)

    def converted_meanwhile(*args, **kwargs):
        made.mkdir(parents=True)
        (made / weights.MANIFEST_FILE).write_text("{}")
        return []

    monkeypatch.setattr(weights, "remove_cached", converted_meanwhile)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    res = CliRunner().invoke(app, ["cache", "remove", "all", "--cache_dir", str(cache)])
    assert res.exit_code == 0, res.output
    assert " ".join(res.output.split()) == (
        f"nothing to remove: {made.name} was cached by another process meanwhile (run `gen3c cache remove all` again to delete it)"
    )
    foreign = cache / made.name.replace("-v", "-v9")  # another format version's folder, without a manifest
    foreign.mkdir()
    (foreign / "model_index.json").write_text("{}")
    (made / weights.MANIFEST_FILE).unlink()
    made.rmdir()
    res = CliRunner().invoke(app, ["cache", "remove", "all", "--cache_dir", str(cache)])
    assert res.exit_code == 0, res.output
    assert " ".join(res.output.split()) == (
        f"nothing to remove: {foreign} was not made by gen3c and is left alone (move or delete it yourself if you mean to); "
        f"{made.name} was cached by another process meanwhile (run `gen3c cache remove all` again to delete it)"
    )


# -- the Python entry points -------------------------------------------------------------------


def test_from_pretrained_and_generate_use_the_cache(hub, official, tmp_path, box_scene, monkeypatch):
    import gen3c
    from gen3c import Gen3cPipeline
    from gen3c.io.video import read_video

    prepare(hub, official, tmp_path)
    monkeypatch.setenv(weights.CACHE_ENV, str(tmp_path / "cache"))
    hub.clear()
    pipe = Gen3cPipeline.from_pretrained("nvidia/Gen3C-Cosmos-7B", torch_dtype=torch.float32)
    assert isinstance(pipe, Gen3cPipeline) and pipe.prompt_cache is not None and pipe.text_encoder is None
    image, depth, _, _ = box_scene
    out = gen3c.generate(
        image, depth=depth, fov=60.0, resolution="32x48", num_video_frames=17, chunk_frames=17, num_steps=2,
        video_save_folder=tmp_path / "out", dtype="float32", device="cpu",
    )  # fmt: skip
    assert out.result.frames.shape == (17, 3, 32, 48) and out.paths["video"] == tmp_path / "out" / "image.mp4"
    assert read_video(out.paths["video"])[0].shape == (17, 32, 48, 3)
    assert hub.count() == 0
    # gen3c's loader with its run-time defaults (T5 and its tokenizer left out until a prompt needs them)
    from gen3c.pipelines.loading import load_pipeline

    again = load_pipeline("nvidia/Gen3C-Cosmos-7B", dtype="float32")
    assert isinstance(again, Gen3cPipeline) and again.prompt_cache is not None and hub.count() == 0
    with pytest.raises(Gen3cInputError, match="takes cache_dir, dtype"):
        Gen3cPipeline.from_pretrained(revision="main")


def test_the_official_id_in_another_case_is_the_official_weights(hub, official, tmp_path, box_scene, monkeypatch):
    """The hub takes repository ids in any case, so NVIDIA/gen3c-cosmos-7b is GEN3C's weights: the
    command line and from_pretrained run the converted copy in the cache, with no request. Before:
    only the exact spelling was; another one was a generic hub checkpoint (and --cache_dir refused)."""
    from typer.testing import CliRunner

    from gen3c import Gen3cPipeline
    from gen3c.cli import app
    from gen3c.io.video import read_video

    prepare(hub, official, tmp_path)
    monkeypatch.setenv(weights.CACHE_ENV, str(tmp_path / "elsewhere"))  # --cache_dir names the cache
    hub.clear()
    other = "NVIDIA/gen3c-cosmos-7b"
    image, depth, _, _ = box_scene
    args = ["generate", "--generator", "gen3c", "--checkpoint_dir", other, "--cache_dir", tmp_path / "cache",
            "--input_image_path", image, "--depth_path", depth, "--fov", 60, "--resolution", "32x48",
            "--num_video_frames", 17, "--chunk_frames", 17, "--num_steps", 2,
            "--video_save_folder", tmp_path / "out"]  # fmt: skip
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    assert read_video(tmp_path / "out" / "output.mp4")[0].shape == (17, 32, 48, 3) and hub.count() == 0
    assert weights.is_official_repo(other) and not weights.is_official_repo("nvidia/Gen3C-Cosmos-7B-extra")
    pipe = Gen3cPipeline.from_pretrained(other, torch_dtype=torch.float32, cache_dir=tmp_path / "cache")
    assert pipe.prompt_cache is not None and pipe.text_encoder is None and hub.count() == 0
    # A local folder of that name is a folder, as any path is (here GEN3C's original layout, refused as such).
    folder = tmp_path / "local" / other
    (folder / "Gen3C-Cosmos-7B").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "local")
    assert not weights.is_official_repo(other)
    with pytest.raises(Gen3cModelError, match="GEN3C's original layout"):
        Gen3cPipeline.from_pretrained(other)



@pytest.fixture
def official_here(hub, official, tmp_path, monkeypatch):
    """GEN3C's weights converted in tmp_path/cache (T5 fetched into tmp_path/hub for the prompt
    cache), and this process pointed at them and at the test hub as a user's default setup is."""
    from huggingface_hub import constants

    prepare(hub, official, tmp_path)
    monkeypatch.setenv(weights.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(weights, "OFFICIAL", official[2])
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    hub.clear()
    return tmp_path


def test_a_kept_model_takes_a_prompt_its_first_run_did_not_need_t5_for(hub, official_here, box_scene):
    """gen3c.generate and a batch keep GEN3C's weights loaded between runs; T5 was fetched only
    for the first run's prompts. Before: a later run's prompt outside the prompt cache failed
    ("has no loadable T5 text encoder … use the empty prompt") where a fresh run fetches T5;
    now it gets T5 as a fresh run does (here from the hub cache, no request) and makes its video."""
    import gen3c
    from gen3c.batch import load_manifest
    from gen3c.batch.jobs import GeneratorPool, run_job
    from gen3c.io.video import read_video
    from gen3c.pipelines.request import GENERATE_POOL

    tmp_path, (image, depth, _, _) = official_here, box_scene
    common = dict(depth=depth, fov=60.0, resolution="32x48", num_video_frames=17, chunk_frames=17, num_steps=2,
                  dtype="float32", device="cpu", progress=False)  # fmt: skip
    GENERATE_POOL.clear()
    loads = GENERATE_POOL.loads
    gen3c.generate(image, video_save_folder=tmp_path / "kept", video_save_name="first", **common)
    kept = gen3c.generate(image, video_save_folder=tmp_path / "kept", video_save_name="red", prompt="a red ball", **common)
    assert GENERATE_POOL.loads == loads + 1 and hub.count() == 0
    fresh = gen3c.generate(image, video_save_folder=tmp_path / "fresh", prompt="a red ball", keep_loaded=False, **common)
    GENERATE_POOL.clear()
    assert torch.equal(kept.result.frames, fresh.result.frames)

    rows = [{"name": name, "input_image_path": str(image), "depth_path": str(depth), "generator": "gen3c", "fov": 60, "resolution": "32x48",
             "num_video_frames": 17, "chunk_frames": 17, "num_steps": 2, "dtype": "float32", "device": "cpu", **extra}
            for name, extra in (("first", {}), ("red", {"prompt": "a red ball"}))]  # fmt: skip
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    pool = GeneratorPool()
    (tmp_path / "batch").mkdir()
    outcomes = [run_job(job, tmp_path / "batch", pool) for job in load_manifest(tmp_path / "m.jsonl")]
    assert [o.state for o in outcomes] == ["done", "done"] and pool.loads == 1, [o.error for o in outcomes]
    assert (read_video(tmp_path / "batch" / "red.mp4")[0] == read_video(tmp_path / "fresh" / "image.mp4")[0]).all()


def test_load_generator_of_the_official_id_fetches_t5_for_its_prompt(hub, official_here):
    """load_generator("nvidia/Gen3C-Cosmos-7B", prompt=…) loaded the weights for the prompt cache's
    prompts only, and its first generation failed for want of T5; now T5 comes with the load, as
    gen3c.generate's, and configure gives it for a later prompt."""
    from gen3c.models import configs
    from gen3c.pipelines.loading import load_generator

    generator = load_generator("nvidia/Gen3C-Cosmos-7B", prompt="a red ball", dtype="float32", device="cpu", chunk_frames=17)
    assert generator.pipeline.encode_prompt("a red ball").shape == (1, 512, configs.TRANSFORMER_TINY["text_embed_dim"]) and hub.count() == 0
    plain = load_generator("nvidia/Gen3C-Cosmos-7B", dtype="float32", device="cpu", chunk_frames=17)
    assert plain.pipeline.text_encoder is None
    plain.configure({"prompt": "a blue ball"})
    assert plain.pipeline.encode_prompt("a blue ball").shape == (1, 512, configs.TRANSFORMER_TINY["text_embed_dim"]) and hub.count() == 0


def test_the_official_pipeline_gets_t5_for_a_prompt_outside_its_cache(hub, official_here):
    """Gen3cPipeline.from_pretrained("nvidia/Gen3C-Cosmos-7B") loads for the prompt cache's prompts
    unless told others (prompts=); before, another prompt failed saying "leave out --checkpoint_dir
    and gen3c fetches GEN3C's weights" (they were GEN3C's weights); now T5 comes as for a load
    that named the prompt (here from the hub cache: no request)."""
    from gen3c import Gen3cPipeline
    from gen3c.models import configs

    pipe = Gen3cPipeline.from_pretrained("nvidia/Gen3C-Cosmos-7B", torch_dtype=torch.float32)
    assert pipe.text_encoder is None
    assert pipe.encode_prompt("a red ball").shape == (1, 512, configs.TRANSFORMER_TINY["text_embed_dim"]) and hub.count() == 0


def test_a_kept_model_offline_without_t5_says_what_a_fresh_run_says(hub, official_here, box_scene, monkeypatch):
    import shutil

    import gen3c
    from gen3c.pipelines.request import GENERATE_POOL

    tmp_path, (image, depth, _, _) = official_here, box_scene
    shutil.rmtree(tmp_path / "hub" / "models--google-t5--t5-11b")  # (`gen3c cache remove` would ask)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    common = dict(depth=depth, fov=60.0, resolution="32x48", num_video_frames=17, chunk_frames=17, num_steps=1,
                  dtype="float32", device="cpu", progress=False, video_save_folder=tmp_path / "out")  # fmt: skip
    GENERATE_POOL.clear()
    with pytest.raises(Gen3cModelError) as fresh:
        gen3c.generate(image, prompt="a red ball", **common)
    gen3c.generate(image, **common)  # the prompt cache's prompts: no T5 needed, offline too
    with pytest.raises(Gen3cModelError) as kept:
        gen3c.generate(image, prompt="a red ball", **common)
    GENERATE_POOL.clear()
    assert str(kept.value) == str(fresh.value) and "HF_HUB_OFFLINE=1 forbids fetching it" in str(fresh.value)
    assert hub.count() == 0


def test_configure_refuses_a_prompt_beside_a_budget_plan_before_fetching_its_t5(hub, official_here, monkeypatch):
    """Gen3cGenerator.configure refuses a prompt T5 must encode beside a max_gpu_memory plan made
    without T5. With GEN3C's weights loaded for the prompt cache's prompts, T5 was fetched first
    (its size was read off the fetched copy) and the prompt refused after: here, offline with no
    T5 in the hub cache, the refusal was the download's ("HF_HUB_OFFLINE=1 forbids fetching it").
    Now the plan's refusal comes first and nothing is fetched."""
    import shutil

    from gen3c.pipelines.loading import load_generator

    shutil.rmtree(official_here / "hub" / "models--google-t5--t5-11b")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.warns(UserWarning, match="memory mode"):
        generator = load_generator("nvidia/Gen3C-Cosmos-7B", max_gpu_memory=1000, dtype="float32", device="cpu", chunk_frames=17,
                                   resolution=(32, 48))  # fmt: skip
    generator.pipeline.compute_device = torch.device("cuda")  # a GPU this CPU test only pretends to have
    source = generator.pipeline.text_encoder_source  # (the checkpoint's folder, which holds no T5)
    with pytest.raises(Gen3cInputError, match=r"^configure: max_gpu_memory=1000 chose the memory plan for prompts the prompt cache holds"):
        generator.configure({"prompt": "a red ball"})
    assert (generator.pipeline.text_encoder_source, generator.prompt) == (source, "") and hub.count() == 0
    generator.configure({"prompt": "", "num_steps": 2})  # in the prompt cache: no T5
    assert generator.num_steps == 2


def test_a_kept_model_loads_again_when_max_gpu_memory_did_not_plan_for_t5(hub, official_here, box_scene):
    """--max_gpu_memory chose its memory mode counting T5 only when the load's prompts needed it,
    and the pool loads again for a job whose prompt needs T5 on a plan made without it. With
    GEN3C's weights that check saw no T5 (none was fetched for the load's prompts), so the job
    failed on the kept model; now T5 is fetched, the pool loads again (planned with T5, as a fresh
    run), and keeps that model for the cache's prompts."""
    from gen3c.errors import collect_notes
    from gen3c.pipelines.request import GenerationRequest, GeneratorPool

    def request(**options):
        return GenerationRequest(generator="gen3c", resolution="32x48", generator_options={
            "max_gpu_memory": 24, "dtype": "float32", "device": "cpu", "chunk_frames": 17, **options})  # fmt: skip

    pool = GeneratorPool()
    with collect_notes() as notes:
        assert pool.get(request())[1]
        generator, loaded = pool.get(request(prompt="a red ball"))
        assert loaded and pool.loads == 2 and generator.memory_planned_for[1]
        assert not pool.get(request())[1] and not pool.get(request(prompt="a blue ball"))[1] and pool.loads == 2
    planned = [n for n in notes if n.startswith("--max_gpu_memory 24")]
    assert len(planned) == 2 and "T5" not in planned[0] and planned[1].endswith(", T5 encoding the prompt first)"), planned
    assert hub.count() == 0
    # A checkpoint without T5 refuses such a prompt however it is planned: not loaded again for it.
    assert pool.get(request(model="tiny"))[1] and not pool.get(request(model="tiny", prompt="a red ball"))[1] and pool.loads == 3


# -- the command line (subprocesses: huggingface_hub reads HF_ENDPOINT and HF_HOME at import) ----


def run_cli(args, hub, official, folder: Path, wait: bool = True, **env):
    environ = {
        **os.environ, "HF_ENDPOINT": hub.url, "HF_HOME": str(folder / "hf"), weights.CACHE_ENV: str(folder / "gen3c"),
        "GEN3C_TEST_MD5": json.dumps(served_md5(official[1])), "PYTHONPATH": child_env(TESTS)["PYTHONPATH"], **env,
    }  # fmt: skip
    if "HF_HUB_OFFLINE" not in env:
        environ.pop("HF_HUB_OFFLINE", None)
    command = [sys.executable, str(TESTS / "hub_cli.py"), *map(str, args)]
    if not wait:
        return subprocess.Popen(command, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(command, env=environ, capture_output=True, text=True, timeout=600)


def error_lines(res) -> list[str]:
    return [line for line in res.stderr.splitlines() if line.startswith("error:")]


@pytest.mark.slow
def test_cli_first_run_fetches_converts_and_generates_and_the_second_makes_no_request(hub, official, tmp_path, box_scene):
    from gen3c.io.video import read_video

    image, depth, _, _ = box_scene
    args = ["generate", "--generator", "gen3c", "--input_image_path", image, "--depth_path", depth, "--fov", 60,
            "--resolution", "32x48", "--num_video_frames", 17, "--chunk_frames", 17, "--num_steps", 2,
            "--video_save_folder", tmp_path / "out"]  # fmt: skip
    first = run_cli([*args, "--video_save_name", "first"], hub, official, tmp_path)
    assert first.returncode == 0, first.stderr
    assert hub.count("GET", "/resolve/") == 8 and "done:" in first.stderr
    hub.clear()
    second = run_cli([*args, "--video_save_name", "second"], hub, official, tmp_path)
    assert second.returncode == 0, second.stderr
    assert hub.count() == 0 and "fetching" not in second.stderr
    a, b = read_video(tmp_path / "out" / "first.mp4")[0], read_video(tmp_path / "out" / "second.mp4")[0]
    assert a.shape == (17, 32, 48, 3) and (a == b).all()

    listing = run_cli(["cache", "list"], hub, official, tmp_path)
    assert listing.returncode == 0 and all(name in listing.stderr for name in ("Gen3C-Cosmos-7B-v1", DIT, TOKENIZER, T5))
    removed = run_cli(["cache", "remove", T5, "--yes"], hub, official, tmp_path)
    assert removed.returncode == 0 and f"removed {T5}" in removed.stderr and "freed" in removed.stderr
    assert hub.count() == 0


@pytest.mark.slow
def test_cli_errors_are_one_line_exit_2(hub, official, tmp_path):
    hub.gated[DIT] = 403
    gated = run_cli(["download"], hub, official, tmp_path)
    assert gated.returncode == 2 and len(error_lines(gated)) == 1, gated.stderr
    assert f"{hub.url}/{DIT}" in gated.stderr and "hf auth login" in gated.stderr and "Traceback" not in gated.stderr
    offline = run_cli(["download", "--no_text_encoder"], hub, official, tmp_path, HF_HUB_OFFLINE="1")
    assert offline.returncode == 2 and "HF_HUB_OFFLINE=1" in offline.stderr and len(error_lines(offline)) == 1
    # `download` has no --checkpoint_dir: the way out names the command that has it.
    assert "give `gen3c generate` --checkpoint_dir" in " ".join(offline.stderr.split()), offline.stderr
    del hub.gated[DIT]
    plan = run_cli(["download", "--dry_run"], hub, official, tmp_path)
    assert plan.returncode == 0 and f"would fetch  {DIT}/model.pt" in plan.stderr and "dry run:" in plan.stderr, plan.stderr
    assert hub.count("GET", "/resolve/") == 0 and not (tmp_path / "gen3c" / "Gen3C-Cosmos-7B-v1").exists()


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_a_conversion_killed_half_way_is_redone_by_the_next_run(hub, official, tmp_path, sig):
    process = run_cli(["download", "--no_text_encoder"], hub, official, tmp_path, wait=False)
    cache = tmp_path / "gen3c"
    deadline, sent = time.monotonic() + 300, False
    while process.poll() is None and time.monotonic() < deadline:
        if any(cache.glob(weights.TEMP_PREFIX + "*")):  # converting now (the converter's imports alone take seconds)
            process.send_signal(sig)
            sent = True
            break
        time.sleep(0.005)
    _, stderr = process.communicate(timeout=300)
    assert sent, stderr
    final = weights.converted_dir(cache)
    if final.exists():  # the conversion won the race (a loaded machine: the signal landed after its last rename)
        assert weights.read_manifest(final)[1] is None, stderr  # whole, never half-made in the final place
        return
    if sig == signal.SIGINT:
        assert process.returncode == 130 and "interrupted" in stderr, stderr
        assert not any(cache.glob(weights.TEMP_PREFIX + "*"))  # cleaned up at once
    else:
        assert process.returncode == -signal.SIGKILL and any(cache.glob(weights.TEMP_PREFIX + "*"))  # left for the next run
    hub.clear()
    prepared = weights.prepare_weights(
        weights=official[2], prompts=(), cache_dir=cache, hub_cache_dir=tmp_path / "hf" / "hub", endpoint=hub.url, log=None
    )  # fmt: skip
    assert hub.count() == 0  # the downloads were complete and checked: only the conversion is redone
    assert weights.read_manifest(prepared.checkpoint)[1] is None and not any(cache.glob(weights.TEMP_PREFIX + "*"))


HUB_LOAD = r"""
import json, sys, torch, warnings
from gen3c.pipelines.gen3c import Gen3cPipeline
from gen3c.pipelines.loading import load_generator
warnings.simplefilter("ignore")
pipe = Gen3cPipeline.from_pretrained(sys.argv[1], torch_dtype=torch.float32)
gen = load_generator(sys.argv[1], device="cpu")
print(json.dumps({"defaults": pipe.sampling_defaults, "generator": [gen.num_steps, gen.guidance, gen.chunk_frames],
                  "dtype": str(gen.pipeline.transformer.dtype), "t5": gen.pipeline.text_encoder_source}))
"""


@pytest.mark.slow
def test_a_converted_checkpoint_loads_by_its_hub_id(tmp_path):
    """``Gen3cPipeline.from_pretrained("owner/name")`` and ``load_generator`` of a converted
    checkpoint on the hub (here the shipped 5-step student). Before: diffusers refused the
    ``prompt_cache`` component ("prompt_cache/gen3c.models.prompt_cache.py as defined in
    `model_index.json` does not exist"), and the checkpoint's gen3c_model.json was never read."""
    from gen3c.models.packaged import packaged_model_dir

    folder = packaged_model_dir("tiny_fast")
    files = {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    files["text_encoder/model.safetensors"] = b"T5 is fetched only for a prompt outside the prompt cache"
    server = HubServer({"someone/gen3c-student": files})
    try:
        environ = child_env(HF_ENDPOINT=server.url, HF_HOME=str(tmp_path / "hf"))
        environ.pop("HF_HUB_OFFLINE", None)
        run = [sys.executable, "-c", HUB_LOAD, "someone/gen3c-student"]
        res = subprocess.run(run, env=environ, capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, res.stderr
        loaded = json.loads(res.stdout.splitlines()[-1])
        assert loaded == {"defaults": {"num_steps": 5, "guidance": 0.0}, "generator": [5, 0.0, 17], "dtype": "torch.float32",
                          "t5": "someone/gen3c-student"}  # fmt: skip
        assert not any("text_encoder" in r.path for r in server.requests)
        server.clear()
        offline = subprocess.run(run, env={**environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True, timeout=600)
        assert offline.returncode == 0 and json.loads(offline.stdout.splitlines()[-1]) == loaded, offline.stderr
        assert server.count() == 0  # the second run loads from huggingface_hub's cache
    finally:
        server.stop()


def test_a_converted_checkpoint_is_on_the_disk_before_its_name_is(hub, official, tmp_path, monkeypatch):
    """The conversion's last step renamed its finished folder into the cache with a bare
    os.replace: its gen3c_model.json was never flushed, nor the cache folder's entry after the
    rename, so a power cut soon after could leave a checkpoint that reads as damaged. Now it is
    published as every output is (:func:`gen3c.io.atomic.publish`)."""
    from gen3c.models.packaged import META_NAME

    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}"))), real_fsync(fd)))
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append(("replace", str(b))), real_replace(a, b)))
    checkpoint = prepare(hub, official, tmp_path).checkpoint
    last = events.index(("replace", str(checkpoint)))
    flushed = [path for kind, path in events[:last] if kind == "fsync"]
    assert any(path.endswith(f"{os.sep}{checkpoint.name}{os.sep}{META_NAME}") for path in flushed), flushed
    assert events[last + 1] == ("fsync", str(checkpoint.parent))


@pytest.mark.slow
def test_the_cli_runs_a_hub_checkpoint_at_its_own_chunk_and_size(tmp_path):
    """``gen3c generate --checkpoint_dir owner/name`` of a converted checkpoint on the hub made for
    17-frame chunks. Before: the checks before loading took GEN3C's 121 frames (its
    gen3c_model.json was read only from local folders), so the default count failed after the
    fetch ("pass 16·N+1 frames"), and --num_video_frames 17 or --chunk_frames 17 were refused up
    front ("pass 120·N+1 frames"): the messages contradicted each other."""
    from gen3c.io.video import read_video
    from gen3c.models.packaged import packaged_model_dir
    from gen3c.scenes import demo_sample_files

    folder = packaged_model_dir("tiny_fast")
    server = HubServer({"someone/gen3c-student": {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}})
    try:
        environ = child_env(HF_ENDPOINT=server.url, HF_HOME=str(tmp_path / "hf"))
        environ.pop("HF_HUB_OFFLINE", None)
        inputs = [f"--{key}={value}" for key, value in demo_sample_files().items()]
        run = [sys.executable, "-m", "gen3c", "generate", "--generator", "gen3c", "--checkpoint_dir", "someone/gen3c-student",
               *inputs, "--num_steps", "1", "--video_save_folder", str(tmp_path / "out")]  # fmt: skip
        first = subprocess.run([*run, "--video_save_name", "default"], env=environ, capture_output=True, text=True, timeout=600)
        assert first.returncode == 0, first.stderr
        assert read_video(tmp_path / "out" / "default.mp4")[0].shape == (17, 64, 112, 3)
        server.clear()
        offline = {**environ, "HF_HUB_OFFLINE": "1"}
        named = [*run, "--video_save_name", "named", "--num_video_frames", "17", "--chunk_frames", "17"]
        second = subprocess.run(named, env=offline, capture_output=True, text=True, timeout=600)
        assert second.returncode == 0, second.stderr
        assert read_video(tmp_path / "out" / "named.mp4")[0].shape == (17, 64, 112, 3) and server.count() == 0
    finally:
        server.stop()


HUB_MISTAKES = r"""
import json, sys
from gen3c.errors import Gen3cModelError
from gen3c.pipelines.gen3c import Gen3cPipeline
said = []
for source, options in json.loads(sys.argv[1]):
    try:
        Gen3cPipeline.from_pretrained(source, **options)
    except Gen3cModelError as exc:
        said.append(str(exc))
print(json.dumps(said))
"""


@pytest.mark.slow
def test_a_hub_id_that_cannot_be_fetched_says_which_part_is_missing(tmp_path):
    """A mistyped repository, a revision it lacks, a repository that is no converted checkpoint,
    and offline with nothing cached. Before: the first three read alike, "could not be fetched
    from the hub (404 Client Error.): check the path or the repository id"."""
    server = HubServer({"someone/gen3c-student": {"model_index.json": b"{}"}, "someone/raw-weights": {"model.pt": b"x"}})
    try:
        environ = child_env(HF_ENDPOINT=server.url, HF_HOME=str(tmp_path / "hf"))
        environ.pop("HF_HUB_OFFLINE", None)
        cases = [["someone/gen3c-studnet", {}], ["someone/gen3c-student", {"revision": "v9"}], ["someone/raw-weights", {}]]
        res = subprocess.run([sys.executable, "-c", HUB_MISTAKES, json.dumps(cases)], env=environ, capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, res.stderr
        typo, revision, raw = json.loads(res.stdout.splitlines()[-1])
        assert typo == (f"checkpoint 'someone/gen3c-studnet' is no local folder and no repository on the hub ({server.url}): "
                        "check the path or the repository id (a private repository needs `hf auth login`)")  # fmt: skip
        assert revision == "checkpoint 'someone/gen3c-student' is no local folder, and its hub repository has no revision 'v9': pass a branch, tag or commit it has"
        assert raw.startswith("checkpoint 'someone/raw-weights' is no local folder, and its hub repository has no model_index.json, so it is not a converted gen3c checkpoint: ")
        cases = [["someone/gen3c-student", {}]]
        offline = subprocess.run([sys.executable, "-c", HUB_MISTAKES, json.dumps(cases)], env={**environ, "HF_HUB_OFFLINE": "1"},
                                 capture_output=True, text=True, timeout=600)  # fmt: skip
        assert json.loads(offline.stdout.splitlines()[-1]) == [
            "checkpoint 'someone/gen3c-student' is no local folder, its hub repository is not in huggingface_hub's cache, and "
            "HF_HUB_OFFLINE=1 forbids fetching it: unset HF_HUB_OFFLINE"
        ], offline.stderr
    finally:
        server.stop()


def test_a_hub_id_while_the_hub_cannot_be_reached_is_one_line_at_once(tmp_path):
    """`--checkpoint_dir someone/ckpt` offline (no network, nothing cached) printed huggingface_hub's
    retries ("Retrying in 8s [Retry 5/5]", ten lines over half a minute) before a line ending in
    its words cut mid-word ("… Please check your connection and try aga")."""
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    environ = child_env(HF_ENDPOINT=f"http://127.0.0.1:{port}", HF_HOME=str(tmp_path / "hf"))
    environ.pop("HF_HUB_OFFLINE", None)
    res = subprocess.run([sys.executable, "-c", HUB_MISTAKES, json.dumps([["someone/ckpt", {}]])], env=environ, capture_output=True,
                         text=True, timeout=600)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout.splitlines()[-1]) == [
        "checkpoint 'someone/ckpt' is no local folder, its hub repository is not in huggingface_hub's cache, and the hub cannot be "
        "used (cannot reach 127.0.0.1: Connection refused): check the path, or the network (or HF_ENDPOINT)"
    ]
    assert "Retry" not in res.stderr, res.stderr


@pytest.mark.slow
def test_a_mistyped_official_id_is_named(tmp_path):
    """`--checkpoint_dir nvidia/Gen3C-Cosmos-7` (one character short) said only "no repository on
    the hub: check the path or the repository id", not the id it was close to."""
    server = HubServer({"someone/gen3c-student": {"model_index.json": b"{}"}})
    try:
        environ = child_env(HF_ENDPOINT=server.url, HF_HOME=str(tmp_path / "hf"))
        environ.pop("HF_HUB_OFFLINE", None)
        cases = [["nvidia/Gen3C-Cosmos-7", {}], ["NVIDIA/gen3c-cosmos7b", {}], ["tiny_fst", {}], ["someone/other", {}]]
        res = subprocess.run([sys.executable, "-c", HUB_MISTAKES, json.dumps(cases)], env=environ, capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, res.stderr
        said = json.loads(res.stdout.splitlines()[-1])
        end = "check the path or the repository id (a private repository needs `hf auth login`)"
        assert said == [
            f"checkpoint 'nvidia/Gen3C-Cosmos-7' is no local folder and no repository on the hub ({server.url}): did you mean 'nvidia/Gen3C-Cosmos-7B'? {end}",
            f"checkpoint 'NVIDIA/gen3c-cosmos7b' is no local folder and no repository on the hub ({server.url}): did you mean 'nvidia/Gen3C-Cosmos-7B'? {end}",
            f"checkpoint 'tiny_fst' is no local folder and no repository on the hub ({server.url}): did you mean 'tiny_fast'? {end}",
            f"checkpoint 'someone/other' is no local folder and no repository on the hub ({server.url}): {end}",
        ]
    finally:
        server.stop()


@pytest.mark.parametrize("model", ["nvidia/Gen3C-Cosmos-7B", "NVIDIA/gen3c-cosmos-7b", "someone/gen3c-student"])
def test_a_hub_id_given_to_model_names_the_way_to_run_it(model, tmp_path):
    """`--model nvidia/Gen3C-Cosmos-7B` (the id README's GEN3C-7B section names) said only "unknown
    --model: pass a checkpoint folder with --checkpoint_dir", not that GEN3C's own weights need no
    flag at all (they are fetched and converted on first use), nor that --checkpoint_dir takes a hub id."""
    from typer.testing import CliRunner

    from gen3c.cli import app

    res = CliRunner().invoke(app, ["generate", "--generator", "gen3c", "--model", model, "--input_image_path", str(tmp_path / "x.png")])
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output
    said = " ".join(res.output.split())
    if model.casefold() == DIT.casefold():
        assert f"--model '{model}' is GEN3C's own weights" in said and "leave out --model (and --checkpoint_dir)" in said, said
        assert "fetches and converts them on first use" in said and "`gen3c download`" in said, said
    else:
        assert f"unknown --model '{model}'" in said and "or a hub id with --checkpoint_dir" in said, said


def test_gen3cs_dit_alone_given_as_a_checkpoint_is_not_sent_to_a_conversion_that_refuses_it(tmp_path):
    """A folder holding GEN3C's model.pt alone (the hub cache's snapshot of nvidia/Gen3C-Cosmos-7B,
    or a download renamed) given as the checkpoint was told "run `gen3c convert FOLDER OUT_DIR`",
    and that conversion then refused FOLDER as holding one part of GEN3C's weights: a dead end.
    Now it says what the folder holds and the two ways that work."""
    from gen3c.models.convert import convert_checkpoint
    from gen3c.pipelines.loading import load_generator

    snapshot = tmp_path / "models--nvidia--Gen3C-Cosmos-7B" / "snapshots" / "f904c94"
    snapshot.mkdir(parents=True)
    (snapshot / "model.pt").write_bytes(b"")
    with pytest.raises(Gen3cModelError) as err:
        load_generator(snapshot)
    said = str(err.value)
    assert said.startswith(
        f"checkpoint {str(snapshot)!r} holds GEN3C's DiT in its original layout (model.pt), not a converted checkpoint, and "
        "`gen3c convert` needs GEN3C's tokenizer and T5 beside it: leave out checkpoint= and gen3c fetches GEN3C's weights"
    ), said  # (the Python call's spelling of --checkpoint_dir)
    assert "(`gen3c download` does it up front)" in said and f"gen3c convert {snapshot}" not in said, said
    with pytest.raises(Gen3cModelError, match="holds one part of GEN3C's weights"):  # (what the old advice led to)
        convert_checkpoint(snapshot, tmp_path / "out", log=None)
    # Gen3C-Cosmos-7B/ itself still points at the folder above, which `gen3c convert` reads.
    named = tmp_path / "official" / "Gen3C-Cosmos-7B"
    named.mkdir(parents=True)
    (named / "model.pt").write_bytes(b"")
    with pytest.raises(Gen3cModelError, match=re.escape(f"run `gen3c convert {str(named.parent)!r} OUT_DIR`")):
        load_generator(named)


def test_a_checkpoint_removed_while_it_loads_says_so(tmp_path, monkeypatch):
    """A `gen3c cache remove` in another process while a run loaded the converted checkpoint ended
    "could not load checkpoint … (… is neither a valid local path …): leave out --checkpoint_dir
    and gen3c fetches GEN3C's weights", to a run that had left it out."""
    import shutil

    from gen3c.models.packaged import packaged_model_dir
    from gen3c.pipelines import loading
    from gen3c.pipelines.gen3c import Gen3cPipeline

    folder = tmp_path / "Gen3C-Cosmos-7B-v1"
    shutil.copytree(packaged_model_dir("tiny"), folder)
    checked = loading.check_checkpoint

    def then_removed(*args, **kwargs):
        checked(*args, **kwargs)
        shutil.rmtree(folder)  # as `gen3c cache remove` does, from another process

    monkeypatch.setattr(loading, "check_checkpoint", then_removed)
    with pytest.raises(Gen3cModelError) as err:
        Gen3cPipeline.from_pretrained(folder)
    assert str(err.value) == (
        f"checkpoint {str(folder)!r} was removed while it was loading, by another process (`gen3c cache remove`?): "
        "run again (GEN3C's own weights are then fetched or converted again)"
    )


# -- what the libraries print ------------------------------------------------------------------

LIBRARY_LINES = ("Loading weights", "Writing model shards", "it/s]", "Error while downloading", "Trying to resume",
                 "Max retries", "thrown while requesting", "Retrying in")  # fmt: skip


def test_computing_the_prompt_cache_shows_gen3c_lines_not_transformers_bar(hub, official, tmp_path, capfd):
    """Adding the prompt cache (`gen3c download`, or a first run with a prompt, after a run without
    T5) printed transformers' raw "Loading weights:   0%|…| 0/11 [00:00<?, ?it/s]" bar after
    gen3c's "computing the prompt cache" line."""
    prepare(hub, official, tmp_path, prompts=())
    capfd.readouterr()
    prepare(hub, official, tmp_path, log=weights._to_stderr)
    captured = capfd.readouterr()
    assert "computing the prompt cache (T5 embeddings of the empty and the default negative prompt)" in captured.err, captured.err
    assert not [text for text in LIBRARY_LINES if text in captured.err + captured.out], captured.err


@pytest.mark.parametrize("failure", ["connection drops", "hub answers 503"])
def test_a_fetch_that_fails_says_gen3cs_line_not_the_hubs_retries(hub, official, tmp_path, monkeypatch, capfd, failure):
    """A connection that dropped at every attempt printed huggingface_hub's "Error while
    downloading from URL: peer closed connection … Trying to resume download..." six times (a
    busy hub: "HTTP Error 503 thrown while requesting HEAD URL", "Retrying in 1s [Retry 1/5]")
    before gen3c's one line; now gen3c's lines only."""
    from types import SimpleNamespace

    import huggingface_hub.file_download as hub_download
    import huggingface_hub.utils as hub_utils
    import huggingface_hub.utils._http as hub_http

    class EveryTime(dict):  # the connection drops at every attempt, not once
        def pop(self, key, default=None):
            return self.get(key, default)

    for handler in logging.getLogger("huggingface_hub").handlers:  # made on import, on pytest's stderr: on this test's, as in a program
        if type(handler) is logging.StreamHandler:
            monkeypatch.setattr(handler, "stream", sys.stderr)
    monkeypatch.setattr(hub_download, "time", SimpleNamespace(sleep=lambda _s: None))  # the retries, without their waits
    monkeypatch.setattr(hub_http, "time", SimpleNamespace(sleep=lambda _s: None))
    if failure == "connection drops":
        hub.cut = EveryTime({(DIT, "model.pt"): 100})
        said = f"cannot reach {hub.url} to fetch {DIT} (RemoteProtocolError: "
    else:
        answer(hub, 503, {"X-Error-Message": "Service Unavailable"}, lambda h: "/resolve/" in h.path)
        said = f"{hub.url} answered HTTP 503 for {DIT} ("
    hub_logger = logging.getLogger("huggingface_hub")
    level, bars_off = hub_logger.level, hub_utils.are_progress_bars_disabled()
    with pytest.raises(Gen3cModelError) as err:
        prepare(hub, official, tmp_path, prompts=(), log=weights._to_stderr)
    assert str(err.value).startswith(said), str(err.value)
    assert hub.count("GET" if failure == "connection drops" else "HEAD", "/resolve/") > 1  # it did retry
    lines = capfd.readouterr().err.splitlines()
    assert all(line.startswith("fetching ") for line in lines) and len(lines) == 1, lines  # gen3c's
    assert (hub_logger.level, hub_utils.are_progress_bars_disabled()) == (level, bars_off)  # the user's settings again


def test_a_t5_repository_removed_each_time_a_run_would_read_it_is_the_one_named(hub, official, tmp_path, monkeypatch):
    """When `gen3c cache remove` in other processes kept deleting T5's hub repository as a run was
    about to hold it, the run's refusal named the converted checkpoint, which was there all along."""
    t5_folder = tmp_path / "hub" / "models--google-t5--t5-11b"
    hold = weights.hold_for_reading
    monkeypatch.setattr(weights, "hold_for_reading", lambda folder: Path(folder) != t5_folder and hold(folder))
    with pytest.raises(Gen3cModelError) as err:
        prepare(hub, official, tmp_path, prompts=("a prompt outside the prompt cache",))
    assert str(err.value).startswith(f"{t5_folder} was removed three times while this run was about to read it"), str(err.value)


def test_a_thread_waiting_for_a_removal_does_not_stop_the_other_threads_holds(tmp_path):
    """hold_for_reading waited for a removal under weights' process-wide guard: while one thread
    waited for `gen3c cache remove` in another process to delete its folder, every other thread of
    the process that held a folder (a load), listed the cache or removed something waited too —
    this process's own removal of a second folder for good (it waited on the guard, the waiting
    thread on that removal's lock)."""
    import fcntl
    import threading

    being_removed, other = tmp_path / "being_removed", tmp_path / "other"
    being_removed.mkdir()
    other.mkdir()
    fd = os.open(being_removed, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)  # as `gen3c cache remove` holds it while deleting it
    asks, flock, results = threading.Event(), fcntl.flock, {}

    def flock_telling(fd_, operation):
        if operation == fcntl.LOCK_SH:
            asks.set()
        return flock(fd_, operation)

    def hold(folder: Path) -> None:
        results[folder] = weights.hold_for_reading(folder)

    waiting = threading.Thread(target=hold, args=(being_removed,))
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(fcntl, "flock", flock_telling)
            waiting.start()
            assert asks.wait(timeout=60)
        meanwhile = threading.Thread(target=hold, args=(other,))
        meanwhile.start()
        meanwhile.join(timeout=30)
        assert not meanwhile.is_alive() and results == {other: True}
    finally:
        os.close(fd)  # (the removal ends, having deleted nothing)
        waiting.join()
    assert results == {other: True, being_removed: True}
