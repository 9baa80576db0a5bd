"""Memory of the GEN3C generator: calibrate the estimate behind ``--max_gpu_memory`` and check it.

Full size: GEN3C-Cosmos-7B with random bfloat16 weights, one 121-frame 704×1280 chunk.

1. Each network stage alone, from the weights already on the GPU: one DiT forward, the tokenizer's
   encode of the conditions (first frame + 2 buffers × colour and mask, as the pipeline does) and
   its decode, whole-video and in chunks of 2 latent frames. Its activation memory (peak allocated
   minus what was allocated before) gives the coefficients of :mod:`gen3c.models.memory`: the DiT's
   per token and hidden unit; the tokenizer's two terms (the whole video held during a pass, and
   one chunk's activations) from the whole-video and the chunked measurement.
2. Each plan ``--max_gpu_memory`` chooses from, run end to end (encode, ``--steps`` sampler steps at
   guidance 1, decode): measured peak beside the estimate made with the shipped coefficients and
   with the ones just measured, with the step, encode and decode times.

3. ``--inputs`` (CPU): the memory of *reading* a video input. A synthetic clip (default 600
   frames of 1080×1920) is written into a temporary folder as a ViPE result (H.264 from x264's
   veryfast preset with its default keyframe interval, half-float EXR depth and PNG instance
   masks in zips, as ViPE writes them) and as a GEN3C sample directory (the same mp4,
   ``depth.npz`` float16 and ``mask.npz`` deflated); then a 121-frame job at 704×1280 is read
   from each ``--starts`` frame, each row in a fresh process (so its peak RSS is its own): the
   reader as it was (the baseline: the job's frames decoded from the clip's first frame and
   stacked at the source size, the ViPE depth and masks likewise, the sample's npz arrays loaded
   whole; then fitted to the working size) and the streaming reader (``read_vipe`` /
   ``read_sample``: decoding from the last IDR frame before the start, each frame fitted as it
   comes). Both must give the same stack: the table says so from a hash of every tensor.

    python benchmarks/bench_memory.py                # CUDA GPU, ~5 minutes
    python benchmarks/bench_memory.py --tiny         # CPU smoke test of the script
    python benchmarks/bench_memory.py --inputs       # CPU, ~3 minutes (writing the clip takes most)
    python benchmarks/bench_memory.py --inputs --tiny
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from bench_common import check_writable, device_or_exit, resolution, run, write_json  # noqa: E402
from bench_dit import build_module, build_pipeline, make_inputs, run_pipeline, sync  # noqa: E402

from gen3c.models import configs, memory  # noqa: E402
from gen3c.models.memory import BUDGET_PLANS, ModelSize, estimate_peak_gb, memory_plan  # noqa: E402
from gen3c.models.tokenizer import decode_latents  # noqa: E402

GiB = 2**30


def allocated(device: torch.device) -> int:
    return torch.cuda.memory_allocated(device) if device.type == "cuda" else 0


def stage_peak(device: torch.device, fn) -> tuple[float, float | None]:
    """(seconds, bytes allocated at the peak of ``fn`` beyond what was allocated before it; None
    off a GPU, where it is not measured)."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    before = allocated(device)
    sync(device)
    start = time.perf_counter()
    with torch.no_grad():
        fn()
    sync(device)
    seconds = time.perf_counter() - start
    if device.type != "cuda":
        return seconds, None
    return seconds, torch.cuda.max_memory_allocated(device) - before


