"""Chunked (autoregressive) generation, depth alignment and multi-view buffer selection."""

import json
import math
import os
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from gen3c.cache import BufferRenders, Cache3D, SelectingCache3D, keep_only_first_full
from gen3c.cameras import Cameras, look_at, make_intrinsics
from gen3c.errors import Gen3cInputError
from gen3c.io.frames import FrameStack, images_to_uint8
from gen3c.pipelines.autoregressive import (
    GrowingCache,
    VideoCache,
    align_depth_to_reference,
    check_chunked_frame_count,
    plan_chunks,
)
from gen3c.pipelines.camera_video import OutputWriter, check_num_frames, generate_video, resolve_chunk_frames
from gen3c.pipelines.preview import PreviewGenerator, smooth_surface_pixels

H, W = 24, 32
K = make_intrinsics(30.0, 30.0, (W - 1) / 2, (H - 1) / 2)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # (conftest.py)


def plane_view(depth=3.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, H), torch.linspace(-1, 1, W), indexing="ij")
    image = torch.stack([torch.sin(3 * xx), torch.cos(2 * yy), xx * yy]) * 0.8 + 0.05 * torch.rand(
        3, H, W, generator=g
    )
    return image.clamp(-1, 1), torch.full((H, W), depth)


def slide(n, step=0.02, start=0.0):
    eyes = torch.stack([torch.tensor([start + step * i, 0.0, 0.0]) for i in range(n)])
    return Cameras(look_at(eyes, eyes + torch.tensor([0.0, 0.0, 1.0])), K, H, W)


# --------------------------------------------------------------------------------------------
# Chunk plans and frame counts
# --------------------------------------------------------------------------------------------


def test_plan_chunks_overlap_by_one_frame():
    assert plan_chunks(121, 121) == [(0, 121)]
    assert plan_chunks(361, 121) == [(0, 121), (120, 241), (240, 361)]
    assert plan_chunks(50, None) == [(0, 50)]
    assert plan_chunks(20, 8) == [(0, 8), (7, 15), (14, 20)]
    for n, chunk in ((241, 121), (20, 8), (9, 2)):
        chunks = plan_chunks(n, chunk)
        # chunk 0 + every later chunk without its first frame = n frames
        assert chunks[0][1] + sum(stop - start - 1 for start, stop in chunks[1:]) == n


def test_gen3c_frame_counts_are_120n_plus_1():
    check_chunked_frame_count(241, 121, "gen3c")
    for bad in (120, 200, 242, 1):
        with pytest.raises(Gen3cInputError, match=r"121, 241, 361, …"):
            check_chunked_frame_count(bad, 121, "the gen3c generator")
    # A custom generator's own chunk_frames: 1 was a ZeroDivisionError, 2.5 asked for "1.5·N+1 frames".
    for chunk in (1, 0, 2.5, True):
        gen = Recorder(chunk)
        with pytest.raises(Gen3cInputError, match=rf"^the recorder generator has chunk_frames {chunk!r}: .* a whole number, 2 or more$"):
            generate_video(Cache3D(), slide(5), gen)


def test_frame_count_refusals_name_their_flags_so_each_surface_respells_them():
    """A direct library caller (generate_video, plan_chunks) or a handed-over custom generator got
    "num_video_frames 0 is impossible", "chunk_frames 1 is too small": no flag, so neither the
    CLI's "--" nor gen3c.generate()'s "name=" spelling applied."""
    from gen3c.pipelines.spelling import keyword_spelling

    refusals = []
    for call in (lambda: check_num_frames(0, PreviewGenerator()), lambda: plan_chunks(20, 1),
                 lambda: generate_video(Cache3D(), slide(5), PreviewGenerator(), chunk_frames=1),
                 lambda: check_chunked_frame_count(20, 17, "the recorder generator")):  # fmt: skip
        with pytest.raises(Gen3cInputError) as refused:
            call()
        refusals.append(str(refused.value))
    assert refusals[0] == "--num_video_frames 0 is impossible: pass a count between 1 and 100000"
    assert refusals[1] == "--chunk_frames 1 is too small: chunks overlap by one frame, so pass 2 or more"
    assert refusals[2] == "chunk_frames=1 is too small: chunks overlap by one frame, so pass 2 or more"  # (generate_video's keyword)
    assert refusals[3].startswith("--num_video_frames 20 is not possible with the recorder generator, which makes 17 frames per chunk")
    assert [keyword_spelling(r).split(" is ")[0] for r in refusals] == ["num_video_frames=0", "chunk_frames=1", "chunk_frames=1", "num_video_frames=20"]


class Recorder:
    """A generator with a fixed chunk: returns its first buffer, records every call."""

    name = "recorder"

    def __init__(self, chunk_frames=9):
        self.chunk_frames = chunk_frames
        self.calls = []

    def check_num_frames(self, n):
        if n != self.chunk_frames:
            raise Gen3cInputError(f"one call makes {self.chunk_frames} frames, not {n}")

    def generate(self, cache, cameras, first_frame=None, *, buffers=None, progress=None, chunk=0):
        self.calls.append(
            {
                "cameras": cameras,
                "first": first_frame.clone(),
                "buffers": buffers.num_buffers,
                "views": buffers.views,
                "cache": cache,
                "chunk": chunk,
            }
        )
        frames = buffers.colors[:, 0].clone()
        frames[0] = first_frame
        return frames


