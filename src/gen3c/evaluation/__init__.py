"""``gen3c eval``: a fixed, seeded benchmark of camera control and 3D consistency.

- :mod:`gen3c.evaluation.metrics` — PSNR / SSIM (all, seen, disoccluded pixels), reprojection
  warp error, camera accuracy (poses recovered by PnP against the known cache).
- :mod:`gen3c.evaluation.baselines` — generators without a 3D cache (still image, one
  homography) and the raw cache render.
- :mod:`gen3c.evaluation.suite` — procedural scenes with ground truth × GEN3C's 8 presets,
  held-out seeds, methods, scoring.
- :mod:`gen3c.evaluation.report` — markdown, PNG plots, contact sheets, the terminal table.
- :mod:`gen3c.evaluation.resume` — what makes a case's numbers (``results.json``'s fingerprint),
  and the partial report's finished cases reused by ``gen3c eval --resume``.
"""
