"""Context parallelism (``--num_gpus``): the DiT's tokens split across ranks give the same video.

The two-rank runs are real ``torchrun`` launches with the gloo backend on the CPU.

Tolerances: the split changes only which rank computes which rows of each matmul and which heads
of each attention, in float32, so the DiT output must agree to 1e-5 of its scale (measured: 0),
and the written videos to within one 8-bit level on average (measured: identical).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from child_env import child_env
from typer.testing import CliRunner

from gen3c.cli import app
from gen3c.errors import Gen3cInputError
from gen3c.io.video import read_video
from gen3c.models import configs
from gen3c.models.context_parallel import check_token_split, cosmos_cp_plan
from gen3c.parallel import check_launch

runner = CliRunner()
TESTS = Path(__file__).resolve().parent


def torchrun(nproc: int, *args, timeout: float = 120) -> subprocess.CompletedProcess:
    """Launch ``args`` under torchrun with ``nproc`` CPU ranks (gloo), using this gen3c."""
    env = child_env(OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *map(str, args)]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


def tiny_transformer(**overrides):
    from diffusers import CosmosTransformer3DModel

    torch.manual_seed(0)
    model = CosmosTransformer3DModel(**{**configs.TRANSFORMER_TINY, **overrides}).eval()
    for name, p in model.named_parameters():
        if "norm" not in name:
            p.data.normal_(0.0, 0.05)
    return model


def dit_inputs(T: int = 2, h: int = 4, w: int = 6) -> dict:
    g = torch.Generator().manual_seed(1)
    return dict(
        hidden_states=torch.randn(1, 16, T, h, w, generator=g),
        timestep=torch.tensor([0.5]),
        encoder_hidden_states=torch.randn(1, 8, configs.TRANSFORMER_TINY["text_embed_dim"], generator=g),
        fps=24,
        condition_mask=torch.randn(1, configs.TRANSFORMER_TINY["in_channels"] - 16, T, h, w, generator=g),
        padding_mask=torch.zeros(1, 1, h * 8, w * 8),
        return_dict=False,
    )


# -- the plan and the processor, in one process ------------------------------------------------


def test_plan_cuts_every_per_token_tensor_at_the_same_boundaries():
    model = tiny_transformer()
    plan = cosmos_cp_plan(model)
    assert set(plan) == {"patch_embed", "rope", "learnable_pos_embed", "proj_out"}
    assert "learnable_pos_embed" not in cosmos_cp_plan(tiny_transformer(extra_pos_embed_type=None))
    # What the hooks do on rank r of 2, by hand: the patch tokens are cut along T', the RoPE
    # and positional embedding along the flattened sequence; rank r's pieces must be the same tokens.
    x = torch.cat([dit_inputs(T=4)["hidden_states"], dit_inputs(T=4)["condition_mask"], torch.zeros(1, 1, 4, 4, 6)], 1)
    tokens = model.patch_embed(x)  # (1, 4, 2, 3, C)
    cos, _ = model.rope(x, fps=24)  # (24, head_dim)
    pos = model.learnable_pos_embed(x)  # (1, 24, C)
    spec = plan["patch_embed"][0]
    for r in range(2):
        mine = tokens.chunk(2, dim=spec.split_dim)[r].flatten(1, 3)
        assert torch.equal(mine, tokens.flatten(1, 3)[:, 12 * r : 12 * (r + 1)])
        assert torch.equal(cos.chunk(2, dim=plan["rope"][0].split_dim)[r], cos[12 * r : 12 * (r + 1)])
        assert torch.equal(pos.chunk(2, dim=plan["learnable_pos_embed"][0].split_dim)[r], pos[:, 12 * r : 12 * (r + 1)])
    assert plan["proj_out"].gather_dim == 1


def test_token_split_errors_name_the_counts_that_work():
    check_token_split(32, 8, 16)  # GEN3C: 32 heads, 16 latent frames, 8 GPUs
    with pytest.raises(Gen3cInputError, match=r"32 attention heads do not split across 3 GPUs; use one of \[1, 2, 4, 8, 16, 32\]"):
        check_token_split(32, 3)
    with pytest.raises(Gen3cInputError, match=r"32 attention heads do not split across 3 GPUs; use one of \[1, 2, 4, 8, 16\]"):
        check_token_split(32, 3, 16)  # 32 heads would split 32 ways, GEN3C's 16 latent frames not
    with pytest.raises(Gen3cInputError, match=r"3 latent frames does not split evenly across 2 GPUs; use --num_gpus in \[1\]"):
        check_token_split(2, 2, 3)  # 3 would split the frames but not the 2 heads
    with pytest.raises(Gen3cInputError, match=r"6 latent frames does not split evenly across 4 GPUs; use --num_gpus in \[1, 2\]"):
        check_token_split(4, 4, 6)


# -- launch checks --------------------------------------------------------------------------------


def test_launch_checks(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    check_launch(1)
    with pytest.raises(Gen3cInputError, match=r"launch with `torchrun --nproc_per_node=2 -m gen3c generate … --num_gpus 2`"):
        check_launch(2)
    with pytest.raises(Gen3cInputError, match="at least 1"):
        check_launch(0)
    check_launch(np.int64(1))  # gen3c's one rule for whole numbers (errors.is_whole_number); before: refused
    for bad in (True, 1.0):
        refusal = f"^--num_gpus must be a whole number of at least 1, got {bad!r}$"
        with pytest.raises(Gen3cInputError, match=refusal):
            check_launch(bad)
    monkeypatch.setenv("WORLD_SIZE", "4")
    check_launch(4)
    with pytest.raises(Gen3cInputError, match="torchrun started 4 processes but --num_gpus is 2: pass --num_gpus 4"):
        check_launch(2)


TORCHRUN_ENV = {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29511"}


def refuse_joining(monkeypatch, gpus: int | None = None) -> None:
    """torchrun's variables set (TORCHRUN_ENV) and joining the process group made a failure (it
    would wait for the other rank: minutes); with ``gpus``, a host of that many CUDA GPUs."""
    import torch.distributed as dist

    def joined(*args, **kwargs):
        raise AssertionError("joined the process group before refusing the launch")

    monkeypatch.setattr(dist, "init_process_group", joined)
    if gpus is not None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
        monkeypatch.setattr(torch.cuda, "set_device", lambda device: None)
    for key, value in TORCHRUN_ENV.items():
        monkeypatch.setenv(key, value)


@pytest.mark.parametrize(
    "changed, message",
    [
        ({"WORLD_SIZE": "0"}, "the environment's WORLD_SIZE='0' is not a whole number of at least 1: launch with torchrun, which sets it, or unset it"),
        ({"WORLD_SIZE": "two"}, "the environment's WORLD_SIZE='two' is not a whole number of at least 1"),
        ({"LOCAL_RANK": "x"}, "the environment's LOCAL_RANK='x' is not a whole number of at least 0"),
        ({"LOCAL_RANK": "2"}, "the environment's LOCAL_RANK=2 is not below its LOCAL_WORLD_SIZE=2: launch with torchrun"),
        ({"RANK": "-1"}, "the environment's RANK='-1' is not a whole number of at least 0"),
        ({"RANK": "2"}, "the environment's RANK=2 is not below its WORLD_SIZE=2: launch with `torchrun --nproc_per_node=2"),
        ({"RANK": None, "MASTER_ADDR": None}, "joining torchrun's process group needs RANK, MASTER_ADDR in the environment, which are not set: "
         "launch with `torchrun --nproc_per_node=2 -m gen3c generate … --num_gpus 2`, which sets them"),
        ({"MASTER_PORT": None}, "joining torchrun's process group needs MASTER_PORT in the environment, which is not set"),
        ({"MASTER_PORT": "http"}, "the environment's MASTER_PORT='http' is not a port number (1 to 65535): launch with torchrun"),
    ],
)
def test_torchrun_variables_missing_or_malformed_are_one_line_naming_them(monkeypatch, changed, message):
    """Each was a ValueError's traceback: int() of LOCAL_RANK / RANK, or torch's env:// rendezvous
    ("environment variable MASTER_ADDR expected, but not set"); WORLD_SIZE=0 said "pass --num_gpus 0"."""
    from gen3c.parallel import init_parallel

    refuse_joining(monkeypatch)
    for key, value in changed.items():
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value)
    with pytest.raises(Gen3cInputError) as raised:
        init_parallel(2, "cpu")
    assert message in str(raised.value)


def test_a_launch_without_local_rank_on_gpus_is_refused_not_every_rank_on_cuda_0(monkeypatch):
    """A hand-made launch (RANK, WORLD_SIZE, MASTER_* set; LOCAL_RANK not) on a host of 2 GPUs:
    every rank took cuda:0 and NCCL failed in each rank's traceback ("Duplicate GPU detected")."""
    from gen3c.parallel import init_parallel

    refuse_joining(monkeypatch, gpus=2)
    for key in ("LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(key)
    with pytest.raises(Gen3cInputError, match=r"^each rank takes the GPU cuda:LOCAL_RANK, but the environment has no LOCAL_RANK: "
                       r"launch with `torchrun --nproc_per_node=2 -m gen3c generate … --num_gpus 2`, which sets it$"):  # fmt: skip
        init_parallel(2)


def test_a_rank_variable_outside_a_launch_does_not_silence_a_plain_run(monkeypatch):
    """A RANK left in the environment by another tool, without torchrun's WORLD_SIZE: the run is
    a plain one and writes its outputs (it wrote nothing, silently); under torchrun RANK decides."""
    from gen3c.parallel import is_main_process

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setenv("RANK", "3")
    assert is_main_process()
    monkeypatch.setenv("RANK", "x")
    assert is_main_process()
    monkeypatch.setenv("WORLD_SIZE", "4")
    with pytest.raises(Gen3cInputError, match="the environment's RANK='x' is not a whole number"):
        is_main_process()
    monkeypatch.setenv("RANK", "3")
    assert not is_main_process()
    monkeypatch.setenv("RANK", "0")
    assert is_main_process()


def cli_args(box_scene, out, *extra):
    image, depth, _, _ = box_scene
    return ["generate", "--input_image_path", str(image), "--depth_path", str(depth), "--fov", "60", "--resolution", "32x48",
            "--video_save_folder", str(out), *map(str, extra)]  # fmt: skip


@pytest.mark.parametrize(
    "world, extra, message",
    [
        (None, ("--generator", "gen3c", "--checkpoint_dir", "x", "--num_gpus", 2), "launch with `torchrun --nproc_per_node=2"),
        ("2", ("--generator", "gen3c", "--checkpoint_dir", "x", "--num_gpus", 3), "torchrun started 2 processes but --num_gpus is 3"),
        # (the preview generator: "pass --num_gpus 2" alone led to "--num_gpus applies to --generator gen3c only")
        ("2", (), "torchrun started 2 processes but --num_gpus is 1: pass --num_gpus 2 with --generator gen3c, or run without torchrun"),
        (None, ("--num_gpus", 2), "--num_gpus applies to --generator gen3c only"),
        ("2", ("--generator", "gen3c", "--checkpoint_dir", "x", "--num_gpus", 2, "--attention_backend", "flash4"),
         "--attention_backend flash4 cannot split the tokens across GPUs (--num_gpus 2): pass --attention_backend auto"),
    ],
)
def test_cli_refuses_a_num_gpus_that_disagrees_with_the_launch(box_scene, tmp_path, monkeypatch, world, extra, message):
    if world is None:
        monkeypatch.delenv("WORLD_SIZE", raising=False)
    else:
        monkeypatch.setenv("WORLD_SIZE", world)
    res = runner.invoke(app, cli_args(box_scene, tmp_path, *extra))
    assert res.exit_code == 2, res.output
    assert message in " ".join(res.output.split())
    assert not list(tmp_path.iterdir())



@pytest.mark.parametrize(
    "args, work",
    [
        (["demo"], "gen3c demo was launched as one of 2 processes (WORLD_SIZE=2 in the environment, as torchrun sets it), each of which would make the same video into the same files"),
        (["depth", "photo.png"], "gen3c depth was launched as one of 2 processes (WORLD_SIZE=2 in the environment, as torchrun sets it), each of which would estimate the same depth into the same files"),
        (["eval", "--no_plots"], "gen3c eval was launched as one of 2 processes (WORLD_SIZE=2 in the environment, as torchrun sets it), each of which would run the whole benchmark into the same --output_folder"),
        (["gui"], "gen3c gui was launched as one of 2 processes (WORLD_SIZE=2 in the environment, as torchrun sets it), each of which would serve a GUI of its own"),
        (["convert", "gen3c-src", "gen3c-out"], "gen3c convert was launched as one of 2 processes (WORLD_SIZE=2 in the environment, as torchrun sets it), each of which would convert the same weights into the same folder"),
        (["download", "--dry_run"], "gen3c download was launched as one of 2 processes (WORLD_SIZE=2 in the environment, as torchrun sets it), each of which would fetch and convert the same weights"),
    ],
)
def test_a_command_of_one_process_refuses_a_torchrun_launch(tmp_path, monkeypatch, args, work):
    """`torchrun --nproc_per_node=2 -m gen3c eval` ran the benchmark twice into one folder, and a
    rank stopped with "--output_folder … is being written by another `gen3c eval` … still going"
    (its sibling), the report written or not by chance; `gen3c demo` was told to "pass --num_gpus 2
    with --generator gen3c", flags it does not have; `gen3c gui` served two GUIs. Each is one line
    before any work (every rank says it; torchrun keeps rank 0's)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("RANK", raising=False)
    res = runner.invoke(app, args)
    assert res.exit_code == 2, res.output
    # (WORLD_SIZE is also what Kubeflow's PyTorchJob or accelerate set, a shell opened in one of
    # their processes included: "launch it without torchrun" alone was no fix there)
    # (the unset is one each shell of Linux, macOS and Windows runs: `env -u` is no Windows command)
    fix = ("launch it without torchrun, or, where something else left WORLD_SIZE set, remove it from the environment first "
           "(`unset WORLD_SIZE`; PowerShell: `Remove-Item Env:WORLD_SIZE`; cmd: `set WORLD_SIZE=`)")  # fmt: skip
    assert " ".join(res.output.split()) == f"error: {work}: {fix}"
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("args", [["demo"], ["depth", "photo.png"], ["eval", "--no_plots"], ["gui"], ["download", "--dry_run"]], ids=lambda a: a[0])
def test_a_command_of_one_process_refuses_srun_tasks(tmp_path, monkeypatch, args):
    """`srun -n 2 gen3c demo` (no torchrun: SLURM sets SLURM_STEP_NUM_TASKS, no WORLD_SIZE) started
    two processes each making the whole video into the same files. Each is one line before any
    work, naming the one-task launch; a batch script's own SLURM_NTASKS (gen3c run once there) is no
    such launch."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setenv("SLURM_STEP_NUM_TASKS", "2")
    res = runner.invoke(app, args)
    assert res.exit_code == 2, res.output
    line = " ".join(res.output.split())
    assert line.startswith(f"error: gen3c {args[0]} was started by srun as one of 2 tasks (SLURM_STEP_NUM_TASKS=2), each of which would "), line
    assert line.endswith(
        f": start it as one task (`srun --ntasks=1 gen3c {args[0]} …`); where each task runs its own job into its own outputs "
        f"(srun --multi-prog, $SLURM_PROCID in the paths), start each without the variable (`env -u SLURM_STEP_NUM_TASKS gen3c {args[0]} …`)"
    ), line
    assert not list(tmp_path.iterdir())


def test_generate_and_train_under_srun_tasks_name_torchrun_per_node(box_scene, tmp_path, monkeypatch):
    """`srun -n 2 gen3c generate …`: two independent runs raced on the same outputs. Refused in one
    line naming `srun --ntasks-per-node=1 torchrun …` (torchrun makes the process group srun does
    not), and how tasks meant as separate jobs (`srun --multi-prog`) say so, which then run (the
    refusal had no way out for them); torchrun started by srun (WORLD_SIZE set) and a batch
    script's SLURM_NTASKS go on."""
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setenv("SLURM_STEP_NUM_TASKS", "2")
    res = runner.invoke(app, cli_args(box_scene, tmp_path / "a"))
    assert res.exit_code == 2, res.output
    assert " ".join(res.output.split()) == (
        "error: gen3c generate was started by srun as one of 2 tasks (SLURM_STEP_NUM_TASKS=2), each of which would make the whole video "
        "into the same outputs: start it as one task (`srun --ntasks=1 gen3c generate …`), or, to split --generator gen3c across GPUs, "
        "start one task per node and torchrun in it, which starts a process per GPU (`srun --ntasks-per-node=1 torchrun "
        "--nproc_per_node=2 -m gen3c generate … --num_gpus 2`); where each task runs its own job into its own outputs (srun "
        "--multi-prog, $SLURM_PROCID in the paths), start each without the variable (`env -u SLURM_STEP_NUM_TASKS gen3c generate …`)"
    )
    assert not (tmp_path / "a").exists()
    with pytest.raises(Gen3cInputError, match=r": start one task per node .*`srun --ntasks-per-node=1 torchrun --nproc_per_node=4 -m gen3c generate … --num_gpus 4`\), or one task"):
        check_launch(4)  # (--num_gpus 4 asked for: the model split, as gen3c generate checks it after the model's own split check)
    from gen3c.training.config import Config
    from gen3c.training.loop import check_devices

    with pytest.raises(Gen3cInputError, match=r"^gen3c train was started by srun as one of 2 tasks .*`srun --ntasks-per-node=1 torchrun --nproc_per_node=2 -m gen3c train CONFIG`"):
        check_devices(Config())
    monkeypatch.setenv("SLURM_STEP_NUM_TASKS", "1")  # srun -n 1, or sbatch --ntasks=2 running gen3c in its script
    monkeypatch.setenv("SLURM_NTASKS", "2")
    assert runner.invoke(app, [*cli_args(box_scene, tmp_path / "b"), "--num_video_frames", "5"]).exit_code == 0


@pytest.mark.parametrize("world", [None, "2"])
def test_the_shipped_tiny_models_are_refused_early_and_say_what_works(box_scene, tmp_path, monkeypatch, world):
    """Their 17-frame chunk is 3 latent frames and fixed by the model (no --chunk_frames or
    --num_video_frames helps): --num_gpus 2 was refused by load_generator only after the input had
    been read (under torchrun), or as a launch mistake first (without it), with "use --num_gpus in [1]"."""
    import gen3c.pipelines.loading as loading
    import gen3c.pipelines.request as request_module

    def never(*args, **kwargs):
        raise AssertionError("read the input or loaded weights before refusing --num_gpus")

    monkeypatch.setattr(request_module, "load_scene", never)
    monkeypatch.setattr(loading, "load_pipeline", never)
    if world is None:
        monkeypatch.delenv("WORLD_SIZE", raising=False)
    else:
        monkeypatch.setenv("WORLD_SIZE", world)
    monkeypatch.delenv("MASTER_ADDR", raising=False)  # joining a process group would fail at once, not hang
    for model in ("tiny", "tiny_fast"):
        res = runner.invoke(app, cli_args(box_scene, tmp_path, "--generator", "gen3c", "--model", model, "--resolution", "64x112", "--num_gpus", 2))
        assert res.exit_code == 2, res.output
        assert (
            f"error: --num_gpus 2: the shipped {model} model (its 17-frame chunks have 3 latent frames) cannot be split across GPUs "
            "(no count above 1 divides both its 4 attention heads and its 3 latent frames per chunk): run it with --num_gpus 1, "
            "or test a multi-GPU launch with GEN3C's weights"
        ) in " ".join(res.output.split())
    assert not list(tmp_path.iterdir())
    if world is not None:  # the Python API refuses it too, by the same check, before any weight is read
        with pytest.raises(Gen3cInputError, match="the shipped tiny model .* cannot be split across GPUs"):
            loading.load_generator("tiny", num_gpus=2, device="cpu")


def test_split_tokens_take_a_backend_that_splits():
    """gen3c's own kernels do not split tokens across GPUs: "auto…" becomes PyTorch SDPA, an
    explicit flash4 / cudnn_fp8 is refused, diffusers' backends pass through."""
    from gen3c.models.context_parallel import context_parallel_attention

    dit = tiny_transformer()
    assert context_parallel_attention("auto", dit, "cpu") == "sdpa"
    assert context_parallel_attention("auto_fp8", dit, "cpu") == "sdpa"
    assert context_parallel_attention("native", dit, "cpu") == "native"
    assert context_parallel_attention(None, dit, "cpu") is None
    for kernel in ("flash4", "cudnn_fp8"):
        with pytest.raises(Gen3cInputError, match=f"--attention_backend {kernel} cannot split the tokens"):
            context_parallel_attention(kernel, dit, "cpu")

def test_other_ranks_write_nothing(box_scene, tmp_path, monkeypatch):
    import gen3c.parallel as parallel
    from gen3c.pipelines.request import GenerationRequest, run_request

    image, depth, _, _ = box_scene
    request = GenerationRequest(input_image_path=str(image), depth_path=str(depth), fov=60.0, resolution="32x48",
                                num_video_frames=5, video_save_folder=str(tmp_path / "out"))  # fmt: skip
    monkeypatch.setattr(parallel, "is_main_process", lambda: False)
    stages = []
    out = run_request(request, progress=lambda stage, total: stages.append(stage) or (lambda n=1: None))
    assert out.paths == {} and out.result.num_frames == 5
    assert not (tmp_path / "out").exists()
    assert stages == []
    # The gen3c model's loading is a stage too: another rank drew its bar (gen3c.generate under torchrun).
    request.generator, request.generator_options, request.num_video_frames = "gen3c", {"model": "tiny", "num_steps": 1}, 17
    run_request(request, progress=lambda stage, total: stages.append(stage) or (lambda n=1: None))
    assert stages == []


# -- two ranks (torchrun, gloo) -------------------------------------------------------------------


@pytest.fixture(scope="module")
def long_tiny_checkpoint(tmp_path_factory):
    """The tiny pipeline with room for GEN3C's 121-frame chunk (16 latent frames) in its DiT."""
    from tiny_model import tiny_components

    from gen3c.models.prompt_cache import PromptEmbeddingCache
    from gen3c.pipelines.gen3c import Gen3cPipeline

    parts = tiny_components(0)
    parts["transformer"] = tiny_transformer(max_size=(16, 16, 16))
    pipe = Gen3cPipeline(**parts)
    prompts = ["", configs.DEFAULT_NEGATIVE_PROMPT]
    pipe.register_modules(prompt_cache=PromptEmbeddingCache.from_embeddings({p: pipe.encode_prompt(p)[0] for p in prompts}))
    folder = tmp_path_factory.mktemp("long_tiny_ckpt")
    pipe.save_pretrained(folder)
    return folder


def test_a_count_the_dit_cannot_split_is_refused_before_loading(box_scene, tmp_path, monkeypatch, long_tiny_checkpoint):
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.delenv("MASTER_ADDR", raising=False)  # joining a process group would fail at once, not hang
    res = runner.invoke(app, cli_args(box_scene, tmp_path, "--generator", "gen3c", "--checkpoint_dir", long_tiny_checkpoint, "--num_gpus", 4))
    assert res.exit_code == 2, res.output
    assert "the DiT's 2 attention heads do not split across 4 GPUs; use one of [1, 2]" in " ".join(res.output.split())


def test_two_ranks_split_the_dit_and_write_the_video_of_one(box_scene, tmp_path, long_tiny_checkpoint, monkeypatch):
    gen = ("--generator", "gen3c", "--checkpoint_dir", long_tiny_checkpoint, "--num_steps", 2, "--guidance", 0)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # on the CPU, as the ranks below (a GPU host's video differs)
    one = runner.invoke(app, cli_args(box_scene, tmp_path / "one", *gen))
    assert one.exit_code == 0, one.output
    # One launch of 2 ranks: the DiT check, then `gen3c generate … --num_gpus 2` (see cp_worker.py).
    res = torchrun(2, TESTS / "cp_worker.py", tmp_path, *cli_args(box_scene, tmp_path / "two", *gen, "--num_gpus", 2))
    assert res.returncode == 0, res.stderr[-3000:]

    # 1. The DiT: each rank's blocks hold half the tokens; the output is gathered back whole.
    for rank in range(2):
        r = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert r["degree"] == r["recorded_degree"] == 2
        assert (r["tokens_whole"], r["tokens_split"]) == (24, 12)
        assert r["shape"] == [1, 16, 4, 4, 6]
        assert r["max_diff"] <= 1e-5 * r["scale"], r
        assert r["max_diff_enable_parallelism"] <= 1e-5 * r["scale"], r

    # 2. The command line: its DiT split too (121 frames at 32×48: 16·2·3 = 96 tokens, 48 per
    # rank, in 2 blocks × 2 steps), rank 0 alone reports and writes, the video of one process.
    for rank in range(2):
        assert json.loads((tmp_path / f"cli_rank{rank}.json").read_text()) == {"tokens": [48], "calls": 4}
    log = res.stdout + res.stderr
    assert log.count("wrote ") == 1, log[-2000:]
    names = sorted(p.name for p in (tmp_path / "two").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "one").iterdir()) == ["output.mp4", "output_cameras.json", "output_run.json"]
    a, _ = read_video(tmp_path / "one" / "output.mp4")
    b, _ = read_video(tmp_path / "two" / "output.mp4")
    a, b = np.asarray(a, dtype=np.int16), np.asarray(b, dtype=np.int16)
    assert a.shape == b.shape == (121, 32, 48, 3)
    assert a.std() > 10  # a real picture, not a constant
    assert np.abs(a - b).mean() <= 1.0, np.abs(a - b).mean()
    run = json.loads((tmp_path / "two" / "output_run.json").read_text())
    assert run["generator_options"]["num_gpus"] == 2