def calibrate(args, device: torch.device) -> dict:
    """Activation bytes of each stage alone and the coefficients they give (None off a GPU)."""
    from diffusers import AutoencoderKLCosmos, CosmosTransformer3DModel, EDMEulerScheduler

    from gen3c.pipelines.gen3c import Gen3cPipeline

    dtype = torch.float32 if args.tiny else torch.bfloat16
    tcfg = configs.TRANSFORMER_TINY if args.tiny else configs.TRANSFORMER_7B
    vcfg = configs.VAE_TINY if args.tiny else configs.VAE_CV8X8X8
    dit = build_module(CosmosTransformer3DModel, tcfg, device, dtype)
    vae = build_module(AutoencoderKLCosmos, vcfg, device, dtype)
    size = ModelSize.of(dit, vae, args.frames, args.height, args.width)
    pipe = Gen3cPipeline(dit, vae, EDMEulerScheduler(**configs.SCHEDULER_GEN3C))
    image, colors, masks = make_inputs(args)
    out: dict = {"size": size.__dict__}

    latent_t = (args.frames - 1) // 8 + 1
    h, w = args.height // 8, args.width // 8
    x = torch.randn(1, 16, latent_t, h, w, device=device, dtype=dtype)
    cond = torch.randn(1, 1 + configs.BUFFER_CHANNELS, latent_t, h, w, device=device, dtype=dtype)
    text = torch.randn(1, configs.MAX_SEQUENCE_LENGTH, tcfg["text_embed_dim"], device=device, dtype=dtype)
    pad = torch.zeros(1, 1, h, w, device=device, dtype=dtype)
    t = torch.tensor([0.5], device=device, dtype=dtype)

    def forward():
        dit(hidden_states=x, timestep=t, encoder_hidden_states=text, fps=24, condition_mask=cond,
            padding_mask=pad, return_dict=False)  # fmt: skip

    with torch.no_grad():
        forward()  # warm-up (kernels, workspaces)
    seconds, act = stage_peak(device, forward)
    out["dit_forward"] = {"s": seconds, "activation_gb": gb(act)}
    out["DIT_ACTIVATION_BYTES"] = None if act is None else act / (size.tokens * size.hidden)

    latents = torch.randn(1, 16, latent_t, h, w)
    video = args.frames * args.height * args.width
    chunked_frames = min(args.frames, 2 * 8 + 1)
    for chunk in (None, 2):
        pipe.memory = memory_plan(vae_chunk_frames=chunk or 0)
        key = "whole" if chunk is None else "chunks_of_2"
        seconds, act = stage_peak(device, lambda: pipe.encode_conditions(image, colors, masks))
        out[f"encode_{key}"] = {"s": seconds, "activation_gb": gb(act)}
        seconds, act = stage_peak(
            device, lambda: decode_latents(vae, latents.to(device), sigma_data=0.5, chunk_frames=chunk)  # noqa: B023
        )
        out[f"decode_{key}"] = {"s": seconds, "activation_gb": gb(act)}
    # activation = video_bytes · (frames·pixels) + chunk_bytes · (chunk frames·pixels·channels): two
    # measurements, two unknowns.
    for stage, channels in (("ENCODE", size.encoder_channels), ("DECODE", size.decoder_channels)):
        if out["dit_forward"]["activation_gb"] is None:
            out[f"VAE_{stage}_BYTES"] = out[f"VAE_{stage}_VIDEO_BYTES"] = None
            continue
        whole = out[f"{stage.lower()}_whole"]["activation_gb"] * GiB
        part = out[f"{stage.lower()}_chunks_of_2"]["activation_gb"] * GiB
        per_chunk = (whole - part) / (args.height * args.width * channels * (args.frames - chunked_frames))
        out[f"VAE_{stage}_BYTES"] = per_chunk
        out[f"VAE_{stage}_VIDEO_BYTES"] = (part - per_chunk * chunked_frames * args.height * args.width * channels) / video
    # The shipped coefficients are bf16's and the estimate scales them by dtype_bytes / 2: a float32
    # (--tiny) calibration is put in bf16 terms so it compares with them and is not scaled twice.
    for key in COEFFICIENTS:
        if out[key] is not None:
            out[key] /= size.dtype_bytes / 2
    gc.collect()
    return out


def gb(n_bytes: float | None) -> float | None:
    return None if n_bytes is None else n_bytes / GiB