def test_fixed_chunk_generator_is_called_per_chunk_with_the_same_protocol():
    image, depth = plane_view()
    cache = Cache3D()
    cache.add_view(image, depth, K, torch.eye(4))
    cams = slide(25)
    gen = Recorder(9)
    seen = []
    result = generate_video(
        cache,
        cams,
        gen,
        first_frame=image,
        progress=lambda stage, total: seen.append(stage) or (lambda n=1: None),
    )
    assert (
        result.num_frames == 25 and len(result.frames) == 25 and result.chunks == [(0, 9), (8, 17), (16, 25)]
    )
    assert [len(c["cameras"]) for c in gen.calls] == [9, 9, 9]
    assert torch.equal(gen.calls[0]["cameras"].w2c, cams.w2c[:9]) and torch.equal(
        gen.calls[2]["cameras"].w2c, cams.w2c[16:]
    )
    # Chunk k+1 is conditioned on chunk k's last frame as the video holds it (uint8, as GEN3C's
    # scripts take video[-1]; it was the float frame), which the cache also took as a new buffer.
    for call, t in ((gen.calls[1], 8), (gen.calls[2], 16)):
        saved = images_to_uint8(result.frames[t]).float() / 255 * 2 - 1
        assert torch.equal(call["first"], saved) and not torch.equal(saved, result.frames[t])
    grown = gen.calls[2]["cache"]
    assert torch.equal(grown.views[0].colors[0], gen.calls[2]["first"].permute(1, 2, 0))
    assert [c["buffers"] for c in gen.calls] == [1, 2, 2]
    assert len(grown) == 2 and len(cache) == 1  # the frames grew a copy: the caller's cache is as built
    assert "Chunk 2/3: rendering 3D cache" in seen and "Chunk 3/3: generating (recorder)" in seen
    assert "Chunk 2/3: adding frame 8 to the cache" in seen
    # --save_buffer's panel is padded to the most buffers any chunk had.
    assert result.buffers.colors.shape == (25, 2, 3, H, W)
    with pytest.raises(Gen3cInputError, match="8·N\\+1 frames \\(9, 17, 25, …\\)"):
        check_num_frames(20, gen)
    assert [c["chunk"] for c in gen.calls] == [0, 1, 2]


def test_the_newest_generated_frame_replaces_buffer_0_and_the_source_stays_buffer_1():
    """GEN3C's update_cache once 2 buffers exist: the new view overwrites buffer 0, so before chunk 4
    of 33 frames (chunks of 9) the cache is [frame 24 at camera 24, the source], not frames 16 and 24."""
    image, depth = plane_view()
    cache = Cache3D()
    cache.add_view(image, depth, K, torch.eye(4))
    cams, gen = slide(33), Recorder(9)
    result = generate_video(cache, cams, gen, first_frame=image)
    assert result.chunks == [(0, 9), (8, 17), (16, 25), (24, 33)]
    newest, source = result.plan.cache.views
    assert torch.equal(newest.colors[0], gen.calls[3]["first"].permute(1, 2, 0))
    assert torch.equal(newest.w2c[0], cams.w2c[24]) and torch.equal(newest.K[0], cams.K[24])
    assert torch.equal(source.w2c[0], torch.eye(4)) and source is cache.views[0]


def test_start_chunk_outside_the_run_is_one_line_and_past_the_last_chunk_makes_nothing():
    """start_chunk = the chunk count (a resumed run whose chunks were all kept) made nothing and
    kept nothing, then failed in torch.cat; -1 and 1.5 ran chunks they did not name."""
    image, depth = plane_view()
    cache = Cache3D()
    cache.add_view(image, depth, K, torch.eye(4))
    gen = Recorder(9)
    done = generate_video(cache, slide(25), gen, first_frame=image, start_chunk=3)
    assert gen.calls == [] and done.frames is None and done.buffers is None and done.num_frames == 25
    assert torch.equal(done.last_frame, image)
    for bad in (4, -1, 1.5, True):
        with pytest.raises(Gen3cInputError, match=rf"^start_chunk {bad!r} does not fit a run of 3 chunks: pass the index of the first chunk to make, 0 to 2 \(3: all are made\)$"):
            generate_video(cache, slide(25), gen, first_frame=image, start_chunk=bad)
    assert gen.calls == []
    last = generate_video(cache, slide(25), gen, first_frame=image, start_chunk=2)
    assert [c["chunk"] for c in gen.calls] == [2] and len(last.frames) == 8


def test_a_generator_whose_generate_has_no_chunk_keyword_is_called_without_it():
    # Written to the protocol before `chunk` existed: it got a TypeError for the new keyword.
    class OldRecorder(Recorder):
        def generate(self, cache, cameras, first_frame=None, *, buffers=None, progress=None):
            return super().generate(cache, cameras, first_frame, buffers=buffers, progress=progress)

    image, depth = plane_view()
    cache = Cache3D()
    cache.add_view(image, depth, K, torch.eye(4))
    gen = OldRecorder(9)
    assert generate_video(cache, slide(17), gen, first_frame=image).num_frames == 17
    assert [c["chunk"] for c in gen.calls] == [0, 0]  # its own default



def test_one_cache_renders_many_paths_each_as_if_alone():
    """docs/python.md reuses one cache for any number of paths: a long path's generated frames
    joined the caller's cache, so the next path rendered them (from other cameras) as a buffer."""
    image, depth = plane_view()
    cache = Cache3D()
    cache.add_view(image, depth, K, torch.eye(4))
    fresh = Cache3D()
    fresh.add_view(image, depth, K, torch.eye(4))
    generate_video(cache, slide(17, step=0.05), Recorder(9), first_frame=image)
    again, alone = Recorder(9), Recorder(9)
    reused = generate_video(cache, slide(17, step=-0.03), again, first_frame=image).frames
    assert torch.equal(reused, generate_video(fresh, slide(17, step=-0.03), alone, first_frame=image).frames)
    assert [c["buffers"] for c in again.calls] == [1, 2] and len(cache) == 1


def test_every_chunk_is_splatted_where_the_generator_asks():
    """A generator's ``render_device`` (the gen3c generator's GPU) is where each chunk's buffers
    are splatted, and its ``render_output_device`` where the renders are handed over (absent:
    where the cache is)."""
    calls = []

    class RecordingCache(Cache3D):
        def render(self, cameras, *args, device=None, output_device=None, **kwargs):
            out = super().render(cameras, *args, device=device, output_device=output_device, **kwargs)
            calls.append((len(cameras), device, output_device, out.colors.device.type))
            return out

    image, depth = plane_view()
    cache = RecordingCache()
    cache.add_view(image, depth, K, torch.eye(4))
    gen = Recorder(9)
    gen.render_device = torch.device("cpu")
    generate_video(cache, slide(17), gen, first_frame=image)
    assert [c for c in calls if c[0] == 9] == [(9, torch.device("cpu"), None, "cpu")] * 2
    calls.clear()
    gen.render_output_device = torch.device("cpu")
    generate_video(cache, slide(17), gen, first_frame=image)
    assert [c for c in calls if c[0] == 9] == [(9, torch.device("cpu"), torch.device("cpu"), "cpu")] * 2

