"""The GUI server under abuse: hostile upload names, malformed and oversized uploads, a crowd of
generate presses, a client vanishing mid-generation. The server keeps serving, one job runs at
a time, and nothing is written outside its work folder."""

from __future__ import annotations

import functools
import html
import json
import os
import re
import threading
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from gen3c.errors import Gen3cInputError
from gen3c.gui import state as gui_state

pytest.importorskip("viser", reason="the GUI needs viser (gen3c[gui])")
from gen3c.gui.app import SETTING_CONTROLS  # noqa: E402
from gen3c.gui.state import GuiState, JobRunner
from gen3c.io.camera_files import cameras_to_dict
from gen3c.pipelines.preview import PreviewGenerator
from gen3c.pipelines.request import GenerationRequest
from gen3c.pipelines.resume import partial_dir
from gen3c.pipelines.settings import check_unused_settings

pytest.importorskip("viser")


class GatedPreview(PreviewGenerator):
    """The preview, waiting at each chunk until ``gate`` is set (so runs overlap on purpose)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate, self.entered = threading.Event(), threading.Event()

    def generate(self, *args, **kwargs):
        self.entered.set()
        assert self.gate.wait(30)
        return super().generate(*args, **kwargs)


def files_under(root: Path) -> set[Path]:
    return {p.resolve() for p in root.rglob("*")}


@pytest.fixture
def gui(tmp_path, room_sample):
    from gen3c.gui.app import Gen3cApp

    generator = GatedPreview()
    app = Gen3cApp(tmp_path / "work", port=0, request=GenerationRequest(resolution="48x80", num_video_frames=9),
                   demo=lambda: room_sample, generator=generator)  # fmt: skip
    app.generator = generator
    yield app
    generator.gate.set()
    app.stop()


def handler(app, func, *args):
    """A page callback as viser calls it: through the app's error handling."""
    return app._callback(functools.partial(func, *args) if args else func)


def upload_event(name: str, content: bytes, client=None):
    return SimpleNamespace(target=SimpleNamespace(value=SimpleNamespace(name=name, content=content)), client=client)


def serves(app) -> bool:
    with urllib.request.urlopen(app.url, timeout=10) as response:
        return response.status == 200


names = st.one_of(
    st.sampled_from(["../../etc/x", "/etc/passwd", "..", ".", "", "a\x00b.png", "C:\\Windows\\evil.png", "~/.bashrc",
                     "x/" * 200 + "y.png", "\u202egnp.exe", "con", "-rf", " .png"]),
    st.text(max_size=300),
)  # fmt: skip


@settings(max_examples=100 * int(os.environ.get("GEN3C_FUZZ_SCALE", "1")), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names)
def test_upload_names_never_leave_the_uploads_folder(tmp_path, name):
    state = GuiState(tmp_path / "work")
    outside = files_under(tmp_path) - files_under(state.work_dir)
    path = state.save_upload(name, b"data", "image")
    assert path.parent == state.work_dir / "uploads" and path.read_bytes() == b"data"
    assert path.name not in ("", ".", "..") and "\x00" not in path.name and len(path.name) <= 100
    assert files_under(tmp_path) - files_under(state.work_dir) == outside


def test_oversized_and_malformed_uploads_are_errors_in_the_page(gui, monkeypatch, box_scene):
    monkeypatch.setattr(gui_state, "MAX_UPLOAD_BYTES", 1000)
    upload = handler(gui, gui._on_upload, gui.image_path, "image")
    upload(upload_event("big.png", b"0" * 1001))
    assert "upload limit" in gui.status.content and not (gui.state.work_dir / "uploads" / "big.png").exists()
    # A malformed image and a depth file that is not one: loading them fails with a message.
    upload(upload_event("broken.png", b"\x89PNG\r\n\x1a\n" + os.urandom(200)))
    handler(gui, gui._on_upload, gui.depth_path, "depth file")(upload_event("../../depth.npy", b"\x93NUMPY garbage"))
    assert gui.depth_path.value == str(gui.state.work_dir / "uploads" / "depth.npy")
    handler(gui, gui._on_load_files)(SimpleNamespace(client=None))
    assert "Error" in gui.status.content and gui.state.source is None
    # The real files load after that.
    image, depth, _, _ = box_scene
    gui.image_path.value, gui.depth_path.value = str(image), str(depth)
    handler(gui, gui._on_load_files)(SimpleNamespace(client=None))
    assert gui.state.source is not None and "Loaded" in gui.status.content
    assert serves(gui)


def test_an_upload_onto_a_full_disk_is_said_as_such_in_one_line(gui, monkeypatch):
    """A full disk met by a page action read "internal error: OSError: [Errno 28] No space left on
    device: '…/photo.png.tmp'", a bug of gen3c's; it is the user's disk to free."""
    import errno

    def disk_full(path, content):
        raise OSError(errno.ENOSPC, "No space left on device", f"{path}.tmp")

    monkeypatch.setattr(gui_state, "write_bytes_atomic", disk_full)
    with pytest.raises(OSError):  # (re-raised for viser's log of its traceback)
        handler(gui, gui._on_upload, gui.image_path, "image")(upload_event("photo.png", b"x" * 10))
    assert gui.status.content == (
        "<span style='color:#c92a2a'>**Error:** the disk is full (No space left on device): free space on the disk of the GUI&#x27;s "
        "work folder, then try again</span>"
    ), gui.status.content