COEFFICIENTS = (
    "DIT_ACTIVATION_BYTES", "VAE_ENCODE_VIDEO_BYTES", "VAE_ENCODE_BYTES", "VAE_DECODE_VIDEO_BYTES", "VAE_DECODE_BYTES",
)  # fmt: skip


def estimate_with(coefs: dict, plan, size: ModelSize) -> float:
    """The estimate with the coefficients ``coefs`` in place of the shipped ones."""
    saved = {k: getattr(memory, k) for k in COEFFICIENTS}
    for k in COEFFICIENTS:
        setattr(memory, k, coefs[k])
    try:
        return estimate_peak_gb(plan, size)
    finally:
        for k, v in saved.items():
            setattr(memory, k, v)


def plan_indices(text: str) -> list[int]:
    """``--plans``: 'all' or comma-separated indices into :data:`BUDGET_PLANS`."""
    if text == "all":
        return list(range(len(BUDGET_PLANS)))
    try:
        picks = [int(i) for i in text.split(",")]
    except ValueError:
        picks = [-1]
    if not picks or any(not 0 <= i < len(BUDGET_PLANS) for i in picks):
        raise argparse.ArgumentTypeError(f"{text!r}: 'all' or comma-separated indices 0 … {len(BUDGET_PLANS) - 1} of BUDGET_PLANS")
    return picks


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tiny", action="store_true", help="tiny random model, 33 frames of 32×48 (CPU smoke test)")
    parser.add_argument("--steps", type=int, default=2, help="sampler steps per plan (the first is a warm-up)")
    parser.add_argument("--plans", type=plan_indices, default="all", help="comma-separated indices into BUDGET_PLANS, or 'all'")
    parser.add_argument("--json", type=Path, default=None)
    reading = parser.add_argument_group("--inputs: the memory of reading a video input (CPU)")
    reading.add_argument("--inputs", action="store_true", help="measure reading a ViPE result instead of the generator")
    reading.add_argument("--input_frames", type=int, default=None, help="frames of the synthetic clip (default 600; 40 with --tiny)")
    reading.add_argument("--input_size", type=resolution, default=None, help="its H×W (default 1080x1920; 120x224 with --tiny)")
    reading.add_argument("--job_frames", type=int, default=None, help="frames the job reads (default 121; 9 with --tiny)")
    reading.add_argument("--job_resolution", type=resolution, default=None, help="the working size (default 704x1280; 64x112 with --tiny)")
    reading.add_argument("--starts", type=start_list, default=None, help="comma-separated first frames of the job (default 0 and 400; 0,30 with --tiny)")
    reading.add_argument("--layouts", type=layout_list, default=["vipe", "sample"], help="comma-separated: vipe, sample (default both)")
    reading.add_argument("--input_dir", type=Path, default=None, help="write the clip here and keep it (reused when it is there)")
    reading.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.steps < 2:
        parser.error("--steps must be at least 2 (the first is a warm-up, not timed)")
    if args.inputs:
        tiny = args.tiny
        args.input_frames = args.input_frames or (40 if tiny else 600)
        args.input_size = args.input_size or ("120x224" if tiny else "1080x1920")
        args.job_frames = args.job_frames or (9 if tiny else 121)
        args.job_resolution = args.job_resolution or ("64x112" if tiny else "704x1280")
        args.starts = args.starts or ([0, 30] if tiny else [0, 400])
        if max(args.starts) >= args.input_frames:
            parser.error(f"--starts {max(args.starts)} lies past the clip's {args.input_frames} frames")
    return args


def layout_list(text: str) -> list[str]:
    """``--layouts``: comma-separated names of :data:`INPUT_ROWS`."""
    layouts = [v.strip() for v in text.split(",") if v.strip()]
    if not layouts or any(v not in INPUT_ROWS for v in layouts):
        raise argparse.ArgumentTypeError(f"{text!r}: comma-separated layouts among {', '.join(INPUT_ROWS)}")
    return layouts