def test_preview_runs_chunked_for_120n_plus_1_or_when_asked():
    gen = PreviewGenerator()
    assert resolve_chunk_frames(241, gen) == 121
    assert resolve_chunk_frames(121, gen) is None and resolve_chunk_frames(200, gen) is None
    assert resolve_chunk_frames(30, gen, 10) == 10
    with pytest.raises(Gen3cInputError, match="chunk_frames"):
        resolve_chunk_frames(241, Recorder(121), 60)
    for bad in (2.5, 3.0, "3", True, torch.tensor(3)):  # raw TypeErrors (or a frame_offset error) before
        with pytest.raises(Gen3cInputError, match=rf"chunk_frames is (\w+ {re.escape(repr(str(bad)))}|a torch tensor of shape \(\)): pass a whole number of frames, 2 or more"):
            generate_video(Cache3D(), slide(5), gen, chunk_frames=bad)
    assert resolve_chunk_frames(30, gen, np.int64(10)) == 10 and type(resolve_chunk_frames(30, gen, np.int64(10))) is int


def test_preview_chunks_meet_without_a_repeated_or_dropped_frame():
    """A plane whose colour is its world x, seen by a camera sliding along x: the middle of frame t
    shows the colour of x = t·step, so a repeated or dropped frame at a seam (frames 4 and 8 of
    chunks of 5) is off by a whole step (0.025), 6× the uint8 rounding the seams carry."""
    h, w, step = 12, 16, 0.05
    k = make_intrinsics(15.0, 15.0, (w - 1) / 2, (h - 1) / 2)
    x = (torch.arange(w) - (w - 1) / 2) / 15.0 * 3.0  # world x of each column on the plane z = 3
    image = torch.stack([0.5 * x.expand(h, w), torch.full((h, w), -0.3), torch.full((h, w), 0.2)])
    cache = Cache3D()
    cache.add_view(image, torch.full((h, w), 3.0), k, torch.eye(4))
    eyes = torch.stack([torch.tensor([step * i, 0.0, 0.0]) for i in range(13)])
    cams = Cameras(look_at(eyes, eyes + torch.tensor([0.0, 0.0, 1.0])), k, h, w)
    result = generate_video(cache, cams, PreviewGenerator(), first_frame=image, chunk_frames=5)
    assert result.chunks == [(0, 5), (4, 9), (8, 13)] and len(result.frames) == 13
    expected = 0.5 * (step * torch.arange(13.0))[:, None, None] + 0.5 * x[6:10]
    assert torch.allclose(result.frames[:, 0, 4:8, 6:10], expected.expand(13, 4, 4), atol=0.004)


def test_video_cache_renders_source_frame_t_in_every_chunk():
    T = 12
    frames = torch.stack([plane_view(seed=i)[0] for i in range(T)])
    stack = FrameStack(images_to_uint8(frames), torch.full((T, H, W), 3.0), torch.ones(T, H, W, dtype=torch.bool),
                       torch.eye(4).expand(T, 4, 4).clone(), K.expand(T, 3, 3).clone())  # fmt: skip
    still = Cameras(torch.eye(4).expand(17, 4, 4).clone(), K, H, W)  # 5 frames past the source's end
    result = generate_video(VideoCache(stack), still, Recorder(5), first_frame=stack.image(0))
    assert result.chunks == [(0, 5), (4, 9), (8, 13), (12, 17)]
    out = result.frames
    source = stack.image(0, T)
    for t in range(1, 17):
        if t in (4, 8, 12):
            continue  # chunk starts show the conditioning frame (the previous chunk's last one)
        expected = source[min(t, T - 1)]
        assert (out[t] - expected).abs().max() < 1e-4, t


def test_a_kept_video_of_one_chunk_is_the_generators_own_tensors(tmp_path):
    """One chunk's frames and renders are the result as they are (no copy), with what a copy
    gave: the same values, contiguous; chunks are joined as before."""
    image, depth = plane_view()
    cache = Cache3D()
    cache.add_view(image, depth, K, torch.eye(4))

    class Keeping(Recorder):
        def generate(self, cache, cameras, first_frame=None, *, buffers=None, progress=None, chunk=0):
            self.buffers = buffers
            self.frames = super().generate(cache, cameras, first_frame, buffers=buffers)
            return self.frames

    gen = Keeping(9)
    result = generate_video(cache, slide(9), gen, first_frame=image, keep=True)
    assert result.frames.data_ptr() == gen.frames.data_ptr() and torch.equal(result.frames, torch.cat([gen.frames]))
    assert result.buffers.colors.data_ptr() == gen.buffers.colors.data_ptr()
    assert torch.equal(result.buffers.depths, gen.buffers.depths) and torch.equal(result.buffers.masks, gen.buffers.masks)

    class Strided(Recorder):  # frames in a permuted memory layout, as a (T, 3, H, W) view of (3, T, H, W)
        def generate(self, *args, **kwargs):
            return super().generate(*args, **kwargs).permute(1, 0, 2, 3).contiguous().permute(1, 0, 2, 3)

    strided = generate_video(cache, slide(9), Strided(9), first_frame=image, keep=True).frames
    assert strided.is_contiguous() and torch.equal(strided, result.frames)
    chunked = generate_video(cache, slide(17), Recorder(9), first_frame=image, keep=True)
    assert chunked.frames.shape == (17, 3, H, W) and chunked.buffers.colors.shape[0] == 17


def test_outputs_stream_and_vanish_on_error(tmp_path):
    image, depth = plane_view()
    cache = Cache3D()
    cache.add_view(image, depth, K, torch.eye(4))
    cams = slide(17)
    with OutputWriter(tmp_path, "v", save_buffer=True, num_buffers=2) as out:
        result = generate_video(cache, cams, Recorder(9), first_frame=image, sink=out)
        paths = out.finish(cams)
    assert result.frames is None and out.frames_written == 17
    from gen3c.io.video import read_video

    frames, _ = read_video(paths["video"])
    assert frames.shape == (17, H, 3 * W, 3)

    class Failing(Recorder):
        def generate(self, *args, **kwargs):
            if len(self.calls) == 1:
                raise KeyboardInterrupt
            return super().generate(*args, **kwargs)

    with pytest.raises(KeyboardInterrupt), OutputWriter(tmp_path / "b", "v") as out:
        generate_video(cache, cams, Failing(9), first_frame=image, sink=out)
    assert not any((tmp_path / "b").iterdir())


