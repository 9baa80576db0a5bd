"""Running out of accelerator memory outside the model's own stages (rendering the 3D cache, a depth
estimate, handing frames over) is one line naming the stage and what to try, on every surface;
stand-ins raise torch.OutOfMemoryError (no GPU here)."""

from __future__ import annotations

import dataclasses
import re

import pytest
import torch
from typer.testing import CliRunner

from gen3c.cache import Cache3D
from gen3c.cli import app
from gen3c.errors import Gen3cMemoryError
from gen3c.pipelines.request import GenerationRequest, run_request

PLAN_HINT = "try --low_memory (the leanest mode, ~8 GB for GEN3C-7B) or --max_gpu_memory GB to pick a mode that fits"


@pytest.fixture(autouse=True)
def cpu_host(monkeypatch):
    """These messages as a host without a GPU words them: on a GPU host they also say how much of
    its memory is in use ("(10.9 of 79.2 GB in use)"), and the model would load onto the GPU."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def no_memory(*args, **kwargs):
    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


def test_rendering_the_cache_out_of_memory_is_one_line_on_the_command_line(box_scene, tmp_path, monkeypatch):
    """Cache3D.render(..., device=the GPU) running out of memory in run_request reached the user as
    torch's traceback (exit 1): it is the model's kind of line, naming the stage and the memory
    plan's flags, exit 2, and no output folder left behind."""
    monkeypatch.setattr(Cache3D, "render", no_memory)
    image, depth, _, _ = box_scene
    out = tmp_path / "out"
    res = CliRunner().invoke(app, [
        "generate", "--input_image_path", str(image), "--depth_path", str(depth), "--fov", "60", "--resolution", "32x48",
        "--video_save_folder", str(out), "--generator", "gen3c", "--model", "tiny", "--num_steps", "1",
        "--num_video_frames", "17", "--chunk_frames", "17",
    ])  # fmt: skip
    assert res.exit_code == 2, res.output
    said = res.output.strip().splitlines()[-1]
    assert said == f"error: the GPU ran out of memory while rendering 3D cache: {PLAN_HINT}", res.output
    assert "Traceback" not in res.output and not out.exists()


def test_a_chunk_s_stage_is_named_with_its_chunk(box_scene, tmp_path, monkeypatch):
    """A long run names the chunk whose stage ran out of memory; without progress (a batch job) the
    stage is the render-or-generate step, the generator's own words (the preview: no plan)."""
    calls = []
    real = Cache3D.render

    def third_fails(self, *args, **kwargs):
        calls.append(1)  # chunk 1, chunk 2 adding frame 4 to its cache, chunk 2
        return no_memory() if len(calls) == 3 else real(self, *args, **kwargs)

    monkeypatch.setattr(Cache3D, "render", third_fails)
    image, depth, _, _ = box_scene
    request = GenerationRequest(input_image_path=str(image), depth_path=str(depth), fov=60.0, resolution="32x48", num_video_frames=9,
                                chunk_frames=5, video_save_folder=str(tmp_path / "a"))  # fmt: skip
    with pytest.raises(Gen3cMemoryError, match=r"^the GPU ran out of memory while rendering 3D cache for chunk 2/2: close other programs on the GPU, or pass a smaller --resolution; "
                       r"1 of 2 chunks is kept in '.*output\.partial': run the same command with --resume to continue$"):  # fmt: skip
        run_request(request, progress=lambda stage, total: lambda n=1: None)
    assert (tmp_path / "a" / "output.partial").is_dir()  # chunk 1 is kept for --resume
    calls.clear()
    with pytest.raises(Gen3cMemoryError, match=r"^the GPU ran out of memory while rendering 3D cache or generating: "):
        run_request(dataclasses.replace(request, video_save_folder=str(tmp_path / "c")))


def test_a_depth_estimate_out_of_memory_names_the_estimator(box_scene, tmp_path, monkeypatch):
    """The depth estimator on the GPU (before the model loads; in the GUI, beside it) ran out of
    memory with torch's traceback: it names the estimate and the depth file that avoids it."""
    from gen3c.depth.prior import GeometricPriorEstimator

    monkeypatch.setattr(GeometricPriorEstimator, "estimate", no_memory)
    image, _, _, _ = box_scene
    request = GenerationRequest(input_image_path=str(image), depth_estimator="prior", resolution="32x48", num_video_frames=5,
                                video_save_folder=str(tmp_path / "b"))  # fmt: skip
    with pytest.raises(Gen3cMemoryError, match=re.escape(
        "the GPU ran out of memory while estimating depth with prior: close other programs on the GPU, or pass a depth map as "
        "--depth_path (`gen3c depth` makes one) or --depth_estimator prior (no weights)"
    ) + "$"):  # fmt: skip
        run_request(request)
    # a depth file without --fov / --intrinsics: the estimator gives its camera
    request = dataclasses.replace(request, depth_path=str(box_scene[1]))
    with pytest.raises(Gen3cMemoryError, match=r"^the GPU ran out of memory while estimating the camera with prior: close other programs "
                                               r"on the GPU, or pass --fov DEGREES or --intrinsics fx,fy,cx,cy$"):  # fmt: skip
        run_request(request)


