"""gen3c's progress display (gen3c.progress): rich's live bars on a terminal; plain lines now and
then where the output is a log, a pipe or CI (rich printed the bars there only as the run ended)."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

import gen3c.progress
from gen3c.progress import progress_bars


class Clock:
    """A clock that moves only when told."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(gen3c.progress, "_clock", clock, raising=False)
    return clock


def log() -> tuple[Console, io.StringIO]:
    """A console writing to a file, as `gen3c generate 2> run.log` has."""
    stream = io.StringIO()
    return Console(file=stream, width=80), stream


def test_a_log_gets_a_line_as_a_stage_starts_every_30_s_and_as_it_ends(clock):
    """100 steps of 1 s each: the stage's start, a line at 30, 60 and 90 s (not one a step), its
    end. Before: nothing while the stage ran; the bar once, as the run ended."""
    console, stream = log()
    with progress_bars(console) as progress:
        advance = progress("  Generating (gen3c)", 100)
        assert stream.getvalue() == "Generating (gen3c): 0/100 (0%)\n"
        for _ in range(100):
            clock.now += 1
            advance()
            if clock.now == 30:
                assert stream.getvalue().splitlines()[-1] == "Generating (gen3c): 30/100 (30%), 0:00:30 elapsed, ETA 0:01:10"
    assert stream.getvalue().splitlines() == [
        "Generating (gen3c): 0/100 (0%)",
        "Generating (gen3c): 30/100 (30%), 0:00:30 elapsed, ETA 0:01:10",
        "Generating (gen3c): 60/100 (60%), 0:01:00 elapsed, ETA 0:00:40",
        "Generating (gen3c): 90/100 (90%), 0:01:30 elapsed, ETA 0:00:10",
        "Generating (gen3c): 100/100 (100%) in 0:01:40",
    ]


def test_a_log_is_never_flooded(clock):
    """10,000 quick steps (10 s in all) and a stage of one step: two lines each, whatever the count."""
    console, stream = log()
    with progress_bars(console) as progress:
        advance = progress("Rendering 3D cache", 10_000)
        for _ in range(10_000):
            clock.now += 0.001
            advance()
        progress("Loading gen3c model", 1)(1)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 4, lines
    assert lines[1] == "Rendering 3D cache: 10000/10000 (100%) in 0:00:10" and lines[3] == "Loading gen3c model: 1/1 (100%) in 0:00:00"


def test_a_stage_cut_short_is_shown_as_it_stood(clock):
    """An error (or fewer steps than announced) ends the display with the count reached."""
    console, stream = log()
    with pytest.raises(RuntimeError), progress_bars(console) as progress:
        advance = progress("Training", 10)
        clock.now += 5
        advance(3)
        raise RuntimeError("out of memory")
    assert stream.getvalue().splitlines() == ["Training: 0/10 (0%)", "Training: 3/10 (30%), 0:00:05 elapsed, ETA 0:00:12"]


def test_a_terminal_still_gets_richs_live_bar(monkeypatch, clock):
    monkeypatch.setenv("TERM", "xterm-256color")
    stream = io.StringIO()
    with progress_bars(Console(file=stream, force_terminal=True, width=100)) as progress:
        advance = progress("Generating (gen3c)", 4)
        for _ in range(4):
            advance()
    out = stream.getvalue()
    assert "━" in out and "\x1b[" in out and "4/4" in out  # a bar, redrawn in place
    assert "Generating (gen3c): " not in out  # no plain lines


def test_the_first_bars_leave_pythons_random_as_the_caller_seeded_it(box_scene, tmp_path):
    """``gen3c.generate``'s bars (progress=True, its default) import rich, whose rich.style draws
    from Python's global ``random`` as it is imported: before, a script's ``random.seed(0)`` stream
    moved on its first call. In a child process, where rich is not imported yet, of the gen3c
    this test imported."""
    import subprocess
    import sys
    from pathlib import Path

    from child_env import child_env

    image_path, depth_path, _, _ = box_scene
    code = (
        "import random, sys, gen3c\n"
        "random.seed(0)\n"
        f"gen3c.generate({str(image_path)!r}, depth={str(depth_path)!r}, fov=60, generator='preview', resolution='32x48',\n"
        f"               num_video_frames=3, video_save_folder={str(tmp_path)!r})\n"
        "print('rich' in sys.modules, random.random() == random.Random(0).random())"
    )
    env = child_env(Path(gen3c.progress.__file__).parents[1])  # the src this test runs, ahead of the checkout's
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["True", "True"], res.stdout
    assert "Generating (preview)" in res.stderr  # the bars were drawn


def test_a_later_bar_leaves_what_another_thread_drew_from_random_drawn(monkeypatch):
    """Python's random state was saved and put back around every bar's console, not only around
    rich's first import (whose rich.style draws from it): a number another thread drew in between
    was drawn again, the state rewound under it. That thread's draw is made here as the state is saved."""
    import random

    gen3c.progress._stderr_console()  # rich imported (what the first import does: test_the_first_bars_… above)
    drawn = []
    save = random.getstate

    def saved_as_another_thread_draws():
        state = save()
        drawn.append(random.random())
        return state

    monkeypatch.setattr(random, "getstate", saved_as_another_thread_draws)
    random.seed(0)
    gen3c.progress._stderr_console()
    seeded = random.Random(0)
    assert [*drawn, random.random()] == [seeded.random() for _ in range(len(drawn) + 1)]  # (before: [a, a]: a drawn twice)
