"""Step caching of the DiT through diffusers' cache hooks: reuse work across sampler steps.

Consecutive sampler steps feed the DiT nearly the same input, so parts of a forward can be
reused instead of recomputed. Each kind is an opt-in approximation (its measured cost is in
docs/benchmarks.md) set up with diffusers' own hooks (``diffusers.hooks``):

- ``fbc[:THRESHOLD]`` — First Block Cache: block 0 always runs; when its residual changed by
  less than THRESHOLD (relative mean absolute difference, default 0.05) since the last full
  forward, blocks 1…27 are skipped and their last residual is added instead. Adaptive: how
  many forwards it skips depends on the model.
- ``taylorseer[:INTERVAL]`` — TaylorSeer: every self-attention's output is computed in full on
  steps 0, 1, 2 and then 4, 4 + INTERVAL, 4 + 2·INTERVAL, … (INTERVAL default 3; diffusers'
  schedule, counted in each branch's own calls: 14 of GEN3C's 35 steps), and extrapolated on
  the others with a first-order Taylor series in the step index from the last two computed
  (the MLP and cross-attention always run). It keeps two (B, S, C) tensors per block and
  branch in memory (GEN3C-7B: ~26 GB per branch).
- ``magcache[:THRESHOLD]`` — MagCache: skips the whole block stack, adding the last residual,
  while the accumulated change predicted by the model's *magnitude ratios* (how the residual's
  norm changes from step to step) stays under THRESHOLD (default 0.06), at most 3 steps in a
  row, never in the first 20 % of steps. The ratios are measured on the model, per sampler: the
  first run without stored ratios for its sampler computes every step, measures them and stores
  them (:class:`MagRatioStore`); a run of another step count composes them over its steps
  (:func:`resample_ratios`).

Each computes step 0 in full; none forces the last step: GEN3C's last step starts at σ 0.0002,
where the DiT's output enters the denoised estimate scaled by c_out ≈ 0.0002.

diffusers' ``CosmosTransformer3DModel`` has no cache mixin and its block is not in diffusers'
block registry, so :func:`register_cosmos_block` registers it, :class:`StepCache` applies the
hooks and :meth:`StepCache.branch` names each forward's branch (``cond``, ``uncond``, or
``cfg`` for a batched pair): every branch keeps its own cache state, counted in its own calls.
diffusers' default TaylorSeer pattern (``transformer_blocks.*attn``, a full match) names no
Cosmos module — it would hook nothing — so the self-attention modules are named explicitly.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gen3c.errors import Gen3cInputError, Gen3cModelError, first_line, note, quoted_path
from gen3c.models.choices import STEP_CACHE_KINDS as STEP_CACHE_KINDS
from gen3c.models.choices import StepCacheSpec
from gen3c.parallel import is_main_process

#: TaylorSeer's modules: every block's self-attention (two thirds of GEN3C's FLOPs).
TAYLORSEER_MODULES = (r"transformer_blocks\.\d+\.attn1",)
#: Steps TaylorSeer always computes first (to fit its first-order factors).
TAYLORSEER_WARMUP = 3
#: MagCache: at most this many skipped steps in a row, none in the first share of the steps.
MAGCACHE_MAX_SKIP, MAGCACHE_RETENTION = 3, 0.2
#: File of MagCache ratios inside a checkpoint folder (read only) and in the user cache.
MAG_RATIOS_FILE = "mag_ratios.json"


def register_cosmos_block() -> None:
    """Put diffusers' ``CosmosTransformerBlock`` in its block registry (First Block Cache and
    MagCache look blocks up there): it takes ``hidden_states`` first and returns them alone."""
    from diffusers.hooks._helpers import TransformerBlockMetadata, TransformerBlockRegistry
    from diffusers.models.transformers.transformer_cosmos import CosmosTransformerBlock

    TransformerBlockRegistry._register()  # diffusers' own entries first (it registers lazily)
    if CosmosTransformerBlock not in TransformerBlockRegistry._registry:
        TransformerBlockRegistry.register(
            CosmosTransformerBlock,
            TransformerBlockMetadata(return_hidden_states_index=0, return_encoder_hidden_states_index=None),
        )


class StepCache:
    """Step caching of one DiT for one sampler run at a time.

    :class:`~gen3c.pipelines.gen3c.Gen3cPipeline` calls :meth:`begin` before its loop (fresh
    state; MagCache sized to the run's steps), wraps every forward in :meth:`branch`, and calls
    :meth:`end` afterwards (frees the cached tensors; a calibration run stores its ratios).

    Args:
        spec: what to cache.
        mag_ratios: MagCache's per-step magnitude ratios, used with every sampler (None: each
            run's sampler's from ``ratio_store``, else measured by the first run with that sampler).
        ratio_store: where ratios are read and measured ones stored (None: kept for this process only).
    """

    def __init__(self, spec: StepCacheSpec, mag_ratios: list[float] | None = None, ratio_store: MagRatioStore | None = None) -> None:
        self.spec = spec
        # The sampler whose ratios mag_ratios holds when they were read or measured here (None:
        # given by the caller, used with every sampler): another sampler's run reads its own.
        self._ratios_sampler: str | None = None
        self.mag_ratios = mag_ratios
        self.ratio_store = ratio_store
        self._transformer: nn.Module | None = None
        self._applied: tuple[int, tuple[float, ...] | None] | None = None  # MagCache's (steps, ratios) as applied
        self._calibration: MagCalibration | None = None

    @property
    def mag_ratios(self) -> tuple[float, ...] | None:
        """MagCache's per-step ratios (None: not known yet). Set by hand, they are checked (finite
        numbers > 0, step 0's first), kept as a tuple (a list changed in place later cannot go
        unnoticed) and used with every sampler."""
        return self._mag_ratios

    @mag_ratios.setter
    def mag_ratios(self, ratios: Any) -> None:
        if ratios is not None:
            # (a numpy array's or tensor's elements as Python numbers: .item())
            values = [r.item() if hasattr(r, "item") else r for r in ratios] if hasattr(ratios, "__len__") and not isinstance(ratios, (str, bytes)) else None
            if not values or not all(map(_is_ratio, values)):
                raise Gen3cInputError(f"mag_ratios must be a list of finite numbers > 0, one per step (step 0's first), got {ratios!r:.80}")
            ratios = tuple(float(r) for r in values)
        self._mag_ratios = ratios
        self._ratios_sampler = None  # (read or measured ones are tagged with their sampler after this)

    def begin(self, transformer: nn.Module, num_steps: int, sampler: str) -> None:
        """Attach the hooks to ``transformer`` (once; MagCache again when ``num_steps`` or its
        ratios change, and none while it measures them) and reset their state for a run of
        ``num_steps`` steps with ``sampler`` (whose ratios MagCache reads or measures)."""
        from diffusers.hooks import HookRegistry

        if self._transformer is not None and self._transformer is not transformer:
            raise Gen3cModelError("this step cache is attached to another transformer")
        kind = self.spec.kind
        computed_first = TAYLORSEER_WARMUP if kind == "taylorseer" else 1  # steps each kind always computes
        if num_steps <= computed_first:
            note(
                f"--step_cache {self.spec}: a run of {num_steps} step{'s' if num_steps > 1 else ''} skips nothing ({kind} computes "
                f"{f'its first {computed_first} steps' if computed_first > 1 else 'the first step'} in full): sample more steps, or drop --step_cache",
                stacklevel=3,
            )
        if kind == "magcache" and self._ratios_sampler not in (None, sampler):
            self.mag_ratios = None  # another sampler's (e.g. pipe.scheduler swapped)
        if kind == "magcache" and self.mag_ratios is None and self.ratio_store is not None:
            self.mag_ratios = self.ratio_store.load(sampler)
            if self.mag_ratios is not None:
                self._ratios_sampler = sampler
        if kind == "magcache" and self.mag_ratios is None:
            self._detach()  # hooks of another sampler's ratios would skip steps of the calibration run
            if num_steps <= computed_first:
                return  # one step has no ratio to measure: no hooks, nothing stored
            self._calibration = MagCalibration(transformer, sampler, num_steps)
            return
        if self._transformer is None or (kind == "magcache" and (self._applied[0] != num_steps or self._applied[1] is not self.mag_ratios)):
            self._apply(transformer, num_steps)
        HookRegistry.check_if_exists_or_initialize(transformer).reset_stateful_hooks(recurse=True)

    def _apply(self, transformer: nn.Module, num_steps: int) -> None:
        from diffusers.hooks import (
            FirstBlockCacheConfig,
            HookRegistry,
            MagCacheConfig,
            TaylorSeerCacheConfig,
            apply_first_block_cache,
            apply_mag_cache,
            apply_taylorseer_cache,
        )

        register_cosmos_block()
        kind, value = self.spec.kind, self.spec.value
        if kind == "fbc":
            apply_first_block_cache(transformer, FirstBlockCacheConfig(threshold=value))
            group = token_group(transformer)
            if group is not None:  # each rank holds some tokens: decide on all of them, as one GPU does
                from diffusers.hooks.first_block_cache import _FBC_LEADER_BLOCK_HOOK

                head = HookRegistry.check_if_exists_or_initialize(transformer.transformer_blocks[0]).get_hook(_FBC_LEADER_BLOCK_HOOK)
                head._should_compute_remaining_blocks = functools.partial(_fbc_decision_over_ranks, head, group)
        elif kind == "taylorseer":
            config = TaylorSeerCacheConfig(
                cache_interval=int(value), disable_cache_before_step=TAYLORSEER_WARMUP, max_order=1,
                # the compute dtype (float8-stored weights compute in bf16)
                taylor_factors_dtype=getattr(transformer, "_gen3c_compute_dtype", None) or transformer.dtype,
                cache_identifiers=list(TAYLORSEER_MODULES),
            )  # fmt: skip
            apply_taylorseer_cache(transformer, config)
        else:  # magcache: applied again (replacing its hooks) when the steps or the ratios change
            config = MagCacheConfig(
                threshold=value, max_skip_steps=MAGCACHE_MAX_SKIP, retention_ratio=MAGCACHE_RETENTION,
                num_inference_steps=num_steps, mag_ratios=resample_ratios(self.mag_ratios, num_steps),
            )  # fmt: skip
            apply_mag_cache(transformer, config)
        HookRegistry.check_if_exists_or_initialize(transformer).invalidate_child_registries_cache()
        self._transformer, self._applied = transformer, (num_steps, self.mag_ratios)

    @contextmanager
    def branch(self, name: str):
        """Run the forwards inside as branch ``name`` (each branch has its own cache state)."""
        if self._calibration is not None:
            self._calibration.branch = name
            yield
            return
        if self._transformer is None:  # no hooks attached (a MagCache run of one step, without ratios)
            yield
            return
        from diffusers.hooks.hooks import CacheContext, _set_cache_context

        _set_cache_context(self._transformer, CacheContext(name))
        try:
            yield
        finally:
            _set_cache_context(self._transformer, None)

    def remove(self) -> None:
        """Take the hooks off the transformer (it computes exactly as before)."""
        if self._calibration is not None:
            self._calibration.finish()
            self._calibration = None
        self._detach()

    def _detach(self) -> None:
        """Take diffusers' cache hooks off the transformer (the next :meth:`begin` applies them again)."""
        if self._transformer is None:
            return
        from diffusers.hooks import HookRegistry
        from diffusers.hooks.first_block_cache import _FBC_BLOCK_HOOK, _FBC_LEADER_BLOCK_HOOK
        from diffusers.hooks.mag_cache import _MAG_CACHE_BLOCK_HOOK, _MAG_CACHE_LEADER_BLOCK_HOOK
        from diffusers.hooks.taylorseer_cache import _TAYLORSEER_CACHE_HOOK

        registry = HookRegistry.check_if_exists_or_initialize(self._transformer)
        for name in (_FBC_LEADER_BLOCK_HOOK, _FBC_BLOCK_HOOK, _MAG_CACHE_LEADER_BLOCK_HOOK, _MAG_CACHE_BLOCK_HOOK, _TAYLORSEER_CACHE_HOOK):
            registry.remove_hook(name, recurse=True)
        registry.invalidate_child_registries_cache()
        self._transformer = self._applied = None

    def end(self) -> None:
        """Free the cached tensors; after a whole calibration run, keep and store the measured
        ratios (an interrupted one is dropped)."""
        if self._calibration is not None:
            calibration, self._calibration = self._calibration, None
            ratios = calibration.finish()
            if ratios is None:
                return
            self.mag_ratios, self._ratios_sampler = ratios, calibration.sampler
            if not is_main_process():
                return  # every rank measured the same ratios: rank 0 stores them and says so
            where = None
            if self.ratio_store is not None:
                where = self.ratio_store.save(calibration.sampler, calibration.num_steps, ratios, calibration.ratios)
            note(
                f"--step_cache magcache: this run computed every step to measure the model's magnitude ratios "
                f"({calibration.sampler}, {calibration.num_steps} steps){f'; stored in {quoted_path(where)}' if where else ''}; "
                "the next runs skip steps",
                stacklevel=3,
            )
            return
        if self._transformer is not None:
            from diffusers.hooks import HookRegistry

            HookRegistry.check_if_exists_or_initialize(self._transformer).reset_stateful_hooks(recurse=True)


