"""Frames stream to the video encoder as the preview makes them: the same videos as encoding each
chunk at the end, and a failing encoder or a Ctrl-C mid-stream leaves no output behind."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from gen3c.errors import Gen3cInputError
from gen3c.io.video import VideoWriter, read_video
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


class WholeChunks(PreviewGenerator):
    """The preview handing out each chunk only when it is finished (as before streaming)."""

    streams_frames = False


def encoders() -> list[int]:
    """This process's ffmpeg children that still hold files open (their pids). A killed one is a
    zombie once its main thread ends, but holds its end of the pipe until its last thread does."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
            name, ppid = text[text.index("(") + 1 : text.rindex(")")], int(text[text.rindex(")") + 2 :].split()[1])
            if ppid == os.getpid() and name.startswith("ffmpeg") and any(os.scandir(stat.parent / "fd")):
                found.append(int(stat.parent.name))
        except OSError:  # ended meanwhile
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


def progress_calling(action, stage: str, at: int):
    """A progress factory that calls ``action()`` when ``stage`` (a prefix) reaches ``at`` frames."""

    def factory(name: str, total: int):
        done = [0]

        def step(n: int = 1) -> None:
            done[0] += n
            if name.startswith(stage) and done[0] == at:
                action()

        return step

    return factory


def test_streamed_videos_are_byte_identical_to_whole_chunk_encoding(demo_source, tmp_path):
    """Two chunks (the second without its repeated first frame), with the buffer panel and mask
    videos: streaming frame by frame writes the very files that encoding each chunk at its end
    writes, and every frame reaches the encoder before the next one is made."""
    cams = preset_cameras(demo_source, "left", "center_facing", 13, 0.3)
    events = []

    class Recording(OutputWriter):
        def write(self, frames, buffers):
            events.append(("write", len(frames)))
            super().write(frames, buffers)

    def progress(stage, total):  # records each frame the preview has made
        return (lambda n=1: events.append(("made", n))) if "generating" in stage else (lambda n=1: None)

    outputs = {}
    for generator in (PreviewGenerator(), WholeChunks()):
        events.clear()
        with Recording(tmp_path, type(generator).__name__, save_buffer=True, num_buffers=2) as out:
            result = generate_video(build_cache([demo_source]), cams, generator, demo_source.image, progress, chunk_frames=7, sink=out, keep=True)
            paths = out.finish(cams)
        outputs[type(generator).__name__] = (paths, result, list(events))
    (streamed, result, events), (whole, whole_result, whole_events) = outputs["PreviewGenerator"], outputs["WholeChunks"]
    # Streamed: each frame written as soon as it is made (chunk 1's first frame repeats chunk 0's last).
    assert [e[0] for e in events] == ["write", "made"] * 7 + ["made"] + ["write", "made"] * 6
    assert [e for e in whole_events if e[0] == "write"] == [("write", 7), ("write", 6)]
    for key in ("video", "buffer_masks"):
        assert streamed[key].read_bytes() == whole[key].read_bytes(), key
    frames = read_video(streamed["video"])[0]
    assert frames.shape == (13, H, 3 * W, 3)
    assert torch.equal(result.frames, whole_result.frames)
    # The video's right third is the generated frame (up to H.264's loss on small frames).
    generated = ((result.frames.permute(0, 2, 3, 1) + 1) * 127.5).round().numpy()
    assert np.abs(frames[..., 2 * W :, :].astype(np.float32) - generated).mean() < 8


def request(folder: Path, **changes) -> GenerationRequest:
    return GenerationRequest(num_video_frames=25, resolution=f"{H}x{W}", video_save_folder=str(folder), **changes)


@pytest.mark.parametrize(
    ("at", "what"), [(5, r"ffmpeg stopped after 5 frames \(.*Broken pipe\)"), (25, "ffmpeg encoded 0 of its 25 frames")], ids=["mid-stream", "after-the-last-frame"]
)
def test_an_encoder_that_dies_is_one_clear_error_and_leaves_nothing(demo_source, tmp_path, at, what):
    """ffmpeg killed while frames stream to it (the next frame meets a broken pipe) or after the
    last frame went in (the file lacks frames): one error naming the video; no output, no
    temporary file, no empty output folder, no encoder left running."""
    folder = tmp_path / "out"
    with pytest.raises(Gen3cInputError, match=rf"^video '.*demo\.mp4' could not be written: {what}; check the free space in '.*out'"):
        run_request(request(folder, video_save_name="demo"), source=demo_source, progress=progress_calling(kill_encoders, "Generating", at))
    assert not folder.exists() and not encoders()


def test_ctrl_c_mid_stream_leaves_nothing(demo_source, tmp_path):
    """Ctrl-C while frames stream: no output, no temporary file, the encoder ended; a run of two
    chunks keeps its first chunk (and no half-made second one) for --resume."""

    def ctrl_c():
        raise KeyboardInterrupt

    folder = tmp_path / "one"
    with pytest.raises(KeyboardInterrupt):
        run_request(request(folder), source=demo_source, progress=progress_calling(ctrl_c, "Generating", 9))
    assert not folder.exists() and not encoders()
    folder = tmp_path / "two"
    with pytest.raises(KeyboardInterrupt, match="1 of 2 chunks are kept"):
        run_request(request(folder, chunk_frames=13), source=demo_source, progress=progress_calling(ctrl_c, "Chunk 2/2: generating", 9))
    assert sorted(p.name for p in folder.iterdir()) == ["output.partial"] and not encoders()
    assert sorted(p.name for p in (folder / "output.partial").iterdir()) == ["chunk_0000", "run.json"]
    assert len(list((folder / "output.partial" / "chunk_0000").glob("video_*.png"))) == 13


def test_video_writer_refuses_a_killed_encoder(tmp_path):
    frames = torch.linspace(-1, 1, 4)[:, None, None, None].expand(4, 3, 64, 96)
    with pytest.raises(Gen3cInputError, match=r"ffmpeg stopped after 4 frames \(.*Broken pipe"), VideoWriter(tmp_path / "v.mp4") as writer:
        writer.write(frames)
        kill_encoders()
        writer.write(frames)
    assert not any(tmp_path.iterdir())