def test_a_run_cut_short_resumes_on_two_ranks_to_the_video_of_one(box_scene, tmp_path, long_tiny_checkpoint, monkeypatch):
    """`torchrun … --num_gpus 2 --resume`, as the interrupted run's "run the same command with
    --resume" says: refused before ("--resume does not work with --num_gpus 2 yet"). Rank 0 reads
    the kept chunks; the other ranks must start where they end too (else rank 1 samples chunk 1
    again while rank 0 samples chunk 2). The chunk kept here comes from a run cut short in one
    process, which the two ranks resume (the GPU count is no setting of the video)."""
    from gen3c.pipelines.gen3c import Gen3cGenerator

    gen = ("--generator", "gen3c", "--checkpoint_dir", long_tiny_checkpoint, "--num_steps", 2, "--guidance", 0, "--num_video_frames", 241)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # on the CPU, as the ranks below
    whole = runner.invoke(app, cli_args(box_scene, tmp_path / "whole", *gen))
    assert whole.exit_code == 0, whole.output
    generate = Gen3cGenerator.generate

    def cut_short(self, *args, chunk=0, **kwargs):
        if chunk == 1:
            raise KeyboardInterrupt
        return generate(self, *args, chunk=chunk, **kwargs)

    monkeypatch.setattr(Gen3cGenerator, "generate", cut_short)
    cut = runner.invoke(app, cli_args(box_scene, tmp_path / "two", *gen))
    assert cut.exit_code == 130 and "1 of 2 chunks is kept" in " ".join(cut.output.split()), cut.output
    res = torchrun(2, TESTS / "cp_worker.py", tmp_path, *cli_args(box_scene, tmp_path / "two", *gen, "--num_gpus", 2, "--resume"))
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    for rank in range(2):  # chunk 2 alone, on each rank: 2 blocks × 2 steps
        assert json.loads((tmp_path / f"cli_rank{rank}.json").read_text()) == {"tokens": [48], "calls": 4}
    a, _ = read_video(tmp_path / "whole" / "output.mp4")
    b, _ = read_video(tmp_path / "two" / "output.mp4")
    a, b = np.asarray(a, dtype=np.int16), np.asarray(b, dtype=np.int16)
    assert a.shape == b.shape == (241, 32, 48, 3)
    assert np.abs(a - b).mean() <= 1.0, np.abs(a - b).mean()
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == ["output.mp4", "output_cameras.json", "output_run.json"]