def test_a_crowd_of_generate_presses_runs_one_job(gui):
    handler(gui, gui._on_demo)(SimpleNamespace(client=None))
    press = handler(gui, gui._on_generate)
    threads = [threading.Thread(target=press, args=(SimpleNamespace(client=None),)) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert gui.generator.entered.wait(30) and gui.jobs.running
    assert "already running" in gui.status.content
    gui.generator.gate.set()
    assert gui.jobs.wait(60)
    outputs = sorted(p.name for p in (gui.state.work_dir / "outputs").iterdir())
    assert outputs == ["gui_001.mp4", "gui_001_cameras.json", "gui_001_run.json"]
    assert serves(gui)


def browser_camera_message() -> bytes:
    """What a browser tab sends first: its camera (viser's wire format, msgpack)."""
    import msgspec
    from viser import _messages

    message = _messages.ViewerCameraMessage(
        wxyz=(1.0, 0.0, 0.0, 0.0), position=(0.0, 0.0, -1.0), fov=1.0, near=0.01, far=100.0, image_height=480,
        image_width=640, look_at=(0.0, 0.0, 1.0), up_direction=(0.0, -1.0, 0.0),
    )  # fmt: skip
    return msgspec.msgpack.encode(message.as_serializable_dict())


def connect_browser(gui):
    """A websocket client that viser counts as a connected browser (it reports its camera), and
    its viser client once registered: ``(socket, client)``."""
    import viser
    from websockets.sync.client import connect

    socket = connect(gui.url.replace("http://", "ws://"), subprotocols=[f"viser-v{viser.__version__}"], max_size=None)
    socket.send(browser_camera_message())  # viser counts a client as connected from its first camera report
    deadline = time.monotonic() + 20
    while not gui.server.get_clients():
        assert time.monotonic() < deadline, "the client did not register"
        time.sleep(0.05)
    return socket, next(iter(gui.server.get_clients().values()))


def test_a_client_leaving_mid_generation_does_not_stop_the_server(gui):
    import viser
    from websockets.sync.client import connect

    ws_url = gui.url.replace("http://", "ws://")
    socket, client = connect_browser(gui)
    deadline = time.monotonic() + 20
    handler(gui, gui._on_demo)(SimpleNamespace(client=client))
    handler(gui, gui._on_generate)(SimpleNamespace(client=client))
    assert gui.generator.entered.wait(30)
    socket.close()  # the browser tab closes while the job runs
    while gui.server.get_clients():
        assert time.monotonic() < deadline + 20, "the server kept the closed client"
        time.sleep(0.05)
    gui.generator.gate.set()
    assert gui.jobs.wait(60) and (gui.state.work_dir / "outputs" / "gui_001.mp4").is_file()
    # The server still serves pages, websockets and generations.
    assert serves(gui)
    with connect(ws_url, subprotocols=[f"viser-v{viser.__version__}"], max_size=None) as again:
        again.recv(timeout=10)
    handler(gui, gui._on_generate)(SimpleNamespace(client=None))
    assert gui.jobs.wait(60) and (gui.state.work_dir / "outputs" / "gui_002.mp4").is_file()


def test_a_run_that_ends_while_generate_updates_the_page_leaves_it_ready(gui, monkeypatch):
    """The job's end is shown from the worker thread. It did so without the app's lock: a run
    ending before Generate's callback had finished (a short one) was shown first, and the callback
    then disabled Generate, enabled Cancel and said "Generating…" for good."""
    handler(gui, gui._on_demo)(SimpleNamespace(client=None))
    gui.generator.gate.set()
    start = gui.jobs.start

    def start_and_let_it_end(*args, **kwargs):
        start(*args, **kwargs)
        gui.jobs.wait(1.0)  # the run ends here, if nothing holds it back

    monkeypatch.setattr(gui.jobs, "start", start_and_let_it_end)
    handler(gui, gui._on_generate)(SimpleNamespace(client=None))
    assert gui.jobs.wait(60)
    deadline = time.monotonic() + 10
    while "Generated" not in gui.status.content and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "Generated **gui_001.mp4**" in gui.status.content
    assert not gui.generate.disabled and gui.cancel.disabled and not gui.progress.animated


def test_a_cancel_click_that_comes_after_the_run_ended_leaves_its_result_shown(gui):
    """A Cancel click the page sent before the run's end disabled the button is handled after it:
    it put "Cancelling…" over "Done in … s" for good, with nothing running."""
    handler(gui, gui._on_demo)(SimpleNamespace(client=None))
    gui.generator.gate.set()
    handler(gui, gui._on_generate)(SimpleNamespace(client=None))
    assert gui.jobs.wait(60)
    deadline = time.monotonic() + 10
    while "Generated" not in gui.status.content and time.monotonic() < deadline:
        time.sleep(0.02)
    handler(gui, gui._on_cancel)(SimpleNamespace(client=None))
    assert gui.progress_text.content.startswith("Done in ") and "Generated **gui_001.mp4**" in gui.status.content


def test_generate_pressed_after_cancel_before_the_run_stops_says_it_is_stopping(gui):
    """Generate pressed while a cancelled run has yet to reach its next step said "a generation is
    already running: wait for it to finish or cancel it", as if Cancel had not been pressed."""
    handler(gui, gui._on_demo)(SimpleNamespace(client=None))
    handler(gui, gui._on_generate)(SimpleNamespace(client=None))
    assert gui.generator.entered.wait(30)
    handler(gui, gui._on_cancel)(SimpleNamespace(client=None))
    handler(gui, gui._on_generate)(SimpleNamespace(client=None))
    assert "the cancelled generation has not stopped yet: press Generate again once the page says it was cancelled" in gui.status.content
    gui.generator.gate.set()
    assert gui.jobs.wait(60)
    handler(gui, gui._on_generate)(SimpleNamespace(client=None))
    assert gui.jobs.wait(60) and "Generated **gui_001.mp4**" in gui.status.content, gui.status.content


def test_a_new_run_takes_the_last_run_s_line_off_the_progress(gui, monkeypatch):
    """Until a run's first stage starts (its input read again, its cache built) nothing updates the
    line under the progress bar: it went on saying the last run's "Done in … s" beside
    "Generating gui_002…"."""
    handler(gui, gui._on_demo)(SimpleNamespace(client=None))
    gui.generator.gate.set()
    handler(gui, gui._on_generate)(SimpleNamespace(client=None))
    assert gui.jobs.wait(60)
    deadline = time.monotonic() + 10
    while not gui.progress_text.content.startswith("Done in ") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert gui.progress_text.content.startswith("Done in ")
    release = threading.Event()

    def preparing(*args, **kwargs):  # a run still before its first stage
        assert release.wait(30)
        raise gui_state.GenerationCancelled()

    monkeypatch.setattr(gui_state, "run_request", preparing)
    handler(gui, gui._on_generate)(SimpleNamespace(client=None))
    try:
        assert "Generating **gui_002**" in gui.status.content and gui.progress_text.content == ""
    finally:
        release.set()
        assert gui.jobs.wait(30)


def wait_for_status(app, text: str) -> str:
    """The page's status once it holds ``text`` (the run's end is shown from its worker thread)."""
    deadline = time.monotonic() + 10
    while text not in app.status.content and time.monotonic() < deadline:
        time.sleep(0.02)
    return app.status.content


def test_a_run_s_end_names_the_input_it_was_made_from(gui, box_scene):
    """Loading another input while a run goes replaces its "Generating gui_001…" line; its end said
    only "Generated gui_001.mp4", as if made from the input now loaded."""
    handler(gui, gui._on_demo)(SimpleNamespace(client=None))
    handler(gui, gui._on_generate)(SimpleNamespace(client=None))
    assert gui.generator.entered.wait(30)
    assert "Generating **gui_001** from **demo sample** (9 frames)" in gui.status.content
    gui.image_path.value, gui.depth_path.value = str(box_scene[0]), str(box_scene[1])
    handler(gui, gui._on_load_files)(SimpleNamespace(client=None))
    assert gui.status.content.startswith("Loaded **image.png**")
    gui.generator.gate.set()
    assert gui.jobs.wait(60)
    assert "Generated **gui_001.mp4** from **demo sample**." in wait_for_status(gui, "Generated")
    handler(gui, gui._on_generate)(SimpleNamespace(client=None))
    assert gui.jobs.wait(60)
    assert "Generated **gui_002.mp4** from **image.png**." in wait_for_status(gui, "gui_002.mp4")


def test_a_keyframe_run_that_writes_no_video_leaves_no_path_file(gui, monkeypatch):
    """A cancelled or failed run left paths/gui_001_path.json; the next run, named gui_001 too (no
    output has the number), wrote over it. The path file of a run without outputs is removed."""
    paths = gui.state.work_dir / "paths"
    handler(gui, gui._on_demo)(SimpleNamespace(client=None))
    handler(gui, gui._on_add_source_keyframe)(SimpleNamespace(client=None))
    handler(gui, gui._on_generate)(SimpleNamespace(client=None))
    assert gui.generator.entered.wait(30) and (paths / "gui_001_path.json").is_file()  # the run reads it
    handler(gui, gui._on_cancel)(SimpleNamespace(client=None))
    gui.generator.gate.set()
    assert gui.jobs.wait(60) and "Generation cancelled." in wait_for_status(gui, "cancelled")
    assert not any(paths.iterdir())

    def failing(*args, **kwargs):
        raise Gen3cInputError("the run failed")

    with monkeypatch.context() as patched:
        patched.setattr(gui_state, "run_request", failing)
        handler(gui, gui._on_generate)(SimpleNamespace(client=None))
        assert gui.jobs.wait(60) and "the run failed" in wait_for_status(gui, "the run failed")
    assert not any(paths.iterdir())
    # A run that wrote its video keeps its path file, which its record names; the next takes another number.
    handler(gui, gui._on_generate)(SimpleNamespace(client=None))
    assert gui.jobs.wait(60) and "Generated **gui_001.mp4**" in wait_for_status(gui, "Generated")
    record = json.loads((gui.state.work_dir / "outputs" / "gui_001_run.json").read_text())
    assert Path(record["camera_file"]) == paths / "gui_001_path.json" and (paths / "gui_001_path.json").is_file()
    handler(gui, gui._on_generate)(SimpleNamespace(client=None))
    assert gui.jobs.wait(60) and sorted(p.name for p in paths.iterdir()) == ["gui_001_path.json", "gui_002_path.json"]


def test_cancelling_a_long_run_keeps_no_chunks(tmp_path, room_sample):
    state = GuiState(tmp_path / "work", GenerationRequest(resolution="48x80", num_video_frames=17, chunk_frames=9))
    state.load_sample(*room_sample)
    runner, results, seen = JobRunner(), [], threading.Event()

    def on_progress(stage, done, total):
        if stage.startswith("Chunk 2/2"):
            seen.set()
            runner.cancel()

    request = state.build_request()
    runner.start(request, state.source, on_progress, results.append)
    assert runner.wait(60) and seen.is_set() and results[0].cancelled
    assert not partial_dir(request.video_save_folder, request.video_save_name).exists()
    assert not any(Path(request.video_save_folder).iterdir())


def test_settings_from_the_page_are_checked(tmp_path):
    state = GuiState(tmp_path / "work")
    for bad in ({"fps": float("nan")}, {"num_video_frames": -1}, {"resolution": 5}, {"evil": 1}):
        with pytest.raises(Gen3cInputError):
            state.update(**bad)
    # The CLI's checks, when the control is set: a seed out of range was taken, and refused only
    # by the run, after Generate was pressed.
    with pytest.raises(Gen3cInputError, match=r"--seed -1 is out of range: pass a whole number from 0 to 4294967295"):
        state.update(seed=-1)
    with pytest.raises(Gen3cInputError, match=r"--filter_points_threshold -0.5 is impossible"):
        state.update(filter_points_threshold=-0.5)
    assert (state.request.seed, state.request.filter_points_threshold) == (1, 0.05)


def test_a_refused_seed_is_taken_back_off_the_page(tmp_path, room_sample):
    """A seed out of range shows its error and the control shows the seed that runs again (the
    control kept the refused value, which no run would use)."""
    from gen3c.gui.app import Gen3cApp

    app = Gen3cApp(tmp_path / "work", port=0, request=GenerationRequest(generator="gen3c", resolution="48x80", num_video_frames=17, seed=7),
                   demo=lambda: room_sample, preload=False)  # fmt: skip
    try:
        app.seed.value = -1  # runs its callback, as a value from the page does
        assert "&quot;Seed&quot; -1 is out of range" in app.status.content
        assert app.state.request.seed == 7 and app.seed.value == 7
    finally:
        app.stop()


def _ipv6_loopback() -> bool:
    import socket

    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback here")
def test_the_printed_address_of_an_ipv6_host_opens(tmp_path):
    from gen3c.gui.app import Gen3cApp

    app = Gen3cApp(tmp_path / "work", host="::1", port=0, demo=None, preload=False)
    try:
        assert app.url.startswith("http://[::1]:")
        assert serves(app)
    finally:
        app.stop()


def slow_loader(monkeypatch, gui_app, make=PreviewGenerator) -> tuple[threading.Event, threading.Event]:
    """The GUI's generator (``make()``) loads until the test sets ``loaded``; ``loading`` is set
    once it has begun."""
    loading, loaded = threading.Event(), threading.Event()

    def slow_make_generator(request):
        loading.set()
        assert loaded.wait(30)
        return make()

    monkeypatch.setattr(gui_app, "make_generator", slow_make_generator)
    return loading, loaded


def test_generate_waits_for_the_generator_to_load(tmp_path, monkeypatch, room_sample):
    """While the generator loads the page says so; a Generate press meanwhile waits for the load
    (Generate disabled, Cancel enabled) and the run starts once it has loaded."""
    from gen3c.gui import app as gui_app

    loading, loaded = slow_loader(monkeypatch, gui_app)
    app = gui_app.Gen3cApp(tmp_path / "work", port=0, request=GenerationRequest(resolution="48x80", num_video_frames=9),
                           demo=lambda: room_sample)  # fmt: skip
    try:
        assert loading.wait(30)
        assert app.cancel.disabled and "Loading the preview generator" in app.progress_text.content
        handler(app, app._on_demo)(SimpleNamespace(client=None))
        handler(app, app._on_generate)(SimpleNamespace(client=None))
        assert app.generate.disabled and not app.cancel.disabled and "The run starts once it has loaded" in app.progress_text.content
        assert "Loading the preview generator" in app.status.content and not app.jobs.running
        loaded.set()
        app._loader.join(30)
        assert app.jobs.wait(60) and (app.state.work_dir / "outputs" / "gui_001.mp4").is_file()
        assert not app.generate.disabled and app.cancel.disabled and "Generated **gui_001.mp4**" in app.status.content
    finally:
        loaded.set()
        app.stop()


def test_a_run_waiting_for_the_generator_to_load_can_be_cancelled(tmp_path, monkeypatch, room_sample):
    """Generate pressed before the generator had loaded started the run by itself once it had
    loaded (a 7B load takes minutes), with Cancel disabled all along: a press by mistake could not
    be called off. Now Cancel calls off the waiting run; the load goes on and is kept."""
    from gen3c.gui import app as gui_app

    loading, loaded = slow_loader(monkeypatch, gui_app)
    app = gui_app.Gen3cApp(tmp_path / "work", port=0, request=GenerationRequest(resolution="48x80", num_video_frames=9),
                           demo=lambda: room_sample, preload=False)  # fmt: skip
    try:
        handler(app, app._on_demo)(SimpleNamespace(client=None))
        handler(app, app._on_add_source_keyframe)(SimpleNamespace(client=None))  # a path file for the run
        assert app.cancel.disabled
        handler(app, app._on_generate)(SimpleNamespace(client=None))
        assert loading.wait(30)
        assert not app.cancel.disabled and "The run starts once it has loaded" in app.progress_text.content
        handler(app, app._on_cancel)(SimpleNamespace(client=None))
        assert app.cancel.disabled and app.progress_text.content.startswith("Cancelled: no run starts."), app.progress_text.content
        assert "cancelled" in app.status.content
        loaded.set()
        app._loader.join(30)
        assert not app.jobs.running and not any((app.state.work_dir / "outputs").iterdir())  # (nor the name it held, gui_001.running)
        assert not any((app.state.work_dir / "paths").iterdir())  # the called-off run's path file is no run's
        assert app._generator is not None and not app.generate.disabled and app.cancel.disabled
        loader = app._loader
        handler(app, app._on_generate)(SimpleNamespace(client=None))  # the kept generator: no second load
        assert app._loader is loader and app.jobs.wait(60) and (app.state.work_dir / "outputs" / "gui_001.mp4").is_file()
    finally:
        loaded.set()
        app.stop()


def test_a_cancelled_waiting_run_leaves_no_loading_line_when_it_won_the_race(tmp_path, monkeypatch, room_sample):
    """The loader thread showed "Loading the … generator…" once it got the page's lock: a Cancel
    (or an input loaded) that got the lock first was overwritten by it, and a load that then ended
    with nothing to run and an input loaded left "Loading…" on the page for good. Now the line is
    shown when the load starts (under the lock) and put back once it has ended."""
    from gen3c.gui import app as gui_app

    loading, loaded = slow_loader(monkeypatch, gui_app)
    app = gui_app.Gen3cApp(tmp_path / "work", port=0, request=GenerationRequest(resolution="48x80", num_video_frames=9),
                           demo=lambda: room_sample, preload=False)  # fmt: skip
    try:
        handler(app, app._on_demo)(SimpleNamespace(client=None))
        with app._lock:  # the press and its Cancel come before the loader thread gets the lock
            handler(app, app._on_generate)(SimpleNamespace(client=None))
            handler(app, app._on_cancel)(SimpleNamespace(client=None))
        assert loading.wait(30)
        loaded.set()
        app._loader.join(30)
        assert "Loading" not in app.status.content and "cancelled before it started" in app.status.content, app.status.content
        assert not app.jobs.running and not app.generate.disabled
    finally:
        loaded.set()
        app.stop()


def test_the_end_of_the_start_up_load_keeps_an_error_shown_meanwhile(tmp_path, monkeypatch, room_sample):
    """The start-up load's end put back the page's first line whenever no input was loaded: an
    error shown meanwhile (an image path mistyped) vanished with it. Now the end puts back only
    its own "Loading…" line."""
    from gen3c.gui import app as gui_app

    loading, loaded = slow_loader(monkeypatch, gui_app)
    app = gui_app.Gen3cApp(tmp_path / "work", port=0, request=GenerationRequest(resolution="48x80", num_video_frames=9), demo=lambda: room_sample)
    try:
        assert loading.wait(30)
        assert "Loading the preview generator" in app.status.content
        app.image_path.value = str(tmp_path / "missing.png")
        handler(app, app._on_load_files)(SimpleNamespace(client=None))
        error = app.status.content
        assert "missing.png" in error and "Error" in error, error
        loaded.set()
        app._loader.join(30)
        assert app.status.content == error
    finally:
        loaded.set()
        app.stop()


def _a_run_waiting_for_the_load(gui_app, tmp_path, room_sample, loading):
    """An app with the demo loaded whose Generate press waits for the generator's (slow) load."""
    app = gui_app.Gen3cApp(tmp_path / "work", port=0, request=GenerationRequest(resolution="48x80", num_video_frames=9),
                           demo=lambda: room_sample, preload=False)  # fmt: skip
    try:
        handler(app, app._on_demo)(SimpleNamespace(client=None))
        handler(app, app._on_generate)(SimpleNamespace(client=None))
        assert loading.wait(30)
    except BaseException:
        app.stop()
        raise
    return app


def test_after_cancelling_a_waiting_run_generate_can_be_pressed_again_and_reuses_the_load(tmp_path, monkeypatch, room_sample):
    """Cancel of a run waiting for the generator left Generate disabled until the load ended (a 7B
    load: minutes), though the settings could be changed meanwhile. Now Generate is enabled again:
    a press waits for the same load (no second one), and the run has the settings of the page."""
    from gen3c.gui import app as gui_app

    loading, loaded = slow_loader(monkeypatch, gui_app)
    calls = []
    slow = gui_app.make_generator
    monkeypatch.setattr(gui_app, "make_generator", lambda request: calls.append(request.generator) or slow(request))
    app = _a_run_waiting_for_the_load(gui_app, tmp_path, room_sample, loading)
    try:
        handler(app, app._on_cancel)(SimpleNamespace(client=None))
        assert not app.generate.disabled and app.cancel.disabled and app._loader.is_alive()
        handler(app, functools.partial(app._on_setting, "num_video_frames", redraw_cache=False))(SimpleNamespace(target=SimpleNamespace(value=5), client=None))
        handler(app, app._on_generate)(SimpleNamespace(client=None))
        assert "Error" not in app.status.content, app.status.content
        assert app.generate.disabled and not app.cancel.disabled and "The run starts once it has loaded" in app.progress_text.content
        loaded.set()
        app._loader.join(30)
        assert app.jobs.wait(60) and calls == ["preview"]
        record = json.loads((app.state.work_dir / "outputs" / "gui_001_run.json").read_text())
        assert record["num_video_frames"] == 5 and not app.generate.disabled and app.cancel.disabled
    finally:
        loaded.set()
        app.stop()


def test_stop_returns_while_the_generator_loads_and_the_loader_then_leaves_the_page_alone(tmp_path, monkeypatch, room_sample):
    """stop() did not wait for the loader, which went on to write to the closed server's page once
    its model had loaded. Now stop returns (after LOADER_STOP_WAIT at most) and the loader, when
    its load ends, shows nothing and keeps nothing."""
    from gen3c.gui import app as gui_app

    loading, loaded = slow_loader(monkeypatch, gui_app)
    monkeypatch.setattr(gui_app, "LOADER_STOP_WAIT", 0.2, raising=False)  # (raising=False: the test runs on the old code too)
    app = gui_app.Gen3cApp(tmp_path / "work", port=0, request=GenerationRequest(resolution="48x80", num_video_frames=9), demo=lambda: room_sample)
    try:
        assert loading.wait(30)
        shown = (app.status.content, app.progress_text.content, app.generate.disabled)
        started = time.monotonic()
        app.stop()
        assert time.monotonic() - started < 5
    finally:
        loaded.set()
    app._loader.join(30)
    assert not app._loader.is_alive() and app._generator is None
    assert (app.status.content, app.progress_text.content, app.generate.disabled) == shown


def test_a_press_while_stop_waits_starts_nothing(tmp_path, room_sample):
    """A Generate press arriving while stop() waited for a run (or the loader) started a new run
    after stop had cancelled the last: nothing waited for it and nothing showed its end. Now the
    page's callbacks do nothing once stop has begun."""
    from gen3c.gui.app import Gen3cApp

    app = Gen3cApp(tmp_path / "work", port=0, request=GenerationRequest(resolution="48x80", num_video_frames=9),
                   demo=lambda: room_sample, generator=PreviewGenerator())  # fmt: skip
    handler(app, app._on_demo)(SimpleNamespace(client=None))
    app.stop()
    handler(app, app._on_generate)(SimpleNamespace(client=None))  # as it comes during stop's waits
    app.jobs.wait(60)
    assert not (app.state.work_dir / "outputs").exists()


def test_a_failed_start_up_load_is_said_once_and_generate_loads_again_outside_the_page_lock(tmp_path, monkeypatch, room_sample, capfd):
    """After a failed start-up load, Generate loaded the model in its callback, under the page's
    lock: every other control froze for the whole load. Now it loads in the background as at
    start-up, then runs."""
    from gen3c.gui import app as gui_app

    calls, lock_free = [], []

    def page_lock_free() -> bool:  # asked from another thread: the lock is re-entrant for its holder
        free = []

        def probe() -> None:
            free.append(app._lock.acquire(timeout=10))  # (the press that started the load may still be ending)
            if free[0]:
                app._lock.release()

        thread = threading.Thread(target=probe)
        thread.start()
        thread.join()
        return free[0]

    def make_generator(request):
        calls.append(request.generator)
        if len(calls) == 1:
            raise Gen3cInputError("the preview's weights are missing: run gen3c download")
        lock_free.append(page_lock_free())
        return PreviewGenerator()

    monkeypatch.setattr(gui_app, "make_generator", make_generator)
    app = gui_app.Gen3cApp(tmp_path / "work", port=0, request=GenerationRequest(resolution="48x80", num_video_frames=9), demo=lambda: room_sample)
    try:
        app._loader.join(30)
        assert "the preview&#x27;s weights are missing" in app.status.content and not app.generate.disabled
        handler(app, app._on_demo)(SimpleNamespace(client=None))
        handler(app, app._on_generate)(SimpleNamespace(client=None))
        app._loader.join(30)
        assert app.jobs.wait(60) and (app.state.work_dir / "outputs" / "gui_001.mp4").is_file()
        assert calls == ["preview", "preview"] and lock_free == [True]
        assert capfd.readouterr().err.count("weights are missing") == 1  # said once, by the start-up load
    finally:
        app.stop()


def test_importing_a_fixed_path_does_not_count_old_keyframes(gui):
    handler(gui, gui._on_demo)(SimpleNamespace(client=None))
    gui.state.add_keyframe(torch.eye(4, dtype=torch.float64))
    gui.state.set_path_mode("keyframes")
    fixed = json.dumps(cameras_to_dict(gui.state.cameras())).encode()  # a gen3c cameras file: no keyframes
    handler(gui, gui._on_import)(upload_event("path.json", fixed))
    assert gui.state.path_mode == "file"
    assert "Imported **path.json**: 9 frames, a fixed path (no keyframes)." in gui.status.content
    handler(gui, gui._on_import)(upload_event("photo.json", b"\x89PNG\r\n\x1a\n" + bytes(40)))
    assert "is a PNG image, not a camera file" in gui.status.content and gui.state.path_mode == "file"


def test_a_fixed_mistake_takes_its_error_off_the_page(gui):
    """An error stays until the next action goes well; a camera-path problem until the path can be
    made again. Then the page shows its last status again, not a red error that no longer holds."""
    handler(gui, gui._on_demo)(SimpleNamespace(client=None))
    loaded = gui.status.content
    frames = handler(gui, functools.partial(gui._on_setting, "num_video_frames", redraw_cache=False))

    def set_frames(n):
        frames(SimpleNamespace(target=SimpleNamespace(value=n), client=None))

    set_frames(0)
    assert "Error" in gui.status.content and "&quot;Frames&quot; 0 is impossible" in gui.status.content
    set_frames(0)  # the same mistake again: still shown
    assert "&quot;Frames&quot; 0 is impossible" in gui.status.content
    set_frames(13)
    assert gui.status.content == loaded and gui.state.request.num_video_frames == 13
    # An empty keyframe path is shown until a keyframe makes the path again.
    gui.state.set_path_mode("keyframes")
    handler(gui, gui._on_path_mode)(SimpleNamespace(target=SimpleNamespace(value="Keyframes"), client=None))
    assert "the keyframe path is empty" in gui.status.content
    seed = handler(gui, functools.partial(gui._on_setting, "seed", redraw_cache=None))
    seed(SimpleNamespace(target=SimpleNamespace(value=3), client=None))
    assert "the keyframe path is empty" in gui.status.content  # still true: still shown
    gui.state.add_keyframe(torch.eye(4, dtype=torch.float64))
    handler(gui, gui._on_smoothness)(SimpleNamespace(target=SimpleNamespace(value=0.3), client=None))
    assert gui.status.content == loaded


def test_errors_on_the_page_name_the_control_not_the_cli_flag(gui, monkeypatch):
    """The library's checks name the CLI flag (``--movement_distance``); the page and its
    notification name the control the user touched ("Distance"), for a setting refused, a camera
    path that cannot be made and a failed run alike."""
    from gen3c import trajectories

    handler(gui, gui._on_demo)(SimpleNamespace(client=None))
    client = SimpleNamespace(add_notification=lambda title, text, **kw: notes.append(text))
    notes = []
    distance = handler(gui, functools.partial(gui._on_setting, "movement_distance", redraw_cache=False))
    distance(SimpleNamespace(target=SimpleNamespace(value=float("nan")), client=client))
    assert "&quot;Distance&quot; nan is impossible: pass a finite number" in gui.status.content and "--" not in gui.status.content
    assert notes == ['"Distance" nan is impossible: pass a finite number']
    assert gui.state.request.movement_distance == gui.distance.value == 0.3  # put back, not NaN
    handler(gui, functools.partial(gui._on_setting, "fps", redraw_cache=False))(SimpleNamespace(target=SimpleNamespace(value=0.5), client=None))
    assert "&quot;FPS&quot; 0.5 is impossible" in gui.status.content
    # A path that cannot be made: the field name in the middle of the sentence, the flag at its end.
    monkeypatch.setattr(trajectories, "GEN3C_CENTER_DEPTH", 1e41)
    handler(gui, functools.partial(gui._on_setting, "trajectory_scale", redraw_cache=False))(
        SimpleNamespace(target=SimpleNamespace(value="gen3c"), client=None)
    )
    assert "Camera path: the left path with &quot;Distance&quot; 0.3" in gui.status.content, gui.status.content
    assert "pass a smaller &quot;Distance&quot;" in gui.status.content and "movement_distance" not in gui.status.content
    # A run's error too (it comes from the worker thread).
    gui._on_job_done(gui_state.JobResult(error="--num_video_frames 10 is not possible: pass --num_video_frames 9"))
    assert "&quot;Frames&quot; 10 is not possible: pass &quot;Frames&quot; 9" in gui.status.content


def test_a_note_on_loading_names_the_control_too(gui, tmp_path):
    """The library's notes on an input are shown on the page: they named the CLI flag too
    ("pass --num_video_frames 6") where the page has the control ("Frames")."""
    from layouts import scene, write_sample

    rgb, depth, _, w2c, K = scene(6, 48, 80)
    gui.video_path.value = str(write_sample(tmp_path / "sample", rgb, depth, depth > 0, w2c, K))
    handler(gui, gui._on_load_video)(SimpleNamespace(client=None))  # 6 frames, 9 asked for
    assert "Note: the video has 6 frames" in gui.status.content, gui.status.content
    assert "pass &quot;Frames&quot; 6 to stay within it" in gui.status.content and "--" not in gui.status.content


def test_a_refused_keyframe_time_is_taken_back_off_the_page(gui):
    """A time another keyframe has is refused; the field kept showing it, though the keyframe
    kept its own time (and a later edit of another field read it as the keyframe's)."""
    handler(gui, gui._on_demo)(SimpleNamespace(client=None))
    gui.state.add_keyframe(torch.eye(4, dtype=torch.float64))
    second = gui.state.add_keyframe(torch.eye(4, dtype=torch.float64))
    gui._sync_controls(select=second.id)
    assert gui.keyframe_time.value == pytest.approx(8 / 24, abs=1e-3)
    gui.keyframe_time.value = 0.0  # runs its callback, as a value from the page does
    assert "another keyframe is already at 0 s" in gui.status.content
    assert gui.state.keyframes[1].time == pytest.approx(8 / 24) and gui.keyframe_time.value == pytest.approx(8 / 24, abs=1e-3)


def test_add_input_camera_starts_the_keyframe_path_at_the_input_s_camera(gui):
    press = handler(gui, gui._on_add_source_keyframe)
    press(SimpleNamespace(client=None))
    assert "no input loaded" in gui.status.content and not gui.state.keyframes
    handler(gui, gui._on_demo)(SimpleNamespace(client=None))
    press(SimpleNamespace(client=None))
    assert gui.state.path_mode == "keyframes" and gui.path_mode.value == "Keyframes"
    assert gui.state.keyframes[0].w2c.equal(gui.state.source.w2c.double()) and gui.keyframe_pick.value.startswith("#0 ")
    assert "not at the input's camera" not in gui.keyframe_list.content
    moved = SimpleNamespace(wxyz=np.array([1.0, 0, 0, 0]), position=np.array([0.5, 0, 0]))  # a drag of keyframe 1, 0.5 to the right
    handler(gui, gui._on_gizmo, 0)(SimpleNamespace(client=None, target=moved, phase="end"))
    assert "Keyframe 1 is not at the input's camera" in gui.keyframe_list.content


def test_a_keyframe_after_the_last_frame_is_marked_as_not_reached(gui):
    handler(gui, gui._on_demo)(SimpleNamespace(client=None))  # 9 frames at 24 fps: the last at 0.33 s
    first = gui.state.add_keyframe(torch.eye(4, dtype=torch.float64))
    late = gui.state.add_keyframe(torch.eye(4, dtype=torch.float64))
    gui.state.set_keyframe_time(late.id, 0.25)
    gui._sync_controls()
    assert "not reached" not in gui.keyframe_list.content
    gui.state.set_keyframe_time(late.id, 5.0)
    gui._sync_controls()
    rows = gui.keyframe_list.content.split("<br>")
    assert f"#{first.id}` at 0.00 s" in rows[0] and "not reached" not in rows[0]
    assert rows[1].endswith("at 5.00 s — after the last frame (0.33 s): not reached</small>")


def test_no_control_is_offered_that_would_change_nothing(gui, tmp_path):
    """The seed is hidden for the preview (it draws no random numbers), the prompt where the prompt
    encoder is disabled, a keyframe time is disabled until there is a keyframe to give it to, a
    one-keyframe path says it holds still, and moving the first keyframe earlier says why it cannot."""
    from gen3c.gui.app import Gen3cApp

    assert not gui.seed.visible and not gui.prompt.visible and gui.keyframe_time.disabled
    handler(gui, gui._on_demo)(SimpleNamespace(client=None))
    first = gui.state.add_keyframe(torch.eye(4, dtype=torch.float64))
    gui._sync_controls(select=first.id)
    assert not gui.keyframe_time.disabled and "One keyframe: the camera holds still" in gui.keyframe_list.content
    handler(gui, gui._on_keyframe_action)(SimpleNamespace(target=SimpleNamespace(value="Earlier"), client=None))
    assert f"keyframe #{first.id} is already the first of the path" in gui.status.content
    gui.state.add_keyframe(torch.eye(4, dtype=torch.float64))
    gui._sync_controls(select=first.id)
    assert "One keyframe" not in gui.keyframe_list.content
    handler(gui, gui._on_keyframe_action)(SimpleNamespace(target=SimpleNamespace(value="Later"), client=None))
    assert gui.state.keyframes[1].id == first.id and "Error" not in gui.status.content
    # With the GEN3C model the seed (and the prompt) are offered.
    request = GenerationRequest(generator="gen3c", resolution="48x80", num_video_frames=9)
    app = Gen3cApp(tmp_path / "gen3c", port=0, request=request, demo=None, generator=PreviewGenerator(), preload=False)
    try:
        assert app.seed.visible and app.prompt.visible
    finally:
        app.stop()
    # ... but not the prompt where --disable_prompt_encoder gives every text zero embeddings.
    request = GenerationRequest(generator="gen3c", resolution="48x80", num_video_frames=9, generator_options={"disable_prompt_encoder": True})
    app = Gen3cApp(tmp_path / "gen3c_no_t5", port=0, request=request, demo=None, generator=PreviewGenerator(), preload=False)
    try:
        assert app.seed.visible and not app.prompt.visible
    finally:
        app.stop()


def test_the_preset_is_offered_only_where_it_shapes_the_path(gui, tmp_path):
    """A multi-view input's path is its own trajectory (w2cs_all): the preset's controls, shown
    for it, changed nothing (and a record of the run named a preset that did not run)."""
    from layouts import scene, write_multiview

    rgb, depth, _, w2c, K = scene(6, 48, 80)
    npz = write_multiview(tmp_path / "mv.npz", rgb[[0, 5]], depth[[0, 5]], depth[[0, 5]] > 0, K[[0, 5]], w2c[[0, 5]], w2c)
    assert gui.preset_folder.visible
    gui.video_path.value = str(npz)
    handler(gui, gui._on_load_video)(SimpleNamespace(client=None))
    assert gui.state.kind == "multiview" and not gui.preset_folder.visible
    handler(gui, gui._on_path_mode)(SimpleNamespace(target=SimpleNamespace(value="Preset"), client=None))
    assert not gui.preset_folder.visible
    handler(gui, gui._on_demo)(SimpleNamespace(client=None))  # an image: the preset is its path again
    assert gui.state.kind == "image" and gui.preset_folder.visible


class SmallModel(PreviewGenerator):
    """A generator with a largest frame size, as the gen3c model has (the tiny one: 384×640)."""

    def check_frame_size(self, height: int, width: int) -> None:
        if height > 48 or width > 80:
            raise Gen3cInputError(f"frame size {height}×{width} is larger than this model takes (48×80 at most): pass a smaller --resolution")


def test_a_resolution_the_model_cannot_take_is_refused_when_picked(tmp_path, monkeypatch, room_sample):
    from gen3c.gui import app as gui_app

    app = gui_app.Gen3cApp(tmp_path / "work", port=0, request=GenerationRequest(resolution="48x80", num_video_frames=9),
                           demo=lambda: room_sample, generator=SmallModel())  # fmt: skip
    try:
        handler(app, app._on_demo)(SimpleNamespace(client=None))
        pick = handler(app, functools.partial(app._on_setting, "resolution", redraw_cache=True))
        pick(SimpleNamespace(target=SimpleNamespace(value="176x320"), client=None))
        assert "frame size 176×320 is larger than this model takes" in app.status.content
        assert app.state.request.resolution == app.resolution.value == "48x80" and app.state.source.size == (48, 80)
    finally:
        app.stop()
    # Started at a size the model cannot take: the page says so once the model has loaded.
    monkeypatch.setattr(gui_app, "make_generator", lambda request: SmallModel())
    app = gui_app.Gen3cApp(tmp_path / "work2", port=0, request=GenerationRequest(resolution="96x160", num_video_frames=9), demo=None)
    try:
        app._loader.join(30)
        assert "frame size 96×160 is larger than this model takes" in app.status.content
        assert "(&quot;Resolution&quot; is under Input → 3D cache)" in app.status.content and not app.generate.disabled
    finally:
        app.stop()


class SmallGen3c(PreviewGenerator):
    """A generator refusing frame sizes as the gen3c model does (its configs' words), up to 48×80."""

    def check_frame_size(self, height: int, width: int) -> None:
        from gen3c.models.configs import check_model_frame_size

        check_model_frame_size({"max_size": [16, 6, 10], "patch_size": [1, 2, 2]}, {"spatial_compression_ratio": 8}, height, width)


def test_a_resolution_refusal_reads_as_one_clean_line_naming_the_dropdown(tmp_path, monkeypatch, room_sample, capfd):
    """The gen3c model's refusal, reworded for the page, got a suffix that said again what it had
    just said: '"Resolution" '96x160' … pass "Resolution" '48x80' (the Resolution under Input → 3D
    cache)'. Now its fix is a pick in the dropdown, and where that is; the log keeps the command line's words."""
    from gen3c.gui import app as gui_app

    monkeypatch.setattr(gui_app, "make_generator", lambda request: SmallGen3c())
    app = gui_app.Gen3cApp(tmp_path / "work", port=0, request=GenerationRequest(resolution="96x160", num_video_frames=9), demo=lambda: room_sample)
    try:
        app._loader.join(30)
        assert app.status.content == (
            "<span style='color:#c92a2a'>**Error:** &quot;Resolution&quot; &#x27;96x160&#x27; is larger than this model takes (48x80 at most): "
            "pick &#x27;48x80&#x27; for &quot;Resolution&quot; (Input → 3D cache)</span>"
        ), app.status.content
        assert "gen3c gui: --resolution '96x160' is larger than this model takes (48x80 at most): pass --resolution '48x80'\n" in capfd.readouterr().err
        handler(app, app._on_demo)(SimpleNamespace(client=None))
        pick = handler(app, functools.partial(app._on_setting, "resolution", redraw_cache=True))
        pick(SimpleNamespace(target=SimpleNamespace(value="176x320"), client=None))
        assert "(48x80 at most): pick &#x27;32x80&#x27; or &#x27;48x80&#x27; for &quot;Resolution&quot; (Input → 3D cache)</span>" in app.status.content, app.status.content
    finally:
        app.stop()


def test_the_sizes_a_resolution_refusal_offers_can_be_picked(tmp_path, monkeypatch, room_sample):
    """The model's refusal of a size offers the nearest it takes ('32x80' or '48x80'), but the
    Resolution dropdown held GEN3C's sizes only (and the start's): what the page told the user to
    pick was not there to pick. Now, once the generator has loaded, the dropdown holds the sizes it
    takes, each it refuses replaced by the sizes its refusal offers; the size set stays listed."""
    import re

    from gen3c.gui import app as gui_app

    def offered(status: str) -> list[str]:
        return re.findall(r"&#x27;(\d+x\d+)&#x27;", status.partition(" pick ")[2])

    monkeypatch.setattr(gui_app, "make_generator", lambda request: SmallGen3c())
    app = gui_app.Gen3cApp(tmp_path / "work", port=0, request=GenerationRequest(resolution="96x160", num_video_frames=9), demo=lambda: room_sample)
    try:
        app._loader.join(30)
        assert offered(app.status.content) == ["48x80"]
        assert app.resolution.options == ("96x160", "48x80", "32x80") and app.resolution.value == "96x160"
        handler(app, app._on_demo)(SimpleNamespace(client=None))
        pick = handler(app, functools.partial(app._on_setting, "resolution", redraw_cache=True))
        pick(SimpleNamespace(target=SimpleNamespace(value="704x1280"), client=None))  # an old page's option
        assert offered(app.status.content) == ["32x80", "48x80"]
        for size in ("32x80", "48x80"):
            pick(SimpleNamespace(target=SimpleNamespace(value=size), client=None))
            assert "Error" not in app.status.content and app.state.source.size == tuple(map(int, size.split("x")))
        assert app.resolution.options == ("48x80", "32x80")  # the refused start size is gone once another is set
        handler(app, app._on_generate)(SimpleNamespace(client=None))
        assert app.jobs.wait(60) and (app.state.work_dir / "outputs" / "gui_001.mp4").is_file()
    finally:
        app.stop()


def test_a_generator_given_to_the_app_sets_the_resolutions_offered(tmp_path, room_sample):
    """A generator given to the app (a model loaded already) sets the dropdown's sizes from the
    start; a start size it refuses is refused at Generate in the page's words, as once loaded."""
    from gen3c.gui.app import Gen3cApp

    app = Gen3cApp(tmp_path / "work", port=0, request=GenerationRequest(resolution="96x160", num_video_frames=9), demo=lambda: room_sample, generator=SmallGen3c())
    try:
        assert app.resolution.options == ("96x160", "48x80", "32x80")
        handler(app, app._on_demo)(SimpleNamespace(client=None))
        handler(app, app._on_generate)(SimpleNamespace(client=None))
        assert not app.jobs.running and not app.generate.disabled
        assert "pick &#x27;48x80&#x27; for &quot;Resolution&quot; (Input → 3D cache)" in app.status.content, app.status.content
    finally:
        app.stop()


def test_a_start_size_refused_before_the_model_loads_is_a_pick_of_the_sizes_offered(tmp_path, monkeypatch, room_sample):
    """The gen3c model refuses a start size it cannot take before it loads its weights (in
    make_generator: `gen3c gui --model tiny --resolution 704x1280`): the page showed the command
    line's 'pass "Resolution" …', and a size offered that was not in the dropdown could not be picked."""
    from gen3c.gui import app as gui_app

    def make_generator(request):
        SmallGen3c().check_frame_size(*map(int, request.resolution.split("x")))
        return SmallGen3c()

    monkeypatch.setattr(gui_app, "make_generator", make_generator)
    app = gui_app.Gen3cApp(tmp_path / "work", port=0, request=GenerationRequest(resolution="96x160", num_video_frames=9), demo=lambda: room_sample)
    try:
        app._loader.join(30)
        assert "pick &#x27;48x80&#x27; for &quot;Resolution&quot; (Input → 3D cache)" in app.status.content, app.status.content
        assert app.resolution.options == ("96x160", "48x80", "704x1280", "528x960", "352x640", "176x320")
        handler(app, app._on_demo)(SimpleNamespace(client=None))
        handler(app, functools.partial(app._on_setting, "resolution", redraw_cache=True))(SimpleNamespace(target=SimpleNamespace(value="48x80"), client=None))
        handler(app, app._on_generate)(SimpleNamespace(client=None))  # loads at the size picked, then runs
        app._loader.join(30)
        assert app.jobs.wait(60) and (app.state.work_dir / "outputs" / "gui_001.mp4").is_file(), app.status.content
        assert app.resolution.options == ("48x80", "32x80")  # loaded: the sizes it takes
    finally:
        app.stop()


def test_a_resolution_picked_while_the_generator_loads_is_the_one_checked_once_it_has(tmp_path, monkeypatch, room_sample):
    """A resolution picked while the generator loaded is not checked then (no model to ask);
    once loaded, the start's resolution was checked instead: the page refused a size no longer
    set, and said nothing of the one picked."""
    from gen3c.gui import app as gui_app

    loading, loaded = slow_loader(monkeypatch, gui_app, make=SmallGen3c)
    app = gui_app.Gen3cApp(tmp_path / "work", port=0, request=GenerationRequest(resolution="96x160", num_video_frames=9), demo=lambda: room_sample)
    try:
        assert loading.wait(30)
        pick = handler(app, functools.partial(app._on_setting, "resolution", redraw_cache=True))
        pick(SimpleNamespace(target=SimpleNamespace(value="48x80"), client=None))
        loaded.set()
        app._loader.join(30)
        assert "Error" not in app.status.content and app.state.request.resolution == "48x80", app.status.content
        pick(SimpleNamespace(target=SimpleNamespace(value="176x320"), client=None))  # loaded: checked when picked
        assert "&#x27;176x320&#x27; is larger than this model takes" in app.status.content, app.status.content
    finally:
        loaded.set()
        app.stop()


def test_an_input_setting_changed_after_loading_says_which_button_applies_it(gui, box_scene):
    """FOV, intrinsics, depth estimator, paths and start frame are read when their Load button is
    pressed (viser sends text fields key by key): a change shows a notice beside the button
    naming it, until the button applies it or the value is put back."""
    image, depth, _, _ = box_scene
    gui.image_path.value, gui.depth_path.value = str(image), str(depth)  # before any load: pending too
    assert gui.image_pending.visible and "Image path, Depth path" in gui.image_pending.content
    handler(gui, gui._on_load_files)(SimpleNamespace(client=None))
    fx = float(gui.state.source.K[0, 0])
    assert not gui.image_pending.visible and not gui.video_pending.visible
    gui.fov.value = 90.0
    assert gui.image_pending.visible and "Horizontal FOV" in gui.image_pending.content and "**Load image**" in gui.image_pending.content
    assert float(gui.state.source.K[0, 0]) == fx  # not applied yet
    gui.fov.value = 60.0  # put back: nothing to apply
    assert not gui.image_pending.visible
    gui.fov.value = 90.0
    handler(gui, gui._on_load_files)(SimpleNamespace(client=None))
    assert not gui.image_pending.visible and float(gui.state.source.K[0, 0]) == pytest.approx(gui.state.source.size[1] / 2)  # 90°: fx = W / 2
    gui.intrinsics.value = "150,170,80,48"
    assert "Intrinsics" in gui.image_pending.content and "FOV" not in gui.image_pending.content  # it overrides the FOV
    gui.depth_estimator.value = "prior"  # a depth file is given: the estimator would change nothing
    assert "Depth estimator" not in gui.image_pending.content
    gui.start_frame.value = 3
    assert gui.video_pending.visible and "Start frame" in gui.video_pending.content and "**Load video input**" in gui.video_pending.content


def test_the_fov_can_be_left_to_the_depth_estimator_as_gen3c_generate_leaves_it(gui, box_scene, monkeypatch):
    """The page always passed its FOV field (60°): an image loaded alone never got the depth
    estimator's own camera (MoGe's, GEN3C's), which `gen3c generate` without --fov uses, and a
    `gen3c depth` file's recorded camera was overridden alike. "Set FOV" off passes none."""
    import gen3c.depth
    from gen3c.cameras import intrinsics_from_fov
    from gen3c.depth.prior import GeometricPriorEstimator
    from gen3c.pipelines.request import read_input

    class FindsItsCamera(GeometricPriorEstimator):  # as MoGe: a 100° camera when given none
        def estimate(self, image, size=None, intrinsics=None, fov=None):
            return super().estimate(image, size, intrinsics_from_fov(100, *image.shape[-2:]) if intrinsics is None else intrinsics)

    monkeypatch.setattr(gen3c.depth, "cached_depth_estimator", lambda name: FindsItsCamera())
    image = str(box_scene[0])
    cli = read_input(GenerationRequest(input_image_path=image, resolution="48x80", num_video_frames=9), "image")
    gui.image_path.value = image
    gui.set_fov.value = False
    assert gui.fov.disabled and "Horizontal FOV" not in gui.image_pending.content
    handler(gui, gui._on_load_files)(SimpleNamespace(client=None))
    assert torch.allclose(gui.state.source.K, cli.K) and gui.state.build_request("estimated").fov is None, gui.status.content
    gui.set_fov.value = True  # the page's 60° again
    assert not gui.fov.disabled and "Set FOV" in gui.image_pending.content
    handler(gui, gui._on_load_files)(SimpleNamespace(client=None))
    assert float(gui.state.source.K[0, 0]) > 1.5 * float(cli.K[0, 0]) and gui.state.build_request("set").fov == 60.0


def test_the_page_says_when_another_input_cleared_the_keyframes(gui, box_scene):
    """Loading another input clears the keyframes made for the last one: the list, the path
    dropdown and the status say so (the page kept listing them, in the old input's coordinates)."""
    image, depth, _, _ = box_scene
    handler(gui, gui._on_demo)(SimpleNamespace(client=None))
    gui.state.add_keyframe(torch.eye(4, dtype=torch.float64))
    handler(gui, gui._on_path_mode)(SimpleNamespace(target=SimpleNamespace(value="Keyframes"), client=None))
    gui._sync_controls()
    assert "`#0` at 0.00 s" in gui.keyframe_list.content
    gui.image_path.value, gui.depth_path.value = str(image), str(depth)
    handler(gui, gui._on_load_files)(SimpleNamespace(client=None))
    assert gui.keyframe_list.content == "<small>No keyframes.</small>" and gui.path_mode.value == "Preset" and gui.preset_folder.visible
    assert "Camera path: cleared the 1 keyframe made for demo sample" in gui.status.content and "Error" not in gui.status.content


def test_the_demo_buttons_run_records_the_shipped_files_and_runs_again(tmp_path):
    """The demo button loaded the sample in memory, so the run's NAME_run.json said
    "input_image_path": null; now it names the sample's files, and `gen3c batch` on the record
    makes the same video."""
    from typer.testing import CliRunner

    from gen3c.cli import app as cli
    from gen3c.gui.app import Gen3cApp
    from gen3c.io.video import read_video
    from gen3c.scenes import demo_sample_files, load_demo_sample

    request = GenerationRequest(resolution="48x80", num_video_frames=5)
    app = Gen3cApp(tmp_path / "work", port=0, request=request, generator=PreviewGenerator(), preload=False)  # the packaged demo
    try:
        handler(app, app._on_demo)(SimpleNamespace(client=None))
        assert app.state.source_label == "demo sample" and "Loaded" in app.status.content
        memory = GuiState(tmp_path / "memory", request)
        memory.load_sample(*load_demo_sample())  # what the button loaded before: the same view
        assert all(torch.equal(getattr(app.state.source, key), getattr(memory.source, key)) for key in ("image", "depth", "K"))
        handler(app, app._on_generate)(SimpleNamespace(client=None))
        assert app.jobs.wait(60)
    finally:
        app.stop()
    outputs = app.state.work_dir / "outputs"
    record = json.loads((outputs / "gui_001_run.json").read_text())
    assert {key: record[key] for key in demo_sample_files()} == demo_sample_files()
    res = CliRunner().invoke(cli, ["batch", str(outputs / "gui_001_run.json"), "--output_folder", str(tmp_path / "again")])
    assert res.exit_code == 0, res.output
    frames = read_video(outputs / "gui_001.mp4")[0]
    assert frames.shape == (5, 48, 80, 3) and (read_video(tmp_path / "again" / "gui_001.mp4")[0] == frames).all()


def test_a_connect_callback_that_runs_after_its_client_left_draws_nothing(gui):
    """viser runs connect and disconnect callbacks on its thread pool: a tab opened and closed
    while a long callback held the app's lock leaves both waiting, and either may go first. When
    the disconnect went first, the late connect drew the keyframes into the dead client's scene and
    kept them (and its gizmo state) for good; each later drag was sent to it too."""
    socket, client = connect_browser(gui)
    deadline = time.monotonic() + 20
    handler(gui, gui._on_demo)(SimpleNamespace(client=client))
    handler(gui, gui._on_add_keyframe)(SimpleNamespace(client=client))
    while client.client_id not in gui._keyframe_nodes or not gui._keyframe_nodes[client.client_id]:
        assert time.monotonic() < deadline, "the keyframe was not drawn for the client"
        time.sleep(0.05)
    socket.close()
    while client.client_id in gui._keyframe_nodes or gui.server.get_clients():
        assert time.monotonic() < deadline + 20, "the client's keyframes were kept after it left"
        time.sleep(0.05)
    gui._on_connect(client)  # its connect callback, late
    assert client.client_id not in gui._keyframe_nodes and client.client_id not in gui._gizmos_hidden
    assert serves(gui)


@pytest.mark.parametrize("path", ["keyframes", "imported"])
def test_a_frame_count_the_model_cannot_make_names_the_frames_control(tmp_path, room_sample, path):
    """With a keyframe or imported path the run reads the page's own paths/gui_NNN_path.json, and
    its refusal named that file ("pass a camera file of 8·N+1 cameras"), which the user never
    chose: the page says to set Frames, before anything is written."""
    from gen3c.gui.app import Gen3cApp

    request = GenerationRequest(generator="gen3c", chunk_frames=9, resolution="48x80", num_video_frames=12)
    app = Gen3cApp(tmp_path / "work", port=0, request=request, demo=lambda: room_sample, generator=PreviewGenerator(), preload=False)
    try:
        handler(app, app._on_demo)(SimpleNamespace(client=None))
        if path == "keyframes":
            app.state.add_keyframe(torch.eye(4, dtype=torch.float64))
            app.state.set_path_mode("keyframes")
        else:
            fixed = json.dumps(cameras_to_dict(app.state.cameras())).encode()  # 12 cameras
            handler(app, app._on_import)(upload_event("path.json", fixed))
        handler(app, app._on_generate)(SimpleNamespace(client=None))
        assert app.jobs.wait(60)
        assert "&quot;Frames&quot; 12 is not possible with the gen3c generator" in app.status.content, app.status.content
        assert "pass 8·N+1 frames (9, 17, 25, …)" in app.status.content and "camera file" not in app.status.content
        assert not (app.state.work_dir / "paths").exists() and not app.generate.disabled
    finally:
        app.stop()


def test_an_emptied_number_field_is_one_line_naming_its_control(gui):
    """viser's page sends nothing for an emptied number field and casts what comes to the control's
    type; a None or NaN that reaches a callback anyway (another client) was int()-ed there: an
    "internal error: TypeError" on the page, where the control should be named and put back."""
    handler(gui, gui._on_demo)(SimpleNamespace(client=None))
    for key, value, words in (("num_video_frames", None, "&quot;Frames&quot; is empty: enter a number"),
                              ("num_video_frames", float("nan"), "&quot;Frames&quot; nan is not a whole number"),
                              ("fps", None, "&quot;FPS&quot; is empty: enter a number")):  # fmt: skip
        handler(gui, functools.partial(gui._on_setting, key, redraw_cache=False))(SimpleNamespace(target=SimpleNamespace(value=value), client=None))
        assert words in gui.status.content and "internal error" not in gui.status.content, gui.status.content
    assert (gui.state.request.num_video_frames, gui.num_frames.value, gui.state.request.fps) == (9, 9, 24.0)
    gui.start_frame._impl.value = None  # as a value from the page is stored (its setter would cast it)
    handler(gui, gui._on_load_video)(SimpleNamespace(client=None))
    assert "&quot;Start frame&quot; is empty: enter a number" in gui.status.content, gui.status.content


def test_an_emptied_keyframe_time_is_one_line_naming_its_field(gui):
    """The keyframe's "Time (s)" is a number field too: a None that reached its callback was
    float()-ed there, an "internal error: TypeError" on the page."""
    handler(gui, gui._on_demo)(SimpleNamespace(client=None))
    gui.state.add_keyframe(torch.eye(4, dtype=torch.float64))
    second = gui.state.add_keyframe(torch.eye(4, dtype=torch.float64))
    gui._sync_controls(select=second.id)
    handler(gui, gui._on_keyframe_time)(SimpleNamespace(target=SimpleNamespace(value=None), client=None))
    assert "&quot;Time (s)&quot; is empty: enter a number" in gui.status.content and "internal error" not in gui.status.content, gui.status.content
    assert gui.state.keyframes[1].time == pytest.approx(8 / 24) and gui.keyframe_time.value == pytest.approx(8 / 24, abs=1e-3)


def test_an_emptied_or_refused_smoothness_is_one_line_naming_the_slider(gui):
    """The "Smoothness" slider's value was float()-ed in its callback: None from the page was an
    "internal error: TypeError", and a refused value (NaN) stayed on the slider."""
    handler(gui, gui._on_demo)(SimpleNamespace(client=None))
    gui.smoothness.value = 0.25
    for value, words in ((None, "&quot;Smoothness&quot; is empty: enter a number"), (float("nan"), "smoothness nan must be between 0 and 1")):
        if value is not None:  # (viser's float() of None would refuse it before the callback)
            gui.smoothness._impl.value = value  # as a value from the page is stored
        handler(gui, gui._on_smoothness)(SimpleNamespace(target=SimpleNamespace(value=value), client=None))
        assert words in gui.status.content and "internal error" not in gui.status.content, gui.status.content
        assert gui.state.smoothness == 0.25 and gui.smoothness.value == 0.25


def test_a_keyframe_choice_no_list_offers_is_one_line_naming_the_dropdown(gui):
    """The "Keyframe" dropdown's choice was parsed with int(): a value no list offers (another
    client's text) was "internal error: ValueError" on picking it and on Delete/Earlier/Later."""
    handler(gui, gui._on_demo)(SimpleNamespace(client=None))
    gui.state.add_keyframe(torch.eye(4, dtype=torch.float64))
    gui._sync_controls()
    gui.keyframe_pick._impl.value = "#x at 0 s"  # as a value from the page is stored
    handler(gui, lambda _: gui._sync_keyframe_fields())(SimpleNamespace(client=None))
    assert "&quot;Keyframe&quot; &#x27;#x at 0 s&#x27; is no keyframe of the list: pick one" in gui.status.content, gui.status.content
    handler(gui, gui._on_keyframe_action)(SimpleNamespace(target=SimpleNamespace(value="Delete"), client=None))
    assert "is no keyframe of the list" in gui.status.content and "internal error" not in gui.status.content, gui.status.content
    assert len(gui.state.keyframes) == 1


def test_typing_a_prompt_reads_no_lora_record(tmp_path, monkeypatch):
    """Each key typed in the prompt ran every request check, which reads a LoRA's record
    (gen3c_lora.json) from disk when one is set; a prompt changes nothing those checks look at."""
    from gen3c.gui.app import Gen3cApp
    from gen3c.training import lora

    (tmp_path / "lora").mkdir()
    request = GenerationRequest(generator="gen3c", resolution="48x80", num_video_frames=9, generator_options={"lora": str(tmp_path / "lora")})
    app = Gen3cApp(tmp_path / "work", port=0, request=request, demo=None, generator=PreviewGenerator(), preload=False)
    try:
        reads = []
        monkeypatch.setattr(lora, "lora_base_checkpoint", lambda path: reads.append(path))
        for text in ("a", "a c", "a cat"):
            app.prompt.value = text  # runs its callback, as a key typed in the page does
        assert reads == [] and app.state.request.generator_options == {"lora": str(tmp_path / "lora"), "prompt": "a cat"}
        app.seed.value = 5  # another setting is checked in full, the LoRA's record with it
        assert reads == [str(tmp_path / "lora")] and app.state.request.generator_options["prompt"] == "a cat"
    finally:
        app.stop()


def test_a_finished_video_is_shown_by_its_size_and_a_missing_one_is_one_line(gui, monkeypatch):
    """Showing a run's video read the whole file to compare its size with the embed limit, and a
    file that could not be read ended the worker thread in a traceback, the page saying nothing."""
    from gen3c.gui import app as gui_app

    outputs = gui.state.work_dir / "outputs"
    outputs.mkdir(parents=True)
    big = outputs / "gui_001.mp4"
    big.write_bytes(bytes(100))
    monkeypatch.setattr(gui_app, "MAX_EMBED_BYTES", 99)
    real_read = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail(f"read {self.name}") if self == big else real_read(self))
    gui._on_job_done(gui_state.JobResult(output=SimpleNamespace(paths={"video": big}, seconds=1.0)))
    assert "gui_001.mp4 is 0 MiB, too large to play here: download it." in gui.video.content
    gone = outputs / "gui_002.mp4"
    gui._on_job_done(gui_state.JobResult(output=SimpleNamespace(paths={"video": gone}, seconds=1.0)))
    assert "gui_002.mp4 was written but cannot be read to play here (No such file or directory)" in gui.status.content
    handler(gui, gui._on_download_video)(SimpleNamespace(client=SimpleNamespace(send_file_download=pytest.fail, add_notification=lambda *a, **k: None)))
    assert "gui_002.mp4 cannot be read (No such file or directory)" in gui.status.content and "internal" not in gui.status.content