def start_list(text: str) -> list[int]:
    """``--starts``: comma-separated frame indices ≥ 0."""
    try:
        starts = [int(v) for v in text.split(",")]
    except ValueError:
        starts = [-1]
    if not starts or min(starts) < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: comma-separated frame indices ≥ 0, e.g. 0,400")
    return starts


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.inputs:
        return main_inputs(args)
    device = device_or_exit(args.device, full_size=not args.tiny)
    check_writable(args.json)
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()
    args.frames, args.height, args.width = (33, 32, 48) if args.tiny else (configs.CHUNK_FRAMES, *configs.RESOLUTION)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device: {name} | torch {torch.__version__} | {args.frames} frames {args.height}x{args.width}", flush=True)
    if device.type != "cuda":
        print("(no GPU: memory is not measured here; the coefficients and peaks print as —)", flush=True)

    cal = calibrate(args, device)
    shipped = {k: getattr(memory, k) for k in COEFFICIENTS}
    print("\nstage activations (peak allocated − allocated before):")
    for key in ("dit_forward", "encode_whole", "encode_chunks_of_2", "decode_whole", "decode_chunks_of_2"):
        print(f"  {key:<20} {fmt(cal[key]['activation_gb'], '7.2f'):>7} GB  {cal[key]['s']:6.2f} s")
    print("coefficients   measured   shipped")
    for key, value in shipped.items():
        print(f"  {key:<24} {fmt(cal[key], '8.3f'):>8} {value:8.3f}")

    size = ModelSize(**{"dtype_bytes": 2, **cal["size"]})  # calibrations written before dtype_bytes: bf16
    picks = args.plans
    rows = []
    inputs = make_inputs(args)
    for i in picks:
        label, options = BUDGET_PLANS[i]
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        opts = dict(options)
        chunk = opts.pop("vae_chunk_frames", None)
        bench_args = SimpleNamespace(tiny=args.tiny, attention_backend=None, vae_chunk_frames=chunk)
        pipe, _ = build_pipeline(bench_args, device, opts)
        run = run_pipeline(pipe, inputs, device, args.steps, 1.0)
        del pipe
        plan = memory_plan(**options)
        row = {
            "plan": label,
            "measured_gb": run.get("peak_allocated_gb"),
            "estimate_shipped_gb": estimate_peak_gb(plan, size),
            "estimate_measured_gb": estimate_with(cal, plan, size) if cal["DIT_ACTIVATION_BYTES"] is not None else None,
            "step_s": statistics.median(run["step_times_s"][1:]),
            "encode_s": run["encode_s"],
            "decode_s": run["decode_s"],
        }
        rows.append(row)
        print(f"[{label}] measured {fmt(row['measured_gb'], '.2f')} GB, estimate {row['estimate_shipped_gb']:.2f} GB", flush=True)

    print(f"\n{'tiny model' if args.tiny else 'GEN3C-7B'} memory plans — {args.frames} frames {args.height}x{args.width} — {name}")
    head = (f"{'plan':<52} {'peak GB':>8} {'est. GB':>8} {'est./peak':>9} {'refit GB':>9} {'s/step':>7} "
            f"{'enc s':>6} {'dec s':>6}")  # fmt: skip
    print(head)
    print("-" * len(head))
    for r in rows:
        ratio = r["estimate_shipped_gb"] / r["measured_gb"] if r["measured_gb"] else None
        print(f"{r['plan']:<52} {fmt(r['measured_gb'], '8.2f'):>8} {r['estimate_shipped_gb']:>8.2f} {fmt(ratio, '9.2f'):>9} "
              f"{fmt(r['estimate_measured_gb'], '9.2f'):>9} {r['step_s']:>7.2f} {r['encode_s']:>6.1f} {r['decode_s']:>6.1f}")  # fmt: skip
    result = {"device": name, "torch": torch.__version__, "calibration": cal, "shipped": shipped, "plans": rows}
    if args.json:
        write_json(args.json, result)
    return result


def fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


# -- reading a video input (--inputs) -------------------------------------------------------------