def test_a_rank_leaving_on_an_error_does_not_wait_for_its_blocked_peer(tmp_path):
    """At exit a rank waits (up to minutes) for its peers so the group is left in step; a rank
    leaving on a one-line error must not, since its peer may be blocked in a collective for good."""
    import time

    script = tmp_path / "leave.py"
    script.write_text(
        "import sys, torch, torch.distributed as dist\n"
        "from gen3c.parallel import init_parallel, leave_without_waiting\n"
        "ctx = init_parallel(2, 'cpu')\n"
        "if ctx.rank == 0:\n"
        "    leave_without_waiting()  # what the CLI does on Gen3cInputError / Ctrl-C\n"
        "    sys.exit(2)\n"
        "dist.all_reduce(torch.ones(1))  # rank 0 never joins\n"
    )
    start = time.monotonic()
    done = torchrun(2, script, timeout=100)
    assert done.returncode != 0 and time.monotonic() - start < 60, done.stderr[-2000:]


#: How each script below ends its command, as typer does (the exit code of typer.Exit) and with
#: SIGTERM handled as the command line handles it; the script defines generate().
AS_THE_COMMAND_LINE_ENDS = """
def run():
    try:
        generate()
    except typer.Exit as exc:
        sys.exit(exc.exit_code)

exit_command_line(run)
"""

