"""Speed settings of the DiT: errors on CPU, and exactness checks that run where a GPU is."""

import pytest
import torch

from gen3c.errors import Gen3cInputError
from gen3c.models import configs
from gen3c.models.speed import Fp8Linear, fp8_supported, set_attention_backend, use_fp8_matmuls


def tiny_transformer(device="cpu", dtype=torch.float32):
    from diffusers import CosmosTransformer3DModel

    torch.manual_seed(0)
    return CosmosTransformer3DModel(**configs.TRANSFORMER_TINY).to(device=device, dtype=dtype).eval()


def test_fp8_needs_a_capable_gpu():
    if fp8_supported():
        pytest.skip("this machine has fp8 tensor cores")
    with pytest.raises(Gen3cInputError, match="fp8 matmuls need"):
        use_fp8_matmuls(tiny_transformer())


def test_unknown_attention_backend_is_a_clear_error():
    with pytest.raises(Gen3cInputError, match="attention backend 'warp_drive'"):
        set_attention_backend(tiny_transformer(), "warp_drive")


@pytest.mark.skipif(not fp8_supported(), reason="needs a GPU with fp8 tensor cores (run on the device)")
def test_fp8_linear_close_to_bf16():
    torch.manual_seed(0)
    lin = torch.nn.Linear(256, 512).cuda().to(torch.bfloat16)
    x = torch.randn(4, 100, 256, device="cuda", dtype=torch.bfloat16)
    ref = lin(x).float()
    out = Fp8Linear(lin)(x).float()
    rel = ((out - ref).norm() / ref.norm()).item()
    assert out.shape == ref.shape and rel < 0.05


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (run on the device)")
def test_regional_compile_matches_eager():
    from gen3c.models.speed import compile_blocks

    model = tiny_transformer("cuda", torch.bfloat16)
    T, h, w = 3, 4, 6
    kw = dict(
        hidden_states=torch.randn(1, 16, T, h, w, device="cuda", dtype=torch.bfloat16),
        timestep=torch.tensor([0.5], device="cuda", dtype=torch.bfloat16),
        encoder_hidden_states=torch.randn(1, 8, configs.TRANSFORMER_TINY["text_embed_dim"], device="cuda", dtype=torch.bfloat16),
        fps=24,
        condition_mask=torch.randn(1, configs.TRANSFORMER_TINY["in_channels"] - 16, T, h, w, device="cuda", dtype=torch.bfloat16),
        padding_mask=torch.zeros(1, 1, h * 8, w * 8, device="cuda", dtype=torch.bfloat16),
        return_dict=False,
    )
    with torch.no_grad():
        ref = model(**kw)[0].float()
        compile_blocks(model)
        out = model(**kw)[0].float()
    assert torch.allclose(out, ref, atol=3e-2, rtol=3e-2)