INPUT_ROWS = {
    "vipe": {"whole": "ViPE: whole-decode (the reader before)", "stream": "ViPE: read_vipe (streaming)"},
    "sample": {"whole": "sample dir: whole npz (the reader before)", "stream": "sample dir: read_sample (streaming)"},
}


def synthetic_frame(i: int, x, y):
    """Frame ``i`` of the synthetic clip: (rgb (H, W, 3) uint8, depth (H, W) float16 with sky
    (NaN) in the top eighth, instance ids (H, W) uint8) on the pixel grid ``x``, ``y``."""
    import numpy as np

    h, w = x.shape
    rgb = np.stack([(x + 7 * i) % 256, (y + 3 * i) % 256, ((x + y) / 4 + 11 * np.sin(i / 9) * 20) % 256], -1).astype(np.uint8)
    depth = (2.0 + (y / h) * 3 + 0.5 * np.sin(x / 97 + i / 13)).astype(np.float16)
    depth[: h // 8] = np.nan
    ids = ((x // (w / 4)) + (y // (h / 2)) * 4).astype(np.uint8)
    return rgb, depth, ids


def write_synthetic_inputs(folder: Path, frames: int, size: tuple[int, int]) -> None:
    """The same clip as a ViPE result ``folder/vipe`` (clip "c") and a GEN3C sample directory
    ``folder/sample``: moving textures, a depth that changes smoothly with some sky, instance
    masks (the sample's mask leaves instance 0 out). H.264 as x264 writes it by default (an IDR
    frame every 250, B-frames), with the veryfast preset to write it in minutes; the sample's
    npz arrays deflated as ``numpy.savez_compressed`` writes them, but a frame at a time."""
    import io
    import zipfile

    import av
    import numpy as np
    import OpenEXR
    from PIL import Image

    from gen3c.cameras import invert_pose

    vipe, sample = folder / "vipe", folder / "sample"
    h, w = size
    for sub in ("rgb", "pose", "intrinsics", "depth", "mask"):
        (vipe / sub).mkdir(parents=True, exist_ok=True)
    sample.mkdir(parents=True, exist_ok=True)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    c2w = np.tile(np.eye(4), (frames, 1, 1))
    c2w[:, 0, 3] = np.arange(frames) * 0.01
    np.savez(vipe / "pose" / "c.npz", data=c2w, inds=np.arange(frames))
    f = 0.8 * w
    np.savez(vipe / "intrinsics" / "c.npz", data=np.tile([f, f, w / 2, h / 2], (frames, 1)), inds=np.arange(frames))
    K = np.tile(np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1]], np.float32), (frames, 1, 1))
    np.savez(sample / "camera.npz", w2c=invert_pose(torch.from_numpy(c2w)).numpy().astype(np.float32), intrinsics=K)

    def npz_member(archive: zipfile.ZipFile, key: str, dtype) -> io.BufferedIOBase:
        member = archive.open(f"{key}.npy", "w", force_zip64=True)
        np.lib.format.write_array_header_1_0(member, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
                                                      "shape": (frames, h, w)})  # fmt: skip
        return member

    with av.open(str(vipe / "rgb" / "c.mp4"), "w") as video, \
            zipfile.ZipFile(vipe / "depth" / "c.zip", "w", zipfile.ZIP_DEFLATED) as exrs, \
            zipfile.ZipFile(vipe / "mask" / "c.zip", "w", zipfile.ZIP_DEFLATED) as pngs, \
            zipfile.ZipFile(sample / "depth.npz", "w", zipfile.ZIP_DEFLATED, compresslevel=1) as depth_npz, \
            zipfile.ZipFile(sample / "mask.npz", "w", zipfile.ZIP_DEFLATED, compresslevel=1) as mask_npz, \
            npz_member(depth_npz, "depth", np.float16) as sample_depth, npz_member(mask_npz, "mask", bool) as sample_mask:  # fmt: skip
        stream = video.add_stream("libx264", rate=30, options={"preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for i in range(frames):
            rgb, depth, ids = synthetic_frame(i, x, y)
            video.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
            buf = io.BytesIO()
            with OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}, {"Z": depth}) as exr:
                exr.write(buf)
            exrs.writestr(f"{i:05d}.exr", buf.getvalue())
            buf = io.BytesIO()
            Image.fromarray(ids).save(buf, format="PNG")
            pngs.writestr(f"{i:05d}.png", buf.getvalue())
            sample_depth.write(depth.tobytes())
            sample_mask.write((ids != 0).tobytes())
            if i % 50 == 0:
                print(f"  {i}/{frames} frames written", flush=True)
        video.mux(stream.encode())
    shutil.copy(vipe / "rgb" / "c.mp4", sample / "rgb.mp4")