RANK_SCRIPT = """\
import os, sys, time
import typer
from gen3c.cli import user_errors
from gen3c.errors import Gen3cInputError, exit_command_line

@user_errors
def generate():
    time.sleep(1.0 if os.environ["RANK"] == "0" else 0.0)  # rank 1 meets the mistake (or the Ctrl-C) first, as it may
    if sys.argv[1] == "interrupt":
        raise KeyboardInterrupt  # Ctrl-C reaches every rank
    raise Gen3cInputError("--num_video_frames 7 is not possible")
""" + AS_THE_COMMAND_LINE_ENDS


@pytest.mark.parametrize("mode, line", [("error", "error: --num_video_frames 7 is not possible"), ("interrupt", "interrupted: no partial output was kept")])
def test_a_mistake_every_rank_meets_is_said_once(tmp_path, mode, line):
    """Every rank checks the same settings: rank 0 alone says the mistake (or the Ctrl-C), even
    when another rank meets it first and torchrun then stops rank 0; the others leave silently."""
    script = tmp_path / "ranks.py"
    script.write_text(RANK_SCRIPT)
    done = torchrun(2, script, mode, timeout=60)
    assert done.returncode != 0
    printed = [s for s in done.stdout.splitlines() + done.stderr.splitlines() if "error:" in s or "interrupted" in s or "terminated" in s]
    assert printed == [line], done.stderr[-2000:]


