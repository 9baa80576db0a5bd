"""Generators that turn 3D-cache renders into videos, and the composition that drives them.

- :mod:`gen3c.pipelines.preview` — the embedded CPU preview (classical hole filling).
- :mod:`gen3c.pipelines.gen3c` — the GEN3C diffusion sampler (:class:`Gen3cPipeline`) and its generator adapter.
- :mod:`gen3c.pipelines.loading` — checkpoints → pipeline / generator, with memory modes and speed settings.
- :mod:`gen3c.pipelines.camera_video` — source → cache → trajectory → renders → generator → outputs.
"""