def token_group(transformer: nn.Module) -> Any:
    """The process group a context-parallel DiT's tokens are split over (None: not split). A
    skip decision taken on one rank's tokens alone can differ between ranks, and a rank that skips
    the blocks would leave the others waiting in their attention's all-to-all."""
    from gen3c.models.context_parallel import context_parallel_degree

    if context_parallel_degree(transformer) <= 1:
        return None
    return transformer._parallel_config.context_parallel_config._flattened_mesh.get_group()


def mean_over_ranks(means: torch.Tensor, group: Any) -> torch.Tensor:
    """Means over each rank's tokens → the means over all of them (float32): the ranks hold equal
    shares (the latent frames divide by the ranks, :func:`gen3c.models.choices.check_token_split`)."""
    means = means.float().clone()
    if group is not None:
        import torch.distributed as dist

        dist.all_reduce(means, group=group)
        means /= dist.get_world_size(group)
    return means


@torch.compiler.disable
def _fbc_decision_over_ranks(hook: Any, group: Any, residual: torch.Tensor) -> bool:
    """diffusers' First Block Cache decision (``FBCHeadBlockHook._should_compute_remaining_blocks``)
    on the whole sequence's means, so that every rank of a context-parallel DiT takes the same."""
    previous = hook.state_manager.get_state().head_block_residual
    if previous is None:
        return True
    means = mean_over_ranks(torch.stack([(residual - previous).abs().mean(), previous.abs().mean()]), group)
    return (means[0] / means[1]).item() > hook.threshold


