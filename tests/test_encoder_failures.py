"""An ffmpeg that dies while a video is written, or a Ctrl-C, is one clear error and leaves no
output behind: no video, no companion files, no temporary file, no encoder still running."""

from __future__ import annotations

import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from child_env import child_env

from gen3c.errors import Gen3cInputError
from gen3c.io.video import VideoWriter, read_video, write_video
from gen3c.pipelines.camera_video import (
    OutputWriter,
    build_cache,
    generate_video,
    prepare_source,
    preset_cameras,
)
from gen3c.pipelines.preview import PreviewGenerator
from gen3c.pipelines.request import GenerationRequest, run_request
from gen3c.scenes import load_demo_sample

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the encoder among /proc's processes")

H, W = 64, 112


@pytest.fixture(scope="module")
def demo_source():
    image, depth, K = load_demo_sample()
    return prepare_source(image, depth, K, (H, W), "crop")


def encoders() -> list[int]:
    """This process's ffmpeg children not yet ended (their pids). A killed one is a zombie once its
    main thread ends but holds its end of the pipe until its last thread has ended too."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            text = (proc / "stat").read_text()
            name, (state, ppid) = text[text.index("(") + 1 : text.rindex(")")], text[text.rindex(")") + 2 :].split()[:2]
            ended = state == "Z" and os.listdir(proc / "task") == [proc.name]
            if int(ppid) == os.getpid() and name.startswith("ffmpeg") and not ended:
                found.append(int(proc.name))
        except OSError:  # reaped meanwhile
            continue
    return found


def encoders_gone(within: float = 5.0) -> bool:
    """Whether every ffmpeg child has ended within ``within`` seconds (one that is killed, not
    waited for, ends a moment after the kill)."""
    deadline = time.monotonic() + within
    while encoders():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def kill_encoders() -> None:
    """SIGKILL the running ffmpeg children and wait until they are gone (as if they crashed)."""
    pids = encoders()
    assert pids, "no encoder is running"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while encoders():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def when(stage: str, action):
    """A progress factory that calls ``action()`` at the first frame of the stage named ``stage``."""

    def factory(name: str, total: int):
        frames = [0]

        def step(n: int = 1) -> None:
            frames[0] += n
            if name == stage and frames[0] == 1:
                action()

        return step

    return factory


KILLED = r"something killed ffmpeg \(out of memory\?\): run again"


def error(path: str, what: str, advice: str = r"check the free space in '.*' and run again") -> str:
    """The message's pattern: ``advice`` follows the cause (the free space where it is not known)."""
    return rf"^video '.*{path}' could not be written: {what}; {advice}$"


def test_video_writer_refuses_an_encoder_that_died(tmp_path):
    frames = torch.linspace(-1, 1, 4)[:, None, None, None].expand(4, 3, 64, 96)
    # Killed between two writes: the next frame meets a broken pipe; the exit status says why.
    with pytest.raises(Gen3cInputError, match=error("a.mp4", r"ffmpeg was killed by SIGKILL after 4 frames", KILLED)):
        with VideoWriter(tmp_path / "a.mp4") as writer:
            writer.write(frames)
            kill_encoders()
            writer.write(frames)
    # Killed after the last frame went into its pipe.
    with pytest.raises(Gen3cInputError, match=error("b.mp4", "ffmpeg was killed by SIGKILL after 4 frames", KILLED)):
        with VideoWriter(tmp_path / "b.mp4") as writer:
            writer.write(frames)
            kill_encoders()
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("case", ["disk full", "folder removed"])
def test_an_encoder_that_fails_is_reported_with_its_exit_status_and_its_own_error(tmp_path, capfd, case):
    """ffmpeg's exit status and its first error line are in the one-line message, and nothing of it
    reaches the terminal (it used to print its lines there, and gen3c's said only "Broken pipe").
    The advice follows the cause, and the file is named as the output, not as its temporary file
    (before: "check the free space" for a removed folder too, and the ``.a.XXXX.part.mp4`` name)."""
    folder = tmp_path / "out"
    folder.mkdir()
    with pytest.raises(Gen3cInputError) as info, VideoWriter(folder / "a.mp4") as writer:
        if case == "disk full":  # the temporary file ffmpeg writes, as on a full disk
            writer._tmp.unlink()
            writer._tmp.symlink_to("/dev/full")
        else:
            shutil.rmtree(folder)
        writer.write(torch.zeros(4, 3, 64, 96))
    if case == "disk full":
        reason, advice = "No space left on device", rf"check the free space in '{re.escape(str(folder))}' and run again"
    else:
        reason = rf"Error opening output {re.escape(str(folder / 'a.mp4'))}: No such file or directory"
        advice = rf"the folder '{re.escape(str(folder))}' was removed while the video was written: run again"
    what = rf"ffmpeg exited with status \d+ after \d+ frames \(.*{reason}\)"
    assert re.match(error("out/a.mp4", what, advice), str(info.value)), info.value
    assert capfd.readouterr().err == ""
    assert not folder.exists() or list(folder.iterdir()) == []  # the /dev/full link gone too
    assert encoders_gone()


