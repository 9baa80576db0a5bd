"""Nothing lost: a long run keeps each finished chunk on disk, and ``--resume`` after SIGKILL,
Ctrl-C or an error makes the very video an uninterrupted run makes."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from child_env import child_env
from typer.testing import CliRunner

import gen3c.pipelines.resume
from gen3c.cache import Cache3D
from gen3c.cameras import Cameras, intrinsics_from_fov
from gen3c.cli import app
from gen3c.errors import Gen3cInputError
from gen3c.io.video import read_video
from gen3c.pipelines.preview import PreviewGenerator
from gen3c.pipelines.request import GenerationRequest, run_request
from gen3c.pipelines.resume import partial_dir

DEMO = ["demo", "--num_video_frames", "241", "--resolution", "64x112"]
runner = CliRunner()


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The demo's 241 frames (2 chunks) made in one go: (mp4 bytes, decoded frames)."""
    folder = tmp_path_factory.mktemp("whole")
    res = runner.invoke(app, [*DEMO, "--video_save_folder", str(folder)])
    assert res.exit_code == 0, res.output
    assert not partial_dir(folder, "demo").exists()  # a finished run removes its kept chunks
    return (folder / "demo.mp4").read_bytes(), read_video(folder / "demo.mp4")[0]


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM], ids=["SIGKILL", "SIGINT", "SIGTERM"])
def test_killed_run_resumes_to_the_identical_video(tmp_path, uninterrupted, sig):
    env = child_env(OMP_NUM_THREADS="1")
    args = [*DEMO, "--video_save_folder", str(tmp_path)]
    proc = subprocess.Popen([sys.executable, "-m", "gen3c", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    chunk0 = partial_dir(tmp_path, "demo") / "chunk_0000"
    deadline = time.monotonic() + 120
    while not chunk0.is_dir():
        assert proc.poll() is None, "the run ended before its first chunk was kept: " + proc.stdout.read()
        assert time.monotonic() < deadline
        time.sleep(0.002)
    proc.send_signal(sig)
    output, _ = proc.communicate(timeout=60)
    # SIGTERM (timeout, a scheduler's stop) unwinds as Ctrl-C does, with the shell's code 128 + 15.
    assert proc.returncode == {signal.SIGKILL: -9, signal.SIGINT: 130, signal.SIGTERM: 143}[sig], output
    assert not (tmp_path / "demo.mp4").exists()  # no partial video under the output's name
    if sig != signal.SIGKILL:
        assert "kept in" in output and "--resume" in output
        assert ("terminated" if sig == signal.SIGTERM else "interrupted") in output
        assert not list(tmp_path.glob(".*part*"))  # the video's temporary file went with the run
    # Without --resume the kept chunks are not silently thrown away.
    res = runner.invoke(app, args)
    assert res.exit_code == 2 and "--resume" in res.output
    res = runner.invoke(app, [*args, "--resume"])
    assert res.exit_code == 0, res.output
    video, frames = uninterrupted
    assert (tmp_path / "demo.mp4").read_bytes() == video
    assert np.array_equal(read_video(tmp_path / "demo.mp4")[0], frames)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.mp4", "demo_cameras.json", "demo_run.json"]


def test_a_rank_whose_torchrun_was_killed_stops_and_says_what_it_kept(tmp_path):
    """torchrun killed outright (SIGKILL: no signal passed on) once chunk 1 was kept: its worker
    (here the demo under a shell standing in for torchrun, TORCHELASTIC_RUN_ID set as torchrun
    sets it) stops within seconds as on torchrun's SIGTERM, saying which chunks are kept and
    --resume. (It ran on without its launcher; a rank waiting on a peer waited gloo's 30 minutes.)"""
    log = tmp_path / "log.txt"
    env = child_env(OMP_NUM_THREADS="1", TORCHELASTIC_RUN_ID="test")
    # At the demo's own 352x640 its second chunk takes seconds, well past the worker's 1 s watch of its
    # launcher; at 64x112 it could end first (as the preview got faster) and leave nothing to stop.
    demo = " ".join([*DEMO[:-1], "352x640"])
    command = f'"{sys.executable}" -m gen3c {demo} --video_save_folder "{tmp_path}" > "{log}" 2>&1 & echo $!; wait'
    launcher = subprocess.Popen(["sh", "-c", command], stdout=subprocess.PIPE, text=True, env=env)
    worker = int(launcher.stdout.readline())
    chunk0 = partial_dir(tmp_path, "demo") / "chunk_0000"
    deadline = time.monotonic() + 120
    while not chunk0.is_dir():
        assert launcher.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.01)
    launcher.kill()
    launcher.wait()
    gone = time.monotonic() + 15

    def running() -> bool:
        try:
            return Path(f"/proc/{worker}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
        except OSError:
            return False

    while running():
        assert time.monotonic() < gone, "the worker runs on without its launcher"
        time.sleep(0.1)
    output = " ".join(log.read_text().split())
    assert f"terminated: 1 of 2 chunks is kept in {str(partial_dir(tmp_path, 'demo'))!r}: run the same command with --resume to continue" in output
    assert not (tmp_path / "demo.mp4").exists()


class Interrupting(PreviewGenerator):
    """The preview, pressing Ctrl-C (or failing) when asked for chunk ``stop_at`` (0-based)."""

    def __init__(self, stop_at: int, error: type[BaseException] = KeyboardInterrupt) -> None:
        super().__init__()
        self.stop_at, self.error, self.calls = stop_at, error, 0

    def generate(self, *args, **kwargs):
        if self.calls == self.stop_at:
            raise self.error("stop")
        self.calls += 1
        return super().generate(*args, **kwargs)


def box_request(box_scene, folder, **changes) -> GenerationRequest:
    image, depth, _, _ = box_scene
    return GenerationRequest(
        input_image_path=str(image), depth_path=str(depth), fov=60.0, resolution="32x48", num_video_frames=25,
        chunk_frames=9, video_save_folder=str(folder), save_buffer=True, save_point_cloud=True, **changes,
    )  # fmt: skip


def test_interrupted_request_resumes_with_buffers_and_point_cloud(box_scene, tmp_path):
    whole = run_request(box_request(box_scene, tmp_path / "a"))
    request = box_request(box_scene, tmp_path / "b")
    with pytest.raises(KeyboardInterrupt, match=r"2 of 3 chunks are kept"):
        run_request(request, generator=Interrupting(2))
    assert len(list(partial_dir(tmp_path / "b", "output").glob("chunk_*"))) == 2
    resumed = run_request(request, resume=True)
    assert len(resumed.result.chunks) == 3
    for key in ("video", "buffer_masks", "point_cloud"):
        assert resumed.paths[key].read_bytes() == whole.paths[key].read_bytes(), key
    assert not partial_dir(tmp_path / "b", "output").exists()




@pytest.mark.parametrize(
    ("error", "raised", "said"),
    [(Gen3cInputError, Gen3cInputError, r"^stop; "), (torch.OutOfMemoryError, Gen3cInputError, r"^the GPU ran out of memory while .*; "),
     (RuntimeError, RuntimeError, None)],
    ids=["one-line error", "out of memory", "unexpected error"],
)  # fmt: skip
def test_a_run_failing_in_chunk_3_says_once_what_is_kept_and_resumes(box_scene, tmp_path, error, raised, said):
    """An error in chunk 3 (an encoder killed, the GPU's memory, a driver's or gen3c's own failure)
    says, once, that 2 of 3 chunks are kept where and that --resume continues them: the one-line
    error ends with it, an unexpected one (printed with its traceback) carries it as a note. Then
    --resume makes the uninterrupted run's outputs. (Only Ctrl-C said so: an error left the chunks
    on disk unsaid.)"""
    import re

    whole = run_request(box_request(box_scene, tmp_path / "a"))
    request = box_request(box_scene, tmp_path / "b")
    kept = f"2 of 3 chunks are kept in {str(partial_dir(tmp_path / 'b', 'output'))!r}: run the same command with --resume to continue"
    with pytest.raises(raised) as stopped:
        run_request(request, generator=Interrupting(2, error))
    if said is None:
        assert str(stopped.value) == "stop" and stopped.value.__notes__ == [kept]
    else:
        assert re.match(said + re.escape(kept) + "$", str(stopped.value)) and not getattr(stopped.value, "__notes__", None)
    resumed = run_request(request, resume=True)
    for key in ("video", "buffer_masks", "point_cloud", "cameras"):
        assert resumed.paths[key].read_bytes() == whole.paths[key].read_bytes(), key


def test_a_run_failing_in_its_first_chunk_or_unable_to_resume_says_nothing_of_kept_chunks(box_scene, tmp_path):
    """An error before any chunk is finished keeps nothing and says nothing of --resume; a kept
    chunk that --resume cannot read is named with what to do about it, not told to --resume again."""
    request = box_request(box_scene, tmp_path)
    with pytest.raises(Gen3cInputError, match=r"^stop$"):
        run_request(request, generator=Interrupting(0, Gen3cInputError))
    assert not partial_dir(tmp_path, "output").exists()
    with pytest.raises(KeyboardInterrupt):
        run_request(request, generator=Interrupting(2))
    (partial_dir(tmp_path, "output") / "chunk_0001" / "state.safetensors").write_bytes(b"cut")
    with pytest.raises(Gen3cInputError, match=r"is unreadable .*: delete .*chunk_0001.* to start over$") as refused:
        run_request(request, resume=True)
    assert str(refused.value).count("--resume") == 2  # its "--resume:" and "--resume makes it again", no "with --resume to continue"


def test_the_gui_s_failed_long_run_does_not_offer_a_resume(box_scene, tmp_path):
    """The GUI drops a failed run's kept chunks (it has no --resume): its error says nothing of them."""
    with pytest.raises(Gen3cInputError, match=r"^stop$"):
        run_request(box_request(box_scene, tmp_path), generator=Interrupting(2, Gen3cInputError), resume_with=None)


def test_a_rank_0_left_by_a_dead_rank_says_what_it_kept(box_scene, tmp_path, monkeypatch):
    """Rank 0 of a multi-GPU run whose peer died in chunk 3 (gloo: "Connection closed by peer")
    says so in one line, with the chunks it kept and --resume."""
    import gen3c.parallel
    import gen3c.pipelines.request

    image, depth, _, _ = box_scene
    monkeypatch.setattr(gen3c.parallel, "left_by_a_peer", lambda exc: "Connection closed by peer" in str(exc))
    failing = Interrupting(2, lambda _: RuntimeError("[gloo] Connection closed by peer"))
    monkeypatch.setattr(gen3c.pipelines.request, "make_generator", lambda request, progress: failing)
    res = runner.invoke(app, ["generate", "--input_image_path", str(image), "--depth_path", str(depth), "--fov", "60", "--resolution", "32x48",
                              "--num_video_frames", "25", "--chunk_frames", "9", "--video_save_folder", str(tmp_path)])  # fmt: skip
    kept = partial_dir(tmp_path, "output")
    assert res.exit_code == 1
    assert res.output.strip().splitlines()[-1] == (
        "error: another rank of this run stopped (its own line, or torchrun's summary of the failed ranks, says why), so this one stops "
        f"too; 2 of 3 chunks are kept in {str(kept)!r}: run the same command with --resume to continue"
    )
    assert "Traceback" not in res.output


def test_a_run_stopped_after_its_last_chunk_was_kept_resumes_to_the_same_outputs(box_scene, tmp_path, monkeypatch):
    """Ctrl-C as the outputs are finished, every chunk kept: --resume makes no chunk, re-encodes them all."""
    import gen3c.pipelines.camera_video as camera_video

    whole = run_request(box_request(box_scene, tmp_path / "a"))
    request = box_request(box_scene, tmp_path / "b")

    def stop(*args, **kwargs):
        raise KeyboardInterrupt("stop")

    with monkeypatch.context() as patch:
        patch.setattr(camera_video.OutputWriter, "finish", stop)
        with pytest.raises(KeyboardInterrupt, match=r"3 of 3 chunks are kept"):
            run_request(request)
    gen = Interrupting(0)  # any chunk it is asked for is an error
    resumed = run_request(request, generator=gen, resume=True)
    assert gen.calls == 0 and resumed.result.frames is None
    for key in ("video", "buffer_masks", "point_cloud", "cameras"):
        assert resumed.paths[key].read_bytes() == whole.paths[key].read_bytes(), key
    assert not partial_dir(tmp_path / "b", "output").exists()

@pytest.mark.parametrize("kind", ["vipe", "multiview"])
def test_interrupted_video_and_multiview_runs_resume_to_the_same_outputs(tmp_path, kind):
    """The 4D cache of a video (from a starting frame, past the clip's end) and the key views of a
    multi-view input are rebuilt from the input on --resume: the same video, buffers and cameras."""
    from layouts import scene, write_multiview, write_vipe

    rgb, depth, _, w2c, K = scene(12, 36, 64)
    if kind == "vipe":
        inputs = {"vipe_path": str(write_vipe(tmp_path / "vipe", "c", rgb, depth, w2c, K)), "vipe_starting_frame_idx": 3,
                  "trajectory": "right"}  # fmt: skip
    else:
        w2cs_all = w2c[torch.arange(25).clamp(max=11)]
        inputs = {"multiview_npz": str(write_multiview(tmp_path / "mv.npz", rgb[::5], depth[::5], depth[::5] > 0, K[::5], w2c[::5], w2cs_all))}

    def request(folder):
        return GenerationRequest(resolution="32x64", num_video_frames=25, chunk_frames=9, save_buffer=True, video_save_folder=str(folder), **inputs)

    whole = run_request(request(tmp_path / "a"))
    with pytest.raises(KeyboardInterrupt, match=r"2 of 3 chunks are kept"):
        run_request(request(tmp_path / "b"), generator=Interrupting(2))
    resumed = run_request(request(tmp_path / "b"), resume=True)
    for key in ("video", "buffer_masks", "cameras"):
        assert resumed.paths[key].read_bytes() == whole.paths[key].read_bytes(), key
    assert read_video(resumed.paths["video"])[0].shape == (25, 32, 64 * (1 + (2 if kind == "multiview" else 1)), 3)


def test_interrupt_right_after_a_chunk_is_renamed_into_place_keeps_it(box_scene, tmp_path, monkeypatch):
    """Ctrl-C can arrive between the rename that finishes a chunk and the count of it: the chunk
    on disk is kept and named, not removed as if nothing had finished."""
    import gen3c.pipelines.resume as resume

    real_replace = resume.os.replace

    def replace_then_interrupt(src, dst):
        real_replace(src, dst)
        if Path(dst).name == "chunk_0000":
            raise KeyboardInterrupt

    monkeypatch.setattr(resume.os, "replace", replace_then_interrupt)
    request = box_request(box_scene, tmp_path)
    with pytest.raises(KeyboardInterrupt, match=r"1 of 3 chunks is kept"):
        run_request(request)
    monkeypatch.undo()
    assert [p.name for p in partial_dir(tmp_path, "output").glob("chunk_*")] == ["chunk_0000"]
    assert len(run_request(request, resume=True).result.chunks) == 3

def test_ctrl_c_while_a_chunk_is_kept_leaves_only_finished_chunks(box_scene, tmp_path, monkeypatch):
    """Ctrl-C while chunk 2's frames are saved as PNGs: the frames not yet started are dropped and
    the half-saved chunk goes (it stayed as a hidden folder until a --resume); the finished chunk 1
    stays for --resume, with plain permissions."""
    import cv2

    encoded = []
    imencode = cv2.imencode

    def encode(*args, **kwargs):
        encoded.append(1)
        if len(encoded) == 2 * 9 + 3:  # chunk 2 begun (chunk 1: 9 frames and 9 buffer masks)
            os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)  # as long as a large frame takes
        return imencode(*args, **kwargs)

    monkeypatch.setattr(cv2, "imencode", encode)
    # Two savers, as on CI's 2 cores: with 8 (a 16-core host) the ones already past the queue
    # when the signal lands can outnumber the bound below, dropped frames or not.
    monkeypatch.setattr(gen3c.pipelines.resume, "_THREADS", 2)
    request = box_request(box_scene, tmp_path)
    with pytest.raises(KeyboardInterrupt, match=r"1 of 3 chunks is kept"):
        run_request(request)
    assert len(encoded) < 2 * 9 + 3 + 8  # the rest of chunk 2's 16 new PNGs were not made
    assert sorted(p.name for p in partial_dir(tmp_path, "output").iterdir()) == ["chunk_0000", "run.json"]
    umask = os.umask(0)
    os.umask(umask)
    kept = partial_dir(tmp_path, "output") / "chunk_0000"  # plain permissions, not mkdtemp's and safetensors' owner-only
    assert {p.stat().st_mode & 0o777 for p in [kept, *kept.iterdir()]} == {0o777 & ~umask, 0o666 & ~umask}
    monkeypatch.undo()
    assert len(run_request(request, resume=True).result.chunks) == 3


def test_a_damaged_kept_frame_is_named_in_one_line(box_scene, tmp_path):
    """A kept PNG cut short or swapped for an image of another size: --resume names that file and
    keeps the chunks (it said "holds 8 readable video frames, not 8" for the first, and raised
    numpy's ValueError, or encoded the video at the wrong size, for the second)."""
    import re

    import cv2

    request = box_request(box_scene, tmp_path)
    with pytest.raises(KeyboardInterrupt):
        run_request(request, generator=Interrupting(2))
    chunk = partial_dir(tmp_path, "output") / "chunk_0001"
    cut = chunk / "video_00003.png"
    data = cut.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(Gen3cInputError, match=rf"^--resume: {re.escape(repr(str(cut)))} is unreadable: delete {re.escape(repr(str(chunk)))} and --resume makes it again, or delete '.*output\.partial' to start over$"):
        run_request(request, resume=True)
    cut.write_bytes(data)
    for frame in chunk.glob("video_*.png"):  # the whole chunk of another size: chunk 0 sets the size
        cv2.imwrite(str(frame), np.zeros((34, 48, 3), np.uint8))
    with pytest.raises(Gen3cInputError, match=r"^--resume: .*chunk_0001/video_00000\.png' is not the size of the run's other frames"):
        run_request(request, resume=True)
    assert len(list(partial_dir(tmp_path, "output").glob("chunk_*"))) == 2
    assert not (tmp_path / "output.mp4").exists()


@pytest.mark.parametrize("damage", ["a frame cut short", "a frame missing", "its state cut short"])
def test_a_damaged_kept_chunk_is_deleted_alone_as_the_error_says_and_the_run_resumes(box_scene, tmp_path, damage):
    """A damaged kept chunk said "delete output.partial to start over", the chunks before it (each
    minutes of diffusion with the gen3c model) lost with it; now it names the chunk to delete
    alone, and --resume then makes it and the chunks after it again, to the uninterrupted run's
    video; the cause is the system's words, the path said once."""
    import re

    whole = run_request(box_request(box_scene, tmp_path / "a"))
    request = box_request(box_scene, tmp_path / "b")
    with pytest.raises(KeyboardInterrupt):
        run_request(request, generator=Interrupting(2))
    kept = partial_dir(tmp_path / "b", "output")
    damaged = kept / ("chunk_0001" if damage == "its state cut short" else "chunk_0000")
    after = "" if damaged.name == "chunk_0001" else " with the chunk after it"
    if damage == "a frame cut short":
        frame = damaged / "video_00002.png"
        frame.write_bytes(frame.read_bytes()[:40])
        what = rf"{re.escape(repr(str(frame)))} is unreadable"
    elif damage == "a frame missing":
        (damaged / "buffer_masks_00002.png").unlink()
        what = rf"{re.escape(repr(str(damaged)))} holds \d+ buffer_masks frames, not \d+"
    else:
        state = damaged / "state.safetensors"
        state.write_bytes(state.read_bytes()[:100])
        what = rf"{re.escape(repr(str(state)))} is unreadable \([^/]*\)"
    advice = rf"delete {re.escape(repr(str(damaged)))} and --resume makes it again{after}, or delete {re.escape(repr(str(kept)))} to start over"
    with pytest.raises(Gen3cInputError, match=rf"^--resume: {what}: {advice}$"):
        run_request(request, resume=True)
    shutil.rmtree(damaged)
    with pytest.warns(UserWarning) if after else contextlib.nullcontext():
        resumed = run_request(request, resume=True)
    assert resumed.paths["video"].read_bytes() == whole.paths["video"].read_bytes() and not kept.exists()


def test_a_file_named_as_a_kept_chunk_is_one_line_and_left_alone(box_scene, tmp_path):
    """A file where a finished chunk's folder goes (the next chunk's name, a kept chunk's folder
    made into a file, the first's): one line names it, with --resume or without, and it and the
    kept chunks stay (--resume stopped on NotADirectoryError's traceback renaming the chunk it
    made onto it; without --resume a file chunk_0000 read as "holds 0 finished chunks: pass --resume")."""
    import re

    request = box_request(box_scene, tmp_path)
    with pytest.raises(KeyboardInterrupt):
        run_request(request, generator=Interrupting(2))
    path = partial_dir(tmp_path, "output")
    kept = {name: (path / name).rename(tmp_path / name) for name in ("chunk_0000", "chunk_0001")}
    for name in ("chunk_0002", "chunk_0001", "chunk_0000"):
        for chunk, moved in kept.items():  # chunk_0001 (and 0000) a file, the chunks before it kept
            if chunk < name:
                moved.rename(path / chunk)
        (path / name).write_text("mine")
        for resume in (True, False):
            with pytest.raises(Gen3cInputError) as refused:
                run_request(request, resume=resume)
            assert re.fullmatch(rf"{re.escape(repr(str(path / name)))} is where a long run keeps a finished chunk's folder, but it is a file "
                                rf"gen3c did not write: move it away, or delete {re.escape(repr(str(path)))} to start over", str(refused.value))  # fmt: skip
        assert (path / name).read_text() == "mine" and not (tmp_path / "output.mp4").exists()
        assert gen3c.pipelines.resume.not_a_run_folder(path) == f"it holds '{name}', which gen3c does not write there"
        assert sorted(p.name for p in path.iterdir()) == sorted({*[c for c in kept if c < name], "run.json", name})
        (path / name).unlink()
        for chunk, moved in kept.items():
            if chunk < name:
                (path / chunk).rename(moved)
    for chunk, moved in kept.items():
        moved.rename(path / chunk)
    assert len(run_request(request, resume=True).result.chunks) == 3 and not path.exists()


def test_a_chunk_deleted_by_hand_is_made_again_with_the_chunks_after_it(box_scene, tmp_path):
    """A damaged chunk deleted alone (not its folder): --resume makes it and the kept chunks after
    it again, saying so, to the uninterrupted run's outputs (it made the chunk again, then stopped
    on an OSError traceback renaming the next one onto the kept folder of that name)."""
    whole = run_request(box_request(box_scene, tmp_path / "a"))
    request = box_request(box_scene, tmp_path / "b")
    with pytest.raises(KeyboardInterrupt, match=r"2 of 3 chunks are kept"):
        run_request(request, generator=Interrupting(2))
    kept = partial_dir(tmp_path / "b", "output")
    shutil.rmtree(kept / "chunk_0000")
    with pytest.warns(UserWarning, match=r"^--resume: '.*output\.partial' lacks chunk_0000: chunk_0001, which continued it, is made again too$"):
        resumed = run_request(request, resume=True)
    assert len(resumed.result.chunks) == 3
    for key in ("video", "buffer_masks", "point_cloud", "cameras"):
        assert resumed.paths[key].read_bytes() == whole.paths[key].read_bytes(), key
    assert not kept.exists()


@pytest.mark.parametrize("where", ["frames", "state", "flush"])
def test_a_disk_that_fills_up_as_a_chunk_is_kept_is_one_line_and_the_run_resumes(box_scene, tmp_path, monkeypatch, where):
    """The disk fills up while chunk 2's frames (or its state) are kept, or as the folder it was
    renamed into is flushed (NFS says so only then): one line says so, what is kept and how to go
    on, the half-kept chunk's files are gone (its space freed), and --resume makes the
    uninterrupted run's outputs. (It was a traceback calling it a bug in gen3c, the half-kept
    chunk left on the full disk.)"""
    import errno
    import re
    from pathlib import Path

    import safetensors.torch

    whole = run_request(box_request(box_scene, tmp_path / "a"))
    request = box_request(box_scene, tmp_path / "b")
    full = OSError(errno.ENOSPC, "No space left on device")
    if where == "frames":
        write_bytes = Path.write_bytes

        def filling(path, data):
            if path.parent.name.startswith(".chunk_0001"):
                raise full
            return write_bytes(path, data)

        monkeypatch.setattr(Path, "write_bytes", filling)
    elif where == "state":
        save_file, calls = safetensors.torch.save_file, []

        def filling(*args, **kwargs):
            calls.append(1)
            if len(calls) == 2:
                raise full
            return save_file(*args, **kwargs)

        monkeypatch.setattr(safetensors.torch, "save_file", filling)
    else:  # chunk 2 is in place, its folder's flush fails: it is kept
        publish, calls = gen3c.pipelines.resume.publish, []

        def filling(*args):
            publish(*args)
            calls.append(1)
            if len(calls) == 2:
                raise full

        monkeypatch.setattr(gen3c.pipelines.resume, "publish", filling)
    finished = 2 if where == "flush" else 1
    kept = partial_dir(tmp_path / "b", "output")
    message = (rf"^the disk of {re.escape(repr(str(kept)))} filled up while chunk 2 was kept \(No space left on device\); {finished} of 3 chunks "
               rf"{'is' if finished == 1 else 'are'} kept there: free some space, then run the same command with --resume$")  # fmt: skip
    with pytest.raises(Gen3cInputError, match=message):
        run_request(request)
    assert sorted(p.name for p in kept.iterdir()) == [f"chunk_{k:04d}" for k in range(finished)] + ["run.json"]
    assert [p.name for p in (tmp_path / "b").iterdir()] == ["output.partial"]  # no output, no temporary file
    monkeypatch.undo()
    resumed = run_request(request, resume=True)
    for key in ("video", "buffer_masks", "point_cloud", "cameras"):
        assert resumed.paths[key].read_bytes() == whole.paths[key].read_bytes(), key


def test_a_video_writer_failing_after_a_chunk_was_kept_leaves_no_half_kept_chunk(box_scene, tmp_path, monkeypatch):
    """The video's writer fails (an I/O error) after chunk 2's frames were kept, before the chunk is
    finished: only the finished chunk stays, and --resume makes the uninterrupted run's video. (The
    half-kept chunk's frames stayed on disk, hidden, until a --resume.)"""
    import gen3c.pipelines.camera_video as camera_video

    whole = run_request(box_request(box_scene, tmp_path / "a"))
    request = box_request(box_scene, tmp_path / "b")
    write_arrays, calls = camera_video.OutputWriter.write_arrays, []

    def failing(self, arrays):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(5, "Input/output error")
        return write_arrays(self, arrays)

    monkeypatch.setattr(camera_video.OutputWriter, "write_arrays", failing)
    with pytest.raises(OSError, match="Input/output error"):
        run_request(request)
    kept = partial_dir(tmp_path / "b", "output")
    assert sorted(p.name for p in kept.iterdir()) == ["chunk_0000", "run.json"]
    monkeypatch.undo()
    resumed = run_request(request, resume=True)
    for key in ("video", "buffer_masks", "point_cloud"):
        assert resumed.paths[key].read_bytes() == whole.paths[key].read_bytes(), key


def test_resume_removes_the_temporary_files_a_killed_run_left_and_only_those(box_scene, tmp_path):
    """A run killed (SIGKILL) while its files went into place leaves their temporary files: --resume
    removes every output's (the companions' too: only the videos' went), never another run's
    (``output.v2``'s went too)."""
    request = box_request(box_scene, tmp_path)
    with pytest.raises(KeyboardInterrupt):
        run_request(request, generator=Interrupting(1))
    own = [".output.x1.part.mp4", ".output_buffer_masks.x2.part.mp4", ".output_cameras.x3.part.json", ".output.x4.part.ply", ".output_run.x5.part.json"]
    other = [".output.v2.x6.part.mp4", ".output_x.x7.part.json"]
    for name in own + other:
        (tmp_path / name).write_bytes(b"left")
    assert len(run_request(request, resume=True).result.chunks) == 3
    assert sorted(p.name for p in tmp_path.glob(".*")) == sorted(other)



def test_starting_over_removes_the_temporary_files_a_killed_run_left(box_scene, tmp_path):
    """SIGKILL leaves the video's temporary file beside the kept chunks; deleting those to start
    over, as the refusal says, left that file (the video so far) for good."""
    import shutil

    request = box_request(box_scene, tmp_path)
    with pytest.raises(KeyboardInterrupt):
        run_request(request, generator=Interrupting(1))
    own, other = [".output.x1.part.mp4", ".output_cameras.x3.part.json"], [".output.v2.x6.part.mp4"]
    for name in own + other:
        (tmp_path / name).write_bytes(b"left")
    shutil.rmtree(partial_dir(tmp_path, "output"))
    assert len(run_request(request).result.chunks) == 3
    assert sorted(p.name for p in tmp_path.glob(".*")) == sorted(other)


def test_resume_refuses_another_request_and_cleans_up_empty_runs(box_scene, tmp_path):
    request = box_request(box_scene, tmp_path)
    with pytest.raises(KeyboardInterrupt):
        run_request(request, generator=Interrupting(1))
    changed = dataclasses.replace(request, movement_distance=0.5)
    with pytest.raises(Gen3cInputError, match=r"different request \(changed: movement_distance\)"):
        run_request(changed, resume=True)
    with pytest.raises(Gen3cInputError, match=r"holds 1 finished chunk of an interrupted run.*pass --resume"):
        run_request(request)
    # An error in the first chunk leaves nothing behind: there is nothing to resume.
    other = dataclasses.replace(request, video_save_name="other")
    with pytest.raises(ValueError, match="stop"):
        run_request(other, generator=Interrupting(0, ValueError))
    assert not partial_dir(tmp_path, "other").exists() and not list(tmp_path.glob("other*")) and not list(tmp_path.glob(".other*"))
    # --resume with nothing to resume says so and makes the whole video.
    with pytest.warns(UserWarning, match="no unfinished run"):
        out = run_request(other, resume=True)
    assert len(read_video(out.paths["video"])[0]) == 25


class Configured(Interrupting):
    """:class:`Interrupting`, saying what it runs with as the gen3c generator does
    (:meth:`~gen3c.pipelines.gen3c.Gen3cGenerator.settings`); ``chunk_frames``: its fixed chunk."""

    def __init__(self, stop_at: int = -1, chunk_frames: int | None = None, **settings) -> None:
        super().__init__(stop_at)
        self.chunk_frames = chunk_frames
        self._settings = {"sampler": "euler", "num_steps": 35, "guidance": 7.0, "attention": "sdpa", "checkpoint": "/models/a",
                          "checkpoint_checksums_sha256": "aa", "device": "cuda:0", "guidance_batch": True, **settings}  # fmt: skip

    def settings(self) -> dict:
        return dict(self._settings)


def test_resume_refuses_another_checkpoint_or_sampler_and_takes_how_it_runs(box_scene, tmp_path):
    """The same request on a swapped checkpoint or another step count would continue the video
    made otherwise: refused, naming what differs; where it runs (device, batching, an exact attention
    kernel for another) and a checkpoint moved to another folder (the same checksums) change no
    frame beyond rounding: resumed."""
    request = box_request(box_scene, tmp_path)
    with pytest.raises(KeyboardInterrupt):
        run_request(request, generator=Configured(1))
    with pytest.raises(Gen3cInputError, match=r"^--resume: '.*output\.partial' was made with other settings \(num_steps: recorded 35, now 20\): "
                       r"resume with the interrupted run's settings, or delete that folder to start over$"):
        run_request(request, generator=Configured(num_steps=20), resume=True)
    with pytest.raises(Gen3cInputError, match=r"\(checkpoint_checksums_sha256: recorded 'aa', now 'bb'; sampler: recorded 'euler', now 'dpm'\)"):
        run_request(request, generator=Configured(checkpoint_checksums_sha256="bb", sampler="dpm"), resume=True)
    with pytest.raises(Gen3cInputError, match=r"\(checkpoint: recorded None, now '/models/a'; checkpoint_checksums_sha256: recorded 'aa', now None\)"):
        run_request(request, generator=Configured(checkpoint_checksums_sha256=None), resume=True)
    with pytest.raises(Gen3cInputError, match=r"\(attention: recorded 'exact', now 'cudnn_fp8'\)"):  # quantised attention
        run_request(request, generator=Configured(attention="cudnn_fp8"), resume=True)
    # a GPU where FlashAttention-4 runs after one that fell back to SDPA: rounding only
    moved = Configured(checkpoint="/elsewhere/a", device="cpu", guidance_batch=False, attention="flash4")
    assert len(run_request(request, generator=moved, resume=True).result.chunks) == 3


def test_resume_refuses_another_chunk_plan(box_scene, tmp_path):
    """A checkpoint of another chunk length under the same request: its chunks would not line up
    with the kept ones."""
    request = dataclasses.replace(box_request(box_scene, tmp_path), chunk_frames=None)
    with pytest.raises(KeyboardInterrupt):
        run_request(request, generator=Configured(1, chunk_frames=9))
    with pytest.raises(Gen3cInputError, match=r"other settings \(chunk plan: recorded 3 chunks of 9 frames, now 2 chunks of 13 frames\)"):
        run_request(request, generator=Configured(chunk_frames=13), resume=True)
    assert len(run_request(request, generator=Configured(chunk_frames=9), resume=True).result.chunks) == 3


def test_a_run_interrupted_before_numpy_settings_were_json_numbers_resumes(box_scene, tmp_path):
    """A generator handed over from Python whose settings hold numpy numbers: an earlier gen3c wrote
    them into run.json as their text ("0.5"), this one as numbers. Resuming such an interrupted run
    after the upgrade must continue it (it was refused: "strength: recorded '0.5', now 0.5");
    a setting that did change is still refused."""
    import json

    request = box_request(box_scene, tmp_path)
    with pytest.raises(KeyboardInterrupt):
        run_request(request, generator=Configured(1, strength=np.float32(0.5), steps=np.int64(3), tiled=np.bool_(True)))
    record_path = partial_dir(tmp_path, "output") / "run.json"
    record = json.loads(record_path.read_text())
    assert record["generator_settings"]["strength"] == 0.5 and record["generator_settings"]["tiled"] is True
    record["generator_settings"].update(strength="0.5", steps="3", tiled="True")  # as json.dumps(default=str) wrote them
    record_path.write_text(json.dumps(record, indent=1))
    with pytest.raises(Gen3cInputError, match=r"other settings \(strength: recorded '0\.5', now 0\.25\)"):
        run_request(request, generator=Configured(strength=np.float32(0.25), steps=np.int64(3), tiled=np.bool_(True)), resume=True)
    resumed = run_request(request, generator=Configured(strength=np.float32(0.5), steps=np.int64(3), tiled=np.bool_(True)), resume=True)
    assert len(resumed.result.chunks) == 3


def test_a_generator_setting_of_nan_resumes_as_itself(box_scene, tmp_path):
    """A handed-over generator reporting a setting of NaN (a numpy one as a Python one): run.json
    holds NaN, which equals nothing, itself included, so every --resume was refused ("other
    settings (threshold: recorded nan, now nan)"); a number in its place is still refused."""
    request = box_request(box_scene, tmp_path)
    with pytest.raises(KeyboardInterrupt):
        run_request(request, generator=Configured(1, threshold=np.float32("nan"), margin=float("nan")))
    with pytest.raises(Gen3cInputError, match=r"other settings \(threshold: recorded nan, now 0\.5\)"):
        run_request(request, generator=Configured(threshold=0.5, margin=float("nan")), resume=True)
    resumed = run_request(request, generator=Configured(threshold=np.float32("nan"), margin=float("nan")), resume=True)
    assert len(resumed.result.chunks) == 3


def test_resume_of_a_folder_without_generator_settings_says_it_cannot_check_them(box_scene, tmp_path):
    """A folder an earlier gen3c wrote (run.json without ``generator_settings``) still resumes,
    with a note that a changed generator cannot be told."""
    import json

    request = box_request(box_scene, tmp_path)
    with pytest.raises(KeyboardInterrupt):
        run_request(request, generator=Configured(1))
    run_json = partial_dir(tmp_path, "output") / "run.json"
    record = json.loads(run_json.read_text())
    del record["generator_settings"]
    run_json.write_text(json.dumps(record))
    with pytest.warns(UserWarning, match=r"does not record the generator's settings .*: resuming; delete that folder"):
        out = run_request(request, generator=Configured(num_steps=20), resume=True)
    assert len(out.result.chunks) == 3


def test_chunks_kept_before_chunks_drew_successive_noise_are_not_resumed(box_scene, tmp_path):
    """A run.json of format 3 was written when every gen3c chunk started from the seed's first
    noise draw (now chunk k takes the (k+1)-th): its chunks and new ones would make a video of two
    noise rules, so ``--resume`` refuses the folder and a batch job (``made_by``) starts over."""
    import json

    from gen3c.pipelines.resume import made_by

    request = box_request(box_scene, tmp_path)
    with pytest.raises(KeyboardInterrupt):
        run_request(request, generator=Interrupting(1))
    path = partial_dir(tmp_path, "output")
    record = json.loads((path / "run.json").read_text())
    assert made_by(path, request.to_dict(), request.read_input_contents())
    (path / "run.json").write_text(json.dumps({**record, "format": 3}))
    with pytest.raises(Gen3cInputError, match=r"--resume: '.*output\.partial' was written by another gen3c version: delete it to start over"):
        run_request(request, resume=True)
    assert not made_by(path, request.to_dict(), request.read_input_contents())


def test_an_unreadable_run_record_in_a_deep_folder_is_named_cut_and_its_folder_offered_whole(tmp_path):
    """A run's folder of kept chunks in a folder of over 200 characters was named raw, unquoted,
    in the refusal and in its fix: the file it names is now quoted and cut around '…', and the
    folder to delete, the fix to copy, is quoted whole."""
    from gen3c.errors import path_to_copy, quoted_path
    from gen3c.pipelines.resume import PartialRun

    folder = tmp_path / ("d" * 220)
    path = partial_dir(folder, "output")
    (path / "chunk_0000").mkdir(parents=True)
    (path / "run.json").write_text("not json{")
    with pytest.raises(Gen3cInputError) as refused:
        PartialRun.open(folder, "output", {}, [(0, 9)], resume=True)
    message = str(refused.value)
    assert message.startswith(f"--resume: {quoted_path(path / 'run.json')} is unreadable (")
    assert message.endswith(f": delete {path_to_copy(path)} to start over") and path_to_copy(path) == repr(str(path)), message


def test_the_lora_adapter_counts_by_its_contents(tmp_path):
    """The generator's settings carry the sha256 of the loaded adapter's weights (its path is in the
    request, but an adapter replaced at the same path makes other frames): ``--resume`` refuses a
    run whose adapter changed as it refuses another checkpoint."""
    import hashlib

    from tiny_model import tiny_components, tiny_pipeline

    from gen3c.pipelines.gen3c import Gen3cGenerator
    from gen3c.training import lora

    pipe = tiny_pipeline(seed=0)

    def write_adapter(value: float) -> Path:
        trained = tiny_components(0, with_text_encoder=False)["transformer"]
        lora.add_lora(trained, rank=2, targets=["to_q"])
        for name, p in trained.named_parameters():
            if "lora_B" in name:
                p.data.fill_(value)
        return lora.save_lora(trained, tmp_path / "adapter") / lora.WEIGHTS_NAME

    generator = Gen3cGenerator(pipe, chunk_frames=9)
    assert generator.settings()["lora_sha256"] is None
    digests = []
    for value in (0.0, 0.01):  # the adapter, then another written in its place
        file = write_adapter(value)
        pipe.load_lora(tmp_path / "adapter")
        digests.append(generator.settings()["lora_sha256"])
        assert digests[-1] == hashlib.sha256(file.read_bytes()).hexdigest()
    assert digests[0] != digests[1]
    assert pipe.unload_lora() is pipe and generator.settings()["lora_sha256"] is None


def test_resume_refuses_a_replaced_lora_and_takes_a_folder_that_did_not_record_it(box_scene, tmp_path):
    """A changed adapter digest is refused, naming it; a folder of a gen3c that recorded the
    generator's settings but not the adapter's digest resumes, saying it cannot tell."""
    import json

    request = box_request(box_scene, tmp_path)
    with pytest.raises(KeyboardInterrupt):
        run_request(request, generator=Configured(1, lora_sha256="aa"))
    with pytest.raises(Gen3cInputError, match=r"other settings \(lora_sha256: recorded 'aa', now 'bb'\)"):
        run_request(request, generator=Configured(lora_sha256="bb"), resume=True)
    run_json = partial_dir(tmp_path, "output") / "run.json"
    record = json.loads(run_json.read_text())
    del record["generator_settings"]["lora_sha256"]
    run_json.write_text(json.dumps(record))
    with pytest.raises(Gen3cInputError, match=r"other settings \(num_steps: recorded 35, now 20\)"):  # the rest still counts
        run_request(request, generator=Configured(num_steps=20, lora_sha256="bb"), resume=True)
    with pytest.warns(UserWarning, match=r"does not record the generator's lora_sha256 .*: resuming; delete that folder"):
        out = run_request(request, generator=Configured(lora_sha256="bb"), resume=True)
    assert len(out.result.chunks) == 3


def test_a_kept_folder_without_a_finished_chunk_gives_way_to_a_changed_run(box_scene, tmp_path):
    """A run killed in its first chunk (SIGKILL: no cleanup) leaves run.json and a half-written
    chunk: nothing to lose, so a changed run replaces the folder, with --resume or without (it was
    refused: "holds 0 finished chunks", "different request"); never a folder with more in it, or
    one a run still going holds."""
    import shutil

    from gen3c.io.atomic import try_flock

    request = box_request(box_scene, tmp_path)
    path = partial_dir(tmp_path, "output")

    def killed_in_the_first_chunk() -> None:
        with pytest.raises(KeyboardInterrupt):
            run_request(request, generator=Interrupting(1))
        (path / "chunk_0000").rename(path / ".chunk_0000.x1y2")  # as it was while its frames were saved

    for resume in (False, True):
        killed_in_the_first_chunk()
        with pytest.warns(UserWarning, match=r"output\.partial' held no finished chunk of an earlier run of 'output': replaced it, starting from"):
            out = run_request(dataclasses.replace(request, movement_distance=0.5), resume=resume)
        assert len(out.result.chunks) == 3 and not path.exists()
    killed_in_the_first_chunk()
    with try_flock(path) as held, pytest.raises(Gen3cInputError, match=r"is held by another gen3c run still going \(a run of"):  # its run is still going
        assert held
        run_request(request)
    (path / "mine.txt").write_text("mine")  # not only what gen3c writes: left alone
    with pytest.raises(Gen3cInputError, match="holds 0 finished chunks"):
        run_request(request)
    assert (path / "mine.txt").read_text() == "mine"
    shutil.rmtree(path)
    path.mkdir()  # no record: not known as gen3c's
    with pytest.raises(Gen3cInputError, match="holds 0 finished chunks"):
        run_request(request)


def test_resume_refuses_an_input_whose_contents_changed(box_scene, tmp_path):
    """The same command on an edited depth map would continue a video of the old scene with the
    new one: refused, naming the input; a copy of the same files (other path spelling aside) is fine."""
    import shutil

    from gen3c.pipelines.resume import made_by

    inputs = tmp_path / "inputs"
    inputs.mkdir()
    image, depth = shutil.copy(box_scene[0], inputs), shutil.copy(box_scene[1], inputs)
    request = dataclasses.replace(box_request(box_scene, tmp_path / "out"), input_image_path=str(image), depth_path=str(depth))
    with pytest.raises(KeyboardInterrupt):
        run_request(request, generator=Interrupting(1))
    path = partial_dir(tmp_path / "out", "output")
    assert made_by(path, request.to_dict())
    np.save(depth, np.load(depth) * 1.5)  # the user re-exports the depth
    assert not made_by(path, request.to_dict())
    with pytest.raises(Gen3cInputError, match=r"the contents of --depth_path '.*depth.npy' changed since the interrupted run"):
        run_request(request, resume=True)
    shutil.copy(box_scene[1], depth)  # the depth as it was: the run continues
    assert len(run_request(request, resume=True).result.chunks) == 3


def test_outputs_written_inside_the_input_folder_do_not_change_the_input(tmp_path):
    """A sample directory whose run writes into it (--video_save_folder SAMPLE/gen): the run's own
    kept chunks and outputs, and another run's, are no change to the input (every --resume of it
    was refused as "the contents of --input_image_path changed"); an edited sample file is."""
    from layouts import scene, write_sample

    from gen3c.pipelines.resume import input_digests

    rgb, depth, _, w2c, K = scene(12, 36, 64)
    sample = write_sample(tmp_path / "sample", rgb, depth, depth > 0, w2c, K)

    def request(folder):
        return GenerationRequest(input_image_path=str(sample), resolution="32x64", num_video_frames=25, chunk_frames=9,
                                 video_save_folder=str(folder))  # fmt: skip

    whole = run_request(request(tmp_path / "whole"))
    before = input_digests(request(sample / "gen").to_dict())
    with pytest.raises(KeyboardInterrupt, match=r"2 of 3 chunks are kept"):
        run_request(request(sample / "gen"), generator=Interrupting(2))
    run_request(dataclasses.replace(request(sample / "gen"), video_save_name="other", num_video_frames=9))
    assert input_digests(request(sample / "gen").to_dict()) == before
    resumed = run_request(request(sample / "gen"), resume=True)
    assert resumed.paths["video"].read_bytes() == whole.paths["video"].read_bytes()
    np.savez(sample / "camera.npz", w2c=w2c.numpy() * 2, intrinsics=K.numpy())
    assert input_digests(request(sample / "gen").to_dict()) != before


def test_resume_refuses_a_vipe_result_re_exported_under_the_mp4_it_was_named_by(tmp_path):
    """--vipe_path ROOT/rgb/CLIP.mp4 reads the clip's depth and cameras beside it: a re-exported
    depth was resumed silently (only the mp4 was hashed), joining chunks of two scenes."""
    from layouts import scene, write_vipe

    rgb, depth, _, w2c, K = scene(12, 36, 64)
    root = write_vipe(tmp_path / "vipe", "c", rgb, depth, w2c, K)
    request = GenerationRequest(vipe_path=str(root / "rgb" / "c.mp4"), resolution="32x64", num_video_frames=25, chunk_frames=9,
                                video_save_folder=str(tmp_path / "out"))  # fmt: skip
    with pytest.raises(KeyboardInterrupt):
        run_request(request, generator=Interrupting(1))
    write_vipe(root, "c", rgb, depth * 2, w2c, K)  # ViPE run again, with another depth
    with pytest.raises(Gen3cInputError, match=r"the contents of --vipe_path '.*c\.mp4' changed since the interrupted run"):
        run_request(request, resume=True)


def test_a_vipe_clip_resumes_after_another_clip_is_written_into_its_root(tmp_path):
    """A ViPE root counted all its clips: running ViPE on another clip into the same root (as
    `vipe infer` of a second video with the same --output does) refused `--resume` of the first
    as "contents changed". The digest covers the clip read; its own files still count."""
    import json

    from layouts import scene, write_vipe

    from gen3c.pipelines.resume import input_digests

    rgb, depth, _, w2c, K = scene(12, 36, 64)
    root = write_vipe(tmp_path / "vipe", "c", rgb, depth, w2c, K)
    before = input_digests({"vipe_path": str(root)})
    request = GenerationRequest(vipe_path=str(root), vipe_clip="c", resolution="32x64", num_video_frames=25, chunk_frames=9,
                                video_save_folder=str(tmp_path / "out"))  # fmt: skip
    with pytest.raises(KeyboardInterrupt):
        run_request(request, generator=Interrupting(1))
    write_vipe(root, "d", rgb, depth * 2, w2c, K)  # another clip into the same root
    assert input_digests({"vipe_path": str(root), "vipe_clip": "c"}) == before  # (a root of one clip: as an earlier gen3c counted it)
    assert input_digests({"vipe_path": str(root / "rgb" / "c.mp4")}) == before
    # A run.json of an earlier gen3c, which counted every clip (as a root of no chosen clip still counts), resumes too.
    run_json = partial_dir(tmp_path / "out", request.video_save_name) / "run.json"
    record = json.loads(run_json.read_text())
    run_json.write_text(json.dumps({**record, "inputs": input_digests({"vipe_path": str(root)})}))
    assert len(run_request(request, resume=True).result.chunks) == 3
    # The clip's own depth re-exported: refused.
    with pytest.raises(KeyboardInterrupt):
        run_request(request, generator=Interrupting(1))
    write_vipe(root, "c", rgb, depth * 2, w2c, K)
    with pytest.raises(Gen3cInputError, match=r"the contents of --vipe_path '.*vipe' changed since the interrupted run"):
        run_request(request, resume=True)


def test_resume_takes_the_same_folder_and_inputs_spelt_another_way(box_scene, tmp_path, monkeypatch):
    """`--video_save_folder out` then `--resume` with `./out` (and an input by its absolute path)
    is the same run; it was refused as a different request."""
    monkeypatch.chdir(tmp_path)
    request = dataclasses.replace(box_request(box_scene, "out"), depth_path=os.path.relpath(box_scene[1]))
    with pytest.raises(KeyboardInterrupt):
        run_request(request, generator=Interrupting(1))
    respelt = dataclasses.replace(request, video_save_folder="./out/", depth_path=str(box_scene[1]))
    assert len(run_request(respelt, resume=True).result.chunks) == 3


def test_resume_from_another_folder_names_the_relative_paths(box_scene, tmp_path, monkeypatch):
    """The same command with relative input paths, resumed from another working folder, leads to
    other files: refused naming those paths (it said "changed: unknown")."""
    import shutil

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        shutil.copy(box_scene[0], tmp_path / name)
        shutil.copy(box_scene[1], tmp_path / name)
    request = dataclasses.replace(box_request(box_scene, tmp_path / "out"), input_image_path="image.png", depth_path="depth.npy")
    monkeypatch.chdir(tmp_path / "a")
    with pytest.raises(KeyboardInterrupt):
        run_request(request, generator=Interrupting(1))
    monkeypatch.chdir(tmp_path / "b")
    with pytest.raises(Gen3cInputError, match=r"^--resume: '.*output\.partial' was made by a run started in another folder, where "
                       r"--input_image_path 'image\.png', --depth_path 'depth\.npy' led to other files: run the command from that folder"):
        run_request(request, resume=True)
    monkeypatch.chdir(tmp_path / "a")
    assert len(run_request(request, resume=True).result.chunks) == 3


def test_cache_state_round_trips_exactly():
    K = intrinsics_from_fov(60, 16, 24)
    cache = Cache3D(max_buffers=2)
    for z in (2.0, 3.0):
        cache.add_view(torch.rand(3, 16, 24) * 2 - 1, torch.full((16, 24), z) + torch.rand(16, 24) * 0.01, K, torch.eye(4))
    state = cache.state_dict()
    assert len(state) == 14 and all(v.is_contiguous() for v in state.values())  # 2 views × 7 fields
    restored = Cache3D(max_buffers=2)
    restored.load_state_dict(state)
    cams = Cameras(torch.eye(4)[None].repeat(3, 1, 1), K[None].repeat(3, 1, 1), 16, 24)
    a, b = cache.render(cams), restored.render(cams)
    assert torch.equal(a.colors, b.colors) and torch.equal(a.masks, b.masks)
    assert all(torch.equal(x.filtered, y.filtered) for x, y in zip(cache.views, restored.views, strict=True))
    with pytest.raises(ValueError, match="at most 1 views"):
        Cache3D(max_buffers=1).load_state_dict(state)


def test_tiny_gen3c_resumes_to_the_identical_video(box_scene, tmp_path):
    """The diffusion model's chunk k starts from its seed's (k+1)-th noise draw, told k when resumed too, so a
    resumed run matches (tiny model, CPU)."""
    from tiny_model import tiny_pipeline

    from gen3c.pipelines.gen3c import Gen3cGenerator

    generator = Gen3cGenerator(tiny_pipeline(seed=0), chunk_frames=9, num_steps=2, seed=3)
    request = dataclasses.replace(box_request(box_scene, tmp_path / "a", generator="gen3c", generator_options={"chunk_frames": 9}),
                                  num_video_frames=17, save_buffer=False, save_point_cloud=False, seed=3)  # fmt: skip
    whole = run_request(request, generator=generator)
    interrupted = dataclasses.replace(request, video_save_folder=str(tmp_path / "b"))

    def stop_in_chunk_2(stage, total):
        if stage.startswith("Chunk 2/2: generating"):
            raise KeyboardInterrupt
        return lambda n=1: None

    with pytest.raises(KeyboardInterrupt, match="1 of 2 chunks"):
        run_request(interrupted, generator=generator, progress=stop_in_chunk_2)
    other = Gen3cGenerator(generator.pipeline, chunk_frames=9, num_steps=3, seed=3)
    with pytest.raises(Gen3cInputError, match=r"other settings \(num_steps: recorded 2, now 3\)"):
        run_request(interrupted, generator=other, resume=True)
    resumed = run_request(interrupted, generator=generator, resume=True)
    frames = read_video(resumed.paths["video"])[0]
    assert len(frames) == 17 and np.array_equal(frames, read_video(whole.paths["video"])[0])


_OPENED: list[str] | None = None  # the paths opened while a test listens (an audit hook stays for good)


def _listen_to_opens(event: str, args: tuple) -> None:
    if event == "open" and _OPENED is not None and args and isinstance(args[0], (str, os.PathLike)):
        _OPENED.append(os.fspath(args[0]))


def test_a_run_reads_its_camera_file_once(box_scene, tmp_path):
    """`gen3c generate --camera_file` (frame count and frame rate from the file, two chunks kept for
    --resume) opens the file once: the frame count, the frame rate, the trajectory and --resume's
    hash of the inputs all take the bytes read (it was opened 4 times, each free to see another file)."""
    global _OPENED
    from gen3c.io.camera_files import save_cameras
    from gen3c.trajectories import preset_trajectory

    image, depth, _, _ = box_scene
    cameras = tmp_path / "path.json"
    save_cameras(cameras, preset_trajectory("left", "center_facing", 9, torch.eye(4), intrinsics_from_fov(60, 32, 48), 32, 48), fps=12)
    argv = ["generate", "--input_image_path", image, "--depth_path", depth, "--fov", "60", "--resolution", "32x48",
            "--camera_file", cameras, "--chunk_frames", "5", "--video_save_folder", tmp_path / "out"]  # fmt: skip
    sys.addaudithook(_listen_to_opens)
    _OPENED = []
    try:
        res = runner.invoke(app, [str(a) for a in argv])
        opened = [p for p in _OPENED if Path(p).name == cameras.name]
    finally:
        _OPENED = None
    assert res.exit_code == 0, res.output
    frames, fps = read_video(tmp_path / "out" / "output.mp4")[:2]
    assert len(frames) == 9 and fps == 12  # the file's count and frame rate, in two chunks of 5 (one frame shared)
    assert len(opened) == 1, opened
    from gen3c.pipelines.resume import input_digests

    # hashed as read, the file's digest is the one it had when read from disk (kept runs still resume)
    assert input_digests({"camera_file": str(cameras)}, read={"camera_file": cameras.read_bytes()}) == input_digests({"camera_file": str(cameras)})


def test_chunk_flags_on_a_run_of_one_chunk_say_they_change_nothing(box_scene, tmp_path):
    """--chunk_frames at or above the run's frame count makes one chunk, as leaving it out does:
    a note, as --resume gives on such a run (not an error: a batch manifest may give one chunk
    size to rows of different lengths). A chunk size that splits the run says nothing."""
    from gen3c.errors import collect_notes

    for chunk_frames in (9, 30):
        with collect_notes() as notes:
            out = run_request(dataclasses.replace(box_request(box_scene, tmp_path), num_video_frames=9, chunk_frames=chunk_frames, save_buffer=False, save_point_cloud=False), resume=True)
        assert len(read_video(out.paths["video"])[0]) == 9
        assert out.result.chunks == [(0, 9)]
        assert f"--chunk_frames {chunk_frames}: the run has only 9 frames; making them in one chunk" in notes
        assert "--resume: a run of one chunk has nothing to resume; making all 9 frames" in notes
    with collect_notes() as notes:
        out = run_request(dataclasses.replace(box_request(box_scene, tmp_path, video_save_name="split"), num_video_frames=17, save_buffer=False, save_point_cloud=False))
    assert len(out.result.chunks) == 2 and not [n for n in notes if "chunk" in n]


def test_a_long_run_hashes_its_inputs_once(box_scene, tmp_path, monkeypatch):
    """A run of several chunks hashes each input file once, for --resume's run.json, and its run
    record lists those digests (sha256sum's); both hashed every input, each read in full again."""
    import hashlib
    import importlib
    import json

    resume = importlib.import_module("gen3c.pipelines.resume")  # (the package's `resume` is a function)
    hashed: list[str] = []
    digest = resume._digest
    monkeypatch.setattr(resume, "_digest", lambda files, names=True: hashed.extend(str(f) for _, f in files) or digest(files, names))
    image, depth, _, _ = box_scene
    request = box_request(box_scene, tmp_path)
    with pytest.raises(KeyboardInterrupt):
        run_request(request, generator=Interrupting(1))
    kept = json.loads((partial_dir(tmp_path, "output") / "run.json").read_text())["inputs"]
    hashed.clear()
    out = run_request(request, resume=True)
    assert sorted(hashed) == sorted([str(image), str(depth)])  # not again for the record
    expected = {"input_image_path": hashlib.sha256(image.read_bytes()).hexdigest(), "depth_path": hashlib.sha256(depth.read_bytes()).hexdigest()}
    assert kept == expected
    assert json.loads(out.paths["run"].read_text())["inputs_sha256"] == expected


def test_paths_with_a_home_are_expanded_once_and_an_unknown_home_is_one_line(tmp_path):
    """A request built in Python took "~/x.png" as a folder named '~' (a shell and a batch manifest
    expand it); --resume's fingerprint raised RuntimeError on an --intrinsics of an unknown ~user."""
    from gen3c.pipelines.resume import input_digests, request_fingerprint

    request = GenerationRequest(input_image_path="~/x.png", depth_path=Path("~/d.npy"), fov=60.0)
    assert (request.input_image_path, request.depth_path) == (str(Path.home() / "x.png"), str(Path.home() / "d.npy"))
    with pytest.raises(Gen3cInputError, match=r"^--camera_file '~nouser_gen3c/c\.json' starts with ~nouser_gen3c, .*no user on this machine"):
        GenerationRequest(input_image_path="x.png", camera_file="~nouser_gen3c/c.json")
    settings = {"input_image_path": str(tmp_path / "x.png"), "intrinsics": "~nouser_gen3c/K.txt"}
    assert request_fingerprint(settings) != request_fingerprint({**settings, "intrinsics": "~nouser_gen3c/L.txt"})
    assert input_digests(settings) == {}
    with pytest.raises(Gen3cInputError, match=r"^--depth_path '~nouser_gen3c/d\.npy' starts with ~nouser_gen3c"):
        request_fingerprint({"depth_path": "~nouser_gen3c/d.npy"})


def test_a_run_json_nested_thousands_deep_is_one_line(tmp_path):
    """--resume read a damaged run.json with json's raw RecursionError."""
    (tmp_path / "run.json").write_text("[" * 100_000)
    with pytest.raises(Gen3cInputError, match=r"^--resume: [^(]*run\.json' nests its JSON lists or objects thousands deep, as no run\.json of gen3c does: delete "):
        gen3c.pipelines.resume._check_record(tmp_path, {})
    assert not gen3c.pipelines.resume.made_by(tmp_path, {})


def test_a_second_resume_of_a_folder_a_run_still_holds_is_refused(box_scene, tmp_path, monkeypatch):
    """--resume of a run folder another run still going holds (its flock, taken here on another
    open of the folder) is refused with one line naming the folder, and so is a run without
    --resume (before: told to pass --resume, as if that run were an interrupted one), and leaves the chunk that run
    is writing alone (before: the lock went untaken unnoticed and both runs wrote one folder, the
    second deleting the first's chunk in the making as a stray). On a file system without flock
    the run goes on, as before."""
    import errno
    import fcntl

    from gen3c.io.atomic import try_flock

    request = box_request(box_scene, tmp_path)
    path = partial_dir(tmp_path, "output")
    with pytest.raises(KeyboardInterrupt):
        run_request(request, generator=Interrupting(2))
    (path / ".chunk_0002.x1y2").mkdir()  # the chunk the other run is writing
    with try_flock(path) as held:
        assert held
        with pytest.raises(Gen3cInputError) as refused:
            run_request(request, resume=True)
        with pytest.raises(Gen3cInputError) as refused_without_resume:  # (it said "holds 2 finished chunks of an interrupted run: pass --resume")
            run_request(request)
    assert str(refused.value) == (f"{str(path)!r} is held by another gen3c run still going (--resume of the same output): wait for it "
                                  "to end, or pass another --video_save_folder or --video_save_name")  # fmt: skip
    assert str(refused_without_resume.value) == str(refused.value).replace("(--resume of", "(a run of")
    assert (path / ".chunk_0002.x1y2").is_dir() and (path / "chunk_0001").is_dir()

    def unsupported(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    with monkeypatch.context() as patched:
        patched.setattr(fcntl, "flock", unsupported)
        with try_flock(path, held=Gen3cInputError("held")) as locked:
            assert locked is False  # cannot be told: not "held"
    out = run_request(request, resume=True)  # that run ended: resumed
    assert len(out.result.chunks) == 3 and not path.exists()


def test_resume_of_a_folder_written_before_noise_aug_strength_existed(box_scene, tmp_path):
    """A run.json of a gen3c without ``noise_aug_strength`` (not in its request, its fingerprint or
    its generator settings) resumes under a request that carries GEN3C's default (the CLI's always
    does); another value is refused, naming the option (before: "different request" either way)."""
    import json

    from gen3c.pipelines.resume import made_by, request_fingerprint

    def request(strength):
        return box_request(box_scene, tmp_path, generator="gen3c", generator_options={"noise_aug_strength": strength})

    with pytest.raises(KeyboardInterrupt):
        run_request(request(0.0), generator=Configured(1, noise_aug_strength=0.0))
    run_json = partial_dir(tmp_path, "output") / "run.json"
    record = json.loads(run_json.read_text())
    del record["request"]["generator_options"]["noise_aug_strength"], record["generator_settings"]["noise_aug_strength"]
    record["sha256"] = request_fingerprint(record["request"])  # as that gen3c computed it
    run_json.write_text(json.dumps(record))
    assert made_by(run_json.parent, request(0.0).to_dict())
    assert not made_by(run_json.parent, request(0.1).to_dict())
    with pytest.raises(Gen3cInputError, match=r"^--resume: '.*output\.partial' was made by a different request \(changed: noise_aug_strength\): "
                       r"run the same command as before, or delete that folder to start over$"):
        run_request(request(0.1), generator=Configured(noise_aug_strength=0.1), resume=True)
    out = run_request(request(0.0), generator=Configured(noise_aug_strength=0.0), resume=True)
    assert len(out.result.chunks) == 3


def test_a_run_interrupted_on_several_gpus_resumes_on_one(box_scene, tmp_path, monkeypatch):
    """A long run of `torchrun --nproc_per_node=2 … --num_gpus 2` cut short (its rank 0 keeps the
    chunks), resumed on one GPU as --num_gpus N says: refused as "made by a different request
    (changed: num_gpus)", so no run on several GPUs could be resumed at all. How many GPUs split
    the DiT changes no frame (docs/multi_gpu.md); a changed setting is still refused."""

    def request(**options):
        return box_request(box_scene, tmp_path, generator="gen3c", generator_options=options)

    monkeypatch.setenv("WORLD_SIZE", "2")  # rank 0 of the two-rank launch (its generator handed over: no process group)
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(KeyboardInterrupt):
        run_request(request(num_gpus=2, num_steps=35), generator=Configured(1, num_gpus=2))
    monkeypatch.delenv("WORLD_SIZE")
    with pytest.raises(Gen3cInputError, match=r"was made by a different request \(changed: num_steps\): "):
        run_request(request(num_steps=20), generator=Configured(num_gpus=1), resume=True)
    out = run_request(request(num_steps=35), generator=Configured(num_gpus=1), resume=True)
    assert len(out.result.chunks) == 3 and not partial_dir(tmp_path, "output").exists()


def test_a_run_moved_with_its_project_folder_resumes_to_the_identical_video(box_scene, tmp_path, monkeypatch):
    """A project folder (inputs and output) moved or renamed after a long run was cut short: its
    kept chunks were refused as "made by a different request" (run.json held the old absolute
    paths). Inputs inside the folder count by their path from it; a changed one is still refused."""
    import shutil

    def project(root: Path) -> Path:
        (root / "inputs").mkdir(parents=True)
        shutil.copy(box_scene[0], root / "inputs" / "image.png")
        shutil.copy(box_scene[1], root / "inputs" / "depth.npy")
        return root

    def request(root: Path) -> GenerationRequest:
        return dataclasses.replace(box_request(box_scene, root / "out"), num_video_frames=17, save_buffer=False, save_point_cloud=False,
                                   input_image_path=str(root / "inputs" / "image.png"), depth_path=str(root / "inputs" / "depth.npy"))  # fmt: skip

    whole = run_request(request(project(tmp_path / "whole"))).paths["video"].read_bytes()
    for move in ("the project folder renamed", "a folder above it renamed"):
        root = project(tmp_path / "a" / "p")
        with pytest.raises(KeyboardInterrupt, match=r"1 of 2 chunks is kept"):
            run_request(request(root), generator=Interrupting(1))
        if move == "the project folder renamed":
            root = root.rename(tmp_path / "a" / "q")
        else:
            root = (tmp_path / "a").rename(tmp_path / "b") / "p"
        counted = CountingPreview()
        assert run_request(request(root), generator=counted, resume=True).paths["video"].read_bytes() == whole, move
        assert counted.calls == 1, move  # resumed: only the second chunk made
        shutil.rmtree(root.parent)
    # A changed input under the moved folder is refused, naming it.
    root = project(tmp_path / "a" / "p")
    with pytest.raises(KeyboardInterrupt):
        run_request(request(root), generator=Interrupting(1))
    root = root.rename(tmp_path / "a" / "q")
    np.save(root / "inputs" / "depth.npy", np.load(root / "inputs" / "depth.npy") * 1.5)
    with pytest.raises(Gen3cInputError, match=r"the contents of --depth_path '.*q/inputs/depth\.npy' changed since the interrupted run"):
        run_request(request(root), resume=True)
    # An input outside the moved folder is still counted by its absolute path: moved apart, refused.
    other = project(tmp_path / "x")
    shutil.rmtree(root)
    root = project(tmp_path / "a" / "p")
    outside = dataclasses.replace(request(root), depth_path=str(other / "inputs" / "depth.npy"))
    with pytest.raises(KeyboardInterrupt):
        run_request(outside, generator=Interrupting(1))
    root = root.rename(tmp_path / "a" / "q2")
    with pytest.raises(Gen3cInputError, match=r"made by a different request \(changed: depth_path, input_image_path, video_save_folder\)"):
        run_request(request(root), resume=True)
    outside = dataclasses.replace(request(root), depth_path=str(other / "inputs" / "depth.npy"))
    assert len(run_request(outside, resume=True).result.chunks) == 2
    # A run given relative paths from the project folder resumes from the moved one.
    root = project(tmp_path / "rel")
    monkeypatch.chdir(root)
    relative = dataclasses.replace(box_request(box_scene, "out"), num_video_frames=17, save_buffer=False, save_point_cloud=False,
                                   input_image_path="inputs/image.png", depth_path="inputs/depth.npy")  # fmt: skip
    with pytest.raises(KeyboardInterrupt):
        run_request(relative, generator=Interrupting(1))
    monkeypatch.chdir(root.rename(tmp_path / "rel2"))
    assert run_request(relative, resume=True).paths["video"].read_bytes() == whole


def test_kept_chunks_of_a_run_whose_checkpoint_moved_with_its_project_folder_are_its_own(tmp_path):
    """A checkpoint, LoRA adapter or weights cache folder inside a moved project folder: its kept
    chunks were refused as "made by a different request (changed: checkpoint_dir)"."""
    import json

    from gen3c.pipelines.resume import made_by, run_record

    def request(root: Path) -> dict:
        return {"video_save_folder": str(root / "out"), "video_save_name": "v", "generator": "gen3c",
                "generator_options": {"checkpoint_dir": str(root / "ckpt"), "cache_dir": str(root / "cache"), "num_steps": 2}}  # fmt: skip

    kept = partial_dir(tmp_path / "p" / "out", "v")
    kept.mkdir(parents=True)
    (kept / "run.json").write_text(json.dumps(run_record(request(tmp_path / "p"))))
    moved = (tmp_path / "p").rename(tmp_path / "q")
    assert made_by(partial_dir(moved / "out", "v"), request(moved))
    other = request(moved)
    other["generator_options"]["checkpoint_dir"] = str(tmp_path / "ckpt")  # another checkpoint folder: another request
    assert not made_by(partial_dir(moved / "out", "v"), other)


def test_kept_chunks_of_a_moved_run_with_numpy_generator_options_are_its_own(tmp_path):
    """A moved project folder whose run was given a numpy option from Python (``guidance=np.float32(7)``):
    run.json records it as the number 7.0, and its fingerprint must still be the request's, whose
    option is the numpy number (its kept chunks were refused as another request's)."""
    import json

    from gen3c.io.formats import json_default
    from gen3c.pipelines.resume import made_by, run_record

    def request(root: Path) -> dict:
        return {"video_save_folder": str(root / "out"), "video_save_name": "v", "generator": "gen3c",
                "generator_options": {"checkpoint_dir": str(root / "ckpt"), "guidance": np.float32(7.0), "num_steps": np.int64(2)}}  # fmt: skip

    kept = partial_dir(tmp_path / "p" / "out", "v")
    kept.mkdir(parents=True)
    (kept / "run.json").write_text(json.dumps(run_record(request(tmp_path / "p")), default=json_default))  # as PartialRun writes it
    moved = (tmp_path / "p").rename(tmp_path / "q")
    assert made_by(partial_dir(moved / "out", "v"), request(moved))
    other = request(moved)
    other["generator_options"]["guidance"] = np.float32(6.0)  # another guidance: another request
    assert not made_by(partial_dir(moved / "out", "v"), other)


class CountingPreview(PreviewGenerator):
    """The preview, counting the chunks it makes."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def generate(self, *args, **kwargs):
        self.calls += 1
        return super().generate(*args, **kwargs)


def test_the_default_estimator_fingerprints_as_moge_recorded_by_name():
    """A gen3c that could not tell the default estimator from one named recorded it as "moge": the
    default (depth_estimator None) must fingerprint as that run did, or every such interrupted run
    would be refused on --resume and every finished batch job run again."""
    from gen3c.pipelines.resume import request_fingerprint

    default = GenerationRequest(input_image_path="a.png", generator="preview").to_dict()
    assert default["depth_estimator"] is None
    assert request_fingerprint(default) == request_fingerprint({**default, "depth_estimator": "moge"})
    assert request_fingerprint(default) != request_fingerprint({**default, "depth_estimator": "prior"})