def test_a_video_that_cannot_be_read_is_told_by_its_whole_path_to_copy(gui):
    """A finished video the page could not read was told "find it at /…/gui_002.mp4" (and "It was
    written to …" on Download) with its path raw; the path is the user's way to the file, so it is
    quoted whole, however deep its folder."""
    from gen3c.errors import path_to_copy

    gone = gui.state.work_dir / ("d" * 220) / "gui_002.mp4"
    gui._on_job_done(gui_state.JobResult(output=SimpleNamespace(paths={"video": gone}, seconds=1.0)))
    shown = html.escape(repr(str(gone)))  # (the page escapes the line)
    assert path_to_copy(gone) == repr(str(gone)) and f"find it at {shown}" in gui.status.content, gui.status.content
    handler(gui, gui._on_download_video)(SimpleNamespace(client=SimpleNamespace(send_file_download=pytest.fail, add_notification=lambda *a, **k: None)))
    assert f"It was written to {shown}" in gui.status.content, gui.status.content


def test_a_png_depth_scale_shows_for_a_png_depth_and_scales_what_is_loaded(gui, box_scene, tmp_path):
    """`gen3c generate --png_depth_scale` on the page: shown while the depth path names a 16-bit PNG
    (it scales no other file), read by Load image, in the 3D cache and the run's request, and
    refused by the name of its control."""
    image, _, _, depth = box_scene
    png = tmp_path / "depth_mm.png"
    Image.fromarray((depth.numpy() * 1000).astype(np.uint16)).save(png)  # millimetres: the box at 2000, the wall at 4000
    gui.image_path.value, gui.depth_path.value = str(image), str(box_scene[1])
    assert not gui.png_depth_scale.visible
    gui.depth_path.value = str(png)
    assert gui.png_depth_scale.visible and gui.png_depth_scale.value == 0.001
    assert gui.png_depth_scale.precision == 7  # typed decimals the page keeps: KITTI's 1/256 = 0.00390625 to 1e-7, not 0.0039
    handler(gui, gui._on_load_files)(SimpleNamespace(client=None))
    metres = gui.state.display_points(10**6)[0][:, 2]
    assert gui.state.scene_scale() == pytest.approx(4.0) and gui.state.build_request("a").png_depth_scale == 0.001
    gui.png_depth_scale.value = 0.0005  # half-millimetres: the scene twice as near
    assert "PNG depth scale" in gui.image_pending.content and "**Load image**" in gui.image_pending.content
    handler(gui, gui._on_load_files)(SimpleNamespace(client=None))
    assert not gui.image_pending.visible and gui.state.scene_scale() == pytest.approx(2.0)
    assert np.allclose(np.sort(gui.state.display_points(10**6)[0][:, 2]), np.sort(metres) / 2, rtol=1e-4)
    assert gui.state.build_request("b").png_depth_scale == 0.0005  # the run's record: gen3c batch reads the file alike
    gui.png_depth_scale.value = 0.0
    handler(gui, gui._on_load_files)(SimpleNamespace(client=None))
    assert "&quot;PNG depth scale&quot; 0.0 is impossible: pass a number &gt; 0" in gui.status.content, gui.status.content
    # Another depth file: the scale is hidden, not pending, and not passed (the CLI would refuse it).
    gui.depth_path.value = str(box_scene[1])
    assert not gui.png_depth_scale.visible and "PNG depth scale" not in gui.image_pending.content
    handler(gui, gui._on_load_files)(SimpleNamespace(client=None))
    assert gui.state.request.png_depth_scale == 0.001 and gui.state.build_request("c").png_depth_scale == 0.001
    gui.depth_path.value = str(tmp_path / "depth_mm.TIFF")  # a 16-bit TIFF takes the scale as a PNG does (it was hidden)
    assert gui.png_depth_scale.visible