def prepare_inputs(folder: Path, frames: int, size: str) -> None:
    """The synthetic clip in ``folder``: written there unless a finished one of ``frames`` frames
    of ``size`` is (``clip.json``, written last, marks it finished); one of another length or size
    is refused."""
    from gen3c.io.atomic import write_text_atomic
    from gen3c.io.resolution import parse_resolution

    h, w = parse_resolution(size)
    marker, wanted = folder / "clip.json", {"frames": frames, "size": f"{h}x{w}"}
    if marker.is_file():
        held = json.loads(marker.read_text())
        if held != wanted:
            raise SystemExit(f"--input_dir {folder} holds a clip of {held['frames']} frames of {held['size']}, not {frames} frames of "
                             f"{h}x{w}: pass --input_frames {held['frames']} --input_size {held['size']}, or another folder")  # fmt: skip
        return
    print(f"writing a synthetic clip of {frames} frames of {h}x{w} as ViPE result and sample directory to {folder} …", flush=True)
    begin = time.perf_counter()
    write_synthetic_inputs(folder, frames, (h, w))
    write_text_atomic(marker, json.dumps(wanted) + "\n")
    print(f"  written in {time.perf_counter() - begin:.0f} s", flush=True)


def decode_stacked(path: Path, start: int, count: int):
    """The reader before: frames ``start`` … decoded from the clip's first frame, then stacked."""
    import av
    import numpy as np

    frames = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for i, frame in enumerate(container.decode(stream)):
            if i >= start:
                frames.append(frame.to_ndarray(format="rgb24"))
                if len(frames) >= count:
                    break
        return np.stack(frames), float(stream.average_rate)


def read_whole_vipe(root: Path, size: tuple[int, int], start: int, count: int):
    """gen3c's ViPE reader before it streamed, kept as the baseline: the job's frames decoded from
    the first frame of the clip and stacked at the source size, their depth and masks decoded into
    one array each, the invalid depth filled over the stack, then the stack fitted."""
    import zipfile

    import numpy as np

    from gen3c.cameras import invert_pose, validate_intrinsics, validate_poses
    from gen3c.io.depth import fill_invalid_depth
    from gen3c.io.frames import FrameStack, fit_frames
    from gen3c.io.video import count_video_frames
    from gen3c.io.vipe import _decode_exr, _decode_png, _load_rows, _select_rows

    total = count_video_frames(root / "rgb" / "c.mp4")
    needed = list(range(start, min(total, start + count)))
    c2w = _select_rows(*_load_rows(root / "pose" / "c.npz", "pose/c.npz"), "pose/c.npz", needed, total, (4, 4), "poses")
    w2c = invert_pose(validate_poses(torch.from_numpy(c2w)))
    intrinsics = _load_rows(root / "intrinsics" / "c.npz", "intrinsics/c.npz")
    intr = torch.from_numpy(_select_rows(*intrinsics, "intrinsics/c.npz", needed, total, (4,), "intrinsics"))
    K = torch.zeros(len(needed), 3, 3)
    K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2], K[:, 2, 2] = intr[:, 0], intr[:, 1], intr[:, 2], intr[:, 3], 1.0
    K = validate_intrinsics(K)
    frames, fps = decode_stacked(root / "rgb" / "c.mp4", start, len(needed))
    arrays = {}
    for kind, suffix, decode in (("depth", ".exr", _decode_exr), ("mask", ".png", _decode_png)):
        with zipfile.ZipFile(root / kind / "c.zip") as archive:
            out = None
            for i, f in enumerate(needed):
                array = decode(archive.read(f"{f:05d}{suffix}"))
                if out is None:
                    out = np.empty((len(needed), *array.shape), dtype=array.dtype)
                out[i] = array
        arrays[kind] = out
    depth, valid = fill_invalid_depth(torch.from_numpy(arrays["depth"]), "depth")
    stack = FrameStack(images=torch.from_numpy(frames).permute(0, 3, 1, 2).contiguous(), depth=depth, valid=valid, w2c=w2c.float(),
                       K=K, fps=fps, frame_indices=needed, instance_ids=torch.from_numpy(arrays["mask"]))  # fmt: skip
    return fit_frames(stack, size)


