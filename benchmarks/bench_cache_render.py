"""Cache render speed: frames/s of :meth:`gen3c.cache.Cache3D.render` against plain numpy.

    PYTHONPATH=src python benchmarks/bench_cache_render.py [--device cpu|cuda|all] [--frames 24]

One source view of a procedural scene (704 × 1280 by default, every pixel a point) is lifted
into a :class:`~gen3c.cache.Cache3D` and rendered along GEN3C's ``left`` preset
(center_facing, movement 0.3) with the default bilinear soft-z-buffer splatting, twice: with
GEN3C's outputs (warped colour + validity mask, ``render(..., depth=False)``, what the diffusion
generator conditions on) and with the warped depth as well (the default; the preview generator
merges buffers by it). The same splatting written in plain numpy (``np.bincount``, one thread,
colour + mask) runs on the same points and cameras in the same process; the table gives frames/s
and the speed-up over numpy, and above it how far the two renders are apart: the largest colour
difference over the pixels both fill, and the pixels one fills and the other leaves empty (they
compute the same thing, torch in float32 and numpy in float64: a point whose offset from a pixel
centre is within float32's rounding of the 1e-3 snap reaches one more pixel in one of them, which
shows filled against empty where that point alone reaches it). With CUDA, one more pair of rows
keeps the cache on the CPU and splats it on the GPU, the renders copied back to the CPU four
frames at a time: what the gen3c generator does.
The GPU splat sums each pixel's contributions in int64 fixed point ("fixed": weights relative to
the pixel's largest, atomic integer adds, the same bits in any order); two more pairs of rows sum
them with CUDA's atomic float ``scatter_add_`` (not the same every time; gen3c before 2026-12-05)
and with ``scatter_add_`` in PyTorch's deterministic mode (gen3c on 2026-12-05), and one pair on
the CPU with the fixed-point sum. After the table: whether two renders with the fixed-point sum
are bit-identical, and how far the other sums are from it; the bytes of scratch the splat's
workspace holds for each sum (per point, what a cache of millions of points costs), and on CUDA
the peak memory allocated over each timed render.

Not a test: numbers depend on the machine. Record results with the device in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import run  # noqa: E402

import gen3c.cache  # noqa: E402
from gen3c.cache import DEPTH_WEIGHT_SHARPNESS, Cache3D, SplatWorkspace  # noqa: E402
from gen3c.scenes import SCENE_PRESETS, make_scene, render, source_camera  # noqa: E402
from gen3c.trajectories import preset_trajectory  # noqa: E402

_SNAP = 1e-3  # as gen3c.cache: points this close to a pixel centre land on it alone


def numpy_bilinear_splat(
    points: np.ndarray, colors: np.ndarray, w2c: np.ndarray, K: np.ndarray, height: int, width: int
):
    """GEN3C's bilinear forward splat with soft depth weights, in plain numpy (one view).

    Args:
        points: (N, 3) world points; colors: (N, 3); w2c: (4, 4); K: (3, 3).
    Returns:
        color (3, H, W) (−1 where empty), mask (H, W) bool.
    """
    cam = points @ w2c[:3, :3].T + w2c[:3, 3]
    z = cam[:, 2]
    front = z > 1e-6
    inv_z = 1.0 / np.where(front, z, 1.0)
    u = (K[0, 0] * cam[:, 0] + K[0, 1] * cam[:, 1]) * inv_z + K[0, 2]
    v = K[1, 1] * cam[:, 1] * inv_z + K[1, 2]
    x0, y0 = np.floor(u + _SNAP), np.floor(v + _SNAP)
    keep = front & (x0 >= -1) & (x0 < width) & (y0 >= -1) & (y0 < height)
    u, v, z, x0, y0, col = u[keep], v[keep], z[keep], x0[keep], y0[keep], colors[keep]
    log_z = np.log1p(np.clip(z, 0.0, 1000.0))
    base = np.exp(-DEPTH_WEIGHT_SHARPNESS * log_z / max(log_z.max(), 1e-8))
    fx, fy = u - x0, v - y0
    fx[fx < _SNAP] = 0.0
    fy[fy < _SNAP] = 0.0
    pw, ph = width + 2, height + 2  # one-pixel border so all 4 neighbours have a slot
    idx = ((y0 + 1) * pw + (x0 + 1)).astype(np.int64)
    idx4 = np.concatenate([idx, idx + 1, idx + pw, idx + pw + 1])
    w4 = np.concatenate(
        [base * (1 - fx) * (1 - fy), base * fx * (1 - fy), base * (1 - fx) * fy, base * fx * fy]
    )
    n = ph * pw
    weight = np.bincount(idx4, weights=w4, minlength=n)
    color = np.stack([np.bincount(idx4, weights=w4 * np.tile(col[:, c], 4), minlength=n) for c in range(3)])
    weight = weight.reshape(ph, pw)[1:-1, 1:-1]
    color = color.reshape(3, ph, pw)[:, 1:-1, 1:-1]
    mask = weight > 0
    color = np.where(mask, color / np.where(mask, weight, 1.0), -1.0)
    return color, mask


def render_difference(
    torch_frames: tuple[np.ndarray, np.ndarray], numpy_frames: list[tuple[np.ndarray, np.ndarray]]
) -> str:
    """How far the torch renders (colours (T, 3, H, W), masks (T, H, W) bool) are from numpy's
    (a (color, mask) per frame): the largest colour difference over the pixels both fill, and the
    pixels one of them fills alone (an empty pixel's colour is the fill value, −1, so one such pixel
    made the largest difference up to 2 where the colours agree to 1e-3)."""
    colors, masks = torch_frames
    largest, alone, pixels = 0.0, 0, 0
    for i, (np_color, np_mask) in enumerate(numpy_frames):
        both = masks[i] & np_mask
        if both.any():
            largest = max(largest, float(np.abs(colors[i] - np_color)[:, both].max()))
        alone += int((masks[i] != np_mask).sum())
        pixels += np_mask.size
    return f"max colour difference {largest:.2e} where both have a point; {alone:,} of {pixels:,} pixels filled by one only"


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def sum_label(device: str, how: str) -> str:
    """The table's words for summing as ``how`` on ``device``."""
    if how == "scatter":
        return "atomic scatter_add_ (not the same every time)" if device == "cuda" else "scatter_add_"
    return {"fixed": "fixed-point sum (the GPU's)", "deterministic mode": "scatter_add_ in torch's deterministic mode"}[how]


