"""The GEN3C diffusion generator on diffusers' components.

:class:`Gen3cPipeline` turns a source image and the renders of a 3D cache (its *buffers*) into
a video, exactly as GEN3C's ``DiffusionGen3CModel`` samples (``model_gen3c.py``,
``model_v2w.py``):

1. the image is encoded by the Cosmos tokenizer; its latent fills the first latent frame,
   which is marked by a 1-channel condition mask;
2. each buffer's colour video and mask video (``mask·2 − 1`` as RGB) are encoded; the 64 buffer
   channels are ``[buffer 0 colour, buffer 0 mask, buffer 1 colour, buffer 1 mask]`` (16 each,
   zeros for a missing buffer) and follow the condition mask in the DiT's input:
   ``[noisy latent (16) | condition mask (1) | buffers (64)]`` = 81 channels (+1 padding mask
   added inside the DiT);
3. EDM sampling (``EDMEulerScheduler``, Karras σ from 80 to 0.0002, 35 steps): at each step the
   first latent frame is replaced by the clean image latent augmented with noise of σ 0.001
   (rescaled to the current σ), and the model's output there is replaced so that its
   denoised estimate is the clean latent; below σ 0.001 the frame is left to the model;
4. guidance follows GEN3C's formula ``out = cond + guidance · (cond − uncond)``, where the
   unconditional branch gets the negative prompt (GEN3C's default one unless given), the same
   condition mask and **zeroed buffer channels**. ``guidance=0`` runs one forward per step;
   GEN3C's default ``guidance=1`` runs two;
5. the latents are decoded by the tokenizer.

Deliberate differences from GEN3C: the sampler state is kept in float32 (GEN3C keeps it in
bfloat16), and the initial noise comes from a CPU generator so a seed gives the same video on
any device (the condition-augmentation noise is GEN3C's own: numpy's ``RandomState(seed)``).
As in GEN3C, which seeds once and lets each chunk's ``torch.randn`` continue the stream
(``gen3c_single_image.py``, ``model_v2w.py``), chunk k of a long video starts from the seed's
(k+1)-th draw (``chunk=k``), while the augmentation noise restarts from the seed in every chunk.

:meth:`Gen3cPipeline.__call__` also takes diffusers' own arguments with diffusers' meaning:
``generator=`` (a ``torch.Generator`` draws all the noise instead of ``seed``),
``callback_on_step_end=`` (+ ``callback_on_step_end_tensor_inputs``, ``pipe.interrupt``,
``pipe.num_timesteps``) and ``output_type="np"`` / ``"pil"``.

:class:`Gen3cGenerator` adapts the pipeline to the library's generator protocol
(``generate(cache, cameras, first_frame)``); :mod:`gen3c.pipelines.loading` loads checkpoints
into them.
"""

from __future__ import annotations

import inspect
import json
import math
import numbers
import os
from collections.abc import Callable, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import AutoencoderKLCosmos, CosmosTransformer3DModel, DiffusionPipeline, EDMEulerScheduler
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.utils import BaseOutput
from diffusers.video_processor import VideoProcessor
from torch import Tensor

from gen3c.cache import backend_available
from gen3c.errors import (
    Gen3cInputError,
    Gen3cMemoryError,
    Gen3cModelError,
    Gen3cSettingError,
    describe_value,
    first_line,
    is_whole_number,
    note,
    quoted_path,
    shown_value,
    spelled,
)
from gen3c.io.images import note_unit_range as note_if_unit_range
from gen3c.io.images import on_cosmos_uint8_grid
from gen3c.models import configs
from gen3c.models.choices import check_step_cache_guidance
from gen3c.models.context_parallel import check_token_split, context_parallel_degree
from gen3c.models.memory import (
    MemoryPlan,
    enable_fp8_weights,
    enable_group_offload,
    module_bytes,
    out_of_memory_message,
    renders_stay_on_gpu,
)
from gen3c.models.prompt_cache import PromptEmbeddingCache
from gen3c.models.step_cache import StepCache
from gen3c.models.tokenizer import decode_latents, encode_video, statistics_frames
from gen3c.models.weights import OFFICIAL_REPO, WEIGHTS_HELP, holds_text_encoder, is_official_repo, prompts_of
from gen3c.parallel import broadcast_from_main
from gen3c.progress import check_step_progress
from gen3c.schedulers import note_first_order_run, sampler_name
from gen3c.summary import dataclass_repr

#: ``output_type`` values of :meth:`Gen3cPipeline.__call__` (see :class:`Gen3cPipelineOutput`).
OUTPUT_TYPES = ("pt", "np", "pil", "latent")
#: Tags the seed's stream of ``noise_aug_strength`` noise apart from the sampler's (ASCII "bufn").
BUFFER_NOISE_STREAM = 0x6275666E
#: A latent beyond ± this (or NaN) while sampling means the run diverged (:meth:`Gen3cPipeline.denoise`):
#: the noisiest step holds N(0, 80²) noise (its extreme over GEN3C-7B's 3.6 M latent values ≈ ±430) and
#: clean latents lie within a few units (``sigma_data`` 0.5). ``--guidance 1e30`` passes it at step 1;
#: on a GPU it decoded to a finite video of nothing, on the CPU to NaN. The least limit: a schedule
#: starting above GEN3C's σ 80 has it :data:`DIVERGED_PER_SIGMA` times its σ_max (:func:`diverged_limit`).
DIVERGED_LATENT = 1e4
#: The divergence limit per unit of the schedule's σ_max (GEN3C's 80 gives :data:`DIVERGED_LATENT`): a
#: checkpoint's schedule may start noisier, and its first steps' honest noise must not pass the limit.
DIVERGED_PER_SIGMA = DIVERGED_LATENT / 80.0


def diverged_limit(sigma_max: float) -> float:
    """The latent magnitude past which sampling a schedule starting at ``sigma_max`` has diverged:
    :data:`DIVERGED_PER_SIGMA` times it, never below :data:`DIVERGED_LATENT` (σ_max 80: ±1e4;
    5000: ±6.25e5, where a fixed ±1e4 refused the noise of the first step as divergence)."""
    return max(DIVERGED_LATENT, DIVERGED_PER_SIGMA * sigma_max)