def test_depth_is_disparity_on_the_page_reads_the_file_as_disparity_and_is_refused_by_its_name(gui, box_scene, tmp_path):
    """`gen3c generate --depth_is_disparity` on the page: the "Depth is disparity" box is read by Load
    image (pending until then), the cache holds 1 / disparity at median 1 and the run's request
    carries it; ticked without a depth file it is refused naming the box, not the flag."""
    image, _, _, depth = box_scene
    np.save(tmp_path / "disparity.npy", 1 / depth.numpy())
    gui.image_path.value, gui.depth_path.value, gui.depth_is_disparity.value = str(image), str(tmp_path / "disparity.npy"), True
    assert "Depth is disparity" in gui.image_pending.content
    handler(gui, gui._on_load_files)(SimpleNamespace(client=None))
    assert not gui.image_pending.visible and gui.state.scene_scale() == pytest.approx(1.0)
    assert gui.state.build_request("a").depth_is_disparity
    gui.depth_path.value = ""
    handler(gui, gui._on_load_files)(SimpleNamespace(client=None))
    assert "&quot;Depth is disparity&quot; applies to the depth given for a single image" in gui.status.content, gui.status.content


def test_a_png_of_disparity_hides_the_png_depth_scale_and_its_run_record_runs_again(gui, box_scene, tmp_path):
    """A 16-bit PNG of disparity (MiDaS's) is brought to median 1, so "PNG depth scale" would scale
    nothing: hidden while "Depth is disparity" is ticked, not pending, not passed, and the run's
    record keeps the default, which gen3c batch takes (it refuses --png_depth_scale with
    --depth_is_disparity). Before, the scale was shown and recorded, and the record refused."""
    image, _, _, depth = box_scene
    Image.fromarray((40000 / depth.numpy()).astype(np.uint16)).save(tmp_path / "midas.png")
    gui.image_path.value, gui.depth_path.value, gui.depth_is_disparity.value = str(image), str(tmp_path / "midas.png"), True
    assert not gui.png_depth_scale.visible
    gui.png_depth_scale.value = 0.5
    assert "PNG depth scale" not in gui.image_pending.content
    handler(gui, gui._on_load_files)(SimpleNamespace(client=None))
    assert not gui.image_pending.visible and gui.state.scene_scale() == pytest.approx(1.0)
    request = gui.state.build_request("a")
    assert request.depth_is_disparity and request.png_depth_scale == GenerationRequest.png_depth_scale
    check_unused_settings(request)  # what gen3c batch checks a record's settings with
    gui.depth_is_disparity.value = False  # a PNG of z-depth again: the scale shows
    assert gui.png_depth_scale.visible and "Depth is disparity" in gui.image_pending.content