@pytest.mark.parametrize(
    ("cause", "advice"),
    [
        ("Permission denied", "check the permissions of '{out}' and run again"),
        ("Read-only file system", "'{out}' is on a read-only file system: write the video elsewhere"),
        ("Disk quota exceeded", "the disk quota for '{out}' is used up: free some space or write the video elsewhere"),
    ],
)
def test_an_encoder_refused_its_output_file_says_what_to_do_about_its_cause(tmp_path, monkeypatch, cause, advice):
    """ffmpeg's error for its output (a fake one here: the tests run as root, whom no permission
    stops, on a writable disk with no quota) is advised after its cause, with the output's own name."""
    script = tmp_path / "ffmpeg"
    script.write_text(
        f"#!{sys.executable}\nimport sys\n"
        f"sys.stderr.write(f'[out#0/mp4 @ 0x5555] Error opening output {{sys.argv[-1]}}: {cause}\\n')\nsys.exit(1)\n"
    )
    script.chmod(0o755)
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(script))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(Gen3cInputError) as info, VideoWriter(out / "v.mp4") as writer:
        writer.write(torch.zeros(4, 3, 64, 96))
    assert re.match(r"^video '.*' could not be written: ffmpeg exited with status 1 after \d+ frames ", str(info.value)), info.value
    assert str(info.value).endswith(f"(Error opening output {out / 'v.mp4'}: {cause}); " + advice.format(out=out)), info.value
    assert list(out.iterdir()) == []


def test_an_encoder_that_ends_well_without_every_frame_is_refused(tmp_path, monkeypatch):
    """The second line of defence: an ffmpeg that exits 0 yet wrote too few frames (none here)."""
    script = tmp_path / "ffmpeg"
    script.write_text(f"#!{sys.executable}\nimport sys\nsys.stdin.buffer.read()\n")
    script.chmod(0o755)
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(script))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(Gen3cInputError, match=error("out/v.mp4", "ffmpeg encoded 0 of its 4 frames")), VideoWriter(out / "v.mp4") as writer:
        writer.write(torch.zeros(4, 3, 64, 96))
    assert list(out.iterdir()) == []


def test_a_normal_run_prints_nothing_and_leaves_only_its_video(tmp_path, capfd):
    write_video(tmp_path / "v.mp4", torch.zeros(4, 3, 64, 96))
    assert capfd.readouterr() == ("", "")
    assert list(tmp_path.iterdir()) == [tmp_path / "v.mp4"] and encoders_gone()


def test_an_encoder_dying_at_the_end_leaves_no_companion_files(demo_source, tmp_path):
    cams = preset_cameras(demo_source, "left", "center_facing", 9, 0.3)
    with pytest.raises(Gen3cInputError, match=error(r"v\.mp4", "ffmpeg was killed by SIGKILL after 9 frames", KILLED)):
        with OutputWriter(tmp_path, "v", save_buffer=True, point_cloud=True) as out:
            generate_video(build_cache([demo_source]), cams, PreviewGenerator(), demo_source.image, sink=out)
            kill_encoders()
            out.finish(cams, point_cloud=(torch.zeros(1, 3), torch.zeros(1, 3)), metadata={})
    assert not any(tmp_path.iterdir()) and encoders_gone()


def request(folder: Path, **changes) -> GenerationRequest:
    return GenerationRequest(num_video_frames=25, chunk_frames=13, resolution=f"{H}x{W}", video_save_folder=str(folder), **changes)


def test_an_encoder_dying_mid_run_is_one_error_and_the_run_resumes(demo_source, tmp_path):
    """Killed while chunk 2 is made (chunk 1 is in the encoder): one error, no output; chunk 1 is
    kept, so --resume (disk space freed, say) makes the video an uninterrupted run makes."""
    whole = run_request(request(tmp_path / "whole"), source=demo_source)
    folder = tmp_path / "out"
    # (and what is kept, and how to go on: it said "run again", which refused the kept chunk without --resume)
    kept = r"; 1 of 2 chunks is kept in '.*out/output\.partial': run the same command with --resume to continue"
    with pytest.raises(Gen3cInputError, match=error(r"out/output\.mp4", "ffmpeg was killed by SIGKILL after 13 frames", KILLED + kept)):
        run_request(request(folder), source=demo_source, progress=when("Chunk 2/2: generating (preview)", kill_encoders))
    assert sorted(p.name for p in folder.iterdir()) == ["output.partial"] and encoders_gone()
    resumed = run_request(request(folder), source=demo_source, resume=True)
    assert resumed.paths["video"].read_bytes() == whole.paths["video"].read_bytes()