def test_a_generator_that_returns_the_wrong_frames_is_refused_and_nothing_is_published(tmp_path):
    """A generator whose chunk is not one frame per camera at the cameras' size would make a video
    that its cameras file (and the next chunk's conditioning frame) disagree with."""
    image, depth = plane_view()
    cache = Cache3D()
    cache.add_view(image, depth, K, torch.eye(4))

    class Short(Recorder):
        def generate(self, *args, **kwargs):
            return super().generate(*args, **kwargs)[:-1]

    with pytest.raises(Gen3cInputError, match=r"the recorder generator returned \(8, 3, 24, 32\) for 9 cameras.*\(9, 3, 24, 32\)"):
        with OutputWriter(tmp_path, "v") as out:
            generate_video(cache, slide(17), Short(9), first_frame=image, sink=out)
            out.finish(slide(17))
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(Gen3cInputError, match="returned a list"):
        generate_video(cache, slide(9), type("Listing", (Recorder,), {"generate": lambda self, *a, **k: []})(9), first_frame=image)


def test_a_first_frame_outside_minus_one_to_one_is_refused_before_any_render():
    """The preview shows the first frame where frame 0's cache has holes, as it is: a uint8
    image (0 … 255) made frames far outside [-1, 1]."""
    image, depth = plane_view()
    valid = torch.ones(H, W, dtype=torch.bool)
    valid[8:16, 10:20] = False  # a hole in frame 0
    cache = Cache3D()
    cache.add_view(image, depth, K, torch.eye(4), valid)
    as_uint8 = ((image + 1) * 127.5).round().to(torch.uint8)
    refused = (
        (as_uint8, r"uint8 values in \[\d+, \d+\]"),
        (as_uint8.float(), "float32 values"),
        (image.clone().fill_(math.nan), r"float32 values in \[nan, nan\]"),
    )
    for frame, said in refused:
        with pytest.raises(Gen3cInputError, match=f"first_frame holds {said}.*pass floats in \\[-1, 1\\]"):
            generate_video(cache, slide(3), PreviewGenerator(), first_frame=frame)
    frames = generate_video(cache, slide(3), PreviewGenerator(), first_frame=image).frames
    assert torch.allclose(frames[0, :, 8:16, 10:20], image[:, 8:16, 10:20])


def test_a_generator_that_returns_nan_is_refused_and_nothing_is_published(tmp_path):
    """NaN frames (a float16 model overflowing) were written as black pixels, and the next chunk
    was conditioned on them."""
    image, depth = plane_view()
    cache = Cache3D()
    cache.add_view(image, depth, K, torch.eye(4))

    class Overflowing(Recorder):
        def generate(self, *args, **kwargs):
            frames = super().generate(*args, **kwargs)
            if len(self.calls) == 2:
                frames[3, :, 5] = math.nan
            return frames

    with pytest.raises(Gen3cInputError, match=r"^Chunk 2/2: the recorder generator returned NaN or infinite values") as err:
        with OutputWriter(tmp_path, "v") as out:
            generate_video(cache, slide(17), Overflowing(9), first_frame=image, sink=out)
            out.finish(slide(17))
    assert list(tmp_path.iterdir()) == []
    # The float16 advice only for a model computing in float16 (it was given to every generator).
    assert "must return finite frames" in str(err.value) and "float16" not in str(err.value)
    half = Overflowing(9)
    half.pipeline = SimpleNamespace(transformer=SimpleNamespace(dtype=torch.float16))
    with pytest.raises(Gen3cInputError, match=r"float16 can overflow \(--dtype bfloat16"):
        generate_video(cache, slide(17), half, first_frame=image)


def _peak_rss_growth(run) -> int:
    """Bytes the process's peak RSS rose above its RSS while ``run()`` ran (Linux: the peak is
    reset through /proc/self/clear_refs first)."""
    def status(key):
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key))

    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # VmHWM := VmRSS
    before = status("VmRSS:")
    run()
    return status("VmHWM:") - before


@pytest.mark.skipif(not os.access("/proc/self/clear_refs", os.W_OK), reason="resets the peak RSS through Linux's /proc")
def test_checking_a_chunk_for_nan_makes_no_copy_of_it():
    """Each chunk's frames are checked for NaN without whole-chunk temporaries. Before:
    torch.isfinite made a float copy and three bool masks of the chunk (21 bytes a pixel, more
    than the frames' own 12): at 352×640 a 200-frame preview peaked at 2.9 GB instead of 2.1."""
    from gen3c.pipelines.camera_video import _check_frames

    cams = slide(20)
    big = Cameras(cams.w2c, cams.K, H * 32, W * 32)
    frames = torch.full((20, 3, H * 32, W * 32), 0.25)  # 20 frames of 768 × 1024: 189 MB, resident
    grown = _peak_rss_growth(lambda: _check_frames(frames, big, Recorder(20)))
    assert grown < 32 << 20, f"{grown / 2**20:.0f} MB"  # before: 330 MB
    for bad in (math.nan, -math.inf):
        frames[7, 1, 100, 200] = bad
        with pytest.raises(Gen3cInputError, match="returned NaN or infinite values"):
            _check_frames(frames, big, Recorder(20))


def test_finish_refuses_cameras_that_do_not_match_the_video(tmp_path):
    image, depth = plane_view()
    cache = Cache3D()
    cache.add_view(image, depth, K, torch.eye(4))
    with pytest.raises(Gen3cInputError, match="got 17 cameras for a video of 9 frames"), OutputWriter(tmp_path, "v") as out:
        generate_video(cache, slide(9), Recorder(9), first_frame=image, sink=out)
        out.finish(slide(17))
    assert list(tmp_path.iterdir()) == []


