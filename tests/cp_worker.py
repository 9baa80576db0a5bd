"""One rank of the context-parallel checks, launched by tests/test_context_parallel.py as
``torchrun --standalone --nproc_per_node=N tests/cp_worker.py OUT_DIR [GEN3C CLI ARGS…]``.

1. Each rank computes the tiny DiT's output on the whole sequence alone, then with its tokens
   split across the N ranks — by gen3c's CPU route and by diffusers' ``enable_parallelism``
   (the GPU route) — and writes ``OUT_DIR/rank{r}.json``: the tokens its blocks saw, the
   largest differences from the whole-sequence output, and the output's scale.
2. With CLI arguments, it then runs the ``gen3c`` command line exactly as ``python -m gen3c``
   does, in the same process group (one launch instead of two: starting ranks dominates the
   test's time), recording the tokens the DiT's blocks got in ``OUT_DIR/cli_rank{r}.json``.
"""

from __future__ import annotations

import copy
import json
import os
import sys
from pathlib import Path
from unittest import mock

import torch


def check_dit(out_dir: Path) -> None:
    from diffusers import CosmosTransformer3DModel
    from diffusers.utils import logging as diffusers_logging

    from gen3c.models import configs
    from gen3c.models.context_parallel import context_parallel_degree, enable_context_parallel
    from gen3c.parallel import init_parallel

    diffusers_logging.set_verbosity_error()
    ctx = init_parallel(int(os.environ["WORLD_SIZE"]))
    torch.manual_seed(0)
    model = CosmosTransformer3DModel(**configs.TRANSFORMER_TINY).eval()
    for name, p in model.named_parameters():
        if "norm" not in name:  # diffusers zero-initialises some layers, which would hide a wrong split
            p.data.normal_(0.0, 0.05)
    model.to(ctx.device)  # the CPU in the test; cuda:LOCAL_RANK when run by hand on GPUs
    g = torch.Generator().manual_seed(1)
    T, h, w = 4, 4, 6  # 4 latent frames -> 4 · 2 · 3 = 24 tokens
    kwargs = dict(
        hidden_states=torch.randn(1, 16, T, h, w, generator=g),
        timestep=torch.tensor([0.7]),
        encoder_hidden_states=torch.randn(1, 8, configs.TRANSFORMER_TINY["text_embed_dim"], generator=g),
        condition_mask=torch.randn(1, configs.TRANSFORMER_TINY["in_channels"] - 16, T, h, w, generator=g),
        padding_mask=torch.zeros(1, 1, h * 8, w * 8),
    )
    kwargs = {k: v.to(ctx.device) for k, v in kwargs.items()} | {"fps": 24, "return_dict": False}
    twin = copy.deepcopy(model)
    seen: list[int] = []
    model.transformer_blocks[0].register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[1]))
    with torch.no_grad():
        whole = model(**kwargs)[0]
        degree = enable_context_parallel(model, ctx.device)
        split = model(**kwargs)[0]
        # The GPU route (diffusers' enable_parallelism), which needs an accelerator count above 0.
        count = max(1, torch.accelerator.device_count())
        with mock.patch.object(torch.accelerator, "device_count", lambda: count):
            enable_context_parallel(twin, ctx.device)
        split_public = twin(**kwargs)[0]
    result = {
        "rank": ctx.rank,
        "degree": degree,
        "recorded_degree": context_parallel_degree(model),
        "tokens_whole": seen[0],
        "tokens_split": seen[1],
        "shape": list(split.shape),
        "max_diff": (split - whole).abs().max().item(),
        "max_diff_enable_parallelism": (split_public - whole).abs().max().item(),
        "scale": whole.abs().max().item(),
    }
    (out_dir / f"rank{ctx.rank}.json").write_text(json.dumps(result))


def run_cli(out_dir: Path, args: list[str]) -> int:
    """``gen3c ARGS`` as ``python -m gen3c`` runs it; records the tokens each DiT block call got
    in ``OUT_DIR/cli_rank{r}.json``. Returns the exit code."""
    import torch.distributed as dist
    from diffusers.models.transformers.transformer_cosmos import CosmosTransformerBlock

    from gen3c.cli import main

    tokens: list[int] = []

    def record(module, args):
        if isinstance(module, CosmosTransformerBlock):
            tokens.append(args[0].shape[1])

    handle = torch.nn.modules.module.register_module_forward_pre_hook(record)
    sys.argv = ["gen3c", *args]
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    handle.remove()
    (out_dir / f"cli_rank{dist.get_rank()}.json").write_text(json.dumps({"tokens": sorted(set(tokens)), "calls": len(tokens)}))
    return code


if __name__ == "__main__":
    check_dit(Path(sys.argv[1]))
    if len(sys.argv) > 2:
        sys.exit(run_cli(Path(sys.argv[1]), sys.argv[2:]))
