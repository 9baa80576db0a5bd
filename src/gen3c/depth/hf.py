"""Depth estimators from ``transformers``: Depth Pro, Depth Anything (V1/V2, relative and
metric), ZoeDepth and DPT, by hub id or local folder (``save_pretrained`` layout).

The model family is read from the folder's ``config.json`` (``model_type``); preprocessing is
the model's own image processor (``preprocessor_config.json``). What each output means:

- **Depth Pro** (``depth_pro``): canonical inverse depth; metric depth = f / (W · output)
  with f the focal length in pixels of the W-pixel-wide image. f comes from the user's
  intrinsics / FOV if given (as in Apple's reference code), else from the model's FOV head,
  else from :data:`~gen3c.depth.base.DEFAULT_FOV_DEGREES`. ``kind="metric"``.
- **Depth Anything, metric** (``depth_estimation_type="metric"``) and **ZoeDepth**: metric
  depth directly (ZoeDepth averaged with its horizontally flipped pass, as the original does).
- **Depth Anything, relative** and **DPT** (MiDaS-style): *affine-invariant disparity*
  (inverse depth up to scale and shift), not depth. We treat it as inverse depth up to scale
  (shift assumed 0): depth = 1 / disparity, with disparity below 1 % of its maximum marked
  invalid and clamped there (so the far field sits at ≤ 100 × the nearest depth), then scaled
  so that the median valid depth is 1. ``kind="relative"``. The shape of the far field is only
  approximate; MoGe (GEN3C's choice) predicts geometry directly and is preferred.

Models that predict no camera get the user's intrinsics / FOV, else the default 60° FOV.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from gen3c.cameras import intrinsics_from_fov, make_intrinsics
from gen3c.dependencies import require
from gen3c.depth.base import (
    DEFAULT_FOV_DEGREES,
    DepthEstimate,
    camera_for,
    estimator_input,
    note_half_on_cpu,
    refuse_non_finite,
    user_focal,
)
from gen3c.depth.hub import hub_offline_reason
from gen3c.depth.names import HF_ALIASES, HUB_ID
from gen3c.errors import Gen3cInputError, Gen3cModelError, first_line, quoted_path
from gen3c.io.depth import disparity_to_relative_depth
from gen3c.io.paths import exists, is_dir, is_file

#: ``model_type`` → family handled here.
SUPPORTED_MODEL_TYPES = ("depth_pro", "depth_anything", "zoedepth", "dpt")


def _require_transformers():
    return require("transformers", "a transformers depth model", extra="depth")


def _hub_options(name_or_path: str) -> dict[str, Any]:
    """``from_pretrained`` options: cached hub models load with ``local_files_only`` (no network;
    one cached in part is completed by :func:`_load_cached_or_download`); uncached ones need the
    hub, checked quickly so that offline is an immediate error."""
    if exists(name_or_path):  # guarded: False for a name too long for the file system
        return {}
    transformers = _require_transformers()
    try:
        transformers.AutoConfig.from_pretrained(name_or_path, local_files_only=True)
        return {"local_files_only": True}
    except Exception:
        pass
    reason = hub_offline_reason()
    if reason is not None:
        raise Gen3cModelError(
            f"depth model {quoted_path(name_or_path)} is not in the local Hugging Face cache and {reason}: download it on a machine with internet (save_pretrained folder) and pass its path as --depth_estimator"
        )
    return {}


def read_model_type(name_or_path: str, **options: Any) -> str:
    """``model_type`` of a transformers model folder or hub id (reads only ``config.json``)."""
    transformers = _require_transformers()
    try:
        config = transformers.AutoConfig.from_pretrained(name_or_path, **options)
    except Exception as exc:
        raise _load_error(name_or_path, exc) from None
    return config.model_type


#: What ``--depth_estimator`` takes, for a folder that is no transformers depth model.
ESTIMATOR_CHOICES = (
    "moge, prior, depth_pro, depth_anything_v2, zoedepth, a MoGe model.pt, or a transformers depth model "
    "(Depth Pro, Depth Anything, ZoeDepth or DPT) by hub id or save_pretrained folder"
)


def not_a_depth_model(name: str) -> Gen3cModelError | None:
    """The refusal of a local folder that is no transformers model, saying what it is instead: a
    diffusers pipeline (``model_index.json``), a diffusers model (a ``config.json`` with
    ``_class_name``) or a ``config.json`` without ``model_type``; None for anything else
    (transformers' own error, :func:`_load_error`, says what is wrong with it). A hub id is looked
    at in the local Hugging Face cache (else it read "not in the local Hugging Face cache" offline)."""
    folder = Path(name).expanduser() if exists(name) else _cached_snapshot(name)
    if folder is None or not is_dir(folder):
        return None
    config: Any = None
    if is_file(folder / "config.json"):
        try:
            config = json.loads((folder / "config.json").read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(config, dict) or "model_type" in config:
            return None
    if is_file(folder / "model_index.json"):
        what = "a diffusers pipeline folder (it has model_index.json)"
    elif config is None:
        return None  # no config.json: refused by the loader as neither MoGe nor transformers
    elif isinstance(config.get("_class_name"), str):
        what = f"a diffusers {config['_class_name']} folder (its config.json has _class_name, no model_type)"
    else:
        what = "a folder whose config.json has no model_type"
    return Gen3cModelError(f"depth estimator {quoted_path(name)} is {what}, not a transformers depth model: --depth_estimator takes {ESTIMATOR_CHOICES}")


def _cached_snapshot(name: str) -> Path | None:
    """The local Hugging Face cache's folder of hub id ``name`` (the newest snapshot holding a
    ``model_index.json`` or ``config.json``), None when it has neither or ``name`` is no hub id."""
    if not HUB_ID.fullmatch(name):
        return None
    try:
        from huggingface_hub import try_to_load_from_cache

        for file in ("model_index.json", "config.json"):
            cached = try_to_load_from_cache(name, file)
            if isinstance(cached, str):
                return Path(cached).parent
    except Exception:  # no huggingface_hub, a name it refuses: transformers says what is wrong
        return None
    return None


def _load_cached_or_download(transformers: Any, name_or_path: str, dtype: torch.dtype, options: dict[str, Any]) -> tuple[Any, Any]:
    """The image processor and model of ``name_or_path`` with ``options`` (:func:`_hub_options`).

    A hub model whose ``config.json`` is cached but not the rest (a first download cut short)
    loads from the cache only and fails there; the hub, if reachable, then completes it. Loaded
    from disk, the libraries' bars are off (:func:`gen3c.library_output.libraries_quiet`).

    Raises:
        Gen3cModelError: it cannot load, or it is partly cached and the hub unreachable.
    """
    from gen3c.library_output import libraries_quiet

    # From disk, transformers' raw "Loading weights" bar is noise beside gen3c's own output; a
    # download keeps huggingface_hub's bars (minutes for a large model), which the switch turns off too.
    local = bool(options.get("local_files_only")) or exists(name_or_path)
    try:
        with libraries_quiet(("transformers",)) if local else contextlib.nullcontext():
            processor = transformers.AutoImageProcessor.from_pretrained(name_or_path, **options)
            loaded = transformers.AutoModelForDepthEstimation.from_pretrained(name_or_path, dtype=dtype, output_loading_info=True, **options)
        return processor, _all_weights_loaded(name_or_path, *loaded)
    except Gen3cModelError:
        raise
    except Exception as exc:
        if not options.get("local_files_only"):
            raise _load_error(name_or_path, exc) from None
        cached_error = exc
    reason = hub_offline_reason()
    if reason is not None:
        raise Gen3cModelError(
            f"depth model {quoted_path(name_or_path)} is only partly in the local Hugging Face cache ({type(cached_error).__name__}: "
            f"{first_line(cached_error, 120)}) and {reason}: run once with the hub reachable to finish the download, "
            "or download it on a machine with internet (save_pretrained folder) and pass its path as --depth_estimator"
        )
    try:
        processor = transformers.AutoImageProcessor.from_pretrained(name_or_path)
        loaded = transformers.AutoModelForDepthEstimation.from_pretrained(name_or_path, dtype=dtype, output_loading_info=True)
    except Exception as exc:
        raise _load_error(name_or_path, exc) from None
    return processor, _all_weights_loaded(name_or_path, *loaded)


#: Weights a model may lack without harm: the first fusion layer of DPT, Depth Anything, ZoeDepth
#: and Depth Pro is never given a residual, so its ``residual_layer1`` never runs (checkpoints
#: converted from the original DPT, Intel/dpt-hybrid-midas, leave it out); BatchNorm's counter.
UNUSED_WEIGHTS = re.compile(r"fusion_stage\.(layers|intermediate)\.0\.residual_layer1\.|(^|\.)num_batches_tracked$")


def _all_weights_loaded(name_or_path: str, model: Any, info: dict[str, Any]) -> Any:
    """``model`` as ``from_pretrained(output_loading_info=True)`` gave it, once every weight it
    uses was in the checkpoint (:data:`UNUSED_WEIGHTS` aside).

    transformers fills a weight the checkpoint lacks with random values and goes on (a warning in
    its log, which gen3c keeps quiet loading from disk): weights of another model in the folder
    (a DPT config.json beside Depth Anything's weights) gave random depth with no error.

    Raises:
        Gen3cModelError: one line naming the model, how many weights it lacks and one of them.
    """
    missing = sorted(key for key in info.get("missing_keys") or () if not UNUSED_WEIGHTS.search(key))
    if not missing:
        return model
    total = len(model.state_dict())
    where = "its folder's weights" if exists(name_or_path) else "its download"
    raise Gen3cModelError(
        f"depth model {quoted_path(name_or_path)} lacks {len(missing)} of the {total} weights of its {type(model).__name__} "
        f"(e.g. {missing[0]!r}), which would be random, its depth made up: {where} are another model's or incomplete; "
        "save it again with save_pretrained, or download it again"
    )


#: What a ``save_pretrained`` folder holds: its weights in one of these files (or shards of them).
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")


def _load_error(name_or_path: str, exc: Exception) -> Gen3cModelError:
    reason = first_line(exc, 160)
    if exists(name_or_path):  # guarded: False for a name too long for the file system
        folder = Path(name_or_path).expanduser()
        lacks = [file for file in ("config.json", "preprocessor_config.json") if not is_file(folder / file)]
        lacks += [] if any(is_file(folder / file) for file in WEIGHT_FILES) else ["its weights (model.safetensors)"]
        if lacks:  # transformers' own words for it are long, cut short mid-sentence here
            return Gen3cModelError(
                f"depth model {quoted_path(name_or_path)} lacks {' and '.join(lacks)}: save the model and its image processor "
                "into the folder with save_pretrained, or download it again"
            )
        fix = "check that the folder holds config.json, preprocessor_config.json and the weights (save_pretrained layout)"
    else:
        fix = "check the hub id and the network, or pass a local folder"
    return Gen3cModelError(f"cannot load depth model {quoted_path(name_or_path)} ({type(exc).__name__}: {reason}): {fix}")


class TransformersDepthEstimator:
    """A transformers depth model behind the :class:`~gen3c.depth.base.DepthEstimator` interface.

    Args:
        name_or_path: hub id or local folder (``config.json`` + weights + ``preprocessor_config.json``).
        device, dtype: where and in which precision the network runs.
        flip_augment: ZoeDepth only — average with the mirrored image (the original's default).
    """

    def __init__(
        self,
        name_or_path: str,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        flip_augment: bool = True,
    ) -> None:
        transformers = _require_transformers()
        name_or_path = HF_ALIASES.get(name_or_path, name_or_path)
        refusal = not_a_depth_model(name_or_path)
        if refusal is not None:
            raise refusal
        options = _hub_options(name_or_path)
        self.model_type = read_model_type(name_or_path, **options)
        if self.model_type not in SUPPORTED_MODEL_TYPES:
            raise Gen3cModelError(
                f"depth model {quoted_path(name_or_path)} is a {self.model_type!r} model: supported are MoGe and {', '.join(SUPPORTED_MODEL_TYPES)}"
            )
        self.processor, model = _load_cached_or_download(transformers, name_or_path, dtype, options)
        self.model = model.to(device).eval()
        self.device, self.dtype = torch.device(device), dtype
        self.flip_augment = flip_augment
        self.name = f"{self.model_type}:{name_or_path}"
        note_half_on_cpu(self.name, device, None if dtype == torch.float32 else f"dtype {str(dtype).removeprefix('torch.')}")
        config = model.config
        if self.model_type == "depth_anything":
            self.kind = "metric" if getattr(config, "depth_estimation_type", "relative") == "metric" else "relative"
        elif self.model_type == "dpt":
            self.kind = "relative"
        else:
            self.kind = "metric"

    def __repr__(self) -> str:
        return (
            f"TransformersDepthEstimator(name={self.name!r}, kind={self.kind!r}, device={self.device}, "
            f"dtype={str(self.dtype).removeprefix('torch.')}, flip_augment={self.flip_augment})"
        )

    @torch.inference_mode()
    def _forward(self, rgb) -> Any:
        try:
            inputs = self.processor(images=rgb, return_tensors="pt")
        except (ValueError, RuntimeError) as exc:  # keep_aspect_ratio sizes a long strip to 0 rows (ValueError: DPT, Depth Anything; RuntimeError: ZoeDepth)
            h, w = rgb.shape[:2]
            raise Gen3cInputError(
                f"depth model {self.name} cannot take an image of {w}×{h} pixels (aspect ratio {max(h, w) / min(h, w):.0f}:1; "
                f"its processor: {first_line(exc, 120)}): crop it nearer to square, or use --depth_estimator moge or prior"
            ) from None
        pixel_values = inputs["pixel_values"].to(device=self.device, dtype=self.dtype)
        outputs = self.model(pixel_values=pixel_values)
        flipped = None
        if self.model_type == "zoedepth" and self.flip_augment:
            flipped = self.model(pixel_values=torch.flip(pixel_values, dims=[-1]))
        for out in (outputs, flipped):
            if out is not None:
                reduced = self.dtype if self.dtype != torch.float32 else None
                refuse_non_finite(f"depth model {self.name}", torch.isfinite(out.predicted_depth), "download them again", reduced, "load it in float32")
        return outputs, flipped

    def estimate(
        self,
        image: Any,
        size: tuple[int, int] | None = None,
        intrinsics: Tensor | None = None,
        fov: float | None = None,
    ) -> DepthEstimate:
        """Depth at the image's size (or ``size``, by a plain resize) with intrinsics (module docstring)."""
        rgb, size = estimator_input(image, size)
        H, W = rgb.shape[:2]
        outputs, flipped = self._forward(rgb)
        if self.model_type == "depth_pro":
            estimate = self._depth_pro(outputs, H, W, intrinsics, fov)
        else:
            if self.model_type == "zoedepth":
                post = self.processor.post_process_depth_estimation(
                    outputs, source_sizes=[(H, W)], target_sizes=[(H, W)], outputs_flipped=flipped
                )
            else:
                post = self.processor.post_process_depth_estimation(outputs, target_sizes=[(H, W)])
            raw = post[0]["predicted_depth"].float().cpu().reshape(H, W)
            if self.kind == "relative":
                depth, mask = disparity_to_relative_depth(raw)
            else:
                depth, mask = _metric_depth(raw)
            K, source = camera_for(H, W, intrinsics, fov)
            estimate = DepthEstimate(depth, K, mask, self.kind, self.name, source)
        return estimate if size is None else estimate.resized(size)

    def _depth_pro(self, outputs, H: int, W: int, intrinsics: Tensor | None, fov: float | None) -> DepthEstimate:
        inverse = outputs.predicted_depth.float().cpu()[0]
        inverse = F.interpolate(inverse[None, None], size=(H, W), mode="bilinear", align_corners=False)[0, 0]
        focal = user_focal(H, W, intrinsics, fov)
        source = "user"
        if focal is None:
            fov_pred = outputs.field_of_view
            value = float(fov_pred.reshape(-1)[0]) if fov_pred is not None else math.nan
            if math.isfinite(value) and 1.0 < value < 179.0:
                focal, source = 0.5 * W / math.tan(math.radians(value) / 2), "model"
            else:
                focal, source = float(intrinsics_from_fov(DEFAULT_FOV_DEGREES, H, W)[0, 0]), "default"
        # Depth Pro's transformers post-processing: 1 / clamp(inverse · W / f, 1e-4, 1e4).
        depth = 1.0 / torch.clamp(inverse * W / focal, min=1e-4, max=1e4)
        if intrinsics is not None:
            K, _ = camera_for(H, W, intrinsics, None)
        else:
            K = make_intrinsics(focal, focal, W / 2.0, H / 2.0)
        mask = torch.isfinite(depth) & (depth < 1e4)  # at the clamp: no usable prediction
        return DepthEstimate(depth, K, mask, "metric", self.name, source)


def _metric_depth(depth: Tensor) -> tuple[Tensor, Tensor]:
    """Metric output → (depth, mask): non-finite or ≤ 0 pixels are invalid and set to the far end."""
    good = torch.isfinite(depth) & (depth > 0)
    far = float(depth[good].max()) if good.any() else 1.0
    return torch.where(good, depth, torch.full_like(depth, far)), good


__all__ = ["HF_ALIASES", "SUPPORTED_MODEL_TYPES", "TransformersDepthEstimator", "disparity_to_relative_depth"]