def read_whole_sample(folder: Path, size: tuple[int, int], start: int, count: int):
    """gen3c's sample-directory reader before it streamed: ``depth.npz`` and ``mask.npz`` loaded
    whole (every frame of the clip), the job's frames decoded as :func:`read_whole_vipe` does,
    the frames used picked from the arrays, then the stack fitted."""
    import numpy as np

    from gen3c.cameras import check_intrinsics_fit, validate_poses
    from gen3c.io.depth import fill_invalid_depth
    from gen3c.io.frames import FrameStack, fit_frames
    from gen3c.io.npz import load_npz_array
    from gen3c.io.video import count_video_frames

    depth, mask = load_npz_array(folder / "depth.npz", "depth"), load_npz_array(folder / "mask.npz", "mask")
    w2c, K = load_npz_array(folder / "camera.npz", "w2c"), load_npz_array(folder / "camera.npz", "intrinsics")
    stop = min(count_video_frames(folder / "rgb.mp4"), start + count)
    frames, fps = decode_stacked(folder / "rgb.mp4", start, stop - start)
    depth_t, valid = fill_invalid_depth(torch.from_numpy(depth[start:stop].astype(np.float32)), "depth",
                                        mask=torch.from_numpy(mask[start:stop].astype(bool)))  # fmt: skip
    w2c_t = validate_poses(torch.from_numpy(w2c[start:stop].astype(np.float32)))
    K_t = check_intrinsics_fit(torch.from_numpy(K[start:stop].astype(np.float32)), *frames.shape[1:3])
    stack = FrameStack(images=torch.from_numpy(frames).permute(0, 3, 1, 2).contiguous(), depth=depth_t, valid=valid, w2c=w2c_t, K=K_t,
                       fps=fps, frame_indices=list(range(start, stop)))  # fmt: skip
    return fit_frames(stack, size)


def measure_input_row(layout: str, row: str, folder: Path, size: tuple[int, int], start: int, count: int) -> dict:
    """One row, in this process: seconds and peak RSS of reading the job, and a hash of what it read."""
    import warnings

    import av  # noqa: F401  (the libraries both rows load, loaded before the baseline RSS)
    import OpenEXR  # noqa: F401

    from gen3c.io.gen3c_sample import read_sample
    from gen3c.io.vipe import read_vipe

    readers = {("vipe", "whole"): read_whole_vipe, ("sample", "whole"): read_whole_sample,
               ("vipe", "stream"): lambda *a: read_vipe(a[0], a[1], start=a[2], num_frames=a[3]),
               ("sample", "stream"): lambda *a: read_sample(a[0], a[1], start=a[2], num_frames=a[3])}  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    begin = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the sky's note
        stack = readers[layout, row](folder / layout, size, start, count)
    seconds = time.perf_counter() - begin
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    tensors = [t for t in (stack.images, stack.depth, stack.valid, stack.instance_ids) if t is not None]
    digest = hashlib.sha256()
    for tensor in (*tensors, stack.w2c, stack.K):
        digest.update(tensor.contiguous().numpy().data)
    return {"layout": layout, "row": row, "start": start, "frames": len(stack), "seconds": seconds, "peak_rss_gb": peak / GiB,
            "read_gb": (peak - before) / GiB, "result_gb": sum(t.numel() * t.element_size() for t in tensors) / GiB,
            "hash": digest.hexdigest()[:16]}  # fmt: skip


