"""A tiny GEN3C pipeline with random weights: the real architecture and channel layout at a
size that runs in seconds on a CPU, for the tests (the shipped ``tiny`` model is a trained one)."""

from __future__ import annotations

import string

import torch

from gen3c.models import configs


def tiny_tokenizer():
    """A T5 tokenizer over lowercase letters and digits (no download)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
    from tokenizers.processors import TemplateProcessing
    from transformers import T5TokenizerFast

    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    vocab += [(c, -1.0) for c in string.ascii_lowercase + string.digits]
    vocab += [("▁" + c, -1.5) for c in string.ascii_lowercase]
    tok = Tokenizer(models.Unigram(vocab, unk_id=2))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.post_processor = TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return T5TokenizerFast(
        tokenizer_object=tok, eos_token="</s>", unk_token="<unk>", pad_token="<pad>", extra_ids=0
    )


def tiny_components(seed: int = 0, *, with_text_encoder: bool = True, weight_std: float = 0.05) -> dict:
    """Random-weight components of :class:`~gen3c.pipelines.gen3c.Gen3cPipeline` at the tiny size.

    Weights are drawn N(0, ``weight_std``) (diffusers zero-initialises some layers, which would
    hide wiring mistakes); norms keep their unit scale.
    """
    from diffusers import AutoencoderKLCosmos, CosmosTransformer3DModel, EDMEulerScheduler
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(seed)
    transformer = CosmosTransformer3DModel(**configs.TRANSFORMER_TINY)
    vae = AutoencoderKLCosmos(**configs.VAE_TINY)
    for module in (transformer, vae):
        for name, p in module.named_parameters():
            if "norm" not in name:
                p.data.normal_(0.0, weight_std)
    parts = {
        "transformer": transformer.eval(),
        "vae": vae.eval(),
        "scheduler": EDMEulerScheduler(**configs.SCHEDULER_GEN3C),
    }
    if with_text_encoder:
        parts["text_encoder"] = T5EncoderModel(T5Config(**configs.T5_TINY)).eval()
        parts["tokenizer"] = tiny_tokenizer()
    return parts


def tiny_pipeline(seed: int = 0, *, with_text_encoder: bool = True, cache_prompts: bool = True):
    """A ready tiny :class:`~gen3c.pipelines.gen3c.Gen3cPipeline` on the CPU in float32."""
    from gen3c.pipelines.gen3c import Gen3cPipeline

    parts = tiny_components(seed, with_text_encoder=with_text_encoder)
    pipe = Gen3cPipeline(**parts)
    if cache_prompts and with_text_encoder:
        from gen3c.models.prompt_cache import PromptEmbeddingCache

        pipe.register_modules(
            prompt_cache=PromptEmbeddingCache.from_embeddings({p: pipe.encode_prompt(p)[0] for p in configs.CACHED_PROMPTS})
        )
    pipe.set_progress_bar_config(disable=True)
    return pipe