def test_mask_invalid_depth_is_offered_where_depth_comes_with_the_input_and_redraws_the_cache(gui, box_scene, tmp_path):
    """`gen3c generate --mask_invalid_depth` on the page: enabled only once depth given with the
    input is loaded (an estimate has no invalid pixels), it reads the input again, the point cloud
    loses the invalid pixels, the note (naming the box, not the flag) says so, and the run's
    request carries it."""
    from layouts import scene, write_sample

    image, _, _, depth = box_scene
    sky = depth.numpy().copy()
    sky[:20] = np.inf  # 20 of 96 rows: sky, as MoGe and ViPE leave it
    np.save(tmp_path / "sky.npy", sky)
    assert gui.mask_invalid.disabled
    gui.image_path.value, gui.depth_path.value = str(image), str(tmp_path / "sky.npy")
    handler(gui, gui._on_load_files)(SimpleNamespace(client=None))
    assert not gui.mask_invalid.disabled and "sit far away" in gui.status.content and "&quot;Mask invalid depth&quot;" in gui.status.content
    all_points = len(gui.state.display_points(10**6)[0])
    gui.mask_invalid.value = True  # runs its callback, as a value from the page does
    assert gui.state.request.mask_invalid_depth and "left out of the cache" in gui.status.content, gui.status.content
    masked = gui.state.display_points(10**6)[0]
    assert len(masked) < all_points and np.isfinite(masked).all() and masked[:, 2].max() < 5
    valid = gui.state.run_source.valid  # what the run gets: the sky (its top 10 of 48 rows) left out
    assert not valid[:10].any() and valid[11:].all() and gui.state.build_request("m").mask_invalid_depth
    # An image alone: its depth is estimated, the box is disabled and the run's record leaves it out.
    gui.depth_estimator.value, gui.depth_path.value = "prior", ""
    handler(gui, gui._on_load_files)(SimpleNamespace(client=None))
    assert gui.mask_invalid.disabled and gui.mask_invalid.value and not gui.state.build_request("e").mask_invalid_depth
    # A video input carries its depth: enabled, and read again with it.
    rgb, vdepth, _, w2c, K = scene(6, 48, 80)
    vdepth[:, :12] = float("inf")
    gui.mask_invalid.value = False
    gui.video_path.value = str(write_sample(tmp_path / "sample", rgb, vdepth, vdepth > 0, w2c, K))
    handler(gui, gui._on_load_video)(SimpleNamespace(client=None))
    assert not gui.mask_invalid.disabled and "sit far away" in gui.status.content, gui.status.content
    all_points = len(gui.state.display_points(10**6)[0])
    gui.mask_invalid.value = True
    assert "left out of the cache" in gui.status.content and len(gui.state.display_points(10**6)[0]) < all_points
    assert gui.state.build_request("v").mask_invalid_depth