def compute_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` as a torch device (None: CUDA when available, else the CPU), refused in one line
    when it is no device name or names a GPU or backend this machine does not have."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise Gen3cInputError(f"device {str(device)[:40]!r} is not a device name ({first_line(exc, 80)}): pass 'cuda', 'cuda:1' or 'cpu'") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            # (no flag of gen3c generate sets it: worded for a manifest row and a Python call alike)
            raise Gen3cInputError(f"device {str(device)!r}: no CUDA GPU is visible here: pass 'cpu' or nothing")
        if device.index is not None and device.index >= count:
            raise Gen3cInputError(f"device {str(device)!r}: only {count} CUDA GPU(s) are visible (cuda:0 … cuda:{count - 1})")
    if not backend_available(device):  # ('mps' off a Mac was torch's "PyTorch is not linked with support for mps devices" as the weights moved)
        raise Gen3cInputError(f"device {str(device)!r}: this machine's torch cannot use {device.type} devices: pass 'cpu' or nothing")
    return device


def _dtype_kwarg() -> str:
    """diffusers renamed ``torch_dtype`` to ``dtype``; the name this version takes."""
    from diffusers.utils import deprecation_utils

    return "dtype" if hasattr(deprecation_utils, "_resolve_dtype") else "torch_dtype"


_DTYPE_KWARG = _dtype_kwarg()


def _device_of(module: torch.nn.Module) -> torch.device:
    """Where ``module``'s first parameter (else buffer) is; the CPU for one with neither."""
    first = next(iter(module.parameters()), None)
    return first.device if first is not None else next(iter(module.buffers()), torch.empty(0)).device


@dataclass
class Gen3cPipelineOutput(BaseOutput):
    """The generated video; ``frames`` by ``output_type``:

    - ``"pt"`` (the default): a (T, 3, H, W) float32 tensor in [−1, 1];
    - ``"np"``: a (1, T, H, W, 3) float32 array in [0, 1] (diffusers' layout for a batch of one
      video: ``frames[0]`` is what ``diffusers.utils.export_to_video`` takes);
    - ``"pil"``: ``[[T PIL images]]`` (diffusers' list of videos, one video);
    - ``"latent"``: the (1, 16, T', h, w) clean latents.
    """

    frames: Tensor | np.ndarray | list

    __repr__ = dataclass_repr  # (a line of shapes, not every pixel, as gen3c's other results)


class Gen3cPipeline(DiffusionPipeline):
    """GEN3C: video from an image and 3D-cache renders.

    Components: ``transformer`` (``CosmosTransformer3DModel``, 81 input channels), ``vae``
    (``AutoencoderKLCosmos``, CV8x8x8), ``scheduler`` (``EDMEulerScheduler``), and optionally
    ``text_encoder`` + ``tokenizer`` (T5) and ``prompt_cache`` (precomputed embeddings of the
    empty prompt and GEN3C's default negative prompt). Without a text encoder only cached
    prompts can be used; :func:`gen3c.pipelines.loading.load_generator` loads T5 lazily the first time another
    prompt is asked for.
    """

    model_cpu_offload_seq = "text_encoder->transformer->vae"
    _optional_components = ["text_encoder", "tokenizer", "prompt_cache"]
    #: What ``callback_on_step_end`` may ask for and return (the names of diffusers' Cosmos pipelines).
    _callback_tensor_inputs = ["latents", "prompt_embeds", "negative_prompt_embeds"]

    def __init__(
        self,
        transformer: CosmosTransformer3DModel,
        vae: AutoencoderKLCosmos,
        scheduler: EDMEulerScheduler,
        text_encoder: Any = None,
        tokenizer: Any = None,
        prompt_cache: PromptEmbeddingCache | None = None,
    ) -> None:
        super().__init__()
        self.register_modules(
            transformer=transformer,
            vae=vae,
            scheduler=scheduler,
            text_encoder=text_encoder,
            tokenizer=tokenizer,
            prompt_cache=prompt_cache,
        )
        self.memory = MemoryPlan()
        self.compute_device: torch.device | None = None
        self.disable_prompt_encoder = False
        self.text_encoder_source: str | None = None
        #: The folder of converted weights (``cache_dir``) of GEN3C's official weights, when it was
        #: loaded from them, whose T5 is fetched only for prompts outside the prompt cache
        #: (:func:`~gen3c.pipelines.loading.prepare_prompts`); None for any other checkpoint.
        self.official_cache: str | None = None
        self.text_encoder_dtype = torch.bfloat16
        #: (component, device) of every placement made by the pipeline, for inspection.
        self.placements: list[tuple[str, str]] = []
        self.lora_sha256: str | None = None  # of the loaded adapter's weights (load_lora)
        #: The ``--max_gpu_memory`` budget (GB) that chose :attr:`memory` (load_generator sets it), None: none.
        self.max_gpu_memory: float | None = None
        self._step_cache: StepCache | None = None
        #: ``num_steps`` / ``guidance`` the checkpoint was made to sample with (a distilled
        #: student's ``gen3c_model.json``): what :meth:`__call__` uses when not told; empty: GEN3C's.
        self.sampling_defaults: dict[str, Any] = {}
        #: The checkpoint's ``gen3c_model.json`` (what it was made for: ``chunk_frames``,
        #: ``resolution``, ``dtype``, …); :meth:`save_pretrained` writes it back.
        self.model_info: dict[str, Any] = {}
        self.video_processor = VideoProcessor(vae_scale_factor=vae.config.spatial_compression_ratio)
        # Sampling state diffusers' callbacks read (see the properties below).
        self._interrupt = False
        self._num_timesteps = 0
        self._current_timestep: Tensor | None = None

    # -- setup --------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike | None = None, **kwargs: Any) -> Gen3cPipeline:
        """Load a converted checkpoint (diffusers' ``from_pretrained``), or GEN3C's official weights.

        ``pretrained_model_name_or_path``: a checkpoint folder (``gen3c convert``, ``gen3c train``,
        :meth:`save_pretrained`), a model shipped in the package (``"tiny"``, ``"tiny_fast"``), or
        the hub id of a converted checkpoint, fetched into huggingface_hub's cache (``revision``,
        ``cache_dir``, ``token``, ``local_files_only``, ``force_download`` as in diffusers; the
        folders of components passed as arguments, e.g. ``text_encoder=None``, are not fetched,
        and a T5 left out loads on the first prompt that needs it). The checkpoint's
        ``gen3c_model.json`` sets :attr:`sampling_defaults` (a distilled student's steps and guidance).

        This is the one loader: :func:`gen3c.pipelines.loading.load_pipeline` (gen3c's run-time
        defaults: bfloat16, T5 on first use) and ``load_generator`` come here. Before a weight is
        read the folder is checked (:func:`gen3c.pipelines.loading.check_checkpoint`: layout,
        tensors against the configs, memory; every file's sha256 with ``verify_checksums=True``),
        and any failure is a one-line :class:`~gen3c.errors.Gen3cModelError`. Components load as
        diffusers loads them: all that are stored, in float32 unless ``dtype`` (or
        ``torch_dtype``, a dtype or its name) says otherwise.

        With no argument or ``"nvidia/Gen3C-Cosmos-7B"`` (in any case, as the hub takes it), the official weights are fetched from the
        hub, checked and converted on first use, then loaded from gen3c's cache
        (:func:`gen3c.pipelines.loading.load_official_pipeline`; keyword arguments: ``dtype`` or
        ``torch_dtype``, ``prompts``, ``text_encoder``, ``cache_dir``, ``verify_checksums``).
        """
        if pretrained_model_name_or_path is None or is_official_repo(pretrained_model_name_or_path):
            from gen3c.pipelines.loading import load_official_pipeline

            if "torch_dtype" in kwargs:
                kwargs["dtype"] = kwargs.pop("torch_dtype")
            if "tokenizer" in kwargs and kwargs["tokenizer"] is None:
                # T5's tokenizer left out, as load_pipeline leaves it (with text_encoder=None): it
                # comes with T5 here, which loads when a prompt needs it.
                del kwargs["tokenizer"]
            allowed = {"dtype", "prompts", "text_encoder", "cache_dir", "verify_checksums"}
            unknown = sorted(set(kwargs) - allowed)
            if unknown:
                raise Gen3cInputError(f"from_pretrained({OFFICIAL_REPO!r}) takes {', '.join(sorted(allowed))}, not {', '.join(unknown)}")
            return load_official_pipeline(**kwargs)
        from gen3c.models.packaged import checkpoint_info
        from gen3c.models.weights import hold_for_reading, made_by_gen3c
        from gen3c.pipelines.loading import (
            HUB_OPTIONS,
            check_checkpoint,
            checkpoint_folder,
            is_hub_id,
            refuse_checksums_of_hub,
            resolve_dtype,
        )

        source = str(pretrained_model_name_or_path)
        verify_checksums = bool(kwargs.pop("verify_checksums", False))
        # diffusers renamed ``torch_dtype`` to ``dtype`` (warning on the old name): take either.
        dtype = kwargs.pop("dtype", None)
        dtype = kwargs.pop("torch_dtype", None) if dtype is None else dtype
        if dtype is not None:
            kwargs[_DTYPE_KWARG] = dtype = resolve_dtype(dtype)
        from_hub = is_hub_id(source)
        if from_hub and verify_checksums:
            refuse_checksums_of_hub(source)
        hub_options = {key: kwargs.pop(key) for key in HUB_OPTIONS if key in kwargs}
        passed = [name for name in inspect.signature(cls.__init__).parameters if name != "self" and name in kwargs]
        folder = checkpoint_folder(source, skip=passed, **hub_options)
        if not from_hub and made_by_gen3c(folder):  # gen3c's cache, named by its path: not removed while this process runs
            hold_for_reading(folder)
        check_checkpoint(folder, torch.float32 if dtype is None else dtype, verify_checksums=verify_checksums, skip=passed)
        try:
            # The folder is local by now: diffusers must not look a broken model_index.json entry up online.
            pipe = super().from_pretrained(str(folder), **{**kwargs, "local_files_only": True})
        except (OSError, ValueError) as exc:
            if not folder.exists():  # checked, then gone: another process's `gen3c cache remove` (the checkpoint is fine)
                raise Gen3cModelError(
                    f"checkpoint {quoted_path(folder)} was removed while it was loading, by another process (`gen3c cache remove`?): "
                    "run again (GEN3C's own weights are then fetched or converted again)"
                ) from None
            raise Gen3cModelError(f"could not load checkpoint {quoted_path(source)} ({first_line(exc, 120)}): {WEIGHTS_HELP}") from None
        info = checkpoint_info(str(folder))
        pipe.model_info = dict(info)
        pipe.sampling_defaults = {key: info[key] for key in ("num_steps", "guidance") if key in info}
        # A T5 left out loads on first use: from the hub for a hub id (its folders were not fetched).
        pipe.text_encoder_source = source if from_hub else str(folder)
        if dtype is not None:
            pipe.text_encoder_dtype = dtype
        return pipe

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs: Any) -> None:
        """diffusers' ``save_pretrained``, plus the checkpoint's ``gen3c_model.json`` (what the model
        was made for, with the current :attr:`sampling_defaults`), so that :meth:`from_pretrained`
        of the folder samples as this pipeline does (a distilled student its own few steps).

        The checkpoint is written whole under a temporary name and then moved into place
        (:func:`gen3c.io.atomic.publish`): an interrupted save leaves no half-written checkpoint,
        and the files get plain permissions (0666/0777 less the umask; safetensors ≥ 0.8 writes
        owner-only files, unreadable to the other users of a shared machine); the hidden folder a
        save killed outright (``kill -9``) left is removed by the next save. Into an existing
        folder, each component folder and file saved replaces its namesake; other files stay.
        With ``push_to_hub`` the repository is named after the folder unless ``repo_id`` says. A
        leading ``~`` in ``save_directory`` is the home folder.
        """
        import shutil

        from gen3c.io.atomic import make_staging_dir, publish, remove_abandoned_staging, signals_deferred
        from gen3c.io.paths import writer_path
        from gen3c.models.packaged import META_NAME

        target = Path(os.path.abspath(writer_path(save_directory, "save_pretrained folder", "the checkpoint")))
        if target.exists() and not target.is_dir():
            raise Gen3cInputError(f"save_pretrained: {quoted_path(target)} is a file: pass a folder to save the checkpoint into")
        merge = target.is_dir()
        if not merge:
            target.parent.mkdir(parents=True, exist_ok=True)
        where = target if merge else target.parent
        remove_abandoned_staging(where, target.name)  # of saves killed with kill -9
        staging = make_staging_dir(where, target.name)
        replaced: list[Path] = []
        try:
            info = {key: value for key, value in self.model_info.items() if key not in ("num_steps", "guidance")}
            info.update(self.sampling_defaults)
            if info:  # written first, so that diffusers' push_to_hub=True uploads it too
                (staging / META_NAME).write_text(json.dumps(info, indent=2) + "\n")
            if kwargs.get("push_to_hub"):
                kwargs.setdefault("repo_id", target.name)  # (diffusers names it after the folder it saves into)
            super().save_pretrained(staging, **kwargs)
            with signals_deferred():  # the renames as one unit
                if not merge:
                    publish(staging, target)
                for entry in sorted(staging.iterdir()) if merge else ():
                    old = target / entry.name
                    if old.is_dir() and not old.is_symlink():  # a folder cannot be replaced by a rename: moved aside
                        replaced.append(old.rename(staging.with_name(f"{staging.name}.{entry.name}.old")))
                    publish(entry, old)
        finally:
            for path in (*replaced, staging):
                shutil.rmtree(path, ignore_errors=True)

    def configure_memory(self, plan: MemoryPlan, device: str | torch.device | None = None) -> Gen3cPipeline:
        """Place the components for ``plan`` on ``device`` (default: CUDA if available).

        A later plan may offload more or less, but cannot undo the DiT's float8 storage (its
        bf16/fp32 weights are gone) or its block streaming to another device: refused, in one line.

        Raises:
            Gen3cInputError: ``plan`` drops float8 storage or block streaming an earlier plan set up.
            Gen3cMemoryError: the components ``plan`` keeps on the GPU do not fit there.
        """
        device = compute_device(device)
        streamed = getattr(self.transformer, "_gen3c_group_offloaded", None)
        moved = streamed is not None and streamed != device and not (
            streamed.type == device.type and None in (streamed.index, device.index)
        )  # ("cuda" and "cuda:0" may be one GPU)
        kept = [what for what, on in (
            ("its weights stored in float8", getattr(self.transformer, "_gen3c_compute_dtype", None) and not plan.fp8),
            (f"its blocks streamed to {streamed}", streamed is not None and (not plan.group_offload or moved)),
        ) if on]  # fmt: skip
        if kept:
            raise Gen3cInputError(
                f"configure_memory: an earlier plan left the DiT with {' and '.join(kept)}, which a new plan cannot undo: "
                "load the pipeline again (load_pipeline) for this plan"
            )
        self.compute_device = device
        self.memory = plan
        if plan.fp8 and not getattr(self.transformer, "_gen3c_compute_dtype", None):
            enable_fp8_weights(self.transformer, self.transformer.dtype)
        if plan.group_offload and streamed is None:
            enable_group_offload(self.transformer, device)
        with self._out_of_memory_as_error("moving the model to it"):
            for name in ("transformer", "vae", "text_encoder", "prompt_cache"):
                self._place(name, "cpu" if name in plan.offload else device)
        return self

    def load_lora(self, path: str | os.PathLike, scale: float = 1.0) -> Gen3cPipeline:
        """Load a LoRA adapter written by ``gen3c train`` (mode lora) into the DiT; replaces a loaded one.

        Args:
            path: the adapter folder or its ``pytorch_lora_weights.safetensors``.
            scale: strength of the adapter (1: as trained).
        """
        from gen3c.training.lora import load_lora, lora_sha256

        if getattr(self.transformer, "_gen3c_compute_dtype", None):
            raise Gen3cInputError("a LoRA cannot be loaded into float8 weights: drop --fp8 to use --lora")
        digest = lora_sha256(path)
        self.lora_sha256 = None  # (load_lora drops the loaded adapter first)
        load_lora(self.transformer, path, scale=scale)
        self.lora_sha256 = digest
        return self

    def unload_lora(self) -> Gen3cPipeline:
        """Remove the LoRA adapter; the DiT computes exactly as before :meth:`load_lora`."""
        from gen3c.training.lora import unload_lora

        unload_lora(self.transformer)
        self.lora_sha256 = None
        return self

    @property
    def _execution_device(self) -> torch.device:
        if self.compute_device is not None:
            return self.compute_device
        return next(self.transformer.parameters()).device

    def _place(self, name: str, device: str | torch.device) -> None:
        module = getattr(self, name, None)
        if module is None:
            return
        if name == "transformer" and getattr(module, "_gen3c_group_offloaded", False):
            return  # the group-offloading hooks move its blocks
        device = torch.device(device)
        if _device_of(module) != device:
            module.to(device)
        self.placements.append((name, str(device)))

    @contextmanager
    def _stage(self, name: str):
        """Bring component ``name`` to the compute device; send it back afterwards if offloaded.

        A move that fails midway (out of accelerator memory) leaves some of its tensors moved: the
        component goes back where it was (CPU memory, for an offloaded one), whole, so that the next
        call (a GUI keeps running) does not start with it split; if that fails too, the
        :class:`torch.OutOfMemoryError` carries ``gen3c_stranded`` saying so."""
        module = getattr(self, name, None)
        home = _device_of(module) if module is not None else None
        try:
            self._place(name, self._execution_device)
        except BaseException as exc:
            if home is not None and not getattr(module, "_gen3c_group_offloaded", False):
                try:
                    module.to(home)  # every tensor: _place looks at the first only
                    self.placements.append((name, str(home)))
                except Exception as back:
                    exc.gen3c_stranded = f"{name} is left partly on {self._execution_device}, as moving it back failed too ({first_line(back)})"
            raise
        try:
            yield getattr(self, name)
        finally:
            if name in self.memory.offload:
                self._place(name, "cpu")
                if self._execution_device.type == "cuda":
                    torch.cuda.empty_cache()

    @contextmanager
    def _out_of_memory_as_error(self, stage: str):
        """Turn running out of accelerator memory in ``stage`` into a :class:`Gen3cMemoryError`
        that names the flag to try."""
        try:
            yield
            return
        except torch.OutOfMemoryError as exc:
            stranded = getattr(exc, "gen3c_stranded", None)  # (see _stage)
        # Outside the except clause, so the traceback's frames (and their tensors) are already freed.
        raise self.out_of_memory_error(stage, stranded)

    def out_of_memory_error(self, stage: str, stranded: str | None = None) -> Gen3cMemoryError:
        """The error for running out of accelerator memory while ``stage`` ("rendering 3D
        cache"), naming the flag of this memory plan to try (its accelerator's cache emptied first);
        ``stranded``: what a failed move left on the accelerator (:meth:`_stage`)."""
        if self._execution_device.type == "cuda":
            torch.cuda.empty_cache()
        message = out_of_memory_message(
            self.memory, self._execution_device, stage, lora=self.lora_sha256 is not None, max_gpu_memory=self.max_gpu_memory
        )
        if stranded:
            message += f"; {stranded}: load the pipeline again"
        error = Gen3cMemoryError(message)
        error.stranded = bool(stranded)
        return error

    @property
    def step_cache(self) -> StepCache | None:
        """Step caching of the DiT (:mod:`gen3c.models.step_cache`), None: every step computed in
        full. Setting it takes the hooks of the cache it replaces off the DiT (left on, MagCache's
        kept skipping steps and the others raised at the next forward)."""
        return self._step_cache

    @step_cache.setter
    def step_cache(self, cache: StepCache | None) -> None:
        old = self._step_cache
        if old is not None and old is not cache:
            old.remove()
        self._step_cache = cache

    @property
    def transformer_dtype(self) -> torch.dtype:
        """The dtype the transformer computes in (its storage dtype may be float8)."""
        return getattr(self.transformer, "_gen3c_compute_dtype", None) or self.transformer.dtype

    @property
    def interrupt(self) -> bool:
        """Whether sampling stops before its next step, as in diffusers: a ``callback_on_step_end``
        sets ``pipe._interrupt = True`` and the latents reached so far are decoded. Each call
        starts with it False."""
        return self._interrupt

    @property
    def num_timesteps(self) -> int:
        """Sampler steps of the current (or last) call, as in diffusers."""
        return self._num_timesteps

    @property
    def current_timestep(self) -> Tensor | None:
        """The scheduler timestep being sampled (None outside sampling), as in diffusers."""
        return self._current_timestep

    # -- 1. check inputs --------------------------------------------------------------

    def check_inputs(
        self, image: Tensor, buffer_colors: Tensor, buffer_masks: Tensor, guidance: float, num_steps: int,
        guidance_every: int = 1, seed: int | None = 1, note_unit_range: bool = False,
    ) -> None:
        """Raise :class:`Gen3cInputError` for inputs the model cannot take (``seed`` None: a generator
        draws the noise); with ``note_unit_range``, note an image or buffer colours with no value
        below 0 as likely [0, 1] ones (:func:`gen3c.io.images.note_unit_range`)."""
        if not isinstance(image, Tensor) or image.ndim != 3 or image.shape[0] != 3:
            raise Gen3cInputError(f"image must be a (3, H, W) tensor in [-1, 1], got {_describe(image)}")
        if not isinstance(buffer_colors, Tensor) or buffer_colors.ndim != 5 or buffer_colors.shape[2] != 3:
            raise Gen3cInputError(
                f"buffer_colors must be a (T, NB, 3, H, W) tensor in [-1, 1], got {_describe(buffer_colors)}"
            )
        T, NB, _, H, W = buffer_colors.shape
        if not isinstance(buffer_masks, Tensor) or tuple(buffer_masks.shape) != (T, NB, 1, H, W):
            raise Gen3cInputError(
                f"buffer_masks must be a (T, NB, 1, H, W) = ({T}, {NB}, 1, {H}, {W}) tensor matching buffer_colors, got {_describe(buffer_masks)}"
            )
        if tuple(image.shape[-2:]) != (H, W):
            raise Gen3cInputError(
                f"image is {tuple(image.shape[-2:])} but the buffers are {(H, W)}: render the cache at the image's size"
            )
        if not 1 <= NB <= configs.NUM_BUFFERS:
            raise Gen3cInputError(
                f"GEN3C takes 1 or {configs.NUM_BUFFERS} buffers, got {NB}: keep the {configs.NUM_BUFFERS} newest cache views"
            )
        tc = self.vae.config.temporal_compression_ratio
        if (T - 1) % tc:
            n = (T - 1) // tc * tc + 1
            raise Gen3cInputError(
                f"the buffers have {T} frames; the tokenizer takes 1 + {tc}·k frames (e.g. {n} or {n + tc})"
            )
        max_latent = self.transformer.config.max_size[0] // self.transformer.config.patch_size[0]
        # The tokenizer's per-frame latent statistics (GEN3C's: one 121-frame chunk) bound it too.
        max_latent = min(max_latent, statistics_frames(self.vae) or max_latent)
        if (T - 1) // tc + 1 > max_latent:
            raise Gen3cInputError(
                f"the buffers have {T} frames; this model generates at most {(max_latent - 1) * tc + 1} per chunk"
            )
        check_token_split(
            self.transformer.config.num_attention_heads, context_parallel_degree(self.transformer), (T - 1) // tc + 1
        )
        self.check_frame_size(H, W, "the frame size of image and buffer_colors", "render the cache and the image at")
        for name, value, lo in (
            ("image", image, -1.0),
            ("buffer_colors", buffer_colors, -1.0),
            ("buffer_masks", buffer_masks, 0.0),
        ):
            if not torch.isfinite(value).all():
                raise Gen3cInputError(f"{name} holds NaN or infinite values: check how it was made")
            vmin, vmax = float(value.min()), float(value.max())
            if vmin < lo - 1e-3 or vmax > 1 + 1e-3:
                raise Gen3cInputError(
                    f"{name} must lie in [{lo:g}, 1], got values in [{vmin:.3g}, {vmax:.3g}]: rescale it"
                )
            if note_unit_range and name != "buffer_masks":  # [0, 1] colours (diffusers' images) pass the range check washed out
                note_if_unit_range(value, name, var=name, stacklevel=4)  # (check_inputs, __call__, no_grad's wrapper)
        if isinstance(guidance, bool) or not isinstance(guidance, numbers.Real) or not math.isfinite(guidance):
            raise Gen3cInputError(f"guidance must be a finite number, got {shown_value(guidance)}")
        for name, value, meaning in (("num_steps", num_steps, ""), ("guidance_every", guidance_every, " (1: every step)")):
            whole = is_whole_number(value) or (isinstance(value, float) and value.is_integer())
            if not whole or value < 1:
                raise Gen3cInputError(f"{name} must be a positive whole number{meaning}, got {shown_value(value)}")
        # numpy's RandomState draws GEN3C's condition-augmentation noise: it takes 0 … 2³² − 1.
        if seed is not None and (not is_whole_number(seed) or not 0 <= seed <= configs.MAX_SEED):
            raise Gen3cInputError(f"seed must be a whole number from 0 to {configs.MAX_SEED}, got {shown_value(seed)}")
        device = self._execution_device
        if device.type == "cpu" and self.vae.dtype in (torch.bfloat16, torch.float16):
            # PyTorch has no CPU kernel for the tokenizer's 3D average pooling in half precision.
            raise Gen3cInputError(
                f"the tokenizer cannot run in {str(self.vae.dtype).removeprefix('torch.')} on the CPU: load with dtype=torch.float32 "
                "(or pipe.to(torch.float32)), or move the pipeline to a GPU"
            )
        if self.transformer_dtype not in (torch.float32, torch.bfloat16, torch.float16):
            raise Gen3cInputError(f"the DiT computes in float32, bfloat16 or float16, not {self.transformer_dtype}: pipe.to(torch.bfloat16)")

    def check_frame_size(self, height: int, width: int, given: str = "--resolution", fix: str = "pass --resolution") -> None:
        """Refuse a frame size this model cannot take (:func:`~gen3c.models.configs.check_model_frame_size`;
        ``given`` and ``fix``: how its message names the size and the change; by default, the
        command line's working resolution)."""
        configs.check_model_frame_size(self.transformer.config, self.vae.config, height, width, given, fix)

    def check_call_arguments(
        self,
        seed: int | None,
        generator: Any,
        callback: Any,
        callback_on_step_end: Any,
        callback_on_step_end_tensor_inputs: Any,
        output_type: Any,
        chunk: Any = 0,
        fps: Any = configs.FPS,
        condition_augment_sigma: Any = configs.CONDITION_AUGMENT_SIGMA,
        max_sequence_length: Any = configs.MAX_SEQUENCE_LENGTH,
        noise_aug_strength: Any = 0.0,
    ) -> None:
        """Raise :class:`Gen3cInputError` for randomness, callback, output and conditioning
        arguments of :meth:`__call__` that cannot be used (the tensors are :meth:`check_inputs`' job)."""
        # fps divides the DiT's temporal positions and the augmentation sigma scales the first
        # frame's latent: 0, a negative or NaN gave NaN frames or another video without a word.
        for name, value, lo, what in (("fps", fps, 0.0, "> 0 (GEN3C: 24)"),
                                      ("condition_augment_sigma", condition_augment_sigma, None, "≥ 0 (GEN3C: 0.001)"),
                                      ("noise_aug_strength", noise_aug_strength, None, "≥ 0 (GEN3C: 0)")):  # fmt: skip
            number = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
            if not number or (value <= lo if lo is not None else value < 0):
                raise Gen3cInputError(f"{name} must be a finite number {what}, got {shown_value(value)}")
        if not is_whole_number(max_sequence_length) or max_sequence_length < 1:
            raise Gen3cInputError(
                f"max_sequence_length must be a whole number of T5 tokens ≥ 1 (GEN3C: {configs.MAX_SEQUENCE_LENGTH}), got {shown_value(max_sequence_length)}"
            )
        if seed is not None and generator is not None:
            raise Gen3cInputError(
                "seed and generator were both given: pass seed=N (GEN3C's exact noise) or generator=torch.Generator() (all noise from it), not both"
            )
        if isinstance(generator, (list, tuple)):
            raise Gen3cInputError(
                f"generator is {describe_value(generator)}: a call makes one video, so pass one torch.Generator (one call per generator for several)"
            )
        if generator is not None and not isinstance(generator, torch.Generator):
            raise Gen3cInputError(f"generator must be a torch.Generator, got {describe_value(generator)}: pass torch.Generator().manual_seed(n), or seed=n")
        if not is_whole_number(chunk) or chunk < 0:
            raise Gen3cInputError(f"chunk must be a whole number from 0 (the first chunk of a video), got {shown_value(chunk)}")
        if chunk and generator is not None:
            raise Gen3cInputError(
                f"chunk={chunk} picks a draw of seed=N's noise stream, but a generator was given: a generator continues its own "
                "stream from call to call, so pass the same generator to every chunk and leave chunk out"
            )
        for name, function in (("callback", callback), ("callback_on_step_end", callback_on_step_end)):
            if function is not None and not callable(function):
                raise Gen3cInputError(f"{name} must be a function, got {describe_value(function)}")
        names = callback_on_step_end_tensor_inputs
        if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
            raise Gen3cInputError(
                f"callback_on_step_end_tensor_inputs must be a list of names from {self._callback_tensor_inputs}, got {shown_value(names)}"
            )
        unknown = [n for n in names if n not in self._callback_tensor_inputs]
        if unknown:
            raise Gen3cInputError(
                f"callback_on_step_end_tensor_inputs: {unknown} cannot be passed to the callback; choose from {self._callback_tensor_inputs}"
            )
        if not isinstance(output_type, str) or output_type not in OUTPUT_TYPES:
            raise Gen3cInputError(f"output_type must be one of {', '.join(map(repr, OUTPUT_TYPES))}, got {shown_value(output_type)}")

    # -- 2. prompts --------------------------------------------------------------------

    def encode_prompt(
        self, prompt: str, max_sequence_length: int = configs.MAX_SEQUENCE_LENGTH, *, negative: bool = False
    ) -> Tensor:
        """(1, L, D) T5 embedding of ``prompt``: from the cache if there, else from T5 (zero beyond
        the prompt's tokens, as GEN3C); zeros when the prompt encoder is disabled. ``negative``:
        it is the negative prompt (errors name it so)."""
        return self._encode_prompts([(prompt, negative)], max_sequence_length)[0]

    def _encode_prompts(self, prompts: Sequence[tuple[str, bool]], max_sequence_length: int) -> list[Tensor]:
        """:meth:`encode_prompt` of each ``(prompt, negative)``, with T5 brought to the compute
        device once for all those the prompt cache lacks (an offloaded T5-11B crosses to the GPU
        and back once, not once per prompt)."""
        for prompt, negative in prompts:
            if not isinstance(prompt, str):
                raise Gen3cInputError(f"{'negative_prompt' if negative else 'prompt'} must be a string, got {describe_value(prompt)}")
        dim = self.transformer.config.text_embed_dim
        if self.disable_prompt_encoder:
            return [torch.zeros(1, max_sequence_length, dim) for _ in prompts]
        embeds: list[Tensor | None] = []
        for prompt, _ in prompts:
            cached = self.prompt_cache.lookup(prompt) if self.prompt_cache is not None else None
            embeds.append(cached.detach().float().cpu() if cached is not None and cached.shape[1] == max_sequence_length else None)
        missing = [i for i, e in enumerate(embeds) if e is None]
        if not missing:
            return embeds
        self._ensure_text_encoder(*prompts[missing[0]])
        with self._out_of_memory_as_error("encoding the prompt with T5"), self._stage("text_encoder") as text_encoder:
            device = self._execution_device
            for i in missing:  # one prompt per forward, as alone
                tokens = self.tokenizer(
                    [prompts[i][0]],
                    padding="max_length",
                    max_length=max_sequence_length,
                    truncation=True,
                    return_tensors="pt",
                )
                ids, mask = tokens.input_ids.to(device), tokens.attention_mask.to(device)
                with torch.no_grad():
                    out = text_encoder(input_ids=ids, attention_mask=mask).last_hidden_state.float()
                embeds[i] = (out * mask[..., None]).cpu()
        return embeds

    def text_encoder_bytes(self, prompts: Sequence[str]) -> int:
        """The bytes T5 brings to the compute device to encode ``prompts``: 0 when the prompt cache
        holds them all (or the prompt encoder is off), else its weights, as loaded or, before it
        is loaded (:meth:`_ensure_text_encoder`), as its config says (built on the meta device)."""
        if self.disable_prompt_encoder or all(self.prompt_cache is not None and self.prompt_cache.lookup(p) is not None for p in prompts):
            return 0
        if self.text_encoder is not None:
            return module_bytes(self.text_encoder)
        if self.text_encoder_source is None:
            return 0  # (refused when a prompt needs it: _ensure_text_encoder)
        from transformers import AutoConfig, T5EncoderModel

        source = self.text_encoder_source
        plain = os.path.isfile(os.path.join(source, "config.json"))
        try:
            config = AutoConfig.from_pretrained(source, **({} if plain else {"subfolder": "text_encoder"}))
        except (OSError, ValueError):
            return 0  # (refused with its reason when loaded)
        with torch.device("meta"):
            twin = T5EncoderModel(config)
        return sum(t.numel() for t in (*twin.parameters(), *twin.buffers())) * self.text_encoder_dtype.itemsize

    def _ensure_text_encoder(self, prompt: str, negative: bool = False) -> None:
        if self.text_encoder is not None and self.tokenizer is not None:
            return
        if self.official_cache is not None:  # GEN3C's weights loaded for the cache's prompts: T5 as a load for this one gets it
            from gen3c.pipelines.loading import prepare_prompts

            prepare_prompts(self, (prompt,))
        source = self.text_encoder_source
        # The cached prompts are the empty one and GEN3C's default negative one (gen3c convert).
        what, cached = ("negative_prompt", "GEN3C's default (negative_prompt=None)") if negative else ("prompt", "the empty prompt")
        if source is None or (os.path.isdir(source) and not holds_text_encoder(source)):  # (a checkpoint saved without T5: tiny)
            raise Gen3cModelError(
                f"{what} {prompt[:40]!r} is not in the prompt cache and this pipeline has no T5 text encoder: "
                f"load a checkpoint with its text_encoder/ and tokenizer/ folders, or use {cached}"
            )
        from transformers import AutoTokenizer, T5EncoderModel

        from gen3c.library_output import libraries_quiet

        # A converted checkpoint keeps T5 in text_encoder/ and tokenizer/; a T5 folder (a hub
        # snapshot of google-t5/t5-11b) holds both at its top.
        plain = os.path.isfile(os.path.join(source, "config.json"))
        try:
            # Mid-sampling: transformers' own loading bar would cut through gen3c's.
            with libraries_quiet():
                self.register_modules(
                    tokenizer=AutoTokenizer.from_pretrained(source, **({} if plain else {"subfolder": "tokenizer"})),
                    text_encoder=T5EncoderModel.from_pretrained(
                        source, dtype=self.text_encoder_dtype, **({} if plain else {"subfolder": "text_encoder"})
                    ),
                )
        except (OSError, ValueError) as exc:
            raise Gen3cModelError(
                f"checkpoint {quoted_path(source)} has no loadable T5 text encoder for {what} {prompt[:40]!r} ({first_line(exc)}): "
                f"use {cached}, or {WEIGHTS_HELP}"
            ) from None
        self.text_encoder.eval()
        self._place("text_encoder", "cpu")

    # -- 3. conditions ------------------------------------------------------------------

    def encode_conditions(
        self,
        image: Tensor,
        buffer_colors: Tensor,
        buffer_masks: Tensor,
        *,
        noise_aug_strength: float = 0.0,
        noise_generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Tokenizer latents of the conditions (``noise_aug_strength``, ``noise_generator``: see
        :func:`encode_buffers`).

        Returns:
            ``(image_latent (1, 16, T', h, w), buffer_latents (1, 64, T', h, w))``: the image
            latent in the first latent frame (zeros after it), and the buffers in GEN3C's order
            buffer 0 colour, buffer 0 mask, buffer 1 colour, buffer 1 mask (zeros where missing).
        """
        sigma_data = self.scheduler.config.sigma_data
        with self._stage("vae") as vae:
            device = self._execution_device
            # The tokenizer is causal: the first latent of GEN3C's zero-padded 121-frame encode
            # depends on the first frame only, so the image alone gives the same latent.
            first = encode_video(vae, image[None, :, None].to(device), sigma_data=sigma_data)
            buffer_latents = encode_buffers(
                vae, buffer_colors, buffer_masks, sigma_data=sigma_data, chunk_frames=self.memory.vae_chunk_frames,
                noise_aug_strength=noise_aug_strength, noise_generator=noise_generator,
            ).cpu()  # fmt: skip
        image_latent = torch.zeros(buffer_latents.shape[0], configs.LATENT_CHANNELS, *buffer_latents.shape[2:])
        image_latent[:, :, :1] = first.cpu()
        return image_latent, buffer_latents

    # -- 4. sampling -------------------------------------------------------------------

    def prepare_noise(
        self,
        shape: tuple[int, ...],
        device: torch.device,
        *,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        chunk: int = 0,
    ) -> tuple[Tensor, Tensor]:
        """The sampler's initial noise and the first frame's augmentation noise, N(0, 1), each
        ``shape`` (1, 16, T', h, w) float32 on ``device``.

        With ``seed`` (None: 1): the initial noise from a CPU torch generator seeded with it (the
        same on every device), its (``chunk`` + 1)-th draw of ``shape``: chunk k of a long video
        continues the stream of the chunks before it, as GEN3C's chunks continue its once-seeded
        global generator (``gen3c_single_image.py``, ``model_v2w.py``); and the augmentation noise
        from numpy's ``RandomState(seed)``, as GEN3C's ``misc.arch_invariant_rand``, the same in
        every chunk (as GEN3C's). With ``generator``: both from it, on its device, the initial
        noise first: reproducible for the same generator state, but not GEN3C's stream.
        """
        if generator is not None:
            initial = torch.randn(shape, generator=generator, device=generator.device, dtype=torch.float32)
            augment = torch.randn(shape, generator=generator, device=generator.device, dtype=torch.float32)
            return initial.to(device), augment.to(device)
        seed = 1 if seed is None else seed
        stream = torch.Generator("cpu").manual_seed(seed)
        initial = torch.empty(shape, dtype=torch.float32)
        for _ in range(chunk + 1):  # the earlier chunks' draws, each overwritten (one tensor kept)
            torch.randn(shape, generator=stream, out=initial)
        augment = torch.from_numpy(np.random.RandomState(seed).standard_normal(shape).astype(np.float32))
        return initial.to(device), augment.to(device)

    @staticmethod
    def buffer_noise_generator(*, seed: int | None = None, generator: torch.Generator | None = None, chunk: int = 0) -> torch.Generator:
        """Where ``noise_aug_strength``'s noise comes from: ``generator`` itself (drawn before the
        sampler's noise), or a CPU generator of its own for ``seed`` (None: 1) and ``chunk``, so
        each chunk's buffer noise depends on these two alone (a resumed chunk gets the same) and
        leaves the sampler's noise as it is without it. GEN3C draws it from a CUDA generator that
        no CPU stream reproduces."""
        if generator is not None:
            return generator
        state = np.random.SeedSequence([1 if seed is None else seed, chunk, BUFFER_NOISE_STREAM]).generate_state(2, np.uint32)
        return torch.Generator("cpu").manual_seed(int(state[0]) << 32 | int(state[1]))

    def denoise(
        self,
        image_latent: Tensor,
        buffer_latents: Tensor,
        prompt_embeds: Tensor,
        negative_prompt_embeds: Tensor | None,
        *,
        guidance: float,
        num_steps: int,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        fps: float = configs.FPS,
        condition_augment_sigma: float = configs.CONDITION_AUGMENT_SIGMA,
        guidance_every: int = 1,
        guidance_batch: bool = False,
        callback: Callable[[int, float, Tensor], None] | None = None,
        callback_on_step_end: Callable[..., dict] | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
        chunk: int = 0,
    ) -> Tensor:
        """GEN3C's sampling loop with ``self.scheduler`` (any of :data:`gen3c.schedulers.SAMPLERS`);
        returns the clean latents (1, 16, T', h, w) in float32 (those reached so far when a
        callback sets ``pipe._interrupt``).

        Args:
            seed, generator, chunk: where the noise comes from (:meth:`prepare_noise`).
            callback, callback_on_step_end, callback_on_step_end_tensor_inputs: as :meth:`__call__`.
            guidance_every: run the unconditional branch on every ``k``-th step only (steps 0,
                k, 2k, …) and reuse its last guidance direction in between (an approximation;
                1: every step, GEN3C's). The direction is kept as a difference of denoised
                estimates, ``c_out·(cond − uncond)``, and turned back into the model's output
                scale at each step.
            guidance_batch: run the conditional and unconditional branches as one batch-2
                forward (the same result up to float rounding).
        """
        scheduler = self.scheduler
        device, dtype = self._execution_device, self.transformer_dtype
        shape = tuple(image_latent.shape)
        scheduler.set_timesteps(num_steps, device=device)
        scheduler.set_begin_index(0)
        note_first_order_run(scheduler, num_steps, stacklevel=3)
        if guidance != 0 and guidance_every > 1 and num_steps == 1:
            note(
                f"--guidance_every {guidance_every}: a run of 1 step runs both branches at its one step, as 1 does: it changes "
                "nothing; sample more steps, or drop --guidance_every",
                stacklevel=3,
            )
        timesteps, sigmas = scheduler.timesteps, scheduler.sigmas

        noise, aug_noise = self.prepare_noise(shape, device, seed=seed, generator=generator, chunk=chunk)
        xt = noise * scheduler.init_noise_sigma
        gt = image_latent.to(device).contiguous()
        buffer_latents = buffer_latents.to(device).contiguous()
        text = prompt_embeds.to(device, dtype).contiguous()
        neg_text = negative_prompt_embeds.to(device, dtype).contiguous() if negative_prompt_embeds is not None else None
        if context_parallel_degree(self.transformer) > 1:
            # The ranks of a multi-GPU run share one DiT: give every rank rank 0's conditions and
            # noise (a seed draws the same noise everywhere; a rank's own generator need not).
            broadcast_from_main(gt, buffer_latents, text, xt, aug_noise, *([] if neg_text is None else [neg_text]))
        aug_sigma = torch.tensor(condition_augment_sigma, dtype=torch.float32)
        augmented = scheduler.precondition_inputs(gt + aug_noise * aug_sigma, aug_sigma)

        indicator = condition_indicator(1, shape[2], device=device)
        condition = condition_channels(indicator, buffer_latents.to(device)).to(dtype)
        # The unconditional branch keeps the condition mask and drops the buffers (model_gen3c.py).
        uncondition = condition_channels(indicator, torch.zeros_like(buffer_latents, device=device)).to(dtype)
        uncond_text = neg_text if neg_text is not None else text
        padding_mask = torch.zeros(1, 1, shape[3], shape[4], device=device, dtype=dtype)
        sigma_data = scheduler.config.sigma_data
        # The scheduler reads a v-prediction model's output with −c_out (diffusers' EDM schedulers).
        out_sign = -1.0 if scheduler.config.prediction_type == "v_prediction" else 1.0

        def net(x: Tensor, t: Tensor, embeds: Tensor, cond: Tensor, branch: str) -> Tensor:
            with self._branch(branch):
                out = self.transformer(
                    hidden_states=x, timestep=t.expand(x.shape[0]), encoder_hidden_states=embeds, fps=fps,
                    condition_mask=cond, padding_mask=padding_mask, return_dict=False,
                )[0]  # fmt: skip
            return out.float()

        guide_denoised = None  # c_out·(cond − uncond) of the last step that ran both branches
        self._interrupt, self._num_timesteps = False, len(timesteps)
        # The first step whose latents diverged (len(timesteps): none), kept on the device: read once after the loop, no sync per step
        diverged_at = torch.full((), len(timesteps), dtype=torch.long, device=device)
        limit = diverged_limit(float(sigmas.max()))  # (the schedule's σ_max: a checkpoint's may start above GEN3C's 80)
        if self.step_cache is not None and guidance != 0:  # (set on the pipeline, apart from these arguments)
            check_step_cache_guidance(self.step_cache.spec, guidance_every, guidance_batch)
        if self.step_cache is not None:
            self.step_cache.begin(self.transformer, num_steps, sampler_name(scheduler))
        try:
            with self._stage("transformer"), self.progress_bar(total=num_steps) as bar:
                for i, t in enumerate(timesteps):
                    if self.interrupt:
                        break
                    self._current_timestep = t
                    sigma = sigmas[i].to(device)
                    ind = indicator if condition_augment_sigma < float(sigmas[i]) else torch.zeros_like(indicator)
                    c_in = 1.0 / torch.sqrt(sigma**2 + sigma_data**2)
                    c_skip = sigma_data**2 / (sigma**2 + sigma_data**2)
                    c_out = out_sign * sigma * sigma_data / torch.sqrt(sigma**2 + sigma_data**2)
                    new_xt = ind * (augmented / c_in) + (1 - ind) * xt
                    x_in = scheduler.scale_model_input(new_xt, t).to(dtype)
                    t_in = t.reshape(1).to(dtype)
                    with torch.no_grad():
                        both = guidance != 0 and (guide_denoised is None or i % guidance_every == 0)
                        if both and guidance_batch:
                            out, out_uncond = net(
                                torch.cat([x_in, x_in]), t_in, torch.cat([text, uncond_text]),
                                torch.cat([condition, uncondition]), "cfg",
                            ).chunk(2)  # fmt: skip
                        else:
                            out = net(x_in, t_in, text, condition, "cond")
                            if both:
                                out_uncond = net(x_in, t_in, uncond_text, uncondition, "uncond")
                        if both:
                            guide = out - out_uncond
                            guide_denoised = c_out * guide
                        elif guidance != 0:
                            guide = guide_denoised / c_out
                        if guidance != 0:
                            out = out + guidance * guide
                    # In the conditioned frame, an output whose denoised estimate is the clean latent.
                    out = ind * ((gt - c_skip * new_xt) / c_out) + (1 - ind) * out
                    xt = scheduler.step(out, t, new_xt, return_dict=False)[0].float()
                    diverged = ~(xt.abs().amax() <= limit) & (diverged_at == len(timesteps))  # (NaN too)
                    diverged_at = torch.where(diverged, i, diverged_at)
                    if callback_on_step_end is not None:
                        tensors = {"latents": xt, "prompt_embeds": text, "negative_prompt_embeds": uncond_text if guidance != 0 else None}
                        tensors = self._call_step_end(callback_on_step_end, callback_on_step_end_tensor_inputs, i, t, tensors)
                        xt, text = tensors["latents"], tensors["prompt_embeds"]
                        uncond_text = tensors["negative_prompt_embeds"] if guidance != 0 else text
                    if callback is not None:
                        callback(i, float(sigmas[i]), xt)
                    bar.update()
        finally:
            self._current_timestep = None
            if self.step_cache is not None:
                self.step_cache.end()
        if (step := int(diverged_at)) < len(timesteps):
            raise _diverged(guidance, step, len(timesteps), limit)
        return xt

    def _call_step_end(
        self, function: Callable[..., dict], names: Sequence[str], step: int, timestep: Tensor, tensors: dict[str, Tensor | None]
    ) -> dict[str, Tensor | None]:
        """Call diffusers' ``callback_on_step_end(pipe, step, timestep, {name: tensor})``; the
        tensors it returns (under any of :attr:`_callback_tensor_inputs`) replace the sampler's."""
        returned = function(self, step, timestep, {name: tensors[name] for name in names})
        if not isinstance(returned, dict):
            raise Gen3cInputError(
                f"callback_on_step_end returned {describe_value(returned)}: return a dict (the callback_kwargs it was given, changed or not)"
            )
        replaced = dict(tensors)
        for name in self._callback_tensor_inputs:
            if name not in returned or tensors[name] is None:
                continue
            new, old = returned[name], tensors[name]
            if not isinstance(new, Tensor) or tuple(new.shape) != tuple(old.shape):
                raise Gen3cInputError(
                    f"callback_on_step_end returned {name} as {_describe(new)}: return a tensor of its shape {tuple(old.shape)}"
                )
            replaced[name] = new.to(old.device, old.dtype)
        return replaced

    def _branch(self, name: str):
        """The step cache's context for a forward of branch ``name`` (nothing without one)."""
        return nullcontext() if self.step_cache is None else self.step_cache.branch(name)

    # -- the call ----------------------------------------------------------------------

    @torch.no_grad()
    def __call__(
        self,
        image: Tensor,
        buffer_colors: Tensor,
        buffer_masks: Tensor,
        prompt: str = "",
        negative_prompt: str | None = None,
        guidance: float | None = None,
        num_steps: int | None = None,
        seed: int | None = None,
        fps: float = configs.FPS,
        condition_augment_sigma: float = configs.CONDITION_AUGMENT_SIGMA,
        guidance_every: int = 1,
        guidance_batch: bool = False,
        max_sequence_length: int = configs.MAX_SEQUENCE_LENGTH,
        output_type: str = "pt",
        return_dict: bool = True,
        callback: Callable[[int, float, Tensor], None] | None = None,
        generator: torch.Generator | None = None,
        callback_on_step_end: Callable[..., dict] | PipelineCallback | MultiPipelineCallbacks | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
        chunk: int = 0,
        noise_aug_strength: float = 0.0,
        note_unit_range: bool = True,
    ) -> Gen3cPipelineOutput | tuple:
        """Generate a video.

        Args:
            image: (3, H, W) in [−1, 1], the first frame.
            buffer_colors: (T, NB, 3, H, W) in [−1, 1], the 3D-cache renders (NB = 1 or 2, newest first).
            buffer_masks: (T, NB, 1, H, W) in {0, 1}, where each render is valid.
            prompt: text prompt (GEN3C's scripts use the empty prompt).
            negative_prompt: text of the unconditional branch; None is GEN3C's default negative
                prompt, "" reuses ``prompt`` (as GEN3C does for an empty negative prompt).
            guidance: GEN3C's guidance: ``cond + guidance·(cond − uncond)``; 0 skips the
                unconditional forward. None: the checkpoint's own (:attr:`sampling_defaults`; a
                distilled student: 0), else GEN3C's 1.
            num_steps: sampler steps; None: the checkpoint's own (a distilled student's few),
                else GEN3C's 35.
            seed: random seed, 0 … 2³² − 1 (None: 1, unless ``generator`` is given); the same
                seed gives the same video (on any device), with GEN3C's own noise.
            fps: frame rate the DiT's positional embedding is told (GEN3C: 24).
            condition_augment_sigma: noise level of the first-frame condition (GEN3C: 0.001).
            guidance_every, guidance_batch: how the two branches of guidance run (:meth:`denoise`).
            output_type: "pt" (frames (T, 3, H, W) in [−1, 1]), "np" / "pil" (diffusers' layouts),
                or "latent" (the clean latents); see :class:`Gen3cPipelineOutput`.
            callback: ``callback(step, sigma, latents)`` after each sampler step (gen3c's own;
                ``sigma`` is the step's starting σ). With ``callback_on_step_end`` both run, this
                one second, seeing the latents that callback returned.
            generator: a ``torch.Generator`` (diffusers' way) instead of ``seed``: all the noise is
                drawn from it on its device, so the same generator state gives the same video,
                but not the video of any ``seed`` (GEN3C draws part of its noise with numpy).
                Giving both is refused; so is a list (a call makes one video).
            callback_on_step_end: diffusers' ``fn(pipe, step, timestep, callback_kwargs) -> dict``
                after each sampler step, with ``timestep`` from ``pipe.scheduler.timesteps`` and
                ``callback_kwargs`` holding the tensors named in
                ``callback_on_step_end_tensor_inputs``; tensors it returns under those names
                replace the sampler's (``latents`` (1, 16, T', h, w) float32; ``prompt_embeds``,
                ``negative_prompt_embeds`` (1, L, D), the latter None when ``guidance=0``).
                Setting ``pipe._interrupt = True`` stops before the next step (``pipe.interrupt``).
                A diffusers ``PipelineCallback`` brings its own ``tensor_inputs``.
            callback_on_step_end_tensor_inputs: names from :attr:`_callback_tensor_inputs`.
            chunk: which chunk of a long video this call makes (0: the first, or the whole video):
                with ``seed``, its initial noise is the seed's (chunk + 1)-th draw, as GEN3C's
                chunks continue one seeded stream (:meth:`prepare_noise`). Refused with
                ``generator`` (which continues its own stream from call to call).
            noise_aug_strength: GEN3C's ``--noise_aug_strength`` (default 0: none): Gaussian noise
                on the buffer colours before they are encoded, of std ``(NB − 1 − b) · strength``
                for buffer b of NB, so with two buffers the newest (a long video's last generated
                frame) is noised and the older one is not; one buffer is never noised
                (:func:`encode_buffers`, :meth:`buffer_noise_generator`).
            note_unit_range: note an ``image`` or ``buffer_colors`` with no value below 0: [0, 1]
                colours (diffusers' and torchvision's) pass the range check but come out washed
                out, black as mid-grey. False where they are known to be [−1, 1] (a bright photo
                read from a file, the cache's renders of it).

        Returns:
            :class:`Gen3cPipelineOutput` (or ``(frames,)`` with ``return_dict=False``), on the CPU.
        """
        # 1. Check inputs
        guidance = float(self.sampling_defaults.get("guidance", 1.0)) if guidance is None else guidance
        num_steps = int(self.sampling_defaults.get("num_steps", configs.NUM_STEPS)) if num_steps is None else num_steps
        if isinstance(callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs
        self.check_call_arguments(
            seed, generator, callback, callback_on_step_end, callback_on_step_end_tensor_inputs, output_type, chunk,
            fps=fps, condition_augment_sigma=condition_augment_sigma, max_sequence_length=max_sequence_length,
            noise_aug_strength=noise_aug_strength,
        )
        self.check_inputs(image, buffer_colors, buffer_masks, guidance, num_steps, guidance_every, seed, note_unit_range)
        sampler = sampler_name(self.scheduler)
        note_unlike_distillation(self.model_info, sampler, int(num_steps), float(guidance), self.name_or_path, stacklevel=3)
        seed = None if seed is None else int(seed)  # numpy's integers (np.arange's): torch's manual_seed takes only int
        # 2. Encode the prompts (T5, where the cache lacks them, staged once for both)
        negative = None
        if guidance != 0:
            negative = configs.DEFAULT_NEGATIVE_PROMPT if negative_prompt is None else negative_prompt
        prompt_embeds, *negative_embeds = self._encode_prompts(
            [(prompt, False)] + ([(negative, True)] if negative else []), max_sequence_length
        )
        negative_prompt_embeds = None if guidance == 0 else negative_embeds[0] if negative_embeds else prompt_embeds
        # 3. Encode the conditions (first frame, buffers)
        with self._out_of_memory_as_error("encoding the conditions with the tokenizer"):
            # (a generator's stream moves only where a buffer is noised: encode_buffers draws nothing for a lone buffer)
            image_latent, buffer_latents = self.encode_conditions(
                image.float(), buffer_colors.float(), buffer_masks.float(), noise_aug_strength=float(noise_aug_strength),
                noise_generator=self.buffer_noise_generator(seed=seed, generator=generator, chunk=int(chunk)) if noise_aug_strength > 0 else None,
            )  # fmt: skip
        if noise_aug_strength > 0 and not bool(torch.isfinite(buffer_latents).all()):  # (else a NaN run the sampler would blame on --guidance or the weights)
            raise _non_finite_buffers(float(noise_aug_strength))
        # 4. Sample
        with self._out_of_memory_as_error("sampling with the DiT"):
            latents = self.denoise(
                image_latent, buffer_latents, prompt_embeds, negative_prompt_embeds, guidance=guidance,
                num_steps=int(num_steps), seed=seed, generator=generator, fps=fps,
                condition_augment_sigma=condition_augment_sigma, guidance_every=int(guidance_every),
                guidance_batch=guidance_batch, callback=callback, callback_on_step_end=callback_on_step_end,
                callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs, chunk=int(chunk),
            )  # fmt: skip
        # 5. Decode
        if output_type == "latent":
            frames = latents.cpu()
        else:
            with self._out_of_memory_as_error("decoding with the tokenizer"):
                with self._stage("vae") as vae:
                    video = decode_latents(
                        vae,
                        latents,
                        sigma_data=self.scheduler.config.sigma_data,
                        chunk_frames=self.memory.vae_chunk_frames,
                    )
                frames = video[0].permute(1, 0, 2, 3).float().clamp(-1, 1).cpu()  # (a float32 copy on the GPU first)
                del video
            if output_type != "pt":
                # diffusers' np / PIL video layouts, from its (B, 3, T, H, W) in [−1, 1].
                frames = self.video_processor.postprocess_video(frames.permute(1, 0, 2, 3)[None], output_type=output_type)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (frames,)
        return Gen3cPipelineOutput(frames=frames)


# -- the conditioning layout, shared by sampling and training --------------------------------


def encode_buffers(
    vae: AutoencoderKLCosmos,
    buffer_colors: Tensor,
    buffer_masks: Tensor,
    *,
    sigma_data: float = 0.5,
    chunk_frames: int | None = None,
    noise_aug_strength: float = 0.0,
    noise_generator: torch.Generator | None = None,
) -> Tensor:
    """The 64 buffer channels of GEN3C's DiT input, on the tokenizer's device.

    Args:
        buffer_colors: (T, NB, 3, H, W) in [−1, 1], newest buffer first (NB ≤ 2).
        buffer_masks: (T, NB, 1, H, W) in {0, 1}; each mask video is encoded as RGB ``mask·2 − 1``.
        chunk_frames: latent frames per tokenizer chunk (exact chunked encoding).
        noise_aug_strength: buffer b's colour gets N(0, 1) noise from ``noise_generator`` (on its
            device) times ``(NB − 1 − b) · noise_aug_strength``, not clipped, masks untouched, as
            GEN3C's ``Cache3D_Buffer.render_cache`` (``--noise_aug_strength``).
    Returns:
        (1, 64, T', h, w): buffer 0 colour, buffer 0 mask, buffer 1 colour, buffer 1 mask (16
        channels each), zeros for a missing buffer.
    """
    device = next(vae.parameters()).device
    parts = []
    num_buffers = buffer_colors.shape[1]
    for b in range(num_buffers):
        colour = buffer_colors[:, b].permute(1, 0, 2, 3)[None].to(device).float()
        std = (num_buffers - 1 - b) * noise_aug_strength
        if std > 0:
            if noise_generator is None:
                raise ValueError("encode_buffers: noise_aug_strength > 0 needs a noise_generator")
            noise = torch.randn(colour.shape, generator=noise_generator, device=noise_generator.device, dtype=torch.float32)
            colour = colour + std * noise.to(device)
            del noise
        mask = (buffer_masks[:, b].permute(1, 0, 2, 3)[None].to(device).float() * 2 - 1).expand(-1, 3, -1, -1, -1)
        parts.append(encode_video(vae, colour, sigma_data=sigma_data, chunk_frames=chunk_frames))
        parts.append(encode_video(vae, mask, sigma_data=sigma_data, chunk_frames=chunk_frames))
    zeros = torch.zeros_like(parts[0])
    parts += [zeros] * (2 * configs.NUM_BUFFERS - len(parts))
    return torch.cat(parts, dim=1)


def condition_indicator(
    batch: int, num_latent_frames: int, num_condition_frames: int = 1, device: str | torch.device | None = None
) -> Tensor:
    """(B, 1, T', 1, 1): 1 on the conditioned latent frames (GEN3C: the first), 0 elsewhere."""
    indicator = torch.zeros(batch, 1, num_latent_frames, 1, 1, device=device)
    indicator[:, :, :num_condition_frames] = 1.0
    return indicator


def condition_channels(indicator: Tensor, buffer_latents: Tensor) -> Tensor:
    """The DiT's ``condition_mask`` argument: ``[condition mask (1) | buffers (64)]``.

    Args:
        indicator: (B, 1, T', 1, 1) from :func:`condition_indicator`.
        buffer_latents: (B, 64, T', h, w) from :func:`encode_buffers` (zeros: no buffers, as
            the unconditional branch of guidance).
    Returns:
        (B, 65, T', h, w); the DiT appends it to the 16-channel noisy latent (81 channels).
    """
    B, _, T, h, w = buffer_latents.shape
    return torch.cat([indicator.to(buffer_latents.device, buffer_latents.dtype).expand(B, 1, T, h, w), buffer_latents], dim=1)


# -- the generator adapter ------------------------------------------------------------------


class Gen3cGenerator:
    """The GEN3C model as a generator of :mod:`gen3c.pipelines.camera_video`.

    ``cache.render(cameras, depth=False, device=..., output_device=...)`` must return an object with ``colors``
    (T, NB, 3, H, W) in [−1, 1] and ``masks`` (T, NB, 1, H, W) in {0, 1}, newest buffer first.

    Args:
        pipeline: a loaded :class:`Gen3cPipeline`.
        prompt, negative_prompt, guidance, num_steps, seed, guidance_every, guidance_batch: as
            :meth:`Gen3cPipeline.__call__` (``guidance`` / ``num_steps`` None: the checkpoint's own).
        chunk_frames: frames of one generation (121 for the 7B model).
        fps: the frame rate the DiT is told (:meth:`Gen3cPipeline.__call__`); a run sets it to its
            ``--fps`` (:func:`~gen3c.pipelines.request.run_request`), as GEN3C's scripts pass
            their ``--fps`` to the model as well as to the video writer.
        noise_aug_strength: GEN3C's ``--noise_aug_strength`` (:meth:`Gen3cPipeline.__call__`): noise
            on the newer of two buffers' colours, so from a long single-image video's chunk 2 on.
    """

    name = "gen3c"
    needs_buffer_depth = False  # GEN3C conditions on colour and mask only
    #: The ``--speed`` preset it was loaded with (:func:`~gen3c.pipelines.loading.load_generator` sets it).
    speed: str | None = None
    #: The model's own ``num_steps`` / ``guidance`` (its ``gen3c_model.json``) and the checkpoint
    #: it was loaded from (MagCache's ratios are kept for it), for :meth:`configure`.
    model_defaults: dict[str, Any] = {}  # noqa: RUF012 (replaced, never changed in place)
    checkpoint: str | None = None
    #: The model settings (:data:`~gen3c.pipelines.request.MODEL_GENERATOR_SETTINGS`) it was loaded
    #: with, the model as ``model_source`` (:func:`~gen3c.pipelines.request.model_source`), which
    #: :meth:`configure` cannot change (load_generator sets them).
    loaded_with: dict[str, Any] = {}  # noqa: RUF012 (replaced, never changed in place)
    #: How :meth:`generate` words its refusals and notes (None: as the command line does, for
    #: callers that respell them for their surface): :func:`~gen3c.pipelines.loading.load_generator`
    #: sets its keyword arguments' words, which a caller of it reads (``low_memory=True``).
    message_spelling: Callable[[str], str] | None = None
    #: What ``--max_gpu_memory`` chose the memory plan for at load: the frame size (H, W) and
    #: whether its estimate counts T5 encoding a prompt (load_generator sets it); None: no plan chosen.
    memory_planned_for: tuple[tuple[int, int], bool] | None = None

    def __init__(
        self,
        pipeline: Gen3cPipeline,
        *,
        prompt: str = "",
        negative_prompt: str | None = None,
        guidance: float | None = 1.0,
        num_steps: int | None = configs.NUM_STEPS,
        seed: int = 1,
        chunk_frames: int = configs.CHUNK_FRAMES,
        guidance_every: int = 1,
        guidance_batch: bool = False,
        fps: float = configs.FPS,
        noise_aug_strength: float = 0.0,
    ) -> None:
        self.pipeline = pipeline
        self.prompt = prompt
        self.negative_prompt = negative_prompt
        self.guidance = guidance
        self.num_steps = num_steps
        self.seed = seed
        self.chunk_frames = chunk_frames
        self.guidance_every = guidance_every
        self.guidance_batch = guidance_batch
        self.fps = fps
        self.noise_aug_strength = noise_aug_strength

    def __repr__(self) -> str:
        shown = {"speed": self.speed, "num_steps": self.num_steps, "guidance": self.guidance, "seed": self.seed,
                 "chunk_frames": self.chunk_frames, "prompt": self.prompt, "device": str(self.pipeline._execution_device)}  # fmt: skip
        return f"Gen3cGenerator({', '.join(f'{k}={v!r}' for k, v in shown.items())})"

    @property
    def render_device(self) -> torch.device | None:
        """The GPU the model computes on, where the cache is splatted too (about 20× faster than
        a 16-thread CPU; the renders come back to the cache's device a few frames at a time);
        None on a CPU: the cache renders where it is."""
        device = self.pipeline._execution_device
        return device if device.type == "cuda" else None

    @property
    def render_output_device(self) -> torch.device | None:
        """Where the renders are handed over: the GPU they are splatted on when the memory plan
        leaves room for them there (:func:`gen3c.models.memory.renders_stay_on_gpu`), so the
        tokenizer encodes them without a copy to CPU memory and back; else None (CPU memory)."""
        return self.render_device if renders_stay_on_gpu(self.pipeline.memory) else None

    def settings(self) -> dict[str, Any]:
        """What it samples with, read from the loaded pipeline: the settings in effect after the
        ``--speed`` preset, the model's own defaults, the flags given and any kernel fallback
        (a run's ``NAME_run.json`` records them as ``generator_settings``), and the checkpoint: the
        folder its weights were read from and the sha256 of its ``checksums.json``
        (:func:`~gen3c.models.verify.checksums_sha256`; None where it has none), and the sha256 of
        the LoRA adapter's weights (None without one)."""
        from gen3c.models.speed import Fp8Linear
        from gen3c.models.verify import checksums_sha256

        pipe, transformer = self.pipeline, self.pipeline.transformer
        defaults = pipe.sampling_defaults
        blocks = transformer.transformer_blocks
        return {
            "speed": self.speed,
            "sampler": sampler_name(pipe.scheduler),
            "num_steps": int(defaults.get("num_steps", configs.NUM_STEPS) if self.num_steps is None else self.num_steps),
            "guidance": float(defaults.get("guidance", 1.0) if self.guidance is None else self.guidance),
            "guidance_every": int(self.guidance_every),
            "guidance_batch": bool(self.guidance_batch),
            "step_cache": "none" if pipe.step_cache is None else str(pipe.step_cache.spec),
            "noise_aug_strength": float(self.noise_aug_strength),
            # the kernel installed ("sdpa" after a fallback), a diffusers backend, or "diffusers" (its default processor)
            "attention": getattr(transformer, "_gen3c_attention_kernel", "diffusers"),
            "compile": any(getattr(block, "_compiled_call_impl", None) is not None for block in blocks),
            "fp8_matmul": any(isinstance(module, Fp8Linear) for module in blocks.modules()),
            # where the DiT's weights live between forwards, and whether they are stored in float8 (--fp8, --low_memory);
            # computing on the CPU, every plan leaves them where they compute (loading.load_generator's note says so)
            "dit_memory": "resident" if torch.device(pipe._execution_device).type == "cpu"
            else "streamed" if pipe.memory.group_offload else "offloaded" if "transformer" in pipe.memory.offload else "resident",
            "fp8_weights": bool(pipe.memory.fp8),
            "device": str(pipe._execution_device),
            "dtype": str(pipe.transformer_dtype).removeprefix("torch."),
            "num_gpus": context_parallel_degree(transformer),
            "checkpoint": pipe.name_or_path,
            "checkpoint_checksums_sha256": checksums_sha256(pipe.name_or_path),
            "lora_sha256": pipe.lora_sha256,
        }

    def configure(self, options: dict[str, Any]) -> None:
        """Take the sampling-only settings of a request's generator options (steps, guidance,
        sampler, step cache…) without reloading (:func:`gen3c.pipelines.loading.configure_generator`);
        model settings other than the loaded ones are refused (they need a new load_generator), and
        so are prompts T5 must encode beside a plan ``max_gpu_memory`` chose without it
        (:meth:`memory_plan_misfit`: ``gen3c.generate`` and batches load again; this cannot).
        Refusals and notes name the settings as ``options``' keys (``num_steps=``), not as flags."""
        from gen3c.pipelines.loading import configure_in_keywords

        configure_in_keywords(self, options)

    def memory_plan_misfit(self, height: int, width: int) -> str | None:
        """Why the memory plan ``--max_gpu_memory`` chose at load does not fit a run at this frame
        size with the generator's prompts (another size; T5 left out of the estimate, and a prompt
        the prompt cache lacks, which T5 encodes on the GPU); None where it fits or no plan was
        chosen. Such a run needs a new load, whose plan is chosen for it."""
        if self.memory_planned_for is None:
            return None
        (planned_h, planned_w), with_text_encoder = self.memory_planned_for
        if (height, width) != (planned_h, planned_w):
            return f"--max_gpu_memory chose the memory plan for {planned_h}x{planned_w} frames, not {height}x{width}"
        guidance = float(self.pipeline.sampling_defaults.get("guidance", 1.0)) if self.guidance is None else self.guidance
        if not with_text_encoder and self.pipeline.text_encoder_bytes(prompts_of(self.prompt, self.negative_prompt, guidance)):
            return "--max_gpu_memory chose the memory plan for prompts the prompt cache holds, and T5 must encode this one"
        return None

    def out_of_memory_error(self, stage: str) -> Gen3cMemoryError:
        """The error for running out of accelerator memory while ``stage`` of a run outside the
        model's own stages (rendering the 3D cache, handing frames over: :func:`~gen3c.pipelines.request.run_request`),
        naming the flag of its memory plan to try, in :attr:`message_spelling`'s words."""
        error = self.pipeline.out_of_memory_error(stage)
        if self.message_spelling is not None:
            error.args = (self.message_spelling(str(error)),)
        return error

    def check_frame_size(self, height: int, width: int) -> None:
        """Refuse a working resolution the model cannot take (:meth:`Gen3cPipeline.check_frame_size`)."""
        self.pipeline.check_frame_size(height, width)

    def check_num_frames(self, num_frames: int) -> None:
        """Each call makes one chunk of ``chunk_frames`` frames; longer videos are made chunk by
        chunk by :func:`gen3c.pipelines.camera_video.generate_video`."""
        if num_frames != self.chunk_frames:
            # (Reached from generate() alone, a Python call: a run's counts are checked before, in its own words.)
            c = self.chunk_frames
            raise Gen3cInputError(
                f"a gen3c chunk has {c} frames, not {num_frames}: pass {c} cameras (or buffers of {c} frames); a longer "
                f"path ({2 * c - 1}, {3 * c - 2}, … cameras) goes to generate_video, which makes it chunk by chunk"
            )

    def generate(
        self,
        cache: Any,
        cameras: Any,
        first_frame: Tensor | None = None,
        *,
        buffers: Any = None,
        progress: Callable[[int], None] | None = None,
        chunk: int = 0,
    ) -> Tensor:
        """Render ``cache`` along ``cameras`` (unless ``buffers`` are given) and generate the video.

        Args:
            first_frame: (3, H, W) in [−1, 1], the conditioning image (GEN3C: the source image).
            progress: called after each sampler step with its share of ``len(cameras)`` (whole
                numbers, 0 when there are more steps than frames), so a bar of ``len(cameras)``
                units fills exactly over the run; None draws nothing (the pipeline's own tqdm
                bar is off in this call).
            chunk: which chunk of the video this is: it starts from the seed's (chunk + 1)-th
                noise draw (:meth:`Gen3cPipeline.prepare_noise`).
        Returns:
            (T, 3, H, W) float32 in [−1, 1].
        """
        check_step_progress(progress)
        if first_frame is None:
            raise Gen3cInputError(
                "the gen3c generator needs the first frame (the source image) to condition on"
            )
        # Named as this call names it (the pipeline's refusal said "image must be a (3, H, W) tensor"),
        # before the cache is rendered for it.
        from gen3c.pipelines.camera_video import check_first_frame

        given = getattr(buffers, "colors", None)
        size = tuple(given.shape[-2:]) if isinstance(given, Tensor) else (getattr(cameras, "height", None), getattr(cameras, "width", None))
        if None not in size:  # (no Cameras: cache.render refuses them)
            check_first_frame(first_frame, *size)
        if buffers is None:
            spelling = nullcontext() if self.message_spelling is None else spelled(self.message_spelling)
            with spelling, self.pipeline._out_of_memory_as_error("rendering 3D cache"):  # (the progress stage's name: camera_video)
                buffers = cache.render(cameras, depth=False, device=self.render_device, output_device=self.render_output_device)
        colors, masks = buffers.colors, buffers.masks
        T = colors.shape[0]
        self.check_num_frames(T)
        if colors.shape[1] > configs.NUM_BUFFERS:
            colors, masks = colors[:, : configs.NUM_BUFFERS], masks[:, : configs.NUM_BUFFERS]

        callback = None
        if progress is not None:

            def callback(step: int, sigma: float, latents: Tensor) -> None:
                # Whole frames that add up to exactly T over the run (T / steps per step, summed
                # in floats, ends a hair short: a bar left at 16/17).
                steps = self.pipeline.num_timesteps
                progress(T * (step + 1) // steps - T * step // steps)

        # The pipeline's own tqdm bar stays off: what the caller passes as ``progress`` is the
        # bar (generate_video draws nothing without a progress factory, as a script expects). A
        # user's own set_progress_bar_config is the pipeline's again afterwards, for its own calls.
        config = dict(getattr(self.pipeline, "_progress_bar_config", {}))
        self.pipeline.set_progress_bar_config(**{**config, "disable": True})
        spelling = nullcontext() if self.message_spelling is None else spelled(self.message_spelling)
        try:
            with spelling:
                out = self.pipeline(
                    image=first_frame, buffer_colors=colors, buffer_masks=masks, prompt=self.prompt,
                    negative_prompt=self.negative_prompt, guidance=self.guidance, num_steps=self.num_steps, seed=self.seed,
                    guidance_every=self.guidance_every, guidance_batch=self.guidance_batch, callback=callback, chunk=chunk,
                    fps=self.fps, noise_aug_strength=self.noise_aug_strength,
                    note_unit_range=False,  # the source's image, checked (and noted) where it came in, and its renders
                )  # fmt: skip
                if not bool(torch.isfinite(out.frames).all()):  # (they were written as a black video, without a word)
                    raise _non_finite_frames(self.guidance, self.noise_aug_strength)
        finally:
            self.pipeline.set_progress_bar_config(**config)
        # GEN3C's video is uint8 by truncation: the frames (and a long video's next conditioning
        # frame, camera_video.as_saved) take its values, which the video writer keeps exactly.
        return on_cosmos_uint8_grid(out.frames)


def note_unlike_distillation(
    info: dict[str, Any], sampler: str, num_steps: int, guidance: float, checkpoint: str | None = None, stacklevel: int = 1
) -> None:
    """Note a run of a distilled student (``info``: its ``gen3c_model.json``; ``checkpoint``: its
    folder, which the note names, as the run record does: an eval compares several models) with
    other steps, guidance or sampler than it was distilled for: it learnt Euler steps on its own
    ``num_steps`` grid, one forward each with the teacher's guidance absorbed, so elsewhere it
    samples what it never learnt (another grid; guidance applied on top of the guidance it holds).
    Its own settings are the default; another is allowed (a sweep over step counts is a fair
    experiment), but said."""
    from gen3c.models.packaged import distilled_steps

    steps = distilled_steps(info)
    if steps is None:
        return
    own_guidance = float(info.get("guidance", 0.0))
    other = [flag for flag, differs in ((f"--num_steps {num_steps}", num_steps != steps), (f"--guidance {guidance:g}", guidance != own_guidance),
                                        (f"--sampler {sampler}", sampler != "euler")) if differs]  # fmt: skip
    if not other:
        return
    note(
        f"{' and '.join(other)}: {f'model {quoted_path(checkpoint)}' if checkpoint else 'this model'} is a distilled student, "
        f"trained to sample with {steps} euler steps and guidance "
        f"{own_guidance:g} (its gen3c_model.json), so its videos may be worse than with its own: it never learnt "
        f"{'these settings' if len(other) > 1 else 'this setting'}; drop {'them' if len(other) > 1 else 'it'} to sample as it was distilled",
        stacklevel=stacklevel + 1,
    )


def _non_finite_frames(guidance: float, noise_aug_strength: float) -> Exception:
    """The error for a chunk sampled into NaN or infinite frames: a ``guidance`` far past GEN3C's 1
    (``1e30`` overflows the guided output) or a ``noise_aug_strength`` far past its 0 (``1e308``
    overflows the noised buffers) is the user's to bring back, else the model is at fault."""
    noise = f", --noise_aug_strength {noise_aug_strength:g}" if noise_aug_strength else ""
    said = f"sampling gave NaN or infinite frames (--guidance {guidance:g}{noise}), which would be written as a black video"
    fixes = [fix for fix, far in (("a --guidance nearer GEN3C's 1", abs(guidance) > 100),
                                  ("a --noise_aug_strength nearer GEN3C's 0", noise_aug_strength > 100)) if far]  # fmt: skip
    if fixes:
        return Gen3cSettingError(f"{said}: pass {' and '.join(fixes)}")
    return Gen3cModelError(f"{said}: check the model's weights (--verify_checksums)")


def _non_finite_buffers(noise_aug_strength: float) -> Exception:
    """The error for buffers that encoded to NaN or infinite latents once noised: a
    ``noise_aug_strength`` far past GEN3C's 0 (``1e308`` overflows the noised colours) is the
    user's to bring back, else the tokenizer is at fault."""
    said = f"the buffers noised with --noise_aug_strength {noise_aug_strength:g} encoded to NaN or infinite latents"
    if noise_aug_strength > 100:
        return Gen3cSettingError(f"{said}: pass a --noise_aug_strength nearer GEN3C's 0")
    return Gen3cModelError(f"{said}: check the model's weights (--verify_checksums)")


class SamplingDivergedError(Gen3cModelError):
    """Sampling diverged with a guidance near GEN3C's (:func:`_diverged`): the weights are at fault.
    ``step`` (from 1) of ``num_steps`` is where the latents passed ``limit`` or became NaN; a
    caller whose weights are its own (``gen3c train``'s preview sample) says so in its words."""

    def __init__(self, message: str, step: int, num_steps: int, limit: float) -> None:
        super().__init__(message)
        self.step, self.num_steps, self.limit = step, num_steps, limit


def _diverged(guidance: float, step: int, num_steps: int, limit: float) -> Exception:
    """The error for a run whose latents passed ``limit`` (:func:`diverged_limit`) or became NaN at
    ``step``: a ``guidance`` far past GEN3C's 1 is the user's to bring back, else the model is at fault."""
    said = (f"sampling diverged at step {step + 1} of {num_steps} (--guidance {guidance:g}): its latents passed "
            f"±{limit:g} or became NaN, which decode to no picture")  # fmt: skip
    if abs(guidance) > 100:
        return Gen3cSettingError(f"{said}: pass a --guidance nearer GEN3C's 1")
    return SamplingDivergedError(f"{said}: check the model's weights (--verify_checksums)", step + 1, num_steps, limit)


def _describe(value: object) -> str:
    """What a pipeline argument or callback's tensor was instead of the tensor asked for: a
    tensor by its shape, anything else as :func:`gen3c.errors.describe_value` says (not "got
    ndarray", "got NoneType")."""
    if isinstance(value, Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    return describe_value(value)