def resample_ratios(ratios: list[float], num_steps: int) -> list[float]:
    """MagCache ratios measured at ``len(ratios)`` steps → the ratios of a run of ``num_steps``.

    A ratio is the change of the residual's norm over one step, so a step of a coarser run
    (spanning several measured ones) changes it by their product. Every step count samples the
    same σ curve (Karras, step i of N at position i/(N−1) of its ramp), so the log-norm —
    the running sum of the log ratios — is interpolated linearly along that position and each
    step's ratio is its change over the step (diffusers' nearest-neighbour pick of single measured
    ratios understates a coarse step's change, so MagCache skipped more than its threshold meant:
    docs/benchmarks.md). The same count gives the ratios back; the first step's is 1.
    """
    measured = len(ratios)
    if measured == num_steps:
        return [float(r) for r in ratios]
    if measured == 1 or num_steps == 1:
        return [1.0] * num_steps  # one step has no change to measure or to apply
    log_norm = [0.0]
    for ratio in ratios[1:]:
        log_norm.append(log_norm[-1] + math.log(ratio))

    def at(position: float) -> float:  # the log-norm at a position in [0, 1] of the ramp
        x = position * (measured - 1)
        k = min(int(x), measured - 2)
        return log_norm[k] + (x - k) * (log_norm[k + 1] - log_norm[k])

    levels = [at(i / (num_steps - 1)) for i in range(num_steps)]
    return [1.0] + [math.exp(levels[i] - levels[i - 1]) for i in range(1, num_steps)]