def test_a_save_buffer_panel_narrower_than_a_later_chunk_is_said_plainly(tmp_path):
    """With too small a ``num_buffers``, the growing cache's second chunk (2 buffers) widened the
    panel, and the run ended in the encoder's "frames of 24×96 after frames of 24×64"."""
    image, depth = plane_view()
    cache = Cache3D()
    cache.add_view(image, depth, K, torch.eye(4))
    with pytest.raises(Gen3cInputError, match=r"OutputWriter\(num_buffers=1\) got a chunk of 2 buffers.*buffers_for"):
        with OutputWriter(tmp_path, "v", save_buffer=True) as out:
            generate_video(cache, slide(17), Recorder(9), first_frame=image, sink=out)
    assert list(tmp_path.iterdir()) == []
    two = Cache3D()  # a first chunk of more buffers than said sets the width (as before), later ones pad to it
    for shift in (0.0, 0.1):
        two.add_view(image, depth, K, look_at(torch.tensor([shift, 0.0, 0.0]), torch.tensor([shift, 0.0, 1.0])))
    with OutputWriter(tmp_path, "w", save_buffer=True) as out:
        generate_video(two, slide(9), Recorder(9), first_frame=image, sink=out)
        out.finish(slide(9))
    from gen3c.io.video import read_video

    assert read_video(tmp_path / "w.mp4")[0].shape == (9, H, 3 * W, 3)


def test_ctrl_c_as_the_outputs_are_renamed_into_place_leaves_one_whole_set(tmp_path, monkeypatch):
    """Ctrl-C arriving between the renames that publish a run's files waits for the last one: the
    folder holds the new set (video and companions), never a new companion beside an old video."""
    import os
    import signal

    import gen3c.io.atomic

    image, depth = plane_view()
    cache = Cache3D()
    cache.add_view(image, depth, K, torch.eye(4))
    cams = slide(9)
    with OutputWriter(tmp_path, "v") as out:
        generate_video(cache, cams, Recorder(9), first_frame=image, sink=out)
        out.finish(cams, metadata={"run": 1})
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    renamed = []

    def replace(src, dst):
        if not Path(dst).name.startswith("."):  # (not a temporary file written in two steps)
            if not renamed:
                os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C as the first file goes into place
            renamed.append(Path(dst).name)
        os.rename(src, dst)

    monkeypatch.setattr(gen3c.io.atomic.os, "replace", replace)
    with pytest.raises(KeyboardInterrupt), OutputWriter(tmp_path, "v") as out:
        generate_video(cache, cams, Recorder(9), first_frame=image, sink=out)
        out.finish(cams, metadata={"run": 2})
    assert sorted(renamed) == sorted(before) == ["v.mp4", "v_cameras.json", "v_run.json"]
    assert all(p.stat().st_mtime_ns != before[p.name] for p in tmp_path.iterdir())
    assert json.loads((tmp_path / "v_run.json").read_text())["run"] == 2


def test_a_ctrl_c_python_drops_in_a_finalizer_still_ends_the_run(tmp_path, monkeypatch):
    """Ctrl-C arriving while Python runs a finalizer (a regex freed while transformers loads, as
    seen) raises there and is dropped ("Exception ignored in …"): `gen3c generate` went on to write
    every output and exit 0. Under the command line's handler it ends the run at the next progress
    step, and no output is published."""
    import signal
    import sys

    import gen3c.errors
    from gen3c.progress import progress_bars

    class Freed:
        def __del__(self):
            signal.raise_signal(signal.SIGINT)  # handled before it returns: its KeyboardInterrupt is raised in here, and dropped

    dropped = []
    monkeypatch.setattr(sys, "unraisablehook", lambda unraisable: dropped.append(unraisable.exc_type))
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    gen3c.errors.terminate_like_ctrl_c()
    try:
        image, depth = plane_view()
        cache = Cache3D()
        cache.add_view(image, depth, K, torch.eye(4))
        cams = slide(9)
        with pytest.raises(KeyboardInterrupt), OutputWriter(tmp_path, "v") as out:
            generate_video(cache, cams, Recorder(9), first_frame=image, sink=out)
            Freed()  # freed at once
            out.finish(cams)
        assert dropped == [KeyboardInterrupt] and list(tmp_path.iterdir()) == []
        with pytest.raises(KeyboardInterrupt), progress_bars() as progress:
            progress("Generating", 9)(1)
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
        gen3c.errors._INTERRUPTED.clear()


# --------------------------------------------------------------------------------------------
# Depth alignment (GEN3C's gen3c_single_image.py)
# --------------------------------------------------------------------------------------------


def smooth_depth(h=40, w=56):
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    return 1.5 + 2.0 * xx + 0.5 * torch.sin(6 * yy)


def test_alignment_recovers_a_known_affine_map_in_inverse_depth():
    est = smooth_depth()
    ref = 1.0 / (0.6 / est + 0.15)
    valid = torch.rand(est.shape, generator=torch.Generator().manual_seed(0)) > 0.3
    aligned = align_depth_to_reference(est, ref, valid, steps=0)
    assert ((aligned - ref).abs() / ref).max() < 1e-5  # everywhere, also where the reference is unknown
    # Outliers far outside the 10–90 % quantiles do not bend the fit.
    corrupt = ref.clone()
    outliers = torch.rand(est.shape, generator=torch.Generator().manual_seed(1)) < 0.05
    corrupt[outliers] *= 20
    aligned = align_depth_to_reference(est, corrupt, valid, steps=0)
    assert ((aligned - ref).abs() / ref).max() < 1e-5


def test_alignment_refines_a_smooth_scale_map():
    est = smooth_depth()
    h, w = est.shape
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    ref = (1.0 / (0.6 / est + 0.15)) * (1 + 0.04 * torch.sin(3 * xx + 2 * yy))
    valid = torch.ones(h, w, dtype=torch.bool)
    Kd = make_intrinsics(50.0, 50.0, w / 2, h / 2)
    steps = []
    affine = align_depth_to_reference(est, ref, valid, Kd, steps=0)
    refined = align_depth_to_reference(est, ref, valid, Kd, progress=steps.append)
    assert len(steps) == 100
    err = lambda d: float(((d - ref).abs() / ref).mean())  # noqa: E731
    assert err(refined) < 0.2 * err(affine)