class LoadedWithNoise(PreviewGenerator):
    """The preview standing in for the gen3c generator loaded with ``gen3c gui --noise_aug_strength 0.1``."""

    noise_aug_strength = 0.1


def test_buffer_noise_is_set_on_the_page_and_a_video_input_is_no_dead_end(tmp_path, room_sample):
    """`gen3c gui --noise_aug_strength 0.1` then a video input: the library refuses the strength for
    it, and the page had no control for it, so only a restart got the video loaded. The refusal
    names the page's control; set to 0 there, the video loads, the control is disabled while a
    video is loaded, and the run uses the page's strength, not the one the generator loaded with."""
    from layouts import scene, write_sample

    from gen3c.gui.app import Gen3cApp

    rgb, depth, _, w2c, K = scene(6, 48, 80)
    video = write_sample(tmp_path / "sample", rgb, depth, depth > 0, w2c, K)
    request = GenerationRequest(generator="gen3c", resolution="48x80", num_video_frames=5, chunk_frames=3, generator_options={"noise_aug_strength": 0.1})
    app = Gen3cApp(tmp_path / "work", port=0, request=request, demo=lambda: room_sample, generator=LoadedWithNoise(), preload=False)
    try:
        assert app.noise_aug.visible and app.noise_aug.value == pytest.approx(0.1) and not app.noise_aug.disabled
        handler(app, app._on_demo)(SimpleNamespace(client=None))
        for bad, words in ((-1.0, "&quot;Buffer noise&quot; -1.0 is impossible: pass a finite number ≥ 0"),
                           (None, "&quot;Buffer noise&quot; is empty: enter a number")):  # fmt: skip
            handler(app, app._on_noise_aug)(SimpleNamespace(target=SimpleNamespace(value=bad), client=None))
            assert words in app.status.content, app.status.content
            assert app.state.noise_aug_strength == pytest.approx(0.1) and app.noise_aug.value == pytest.approx(0.1)
        app.video_path.value = str(video)
        handler(app, app._on_load_video)(SimpleNamespace(client=None))
        assert "&quot;Buffer noise&quot; 0.1 applies to a single image" in app.status.content, app.status.content
        assert app.state.kind == "image" and not app.noise_aug.disabled  # the image stays, the control with it
        app.noise_aug.value = 0.0  # runs its callback, as a value from the page does
        handler(app, app._on_load_video)(SimpleNamespace(client=None))
        assert app.state.kind == "sample" and app.noise_aug.disabled and "Loaded" in app.status.content, app.status.content
        with pytest.raises(Gen3cInputError, match=r"--noise_aug_strength 0.2 applies to a single image"):
            app.state.set_noise_aug_strength(0.2)
        handler(app, app._on_generate)(SimpleNamespace(client=None))
        assert app.jobs.wait(60) and "Generated" in app.status.content, app.status.content
        assert app._generator.noise_aug_strength == 0.0
        record = json.loads(next((tmp_path / "work" / "outputs").glob("*_run.json")).read_text())
        assert record["generator_options"]["noise_aug_strength"] == 0.0
    finally:
        app.stop()


def test_a_run_s_notes_are_shown_on_the_page(tmp_path, room_sample):
    """What a run notes (the CLI prints it as "note:") went to the server's log as a warning only:
    the page never said that a one-chunk run's buffer noise changes nothing, nor that its chunk
    size was more than its frames."""
    from gen3c.gui.app import Gen3cApp

    request = GenerationRequest(generator="gen3c", resolution="48x80", num_video_frames=9, chunk_frames=9, generator_options={"noise_aug_strength": 0.1})
    app = Gen3cApp(tmp_path / "work", port=0, request=request, demo=lambda: room_sample, generator=LoadedWithNoise(), preload=False)
    try:
        handler(app, app._on_demo)(SimpleNamespace(client=None))
        handler(app, app._on_generate)(SimpleNamespace(client=None))
        assert app.jobs.wait(60) and "Generated" in app.status.content, app.status.content
        notes = app.status.content.split("Note: ")[1:]
        assert len(notes) == 2 and "&quot;Buffer noise&quot; 0.1: a video of one chunk (9 frames) has one buffer" in notes[0], notes
        assert "--chunk_frames 9: the run has only 9 frames; making them in one chunk" in notes[1], notes
    finally:
        app.stop()


def test_a_keyframe_path_away_from_the_input_is_noted_with_the_page_s_fix(tmp_path, room_sample):
    """The run's note named paths/gui_001_path.json and said to give its poses in the input
    camera's world; the page now names keyframe 1 and "Add input camera"."""
    from gen3c.gui.app import Gen3cApp

    app = Gen3cApp(tmp_path / "work", port=0, request=GenerationRequest(resolution="48x80", num_video_frames=9), demo=lambda: room_sample,
                   generator=PreviewGenerator(), preload=False)  # fmt: skip
    try:
        handler(app, app._on_demo)(SimpleNamespace(client=None))
        w2c = app.state.source.w2c.double().clone()
        for shift in (0.3, 0.6):
            w2c[0, 3] += shift
            app.state.add_keyframe(w2c.clone())
        app.state.set_path_mode("keyframes")
        handler(app, app._on_generate)(SimpleNamespace(client=None))
        assert app.jobs.wait(60) and "Generated" in app.status.content, app.status.content
        (note,) = [n for n in app.status.content.split("Note: ")[1:] if "jumps onto" in n]
        assert note.startswith("Keyframe 1 starts ") and "gui_001_path" not in note, note
        assert note.endswith("jumps onto the keyframe path after it: &quot;Add input camera&quot; (Camera path → Keyframes) starts the path there</small>"), note
    finally:
        app.stop()


class NotesThenFails(LoadedWithNoise):
    """A generator that fails after the run noted something (e.g. a GPU gone mid-run)."""

    def generate(self, *args, **kwargs):
        raise Gen3cInputError("the generator failed on purpose")


def test_a_failed_run_s_notes_are_shown_with_its_error_and_still_logged(tmp_path, room_sample):
    """A run that notes then fails: the page showed the error alone (the notes were dropped), and
    the notes the page collected no longer reached the server's log."""
    from gen3c.gui.app import Gen3cApp

    request = GenerationRequest(generator="gen3c", resolution="48x80", num_video_frames=9, chunk_frames=9, generator_options={"noise_aug_strength": 0.1})
    app = Gen3cApp(tmp_path / "work", port=0, request=request, demo=lambda: room_sample, generator=NotesThenFails(), preload=False)
    try:
        handler(app, app._on_demo)(SimpleNamespace(client=None))
        with pytest.warns(UserWarning, match="a video of one chunk"):
            handler(app, app._on_generate)(SimpleNamespace(client=None))
            assert app.jobs.wait(60)
        assert "the generator failed on purpose" in app.status.content, app.status.content
        assert "Note: &quot;Buffer noise&quot; 0.1: a video of one chunk" in app.status.content, app.status.content
    finally:
        app.stop()


def test_a_video_s_notes_on_the_page_follow_the_frames_read_again(tmp_path):
    """Frames set for a video reads it again, with its own notes: the page went on showing the
    first reading's, e.g. "fewer than the 20 asked for … pass Frames 6" once Frames was 6."""
    from layouts import scene, write_sample

    from gen3c.gui.app import Gen3cApp

    rgb, depth, _, w2c, K = scene(6, 48, 80)
    video = write_sample(tmp_path / "sample", rgb, depth, depth > 0, w2c, K)
    app = Gen3cApp(tmp_path / "work", port=0, request=GenerationRequest(resolution="48x80", num_video_frames=20), demo=None,
                   generator=PreviewGenerator(), preload=False)  # fmt: skip
    try:
        app.video_path.value = str(video)
        handler(app, app._on_load_video)(SimpleNamespace(client=None))
        assert "fewer than the 20 asked for" in app.status.content, app.status.content
        app.num_frames.value = 6  # runs its callback, as a value from the page does
        assert app.status.content.startswith("Loaded **sample**") and "Note" not in app.status.content, app.status.content
        app.num_frames.value = 9
        assert "fewer than the 9 asked for" in app.status.content, app.status.content
    finally:
        app.stop()


def test_a_one_frame_video_and_an_unknown_path_mode_are_said_as_such(gui, tmp_path):
    """A video input loaded with one frame read as "1 frames with cameras"; a path mode the page
    does not know (an old or another client's) was a KeyError, "internal error" in the page."""
    from layouts import scene, write_sample

    rgb, depth, _, w2c, K = scene(6, 48, 80)
    gui.video_path.value, gui.start_frame.value = str(write_sample(tmp_path / "sample", rgb, depth, depth > 0, w2c, K)), 5
    handler(gui, gui._on_load_video)(SimpleNamespace(client=None))
    assert "(GEN3C sample, 1 frame with cameras)" in gui.status.content, gui.status.content
    handler(gui, gui._on_path_mode)(SimpleNamespace(target=SimpleNamespace(value="Spiral"), client=None))
    assert "internal" not in gui.status.content and "&quot;Path&quot; &#x27;Spiral&#x27; is unknown: choose one of Preset, Keyframes, Imported file" in gui.status.content, gui.status.content
    assert gui.state.path_mode == "preset" and gui.path_mode.value == "Preset"


@pytest.mark.parametrize(("key", "label", "value", "choices"), [
    ("trajectory", "Trajectory", "spiral", "left, right, up, down, zoom_in, zoom_out, clockwise, counterclockwise"),
    ("camera_rotation", "Rotation", "tumble", "center_facing, no_rotation, trajectory_aligned"),
    ("trajectory_scale", "Distance unit", "miles", "auto, gen3c, median_depth"),
])  # fmt: skip
def test_a_preset_setting_the_page_does_not_offer_is_refused_when_set(gui, key, label, value, choices):
    """A trajectory (rotation, distance unit) the page's dropdown does not offer, sent by another
    client, was stored, and reported only later as a camera-path problem; it is refused when set,
    in one line naming the control (as an unknown path mode is), and the dropdown put back."""
    before = getattr(gui.state.request, key)
    handler(gui, functools.partial(gui._on_setting, key, redraw_cache=False))(SimpleNamespace(target=SimpleNamespace(value=value), client=None))
    said = html.unescape(re.sub("<[^>]+>", "", gui.status.content))
    assert said == f'**Error:** "{label}" {value!r} is unknown: choose one of {choices}', said
    assert getattr(gui.state.request, key) == before == getattr(gui, SETTING_CONTROLS[key]).value


def test_a_cache_render_that_shows_nothing_says_why_in_the_page(gui):
    """A path looking away from the scene (or a cache whose every point was filtered out) rendered
    an all-chequered frame; the library's note saying why went to the server's log only. Now it
    shows under the render, in the page's words, until a frame shows the cache again."""
    from gen3c.cameras import Cameras

    handler(gui, gui._on_demo)(SimpleNamespace(client=None))
    assert not gui.frame_note.visible
    cams = gui.state.cameras()
    turned = torch.diag(torch.tensor([-1.0, 1.0, -1.0, 1.0])) @ cams.w2c  # half a turn about the camera's y: facing away
    handler(gui, gui._on_import)(upload_event("away.json", json.dumps(cameras_to_dict(Cameras(turned, cams.K, cams.height, cams.width))).encode()))
    assert gui.state.path_mode == "file"
    assert gui.frame_note.visible and "no point of the cache lands in the camera" in gui.frame_note.content, gui.frame_note.content
    handler(gui, gui._on_path_mode)(SimpleNamespace(target=SimpleNamespace(value="Preset"), client=None))
    assert not gui.frame_note.visible


