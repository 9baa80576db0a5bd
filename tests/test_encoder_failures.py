"""An ffmpeg that dies while a video is written, or a Ctrl-C, is one clear error and leaves no
output behind: no video, no companion files, no temporary file, no encoder still running."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import torch

from gen3c.errors import Gen3cInputError
from gen3c.io.video import VideoWriter
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


def error(path: str, what: str) -> str:
    return rf"^video '.*{path}' could not be written: {what}; check the free space in '.*' and run again$"


def test_video_writer_refuses_an_encoder_that_died(tmp_path):
    frames = torch.linspace(-1, 1, 4)[:, None, None, None].expand(4, 3, 64, 96)
    # Killed between two writes: the next frame meets a broken pipe.
    with pytest.raises(Gen3cInputError, match=error("a.mp4", r"ffmpeg stopped after 4 frames \(\[Errno 32\] Broken pipe\)")):
        with VideoWriter(tmp_path / "a.mp4") as writer:
            writer.write(frames)
            kill_encoders()
            writer.write(frames)
    # Killed after the last frame went into its pipe: the file lacks the frames.
    with pytest.raises(Gen3cInputError, match=error("b.mp4", "ffmpeg encoded 0 of its 4 frames")):
        with VideoWriter(tmp_path / "b.mp4") as writer:
            writer.write(frames)
            kill_encoders()
    assert not any(tmp_path.iterdir())


def test_an_encoder_dying_at_the_end_leaves_no_companion_files(demo_source, tmp_path):
    cams = preset_cameras(demo_source, "left", "center_facing", 9, 0.3)
    with pytest.raises(Gen3cInputError, match=error(r"v\.mp4", "ffmpeg encoded 0 of its 9 frames")):
        with OutputWriter(tmp_path, "v", save_buffer=True, point_cloud=True) as out:
            generate_video(build_cache([demo_source]), cams, PreviewGenerator(), demo_source.image, sink=out)
            kill_encoders()
            out.finish(cams, point_cloud=(torch.zeros(1, 3), torch.zeros(1, 3)), metadata={})
    assert not any(tmp_path.iterdir()) and not encoders()


def request(folder: Path, **changes) -> GenerationRequest:
    return GenerationRequest(num_video_frames=25, chunk_frames=13, resolution=f"{H}x{W}", video_save_folder=str(folder), **changes)


def test_an_encoder_dying_mid_run_is_one_error_and_the_run_resumes(demo_source, tmp_path):
    """Killed while chunk 2 is made (chunk 1 is in the encoder): one error, no output; chunk 1 is
    kept, so --resume (disk space freed, say) makes the video an uninterrupted run makes."""
    whole = run_request(request(tmp_path / "whole"), source=demo_source)
    folder = tmp_path / "out"
    with pytest.raises(Gen3cInputError, match=error(r"out/output\.mp4", r"ffmpeg stopped after 13 frames \(\[Errno 32\] Broken pipe\)")):
        run_request(request(folder), source=demo_source, progress=when("Chunk 2/2: generating (preview)", kill_encoders))
    assert sorted(p.name for p in folder.iterdir()) == ["output.partial"] and not encoders()
    resumed = run_request(request(folder), source=demo_source, resume=True)
    assert resumed.paths["video"].read_bytes() == whole.paths["video"].read_bytes()


def test_ctrl_c_while_the_encoder_holds_frames_leaves_nothing(demo_source, tmp_path):
    def ctrl_c():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt, match="1 of 2 chunks are kept"):
        run_request(request(tmp_path), source=demo_source, progress=when("Chunk 2/2: generating (preview)", ctrl_c))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["output.partial"] and not encoders()


def test_an_environment_without_imageio_ffmpeg_is_one_line_and_leaves_no_video(tmp_path, monkeypatch):
    """imageio raises ImportError for its FFMPEG plugin when imageio-ffmpeg is missing (a broken
    install): one line naming the package to install, and no output."""
    import imageio.v2 as imageio

    def no_plugin(*args, **kwargs):
        raise ImportError("The `FFMPEG` plugin is not installed. Use `pip install imageio[ffmpeg]` to install it.")

    monkeypatch.setattr(imageio, "get_writer", no_plugin)
    out = tmp_path / "video.mp4"
    with pytest.raises(Gen3cInputError, match="pip install imageio-ffmpeg") as info, VideoWriter(out) as writer:
        writer.write(torch.zeros(2, 3, H, W))
    assert "\n" not in str(info.value) and str(out) in str(info.value)
    assert list(tmp_path.iterdir()) == []