def test_the_gen3c_generator_s_own_render_and_frames_are_its_stages(box_scene, monkeypatch):
    """Gen3cGenerator.generate rendering the cache itself (no buffers given), and the decoded video's
    float32 copy on the GPU, ran out of memory outside the stages the pipeline words: now each is one,
    in load_generator's words for its caller."""
    from gen3c.cameras import Cameras
    from gen3c.pipelines import gen3c as gen3c_pipeline
    from gen3c.pipelines.loading import load_generator

    generator = load_generator("tiny", device="cpu", dtype="float32", num_steps=1, guidance=0, chunk_frames=17)
    K = torch.tensor([[40.0, 0, 24], [0, 40, 16], [0, 0, 1]])
    cache = Cache3D()
    cache.add_view(torch.zeros(3, 32, 48), torch.full((32, 48), 3.0), K, torch.eye(4))
    cameras = Cameras(torch.eye(4).expand(17, 4, 4), K.expand(17, 3, 3), 32, 48)
    said = "try low_memory=True (the leanest mode, ~8 GB for GEN3C-7B)"
    with monkeypatch.context() as m:
        m.setattr(Cache3D, "render", no_memory)
        with pytest.raises(Gen3cMemoryError, match=r"^the GPU ran out of memory while rendering 3D cache: " + re.escape(said)):
            generator.generate(cache, cameras, torch.zeros(3, 32, 48))

    class Decoded:  # the tokenizer's video, whose float32 copy does not fit
        def __getitem__(self, index):
            return self

        def permute(self, *dims):
            return self

        float = no_memory

    monkeypatch.setattr(gen3c_pipeline, "decode_latents", lambda *a, **k: Decoded())
    with pytest.raises(Gen3cMemoryError, match=r"^the GPU ran out of memory while decoding with the tokenizer: " + re.escape(said)):
        generator.generate(cache, cameras, torch.zeros(3, 32, 48))


def test_the_gui_job_says_it_in_page_words(tmp_path, room_sample, monkeypatch):
    """A GUI run whose render ran out of memory was "internal error: OutOfMemoryError: …"; it is
    the line of a run out of memory, marked so (the page offers the flags' fix)."""
    from gen3c.gui.state import GuiState, JobRunner

    state = GuiState(tmp_path / "work", GenerationRequest(resolution="96x160", num_video_frames=5))
    state.load_sample(*room_sample)
    monkeypatch.setattr(Cache3D, "render", no_memory)
    runner, results = JobRunner(), []
    runner.start(state.build_request("oom"), state.source, lambda *a: None, results.append)
    assert runner.wait(60)
    assert results[0].out_of_memory and results[0].error.startswith("the GPU ran out of memory while rendering 3D cache: "), results[0].error


@pytest.mark.parametrize(
    "options, said",
    [({}, PLAN_HINT), ({"low_memory": True}, "this is already the leanest mode: close other programs on the GPU or use one with more memory"),
     # it named the budget's own flag, and --low_memory, which beside it is refused ("each choose the memory mode")
     ({"max_gpu_memory": 20}, "--max_gpu_memory 20 chose a mode this GPU could not hold: try a smaller budget, "
                              "or --low_memory (the leanest mode, ~8 GB for GEN3C-7B) in its place")],
)  # fmt: skip
def test_loading_the_model_out_of_memory_names_the_plan_its_options_ask_for(box_scene, tmp_path, monkeypatch, options, said):
    """Running out of memory while the gen3c model loads, outside its move to the GPU (which says so
    itself), names the plan of the run's memory flags: --low_memory, or that it already is the leanest."""
    from gen3c.pipelines import loading

    monkeypatch.setattr(loading, "generator_from_options", no_memory)
    image, depth, _, _ = box_scene
    request = GenerationRequest(input_image_path=str(image), depth_path=str(depth), fov=60.0, resolution="32x48", num_video_frames=17,
                                generator="gen3c", video_save_folder=str(tmp_path), generator_options={"model": "tiny", **options})  # fmt: skip
    with pytest.raises(Gen3cMemoryError, match=r"^the GPU ran out of memory while loading the gen3c model: " + re.escape(said) + "$"):
        run_request(request)