def test_a_path_that_cannot_be_made_for_an_input_just_loaded_is_said_with_it(gui, box_scene):
    """Loading an input drew its path, then put "Loaded …" over the line saying the path cannot be
    made (here: Keyframes chosen, none added), and the cache render went on showing the last input's
    frame. Now the path's problem is said under what loaded, the render is blank until the path can
    be made, and once it can, the page says what loaded."""
    handler(gui, gui._on_demo)(SimpleNamespace(client=None))
    handler(gui, gui._on_path_mode)(SimpleNamespace(target=SimpleNamespace(value="Keyframes"), client=None))
    assert "Camera path: the keyframe path is empty" in gui.status.content
    gui.image_path.value, gui.depth_path.value = str(box_scene[0]), str(box_scene[1])
    handler(gui, gui._on_load_files)(SimpleNamespace(client=None))
    assert "Loaded **" in gui.status.content and "Camera path: the keyframe path is empty" in gui.status.content, gui.status.content
    assert (gui.frame_image.image == 235).all()  # blank, not the demo's frame
    handler(gui, gui._on_add_source_keyframe)(SimpleNamespace(client=None))
    assert gui.status.content.startswith("Loaded **") and "Camera path" not in gui.status.content, gui.status.content
    assert not (gui.frame_image.image == 235).all()


def test_a_path_problem_leaves_the_line_of_a_run_waiting_for_the_generator(tmp_path, monkeypatch, room_sample):
    """A camera path that could not be made cleared the progress line, also the one saying that a
    run waits for the generator to load (Cancel calls it off): the page no longer said a run was coming."""
    from gen3c.gui import app as gui_app

    loading, loaded = slow_loader(monkeypatch, gui_app)
    app = _a_run_waiting_for_the_load(gui_app, tmp_path, room_sample, loading)
    try:
        handler(app, app._on_path_mode)(SimpleNamespace(target=SimpleNamespace(value="Keyframes"), client=None))
        assert "Camera path: the keyframe path is empty" in app.status.content
        assert "The run starts once it has loaded: Cancel calls it off." in app.progress_text.content, app.progress_text.content
    finally:
        loaded.set()
        app.stop()


class PlannedGen3c(PreviewGenerator):
    """The preview standing in for the gen3c generator loaded with ``gen3c gui --max_gpu_memory 24``:
    its plan chosen for the load's frame size and prompts, which the gen3c generator's own
    memory_plan_misfit judges; T5 (9 GB) encodes any prompt but the empty one, which the prompt cache holds."""

    prompt, negative_prompt, guidance = "", None, 0.0

    def __init__(self, request: GenerationRequest) -> None:
        from gen3c.io.resolution import parse_resolution

        super().__init__()
        self.pipeline = SimpleNamespace(text_encoder_bytes=lambda prompts: 9 << 30 if any(prompts) else 0, sampling_defaults={})
        self.memory_planned_for = (parse_resolution(request.resolution), bool(request.generator_options.get("prompt")))

    def memory_plan_misfit(self, height: int, width: int) -> str | None:
        from gen3c.pipelines.gen3c import Gen3cGenerator

        return Gen3cGenerator.memory_plan_misfit(self, height, width)


def test_a_resolution_or_prompt_the_memory_plan_was_not_chosen_for_loads_the_generator_again(tmp_path, monkeypatch, room_sample):
    """Under --max_gpu_memory the model's memory plan is chosen for the frame size and for whether
    T5 encodes the prompt, and GeneratorPool loads again for another size. The page loaded the
    generator once, for the start's size and prompt, and ran every later pick with that plan: a
    larger Resolution, or a prompt T5 must encode on the GPU beside a plan that left it out, could
    run out of GPU memory. Now Generate loads it again for the run (Loading…, Cancel), once."""
    from gen3c.gui import app as gui_app

    loads = []

    def make_generator(request):
        loads.append((request.resolution, request.generator_options.get("prompt")))
        return PlannedGen3c(request)

    monkeypatch.setattr(gui_app, "make_generator", make_generator)
    request = GenerationRequest(generator="gen3c", resolution="48x80", num_video_frames=9, chunk_frames=9, generator_options={"max_gpu_memory": 24.0})
    app = gui_app.Gen3cApp(tmp_path / "work", port=0, request=request, demo=lambda: room_sample)
    outputs = app.state.work_dir / "outputs"
    try:
        app._loader.join(30)
        handler(app, app._on_demo)(SimpleNamespace(client=None))
        handler(app, app._on_generate)(SimpleNamespace(client=None))
        assert app.jobs.wait(60) and (outputs / "gui_001.mp4").is_file() and loads == [("48x80", None)]
        handler(app, functools.partial(app._on_setting, "resolution", redraw_cache=True))(SimpleNamespace(target=SimpleNamespace(value="32x80"), client=None))
        handler(app, app._on_generate)(SimpleNamespace(client=None))
        assert app.status.content == "Loading the gen3c generator again (--max_gpu_memory chose the memory plan for 48x80 frames, not 32x80)…"
        assert app.generate.disabled and not app.cancel.disabled and "The run starts once it has loaded" in app.progress_text.content
        app._loader.join(30)
        assert app.jobs.wait(60) and (outputs / "gui_002.mp4").is_file() and loads[1:] == [("32x80", None)], app.status.content
        handler(app, app._on_prompt)(SimpleNamespace(target=SimpleNamespace(value="a red barn"), client=None))
        handler(app, app._on_generate)(SimpleNamespace(client=None))
        assert "T5 must encode this one" in app.status.content, app.status.content
        app._loader.join(30)
        assert app.jobs.wait(60) and (outputs / "gui_003.mp4").is_file() and loads[2:] == [("32x80", "a red barn")], app.status.content
        handler(app, app._on_generate)(SimpleNamespace(client=None))  # the plan fits: no load
        assert app.jobs.wait(60) and (outputs / "gui_004.mp4").is_file() and len(loads) == 3
    finally:
        app.stop()


class OutOfMemoryOnce(PreviewGenerator):
    """The preview running out of GPU memory in its first run, with the gen3c model's line."""

    def __init__(self) -> None:
        super().__init__()
        self.runs = 0

    def generate(self, *args, **kwargs):
        from gen3c.errors import Gen3cMemoryError
        from gen3c.models.memory import memory_plan, out_of_memory_message

        self.runs += 1
        if self.runs == 1:
            raise Gen3cMemoryError(out_of_memory_message(memory_plan(), "cpu", "sampling with the DiT"))
        return super().generate(*args, **kwargs)


def test_a_run_out_of_memory_says_the_fix_in_the_page_s_words_and_generate_runs_again(tmp_path, room_sample):
    """A run out of GPU memory showed the library's 'try --low_memory … or --max_gpu_memory GB',
    flags no control of the page sets: the page did not say they are gen3c gui's, given when it
    starts, nor what the page itself can change. Generate then runs again."""
    from gen3c.gui.app import Gen3cApp

    app = Gen3cApp(tmp_path / "work", port=0, request=GenerationRequest(resolution="48x80", num_video_frames=9), demo=lambda: room_sample,
                   generator=OutOfMemoryOnce(), preload=False)  # fmt: skip
    try:
        handler(app, app._on_demo)(SimpleNamespace(client=None))
        handler(app, app._on_generate)(SimpleNamespace(client=None))
        assert app.jobs.wait(60)
        assert app.status.content == (
            "<span style='color:#c92a2a'>**Error:** the GPU ran out of memory while sampling with the DiT: try --low_memory (the leanest mode, "
            "~8 GB for GEN3C-7B) or --max_gpu_memory GB to pick a mode that fits (flags of gen3c gui: start it again with one), or pick a "
            "smaller &quot;Resolution&quot; (Input → 3D cache)</span>"
        ), app.status.content
        assert not app.generate.disabled and app.cancel.disabled and app.progress.value == 0.0
        handler(app, app._on_generate)(SimpleNamespace(client=None))
        assert app.jobs.wait(60) and "Generated **gui_001.mp4**" in app.status.content, app.status.content
    finally:
        app.stop()


class StrandedOnce(PreviewGenerator):
    """Out of GPU memory, leaving the DiT partly on the GPU (moving it back failed too), as the gen3c model says it."""

    def generate(self, *args, **kwargs):
        from gen3c.errors import Gen3cMemoryError

        error = Gen3cMemoryError("the GPU ran out of memory while sampling with the DiT: try --low_memory; transformer is left partly on "
                                 "cuda:0, as moving it back failed too (CUDA out of memory): load the pipeline again")  # fmt: skip
        error.stranded = True
        raise error


def test_a_run_that_strands_the_model_on_the_gpu_loads_it_again_at_the_next_generate(tmp_path, monkeypatch, room_sample):
    """Out of GPU memory with part of the model left on the GPU, the library says "load the pipeline
    again": the page cannot, and kept running the stranded model. Now the next Generate loads it again."""
    from gen3c.gui import app as gui_app

    made = []
    monkeypatch.setattr(gui_app, "make_generator", lambda request: made.append(PreviewGenerator() if made else StrandedOnce()) or made[-1])
    app = gui_app.Gen3cApp(tmp_path / "work", port=0, request=GenerationRequest(resolution="48x80", num_video_frames=9), demo=lambda: room_sample)
    try:
        app._loader.join(30)
        handler(app, app._on_demo)(SimpleNamespace(client=None))
        handler(app, app._on_generate)(SimpleNamespace(client=None))
        assert app.jobs.wait(60)
        assert "(CUDA out of memory): the next Generate loads the generator again (flags of gen3c gui" in app.status.content, app.status.content
        assert not app.generate.disabled and len(made) == 1
        handler(app, app._on_generate)(SimpleNamespace(client=None))
        app._loader.join(30)
        assert app.jobs.wait(60) and len(made) == 2 and "Generated **gui_001.mp4**" in app.status.content, app.status.content
    finally:
        app.stop()


class AlwaysMisfit(PreviewGenerator):
    """A stand-in whose memory plan never fits, however loaded (a plan estimate that disagrees with the run's prompts)."""

    def memory_plan_misfit(self, height: int, width: int) -> str:
        return "--max_gpu_memory chose the memory plan for prompts the prompt cache holds, and T5 must encode this one"


def test_a_generator_loaded_for_the_run_s_size_and_prompt_is_not_loaded_again(tmp_path, monkeypatch, room_sample):
    """A generator just loaded for this run's size and prompt has its plan chosen for them: it runs,
    even where its own check disagrees, rather than loading again and again; another size loads once."""
    from gen3c.gui import app as gui_app

    loads = []
    monkeypatch.setattr(gui_app, "make_generator", lambda request: loads.append(request.resolution) or AlwaysMisfit())
    request = GenerationRequest(generator="gen3c", resolution="48x80", num_video_frames=9, chunk_frames=9, generator_options={"max_gpu_memory": 24.0})
    app = gui_app.Gen3cApp(tmp_path / "work", port=0, request=request, demo=lambda: room_sample)
    try:
        app._loader.join(30)
        handler(app, app._on_demo)(SimpleNamespace(client=None))
        handler(app, app._on_generate)(SimpleNamespace(client=None))
        assert app.jobs.wait(60) and "Generated **gui_001.mp4**" in app.status.content and loads == ["48x80"], app.status.content
        handler(app, functools.partial(app._on_setting, "resolution", redraw_cache=True))(SimpleNamespace(target=SimpleNamespace(value="32x80"), client=None))
        handler(app, app._on_generate)(SimpleNamespace(client=None))
        app._loader.join(30)
        assert app.jobs.wait(60) and "Generated **gui_002.mp4**" in app.status.content and loads == ["48x80", "32x80"], app.status.content
    finally:
        app.stop()


def test_a_model_that_does_not_fit_the_gpu_at_load_says_to_start_the_gui_again_with_a_flag(tmp_path, monkeypatch, room_sample, capfd):
    """The load's out-of-memory line names flags (--low_memory, --max_gpu_memory) that no control of
    the page sets: the page says they are gen3c gui's; the log keeps the library's line."""
    from gen3c.errors import Gen3cMemoryError
    from gen3c.gui import app as gui_app
    from gen3c.models.memory import memory_plan, out_of_memory_message

    def make_generator(request):
        raise Gen3cMemoryError(out_of_memory_message(memory_plan(), "cpu", "moving the model to it"))

    monkeypatch.setattr(gui_app, "make_generator", make_generator)
    app = gui_app.Gen3cApp(tmp_path / "work", port=0, request=GenerationRequest(resolution="48x80", num_video_frames=9), demo=lambda: room_sample)
    try:
        app._loader.join(30)
        line = "the GPU ran out of memory while moving the model to it: try --low_memory (the leanest mode, ~8 GB for GEN3C-7B) or --max_gpu_memory GB to pick a mode that fits"
        assert app.status.content == f"<span style='color:#c92a2a'>**Error:** {line} (flags of gen3c gui: start it again with one)</span>", app.status.content
        assert f"gen3c gui: {line}\n" in capfd.readouterr().err and not app.generate.disabled
    finally:
        app.stop()


@pytest.mark.filterwarnings("ignore:--max_gpu_memory 24")
def test_what_the_generator_s_load_notes_is_shown_with_the_next_run(tmp_path, monkeypatch, room_sample):
    """What the load noted (the memory mode --max_gpu_memory chose, its estimated peak) went to the
    server's log only: the page never said which plan its runs had, nor that a load for another
    Resolution chose another. Now the next run's end shows it, once."""
    from gen3c.errors import note
    from gen3c.gui import app as gui_app

    def make_generator(request):
        note(f"--max_gpu_memory 24: memory mode 'resident' (estimated peak 20.1 GB for 121 frames at {request.resolution})")
        return PreviewGenerator()

    monkeypatch.setattr(gui_app, "make_generator", make_generator)
    app = gui_app.Gen3cApp(tmp_path / "work", port=0, request=GenerationRequest(resolution="48x80", num_video_frames=9), demo=lambda: room_sample)
    try:
        app._loader.join(30)  # (its note warned too: the server's log)
        handler(app, app._on_demo)(SimpleNamespace(client=None))
        for run in (1, 2):
            handler(app, app._on_generate)(SimpleNamespace(client=None))
            assert app.jobs.wait(60) and f"Generated **gui_00{run}.mp4**" in app.status.content, app.status.content
            said = "Note: --max_gpu_memory 24: memory mode &#x27;resident&#x27; (estimated peak 20.1 GB for 121 frames at 48x80)" in app.status.content
            assert said == (run == 1), app.status.content
    finally:
        app.stop()