def test_generated_frame_joins_the_cache_with_aligned_depth():
    image, depth = plane_view(depth=3.0)
    cache = Cache3D()
    cache.add_view(image, depth, K, torch.eye(4))
    cam = slide(2, step=0.05)[1]
    frame = cache.render(cam).colors[0, 0]

    class Doubling:  # an estimator whose scale is off by 2 (as any relative depth model's is)
        def estimate(self, image, size=None):
            assert image.min() >= 0 and size == (H, W)
            return type("E", (), {"depth": torch.full((H, W), 6.0) + 0.01 * torch.rand(H, W)})()

    grown = GrowingCache(cache, depth_estimator=Doubling(), align_steps=10)
    assert grown.add_generated_frame(frame, cam)
    assert len(cache) == 2
    new = cache.views[0]  # newest first
    z = (new.points[0] @ cam.w2c[0, :3, :3].T + cam.w2c[0, :3, 3])[..., 2]
    assert (z[new.valid[0]] - 3.0).abs().max() < 0.05  # aligned to the rendered depth, not 6


def test_a_generated_frames_far_depth_stays_far_as_in_gen3c():
    """GEN3C clamps a source view's depth to 100 but a generated frame's to 10⁴ (cache_3d.py's
    update_cache): sky an estimator puts at 1000 stays at ~1000 once aligned (scale ½ here), where
    it sat at 100 before; NaN goes to 10⁴ as GEN3C's does."""
    image, depth = plane_view(depth=3.0)
    cache = Cache3D(filter_points_threshold=0)
    cache.add_view(image, depth, K, torch.eye(4))
    cam = slide(2, step=1.5)[1]  # half the frame past the source's edge: unseen by the cache
    from gen3c.pipelines.preview import composite_buffers

    _, seen, _ = composite_buffers(cache.render(cam))
    seen = seen[0].cpu()
    assert 0 < int(seen.sum()) < H * W and not seen[:, -1].any()
    estimate = torch.where(seen, torch.tensor(6.0), torch.tensor(2000.0))
    estimate[0, -1] = float("nan")
    frame = cache.render(cam).colors[0, 0]
    assert GrowingCache(cache, depth_estimator=Returns(estimate), align_steps=0).add_generated_frame(frame, cam)
    new = cache.views[0]
    z = (new.points[0] @ cam.w2c[0, :3, :3].T + cam.w2c[0, :3, 3])[..., 2]
    assert (z[seen] - 3.0).abs().max() < 1e-3  # aligned: scale ½
    far = ~seen
    far[0, -1] = False
    assert (z[far] - 1000.0).abs().max() < 0.5  # was 100: clamped as a source view's
    assert abs(float(z[0, -1]) - 5000.0) < 5  # NaN at 10⁴, aligned by the same ½


class Returns:
    """A caller's depth estimator whose ``estimate`` returns ``result`` (a depth map: an object with it as ``.depth``)."""

    def __init__(self, result):
        self.result = type("E", (), {"depth": result})() if isinstance(result, torch.Tensor) and result.ndim == 2 else result

    def estimate(self, image, size=None):
        return self.result


def test_a_generated_frame_lifts_the_surfaces_the_preview_put_back_at_their_own_depth():
    """A teal disc at depth 2 before an orange wall at 5, the camera sliding away from it over 3
    chunks. The depth-edge filter leaves out the disc's rim and the wall beside it; the preview
    puts them back (smooth surfaces), but without a depth estimator the frame added between chunks
    took their depth from the background fill: the disc's rim joined the cache on the wall, and
    later chunks showed a teal-flecked ghost where the disc had been (0, 6 and 102 wall pixels
    off the wall's colour in the 3 chunks)."""
    h, w, f, step = 48, 64, 54.0, 0.02
    k = make_intrinsics(f, f, (w - 1) / 2, (h - 1) / 2)
    yy, xx = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    wall = torch.stack(
        [0.8 + 0.1 * torch.sin(xx / 3), -0.1 + 0.1 * torch.cos(yy / 4), torch.full((h, w), -0.8)]
    )
    disc = (xx - 32) ** 2 + (yy - 24) ** 2 < 9.5**2
    image = torch.where(disc, torch.tensor([-0.8, 0.4, 0.4])[:, None, None], wall)
    cache = Cache3D()
    cache.add_view(image, torch.where(disc, 2.0, 5.0), k, torch.eye(4))
    eyes = torch.stack([torch.tensor([-step * i, 0.0, 0.0]) for i in range(25)])
    cams = Cameras(look_at(eyes, eyes + torch.tensor([0.0, 0.0, 1.0])), k, h, w)
    result = generate_video(cache, cams, PreviewGenerator(), first_frame=image, chunk_frames=9)
    assert result.chunks == [(0, 9), (8, 17), (16, 25)]
    # Where each frame sees the disc (its plane at z = 2), with 2 pixels to spare for its blended rim.
    centre = (torch.tensor([32.0, 24.0]) - torch.tensor([(w - 1) / 2, (h - 1) / 2])) * 2 / f
    radius = 2 * 11.5 / f
    x = eyes[:, 0, None, None] + 2 * (xx - (w - 1) / 2) / f
    y = 2 * (yy - (h - 1) / 2) / f
    on_disc = (x - centre[0]) ** 2 + (y - centre[1]) ** 2 < radius**2
    off_wall = (result.frames[:, 0] < 0.55) & ~on_disc  # the wall's red is 0.7 to 0.9, the disc's −0.8
    assert int(off_wall[:9].sum()) == 0  # the first chunk is clean: what follows is the cache update's
    assert int(off_wall.sum()) == 0
    added = result.plan.cache.views[0]  # frame 16, added before the last chunk
    z = (added.points[0] @ cams.w2c[16, :3, :3].T + cams.w2c[16, :3, 3])[..., 2]
    shown = added.valid[0] | (added.filtered[0] & smooth_surface_pixels(z))  # what later renders show of it
    teal = (added.colors[0, ..., 0] < 0.55) & shown
    assert int(teal.sum()) > 50 and (z[teal] - 2.0).abs().max() < 0.2  # the disc's pixels at its depth


