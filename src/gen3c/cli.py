"""The ``gen3c`` command line: ``gen3c demo``, ``gen3c generate`` and friends.

Flag names follow GEN3C's scripts (``--input_image_path``, ``--video_save_name``, …) so their
commands carry over. Mistakes a user can make end in a one-line error and exit code 2.
"""

from __future__ import annotations

import builtins
import functools
import gc
import json
import os
import re
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperCommand, TyperGroup

from gen3c.errors import (
    Gen3cInputError,
    Terminated,
    counted,
    exit_command_line,
    path_to_copy,
    quoted,
    quoted_path,
    stop_when_the_launcher_is_gone,
    unusable_path_error,
)
from gen3c.progress import progress_bars


class _FlagsShowNoValue:
    """Typer's rich help prints a flag's type after it (``--resume <bool>``, ``--compile
    --no_compile <bool>``) as if it took a value; a flag's placeholder is left empty instead."""

    def get_params(self, ctx):
        params = super().get_params(ctx)  # the command's options and its --help
        for param in params:
            if getattr(param, "is_flag", False) and param.metavar is None:
                param.metavar = ""
        return params


class _Command(_FlagsShowNoValue, TyperCommand):
    def parse_args(self, ctx, args):
        with _usage_errors_in_one_line(self, ctx, list(args)):
            typed = list(args)
            if not ctx.resilient_parsing:  # (shell completion parses half-typed lines)
                _refuse_empty_paths(self, ctx, list(args))
            rest = super().parse_args(ctx, args)
            if not ctx.resilient_parsing:
                user_errors(_expand_home_paths)(self, ctx, typed)
            return rest


def _click_module(name: str):
    """Module ``name`` of the click typer runs on: click's own, or typer's copy of it (typer._click)."""
    import importlib

    return importlib.import_module(TyperCommand.__mro__[1].__module__.rsplit(".", 1)[0] + "." + name)


def _click_exceptions():
    """The exceptions of the click typer runs on."""
    return _click_module("exceptions")