def test_ctrl_c_while_the_encoder_holds_frames_leaves_nothing(demo_source, tmp_path):
    def ctrl_c():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt, match="1 of 2 chunks is kept"):
        run_request(request(tmp_path), source=demo_source, progress=when("Chunk 2/2: generating (preview)", ctrl_c))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["output.partial"] and encoders_gone()


def slow_encoder(folder: Path, *, signal_after: int = 0, linger: float = 60.0) -> Path:
    """An ffmpeg (for imageio-ffmpeg's documented IMAGEIO_FFMPEG_EXE) that takes ``linger``
    seconds to finish after its input ends, as a real one does with many large frames still to
    encode; it creates ``encoding`` beside itself once it has been sent ``signal_after`` bytes."""
    import imageio_ffmpeg

    script = folder / "ffmpeg"  # an encoder by name (see encoders())
    script.write_text(
        f"#!{sys.executable}\n"
        "import ctypes, os, pathlib, signal, subprocess, sys, time\n"
        # the real ffmpeg dies with this stand-in (Linux PR_SET_PDEATHSIG), as one killed ffmpeg would: left
        # running, on a loaded machine it could open the output only after the run had removed it
        "def die_with_parent(): ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)\n"
        f"real = subprocess.Popen([{imageio_ffmpeg.get_ffmpeg_exe()!r}, *sys.argv[1:]], stdin=subprocess.PIPE, preexec_fn=die_with_parent)\n"
        "received = 0\n"
        "while block := os.read(0, 1 << 16):\n"
        "    real.stdin.write(block)\n"
        "    received += len(block)\n"
        f"    if received >= {signal_after}:\n"
        f"        pathlib.Path({str(folder / 'encoding')!r}).touch()\n"
        "real.stdin.close()\n"
        f"time.sleep({linger})\n"
        "sys.exit(real.wait())\n"
    )
    script.chmod(0o755)
    return script


def test_ctrl_c_stops_an_encoder_at_once_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    """Ctrl-C while ffmpeg still has frames to encode: the encoder is killed, not waited for (it
    was: its whole backlog encoded into a file then thrown away, seconds to minutes)."""
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(slow_encoder(tmp_path)))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(KeyboardInterrupt), VideoWriter(out / "v.mp4") as writer:
        writer.write(torch.zeros(4, 3, H, W))
        started = time.monotonic()
        raise KeyboardInterrupt
    assert time.monotonic() - started < 5
    assert list(out.iterdir()) == [] and encoders_gone()


#: Linux's numbers of the system calls gen3c waits on its encoder in, by machine.
SYSCALLS = {"x86_64": {"write": 1, "wait4": 61}, "aarch64": {"write": 64, "wait4": 260}}


def wait_until_the_main_thread_sleeps_in(call: str, deadline: float) -> None:
    """Return once the main thread sleeps in the system call ``call`` (``write``: to a pipe that is
    full; ``wait4``: for a child to end), which /proc/self/task/TID/syscall numbers, or at the
    monotonic ``deadline``; at once where the number is not known here (another machine)."""
    number = SYSCALLS.get(platform.machine(), {}).get(call)
    state = Path(f"/proc/self/task/{threading.main_thread().native_id}/syscall")
    while number is not None and time.monotonic() < deadline:
        try:
            if state.read_text().split()[0] == str(number):  # ("running" while it runs)
                return
        except (OSError, IndexError):  # a kernel without the file
            return
        time.sleep(0.005)