@contextlib.contextmanager
def splat_sum(device: str, how: str | None) -> Iterator[None]:
    """Within: the bilinear splat on ``device`` sums as ``how`` says (None: as gen3c does there);
    "deterministic mode" is ``scatter_add_`` with ``torch.use_deterministic_algorithms(True,
    warn_only=True)``, what gen3c did on a GPU on 2026-12-05."""
    saved = dict(gen3c.cache._SPLAT_SUM)
    if how is not None:
        gen3c.cache._SPLAT_SUM[device] = "scatter" if how == "deterministic mode" else how
    if how == "deterministic mode":
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(False)
        gen3c.cache._SPLAT_SUM.clear()
        gen3c.cache._SPLAT_SUM.update(saved)


def same_every_time(cache: Cache3D, cams, device: str) -> str:
    """One line: are two renders (colour, mask, depth) with the fixed-point sum on ``device``
    bit-identical, and how far are the scatter_add_ sums from it (float rounding in their order)."""
    with splat_sum(device, "fixed"):
        a, b = (cache.render(cams, device=device) for _ in range(2))
    same = all(torch.equal(x, y) for x, y in ((a.colors, b.colors), (a.masks, b.masks), (a.depths, b.depths)))
    line = f"{device}: two renders with the fixed-point sum are {'bit-identical' if same else 'DIFFERENT'}"
    for how in ("scatter", "deterministic mode") if device == "cuda" else ("scatter",):
        with splat_sum(device, how):
            c, d = (cache.render(cams, device=device) for _ in range(2))
        line += (
            f"; {sum_label(device, how)}: max |Δ colour| {float((c.colors - a.colors).abs().max()):.1e} from the fixed-point sum, "
            f"{float((c.colors - d.colors).abs().max()):.1e} between two renders"
        )
    return line