def test_a_diffusers_without_context_parallelism_or_broken_is_one_line_naming_it(tmp_path, monkeypatch):
    """diffusers' context-parallel modules failing to import: one line naming diffusers, its
    version, the error and the reinstall of gen3c's requirement. Too old (gen3c installed without
    its requirement): the module is missing. Broken (built for another torch): it raises an
    AttributeError as it is imported. Before: the AttributeError's traceback, and for a too-old
    one an install of the requirement pyproject already declares."""
    import diffusers.hooks

    from gen3c.errors import Gen3cDependencyError
    from gen3c.models.context_parallel import enable_context_parallel

    version = diffusers.__version__
    monkeypatch.delitem(sys.modules, "diffusers.hooks.context_parallel", raising=False)
    monkeypatch.setattr(diffusers.hooks, "__path__", [str(tmp_path)])  # too old: no such module
    with pytest.raises(Gen3cDependencyError) as raised:
        enable_context_parallel(None, torch.device("cpu"))
    assert str(raised.value) == (
        f"--num_gpus above 1 (diffusers' context parallelism) needs diffusers, whose installed {version} fails to import "
        "(No module named 'diffusers.hooks.context_parallel'): pip install --force-reinstall 'diffusers>=0.42'"
    )

    (tmp_path / "context_parallel.py").write_text("import torch\nKERNEL = torch.fake_op_xyz\n")  # broken: raises as it is imported
    with pytest.raises(Gen3cDependencyError) as raised:
        enable_context_parallel(None, torch.device("cpu"))
    assert str(raised.value) == (
        f"--num_gpus above 1 (diffusers' context parallelism) needs diffusers, whose installed {version} fails to import "
        "(AttributeError: module 'torch' has no attribute 'fake_op_xyz'): pip install --force-reinstall 'diffusers>=0.42' "
        "(`pip check` names installed versions that do not match)"
    )