def add_frame_estimated_by(result):
    """A plane's cache grows by the frame of the next camera, its depth estimated as ``result``."""
    image, depth = plane_view(depth=3.0)
    cache = Cache3D()
    cache.add_view(image, depth, K, torch.eye(4))
    cam = slide(2, step=0.05)[1]
    try:
        return GrowingCache(cache, depth_estimator=Returns(result), align_steps=2).add_generated_frame(cache.render(cam).colors[0, 0], cam)
    finally:
        assert len(cache) == 1  # nothing added


def test_an_estimate_without_depth_where_the_cache_has_depth_is_one_line_naming_the_estimator():
    """A depth estimator of the caller's that returns no usable depth (NaN, 0) where the cache
    shows the scene, or a map of another size, is refused in one line naming it; gen3c's own
    estimators put a far fill (1000, GEN3C's MoGe) where they have none. Before: a raw
    ValueError from align_depth_to_reference, or a RuntimeError of mismatched sizes."""
    for bad, match in [
        (torch.full((H, W), float("nan")), r"the depth estimator Returns gave 0 pixels of finite depth > 0 where the cache shows the scene"),
        (torch.zeros(H, W), "gave 0 pixels of finite depth > 0"),
        (torch.full((H // 2, W), 3.0), rf"the depth estimator Returns gave depth of shape \({H // 2}, {W}\) for a {H}×{W} frame"),
    ]:
        with pytest.raises(Gen3cInputError, match=match):
            add_frame_estimated_by(bad)
    _, depth = plane_view(depth=3.0)
    with pytest.raises(Gen3cInputError, match="align_depth_to_reference: the estimated and reference depth are both known"):
        align_depth_to_reference(torch.zeros(H, W), depth, torch.ones(H, W, dtype=torch.bool))


def test_an_estimator_returning_no_depth_tensor_is_one_line_naming_it():
    """An estimator whose result has no ``.depth``, or a ``.depth`` that is not a tensor, is
    refused in one line naming it and what to return. Before: a raw AttributeError."""
    for bad, match in [
        (torch.full((1, H, W), 3.0), rf"the depth estimator Returns.estimate returned a torch tensor of shape \(1, {H}, {W}\) without .depth: return an object whose .depth is an \(H, W\) torch tensor"),
        (type("E", (), {"depth": [[3.0] * W] * H})(), rf"the depth estimator Returns.estimate returned a .depth that is a list of {H} items: return an object whose .depth"),
    ]:
        with pytest.raises(Gen3cInputError, match=match):
            add_frame_estimated_by(bad)


def test_a_frame_the_cache_cannot_see_is_not_added_said_and_its_bar_ends_full():
    """A chunk whose first camera sees none of the cache (turned away) leaves the cache as it was;
    the run says so, and the stage's bar ends at its total instead of staying at 0."""
    from gen3c.errors import collect_notes

    image, depth = plane_view(depth=3.0)
    cache = Cache3D()
    cache.add_view(image, depth, K, torch.eye(4))
    away = Cameras(look_at(torch.zeros(1, 3), torch.tensor([[0.0, 0.0, -1.0]])), K, H, W)
    bars = {}

    def progress(stage, total):
        bars[stage] = [total, 0]
        return lambda n=1: bars[stage].__setitem__(1, bars[stage][1] + n)

    with collect_notes() as notes:
        GrowingCache(cache, align_steps=7).cache_for_chunk(1, 8, away, image, progress, "Chunk 2/2: ")
    assert len(cache) == 1
    assert bars == {"Chunk 2/2: adding frame 8 to the cache": [7, 7]}
    assert notes[-1:] == [
        "Chunk 2/2: frame 8 was not added to the 3D cache: the cache shows nothing at its camera, so there is no depth to align "
        "it to; this chunk renders the cache as it was"
    ]


# --------------------------------------------------------------------------------------------
# Multi-view buffer selection (GEN3C's cache_3d.py)
# --------------------------------------------------------------------------------------------


def test_selecting_cache_picks_the_views_that_see_the_target():
    cache = SelectingCache3D(select=2, filter_points_threshold=0)
    eyes = [-1.0, 0.0, 1.0, 2.5]
    for i, x in enumerate(eyes):
        image, depth = plane_view(depth=2.0, seed=i)
        cache.add_view(image, depth, K, look_at(torch.tensor([x, 0.0, 0.0]), torch.tensor([x, 0.0, 1.0])))
    targets = slide(4, step=0.1, start=0.9)  # around x = 1 … 1.2
    renders = cache.render(targets)
    assert renders.num_buffers == 2 and renders.views[0] == 2  # the view at x = 1 sees most
    assert set(renders.views) == {2, 1} or set(renders.views) == {2, 3}
    scores = cache.overlap_scores(targets)
    assert renders.views == tuple(int(i) for i in torch.argsort(scores, descending=True)[:2])


def test_near_full_buffer_conditions_alone():
    T, NB = 2, 2
    masks = torch.zeros(T, NB, 1, 4, 4)
    masks[0, 0] = 1  # frame 0: buffer 0 full, buffer 1 partial → buffer 1 blanked
    masks[0, 1, :, :2] = 1
    masks[1, 0, :, :1] = 1  # frame 1: nothing near full → both kept
    masks[1, 1, :, :2] = 1
    r = BufferRenders(torch.zeros(T, NB, 3, 4, 4), masks.clone(), torch.ones(T, NB, 1, 4, 4))
    keep_only_first_full(r, 0.9)
    assert r.masks[0, 1].sum() == 0 and r.colors[0, 1].min() == -1 and r.masks[0, 0].sum() == 16
    assert torch.equal(r.masks[1], masks[1])
    assert math.isclose(float(r.depths[0, 1].sum()), 0.0)


def test_gen3c_generator_runs_chunked_through_the_same_pipeline(box_scene, tmp_path):
    """The diffusion generator (a tiny random-weight model with 17-frame chunks) makes a 2-chunk
    video through run_request exactly as the preview does."""
    from tiny_model import tiny_pipeline

    from gen3c.io.video import read_video
    from gen3c.pipelines.request import GenerationRequest, run_request

    tiny_pipeline(seed=0).save_pretrained(tmp_path / "tiny")
    image, depth, _, _ = box_scene
    stages = []
    request = GenerationRequest(
        input_image_path=str(image), depth_path=str(depth), fov=60.0, resolution="32x48", num_video_frames=33,
        generator="gen3c", video_save_folder=str(tmp_path / "out"), save_buffer=True,
        generator_options={"checkpoint_dir": str(tmp_path / "tiny"), "chunk_frames": 17, "num_steps": 2, "device": "cpu", "dtype": "float32"},
    )  # fmt: skip
    out = run_request(request, progress=lambda stage, total: stages.append(stage) or (lambda n=1: None))
    assert out.result.chunks == [(0, 17), (16, 33)] and out.result.frames is None  # streamed
    assert "Chunk 2/2: adding frame 16 to the cache" in stages and "Chunk 2/2: generating (gen3c)" in stages
    frames, _ = read_video(out.paths["video"])
    assert frames.shape == (33, 32, 48 * 3, 3)  # 2 buffers in chunk 2, padded in chunk 1
    request.num_video_frames = 30
    with pytest.raises(Gen3cInputError, match=r"16·N\+1 frames \(17, 33, 49, …\)"):
        run_request(request)


def test_a_long_run_names_the_frames_of_each_chunk_that_see_none_of_the_cache_by_their_place_in_the_video():
    """Frames 12…24 of a 25-frame run in chunks of 9 stand 1e6 units aside: they were made from
    nothing without a word (the render's own note, on chunk 3 alone, sent the user after the pose
    convention of cameras whose first chunks saw the scene). Now chunks 2 and 3 name their frames,
    as the video counts them (chunk 3's first frame, chunk 2's last, once), and nothing else says it."""
    from gen3c.errors import collect_notes, record_notes

    image, depth = plane_view()
    cache = Cache3D()
    cache.add_view(image, depth, K, torch.eye(4))
    eyes = torch.stack([torch.tensor([0.02 * i + (1e6 if i >= 12 else 0.0), 0.0, 0.0]) for i in range(25)])
    cams = Cameras(look_at(eyes, eyes + torch.tensor([0.0, 0.0, 1.0])), K, H, W)
    with collect_notes() as notes, record_notes():
        generate_video(cache, cams, Recorder(9), first_frame=image)
    fix = ("the model fills them from nothing; check the camera path's scale (--movement_distance; a camera file's translations are "
           "in the depth's units, metres for metric depth) and that it faces the scene")  # fmt: skip
    assert [n for n in notes if "cache" in n and "not added" not in n] == [
        f"frames 12…16 of 25 see none of the 3D cache (under 0.1% of their pixels): {fix}",
        f"frames 17…24 of 25 see none of the 3D cache (under 0.1% of their pixels): {fix}",
    ]
    with collect_notes() as notes, record_notes():  # a path that sees the scene throughout: not a word
        generate_video(cache, slide(25), Recorder(9), first_frame=image)
    assert notes == []


def test_unseen_frames_are_those_under_a_thousandth_of_their_pixels_in_every_buffer():
    from gen3c.errors import collect_notes
    from gen3c.pipelines.camera_video import note_unseen_frames

    masks = torch.zeros(8, 2, 1, 40, 50)  # 2000 pixels: 2 seen are a thousandth
    masks[0] = 1
    masks[1, 0, 0, 0, :2] = 1  # a thousandth in one buffer: seen
    masks[2, :, 0, 0, :1] = 1  # half of one in each: not
    masks[5, 1, 0, :10] = 1
    with collect_notes() as notes:
        note_unseen_frames(masks, 40, 121)
        note_unseen_frames(masks[:1], 0, 1)  # every frame seen: nothing
        note_unseen_frames(masks[3:5], 0, 121)  # nothing seen at all: the render said so (Cache3D.render_views)
        note_unseen_frames(masks[2:4], 60, 121, skip_first=True)  # a later chunk's first frame is the last chunk's
    assert [n.split(" (under")[0] for n in notes] == ["frames 42…44, 46…47 of 121 see none of the 3D cache", "frame 61 of 121 sees none of the 3D cache"]
    assert "pixels): the model fills it from nothing" in notes[1]


def test_a_camera_file_the_generator_cannot_follow_is_named_first_not_a_frame_count_it_refuses_next(tmp_path):
    """A 20-camera file with --num_video_frames 17 for the tiny gen3c model (chunks of 17) was
    told "pass --num_video_frames 20 or a file with 17 cameras"; 20 frames are then refused in
    turn ("pass a camera file of 16·N+1 cameras"). Now the file's count is refused at once."""
    from gen3c.io.camera_files import save_cameras
    from gen3c.pipelines.request import GenerationRequest, check_frame_count

    def request(cameras, frames):
        w2c = torch.eye(4).repeat(cameras, 1, 1)
        w2c[:, 0, 3] = torch.linspace(0, 0.1, cameras)
        path = tmp_path / f"cams{cameras}.json"
        save_cameras(path, Cameras(w2c, make_intrinsics(50.0, 50.0, 56.0, 32.0), 64, 112))
        return GenerationRequest(input_image_path="x.png", generator="gen3c", generator_options={"model": "tiny"}, camera_file=str(path), num_video_frames=frames)

    with pytest.raises(Gen3cInputError, match=r"^camera file '.*cams20\.json' has 20 cameras, a count the gen3c generator cannot make .*\(17, 33, 49, …\)$"):
        check_frame_count(request(20, 17))
    # a file the generator can follow, with another count asked for: that count is what to change
    with pytest.raises(Gen3cInputError, match=r"^camera file '.*cams33\.json' has 33 cameras but 17 frames were asked for: pass --num_video_frames 33 "):
        check_frame_count(request(33, 17))
    check_frame_count(request(33, 33))
    with pytest.raises(Gen3cInputError, match=r"has 20 cameras, a count the gen3c generator cannot make"):
        check_frame_count(request(20, 20))
    # a file it can follow, with a count it cannot make asked for: no file of that count is offered (it would be refused)
    with pytest.raises(Gen3cInputError, match=r"^camera file '.*cams33\.json' has 33 cameras but 20 frames were asked for: pass --num_video_frames 33$"):
        check_frame_count(request(33, 20))
