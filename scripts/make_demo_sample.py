"""Render the demo sample shipped in the package (``src/gen3c/assets/demo_*``).

    PYTHONPATH=src python scripts/make_demo_sample.py [--height 704 --width 1280]

Writes ``demo_image.png`` (8-bit RGB), ``demo_depth.npz`` (key ``depth``, float16 z-depth,
H × W) and ``demo_camera.json`` (intrinsics in pixels of that image, and the convention) for
the ``room`` preset seen by the source camera (identity world-to-camera). Rerun it whenever the
renderer or the preset changes; ``tests/test_scenes.py`` checks the assets still match.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image

from gen3c.scenes import DEFAULT_FOV_DEGREES, DEMO_SCENE, DEMO_SEED, make_scene, render, source_camera

ASSETS = Path(__file__).resolve().parents[1] / "src" / "gen3c" / "assets"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--height", type=int, default=704)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument(
        "--supersample", type=int, default=3, help="antialiasing rays per pixel side (colour only)"
    )
    parser.add_argument("--out", type=Path, default=ASSETS)
    args = parser.parse_args()

    cam = source_camera(args.height, args.width, DEFAULT_FOV_DEGREES)
    out = render(make_scene(DEMO_SCENE, DEMO_SEED), cam, supersample=args.supersample)
    if not out.mask.all():
        raise SystemExit("the demo scene must cover every pixel (finite depth everywhere)")

    args.out.mkdir(parents=True, exist_ok=True)
    rgb = ((out.rgb[0].permute(1, 2, 0) + 1.0) * 127.5).round().clamp(0, 255).byte().numpy()
    Image.fromarray(rgb).save(args.out / "demo_image.png", optimize=True)
    np.savez_compressed(args.out / "demo_depth.npz", depth=out.depth[0].numpy().astype(np.float16))
    K = cam.K[0].tolist()
    meta = {
        "fx": K[0][0],
        "fy": K[1][1],
        "cx": K[0][2],
        "cy": K[1][2],
        "width": args.width,
        "height": args.height,
        "convention": (
            "OpenCV pinhole camera (x right, y down, z forward); intrinsics in pixels of this image with "
            "pixel centres at integer coordinates; depth is z-depth (not ray length) in scene units; "
            "the camera is the world origin (world-to-camera = identity)."
        ),
        "w2c": [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]],
        "scene": DEMO_SCENE,
        "seed": DEMO_SEED,
        "supersample": args.supersample,
        "made_by": "scripts/make_demo_sample.py",
    }
    text = json.dumps(meta, indent=2)
    # One line per matrix row keeps the file readable.
    text = text.replace(json.dumps(meta["w2c"], indent=2).replace("\n", "\n  "), json.dumps(meta["w2c"]))
    (args.out / "demo_camera.json").write_text(text + "\n")
    sizes = {p.name: p.stat().st_size for p in sorted(args.out.glob("demo_*"))}
    print(", ".join(f"{k}: {v / 1024:.0f} KiB" for k, v in sizes.items()))


if __name__ == "__main__":
    main()