def scratch_line(cache: Cache3D, cams, device: str, how: str, chunk: int = 4) -> str:
    """One line: the bytes the splat's workspace holds after rendering ``chunk`` frames (a
    render's chunk) of ``cache``'s first view on ``device`` summed as ``how``."""
    workspace = SplatWorkspace()
    w2c, K = cams.w2c[:chunk].to(device), cams.K[:chunk].to(device)
    with splat_sum(device, how):
        cache.render_view(cache.views[0], w2c, K, cams.height, cams.width, workspace=workspace)
    n = int(cache.views[0].valid.sum())
    return (
        f"{device}, {sum_label(device, how)}: the splat's workspace holds {workspace.nbytes / 2**20:.1f} MiB for {n:,} points "
        f"({workspace.nbytes / n:.1f} bytes a point, per-pixel buffers included)"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    parser.add_argument(
        "--device", default="all", choices=("cpu", "cuda", "all"), help="cpu, cuda, or all (cpu, plus cuda when available)"
    )
    parser.add_argument("--frames", type=int, default=24, help="target frames per timed render")
    parser.add_argument("--height", type=int, default=704)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--scene", default="room", choices=list(SCENE_PRESETS))
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats; the best is reported")
    parser.add_argument("--numpy-frames", type=int, default=None, help="frames for numpy (default: --frames)")
    args = parser.parse_args(argv)
    for flag, value in (("--frames", args.frames), ("--height", args.height), ("--width", args.width), ("--repeats", args.repeats),
                        ("--numpy-frames", args.numpy_frames)):  # fmt: skip
        if value is not None and value < 1:
            parser.error(f"{flag} must be at least 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)

    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    if "cuda" in devices and not torch.cuda.is_available():
        if args.device != "all":
            raise SystemExit(f"--device {args.device}: this machine has no CUDA GPU; --device cpu measures the CPU")
        devices.remove("cuda")

    H, W = args.height, args.width
    src = source_camera(H, W)
    gt = render(make_scene(args.scene, seed=0), src)
    cams = preset_trajectory("left", "center_facing", args.frames, src.w2c[0], src.K[0], H, W)
    print(
        f"scene {args.scene!r}, {H}×{W}, 'left' preset, {args.frames} frames; "
        f"torch {torch.__version__} ({torch.get_num_threads()} CPU threads), numpy {np.__version__}, "
        f"{platform.processor() or platform.machine()}"
    )

    rows, peaks = [], []
    first_torch = None
    # (where the cache is, where it is splatted, where the renders go, how the splat sums: None for
    # the device's own); the cpu-cache rows are what the gen3c generator does on a GPU machine —
    # the cache kept on the CPU, splatted on the GPU, the renders copied back (DiT offloaded) or
    # left on the GPU (DiT resident).
    setups = [(device, device, device, None) for device in devices]
    if "cpu" in devices:
        setups.append(("cpu", "cpu", "cpu", "fixed"))
    if "cuda" in devices:
        setups += [("cpu", "cuda", "cpu", None), ("cpu", "cuda", "cuda", None)]
        setups += [("cuda", "cuda", "cuda", "scatter"), ("cuda", "cuda", "cuda", "deterministic mode")]
    caches = {}
    for home, device, output, how in setups:
        if home not in caches:
            caches[home] = Cache3D()
            caches[home].add_view(gt.rgb[0].to(home), gt.depth[0].to(home), src.K[0].to(home), src.w2c[0].to(home))
        cache = caches[home]
        n_points = int(cache.views[0].valid.sum())
        name = torch.cuda.get_device_name() if device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
        label = f"torch ({device})" if home == device else f"torch ({home} cache, {device} splat, renders on {output})"
        label += f", {sum_label(device, how)}" if how else ""
        with splat_sum(device, how):
            cache.render(cams[:2], device=device, output_device=output)  # warm-up
            _sync(device)
            # Repeats alternate between the two variants so that a noisy machine slows both alike.
            best = {False: float("inf"), True: float("inf")}
            peak = {False: 0, True: 0}  # bytes allocated on the GPU over a render, above what was before
            for _ in range(args.repeats):
                for depth in best:
                    if device == "cuda":
                        held = torch.cuda.memory_allocated()
                        torch.cuda.reset_peak_memory_stats()
                    t0 = time.perf_counter()
                    out = cache.render(cams, depth=depth, device=device, output_device=output)
                    _sync(device)
                    best[depth] = min(best[depth], time.perf_counter() - t0)
                    if device == "cuda":
                        peak[depth] = max(peak[depth], torch.cuda.max_memory_allocated() - held)
                    if first_torch is None:
                        first_torch = (
                            out.colors[:, 0].float().cpu().numpy(),
                            out.masks[:, 0, 0].cpu().numpy() > 0,
                        )
                    del out
        rows.append((f"{label}, colour + mask", name, args.frames / best[False]))
        rows.append((f"{label}, + depth", name, args.frames / best[True]))
        if device == "cuda":
            peaks += [f"{label}, {variant}: peak {peak[depth] / 2**20:.1f} MiB" for depth, variant in ((False, "colour + mask"), (True, "+ depth"))]
    checks = [same_every_time(caches[device], cams, device) for device in devices]
    checks += [scratch_line(caches[device], cams, device, how) for device in devices for how in ("scatter", "fixed")]
    if peaks:
        checks.append("GPU memory allocated over a render, above what was before it (outputs included): " + "; ".join(peaks))

    # Plain numpy, same points and cameras.
    view = Cache3D()
    view.add_view(gt.rgb[0], gt.depth[0], src.K[0], src.w2c[0])
    p, c = view.point_cloud()
    pts, cols = p.double().numpy(), c.double().numpy()
    w2cs, Ks = cams.w2c.double().numpy(), cams.K.double().numpy()
    n_np = args.numpy_frames or args.frames
    best_np, np_frames = float("inf"), []
    for _ in range(max(1, args.repeats if n_np <= 8 else 1)):
        t0 = time.perf_counter()
        frames = [numpy_bilinear_splat(pts, cols, w2cs[i], Ks[i], H, W) for i in range(n_np)]
        best_np = min(best_np, time.perf_counter() - t0)
        np_frames = frames
    np_fps = n_np / best_np
    rows.append(("numpy (bincount)", "CPU, 1 thread", np_fps))
    difference = render_difference(first_torch, np_frames[: args.frames])
    print(f"\n{n_points:,} points; numpy vs torch: {difference}\n")
    print(f"| {'implementation':<64} | {'device':<24} | {'frames/s':>9} | {'× numpy':>8} |")
    print(f"|{'-' * 66}|{'-' * 26}|{'-' * 11}|{'-' * 10}|")
    for impl, dev, fps in rows:
        print(f"| {impl:<64} | {dev:<24} | {fps:>9.2f} | {fps / np_fps:>8.2f} |")
    print()
    for line in checks:
        print(line)


if __name__ == "__main__":
    run(main)