@pytest.mark.parametrize("during", ["write", "finish"])
def test_ctrl_c_while_gen3c_waits_on_the_encoder_kills_and_reaps_it(tmp_path, monkeypatch, during):
    """SIGINT while gen3c waits on ffmpeg: in a write (ffmpeg takes no more, its pipe is full) or in
    finish() (ffmpeg still encodes). ffmpeg, in its own process group, does not get a terminal's
    Ctrl-C: gen3c kills and reaps it (no orphan left encoding, no zombie) and removes the temporary
    file. In finish() it used to be left running, writing into a file already removed."""
    if during == "write":
        script = tmp_path / "ffmpeg"  # an encoder by name that reads nothing: the writes wait
        script.write_text(f"#!{sys.executable}\nimport pathlib, time\npathlib.Path({str(tmp_path / 'encoding')!r}).touch()\ntime.sleep(60)\n")
        script.chmod(0o755)
    else:
        script = slow_encoder(tmp_path, signal_after=8 * H * W * 3)  # every frame received, then 60 s to finish
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(script))
    pids, signalled = [], []

    def ctrl_c() -> None:
        deadline = time.monotonic() + 30
        while not (tmp_path / "encoding").exists() and time.monotonic() < deadline:
            time.sleep(0.005)
        pids.extend(encoders())
        # gen3c blocked writing into the full pipe, or waiting for ffmpeg to end
        wait_until_the_main_thread_sleeps_in("write" if during == "write" else "wait4", deadline)
        signalled.append(time.monotonic())
        os.kill(os.getpid(), signal.SIGINT)

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C raises KeyboardInterrupt, as in a run
    out = tmp_path / "out"
    out.mkdir()
    try:
        threading.Thread(target=ctrl_c, daemon=True).start()
        with pytest.raises(KeyboardInterrupt), VideoWriter(out / "v.mp4") as writer:
            writer.write(torch.zeros(8, 3, H, W))
            writer.finish()
        stopped = time.monotonic()
    finally:
        signal.signal(signal.SIGINT, previous)
    assert len(pids) == 1 and not Path(f"/proc/{pids[0]}").exists()  # killed and reaped at once
    assert stopped - signalled[0] < 30 and list(out.iterdir()) == []  # not after ffmpeg's 60 s