def test_a_rank_whose_launch_store_is_gone_at_exit_leaves_without_a_traceback(monkeypatch):
    """A rank that reaches exit after the store's host (rank 0 of a hand-made launch) left: the
    store's add fails as its wait would, and the rank leaves at once (was: an atexit traceback)."""
    import torch.distributed as dist

    from gen3c import parallel

    class GoneStore:
        def add(self, key, n):
            raise RuntimeError("Connection reset by peer")  # what torch's DistStoreError derives from

        def set(self, key, value):
            raise AssertionError("unreachable")

        def wait(self, keys, timeout):
            raise RuntimeError("Connection reset by peer")

    monkeypatch.setattr(dist.distributed_c10d, "_get_default_store", lambda: GoneStore())
    monkeypatch.setattr(dist, "get_world_size", lambda: 2)
    assert parallel._all_ranks_at_exit(parallel.EXIT_WAIT) is False


PEER_SCRIPT = """\
import os, sys
import torch, torch.distributed as dist, typer
import gen3c.cli as cli
from gen3c.errors import Gen3cInputError, exit_command_line
from gen3c.parallel import init_parallel

cli.RANK_0_ERROR_WAIT = 1.0  # (10 s in a real run)

@cli.user_errors
def generate():
    ctx = init_parallel(2, "cpu")
    if ctx.rank == 1:
        raise Gen3cInputError("--input_image_path x.png cannot be read on this rank")
    dist.all_reduce(torch.ones(1))  # rank 1 has left: gloo's "Connection closed by peer"
""" + AS_THE_COMMAND_LINE_ENDS