@contextmanager
def _usage_errors_in_one_line(command, ctx, args: list[str] | None = None) -> Iterator[None]:
    """click's usage errors (an unknown option or command, a bad or missing value) as one line, as
    a command's own errors are (``error: …``, exit code 2), not click's usage box: the input, what
    is wrong and the fix (click's "did you mean", the nearest choice, else the command's --help)."""
    exceptions = _click_exceptions()
    try:
        yield
    except exceptions.UsageError as exc:
        if isinstance(exc, getattr(exceptions, "NoArgsIsHelpError", ())):  # `gen3c` alone: its help, as asked
            raise
        rank = _other_rank()
        if rank is not None:  # under torchrun every rank meets the same mistake: rank 0 alone says it
            _wait_for_rank_0_to_fail(2)
        where = "" if rank is None else f"rank {rank}: "
        console.print(f"[bold red]{where}error:[/] {escape(_usage_error_line(exc, command, ctx, args))}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=2) from None


def _usage_error_line(exc, command, ctx, args: list[str] | None) -> str:
    import difflib
    import inspect
    import typing

    path = (exc.ctx or ctx).command_path  # (the parser's errors carry no context)
    see = f"see `{path} --help`"
    if isinstance(exc, _click_exceptions().NoSuchOption):
        close = sorted(exc.possibilities or ())
        fix = f"did you mean {' or '.join(close)}? ({see})" if close else f"{see} for its options"
        return f"{exc.option_name} is no option of {path}: {fix}"
    param = getattr(exc, "param", None)
    choices = None
    if param is not None and args is not None and getattr(command, "callback", None) is not None:
        hint = typing.get_type_hints(inspect.unwrap(command.callback)).get(param.name)
        hint = next((h for h in typing.get_args(hint) if h is not type(None)), hint)  # Choice | None
        if inspect.isclass(hint) and issubclass(hint, Enum):
            choices = [member.value for member in hint]
    if choices is not None:
        given, _, _ = command.make_parser(ctx).parse_args(args=list(args))  # the value as typed
        value = given.get(param.name)
        if isinstance(value, str) and value not in choices:
            close = difflib.get_close_matches(value, choices, n=1)
            fix = f"did you mean {close[0]!r}? (one of {', '.join(choices)})" if close else f"pick one of {', '.join(choices)}"
            return f"{param.opts[0]} {quoted(value, 40)} is unknown: {fix}"
    message = " ".join(exc.format_message().split()).rstrip(".")  # click's, on one line
    # A value it quotes, cut to its start and its end: "unexpected extra argument(s) (…)" quoted a stray one whole.
    message = re.sub(r"\S{81,}", lambda m: f"{m[0][:40]}…{m[0][-39:]}", message)
    return f"{message} ({see})"


@functools.cache
def _path_parameters(callback: Callable) -> frozenset[str]:
    """The parameters of a command's function annotated as a ``Path`` (or ``Path | None``)."""
    import inspect
    import types
    import typing

    hints = typing.get_type_hints(inspect.unwrap(callback))
    return frozenset(name for name, hint in hints.items() if hint is Path or (isinstance(hint, types.UnionType) and Path in hint.__args__))


def _refuse_empty_paths(command, ctx, args: list[str]) -> None:
    """Refuse a path given as an empty string, as an unset shell variable gives it (``--cache_dir
    "$CACHE"``): typer reads it as ``Path('.')``, the current folder, and would go on there; or as
    spaces alone (``--video_save_folder " "``), which made a folder of that invisible name. And
    one given as a URL: typer makes ``https://host/a.png`` the local path ``https:/host/a.png``,
    which "does not exist"."""
    given, _, _ = command.make_parser(ctx).parse_args(args=list(args))  # the words as typed, before typer converts them (the parser empties its list)
    if given.get("help"):
        return
    for param in command.params:
        value = given.get(param.name)
        blank = isinstance(value, str) and not value.strip()
        if param.name in _path_parameters(command.callback) and (blank or _is_url(value)):
            # The option as typed (--npz_path is --multiview_npz's other name).
            typed = next((word.split("=", 1)[0] for word in args if word.split("=", 1)[0] in param.opts), None)
            if blank:
                user_errors(_empty_path)(param, typed)
            user_errors(_url_path)(param, typed, value)


def _is_url(value: object) -> bool:
    # (a scheme of two letters or more: "C://x" is a Windows drive)
    return isinstance(value, str) and re.match(r"[A-Za-z][A-Za-z0-9+.-]+://", value) is not None


def _url_path(param, typed: str | None, value: str) -> None:
    what = param.name.upper() if param.param_type_name == "argument" else typed or param.opts[0]
    if value[:7].lower() == "file://":  # a local file's URL (a browser's address bar): its path is the fix
        from urllib.parse import urlsplit
        from urllib.request import url2pathname

        path = url2pathname(urlsplit(value).path)
        raise Gen3cInputError(f"{what} {quoted(value, 200)} is a file's URL: give its path, {path_to_copy(path)}")
    raise Gen3cInputError(f"{what} {quoted(value, 200)} is a URL: gen3c reads local files; download it first and give its path")


def _expand_home_paths(command, ctx, args: list[str]) -> None:
    """A path typed with a leading ``~`` (quoted, or after ``=``, where the shell leaves it) names
    the home folder as the shell would: ``--output_folder=~/out`` wrote into a folder named ``~``
    in the current one; ``~user`` of no user is refused naming the option."""
    from gen3c.io.paths import expand_home

    for param in command.params:
        value = ctx.params.get(param.name)
        # (a Path, or the text as typed where typer converts it later: typer < 0.29 keeps a str here)
        if param.name in _path_parameters(command.callback) and isinstance(value, (str, Path)) and str(value).startswith("~"):
            typed = next((word.split("=", 1)[0] for word in args if word.split("=", 1)[0] in param.opts), None)
            what = param.name.upper() if param.param_type_name == "argument" else typed or param.opts[0]
            ctx.params[param.name] = expand_home(value, what)


def _empty_path(param, typed: str | None = None) -> None:
    if param.param_type_name == "argument":
        raise Gen3cInputError(f"{param.name.upper()} is empty: give a path")
    raise Gen3cInputError(f"{typed or param.opts[0]} is empty (an unset shell variable?): give a path, or leave the option out")


class _Group(_FlagsShowNoValue, TyperGroup):
    def parse_args(self, ctx, args):
        with _usage_errors_in_one_line(self, ctx):
            return super().parse_args(ctx, args)

    def resolve_command(self, ctx, args):
        with _usage_errors_in_one_line(self, ctx):  # a mistyped command ("Did you mean 'generate'?")
            return super().resolve_command(ctx, args)


class _Typer(typer.Typer):
    """A ``typer.Typer`` whose groups and commands show flags without a value placeholder."""

    def __init__(self, **kwargs):
        super().__init__(cls=_Group, **kwargs)

    def command(self, *args, **kwargs):
        return super().command(*args, cls=_Command, **kwargs)


app = _Typer(
    name="gen3c",
    help="GEN3C: camera-controlled video generation guided by a 3D cache.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)


def _print_version(value: bool) -> None:
    if value:
        from gen3c import __version__

        print(f"gen3c {__version__}")
        raise typer.Exit()


@app.callback()
def _gen3c(
    version: Annotated[
        bool, typer.Option("--version", is_eager=True, callback=_print_version, help="Print gen3c's version and exit (`gen3c env` shows the rest).")
    ] = False,
) -> None:
    """GEN3C: camera-controlled video generation guided by a 3D cache."""


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
    command = func.__name__.removesuffix("_command").replace("_", " ")  # eval_command, cache_list

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            try:
                return func(*args, **kwargs)
            except Exception as exc:
                # A package missed by the checks up front, or broken: one line naming it (diffusers
                # wraps the ImportError of its lazy imports in a RuntimeError; a broken install may
                # raise anything as it is imported, an AttributeError, say).
                from gen3c.dependencies import dependency_error

                error = None if isinstance(exc, Gen3cInputError) else dependency_error(exc, f"gen3c {command}") or unusable_path_error(exc)
                if error is None:
                    raise
                notes = getattr(exc, "__notes__", None)  # what was kept (eval's partial report), said on the one line too
                raise (type(error)(f"{error}; {'; '.join(map(str, notes))}") if notes else error) from None
        except Gen3cInputError as exc:
            _leave_process_group_without_waiting()
            rank = _other_rank()
            if rank is not None:
                _wait_for_rank_0_to_fail(exc.exit_code)
            where = "" if rank is None else f"rank {rank}: "
            console.print(f"[bold red]{where}error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=exc.exit_code) from None
        except KeyboardInterrupt as exc:
            _leave_process_group_without_waiting()
            # Ctrl-C (SIGINT) or SIGTERM: the shell's codes 128 + the signal's number.
            what, code = ("terminated", 143) if isinstance(exc, Terminated) else ("interrupted", 130)
            if _other_rank() is not None:  # Ctrl-C reaches every rank: rank 0 says it, and torchrun then stops this one
                _wait_for_rank_0_to_fail(code)  # (leaving at once got rank 0 stopped before it had said it)
                raise typer.Exit(code=code) from None
            console.print(f"[bold red]{what}[/]: {escape(str(exc)) or 'no partial output was kept'}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=code) from None
        except BrokenPipeError:
            if not _stdout_is_closed():  # another pipe (an encoder's): not the reader's going away
                raise
            # The reader of stdout left (`gen3c env --json | head`): end quietly, as the shell's own
            # tools do (128 + SIGPIPE), not with a traceback that calls it a bug.
            _leave_process_group_without_waiting()
            raise typer.Exit(code=141) from None
        except Exception as exc:  # no mistake gen3c knows how to name: a bug, or the machine's own failure
            import traceback

            click = _click_exceptions()  # (newer typers have their own Exit and Abort, older ones click's)
            own = tuple(getattr(click, name) for name in ("Exit", "Abort", "ClickException") if hasattr(click, name))
            if isinstance(exc, (typer.Exit, typer.Abort, *own)):  # a command's own exit, click's errors
                raise
            _leave_process_group_without_waiting()
            _stop_as_a_peer_left(exc)
            traceback.print_exception(exc)  # (to stderr, as Python would)
            console.print(
                f"[bold red]error:[/] gen3c {escape(command)} stopped on an unexpected {type(exc).__name__} (its traceback and notes above). Unless it is "
                "this machine's own (a full disk, a GPU driver error), it is a bug in gen3c: please report it with that traceback and "
                "the output of `gen3c env --json`",
                highlight=False, soft_wrap=True,
            )  # fmt: skip
            raise typer.Exit(code=1) from None

    return wrapper


def _stdout_is_closed() -> bool:
    """Whether stdout's reader has gone (a pipe closed early: poll reports an error on its write
    end); if so, stdout is pointed at /dev/null, so that the interpreter's own flush at exit does
    not fail on it again."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), 0)
        closed = any(events & select.POLLERR for _, events in poller.poll(0))
    except (AttributeError, ValueError, OSError):  # no poll (Windows), no file descriptor (a notebook)
        return False
    if closed:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return closed


RANK_0_ERROR_WAIT = 10.0
"""Seconds another rank of a multi-GPU run waits, on a one-line error, for torchrun to stop it
because rank 0 failed too (:func:`_wait_for_rank_0_to_fail`)."""

RANK_0_TERMINATED_WAIT = 2.0
"""Seconds another rank waits on SIGTERM, which comes from torchrun: stopping this rank because
another one exited (rank 0 has said why), or passing its own SIGTERM (a scheduler's stop) to
every rank, rank 0 then saying it; torchrun's monitor sees an exit within 0.1 s."""


def _other_rank() -> int | None:
    """This process's rank in a launch of several processes (torchrun's ``RANK``), None for
    rank 0 and a plain run. Read from the environment: the process group may not exist yet."""
    try:
        world, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    except ValueError:
        return None
    return rank if world > 1 and rank > 0 else None


def _refuse_torchrun(command: str, work: str) -> None:
    """Refuse a launch of several processes for a command that runs in one: each process did all
    of it into the same outputs (two ranks of `gen3c eval` took each other for another run writing
    its report folder and one stopped, saying so; `gen3c gui` would serve two GUIs; `gen3c demo`
    was told to pass --num_gpus, which it has no flag for); ``srun -n 2`` too."""
    if "WORLD_SIZE" not in os.environ and "SLURM_STEP_NUM_TASKS" not in os.environ:  # a plain run: torch is not imported for the check
        return
    from gen3c.parallel import refuse_several_processes

    refuse_several_processes(command, work)


def _wait_for_rank_0_to_fail(code: int) -> None:
    """On another rank's one-line error (or Ctrl-C), give rank 0 the word: every rank checks the same
    settings and inputs, so rank 0 meets the same mistake (soon after, or soon before), says it
    and exits, and torchrun stops this rank, which then leaves silently. N ranks printing one
    mistake would be N lines, and the first rank to exit gets the others stopped mid-print. Only
    a mistake of this rank's own (its GPU) outlasts :data:`RANK_0_ERROR_WAIT` and is printed.
    SIGTERM (``code`` 143) waits :data:`RANK_0_TERMINATED_WAIT`: torchrun sends each rank one, so
    waiting longer only held up the end of every run whose rank 0 failed first (by 10 s)."""
    try:
        time.sleep(RANK_0_TERMINATED_WAIT if code == 143 else RANK_0_ERROR_WAIT)
    except KeyboardInterrupt:  # torchrun's SIGTERM (or Ctrl-C): rank 0 has reported
        raise typer.Exit(code=code) from None


def _leave_process_group_without_waiting() -> None:
    """A multi-GPU rank leaving on an error does not wait for its peers at exit
    (:func:`gen3c.parallel.leave_without_waiting`)."""
    parallel = sys.modules.get("gen3c.parallel")  # loaded by multi-GPU runs only (it imports torch)
    if parallel is not None:
        parallel.leave_without_waiting()


def _stop_as_a_peer_left(exc: BaseException) -> None:
    """When ``exc`` is a collective that failed because another rank left
    (:func:`gen3c.parallel.left_by_a_peer`: that rank's own one-line error, a kill), it is no bug
    of this rank's: rank 0 says so in one line, another rank leaves silently as on its own error
    (:func:`_wait_for_rank_0_to_fail`), and the command exits 1 (was: a traceback calling it a
    bug in gen3c). Otherwise nothing."""
    parallel = sys.modules.get("gen3c.parallel")
    if parallel is None or not parallel.left_by_a_peer(exc):
        return
    rank = _other_rank()
    if rank is not None:
        _wait_for_rank_0_to_fail(1)
    kept = "".join(f"; {escape(str(line))}" for line in getattr(exc, "__notes__", ()))  # (rank 0's kept chunks: run_request's note)
    console.print(
        f"[bold red]{'' if rank is None else f'rank {rank}: '}error:[/] another rank of this run stopped (its own line, or "
        f"torchrun's summary of the failed ranks, says why), so this one stops too{kept}",
        highlight=False, soft_wrap=True,
    )  # fmt: skip
    raise typer.Exit(code=1) from None


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
        help="How far the camera moves (GEN3C default 0.3). Its unit is set by --trajectory_scale. "
        "Below 0 it moves the other way, as in GEN3C: left runs right's path, up down's, zoom_in zoom_out's; "
        "a circle keeps its turning direction on the other side.",
    ),
]
DemoDistanceOpt = Annotated[
    float,
    typer.Option(
        "--movement_distance",
        help="How far the camera moves, as a share of the sample's median depth (GEN3C default 0.3); below 0 the other way (left runs right's path).",
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
    int | None,
    typer.Option(
        "--num_video_frames",
        help="Frames to generate (default: one per camera of --camera_file, else one chunk of the model, 121; the tiny "
        "model's 17). The gen3c generator "
        "needs (chunk−1)·N+1 (121, 241, …; tiny: 17, 33, …); the preview takes any count.",
        show_default=False,
    ),
]
DemoFramesOpt = Annotated[
    int,
    typer.Option("--num_video_frames", help="Frames to generate (any count; 241, 361, … = 120·N+1 are made in N chunks of 121)."),
]
GuiFramesOpt = Annotated[
    int | None,
    typer.Option(
        "--num_video_frames",
        help="Frames of the camera path to start with (default: one chunk of the model, 121; the tiny model's 17; an imported "
        "camera path brings its own). The gen3c generator needs (chunk−1)·N+1 (121, 241, …; tiny: 17, 33, …); the preview "
        "takes any count.",
        show_default=False,
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
        help="Drop points at depth edges: (max−min)/mean depth over 5×5 above this leaves the cache (GEN3C: 0.05; 0, or 1 and above as in GEN3C, keeps all).",
    ),
]
ResolutionOpt = Annotated[
    str | None,
    typer.Option(
        "--resolution",
        help="Working resolution HEIGHTxWIDTH, multiples of 8 (of 16 for the gen3c generator). Default: what the gen3c model was trained at (--model tiny: 64x112), else GEN3C's 704x1280. Lower is faster for the preview.",
        show_default=False,
    ),
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
        help="Custom path instead of a preset: gen3c cameras JSON (w2c or c2w + K per frame), nerfstudio camera_path.json or nerfstudio transforms.json (docs/cameras.md).",
    ),
]
IntrinsicsOpt = Annotated[
    str | None,
    typer.Option(
        "--intrinsics",
        help="Camera intrinsics of the input image: 'fx,fy,cx,cy' in its pixels, or a file (JSON fx/fy/cx/cy or K, txt, npy; a camera file such as nerfstudio's transforms.json; COLMAP's cameras.txt).",
    ),
]
FovOpt = Annotated[
    float | None, typer.Option("--fov", help="Horizontal field of view of the input image in degrees (instead of --intrinsics).")
]
ESTIMATORS = (
    "'moge' (GEN3C's, Ruicheng/moge-vitl), a MoGe model.pt, depth_pro, depth_anything_v2, zoedepth or any transformers "
    "depth model id or folder, or 'prior' (no weights: ground plane + wall)."
)
#: Without --depth_estimator the preview stands the prior in for MoGe where its weights cannot load; named, never.
DEFAULT_ESTIMATOR = " Default: moge, the preview falling back to the prior where its weights cannot load (never for an estimator named)."
DepthEstimatorOpt = Annotated[
    str | None,
    typer.Option(
        "--depth_estimator",
        help="Depth estimator for a single image (without --depth_path, or for the camera of a --depth_path without "
        "--intrinsics/--fov): " + ESTIMATORS + DEFAULT_ESTIMATOR,
        show_default=False,
    ),
]
DepthCommandEstimatorOpt = Annotated[str, typer.Option("--depth_estimator", help="Depth estimator: " + ESTIMATORS)]
GuiEstimatorOpt = Annotated[
    str | None,
    typer.Option(
        "--depth_estimator", help="Depth estimator for an image loaded without depth (or without a camera): " + ESTIMATORS + DEFAULT_ESTIMATOR, show_default=False
    ),
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed of the gen3c generator's sampler (the preview draws no random numbers).")]
FpsOpt = Annotated[float | None, typer.Option("--fps", help="Frame rate of the written video (default: the --camera_file's, else a video input's own, else 24 as GEN3C).")]
ResumeOpt = Annotated[
    bool,
    typer.Option(
        "--resume",
        help="Continue an interrupted long run (several chunks) of the same command from its last finished chunk, "
        "kept in NAME.partial/ beside the outputs.",
    ),
]


# Options of the gen3c diffusion generator (GEN3C's flag names) ------------------------------------

#: The --help panel of the speed settings (--speed and the flags that override its presets).
SPEED_PANEL = "Speed (gen3c generator)"

CheckpointOpt = Annotated[
    str | None,
    typer.Option(
        "--checkpoint_dir",
        help="gen3c generator: a checkpoint folder made by `gen3c convert` (or a hub id of one). Without it (and without "
        "--model), GEN3C's weights are fetched from the Hugging Face Hub and converted on first use, then reused.",
    ),
]
WeightsCacheOpt = Annotated[
    Path | None,
    typer.Option(
        "--cache_dir",
        help="Folder of gen3c's converted GEN3C weights (default $GEN3C_CACHE_DIR, else $XDG_CACHE_HOME/gen3c, else "
        "~/.cache/gen3c); downloads go to the Hugging Face cache (HF_HOME).",
    ),
]
GuidanceOpt = Annotated[
    float | None,
    typer.Option(
        "--guidance",
        help="gen3c generator: GEN3C's guidance, cond + g·(cond − uncond) with the buffers dropped from uncond; "
        "1 (GEN3C's default) runs two model passes per step, 0 runs one. Default: the model's own (a distilled student: 0), else 1.",
    ),
]
StepsOpt = Annotated[
    int | None,
    typer.Option(
        "--num_steps",
        rich_help_panel=SPEED_PANEL,
        help="gen3c generator: sampler steps. Default: the model's own (a distilled student's few: other counts are noted, it never learnt them), else the --speed "
        "preset's (exact: GEN3C's 35). Fewer are approximate: with Euler the video is 50.0 dB PSNR from the 35 steps' at 18 "
        "steps and 38.7 dB at 8 (the shipped small model, as --speed's fast and fastest).",
    ),
]
#: Why an offload flag may be refused: where the memory mode already decides it, it would change nothing.
_OFFLOAD_REFUSED = "Refused with --memory_mode model_offload/group_offload, --low_memory or --max_gpu_memory, which decide it"
PromptOpt = Annotated[
    str,
    typer.Option(
        "--prompt",
        help="gen3c generator: text prompt (GEN3C's scripts use none; a non-empty one loads T5). Refused with --disable_prompt_encoder.",
    ),
]
NegPromptOpt = Annotated[
    str | None,
    typer.Option(
        "--negative_prompt",
        help="gen3c generator: text of the unconditional branch (default: GEN3C's negative prompt). Refused without guidance "
        "(--guidance 0, a distilled student's default) and with --disable_prompt_encoder.",
    ),
]
NoiseAugOpt = Annotated[
    float,
    typer.Option(
        "--noise_aug_strength",
        help="gen3c generator: GEN3C's noise augmentation of the warped frames: Gaussian noise of std (NB−1−b)·S on buffer b's "
        "colour (of NB, newest first) before it is encoded, so from a long single-image video's chunk 2 on the newest buffer "
        "(the last generated frame's) is noised and the image's is not. It changes the video (chunk 2 on), at no cost in time. "
        "0: none (GEN3C's default). A video of one chunk has one buffer: unchanged (a note says so). Refused for a video or "
        "multi-view input, whose buffers GEN3C never noises.",
    ),
]
OffloadDitOpt = Annotated[
    bool,
    typer.Option(
        "--offload_diffusion_transformer", help=f"gen3c generator: keep the DiT in CPU memory except while sampling. {_OFFLOAD_REFUSED}."
    ),
]
OffloadTokOpt = Annotated[
    bool,
    typer.Option(
        "--offload_tokenizer", help=f"gen3c generator: keep the video tokenizer in CPU memory except while it runs. {_OFFLOAD_REFUSED}."
    ),
]
OffloadT5Opt = Annotated[
    bool,
    typer.Option(
        "--offload_text_encoder_model",
        help=f"gen3c generator: keep T5 in CPU memory except while it encodes a prompt. {_OFFLOAD_REFUSED}; with --disable_prompt_encoder a note says it changes nothing.",
    ),
]
OffloadUpsamplerOpt = Annotated[
    bool,
    typer.Option("--offload_prompt_upsampler", help="Accepted for GEN3C command lines; no effect, said in a note (gen3c has no prompt upsampler)."),
]
OffloadGuardOpt = Annotated[
    bool,
    typer.Option("--offload_guardrail_models", help="Accepted for GEN3C command lines; no effect, said in a note (gen3c has no guardrail models)."),
]
DisableGuardOpt = Annotated[
    bool, typer.Option("--disable_guardrail", help="Accepted for GEN3C command lines; no effect, said in a note (gen3c runs no guardrails).")
]
DisablePromptEncOpt = Annotated[
    bool,
    typer.Option(
        "--disable_prompt_encoder",
        help="gen3c generator: zero text embeddings instead of T5 (as GEN3C's flag); T5 is never loaded. With it --prompt and "
        "--negative_prompt would change nothing and are refused (--offload_text_encoder_model: a note, as GEN3C's README passes both).",
    ),
]
DisableUpsamplerOpt = Annotated[
    bool,
    typer.Option("--disable_prompt_upsampler", help="Accepted for GEN3C command lines; no effect, said in a note (gen3c never upsamples prompts)."),
]
MemoryModeOpt = Annotated[
    str,
    typer.Option(
        "--memory_mode",
        help="gen3c generator: resident (all on the GPU), model_offload (each model on the GPU only for its stage) or "
        "group_offload (the DiT streamed block by block; least GPU memory).",
    ),
]
CompileOpt = Annotated[
    bool | None,
    typer.Option(
        "--compile/--no_compile",
        rich_help_panel=SPEED_PANEL,
        help="gen3c generator: torch.compile the DiT's blocks (faster steps after a one-time compile of ~10 s on a GPU), or leave them "
        "eager. Default: the --speed preset's (every preset compiles a DiT resident on one CUDA GPU, none on a CPU). --compile on a "
        "CPU is honoured: inductor builds C++ kernels (a C++ compiler is needed), so the first step waits tens of seconds.",
    ),
]
AttentionOpt = Annotated[
    str | None,
    typer.Option(
        "--attention_backend",
        rich_help_panel=SPEED_PANEL,
        help="gen3c generator: the DiT's self-attention kernel. auto: flash4 (FlashAttention-4, exact) on "
        "Hopper/Blackwell GPUs with gen3c\\[fast] installed, else PyTorch SDPA; flash4; sdpa; cudnn_fp8 (cuDNN fp8 "
        "attention, approximate: 74 → 62 ms per 7B attention on an H200; the video 51.0 dB PSNR from exact's on the "
        "shipped small model); auto_fp8 (cudnn_fp8 where it runs, else as auto); or a diffusers backend name. "
        "flash4 or cudnn_fp8 where it cannot run (e.g. on a CPU) runs as sdpa, with a note. "
        "Default: the --speed preset's (auto; fastest: auto_fp8).",
    ),
]
Fp8MatmulOpt = Annotated[
    bool | None,
    typer.Option(
        "--fp8_matmul/--no_fp8_matmul",
        rich_help_panel=SPEED_PANEL,
        help="gen3c generator: float8 matmuls in the DiT blocks (GPUs with fp8 tensor cores, e.g. H100/H200; refused "
        "elsewhere and with --lora), approximate: with --attention_backend cudnn_fp8 too, a 7B forward takes 2.31 s against 3.40 s in "
        "bf16 on an H200; the video 46.1 dB PSNR from exact's on the shipped small model. Default: the --speed preset's "
        "(fastest: on where the GPU has them and the DiT is resident in bf16, without a LoRA).",
    ),
]
SpeedOpt = Annotated[
    str,
    typer.Option(
        "--speed",
        rich_help_panel=SPEED_PANEL,
        help="gen3c generator: speed preset. exact: GEN3C's sampler (35 Euler steps, both guidance branches every step: "
        "70 DiT forwards; 241 s per 121-frame 704x1280 video on one H200). fast: 18 Euler steps, 36 forwards (132 s); "
        "its video 50.0 dB PSNR / 0.9994 SSIM from exact's. fastest: 8 Euler steps, 16 forwards, and on GPUs with fp8 "
        "tensor cores fp8 GEMMs and attention (40.5 s); 38.7 dB / 0.992 (37.3 dB with fp8). On a GPU every preset compiles "
        "the DiT's blocks once (~10 s) where they stay resident in GPU memory unquantised (not with --fp8, --low_memory or offloading). (dB here and below: PSNR of the video against exact's on the shipped small model, "
        "8 held-out scenes; on GEN3C-7B expect lower.) "
        "Flags given on their own (--num_steps, --sampler, --guidance_every, --step_cache, --no_compile, …) override the "
        "preset.",
    ),
]
SamplerOpt = Annotated[
    str | None,
    typer.Option(
        "--sampler",
        rich_help_panel=SPEED_PANEL,
        help="gen3c generator: euler (GEN3C's) or dpmpp_2m (DPM-Solver++(2M), second order). At 18 steps its video is 43.0 dB "
        "from exact's (18 Euler steps: 50.0 dB) but nearer a converged 140-step video (46.6 against 44.9 dB); at 12 steps "
        "and fewer it is further from both than Euler. Default: the --speed preset's.",
    ),
]
GuidanceEveryOpt = Annotated[
    int | None,
    typer.Option(
        "--guidance_every",
        rich_help_panel=SPEED_PANEL,
        help="gen3c generator: run guidance's unconditional branch every N-th step only and reuse its direction in between "
        "(2: 53 of 70 forwards, 49.8 dB; 3: 47 forwards, 43.3 dB). 1: every step (GEN3C's). Default: the --speed preset's.",
    ),
]
GuidanceBatchOpt = Annotated[
    bool | None,
    typer.Option(
        "--guidance_batch",
        rich_help_panel=SPEED_PANEL,
        help="gen3c generator: run guidance's two branches as one batch-2 DiT forward (the same video up to float rounding; "
        "whether it is faster depends on the GPU: on an H200 it is not, so no preset uses it).",
    ),
]
StepCacheOpt = Annotated[
    str | None,
    typer.Option(
        "--step_cache",
        rich_help_panel=SPEED_PANEL,
        help="gen3c generator: reuse DiT work across steps (approximate): none; fbc[:THRESHOLD] (First Block Cache, "
        "default 0.05: ran the block stack 64.5 of 70 times, 84.8 dB; fbc:0.1: 46 of 70, 54.5 dB); taylorseer[:INTERVAL] (self-attention extrapolated between full steps, default 3; 28 of 70 "
        "self-attentions computed, 47.2 dB; ~26 GB of extra GPU memory per branch on GEN3C-7B); magcache[:THRESHOLD] (default 0.06; the first run measures the model's ratios and stores "
        "them; ran the block stack 62 of 70 times, 54.5 dB). Default: the --speed preset's.",
    ),
]
VerifyOpt = Annotated[
    bool,
    typer.Option(
        "--verify_checksums",
        help="gen3c generator: check every checkpoint file against the checksums.json `gen3c convert` wrote "
        "(reads every byte: ~15–40 s for the 7B checkpoint). Names, shapes and dtypes are always checked.",
    ),
]
Fp8Opt = Annotated[
    bool,
    typer.Option(
        "--fp8",
        help="gen3c generator: store the DiT's weights in float8 (e4m3), approximate: about half the DiT's memory (GEN3C-7B: 7.6 "
        "instead of 14.5 GB; norms, embeddings and the output layer stay in bf16) at the same step time on an H100/H200; the video 50.7 dB PSNR / 0.9995 SSIM from exact's on the "
        "shipped small model (float32 on a CPU; 49.2 dB / 0.9985 in bfloat16 on an H200).",
    ),
]
LowMemoryOpt = Annotated[
    bool,
    typer.Option(
        "--low_memory",
        help="gen3c generator: the leanest mode (DiT streamed block by block in float8, tokenizer in chunks): ~8 GB peak "
        "for GEN3C-7B at about the resident mode's speed; approximate as --fp8 is (50.7 dB from exact's on the shipped small model).",
    ),
]
MaxGpuMemoryOpt = Annotated[
    float | None,
    typer.Option(
        "--max_gpu_memory",
        help="gen3c generator: GPU memory budget in GB; the fastest memory mode whose estimated peak (for this run's "
        "chunk and --resolution) fills at most 90 % of it is chosen, and named in a note (instead of "
        "--memory_mode/--fp8/--low_memory; a plan with float8 weights is approximate as --fp8 is).",
    ),
]
ModelOpt = Annotated[
    str | None,
    typer.Option("--model", help="gen3c generator: a model shipped in the package instead of --checkpoint_dir: 'tiny' (trained by `gen3c train`, runs on a CPU) or 'tiny_fast' (its 5-step distilled student: 5 DiT forwards per video instead of 70, approximate: its videos 34.3 dB PSNR from tiny's on 8 held-out scenes)."),
]
LoraOpt = Annotated[
    Path | None,
    typer.Option("--lora", help="gen3c generator: a LoRA adapter written by `gen3c train` (its lora/ folder or safetensors file)."),
]
NumGpusOpt = Annotated[
    int,
    typer.Option(
        "--num_gpus",
        help="gen3c generator: split the DiT's video tokens across N GPUs (context parallelism); "
        "launch with `torchrun --nproc_per_node=N -m gen3c generate … --num_gpus N`.",
    ),
]


#: The gen3c generator's flags, by parameter name: the commands that run a generator
#: (generate, gui, eval) declare them (most through :func:`_takes_shared_generator_flags`) and
#: pass them on through :func:`_generator_options`.
GEN3C_FLAGS = (
    "checkpoint_dir", "model", "cache_dir", "lora", "guidance", "num_steps", "prompt", "negative_prompt", "noise_aug_strength",
    "offload_diffusion_transformer", "offload_tokenizer", "offload_text_encoder_model", "offload_prompt_upsampler",
    "offload_guardrail_models", "disable_guardrail", "disable_prompt_encoder", "disable_prompt_upsampler",
    "memory_mode", "fp8", "low_memory", "max_gpu_memory", "compile", "attention_backend", "fp8_matmul",
    "speed", "sampler", "guidance_every", "guidance_batch", "step_cache",
    "verify_checksums", "num_gpus",
)  # fmt: skip


def _shared_generator_flags(
    checkpoint_dir: CheckpointOpt = None,
    cache_dir: WeightsCacheOpt = None,
    guidance: GuidanceOpt = None,
    num_steps: StepsOpt = None,
    prompt: PromptOpt = "",
    negative_prompt: NegPromptOpt = None,
    noise_aug_strength: NoiseAugOpt = 0.0,
    offload_diffusion_transformer: OffloadDitOpt = False,
    offload_tokenizer: OffloadTokOpt = False,
    offload_text_encoder_model: OffloadT5Opt = False,
    offload_prompt_upsampler: OffloadUpsamplerOpt = False,
    offload_guardrail_models: OffloadGuardOpt = False,
    disable_guardrail: DisableGuardOpt = False,
    disable_prompt_encoder: DisablePromptEncOpt = False,
    disable_prompt_upsampler: DisableUpsamplerOpt = False,
    memory_mode: MemoryModeOpt = "resident",
    fp8: Fp8Opt = False,
    low_memory: LowMemoryOpt = False,
    max_gpu_memory: MaxGpuMemoryOpt = None,
    speed: SpeedOpt = "exact",
    sampler: SamplerOpt = None,
    guidance_every: GuidanceEveryOpt = None,
    guidance_batch: GuidanceBatchOpt = None,
    step_cache: StepCacheOpt = None,
    compile: CompileOpt = None,
    attention_backend: AttentionOpt = None,
    fp8_matmul: Fp8MatmulOpt = None,
) -> None:
    """The gen3c generator's flags that every command running a generator (generate, gui, eval)
    takes alike, declared once: :func:`_takes_shared_generator_flags` gives them to a command.
    (Never called: its parameters are the declaration.)"""


def _takes_shared_generator_flags(before: str) -> Callable[[Callable], Callable]:
    """Give a command the flags of :func:`_shared_generator_flags`, standing before its parameter
    ``before`` in its options (and so in its --help); the command receives them, each given or at
    its default, through its ``**generator_flags``. Called from Python, the command takes its
    arguments as that signature says (a misspelt keyword is a TypeError, not one more flag)."""
    import inspect

    shared = list(inspect.signature(_shared_generator_flags, eval_str=True).parameters.values())

    def declare(command: Callable) -> Callable:
        own = [p for p in inspect.signature(command, eval_str=True).parameters.values() if p.kind != p.VAR_KEYWORD]
        at = [p.name for p in own].index(before)
        params = [*own[:at], *shared, *own[at:]]
        signature = inspect.Signature(params, return_annotation=None)
        # What typer and the checks of typed paths and choices read (typing.get_type_hints, of the
        # command itself: inspect.unwrap).
        command.__annotations__ = {**{p.name: p.annotation for p in params}, "return": None}

        @functools.wraps(command)
        def declared(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            return command(**bound.arguments)

        declared.__signature__ = signature
        return declared

    return declare


def _typed_options() -> frozenset[str]:
    """The parameters of the running command that the user typed on its command line: one typed
    at its default value would pass a check that compares values with the defaults
    (``--trajectory left`` beside ``--camera_file``), a typed no-op. (Not one an environment
    variable would set, which holds for every command run, moot or not.) Empty where a command
    is called from Python, without click."""
    ctx = _click_module("globals").get_current_context(silent=True)
    if ctx is None:
        return frozenset()
    typed = _click_module("core").ParameterSource.COMMANDLINE
    return frozenset(name for name in ctx.params if ctx.get_parameter_source(name) == typed)


def _generator_options(generator: GeneratorName, params: dict) -> dict:
    """A request's ``generator_options``: the gen3c generator's flags among a command's ``params``
    (its ``locals()`` and its ``**generator_flags``) when it is the generator chosen.

    A gen3c-only flag typed (:func:`_typed_options`) or changed from its default while another
    generator runs is an error, not a silent no-op.
    """
    options = {name: str(params[name]) if isinstance(params[name], Path) else params[name]
               for name in GEN3C_FLAGS if name in params}  # fmt: skip
    if generator == GeneratorName.gen3c:
        return options
    import inspect

    from gen3c.pipelines.options import refuse_gen3c_only

    defaults = {name: p.default for name, p in inspect.signature(generate).parameters.items()}
    typed = _typed_options()
    changed = [name for name, value in options.items() if name in defaults and (name in typed or value != defaults[name])]
    # a switch left unset by default and turned off names its off form (--no_compile)
    refuse_gen3c_only([f"--no_{name}" if options[name] is False and defaults[name] is None else f"--{name}" for name in changed], "--generator gen3c")
    return {}


@app.command()
@user_errors
@_takes_shared_generator_flags(before="num_gpus")
def generate(
    input_image_path: Annotated[
        Path | None,
        typer.Option(
            "--input_image_path",
            help="Source image (PNG, JPEG, WebP, …; an iPhone's HEIC with the heic extra), or a video: a GEN3C sample directory (rgb.mp4, depth.npz, mask.npz, camera.npz) or legacy .pt.",
        ),
    ] = None,
    vipe_path: Annotated[
        Path | None,
        typer.Option("--vipe_path", help="Video input: a ViPE output directory (rgb/, pose/, intrinsics/, depth/) or the mp4 under its rgb/."),
    ] = None,
    vipe_clip: Annotated[
        str | None, typer.Option("--vipe_clip", help="The clip to read when the ViPE directory holds several (its name in rgb/).")
    ] = None,
    vipe_starting_frame_idx: Annotated[
        int, typer.Option("--vipe_starting_frame_idx", help="First frame of the video input to use (ViPE or sample directory).")
    ] = 0,
    multiview_npz: Annotated[
        Path | None,
        typer.Option(
            "--multiview_npz",
            "--npz_path",
            help="Multi-view input: GEN3C's npz of key views (images, depth, masks, K, w2c) and the trajectory w2cs_all to render.",
        ),
    ] = None,
    video_save_name: NameOpt = "output",
    video_save_folder: FolderOpt = Path("outputs"),
    trajectory: TrajectoryOpt = Trajectory.left,
    camera_rotation: RotationOpt = Rotation.center_facing,
    movement_distance: DistanceOpt = 0.3,
    trajectory_scale: ScaleOpt = TrajectoryScale.auto,
    camera_file: CameraFileOpt = None,
    num_video_frames: FramesOpt = None,
    depth_path: Annotated[
        Path | None,
        typer.Option("--depth_path", help="Depth of the image (z-depth): .npy, .npz (key 'depth'), 16-bit PNG, 32-bit float (or 16-bit) TIFF or .exr."),
    ] = None,
    png_depth_scale: Annotated[
        float, typer.Option("--png_depth_scale", help="Depth = 16-bit PNG or TIFF value × this (default 0.001: millimetres → metres).")
    ] = 0.001,
    depth_is_disparity: Annotated[
        bool,
        typer.Option(
            "--depth_is_disparity",
            help="The --depth_path holds disparity (inverse depth, larger = nearer), as MiDaS, DPT and Depth Anything's relative "
            "models save it: read as depth = 1 / disparity up to scale (median 1, relative depth), disparity below 1% of its peak "
            "untrusted (the far field), as --depth_estimator does with those models.",
        ),
    ] = False,
    mask_invalid_depth: Annotated[
        bool,
        typer.Option(
            "--mask_invalid_depth",
            help="Leave NaN/inf pixels of depth read from a file (--depth_path, a video or multi-view input) out of the cache, "
            "and the pixels that gen3c depth's mask beside its NAME_depth.npy does not trust (MoGe's sky, written at 1000). "
            "By default they sit far away as in GEN3C (depth 100 in the "
            "cache: sky renders as a backdrop); ≤0 pixels are always left out. Depth with no valid pixel is refused.",
        ),
    ] = False,
    intrinsics: IntrinsicsOpt = None,
    fov: FovOpt = None,
    depth_estimator: DepthEstimatorOpt = None,
    save_buffer: SaveBufferOpt = False,
    save_point_cloud: PlyOpt = False,
    foreground_masking: FgOpt = False,
    filter_points_threshold: FilterOpt = 0.05,
    generator: GeneratorOpt = GeneratorName.preview,
    resolution: ResolutionOpt = None,
    resize_mode: ResizeOpt = ResizeMode.crop,
    splat: SplatOpt = Splat.bilinear,
    seed: SeedOpt = 1,
    fps: FpsOpt = None,
    num_gpus: NumGpusOpt = 1,
    verify_checksums: VerifyOpt = False,
    chunk_frames: Annotated[
        int | None,
        typer.Option(
            "--chunk_frames",
            help="Make the video in autoregressive chunks of this many frames (1-frame overlap). gen3c: always its model's chunk (121; the tiny models: 17); "
            "preview: one chunk unless --num_video_frames is 120·N+1 (then 121); a K at or above the frame count makes one chunk (a note says so).",
        ),
    ] = None,
    trust_checkpoint: Annotated[
        bool,
        typer.Option("--trust_checkpoint", help="Allow full unpickling (which can run code) of a legacy .pt input you trust."),
    ] = False,
    model: ModelOpt = None,
    lora: LoraOpt = None,
    resume: ResumeOpt = False,
    **generator_flags,
) -> None:
    """Generate a camera-controlled video from an image, a video with depth and cameras, or multi-view key frames.

    Long videos (--num_video_frames 241, 361, …) are made in chunks of 121 frames (the tiny model's: 17), each conditioned on the previous chunk's last frame.
    """
    # settings and options import no torch: a mistyped setting is refused in a fraction of a second
    from gen3c.errors import collect_notes
    from gen3c.pipelines.options import check_generator
    from gen3c.pipelines.settings import GenerationRequest, check_request, check_unused_settings

    def text(path: Path | None) -> str | None:
        return None if path is None else str(path)

    request = GenerationRequest(
        input_image_path=text(input_image_path), vipe_path=text(vipe_path), vipe_clip=vipe_clip,
        vipe_starting_frame_idx=vipe_starting_frame_idx, multiview_npz=text(multiview_npz), trust_checkpoint=trust_checkpoint,
        chunk_frames=chunk_frames, depth_path=None if depth_path is None else str(depth_path),
        png_depth_scale=png_depth_scale, depth_is_disparity=depth_is_disparity, mask_invalid_depth=mask_invalid_depth, intrinsics=intrinsics, fov=fov,
        depth_estimator=depth_estimator,
        trajectory=trajectory.value, camera_rotation=camera_rotation.value, movement_distance=movement_distance,
        trajectory_scale=trajectory_scale.value, camera_file=None if camera_file is None else str(camera_file),
        num_video_frames=num_video_frames, filter_points_threshold=filter_points_threshold,
        foreground_masking=foreground_masking, splat=splat.value, resolution=resolution, resize_mode=resize_mode.value,
        generator=generator.value, seed=seed, video_save_folder=str(video_save_folder), video_save_name=video_save_name,
        save_buffer=save_buffer, save_point_cloud=save_point_cloud, fps=fps,
        generator_options=_generator_options(generator, {**locals(), **generator_flags}),
    )  # fmt: skip
    typed = _typed_options()
    check_unused_settings(request, given=typed)
    check_request(request)  # the first check run_request makes, before torch is imported
    with collect_notes():  # its notes are said (on rank 0) and recorded by run_request's own check_generator
        check_generator(request, given=typed)  # the gen3c options before torch is imported, then the model's modules
    _run(request, resume=resume)


@app.command()
@user_errors
def demo(
    video_save_folder: FolderOpt = Path("outputs"),
    video_save_name: NameOpt = "demo",
    trajectory: TrajectoryOpt = Trajectory.left,
    camera_rotation: RotationOpt = Rotation.center_facing,
    movement_distance: DemoDistanceOpt = 0.3,
    num_video_frames: DemoFramesOpt = 121,
    resolution: Annotated[str, typer.Option("--resolution", help="Working resolution HEIGHTxWIDTH (GEN3C: 704x1280).")] = "352x640",
    save_buffer: SaveBufferOpt = False,
    save_point_cloud: PlyOpt = False,
    foreground_masking: FgOpt = False,
    resume: ResumeOpt = False,
) -> None:
    """Run the preview generator on the shipped sample (image + depth): no downloads; 121 frames at 352×640 in under 10 s on 2 CPU cores (the first run after installing is slower, while Python compiles the modules).

    It is `gen3c generate` on the sample's installed files, which NAME_run.json names: `gen3c batch NAME_run.json` runs it again.
    """
    _refuse_torchrun("gen3c demo", "make the same video into the same files")
    from gen3c.pipelines.request import GenerationRequest
    from gen3c.scenes import demo_sample_files

    request = GenerationRequest(
        **demo_sample_files(), trajectory=trajectory.value, camera_rotation=camera_rotation.value,
        movement_distance=movement_distance, num_video_frames=num_video_frames, resolution=resolution,
        foreground_masking=foreground_masking, video_save_folder=str(video_save_folder), video_save_name=video_save_name,
        save_buffer=save_buffer, save_point_cloud=save_point_cloud,
    )  # fmt: skip
    _run(request, resume=resume)


@app.command()
@user_errors
def convert(
    src: Annotated[Path, typer.Argument(help="GEN3C's checkpoint folder (Gen3C-Cosmos-7B/, Cosmos-Tokenize1-CV8x8x8-720p/, google-t5/t5-11b/).")],
    out: Annotated[Path, typer.Argument(help="Folder to write the gen3c checkpoint to (diffusers layout, safetensors).")],
    trust_checkpoint: Annotated[
        bool,
        typer.Option(
            "--trust_checkpoint",
            help="Allow full unpickling of .pt files that need it and torch.jit.load of the .jit files (both can run code from the file).",
        ),
    ] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace OUT if it is a gen3c checkpoint (a folder holding anything else is never deleted).")] = False,
    no_text_encoder: Annotated[
        bool,
        typer.Option("--no_text_encoder", help="Leave T5 out of OUT (saves ~10 GB); only the empty prompt and GEN3C's negative prompt then work."),
    ] = False,
) -> None:
    """Convert GEN3C's official checkpoints into a gen3c checkpoint, printing a key-by-key report."""
    _refuse_torchrun("gen3c convert", "convert the same weights into the same folder")
    from gen3c.dependencies import DIFFUSION_MODULES, check_installed

    check_installed(DIFFUSION_MODULES, "gen3c convert", extra="diffusion")  # before minutes of reading GEN3C's checkpoints
    from gen3c.models.convert import convert_checkpoint

    for what, path in (("checkpoint folder", src), ("output folder", out)):
        try:  # as the conversion looks at them: a loop of symbolic links was a RuntimeError traceback
            path.resolve().exists()
        except (OSError, RuntimeError) as exc:  # (OSError: a name too long)
            why = exc.strerror if isinstance(exc, OSError) else "a loop of symbolic links"
            raise Gen3cInputError(f"{what} {quoted_path(path)} cannot be used ({why}): check the path") from None
    convert_checkpoint(src, out, trust_checkpoint=trust_checkpoint, overwrite=overwrite, keep_text_encoder=not no_text_encoder)
    console.print(f"[green]wrote[/] {escape(str(out))} (report: {escape(str(out / 'conversion_report.txt'))})", highlight=False, soft_wrap=True)


@app.command()
@user_errors
def download(
    text_encoder: Annotated[
        bool | None,
        typer.Option(
            "--text_encoder/--no_text_encoder",
            help="T5-11B (45.2 GB). By default it is fetched only while the prompt cache (the T5 embeddings of the empty and "
            "the negative prompt, computed once) is missing, as a run with the default prompts would. --text_encoder: fetch it "
            "anyway, for runs with other prompts. --no_text_encoder: leave it out; runs then need --disable_prompt_encoder "
            "until a run with a prompt fetches it.",
            show_default=False,
        ),
    ] = None,
    cache_dir: WeightsCacheOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry_run", help="Only list what would be fetched and check the disk space; fetch nothing.")
    ] = False,
) -> None:
    """Fetch GEN3C's weights from the Hugging Face Hub and convert them now (what the first gen3c run would do)."""
    _refuse_torchrun("gen3c download", "fetch and convert the same weights")
    from gen3c.dependencies import DIFFUSION_MODULES, check_installed

    check_installed(DIFFUSION_MODULES, "gen3c download", extra="diffusion")  # before gigabytes are fetched
    from gen3c.models import configs, weights

    started = time.perf_counter()
    # What a run with the default prompts needs: T5 only to compute the prompt cache, unless asked for.
    prompts = () if text_encoder is False else configs.CACHED_PROMPTS
    prepared = weights.prepare_weights(
        prompts=prompts, text_encoder=bool(text_encoder), cache_dir=cache_dir, dry_run=dry_run, log=lambda line: console.print(escape(line), highlight=False)
    )  # fmt: skip
    if dry_run:
        for repo_id, name, size in prepared.to_fetch:
            console.print(f"would fetch  {repo_id}/{name}  {weights.format_bytes(size)}", highlight=False)
        todo = [f"{weights.format_bytes(prepared.fetch_bytes)} to fetch"] if prepared.to_fetch else []
        if prepared.converted:
            todo.append("a conversion")
        elif prepared.added_prompt_cache:  # (T5 run once on the two cached prompts: minutes, not "nothing to do")
            todo.append(f"the prompt cache to compute and add to {prepared.checkpoint}")
            if prepared.copy_bytes:
                todo[-1] += f" (a copy of {weights.format_bytes(prepared.copy_bytes)}: its file system has no hard links)"
        said = ", then ".join(todo) or "nothing to do"
        console.print(f"[green]dry run:[/] {escape(said)}; the disk has room", highlight=False, soft_wrap=True)
        return
    _print_cached(weights.cached_items(cache_dir))
    fetched = f"fetched {weights.format_bytes(prepared.fetch_bytes)} and " if prepared.to_fetch else ""
    folder = prepared.checkpoint.parent
    # A run without --cache_dir (and GEN3C_CACHE_DIR, maybe set for this command only) looks in the
    # default folder: another is named, or that run fetches and converts it all again.
    elsewhere = folder.resolve() != weights.user_record_dir().resolve()
    use = f"runs given --cache_dir {folder} (or {weights.CACHE_ENV}={folder})" if elsewhere else "runs"
    console.print(
        f"[green]ready[/] in {time.perf_counter() - started:.0f} s ({fetched}"
        f"{'converted' if prepared.converted else 'added the prompt cache to' if prepared.added_prompt_cache else 'reused'} "
        f"{escape(str(prepared.checkpoint))}); {escape(use)} without --checkpoint_dir use it",
        highlight=False,
        soft_wrap=True,
    )
    if not prepared.has_prompt_cache:
        console.print("no T5: run with --disable_prompt_encoder, or a run with a prompt fetches T5 and adds the prompt cache")
    elif text_encoder is None and not weights._in_hub_cache(weights.OFFICIAL.text_encoder, weights._hub_cache(None)):
        console.print(
            f"T5 ({weights.OFFICIAL.text_encoder.repo_id}) is not fetched: the first run with a prompt of its own fetches it "
            "(--text_encoder fetches it now)",
            highlight=False,
            soft_wrap=True,
        )


cache_app = _Typer(help="List or remove GEN3C's weights that gen3c fetched and converted.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")


@cache_app.command("list")
@user_errors
def cache_list(cache_dir: WeightsCacheOpt = None) -> None:
    """List the converted checkpoints and the fetched hub repositories, with their size on disk."""
    from gen3c.models import weights

    items = weights.cached_items(cache_dir)
    if not items:
        console.print(f"nothing cached (converted weights go to {weights.weights_cache_dir(cache_dir)})", highlight=False, soft_wrap=True)
        return
    _print_cached(items)


def _print_cached(items) -> None:
    from gen3c.models.weights import format_bytes

    for item in items:
        console.print(f"{item.kind:<9} {item.name:<38} {format_bytes(item.size):>9}  {item.path}  ({item.detail})", highlight=False, soft_wrap=True)
    console.print(f"total on disk {format_bytes(sum(item.size for item in items))}", highlight=False)


@cache_app.command("remove")
@user_errors
def cache_remove(
    names: Annotated[list[str], typer.Argument(help="What `gen3c cache list` names (e.g. google-t5/t5-11b once the prompt cache is made), or 'all'.")],
    cache_dir: WeightsCacheOpt = None,
    yes: Annotated[
        bool,
        typer.Option("--yes", help="Delete hub repositories without asking (their folders in the Hugging Face cache are shared with other programs)."),
    ] = False,
) -> None:
    """Delete cached weights; the next run fetches or converts again what it needs. A hub repository goes whole from the Hugging Face cache, for every program that uses it: gen3c asks first (--yes: no question). What a running gen3c process reads is refused, naming that process."""
    from gen3c.models import weights

    def confirm(shared) -> bool:
        for item in shared:
            console.print(
                f"{item.name} ({weights.format_bytes(item.size)}) is huggingface_hub's folder {item.path}, shared with every program "
                "that uses this repository (transformers, diffusers, other projects): they fetch it again afterwards",
                highlight=False,
            )
        if yes:
            return True
        if not sys.stdin.isatty():
            raise Gen3cInputError(f"`gen3c cache remove` deletes {', '.join(item.name for item in shared)} for every program: pass --yes to confirm; nothing was removed")
        declined.append(not typer.confirm("Delete them?", default=False))
        return not declined[0]

    declined: list[bool] = []
    removed = weights.remove_cached(names, cache_dir, confirm=confirm)
    if declined and declined[0]:
        console.print("nothing was removed", highlight=False)
        return
    if not removed:  # not "freed 0.0 kB"
        if "all" in names:
            left = weights.cached_items(cache_dir)
            foreign = [item for item in left if item.kind == "converted" and not weights.made_by_gen3c(item.path)]  # (what "all" leaves)
            # Anything else there now came after this removal looked (a conversion that ended as it waited for the lock).
            since = [item.name for item in left if item not in foreign]
            parts = []
            if foreign:
                one = len(foreign) == 1
                parts.append(f"{' and '.join(str(item.path) for item in foreign)} {'was' if one else 'were'} not made by gen3c and "
                             f"{'is' if one else 'are'} left alone (move or delete it yourself if you mean to)")  # fmt: skip
            if since:
                one = len(since) == 1
                parts.append(f"{', '.join(since)} {'was' if one else 'were'} cached by another process meanwhile (run `gen3c cache remove all` again to delete {'it' if one else 'them'})")
            elif foreign:
                parts.append("nothing else is cached")
            said = "; ".join(parts) or f"nothing is cached (converted weights go to {weights.weights_cache_dir(cache_dir)})"
        else:  # (named, then gone once another process's removal or conversion let this one in)
            said = f"{', '.join(names)} {'was' if len(names) == 1 else 'were'} removed by another process meanwhile"
        console.print(f"nothing to remove: {escape(said)}", highlight=False, soft_wrap=True)
        return
    for item in removed:
        console.print(f"removed {item.name} ({weights.format_bytes(item.size)}, {item.path})", highlight=False, soft_wrap=True)
    console.print(f"freed {weights.format_bytes(sum(item.size for item in removed))}", highlight=False)
    if "all" in names:  # (a folder at the converted checkpoint's name that "all" left: the next run refuses it, so said now)
        for item in weights.cached_items(cache_dir):
            if item.kind == "converted" and not weights.made_by_gen3c(item.path):
                console.print(
                    f"{escape(str(item.path))} was not made by gen3c and is left alone (move or delete it yourself if you mean to)",
                    highlight=False,
                    soft_wrap=True,
                )


@app.command()
@user_errors
def env(
    json_output: Annotated[bool, typer.Option("--json", help="Print the report as JSON (for pasting into an issue) and nothing else.")] = False,
    cache_dir: WeightsCacheOpt = None,
) -> None:
    """Show what this machine offers gen3c: versions, GPUs, installed extras, attention kernels, GEN3C-7B's memory plan; paste it into bug reports."""
    from gen3c.environment import report

    found = report(cache_dir)
    if json_output:
        print(json.dumps(found, indent=2))
    else:
        Console().print(*_environment_tables(found))


def _package_cells(entry: dict) -> list[str]:
    """(distribution, installed version, the version required) of a package of ``gen3c env``'s report."""
    declared = entry["distribution"]
    version = entry["version"] or "missing"
    if entry["installed_from"] not in (None, declared):  # the module comes from another distribution (opencv-python for cv2)
        version += f" ({entry['installed_from']})"
    color = "green" if entry["usable"] else "red"
    return [declared, f"[{color}]{escape(version)}[/]", escape(entry["requirement"].removeprefix(declared) or "any")]


def _extras_table(extras: dict) -> list:
    """``gen3c env``'s packages by extra, and the installs that complete the incomplete ones. An
    extra that includes others (``train``: ``gen3c[diffusion]``) names them and lists only what
    they do not already show (its report lists them all)."""
    from rich.table import Table

    packages = Table("extra", "package", "installed", "requires", title="packages (pip install 'gen3c[EXTRA]')")
    for name, group in extras.items():
        label = f"[bold]{escape(name)}[/] " + ("[green]complete[/]" if group["complete"] else "[red]incomplete[/]")
        shown = {(p["distribution"], p["requirement"]) for e in group["includes"] for p in extras[e]["packages"] if isinstance(p, dict)}
        rows = [[escape(f"gen3c[{','.join(group['includes'])}] (above)"), "", ""]] if group["includes"] else []
        for entry in group["packages"]:
            if isinstance(entry, str):
                rows.append([escape(entry), "", ""])
            elif (entry["distribution"], entry["requirement"]) not in shown:
                rows.append(_package_cells(entry))
        for index, row in enumerate(rows):
            packages.add_row("" if index else label, *row, end_section=index == len(rows) - 1)
    incomplete = [group["install"] for group in extras.values() if not group["complete"]]
    return [packages, "to complete: " + escape("; ".join(incomplete))] if incomplete else [packages]


def _ram_line(ram: dict) -> str:
    """``gen3c env``'s RAM row: the machine's, and its cgroup's limit where one is set (past it
    the kernel kills the process, whatever RAM is free)."""
    line = f"{ram['total_gb']} GB, {ram['available_gb']} GB available, {ram['swap_gb']} GB swap"
    if ram["cgroup_limit_gb"] is not None:
        line += f"; this process's cgroup allows {ram['cgroup_limit_gb']} GB, {ram['cgroup_available_gb']} GB of it available"
        if ram["cgroup_swap_gb"] is not None:
            line += f", and {ram['cgroup_swap_gb']} GB swap"
    return line


def _environment_tables(found: dict) -> list:
    """``gen3c env``'s report as rich tables: the machine, the packages by extra, what each device runs."""
    from rich.table import Table

    def text(value, show: Callable = str) -> str:
        """``value`` shown by ``show``, or as it is where its probe gave "unknown (why)"."""
        return escape(value if isinstance(value, str) else show(value))

    machine = Table("", "", title="gen3c env", show_header=False)
    def gen3c_row(g: dict) -> str:  # its code's sha256 shortened as git shortens commits; none without Python sources
        code = f" (code sha256 {g['code_sha256'][:12]})" if g.get("code_sha256") else ""
        return f"{g['version']}{code} at {g['location']}"

    machine.add_row("gen3c", text(found["gen3c"], gen3c_row))
    machine.add_row("Python", text(found["python"], lambda p: f"{p['version']} {p['implementation']} ({p['executable']})"))
    machine.add_row("platform", text(found["platform"]))
    torch_threads = found["torch"]["threads"] if isinstance(found["torch"], dict) else "?"
    machine.add_row("CPU threads", text(found["cpu_threads"], lambda n: f"{n} (torch uses {torch_threads})"))
    machine.add_row("RAM", text(found["ram"], _ram_line))
    machine.add_row("torch", text(found["torch"], lambda t: f"{t['version']}, CUDA {t['cuda'] or 'none'}, cuDNN {t['cudnn'] or 'none'}"))
    gpu_line = lambda g: f"{g['name']}, compute capability {g['compute_capability']}, {g['total_gb']} GB, {g['free_gb']} GB free"  # noqa: E731
    for index, gpu in enumerate(found["gpus"] if isinstance(found["gpus"], list) else [found["gpus"]]):
        machine.add_row(f"cuda:{index}", text(gpu, gpu_line))
    if not found["gpus"]:
        machine.add_row("GPUs", "none")
    cache = found["weights_cache"]
    disk = lambda d: f"{d['free_gb']} GB free" + ("" if d["writable"] else ", not writable")  # noqa: E731
    machine.add_row("weights cache", text(cache, lambda c: c["folder"]) + (f" ({text(cache['disk'], disk)})" if isinstance(cache, dict) else ""))
    items = cache["items"] if isinstance(cache, dict) else []
    for item in items if isinstance(items, list) else [items]:
        machine.add_row("", text(item, lambda i: f"{i['kind']} {i['name']} {i['size']} ({i['detail']})"))
    if isinstance(items, list) and not items:
        machine.add_row("", "nothing cached")
    if isinstance(cache, dict):
        hub = cache["hub_cache"]
        machine.add_row("hub cache", text(hub, lambda h: h["folder"]) + (f" ({text(hub['disk'], disk)})" if isinstance(hub, dict) else ""))

    tables = [machine]
    if isinstance(found["extras"], dict):
        tables += _extras_table(found["extras"])
    else:  # gen3c's metadata is missing: which packages each extra needs is not known
        tables.append("extras: " + escape(found["extras"]))

    gpus = found["gpus"] if isinstance(found["gpus"], list) else []
    for index, (name, device) in enumerate(found["devices"].items()):
        gpu = gpus[index] if index < len(gpus) else None
        title = f"{name}: {gpu['name']}" if isinstance(gpu, dict) else name
        table = Table("", "", title=escape(title), show_header=False)
        attention = device["attention"]
        if isinstance(attention, str):
            table.add_row("attention", escape(attention))
        else:
            for requested in ("auto", "auto_fp8"):
                table.add_row(f"--attention_backend {requested}", text(attention[requested]))
            for kernel, reason in attention["kernels"].items():
                table.add_row(f"  {kernel}", text(reason))
        table.add_row("fp8 matmuls", text(device["fp8_matmuls"]))
        table.add_row(
            "GEN3C-7B, 121×704×1280",
            text(
                device["gen3c_7b"],
                lambda p: f"--max_gpu_memory {p['budget_gb']} (the free memory): {p['plan']}, estimated peak {p['estimated_peak_gb']} GB"
                if p["plan"] else p["why"],
            ),
        )
        tables.append(table)
    return tables


@app.command()
@user_errors
@_takes_shared_generator_flags(before="verify_checksums")
def gui(
    host: Annotated[
        str,
        typer.Option("--host", help="Address to listen on. The default serves this machine only; 0.0.0.0 exposes the GUI to your network."),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on (the next free one if it is taken).")] = 8080,
    work_dir: Annotated[
        Path, typer.Option("--work_dir", help="The only folder the GUI writes to: uploads, camera paths and outputs.")
    ] = Path("gen3c_gui"),
    generator: GeneratorOpt = GeneratorName.preview,
    resolution: ResolutionOpt = None,
    resize_mode: ResizeOpt = ResizeMode.crop,
    num_video_frames: GuiFramesOpt = None,
    depth_estimator: GuiEstimatorOpt = None,
    filter_points_threshold: FilterOpt = 0.05,
    foreground_masking: FgOpt = False,
    splat: SplatOpt = Splat.bilinear,
    seed: SeedOpt = 1,
    fps: Annotated[
        float | None, typer.Option("--fps", help="Frame rate of the written video (default: a video input's own, else 24 as GEN3C).")
    ] = None,
    verify_checksums: VerifyOpt = False,
    model: ModelOpt = None,
    lora: LoraOpt = None,
    **generator_flags,
) -> None:
    """Open the browser GUI: see the input in 3D, author a camera path, generate, watch the result."""
    _refuse_torchrun("gen3c gui", "serve a GUI of its own")
    from gen3c.errors import collect_notes
    from gen3c.io.resolution import parse_resolution
    from gen3c.pipelines.request import (
        GenerationRequest,
        check_generator_setup,
        check_request,
        check_unused_settings,
    )

    if not host.strip():  # an unset shell variable (--host "$HOST"): Python's sockets read "" as every network interface
        raise Gen3cInputError("--host is empty (an unset shell variable?): pass 127.0.0.1 (this machine only) or 0.0.0.0 (every network interface), or leave the option out")
    if resolution is not None and generator.value != "gen3c":  # (the gen3c generator's: check_generator, by its model's sizes)
        parse_resolution(resolution)
    from gen3c.dependencies import require

    require("viser", "gen3c gui")
    from gen3c.gui.app import Gen3cApp

    request = GenerationRequest(
        generator=generator.value, resolution=resolution, resize_mode=resize_mode.value, num_video_frames=num_video_frames,
        depth_estimator=depth_estimator, filter_points_threshold=filter_points_threshold, foreground_masking=foreground_masking, splat=splat.value,
        seed=seed, fps=fps,
        generator_options=_generator_options(generator, {**locals(), **generator_flags}),
    )  # fmt: skip
    typed = _typed_options()
    check_unused_settings(request, given=typed)  # e.g. --seed for the preview, which draws no random numbers
    check_request(request)
    with collect_notes():  # as gen3c generate: a mistaken gen3c option (a --checkpoint_dir not there) is refused here, not by a page that cannot generate
        check_generator_setup(request, given=typed)  # (its notes are said when the generator loads)
    from gen3c.io.atomic import removed_if_left_empty

    with removed_if_left_empty(work_dir):  # nothing is left of a refused start
        _check_gui_work_dir(work_dir)
        if depth_estimator is not None:  # named: refused now if it cannot load, not at the first image loaded without depth
            _load_gui_estimator(request.estimator)
        gui_app = Gen3cApp(work_dir, host=host, port=port, request=request, fps_given=fps is not None)
    if host not in ("127.0.0.1", "localhost", "::1"):
        console.print(f"[yellow]warning:[/] listening on {escape(host)}: anyone who reaches this port can run generations and read images by path", highlight=False)
    print(f"gen3c GUI: {gui_app.url}  (work folder {gui_app.state.work_dir}; Ctrl-C to stop)", flush=True)
    try:
        with console_warnings():  # a run's notes in the log as "note: …" lines, as generate's, not Python's warnings
            gui_app.serve_forever()  # (it stops the server, and cancels a run, as it leaves)
    except KeyboardInterrupt as exc:  # said, and exited 130 (SIGTERM: 143), as generate, batch and eval are
        raise type(exc)("the GUI stopped") from None


def _check_gui_work_dir(work_dir: Path) -> None:
    """Make ``--work_dir``, refusing in the flag's name one that can be no folder (a file, a named
    pipe, a link to nowhere or a loop of links) or cannot be written (:func:`~gen3c.io.atomic.ensure_writable_dir`)."""
    from gen3c.io.atomic import ensure_writable_dir
    from gen3c.io.paths import special_file

    kind = special_file(work_dir)
    if kind is not None:  # (ensure_writable_dir calls a pipe a file)
        raise Gen3cInputError(f"--work_dir {quoted_path(str(work_dir))} is {kind}, not a folder: choose a folder path")
    ensure_writable_dir(work_dir, "--work_dir")


def _load_gui_estimator(name: str) -> None:
    """Load the depth estimator ``gen3c gui --depth_estimator`` names, as a run loads it (kept loaded
    for the page's first image: :func:`~gen3c.depth.cached_depth_estimator`); one that cannot load
    (a path to no model, weights not there, a package missing) is refused before the server starts."""
    from gen3c.depth.names import check_estimator_name

    name = name.strip()  # as the page sends it
    check_estimator_name(name, "--depth_estimator")  # a path to nothing (check_request looks at names only)
    from gen3c.depth import cached_depth_estimator

    with console.status(f"loading the depth estimator {escape(name)}…"):
        cached_depth_estimator(name)


@app.command()
@user_errors
def depth(
    image_path: Annotated[Path, typer.Argument(help="The image to estimate depth for.")],
    depth_estimator: DepthCommandEstimatorOpt = "moge",
    output_folder: Annotated[Path, typer.Option("--output_folder", help="Folder for the outputs (created if needed).")] = Path("outputs"),
    name: Annotated[str | None, typer.Option("--name", help="Base name of the outputs (default: the image's name).")] = None,
    resolution: Annotated[
        str | None,
        typer.Option(
            "--resolution",
            help="HEIGHTxWIDTH to write the depth at (plain resize, as GEN3C); default: the image's size, a photo over 4 MP brought down to 4 MP (aspect ratio kept).",
        ),
    ] = None,
    intrinsics: IntrinsicsOpt = None,
    fov: FovOpt = None,
    full_size: Annotated[
        bool, typer.Option("--full_size", help="Write the depth at the photo's own size even over 4 MP (a 48 MP photo: a 720 MB NAME_points.ply).")
    ] = False,
) -> None:
    """Estimate depth and write it as NAME_depth.png (false colour), NAME_depth.npy, NAME_mask.png (the trusted pixels), NAME_points.ply and NAME_depth.json."""
    _refuse_torchrun("gen3c depth", "estimate the same depth into the same files")
    from gen3c.depth.names import check_estimator_name

    check_estimator_name(depth_estimator, "--depth_estimator")  # a typo refused before torch is imported and a model loads
    from gen3c.cameras import resize_intrinsics
    from gen3c.dependencies import check_installed
    from gen3c.depth import load_depth_estimator, median_depth
    from gen3c.depth.export import (
        check_depth_name,
        check_depth_outputs,
        check_inputs_kept,
        save_depth_outputs,
    )
    from gen3c.errors import note
    from gen3c.io.atomic import ensure_writable_dir, removed_if_left_empty
    from gen3c.io.images import LARGE_IMAGE_PIXELS, load_image, read_photo
    from gen3c.io.intrinsics import parse_intrinsics
    from gen3c.io.resolution import parse_resolution
    from gen3c.pipelines.settings import check_fov

    with console_warnings():  # its notes (a photo brought down, a camera scaled) as one plain line each
        if name is not None:
            check_depth_name(name)  # before the model loads
        if full_size and resolution:
            raise Gen3cInputError("--full_size and --resolution both say the size to write the depth at: pass one")
        check_fov(fov)  # (else said of "field of view nan°", no flag named)
        check_installed(("cv2", "plyfile"), "writing gen3c depth's NAME_depth.png and NAME_points.ply")
        size = parse_resolution(resolution) if resolution else None
        if full_size:
            image = load_image(image_path)
            stored = tuple(image.shape[-2:])
        else:  # a 48–200 MP photo brought down as it is read: the estimators work at about 1 MP
            image, stored = read_photo(image_path, cover=size)
        if name is None:  # (checked once the image is read: a path no file can have is refused as such, not as a --name)
            name = image_path.stem
            check_depth_name(name, "--name (by default the image's name)")
        image = (image + 1) / 2
        K = parse_intrinsics(intrinsics, stored, fov=fov)  # pixels of the photo as stored
        if tuple(image.shape[-2:]) != stored:
            K = None if K is None else resize_intrinsics(K, stored, tuple(image.shape[-2:]))
            if size is None:
                (h0, w0), (h, w) = stored, image.shape[-2:]
                note(
                    f"{quoted_path(image_path)} is {w0}×{h0} ({h0 * w0 / 1e6:.0f} MP): its depth is written at {w}×{h}, the aspect ratio kept "
                    f"(at most {LARGE_IMAGE_PIXELS // 1_000_000} MP; --full_size for the photo's own size)"
                )
        # An unusable folder, or outputs it cannot take (a folder at a file's name, a file of another
        # case there), are refused before the model loads; a folder made here goes again if the run fails.
        with removed_if_left_empty(output_folder):
            ensure_writable_dir(output_folder, "--output_folder")
            check_inputs_kept(check_depth_outputs(output_folder, name), {"IMAGE_PATH": image_path, "--intrinsics": intrinsics})
            started = time.perf_counter()
            # A spinner while the model loads and runs: MoGe on a CPU is a wait of many seconds.
            with console.status(f"loading the depth estimator {escape(depth_estimator)}…") as status:
                estimator = load_depth_estimator(depth_estimator, device="cuda" if _cuda() else "cpu")
                status.update(f"estimating depth with {escape(depth_estimator)}…")
                estimate = estimator.estimate(image, size=size, intrinsics=K)
            paths = save_depth_outputs(estimate, image, output_folder, name)
        console.print(
            f"[green]wrote[/] {escape(str(paths['png']))} ({estimate.size[1]}×{estimate.size[0]}, {estimate.kind} depth from {estimate.source}, "
            f"median {median_depth(estimate):.3g}, fx {float(estimate.intrinsics[0, 0]):.1f} px ({estimate.intrinsics_from})) "
            f"in {time.perf_counter() - started:.1f} s",
            highlight=False,
            soft_wrap=True,
        )
        for key in ("npy", "mask", "ply", "json"):
            console.print(f"      {escape(str(paths[key]))}", highlight=False, soft_wrap=True)


@app.command()
@user_errors
def train(
    config: Annotated[
        Path,
        typer.Argument(
            help="Training config: a TOML file, or a shipped one by name (default: every field, commented; small_procedural, "
            "distill_small, lora_7b, distill_7b)."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="Output folder: logs/, samples/, checkpoints/, model/ or lora/, losses.jsonl, MODEL_CARD.md; tokenizer/ (from scratch), stages/ (distill). "
                                               "With train.ema_decay set, model/, lora/, stages/ and the samples hold the EMA of the weights; the raw ones stay in checkpoints/.")] = Path("runs/train"),
    resume: Annotated[
        str | None, typer.Option(
            "--resume",
            help="Continue from a checkpoint folder (OUT/checkpoints/step_…), or 'auto' for the newest in OUT, with the run's config: "
            "only the budgets (run.max_steps, the max_minutes; distill.stage_max_steps of the stages not yet finished, as a finished "
            "stage is not trained again), \\[log], data.num_workers and train.lr, grad_clip, warmup_steps, lr_schedule may change.",
        ),
    ] = None,
    stop_after: Annotated[
        int | None, typer.Option(
            "--stop_after",
            help="End this invocation after N optimiser steps of the DiT (distillation: counted over its stages), checkpointed "
            "(resume it later with --resume auto). A from-scratch run's tokenizer stage comes first and is not counted "
            "(tokenizer.max_minutes bounds it).",
        ),
    ] = None,
) -> None:
    """Train or fine-tune GEN3C's DiT (full or LoRA) on clips with depth and cameras, or distil a checkpoint into a few-step student; see docs/training.md.

    Several GPUs: torchrun --nproc_per_node N -m gen3c train CONFIG (or accelerate launch -m gen3c train CONFIG).
    """
    if resume is not None and not resume.strip():  # an unset shell variable (--resume "$CKPT"): read as the current folder
        raise Gen3cInputError("--resume is empty (an unset shell variable?): pass OUT/checkpoints/step_… or 'auto', or leave the option out")
    try:
        from gen3c.dependencies import require

        # The train extra, imported up front: a missing package is one line here, not a traceback mid-run.
        for module in ("accelerate", "diffusers", "peft", "tensorboard", "gen3c.training"):
            require(module, "gen3c train", extra="train")
        from gen3c.parallel import is_main_process
        from gen3c.training import ended_message, run_training

        main = is_main_process()  # other ranks of torchrun train silently; rank 0 reports
        with warnings.catch_warnings(), console_warnings():  # notes as "note: …" lines, as generate's, not Python's warnings
            if not main:
                warnings.simplefilter("ignore")
            result = run_training(
                config, out, resume=resume, stop_after=stop_after, progress_factory=functools.partial(progress_bars, console) if main else None, echo=functools.partial(console.print, markup=False, highlight=False, soft_wrap=True) if main else None
            )
    except KeyboardInterrupt as exc:
        # The run says what it keeps (gen3c.training.loop.stopped_message); stopped before it began
        # (the packages loading, the config read), nothing was written: not "no partial output".
        said: BaseException | None = exc
        while said is not None and not (isinstance(said, KeyboardInterrupt) and str(said)):
            said = said.__context__  # (a second Ctrl-C as the first unwound: the first's message)
        if said is not None:
            raise type(exc)(str(said)) from None
        raise type(exc)(f"stopped before training began: nothing was written to --out {quoted_path(out)}; run the same command again") from None
    if main:
        last = f", loss {result.losses[-1]:.4f}" if result.losses else ""
        ranks = f" on {result.processes} processes ({result.parallel})" if result.processes > 1 else ""
        tok = result.tokenizer  # a from-scratch run's tokenizer stage, before the DiT's steps
        before = f" (after the tokenizer's {counted(tok['steps'], 'step')}, {tok['seconds']:.1f} s)" if tok else ""
        try:
            console.print(f"[green]trained[/] {counted(result.steps, 'step')}{last}{ranks} in {result.seconds:.1f} s of training{before} → {escape(str(result.exported or result.checkpoint))}", highlight=False, soft_wrap=True)
        except KeyboardInterrupt as exc:  # the run has ended: what it wrote, not "no partial output was kept"
            raise type(exc)(ended_message(result)) from None


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@contextmanager
def console_warnings():
    """Show Python warnings (e.g. "using the geometric prior") as one plain line on the console."""
    previous = warnings.showwarning
    warnings.showwarning = lambda message, *args, **kwargs: console.print(f"[yellow]note:[/] {escape(str(message))}", highlight=False, soft_wrap=True)
    try:
        yield
    finally:
        warnings.showwarning = previous


def _run(request, resume: bool = False) -> None:
    from gen3c.parallel import is_main_process
    from gen3c.pipelines.request import run_request

    if not is_main_process():
        # Another rank of a multi-GPU run: the same work, silently; rank 0 reports and writes.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run_request(request, resume=resume)
        return
    with console_warnings(), progress_bars(console) as progress:
        out = run_request(request, progress=progress, resume=resume)
    result = out.result
    chunks = f" in {len(result.chunks)} chunks" if len(result.chunks) > 1 else ""
    size = f"{result.cameras.width}×{result.cameras.height}"
    if "buffer_masks" in out.paths:  # --save_buffer: the buffer renders sit left of each frame
        size += f", {_video_width(out.paths['video'])}×{result.cameras.height} with the buffer renders"
    console.print(f"[green]wrote[/] {escape(str(out.paths['video']))} ({counted(result.num_frames, 'frame')}{chunks}, {size}) in {out.seconds:.1f} s", highlight=False, soft_wrap=True)
    for key, path in out.paths.items():
        if key != "video":
            console.print(f"      {escape(str(path))}", highlight=False, soft_wrap=True)
    if out.generator_settings is not None:
        console.print(f"      ran with {escape(_describe_settings(out.generator_settings))}", highlight=False, soft_wrap=True)


def _video_width(path) -> int:
    """The width of a video just written (read from its header)."""
    import av

    with av.open(str(path)) as container:
        return container.streams.video[0].width


def _describe_settings(ran: dict) -> str:
    """One line of what the gen3c generator ran with (:meth:`~gen3c.pipelines.gen3c.Gen3cGenerator.settings`)."""
    guidance = "no guidance" if ran["guidance"] == 0 else f"guidance {ran['guidance']:g}" + (
        f", unconditional branch every {ran['guidance_every']} steps" if ran["guidance_every"] > 1 else ""
    ) + (", branches batched" if ran["guidance_batch"] else "")  # fmt: skip
    noise = f", buffer noise {ran['noise_aug_strength']:g}" if ran.get("noise_aug_strength") else ""
    kernels = f"attention {ran['attention']}, compile {'on' if ran['compile'] else 'off'}, fp8 matmuls {'on' if ran['fp8_matmul'] else 'off'}"
    gpus = f" × {ran['num_gpus']}" if ran["num_gpus"] > 1 else ""
    dit = f"DiT {ran['dit_memory']}" + (", float8 weights" if ran["fp8_weights"] else "")
    return (
        f"--speed {ran['speed']}: {ran['sampler']} {ran['num_steps']} steps, {guidance}{noise}, step cache {ran['step_cache']}; "
        f"{kernels}; {dit}; {ran['device']}{gpus} {ran['dtype']}"
    )


@app.command()
@user_errors
def batch(
    manifest: Annotated[Path, typer.Argument(help="Jobs, one per JSONL line or CSV row: generate's settings by flag name, plus 'name' (see docs/batch.md); or a run record NAME_run.json, to run it again.")],
    output_folder: Annotated[
        Path | None, typer.Option("--output_folder", help="Folder for every job's outputs and status files (default: outputs/<manifest name>).")
    ] = None,
    retry_failed: Annotated[bool, typer.Option("--retry_failed", help="Run jobs that failed in an earlier run again.")] = False,
    workers: Annotated[
        int | None,
        typer.Option("--workers", help="Local: worker processes, one per GPU (default 1, in this process). Ray: actors (default: what fits)."),
    ] = None,
    use_ray: Annotated[bool, typer.Option("--ray", help="Run the jobs on Ray (a local Ray instance unless --ray_address).")] = False,
    ray_address: Annotated[
        str | None, typer.Option("--ray_address", help="Join this Ray cluster ('auto', 'ray://HOST:10001', 'HOST:6379'); implies --ray.")
    ] = None,
    gpus_per_job: Annotated[
        float | None,
        typer.Option("--gpus_per_job", help="GPUs each worker holds (default 1 when there are GPUs, else 0); Ray takes fractions."),
    ] = None,
    cpus_per_job: Annotated[float, typer.Option("--cpus_per_job", help="CPUs each Ray actor reserves.")] = 1.0,
    trust_checkpoint: Annotated[
        bool,
        typer.Option("--trust_checkpoint", help="Let rows (and run records) set trust_checkpoint: full unpickling, which can run code, of legacy .pt inputs you trust."),
    ] = False,
) -> None:
    """Generate many videos from a manifest into one folder: resumable (finished jobs are verified and skipped), locally or on Ray."""
    from rich.table import Table

    from gen3c.batch import run_batch

    def report(outcome) -> None:
        if outcome.state == "done":
            console.print(f"[green]done[/] {escape(outcome.name)} ({counted(outcome.frames, 'frame')}, {outcome.seconds:.1f} s){escape(' — ' + outcome.note) if outcome.note else ''}", highlight=False, soft_wrap=True)
        elif outcome.state == "failed":
            console.print(f"[bold red]failed[/] {escape(outcome.name)}: {escape(outcome.error)}", highlight=False, soft_wrap=True)

    if not use_ray and ray_address is None:
        if cpus_per_job != 1.0 or "cpus_per_job" in _typed_options():
            raise Gen3cInputError("--cpus_per_job applies to --ray only (local workers split the cores among themselves)")
        from gen3c.dependencies import require
        from gen3c.pipelines.request import VIDEO_MODULES

        for module in VIDEO_MODULES:  # every job writes a video: refused once, not job by job
            require(module, "gen3c batch (each job writes a video)")
    with console_warnings(), progress_bars(console) as progress:
        summary = run_batch(
            manifest, output_folder, retry_failed=retry_failed, workers=workers, ray=use_ray, ray_address=ray_address,
            gpus_per_job=gpus_per_job, cpus_per_job=cpus_per_job, trust_checkpoint=trust_checkpoint, progress=progress, on_outcome=report,
        )  # fmt: skip
    console.print(f"gen3c batch: {counted(len(summary.outcomes), 'job')} in {escape(str(summary.folder))}", highlight=False, soft_wrap=True)
    table = Table()
    for column in ("state", "jobs"):
        table.add_column(column)
    for state, count in summary.counts.items():
        if count:
            table.add_row(state, str(count))
    console.print(table)
    for outcome in summary.failed[:10]:
        console.print(f"[red]{outcome.state}[/] {escape(outcome.name)}: {escape(outcome.error)}", highlight=False, soft_wrap=True)
    console.print(f"summary table: {escape(str(summary.summary_path))}", highlight=False, soft_wrap=True)
    if summary.failed:
        console.print(f"[bold red]{len(summary.failed)} of {counted(len(summary.outcomes), 'job')} failed[/]; fix {'it' if len(summary.failed) == 1 else 'them'} and rerun with --retry_failed", highlight=False)
        raise typer.Exit(code=1)
@app.command("eval")
@user_errors
@_takes_shared_generator_flags(before="verify_checksums")
def eval_command(
    output_folder: Annotated[Path, typer.Option("--output_folder", help="Folder for report.md, results.json, plots and contact sheets.")] = Path(
        "eval_report"
    ),
    generator: Annotated[
        GeneratorName,
        typer.Option("--generator", help="preview: the baselines and preview variants only; gen3c: the GEN3C model too (GEN3C's weights, fetched on first use as by gen3c generate; or --checkpoint_dir, --model tiny)."),
    ] = GeneratorName.preview,
    full: Annotated[bool, typer.Option("--full", help="GEN3C's size: 704x1280, 121 frames, antialiased ground truth (for a GPU).")] = False,
    scenes: Annotated[str, typer.Option("--scenes", help="Comma-separated scenes: room, corridor, street, objects, or 'all'.")] = "all",
    presets: Annotated[str, typer.Option("--presets", help="Comma-separated trajectory presets, or 'all' (GEN3C's 8).")] = "all",
    methods: Annotated[
        str,
        typer.Option("--methods", help="Comma-separated rows to run: still, homography, cache, preview, preview_fg, preview_zbuffer, preview_zbuffer_fg, or 'all'."),
    ] = "all",
    camera_rotation: RotationOpt = Rotation.center_facing,
    movement_distance: Annotated[
        float, typer.Option("--movement_distance", help="How far the camera moves: a share of the scene's median depth with the default --trajectory_scale median_depth.")
    ] = 0.15,
    trajectory_scale: ScaleOpt = TrajectoryScale.median_depth,
    resolution: Annotated[
        str | None, typer.Option("--resolution", help="HEIGHTxWIDTH of every case (default 176x320; --full: 704x1280).")
    ] = None,
    num_video_frames: Annotated[
        int | None,
        typer.Option("--num_video_frames", help="Frames per case (default 25; --full: 121; the gen3c generator: its chunk, 121 for GEN3C-7B, 17 for the tiny models)."),
    ] = None,
    contact_frames: Annotated[int, typer.Option("--contact_frames", help="Frames per row of each contact sheet.")] = 5,
    no_plots: Annotated[bool, typer.Option("--no_plots", help="Skip the matplotlib plots (markdown, JSON and contact sheets only).")] = False,
    seed: SeedOpt = 1,
    verify_checksums: VerifyOpt = False,
    model: ModelOpt = None,
    lora: LoraOpt = None,
    compare_models: Annotated[
        str | None,
        typer.Option(
            "--compare_models",
            help="gen3c generator: comma-separated further models run in the same benchmark (packaged names such as tiny_fast, "
            "or checkpoint folders), each with its own step count and guidance, and scored also against the first model's videos.",
        ),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Reuse the finished cases of the partial report a stopped run left in OUTPUT/partial (same settings, models, "
            "code, device, CPU and CPU threads, else refused naming what differs) and run only the others; --scenes and --presets "
            "may add cases (those they leave out must hold no finished case).",
        ),
    ] = False,
    **generator_flags,
) -> None:
    """Benchmark camera control and 3D consistency on seeded procedural scenes with ground truth; writes a report folder."""
    _refuse_torchrun("gen3c eval", "run the whole benchmark into the same --output_folder")
    from contextlib import ExitStack

    from gen3c.evaluation.report import check_output_names, summary_table
    from gen3c.evaluation.run import make_config, parse_list, report_folder_held, run_eval
    from gen3c.io.atomic import ensure_writable_dir, removed_if_left_empty
    from gen3c.pipelines.request import GenerationRequest, make_generator

    # Notes while checking and loading the models too (--max_gpu_memory's choice, …): one line each, as generate prints them.
    with console_warnings():
        options = _generator_options(generator, {**locals(), **generator_flags})
        if generator == GeneratorName.preview and (seed != 1 or "seed" in _typed_options()):
            raise Gen3cInputError("--seed applies to --generator gen3c only (the preview and baselines are deterministic); drop it")
        settings = dict(
            full=full, scenes=scenes, presets=presets, resolution=resolution, num_frames=num_video_frames,
            camera_rotation=camera_rotation.value, movement_distance=movement_distance, trajectory_scale=trajectory_scale.value,
            contact_frames=contact_frames,
        )  # fmt: skip
        size = "x".join(map(str, make_config(**settings).resolution))  # bad settings refused before a model loads
        if compare_models is not None and generator != GeneratorName.gen3c:
            raise Gen3cInputError("--compare_models compares gen3c models: pass --generator gen3c and the first one's --model or --checkpoint_dir")
        if generator == GeneratorName.gen3c:  # as generate checks them: typed at their default too (--memory_mode resident beside --low_memory)
            from gen3c.pipelines.options import check_generator_options

            check_generator_options(options, _typed_options())
        to_compare = _compared_models(compare_models)  # refused before any model loads
        # A compared model runs with its own sampling defaults and no adapter: its steps and guidance, and so not the
        # settings that shape guidance (a distilled student samples without it); the device and memory flags are shared.
        own = ("model", "checkpoint_dir", "lora", "num_steps", "guidance", "negative_prompt", "guidance_every", "guidance_batch")
        shared = {k: v for k, v in options.items() if k not in own}
        if to_compare:
            from gen3c.pipelines.options import check_generator_options

            for name, where in to_compare:  # a setting a compared model refuses, refused before any model loads
                try:
                    check_generator_options({**shared, **where})
                except Gen3cInputError as exc:
                    raise Gen3cInputError(f"the compared model {name}: {exc}") from None
        if generator == GeneratorName.gen3c:  # a frame count a model cannot make, refused before any model loads
            from gen3c.models.packaged import model_chunk_frames
            from gen3c.pipelines.autoregressive import check_chunked_frame_count
            from gen3c.pipelines.request import official_chunk_frames

            def chunk_of(opts: dict) -> int:  # as check_generator reads it, from the model's record
                return model_chunk_frames(opts) or official_chunk_frames(opts.get("cache_dir"))

            num_frames = make_config(**settings, chunk_frames=chunk_of(options)).num_frames
            check_chunked_frame_count(num_frames, chunk_of(options), "the gen3c generator")
            for name, where in to_compare:
                check_chunked_frame_count(num_frames, chunk_of({**shared, **where}), f"the compared model {name}")
        model = None
        compared = {}
        loading: dict[str, float] = {}  # row → seconds to load its model (reported apart from the time per video)
        # An unusable folder is refused before any model loads; one made here goes again if the run fails before writing to it.
        with removed_if_left_empty(output_folder), ExitStack() as held:
            ensure_writable_dir(output_folder, "--output_folder")
            held.enter_context(report_folder_held(output_folder))  # a second eval into it refused before any model loads
            check_output_names(output_folder)
            if resume:  # a partial run with other settings refused before any model loads (its rows after)
                from gen3c.evaluation.resume import fingerprint, read_partial

                chunk = chunk_of(options) if generator == GeneratorName.gen3c else None
                read_partial(output_folder, fingerprint(make_config(**settings, chunk_frames=chunk)))
            if generator == GeneratorName.gen3c:
                with progress_bars(console) as load_progress:
                    started = time.perf_counter()
                    request = GenerationRequest(generator="gen3c", seed=seed, resolution=size, generator_options=options)
                    model = make_generator(request, load_progress)
                    loading[getattr(model, "name", "gen3c")] = time.perf_counter() - started
                    for name, where in to_compare:
                        started = time.perf_counter()
                        compared[name] = make_generator(
                            GenerationRequest(generator="gen3c", seed=seed, resolution=size, generator_options={**shared, **where}), load_progress
                        )
                        loading[name] = time.perf_counter() - started
            config = make_config(**settings, chunk_frames=getattr(model, "chunk_frames", None))
            with progress_bars(console) as progress:
                result, paths = run_eval(
                    config, output_folder, methods=parse_list(methods, "--methods"), generator=model, compared=compared,
                    load_seconds=loading, plots=not no_plots, progress=progress, resume=resume,
                )  # fmt: skip
    table = summary_table(result)  # as wide as it needs, also when the output is not a terminal (logs, pipes)
    Console(width=max(Console().width, Console(width=1000).measure(table).maximum)).print(table)
    reused = sum(c.reused for c in result.cases)
    resumed = f", {reused} of them reused from the partial run" if reused else ""
    # (the time is this run's: said before the reused cases, not read as the partial run's)
    console.print(f"[green]wrote[/] {escape(str(paths['report']))} ({counted(len(result.cases), 'case')} in {result.seconds:.0f} s{resumed})", highlight=False, soft_wrap=True)
    for key in ("results", "plots", "contact_sheets"):
        items = paths[key] if isinstance(paths[key], list) else [paths[key]]
        if items:
            console.print(f"      {escape(str(items[0]))}" + (f" (+{len(items) - 1} more)" if len(items) > 1 else ""), highlight=False, soft_wrap=True)


def _compared_models(text: str | None) -> list[tuple[str, dict]]:
    """``--compare_models`` as (row name, generator options naming the model): a packaged model is
    row ``gen3c:NAME``, a checkpoint folder ``gen3c:FOLDER`` (with its parent's name when the
    folder is a run's ``model/``)."""
    from gen3c.evaluation.run import parse_list
    from gen3c.models.packaged import PACKAGED_MODELS

    if text is None:
        return []
    rows = []
    for entry in parse_list(text, "--compare_models"):
        path = Path(entry)
        if entry in PACKAGED_MODELS and not path.exists():
            label, where = entry, {"model": entry}
        elif not path.is_dir():
            raise Gen3cInputError(
                f"--compare_models {entry!r} is neither a packaged model ({', '.join(PACKAGED_MODELS)}) nor a checkpoint folder"
            )
        else:
            label = f"{path.parent.name}/{path.name}" if path.name == "model" and path.parent.name else path.name
            where = {"checkpoint_dir": entry}
        if f"gen3c:{label}" in dict(rows):  # (one row per name: the later model replaced the earlier one, unsaid)
            raise Gen3cInputError(f"--compare_models {entry!r} makes the row gen3c:{label}, as an earlier entry does: compare folders of different names (a symbolic link of another name will do)")
        rows.append((f"gen3c:{label}", where))
    return rows


#: Settings of how OpenMP's idle threads wait (standard, GNU libgomp's, Intel's and LLVM's): a user
#: who gives any of them keeps it, and gen3c leaves the waiting alone.
OPENMP_WAIT_SETTINGS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")


def idle_thread_settings(environ: Mapping[str, str]) -> dict[str, str]:
    """What the command line adds to its environment before torch loads, unless ``environ`` says
    how OpenMP's idle threads wait (:data:`OPENMP_WAIT_SETTINGS`): torch's CPU threads spin for
    ~10 µs (``GOMP_SPINCOUNT=1000``, GNU OpenMP: torch's Linux wheels) when they run out of work,
    then sleep (``OMP_WAIT_POLICY=PASSIVE``: at once, for the other OpenMP runtimes).

    GNU OpenMP's own default spins for ~3 ms (``GOMP_SPINCOUNT`` 300000). On a CPU whose cores
    other programs also use, a spinning thread takes the core its partner needs to reach the next
    barrier: on this project's 2-core machine beside two busy processes, 2 threads took 2–10 s
    for the shipped tiny model's sampling (2–3 s with the short spin) and 22–29 s for the demo's
    generation (7–10 s); on idle cores the short spin is as fast as the long one, where sleeping
    at once costs a wake-up per operation (the tiny model's sampling 0.7 → 1.5 s). See
    docs/benchmarks.md. The work and how it is split between threads stay the same, so the
    outputs are the same bit for bit.
    """
    if any(name in environ for name in OPENMP_WAIT_SETTINGS):
        return {}
    return {"GOMP_SPINCOUNT": "1000", "OMP_WAIT_POLICY": "PASSIVE"}


#: An import that leaves at least this many objects the collector has not yet walked (torch's
#: first import: ~280,000; diffusers' stack: ~280,000; a gen3c module: a few thousand) freezes them.
FREEZE_AFTER_OBJECTS = 50_000


@contextmanager
def imports_without_collection() -> Iterator[None]:
    """Inside the block Python's cyclic garbage collector pauses while a module loads (it runs as
    usual between imports), and the objects a large library leaves are frozen (``gc.freeze``)
    when its import returns.

    torch and diffusers' stack (transformers, peft, …) make ~500,000 objects as they load, all
    of them kept until the process ends; the collector's passes over them as they piled up took
    ~1 s of the ~4 s that loading them takes on this project's 2-core machine. Loaded with the
    collector paused they all wait in its youngest generation, and its next passes walked them
    again (a young, a middle and a full pass: 0.14–0.29 s of a `gen3c demo` run, 0.45–2.2 s of a
    `--model tiny` one on the shared 2-core machine). Frozen when an import leaves
    :data:`FREEZE_AFTER_OBJECTS` unwalked objects, they are never walked (0.01–0.04 s of
    collection per run); the cyclic garbage that exists at that moment is kept too (~0.6 MB after
    torch's import, ~7.5 MB after diffusers'; no tensors or arrays). docs/benchmarks.md has the runs.
    """
    real_import = builtins.__import__

    def import_paused(name, globals=None, locals=None, fromlist=(), level=0):
        if not gc.isenabled():  # an import inside one, or the collector paused by someone else
            return real_import(name, globals, locals, fromlist, level)
        gc.disable()
        try:
            return real_import(name, globals, locals, fromlist, level)
        finally:
            if gc.get_count()[0] >= FREEZE_AFTER_OBJECTS:  # objects made since the collector's last pass
                gc.freeze()
            gc.enable()

    builtins.__import__ = import_paused
    try:
        yield
    finally:
        if builtins.__import__ is import_paused:
            builtins.__import__ = real_import


def main() -> None:
    """Run the ``gen3c`` command line and exit with its code: 2 for a user's mistake, 130 (143)
    when Ctrl-C (SIGTERM) came before the code was settled (:func:`gen3c.errors.exit_command_line`)."""
    if "torch" not in sys.modules:  # OpenMP reads its settings once, when torch loads
        os.environ.update(idle_thread_settings(os.environ))
    exit_command_line(_run_app)


def _run_app() -> None:
    if "TORCHELASTIC_RUN_ID" in os.environ:  # a rank of torchrun (which sets it): it ends with torchrun (SIGTERM's handler is in place)
        stop_when_the_launcher_is_gone()
    try:
        with imports_without_collection():
            app()
    finally:
        # The libraries' objects live until the end: the collector need not walk them again as
        # the interpreter exits (~1 s with diffusers' stack loaded).
        gc.freeze()


if __name__ == "__main__":
    sys.exit(main())