class MagCalibration:
    """Measures MagCache's magnitude ratios during one full run: per branch and step, the mean
    over tokens of ‖r_t‖ / ‖r_{t−1}‖, where r is the block stack's residual (last block's output
    minus first block's input), as MagCache's calibration defines them (1 at the first step)."""

    def __init__(self, transformer: nn.Module, sampler: str, num_steps: int) -> None:
        self.sampler, self.num_steps = sampler, num_steps
        self.branch = "cond"
        self.ratios: dict[str, list[float]] = {}
        self._previous: dict[str, torch.Tensor] = {}
        self._input: torch.Tensor | None = None
        self._group = token_group(transformer)  # (every rank measures the same ratios)
        blocks = transformer.transformer_blocks
        self._handles = [
            blocks[0].register_forward_pre_hook(self._first_input),
            blocks[-1].register_forward_hook(self._last_output),
        ]

    def _first_input(self, module: nn.Module, args: tuple) -> None:
        self._input = args[0]

    def _last_output(self, module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        residual = (output - self._input).float()
        previous = self._previous.get(self.branch)
        ratio = 1.0
        if previous is not None:
            ratio = mean_over_ranks((residual.norm(dim=-1) / (previous.norm(dim=-1) + 1e-8)).mean().reshape(1), self._group).item()
        self.ratios.setdefault(self.branch, []).append(ratio)
        self._previous[self.branch] = residual

    def finish(self) -> list[float] | None:
        """Remove the hooks; the ratios MagCache uses — the conditional branch's (it carries the
        video; the unconditional one only sets the guidance direction) — or None when the run
        stopped before its last step."""
        for handle in self._handles:
            handle.remove()
        self._previous.clear()
        self._input = None
        ratios = self.ratios.get("cond") or self.ratios.get("cfg")
        return ratios if ratios is not None and len(ratios) == self.num_steps else None


class MagRatioStore:
    """Where a model's MagCache ratios live: ``mag_ratios.json`` in its checkpoint folder (read
    only; the packaged models ship one), else ``<user cache>/mag_ratios/<fingerprint>.json``,
    where the user cache is ``$GEN3C_CACHE_DIR`` or ``$XDG_CACHE_HOME/gen3c`` or ``~/.cache/gen3c``
    and the fingerprint hashes the DiT's config and weight files (name, size, first 64 KiB).
    Each file maps a sampler name to ``{"num_steps": N, "ratios": [...]}``.

    Args:
        checkpoint: the checkpoint folder (a hub id: the user cache only).
    """

    def __init__(self, checkpoint: str | os.PathLike) -> None:
        self.checkpoint = Path(checkpoint).expanduser()
        self.fingerprint = _fingerprint(self.checkpoint / "transformer") if self.checkpoint.is_dir() else _hash(str(checkpoint))

    @property
    def user_file(self) -> Path:
        from gen3c.models.weights import weights_cache_dir

        return weights_cache_dir() / "mag_ratios" / f"{self.fingerprint}.json"

    def load(self, sampler: str) -> list[float] | None:
        for path in (self.checkpoint / MAG_RATIOS_FILE, self.user_file):
            entry = _read_json(path).get(sampler)
            if entry is not None:
                ratios = entry.get("ratios") if isinstance(entry, dict) else None
                if not isinstance(ratios, list) or not ratios or not all(_is_ratio(r) for r in ratios):
                    raise Gen3cModelError(
                        f"{quoted_path(path)}: the {sampler!r} MagCache ratios are malformed: delete the file to measure them again "
                        "(they must be a non-empty list of positive, finite numbers)"
                    )
                return [float(r) for r in ratios]
        return None

    def save(self, sampler: str, num_steps: int, ratios: list[float], branches: dict[str, list[float]]) -> Path:
        """Store ``ratios`` (the ones MagCache uses) and every branch's, for ``sampler``; returns the file."""
        from gen3c.io.atomic import ensure_writable_dir, write_text_atomic

        path = self.user_file
        ensure_writable_dir(path.parent, "MagCache ratio folder")
        data = _read_json(path)
        data[sampler] = {"num_steps": num_steps, "ratios": ratios, "branches": branches}
        write_text_atomic(path, json.dumps(data, indent=1) + "\n")
        return path


def _is_ratio(value: object) -> bool:
    """A magnitude ratio: a positive, finite number (JSON's true/false are ints to Python; NaN and
    Infinity parse; a norm's ratio is never ≤ 0)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise Gen3cModelError(f"{quoted_path(path)} is unreadable ({first_line(exc)}): delete it to measure the MagCache ratios again") from None
    if not isinstance(data, dict):
        raise Gen3cModelError(f"{quoted_path(path)} is not a JSON object: delete it to measure the MagCache ratios again")
    return data


def _fingerprint(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*.json")) + sorted(folder.glob("*.safetensors")):
        digest.update(f"{path.name}:{path.stat().st_size}".encode())
        with open(path, "rb") as handle:
            digest.update(handle.read(1 << 16))
    return digest.hexdigest()[:16]


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]