def test_a_rank_blocked_in_a_collective_when_a_peer_leaves_says_it_in_one_line(tmp_path):
    """A mistake only rank 1 meets (a file only it cannot read, its GPU) once the ranks have
    joined: rank 1 says it and leaves, and rank 0, blocked in a collective, stopped on gloo's
    RuntimeError with a traceback calling it a bug in gen3c; now one line, exit 1."""
    script = tmp_path / "peer.py"
    script.write_text(PEER_SCRIPT)
    done = torchrun(2, script, timeout=60)
    log = done.stdout + done.stderr
    printed = [s for s in log.splitlines() if "error:" in s]
    assert printed == [
        "rank 1: error: --input_image_path x.png cannot be read on this rank",
        "error: another rank of this run stopped (its own line, or torchrun's summary of the failed ranks, says why), so this one stops too",
    ], log[-3000:]
    assert "Connection closed by peer" not in log and "bug in gen3c" not in log


TYPO_SCRIPT = """\
import sys
import gen3c.cli as cli

cli.RANK_0_ERROR_WAIT = 5.0  # (10 s in a real run)
sys.argv = ["gen3c", "generate", "--num_video_framez", "9"]
cli.main()
"""


def test_a_mistyped_flag_under_torchrun_is_said_once(tmp_path):
    """click's usage errors (an unknown option) are met by every rank alike: each printed its
    own line, N lines for one typo. Now rank 0 alone says it, as for gen3c's own errors."""
    script = tmp_path / "typo.py"
    script.write_text(TYPO_SCRIPT)
    done = torchrun(2, script, timeout=60)
    printed = [s for s in done.stdout.splitlines() + done.stderr.splitlines() if "error:" in s]
    assert len(printed) == 1 and printed[0].startswith("error: --num_video_framez is no option of gen3c generate: did you mean --num_video_frames"), done.stderr[-2000:]
    assert done.returncode != 0


RANK_0_FIRST_SCRIPT = """\
import os, sys, time
import typer
import gen3c.cli as cli
from gen3c.cli import user_errors
from gen3c.errors import Gen3cInputError, exit_command_line

cli.RANK_0_ERROR_WAIT = 60.0  # (10 s in a real run) the wait a rank stopped by torchrun used to take

@user_errors
def generate():
    if os.environ["RANK"] == "0":
        open(sys.argv[1], "w").write(str(time.time()))
        raise Gen3cInputError("--num_video_frames 7 is not possible")
    time.sleep(60)  # rank 1 is still reading its input or loading when rank 0 fails
""" + AS_THE_COMMAND_LINE_ENDS