def main_inputs(args: argparse.Namespace) -> dict:
    from gen3c.io.resolution import parse_resolution

    size = parse_resolution(args.job_resolution)
    if args.child:
        layout, row, start = args.child.split(":")
        print(json.dumps(measure_input_row(layout, row, args.input_dir, size, int(start), args.job_frames)))
        return {}
    check_writable(args.json)
    scratch = None
    try:
        folder = args.input_dir or Path(scratch := tempfile.mkdtemp(prefix="gen3c_bench_inputs_"))
        prepare_inputs(folder, args.input_frames, args.input_size)
        rows = []
        for layout in args.layouts:
            for start in args.starts:
                for row in INPUT_ROWS[layout]:
                    cmd = [sys.executable, __file__, "--inputs", "--child", f"{layout}:{row}:{start}", "--input_dir", str(folder),
                           "--job_frames", str(args.job_frames), "--job_resolution", args.job_resolution]  # fmt: skip
                    done = subprocess.run(cmd, capture_output=True, text=True)
                    if done.returncode != 0:  # e.g. killed for want of memory
                        tail = done.stderr.strip().splitlines()[-1:]
                        rows.append({"layout": layout, "row": row, "start": start, "failed": f"exit {done.returncode}: {tail}"})
                    else:
                        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
                    print(f"[{INPUT_ROWS[layout][row]}, start {start}] {rows[-1]}", flush=True)
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GiB
    print(f"\nReading a {args.job_frames}-frame job at {args.job_resolution} from a {args.input_frames}-frame {args.input_size} clip "
          f"— CPU, {os.cpu_count()} cores, {memory_gb:.0f} GiB, torch {torch.__version__}, load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    print("\n".join(input_table(rows)))
    result = {"device": "cpu", "cores": os.cpu_count(), "memory_gb": memory_gb, "load_average": os.getloadavg()[0],
              "input": {"frames": args.input_frames, "size": args.input_size},
              "job": {"frames": args.job_frames, "resolution": args.job_resolution}, "rows": rows}  # fmt: skip
    if args.json:
        write_json(args.json, result)
    return result


def input_table(rows: list[dict]) -> list[str]:
    """The --inputs table's lines: each streaming row against the reader before it (its "whole"
    row of the same layout and start); "—" where that baseline failed."""
    head = f"{'row':<44} {'start':>5} {'s':>6} {'× base':>7} {'peak RSS GB':>12} {'read GB':>8} {'× base':>7} {'result GB':>10}  same"
    lines = [head, "-" * len(head)]
    base = {(r["layout"], r["start"]): r for r in rows if r["row"] == "whole" and "failed" not in r}
    for r in rows:
        label = INPUT_ROWS[r["layout"]][r["row"]]
        if "failed" in r:
            lines.append(f"{label:<44} {r['start']:>5}  failed ({r['failed']})")
            continue
        b = base.get((r["layout"], r["start"]))
        time_ratio = "—" if b is None else f"{r['seconds'] / b['seconds']:.2f}"
        read_ratio = "—" if b is None else f"{r['read_gb'] / max(b['read_gb'], 1e-9):.2f}"
        same = "—" if b is None or b is r else ("yes" if r["hash"] == b["hash"] else "NO")
        lines.append(f"{label:<44} {r['start']:>5} {r['seconds']:>6.1f} {time_ratio:>7} {r['peak_rss_gb']:>12.2f} "
                     f"{r['read_gb']:>8.2f} {read_ratio:>7} {r['result_gb']:>10.2f}  {same}")  # fmt: skip
    return lines


if __name__ == "__main__":
    run(main)