@pytest.mark.slow
def test_ctrl_c_in_gen3c_generate_while_the_video_is_encoded_ends_at_once(box_scene, tmp_path):
    """SIGINT to `gen3c generate` while chunk 2 is made and ffmpeg still encodes chunk 1: exit 130
    within seconds with the one-line message, no temporary file; --resume then finishes the video."""
    image, depth, _, _ = box_scene
    folder = tmp_path / "out"
    args = [sys.executable, "-m", "gen3c", "generate", "--input_image_path", str(image), "--depth_path", str(depth), "--fov", "60",
            "--resolution", f"{H}x{W}", "--num_video_frames", "9", "--chunk_frames", "5", "--video_save_folder", str(folder)]  # fmt: skip
    env = child_env(OMP_NUM_THREADS="1")
    # chunk 1's 5 frames sent: the run goes on to chunk 2 while the encoder works
    encoder = slow_encoder(tmp_path, signal_after=5 * H * W * 3)
    proc = subprocess.Popen(args, env={**env, "IMAGEIO_FFMPEG_EXE": str(encoder)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    # Chunk 1 kept for --resume as well (its folder is renamed into place after its frames went to the
    # encoder: on a loaded machine a signal between the two found no finished chunk to keep).
    while not ((tmp_path / "encoding").exists() and (folder / "output.partial" / "chunk_0000").exists()):
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline
        time.sleep(0.002)
    proc.send_signal(signal.SIGINT)
    sent = time.monotonic()
    try:
        output, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("gen3c generate waited for the encoder after Ctrl-C")
    assert time.monotonic() - sent < 10
    assert proc.returncode == 130, output
    last = output.strip().splitlines()[-1]
    assert last.startswith("interrupted: ") and "--resume" in last, output
    assert sorted(p.name for p in folder.iterdir()) == ["output.partial"]  # chunk 1 kept; no video, no temporary file
    done = subprocess.run([*args, "--resume"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert read_video(folder / "output.mp4")[0].shape[0] == 9
    assert sorted(p.name for p in folder.iterdir()) == ["output.mp4", "output_cameras.json", "output_run.json"]


def test_an_environment_without_imageio_ffmpeg_is_one_line_and_leaves_no_video(tmp_path, monkeypatch):
    """imageio-ffmpeg missing (a broken install): one line naming the package to install, and no output."""
    import sys

    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # `import imageio_ffmpeg` raises ImportError
    out = tmp_path / "video.mp4"
    with pytest.raises(Gen3cInputError, match="pip install .imageio-ffmpeg>=0.7.") as info, VideoWriter(out) as writer:
        writer.write(torch.zeros(2, 3, H, W))
    assert "\n" not in str(info.value) and str(out) in str(info.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("where", ["run record", "cameras", "point cloud", "flush before the renames", "the video's flush", "standalone video's flush"])
def test_a_full_disk_while_the_outputs_are_written_is_one_line_and_keeps_the_earlier_set(tmp_path, monkeypatch, where):
    """The disk filling up while a companion file is written (NAME_run.json, NAME_cameras.json,
    NAME.ply) or when the finished files are flushed before their renames was a traceback and
    "unexpected OSError … a bug in gen3c" (the video's flush failing after the companions had been
    renamed into place, a mix of two runs' files); now one line naming the cause and the folder
    (exit code 2), the earlier run's set untouched and no temporary file left."""
    import builtins
    import errno
    import json

    from typer.testing import CliRunner

    from gen3c.cli import app
    from gen3c.io import atomic

    out = tmp_path / "out"
    args = ["demo", "--num_video_frames", "3", "--resolution", f"{H}x{W}", "--video_save_folder", str(out), "--save_point_cloud"]
    assert CliRunner().invoke(app, args).exit_code == 0
    earlier = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(earlier) == ["demo.mp4", "demo.ply", "demo_cameras.json", "demo_run.json"]

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    if where == "run record":
        real = Path.write_text
        monkeypatch.setattr(Path, "write_text", lambda self, *a, **k: full() if "demo_run" in self.name else real(self, *a, **k))
    elif where == "cameras":
        real_bytes = Path.write_bytes
        monkeypatch.setattr(Path, "write_bytes", lambda self, *a, **k: full() if "demo_cameras" in self.name else real_bytes(self, *a, **k))
    elif where == "point cloud":
        real_open = builtins.open
        monkeypatch.setattr(builtins, "open", lambda f, mode="r", *a, **k: full() if "w" in mode and ".demo." in str(f) else real_open(f, mode, *a, **k))
    else:  # NFS and thin-provisioned disks say so only when the file is flushed
        real_fsync = atomic._fsync
        video_only = where == "the video's flush"

        def fsync(path, before_rename=False):
            failing = before_rename and (not video_only or path.name.endswith(".part.mp4"))
            return full() if failing else real_fsync(path, before_rename)

        monkeypatch.setattr(atomic, "_fsync", fsync)
    if where == "standalone video's flush":
        with pytest.raises(Gen3cInputError, match=r"^video '.*/out/demo\.mp4' could not be written \(No space left on device\): free some space in '.*/out'"):
            write_video(out / "demo.mp4", torch.zeros(2, 3, 16, 16))
    else:
        res = CliRunner().invoke(app, [*args, "--trajectory", "right"])  # (other cameras: a mix would show)
        assert res.exit_code == 2 and "Traceback" not in res.output, res.output
        last = res.output.strip().splitlines()[-1]
        assert re.fullmatch(r"error: the outputs 'demo' could not be written \(No space left on device\): free some space in '.*/out' \(or write elsewhere\) and run again", last), last
    assert {p.name: p.read_bytes() for p in out.iterdir()} == earlier and json.loads(earlier["demo_run.json"])["outputs"]


def test_a_run_killed_outright_leaves_temporary_files_that_the_next_run_of_its_name_removes(tmp_path):
    """kill -9 (or the out-of-memory killer) while a video is written leaves its hidden
    ``.NAME.….part.mp4``, which stayed for good: a plain run of the same name did not remove it.
    Now the next run removes those of a process that is gone; those of a process still running
    (another run of the name), of other names, or without a process in their name stay."""
    from typer.testing import CliRunner

    from gen3c.cli import app
    from gen3c.io.atomic import _host

    script = (
        "import os, signal, numpy as np\n"
        "from gen3c.io.video import VideoWriter\n"
        f"with VideoWriter({str(tmp_path / 'demo.mp4')!r}, fps=24) as w:\n"
        "    w.write(np.zeros((2, 16, 16, 3), np.uint8))\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    killed = subprocess.run([sys.executable, "-c", script], env=child_env(), capture_output=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    (left,) = tmp_path.glob(".demo.*.part.mp4")
    (tmp_path / ".demo_run.999999999@other-host-k1ll3d.part.json").write_text("{}")  # another machine's
    running = tmp_path / f".demo_cameras.{os.getpid()}@{_host()}-running.part.json"  # a run still going
    kept = [running.name, ".demo_run.999999999@other-host-k1ll3d.part.json", ".demo.abc123.part.mp4", f".demo2.{left.name.split('.')[2]}.part.mp4"]
    for name in kept:
        (tmp_path / name).write_text("{}")
    res = CliRunner().invoke(app, ["demo", "--num_video_frames", "3", "--resolution", f"{H}x{W}", "--video_save_folder", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert not left.exists() and all((tmp_path / name).exists() for name in kept)
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["demo.mp4", "demo_cameras.json", "demo_run.json"]
