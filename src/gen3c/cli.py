"""The ``gen3c`` command line: ``gen3c demo``, ``gen3c generate`` and friends.

Flag names follow GEN3C's scripts (``--input_image_path``, ``--video_save_name``, …) so their
commands carry over. Mistakes a user can make end in a one-line error and exit code 2.
"""

from __future__ import annotations

import functools
import sys
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
    from gen3c.pipelines.request import GenerationRequest

    request = GenerationRequest(
        input_image_path=str(input_image_path), depth_path=None if depth_path is None else str(depth_path),
        png_depth_scale=png_depth_scale, mask_invalid_depth=mask_invalid_depth, intrinsics=intrinsics, fov=fov,
        trajectory=trajectory.value, camera_rotation=camera_rotation.value, movement_distance=movement_distance,
        trajectory_scale=trajectory_scale.value, camera_file=None if camera_file is None else str(camera_file),
        num_video_frames=num_video_frames, filter_points_threshold=filter_points_threshold,
        foreground_masking=foreground_masking, splat=splat.value, resolution=resolution, resize_mode=resize_mode.value,
        generator=generator.value, seed=seed, video_save_folder=str(video_save_folder), video_save_name=video_save_name,
        save_buffer=save_buffer, save_point_cloud=save_point_cloud, fps=fps,
    )  # fmt: skip
    _run(request)


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
    """Run the preview generator on the shipped sample (image + depth): no downloads, seconds on a CPU."""
    from gen3c.io.images import parse_resolution
    from gen3c.pipelines.camera_video import prepare_source
    from gen3c.pipelines.request import GenerationRequest
    from gen3c.scenes import load_demo_sample

    request = GenerationRequest(
        trajectory=trajectory.value, camera_rotation=camera_rotation.value, movement_distance=movement_distance,
        num_video_frames=num_video_frames, resolution=resolution, foreground_masking=foreground_masking,
        video_save_folder=str(video_save_folder), video_save_name=video_save_name, save_buffer=save_buffer,
        save_point_cloud=save_point_cloud,
    )  # fmt: skip
    image, depth, K = load_demo_sample()
    source = prepare_source(image, depth, K, parse_resolution(resolution), "crop", depth_kind="metric")
    _run(request, source=source)


def _run(request, source=None) -> None:
    from gen3c.pipelines.request import run_request

    with rich_progress() as progress:
        out = run_request(request, source=source, progress=progress)
    frames = out.result.frames
    console.print(
        f"[green]wrote[/] {out.paths['video']} ({len(frames)} frames, {frames.shape[-1]}×{frames.shape[-2]}) in {out.seconds:.1f} s"
    )
    for key, path in out.paths.items():
        if key != "video":
            console.print(f"      {path}")


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