def test_a_run_holds_its_name_in_the_outputs_folder_until_it_ends(gui):
    """Another `gen3c gui` on the same work folder named its next run as this one's while it ran
    (its outputs come as it ends); outputs/gui_001.running holds the name until then."""
    handler(gui, gui._on_demo)(SimpleNamespace(client=None))
    handler(gui, gui._on_generate)(SimpleNamespace(client=None))
    assert gui.generator.entered.wait(30)
    outputs = gui.state.work_dir / "outputs"
    assert (outputs / "gui_001.running").is_file() and GuiState(gui.state.work_dir).next_output_name() == "gui_002"
    gui.generator.gate.set()
    assert gui.jobs.wait(60) and "Generated **gui_001.mp4**" in gui.status.content, gui.status.content
    assert not list(outputs.glob("*.running")) and (outputs / "gui_001.mp4").is_file()


NO_POSE = "no pose (a NaN, an infinite number or a zero rotation): drag it again"


@pytest.mark.parametrize(
    "wxyz, position, said",
    [([np.nan, 0, 0, 0], [0.5, 0, 0], f"#{{id}}'s gizmo sent rotation (nan, 0, 0, 0) and position (0.5, 0, 0), {NO_POSE}"),
     ([0, 0, 0, 0], [0.5, 0, 0], f"#{{id}}'s gizmo sent rotation (0, 0, 0, 0) and position (0.5, 0, 0), {NO_POSE}"),
     ([1, 0, 0, 0], [np.inf, 0, 0], f"#{{id}}'s gizmo sent rotation (1, 0, 0, 0) and position (inf, 0, 0), {NO_POSE}"),
     ("up", [0, 0, 0], "#{id}'s gizmo sent no pose (a rotation w, x, y, z and a position x, y, z): drag it again"),
     ([1, 0, 0, 0], [1e300, 0, 0], "#{id}'s pose holds 1e+300, beyond float32's ±3.4e+38, the precision cameras are rendered in: move it nearer the scene")],
)  # fmt: skip
def test_a_gizmo_pose_that_is_no_pose_is_one_line_naming_its_keyframe(gui, wxyz, position, said):
    """A NaN gizmo pose from another client than the page was refused in the library's words,
    "quaternion_to_matrix q has a zero, NaN or infinite quaternion: pass (w, x, y, z) of a
    rotation, e.g. (1, 0, 0, 0)", naming no keyframe (a position beyond float32: "keyframe pose
    holds …"). The keyframe keeps its pose, which its gizmo shows again."""
    handler(gui, gui._on_demo)(SimpleNamespace(client=None))
    gui.state.add_keyframe(torch.eye(4, dtype=torch.float64))
    second = gui.state.add_keyframe(torch.eye(4, dtype=torch.float64))
    gizmo = SimpleNamespace(wxyz=wxyz, position=position)
    handler(gui, gui._on_gizmo, second.id)(SimpleNamespace(client=None, target=gizmo, phase="end"))
    assert gui.status.content == f"<span style='color:#c92a2a'>**Error:** {html.escape('keyframe ' + said.format(id=second.id))}</span>"
    assert second.w2c.equal(torch.eye(4, dtype=torch.float64))
    assert np.array_equal(gizmo.wxyz, [1, 0, 0, 0]) and np.array_equal(gizmo.position, [0, 0, 0])


def test_a_run_out_of_memory_whose_fix_is_a_smaller_resolution_says_to_pick_one(gui, monkeypatch):
    """Rendering the cache out of GPU memory said 'pass a smaller "Resolution"' (the command line's
    words), where the page says "pick" for its dropdown everywhere else, without saying where it is."""
    from gen3c.cache import Cache3D

    def no_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    handler(gui, gui._on_demo)(SimpleNamespace(client=None))
    monkeypatch.setattr(Cache3D, "render", no_memory)
    handler(gui, gui._on_generate)(SimpleNamespace(client=None))
    assert gui.jobs.wait(60)
    assert gui.status.content == (
        "<span style='color:#c92a2a'>**Error:** the GPU ran out of memory while rendering 3D cache: close other programs on the GPU, "
        "or pick a smaller &quot;Resolution&quot; (Input → 3D cache)</span>"
    ), gui.status.content


def test_stopping_the_server_prints_nothing_unless_verbose(tmp_path, capfd):
    """viser's server thread printed "(viser) Server stopped" on stdout as the app stopped (its
    banner was already kept off): after `gen3c gui`'s own lines, and on a busy machine, where the
    thread ends late, amid what the program printed next (another test's output under pytest)."""
    from gen3c.gui import app as gui_app

    for verbose in (False, True):
        work = tmp_path / f"work_{verbose}"
        app = gui_app.Gen3cApp(work, port=0, preload=False, demo=None, verbose=verbose)
        capfd.readouterr()
        app.stop()
        out, err = capfd.readouterr()
        assert (out, err) == (("(viser) Server stopped\n", "") if verbose else ("", "")), (verbose, out, err)


def test_a_fix_by_a_camera_file_is_said_as_the_page_makes_its_path(gui, tmp_path):
    """The page hands each run its path as a file it writes (paths/NAME_path.json), so the run's
    fixes named --camera_file, no control of the page: a keyframe run on a 6-frame video ended
    "pass a --camera_file of 6 cameras to stay within it" (the page's fix: Frames 6), and a
    multi-view input with more Frames than its cameras offered "a --camera_file with 121 cameras"
    (the page's: a keyframe path or an imported camera file). An imported path's fix is a file of
    the video's count (Frames alone would be refused: the page said "Frames" there too)."""
    from layouts import scene, write_multiview, write_sample

    rgb, depth, _, w2c, K = scene(6, 48, 80)
    gui.video_path.value = str(write_sample(tmp_path / "sample", rgb, depth, depth > 0, w2c, K))
    handler(gui, gui._on_load_video)(SimpleNamespace(client=None))
    handler(gui, gui._on_add_source_keyframe)(SimpleNamespace(client=None))
    gui.generator.gate.set()
    handler(gui, gui._on_generate)(SimpleNamespace(client=None))
    assert gui.jobs.wait(60)
    said = html.unescape(wait_for_status(gui, "Generated"))
    assert "fewer than the 9 asked for" in said and 'pass "Frames" 6 to stay within it' in said and "--" not in said, said
    # An imported fixed path keeps its own count (Frames 6 is refused: "has 9 cameras"): its fix is another file.
    handler(gui, gui._on_import)(upload_event("fixed.json", json.dumps(cameras_to_dict(gui.state.cameras())).encode()))
    assert gui.state.path_mode == "file"
    handler(gui, gui._on_generate)(SimpleNamespace(client=None))
    assert gui.jobs.wait(60)
    said = html.unescape(wait_for_status(gui, "Generated gui_002"))
    assert "fewer than the 9 asked for" in said and "import a camera file of 6 cameras to stay within it" in said and "--" not in said, said
    gui.start_frame.value = 2  # the same video read again from frame 2 keeps the imported path
    handler(gui, gui._on_load_video)(SimpleNamespace(client=None))
    said = html.unescape(gui.status.content)
    assert gui.state.path_mode == "file" and "import a camera file of 4 cameras to stay within it" in said and "--" not in said, said
    gui.start_frame.value = 0
    keys = [0, 5]
    gui.video_path.value = str(write_multiview(tmp_path / "mv.npz", rgb[keys], depth[keys], depth[keys] > 0, K[keys], w2c[keys], w2c))
    handler(gui, gui._on_load_video)(SimpleNamespace(client=None))
    gui.num_frames.value = 9  # runs its callback, as a value from the page does
    said = html.unescape(gui.status.content)
    assert 'has 6 cameras in w2cs_all but "Frames" is 9: pass "Frames" 6, or a keyframe path or an imported camera file of 9 frames' in said
    assert "--" not in said, said


@pytest.mark.parametrize(("fps", "said"), [
    (500, "camera file 'path.json' plays at 500 fps, outside the 1 … 240 fps a video can be written at: fix its 'fps' (a nerfstudio camera_path's 'seconds')"),
    (0.5, "camera file 'path.json' plays at 0.5 fps, outside the 1 … 240 fps a video can be written at: fix its 'fps' (a nerfstudio camera_path's 'seconds')"),
    (0, "camera file 'path.json': 'fps' 0 must be a number of frames per second > 0: fix it"),
])  # fmt: skip
def test_an_imported_path_s_frame_rate_is_refused_naming_the_file_not_the_fps_box(gui, fps, said):
    """A camera_path.json at 500 fps (or 0.5) was refused as '"FPS" 500.0 is impossible: pass a
    frame rate in [1, 240]', naming the FPS box, which the user had not touched (the import sets
    it from the file); one at 0 fps ended "fix it or pass "FPS"", though the page's FPS does not
    stand in for the file's. Now both name the file, and the page keeps its FPS."""
    handler(gui, gui._on_demo)(SimpleNamespace(client=None))
    path = json.loads(gui.state.camera_path_json())
    path.update(fps=fps, seconds=len(path["camera_path"]) / fps if fps else path["seconds"])
    handler(gui, gui._on_import)(upload_event("path.json", json.dumps(path).encode()))
    shown = html.unescape(re.sub("<[^>]+>", "", gui.status.content))
    assert shown == f"**Error:** {said}", shown
    assert gui.state.request.fps == gui.fps.value == 24 and gui.state.path_mode == "preset"


class _BarRecorder:
    """The page's progress bar, keeping every value it was set to."""

    def __init__(self) -> None:
        self.values: list[float] = []
        self.animated = False

    @property
    def value(self) -> float:
        return self.values[-1]

    @value.setter
    def value(self, value: float) -> None:
        self.values.append(value)


def test_the_progress_bar_is_the_whole_run_s_not_each_stage_s(gui):
    """The bar restarted at 0 for each stage of a run (rendering the cache, generating, for each
    chunk), so a run of two chunks filled it four times, and a user could not tell how far the run
    was. The bar now fills once over the run, as its chunks are generated (never going back), and
    the line below it names the stage with its own count and the share of the video made."""
    handler(gui, gui._on_demo)(SimpleNamespace(client=None))
    gui.state.update(chunk_frames=5)  # 9 frames: chunks 1-5 and 5-9
    lines: list[str] = []
    chunk_started = gui.generator.generate

    def generate(*args, **kwargs):  # as each chunk's generating starts
        lines.append(gui.progress_text.content)
        return chunk_started(*args, **kwargs)

    gui.generator.generate = generate
    gui.generator.gate.set()
    gui.progress = bar = _BarRecorder()
    handler(gui, gui._on_generate)(SimpleNamespace(client=None))
    assert gui.jobs.wait(60)
    wait_for_status(gui, "Generated **gui_001.mp4**")
    assert bar.values == sorted(bar.values) and bar.values[-1] == 100.0
    assert 50.0 in bar.values  # the first chunk of two made
    assert lines[1] == "Chunk 2/2: generating (preview): 0/5 (50% of the video made)"  # (chunk 1's may come while Generate holds the page)


@pytest.mark.parametrize(
    ("stage", "done", "total", "fraction"),
    [
        ("Generating (gen3c)", 60, 121, 60 / 121),
        ("Chunk 3/3: generating (gen3c)", 121, 121, 1.0),
        ("Chunk 2/4: generating (preview)", 0, 61, 0.25),
        ("Rendering 3D cache", 121, 121, None),  # other stages leave the video's share as it was
        ("Chunk 2/3: adding frame 120 to the cache", 50, 100, None),
        ("Loading gen3c model", 1, 1, None),
    ],
)
def test_the_share_of_a_run_s_video_made_is_read_from_its_stage(stage, done, total, fraction):
    from gen3c.pipelines.camera_video import run_fraction

    assert run_fraction(stage, done, total) == (None if fraction is None else pytest.approx(fraction))


def test_a_camera_path_s_note_is_said_in_the_page_as_it_is_drawn_not_as_a_python_warning(gui, tmp_path):
    """Frames set below a multi-view input's camera count: drawing the path noted that only the
    first cameras are rendered, which reached the server's terminal as a Python warning (its file,
    line and source line: "state.py:807: UserWarning: …") and the page only once a run had ended.
    The page now says it with the path, and the status goes back once Frames covers them all."""
    import warnings

    from layouts import scene, write_multiview

    rgb, depth, _, w2c, K = scene(6, 48, 80)
    npz = write_multiview(tmp_path / "mv.npz", rgb[[0, 5]], depth[[0, 5]], depth[[0, 5]] > 0, K[[0, 5]], w2c[[0, 5]], w2c)
    gui.video_path.value = str(npz)
    handler(gui, gui._on_load_video)(SimpleNamespace(client=None))
    loaded = gui.status.content
    assert loaded.startswith("Loaded **mv.npz**") and gui.num_frames.value == 6  # (lowered from 9 to its cameras)
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        gui.num_frames.value = 4  # (the control's own callback: _on_setting)
        handler(gui, functools.partial(gui._on_setting, "num_video_frames", redraw_cache=False))(SimpleNamespace(client=None, target=gui.num_frames))
    assert [str(w.message) for w in shown] == []
    assert gui.status.content.startswith(loaded + "<br><small>Note: multi-view npz ") and "the first 4 are rendered" in gui.status.content
    gui.num_frames.value = 6
    handler(gui, functools.partial(gui._on_setting, "num_video_frames", redraw_cache=False))(SimpleNamespace(client=None, target=gui.num_frames))
    assert gui.status.content == loaded


def test_a_camera_path_s_note_is_said_with_the_input_that_loads(gui, tmp_path):
    """Frames already below a multi-view input's camera count as it loads: the path's note was
    replaced by the "Loaded …" line at once, and said only as a run ended."""
    from layouts import scene, write_multiview

    rgb, depth, _, w2c, K = scene(12, 48, 80)
    npz = write_multiview(tmp_path / "mv.npz", rgb[[0, 11]], depth[[0, 11]], depth[[0, 11]] > 0, K[[0, 11]], w2c[[0, 11]], w2c)
    gui.video_path.value = str(npz)
    handler(gui, gui._on_load_video)(SimpleNamespace(client=None))
    assert gui.num_frames.value == 9  # (the start's count, below its 12 cameras)
    assert gui.status.content.startswith("Loaded **mv.npz**") and "<br><small>Note: multi-view npz " in gui.status.content
    assert "the first 9 are rendered" in gui.status.content
    gui.num_frames.value = 12
    handler(gui, functools.partial(gui._on_setting, "num_video_frames", redraw_cache=False))(SimpleNamespace(client=None, target=gui.num_frames))
    assert gui.status.content == "Loaded **mv.npz** (multi-view input, 2 key views with cameras) at 48×80."