#: Seconds within which a launch must end once a rank has failed, in the tests below: generous for
#: a loaded machine (it takes 1-3 s), well short of what the bugs took, a rank SIGKILLed by torchrun
#: 30 s after its SIGTERM, or one waiting 60 s (RANK_0_FIRST_SCRIPT's RANK_0_ERROR_WAIT).
LEAVES_WITHIN = 25.0


def test_a_rank_stopped_by_torchrun_after_rank_0_failed_leaves_in_seconds(tmp_path):
    """Rank 0 meets the mistake first and exits; torchrun's SIGTERM then reached rank 1 as a
    Terminated, which waited the 10 s given to rank 0 to say a mistake (RANK_0_ERROR_WAIT, 60 s
    here): every such run ended 10 s after its error was printed. Now 2 s; rank 0 alone says the
    mistake."""
    import time

    script, stamp = tmp_path / "first.py", tmp_path / "rank0_failed_at"
    script.write_text(RANK_0_FIRST_SCRIPT)
    done = torchrun(2, script, stamp, timeout=120)
    ended = time.time()
    printed = [s for s in done.stdout.splitlines() + done.stderr.splitlines() if "error:" in s or "terminated" in s]
    assert printed == ["error: --num_video_frames 7 is not possible"], done.stderr[-2000:]
    assert "SIGKILL" not in done.stderr, done.stderr[-2000:]
    assert ended - float(stamp.read_text()) < LEAVES_WITHIN, ended - float(stamp.read_text())


JOIN_SCRIPT = """\
import os, sys, time
import typer
import gen3c.cli as cli
from gen3c.errors import Gen3cInputError, exit_command_line
from gen3c.parallel import init_parallel

cli.RANK_0_ERROR_WAIT = 0.5  # (10 s in a real run)

@cli.user_errors
def generate():
    if os.environ["RANK"] == "1":
        open(sys.argv[1], "w").write(str(time.time()))
        raise Gen3cInputError("--input_image_path x.png cannot be read on this rank")
    init_parallel(2, "cpu")  # waits for rank 1, which never comes
""" + AS_THE_COMMAND_LINE_ENDS


def test_a_rank_waiting_to_join_for_a_rank_that_failed_stops_when_torchrun_says(tmp_path):
    """Rank 1 stops on a mistake only it meets before the ranks join; rank 0, waiting in
    torch's joining (C++, where SIGTERM is not handled), ignored torchrun's SIGTERM and was killed
    30 s later (SIGKILL). Now it waits in Python and leaves at once with a "terminated" line."""
    import time

    script, stamp = tmp_path / "join.py", tmp_path / "rank1_failed_at"
    script.write_text(JOIN_SCRIPT)
    done = torchrun(2, script, stamp, timeout=90)
    ended = time.time()
    printed = [s for s in done.stdout.splitlines() + done.stderr.splitlines() if "error:" in s or "terminated" in s]
    assert printed == ["rank 1: error: --input_image_path x.png cannot be read on this rank", "terminated: no partial output was kept"], done.stderr[-2000:]
    assert "SIGKILL" not in done.stderr, done.stderr[-2000:]
    assert ended - float(stamp.read_text()) < LEAVES_WITHIN, ended - float(stamp.read_text())


LAST_WRITE_SCRIPT = """\
import os, sys, time
import typer
import gen3c.cli as cli
from gen3c.errors import exit_command_line
from gen3c.parallel import init_parallel

@cli.user_errors
def generate():
    init_parallel(2, "cpu")
    if os.environ["RANK"] == "0":  # rank 0 writes the outputs, and fails at it; rank 1 is done and waits at exit
        time.sleep(2.0)
        open(sys.argv[1], "w").write(str(time.time()))
        raise OSError(28, "No space left on device")
""" + AS_THE_COMMAND_LINE_ENDS


def test_a_rank_done_and_waiting_at_exit_leaves_when_rank_0_fails_writing(tmp_path):
    """Rank 1 finished and waits at exit for rank 0 to finish writing; rank 0 fails (a full
    disk). Rank 1 waited in torch's C++ store wait, where torchrun's SIGTERM is not handled, and
    was SIGKILLed 30 s later; now rank 0's failure ends its wait at once."""
    import time

    script, stamp = tmp_path / "last.py", tmp_path / "rank0_failed_at"
    script.write_text(LAST_WRITE_SCRIPT)
    done = torchrun(2, script, stamp, timeout=90)
    ended = time.time()
    assert done.returncode != 0 and "SIGKILL" not in done.stderr, done.stderr[-2000:]
    assert ended - float(stamp.read_text()) < LEAVES_WITHIN, ended - float(stamp.read_text())


def test_more_ranks_on_a_host_than_its_gpus_are_refused_before_joining(monkeypatch):
    """`torchrun --nproc_per_node=2 -m gen3c generate … --num_gpus 2` on a host with one visible GPU."""
    from gen3c.parallel import init_parallel

    refuse_joining(monkeypatch, gpus=1)
    with pytest.raises(Gen3cInputError, match=r"^torchrun started 2 processes on this host, which has 1 visible GPU: "
                       r"launch at most 1 per host \(--nproc_per_node 1\) or check CUDA_VISIBLE_DEVICES$"):  # fmt: skip
        init_parallel(2)