def test_the_load_s_memory_hint_plans_from_every_memory_flag_of_the_run(box_scene, tmp_path, monkeypatch):
    """The hint for running out of memory while the model loads was built from --low_memory,
    --memory_mode and --fp8 only: GEN3C's offload flags the run passed were not in its plan. It is
    the plan load_generator configures for the same options (requested_memory_plan)."""
    from gen3c.models import memory
    from gen3c.pipelines import loading

    planned = []
    real = memory.out_of_memory_message
    monkeypatch.setattr(memory, "out_of_memory_message", lambda plan, *a, **k: planned.append(plan) or real(plan, *a, **k))
    monkeypatch.setattr(loading, "generator_from_options", no_memory)
    image, depth, _, _ = box_scene
    flags = {"offload_diffusion_transformer": True, "offload_text_encoder_model": True, "fp8": True}
    request = GenerationRequest(input_image_path=str(image), depth_path=str(depth), fov=60.0, resolution="32x48", num_video_frames=17,
                                generator="gen3c", video_save_folder=str(tmp_path), generator_options={"model": "tiny", **flags})  # fmt: skip
    with pytest.raises(Gen3cMemoryError, match=r"^the GPU ran out of memory while loading the gen3c model: " + re.escape(PLAN_HINT) + "$"):
        run_request(request)
    assert planned == [memory.MemoryPlan(offload=frozenset({"transformer", "text_encoder"}), fp8=True)]
    with pytest.warns(UserWarning, match="the model computes on the CPU"):
        generator = loading.load_generator("tiny", device="cpu", dtype="float32", **flags)
    assert generator.pipeline.memory == planned[0]  # what the load itself plans


def test_a_budget_s_plan_out_of_memory_names_the_budget(monkeypatch):
    """A plan --max_gpu_memory chose that ran out of memory was told to try --max_gpu_memory (given)
    or --low_memory (refused beside it); in load_generator's words for its caller."""
    from gen3c.cameras import Cameras
    from gen3c.pipelines.loading import load_generator

    with pytest.warns(UserWarning) as notes:  # the plan chosen, and that on the CPU nothing is offloaded
        generator = load_generator("tiny", device="cpu", dtype="float32", max_gpu_memory=40, num_steps=1, guidance=0, chunk_frames=17)
    said = [str(n.message) for n in notes if issubclass(n.category, UserWarning)]
    assert said[0].startswith("max_gpu_memory=40: memory mode 'resident'"), said
    K = torch.tensor([[40.0, 0, 24], [0, 40, 16], [0, 0, 1]])
    cache = Cache3D()
    cache.add_view(torch.zeros(3, 32, 48), torch.full((32, 48), 3.0), K, torch.eye(4))
    cameras = Cameras(torch.eye(4).expand(17, 4, 4), K.expand(17, 3, 3), 32, 48)
    monkeypatch.setattr(Cache3D, "render", no_memory)
    said = "max_gpu_memory=40 chose a mode this GPU could not hold: try a smaller budget, or low_memory=True (the leanest mode, ~8 GB for GEN3C-7B) in its place"
    with pytest.raises(Gen3cMemoryError, match=r"^the GPU ran out of memory while rendering 3D cache: " + re.escape(said) + "$"):
        generator.generate(cache, cameras, torch.zeros(3, 32, 48))


def test_the_gui_s_model_load_out_of_memory_is_the_page_s_memory_line(tmp_path, monkeypatch):
    """The page's own load of the generator (at start, for Generate) running out of GPU memory
    outside the model's move was "internal error: OutOfMemoryError: …"; it is the load's memory line
    with the gen3c gui flags to start again with."""
    pytest.importorskip("viser")
    import gen3c.gui.app as gui_app

    monkeypatch.setattr(gui_app, "make_generator", no_memory)
    app = gui_app.Gen3cApp(tmp_path / "work", port=0, request=GenerationRequest(resolution="48x80", num_video_frames=9), demo=None)
    try:
        app._loader.join(30)
        said = "the GPU ran out of memory while loading the preview model: close other programs on the GPU or use one with more memory"
        assert said in app.status.content, app.status.content
        assert "internal error" not in app.status.content
    finally:
        app.stop()


def test_the_stage_is_named_from_the_progress_stages_it_passes_on():
    """A chunk's label goes after its stage; another stage with a colon is kept whole; the stages
    still reach the caller's progress as they were."""
    from gen3c.pipelines.request import RunStage

    stage, seen = RunStage("reading the input"), []
    progress = stage.progress(lambda name, total: seen.append(name) or (lambda n=1: None))
    for name, said in (("Rendering 3D cache", "rendering 3D cache"), ("Chunk 2/3: generating (gen3c)", "generating (gen3c) for chunk 2/3"),
                       ("Resuming: re-encoding the finished chunks", "resuming: re-encoding the finished chunks")):  # fmt: skip
        progress(name, 3)
        assert stage.name == said
    assert seen == ["Rendering 3D cache", "Chunk 2/3: generating (gen3c)", "Resuming: re-encoding the finished chunks"]
    assert stage.progress(None) is None  # a generator's own bars stay
