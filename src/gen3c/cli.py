"""The ``gen3c`` command line: ``gen3c demo``, ``gen3c generate`` and friends.

Flag names follow GEN3C's scripts (``--input_image_path``, ``--video_save_name``, …) so their
commands carry over. Mistakes a user can make end in a one-line error and exit code 2.
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from gen3c.errors import Gen3cInputError

app = typer.Typer(
    name="gen3c",
    help="GEN3C: camera-controlled video generation guided by a 3D cache.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)


class Trajectory(str, Enum):
    left = "left"
    right = "right"
    up = "up"
    down = "down"
    zoom_in = "zoom_in"
    zoom_out = "zoom_out"
    clockwise = "clockwise"
    counterclockwise = "counterclockwise"


class Rotation(str, Enum):
    center_facing = "center_facing"
    no_rotation = "no_rotation"
    trajectory_aligned = "trajectory_aligned"


class TrajectoryScale(str, Enum):
    auto = "auto"
    gen3c = "gen3c"
    median_depth = "median_depth"


class GeneratorName(str, Enum):
    preview = "preview"
    gen3c = "gen3c"


class ResizeMode(str, Enum):
    crop = "crop"
    stretch = "stretch"


class Splat(str, Enum):
    bilinear = "bilinear"
    zbuffer = "zbuffer"


def user_errors(func: Callable) -> Callable:
    """Turn user mistakes into one line on stderr and exit code 2 (no traceback)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except Gen3cInputError as exc:
            console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=exc.exit_code) from None
        except KeyboardInterrupt:
            console.print("[bold red]interrupted[/]: no partial output was kept")
            raise typer.Exit(code=130) from None

    return wrapper


@contextmanager
def rich_progress():
    """A :data:`~gen3c.pipelines.camera_video.ProgressFactory` drawing rich progress bars."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:

        def factory(stage: str, total: int) -> Callable[[int], None]:
            task = progress.add_task(stage, total=total)
            return lambda n=1: progress.advance(task, n)

        yield factory


# Options shared by `generate` and `demo` -----------------------------------------------------

TrajectoryOpt = Annotated[Trajectory, typer.Option("--trajectory", help="Camera path preset (GEN3C's).")]
RotationOpt = Annotated[
    Rotation,
    typer.Option(
        "--camera_rotation",
        help="center_facing: look at the scene centre; no_rotation: keep orientation; trajectory_aligned: turn with the motion.",
    ),
]
DistanceOpt = Annotated[
    float,
    typer.Option(
        "--movement_distance",
        help="How far the camera moves (GEN3C default 0.3). Its unit is set by --trajectory_scale.",
    ),
]
ScaleOpt = Annotated[
    TrajectoryScale,
    typer.Option(
        "--trajectory_scale",
        help="What --movement_distance means. gen3c: depth units with look-at depth 1 (exactly GEN3C); "
        "median_depth: the path is scaled by the source's median depth; auto: gen3c for up-to-scale "
        "depth estimates (MoGe), median_depth for metric or user depth.",
    ),
]
FramesOpt = Annotated[
    int,
    typer.Option(
        "--num_video_frames",
        help="Frames to generate. The gen3c generator needs 120·N+1 (121, 241, …); the preview takes any count.",
    ),
]
FolderOpt = Annotated[Path, typer.Option("--video_save_folder", help="Folder for the outputs (created if needed).")]
NameOpt = Annotated[str, typer.Option("--video_save_name", help="Base name of the output files (no extension).")]
SaveBufferOpt = Annotated[
    bool,
    typer.Option(
        "--save_buffer",
        help="As GEN3C: widen the video with the cache renders left of each frame, and write the buffer masks as NAME_buffer_masks.mp4.",
    ),
]
PlyOpt = Annotated[bool, typer.Option("--save_point_cloud", help="Also write the 3D cache as NAME.ply.")]
FgOpt = Annotated[
    bool,
    typer.Option("--foreground_masking", help="Hide background seen through cracks at depth edges (GEN3C's curtain test)."),
]
FilterOpt = Annotated[
    float,
    typer.Option(
        "--filter_points_threshold",
        help="Drop points at depth edges: (max−min)/mean depth over 5×5 above this leaves the cache (GEN3C: 0.05; 0 keeps all).",
    ),
]
ResolutionOpt = Annotated[
    str,
    typer.Option("--resolution", help="Working resolution HEIGHTxWIDTH (GEN3C: 704x1280). Lower is faster for the preview."),
]
ResizeOpt = Annotated[
    ResizeMode,
    typer.Option("--resize_mode", help="crop: keep the aspect ratio and centre-crop; stretch: GEN3C's plain resize."),
]
SplatOpt = Annotated[
    Splat, typer.Option("--splat", help="Cache rendering: bilinear soft z-buffer splatting (GEN3C) or a hard z-buffer.")
]
GeneratorOpt = Annotated[
    GeneratorName,
    typer.Option("--generator", help="preview: CPU hole filling, no weights; gen3c: the GEN3C diffusion model."),
]
CameraFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--camera_file",
        help="Custom path instead of a preset: gen3c cameras JSON (w2c or c2w + K per frame) or nerfstudio camera_path.json.",
    ),
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed of the diffusion sampler (the preview is deterministic).")]
FpsOpt = Annotated[float, typer.Option("--fps", help="Frame rate of the written video (GEN3C: 24).")]


@app.command()
@user_errors
def generate(
    input_image_path: Annotated[Path, typer.Option("--input_image_path", help="Source image (PNG, JPEG, WebP, …).")],
    video_save_name: NameOpt = "output",
    video_save_folder: FolderOpt = Path("outputs"),
    trajectory: TrajectoryOpt = Trajectory.left,
    camera_rotation: RotationOpt = Rotation.center_facing,
    movement_distance: DistanceOpt = 0.3,
    trajectory_scale: ScaleOpt = TrajectoryScale.auto,
    camera_file: CameraFileOpt = None,
    num_video_frames: FramesOpt = 121,
    depth_path: Annotated[
        Path | None,
        typer.Option("--depth_path", help="Depth of the image (z-depth): .npy, .npz (key 'depth'), 16-bit PNG or .exr."),
    ] = None,
    png_depth_scale: Annotated[
        float, typer.Option("--png_depth_scale", help="Depth = PNG value × this (default 0.001: millimetres → metres).")
    ] = 0.001,
    mask_invalid_depth: Annotated[
        bool,
        typer.Option("--mask_invalid_depth", help="Leave NaN/inf/≤0 depth pixels out of the cache instead of refusing the file."),
    ] = False,
    intrinsics: Annotated[
        str | None,
        typer.Option("--intrinsics", help="Camera intrinsics of the input image as 'fx,fy,cx,cy' in its pixels."),
    ] = None,
    fov: Annotated[
        float | None, typer.Option("--fov", help="Horizontal field of view of the input image in degrees (instead of --intrinsics).")
    ] = None,
    save_buffer: SaveBufferOpt = False,
    save_point_cloud: PlyOpt = False,
    foreground_masking: FgOpt = False,
    filter_points_threshold: FilterOpt = 0.05,
    generator: GeneratorOpt = GeneratorName.preview,
    resolution: ResolutionOpt = "704x1280",
    resize_mode: ResizeOpt = ResizeMode.crop,
    splat: SplatOpt = Splat.bilinear,
    seed: SeedOpt = 1,
    fps: FpsOpt = 24.0,
) -> None:
    """Generate a camera-controlled video from a single image."""
    from gen3c.io.depth import conform_depth, load_depth
    from gen3c.io.images import load_image, parse_resolution

    size = parse_resolution(resolution)
    image = load_image(input_image_path)
    h, w = image.shape[-2:]
    K = _input_intrinsics(intrinsics, fov, h, w)
    if depth_path is None:
        raise Gen3cInputError(
            "no --depth_path given and depth estimation is not available yet: pass --depth_path (npy, npz, 16-bit PNG or EXR)"
        )
    depth, valid = conform_depth(load_depth(depth_path, png_depth_scale), (h, w), f"depth file {str(depth_path)!r}", mask_invalid_depth)
    if K is None:
        raise Gen3cInputError("user depth needs the camera: pass --intrinsics fx,fy,cx,cy or --fov DEGREES")
    _run_single_image(
        image, depth, K, valid, "metric",
        size=size, resize_mode=resize_mode.value, trajectory=trajectory.value, camera_rotation=camera_rotation.value,
        movement_distance=movement_distance, trajectory_scale=trajectory_scale.value, camera_file=camera_file,
        num_video_frames=num_video_frames, generator_name=generator.value, filter_points_threshold=filter_points_threshold,
        foreground_masking=foreground_masking, splat=splat.value, video_save_folder=video_save_folder,
        video_save_name=video_save_name, save_buffer=save_buffer, save_point_cloud=save_point_cloud, fps=fps, seed=seed,
    )  # fmt: skip


@app.command()
@user_errors
def demo(
    video_save_folder: FolderOpt = Path("outputs"),
    video_save_name: NameOpt = "demo",
    trajectory: TrajectoryOpt = Trajectory.left,
    camera_rotation: RotationOpt = Rotation.center_facing,
    movement_distance: DistanceOpt = 0.3,
    num_video_frames: FramesOpt = 121,
    resolution: ResolutionOpt = "352x640",
    save_buffer: SaveBufferOpt = False,
    save_point_cloud: PlyOpt = False,
    foreground_masking: FgOpt = False,
) -> None:
    """Run the preview generator on the shipped sample (image + depth): no downloads, a few seconds on a CPU."""
    from gen3c.io.images import parse_resolution
    from gen3c.scenes import load_demo_sample

    image, depth, K = load_demo_sample()
    _run_single_image(
        image, depth, K, depth > 0, "metric",
        size=parse_resolution(resolution), resize_mode="crop", trajectory=trajectory.value,
        camera_rotation=camera_rotation.value, movement_distance=movement_distance, trajectory_scale="auto",
        camera_file=None, num_video_frames=num_video_frames, generator_name="preview", filter_points_threshold=0.05,
        foreground_masking=foreground_masking, splat="bilinear", video_save_folder=video_save_folder,
        video_save_name=video_save_name, save_buffer=save_buffer, save_point_cloud=save_point_cloud, fps=24.0, seed=1,
    )  # fmt: skip


def _input_intrinsics(intrinsics: str | None, fov: float | None, height: int, width: int):
    from gen3c.cameras import intrinsics_from_fov, make_intrinsics, validate_intrinsics

    if intrinsics is not None and fov is not None:
        raise Gen3cInputError("pass either --intrinsics or --fov, not both")
    if fov is not None:
        return intrinsics_from_fov(fov, height, width)
    if intrinsics is None:
        return None
    try:
        values = [float(v) for v in intrinsics.replace(" ", "").split(",")]
    except ValueError:
        values = []
    if len(values) != 4:
        raise Gen3cInputError(f"--intrinsics {intrinsics!r} must be four numbers 'fx,fy,cx,cy' in pixels of the input image")
    return validate_intrinsics(make_intrinsics(*values), "--intrinsics")


def make_generator(name: str, **options):
    """The generator named on the command line."""
    if name == "preview":
        from gen3c.pipelines.preview import PreviewGenerator

        return PreviewGenerator()
    raise Gen3cInputError(
        "the gen3c diffusion generator is not available in this version yet: use --generator preview"
    )


def _run_single_image(
    image, depth, K, valid, depth_kind, *, size, resize_mode, trajectory, camera_rotation, movement_distance,
    trajectory_scale, camera_file, num_video_frames, generator_name, filter_points_threshold, foreground_masking,
    splat, video_save_folder, video_save_name, save_buffer, save_point_cloud, fps, seed,
) -> dict:  # fmt: skip
    from gen3c.io.atomic import ensure_writable_dir
    from gen3c.io.camera_files import fit_cameras, load_camera_file
    from gen3c.pipelines.camera_video import (
        build_cache,
        check_num_frames,
        generate_video,
        prepare_source,
        preset_cameras,
        save_outputs,
    )

    started = time.perf_counter()
    ensure_writable_dir(video_save_folder, "--video_save_folder")
    generator = make_generator(generator_name, seed=seed)
    check_num_frames(num_video_frames, generator)
    source = prepare_source(image, depth, K, size, resize_mode, valid=valid, depth_kind=depth_kind)
    if camera_file is not None:
        cameras = fit_cameras(load_camera_file(camera_file), num_video_frames, *size, name=f"camera file {str(camera_file)!r}")
    else:
        cameras = preset_cameras(source, trajectory, camera_rotation, num_video_frames, movement_distance, trajectory_scale)
    cache = build_cache([source], filter_points_threshold, foreground_masking, splat)
    with rich_progress() as progress:
        result = generate_video(cache, cameras, generator, first_frame=source.image, progress=progress)
    settings = {
        "generator": generator_name, "resolution": list(size), "num_video_frames": num_video_frames,
        "trajectory": None if camera_file else trajectory, "camera_rotation": None if camera_file else camera_rotation,
        "movement_distance": movement_distance, "trajectory_scale": trajectory_scale,
        "camera_file": str(camera_file) if camera_file else None, "filter_points_threshold": filter_points_threshold,
        "foreground_masking": foreground_masking, "splat": splat, "seed": seed, "fps": fps,
    }  # fmt: skip
    paths = save_outputs(
        result, video_save_folder, video_save_name, save_buffer=save_buffer, cache=cache,
        save_point_cloud=save_point_cloud, fps=fps, metadata=settings,
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    console.print(f"[green]wrote[/] {paths['video']} ({len(result.frames)} frames, {size[1]}×{size[0]}) in {elapsed:.1f} s")
    for key, path in paths.items():
        if key != "video":
            console.print(f"      {path}")
    return paths


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
