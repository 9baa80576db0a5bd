"""The GUI end to end: the `gen3c gui` command, and the page in real headless Chromium
(Debian's `chromium`, driven by Playwright, no network features)."""

import contextlib
import functools
import importlib.util
import io
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from child_env import child_env
from PIL import Image

from gen3c.cameras import quaternion_to_matrix
from gen3c.pipelines.request import GenerationRequest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
needs_viser = pytest.mark.skipif(importlib.util.find_spec("viser") is None, reason="the GUI needs viser (gen3c[gui])")


@needs_viser
def test_gui_command_serves_localhost(tmp_path):
    env = child_env()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gen3c", "gui", "--port", "0", "--work_dir", str(tmp_path / "work"), "--resolution", "96x160"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    try:
        line = proc.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        assert match, line + proc.stdout.read() if proc.poll() is not None else line
        with urllib.request.urlopen(match.group(0), timeout=10) as response:
            assert response.status == 200 and b"<html" in response.read(2000).lower()
        assert (tmp_path / "work").is_dir()
    finally:
        proc.terminate()
        proc.wait(10)


@needs_viser
@pytest.mark.parametrize(
    "args, message",
    [(["--resolution", "big"], "HEIGHTxWIDTH"),
     (["--seed", "5"], "--seed applies to --generator gen3c only (the preview is deterministic)")],  # it would change nothing
)  # fmt: skip
def test_gui_command_refuses_bad_settings(tmp_path, monkeypatch, args, message):
    from typer.testing import CliRunner

    from gen3c.cli import app
    from gen3c.gui.app import Gen3cApp

    def refuse_to_serve(self):
        self.stop()
        raise AssertionError("the GUI started with a bad setting")

    monkeypatch.setattr(Gen3cApp, "serve_forever", refuse_to_serve)
    res = CliRunner().invoke(app, ["gui", "--port", "0", *args, "--work_dir", str(tmp_path)])
    assert res.exit_code == 2 and message in res.output, res.output


@needs_viser
@pytest.mark.parametrize("args, fps, given", [([], 24, False), (["--fps", "24"], 24, True), (["--fps", "12.5"], 12.5, True)])
def test_gui_command_tells_a_given_fps_from_the_default(tmp_path, monkeypatch, args, fps, given):
    """A typed --fps (24 too) is kept when a video is loaded; the default follows the video's rate."""
    from typer.testing import CliRunner

    from gen3c.cli import app
    from gen3c.gui.app import Gen3cApp

    seen = {}

    def record_and_stop(self):
        seen.update(fps=self.state.request.fps, given=self.state.fps_given)
        self.stop()

    monkeypatch.setattr(Gen3cApp, "serve_forever", record_and_stop)
    res = CliRunner().invoke(app, ["gui", "--port", "0", *args, "--work_dir", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert seen == {"fps": fps, "given": given}


@needs_viser
@pytest.mark.parametrize("signal, code", [("SIGINT", 130), ("SIGTERM", 143)])
def test_gui_command_exits_as_the_other_commands_do_when_stopped(tmp_path, monkeypatch, signal, code):
    """Ctrl-C ended `gen3c gui` with exit code 0, where generate, batch and eval exit 130 (SIGTERM:
    143): a script or service manager could not tell it was stopped."""
    from typer.testing import CliRunner

    from gen3c.cli import app
    from gen3c.errors import Terminated
    from gen3c.gui.app import Gen3cApp

    def stopped(self):
        self.stop()
        raise KeyboardInterrupt if signal == "SIGINT" else Terminated

    monkeypatch.setattr(Gen3cApp, "serve_forever", stopped)
    res = CliRunner().invoke(app, ["gui", "--port", "0", "--work_dir", str(tmp_path)])
    what = "interrupted" if signal == "SIGINT" else "terminated"
    assert res.exit_code == code and f"{what}: the GUI stopped" in res.output, res.output


def test_the_readme_says_which_generate_flags_the_gui_takes():
    """README's GUI section lists flags `gen3c gui` takes (each one its own), then those of
    `gen3c generate` it does not take (all of them): it said "the generator and setting flags of
    gen3c generate", but --trajectory, --num_gpus and the input's flags are not among them."""
    import typer

    from gen3c.cli import app

    commands = typer.main.get_command(app).commands
    flags = {name: {o for p in commands[name].params for o in p.opts if o.startswith("--")} for name in ("generate", "gui")}
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = " ".join(readme.split("\n## GUI\n")[1].split("\n## ")[0].split())
    takes, not_taken = section.split("It takes `gen3c generate`'s")[1].split("; not the input's")
    not_taken = not_taken.split("It listens on")[0]
    named = re.findall(r"`(--\w+)`", takes)
    assert len(named) > 10 and set(named) <= flags["gui"], set(named) - flags["gui"]
    assert set(re.findall(r"`(--\w+)`", not_taken)) - {"--work_dir"} == flags["generate"] - flags["gui"]


#: Deadline for anything the page or the app does: generous, since CI shares 2 cores with other
#: jobs. Every wait below is on the app's state or the page's DOM, never on a clock.
DEADLINE_S = 180.0


def _wait(condition, what: str, timeout: float = DEADLINE_S, app=None) -> None:
    """Poll the app's server-side state until ``condition()`` holds; ``app``: its status line is
    in the failure's message (what the page said instead)."""
    end = time.monotonic() + timeout
    while not condition():
        said = f"; the page says: {app.status.content!r}" if app is not None else ""
        assert time.monotonic() < end, f"the app did not reach: {what} (within {timeout:.0f} s){said}"
        time.sleep(0.05)


def _browser_missing() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is missing: apt-get install -y chromium"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is missing: pip install playwright"
    return None


@contextlib.contextmanager
def _browser(tmp_path):
    """Headless Chromium (a fresh profile under ``tmp_path``) at a fixed window size."""
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="chromium-", dir=tmp_path)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
                viewport={"width": 1400, "height": 860}, accept_downloads=True,
            )  # fmt: skip
            yield browser
            browser.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def _open(browser, app):
    """A page of the app, its 3D canvas there."""
    page = browser.new_page()
    page.set_default_timeout(DEADLINE_S * 1000)
    page.goto(app.url)
    page.wait_for_selector("canvas")
    return page


def _field(page, label: str):
    """The input of the control labelled ``label``."""
    return page.locator(f"xpath=//label[normalize-space()='{label}']/ancestor::div[.//input][1]//input").first


@pytest.mark.slow
@pytest.mark.skipif(_browser_missing() is not None, reason=str(_browser_missing()))
def test_page_loads_inputs_generates_and_plays(tmp_path, monkeypatch):
    from layouts import scene, write_sample

    from gen3c.gui.app import Gen3cApp

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # no depth weights: an image alone gets the prior, with the note
    photo = tmp_path / "photo.png"
    Image.fromarray(scene(1, 176, 320)[0][0]).save(photo)
    rgb, depth, _, w2c, K = scene(6, 72, 128)
    sample = write_sample(tmp_path / "batch_0000", rgb, depth, depth > 0, w2c, K)

    request = GenerationRequest(resolution="176x320", num_video_frames=9)
    app = Gen3cApp(tmp_path / "work", port=0, request=request)  # the library's demo sample
    assert app.url.startswith("http://127.0.0.1:") and app.demo is not None
    shots = {}
    try:
        with _browser(tmp_path) as browser:
            page = _open(browser, app)

            # The 3D canvas and the controls are there; the Input tab offers every input the library reads.
            for tab in ("Input", "Camera path", "Generate"):
                page.get_by_role("tab", name=tab).wait_for()
            for button in ("Load demo sample", "Load image", "Load video input"):
                assert page.get_by_role("button", name=button, exact=True).is_enabled()
            text = page.locator("body").inner_text()
            assert "not in this version" not in text and "not supported" not in text and "Depth estimation is not" not in text

            # A bad path is refused with the CLI's message, shown in the page.
            _field(page, "Image path").fill(str(tmp_path / "missing.png"))
            _field(page, "Image path").press("Enter")
            page.get_by_role("button", name="Load image", exact=True).click()
            _wait(lambda: "does not exist" in app.status.content, "the missing-file error")
            page.get_by_text("does not exist").first.wait_for()

            # An image uploaded alone: depth as `gen3c generate` gets it — here the prior, with its note.
            with page.expect_file_chooser() as chooser:
                page.get_by_role("button", name="Upload image").click()
            chooser.value.set_files(str(photo))
            _wait(lambda: app.image_path.value.endswith("photo.png"), "the upload")
            page.get_by_role("button", name="Load image", exact=True).click()
            _wait(lambda: "Loaded" in app.status.content and app.state.source is not None, "the image loaded")
            assert app.state.kind == "image" and app.state.source.depth_kind == "relative"
            assert "depth estimated" in app.status.content and "geometric prior" in app.status.content
            page.get_by_text("(image, depth estimated) at 176×320").wait_for()
            page.get_by_text("using a flat geometric prior").wait_for()
            shots["image"] = tmp_path / "gui_image.png"
            page.screenshot(path=str(shots["image"]))

            # A video input (a GEN3C sample directory): loaded with its cameras drawn in 3D.
            _field(page, "Input path").fill(str(sample))
            _field(page, "Input path").press("Enter")
            page.get_by_role("button", name="Load video input").click()
            _wait(lambda: app.state.kind == "sample" and "Loaded" in app.status.content, "the video loaded")
            page.get_by_text("GEN3C sample, 6 frames with cameras").wait_for()
            assert len(app._input_nodes) == 6 and app.state.source.size == (176, 320)
            shots["video"] = tmp_path / "gui_video.png"
            page.screenshot(path=str(shots["video"]))

            # Load the demo: the cache render of frame 0 appears.
            page.get_by_role("button", name="Load demo sample").click()
            _wait(lambda: app.state.source_label == "demo sample" and "Loaded" in app.status.content, "the demo loaded")
            page.get_by_text("Loaded demo sample").wait_for()
            assert app.state.source.size == (176, 320) and not app._input_nodes

            # Scrub to another frame: the cache render follows.
            frame = page.locator("xpath=//label[normalize-space()='Frame']/ancestor::div[.//input][1]//input").last
            frame.fill("5")
            frame.press("Enter")
            _wait(lambda: app.frame.value == 5, "frame 5")

            # A keyframe from the current view switches to the keyframe path; delete it, back to the preset.
            page.get_by_role("tab", name="Camera path").click()
            # Each press waits for the page to show what the press before changed, its last change in
            # the panel: until then the panel moves (a folder goes or comes, the keyframe list or the
            # status line changes length), and a press whose mouse-up lands after the button has moved
            # is lost, though Playwright reports it done (once in CI, the Delete press).
            page.get_by_role("button", name="Add from current view").click()
            _wait(lambda: len(app.state.keyframes) == 1 and app.state.path_mode == "keyframes" and app.keyframe_pick.value != "—",
                  "one keyframe, selected")  # fmt: skip
            page.get_by_text("One keyframe: the camera holds still").wait_for()  # the list, after the Preset folder went
            page.get_by_role("button", name="Delete", exact=True).click()
            _wait(lambda: not app.state.keyframes, "no keyframe", app=app)
            page.get_by_text("the keyframe path is empty").wait_for()  # the status line, after the list emptied
            _field(page, "Path").click()
            page.get_by_role("option", name="Preset").click()
            _wait(lambda: app.state.path_mode == "preset", "the preset path")
            page.get_by_text("the keyframe path is empty").wait_for(state="hidden")  # the status line, after the Preset folder came

            # Download the camera path.
            with page.expect_download() as download:
                page.get_by_role("button", name="Download camera_path.json").click()
            data = json.loads(Path(download.value.path()).read_text())
            assert len(data["camera_path"]) == 9 and data["render_width"] == 320

            # Generate a preview and play it in the page.
            _wait(lambda: app._loader is None or not app._loader.is_alive(), "the generator loaded")
            page.get_by_role("tab", name="Generate").click()
            page.get_by_role("button", name="Generate", exact=True).click()
            _wait(lambda: app._last_output is not None, "the generated video")
            page.wait_for_function("() => { const v = document.querySelector('video#gen3c-result'); return v && v.readyState >= 2; }")
            size = page.evaluate("() => { const v = document.querySelector('video#gen3c-result'); return [v.videoWidth, v.videoHeight]; }")
            assert size == [320, 176]
            assert (tmp_path / "work" / "outputs" / "gui_001.mp4").is_file()

            # Dismiss notifications (e.g. "software WebGL") in one go: clicking them one by one races
            # their exit animations (the next one moves and detaches while Playwright waits on it).
            page.evaluate("() => document.querySelectorAll('.mantine-Notification-closeButton').forEach(b => b.click())")
            page.wait_for_function("() => !document.querySelector('.mantine-Notification-closeButton')")
            shots["result"] = tmp_path / "gui.png"
            page.screenshot(path=str(shots["result"]))
    finally:
        app.stop()

    for shot in shots.values():
        pixels = np.asarray(Image.open(io.BytesIO(shot.read_bytes())).convert("RGB"), dtype=np.float32)
        assert pixels.shape == (860, 1400, 3)
        assert pixels.std() > 20  # not a blank page
        assert len(np.unique(pixels.reshape(-1, 3)[::7], axis=0)) > 500  # a picture, not a few flat colours
    print("screenshots:", *shots.values())


def _settled(read, quiet_s: float = 0.5, timeout: float = DEADLINE_S):
    """``read()`` once it has stopped changing for ``quiet_s`` (the viewer's camera eases to a stop
    after a drag, sending poses as it goes)."""
    end = time.monotonic() + timeout
    value, since = read(), time.monotonic()
    while time.monotonic() - since < quiet_s:
        assert time.monotonic() < end, f"still changing after {timeout:.0f} s"
        time.sleep(0.05)
        now = read()
        if not np.array_equal(now, value):
            value, since = now, time.monotonic()
    return value


def _next_frames(page) -> None:
    """Two animation frames of the page: what it has received is mounted in the 3D view and drawn."""
    page.evaluate("() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")


@pytest.mark.slow
@pytest.mark.skipif(_browser_missing() is not None, reason=str(_browser_missing()))
def test_orbiting_from_a_keyframe_moves_the_view_not_the_keyframe(tmp_path, room_sample):
    """Right after "Add from current view" — and after "View" — the viewer's camera sits at the
    keyframe. An orbit drag from the middle of the 3D view must orbit, not drag the keyframe (its
    gizmo, centred at the eye, would have handles across the middle of the view)."""
    import viser

    from gen3c.gui.app import Gen3cApp
    from gen3c.pipelines.preview import PreviewGenerator

    request = GenerationRequest(resolution="48x80", num_video_frames=9)
    app = Gen3cApp(tmp_path / "work", port=0, request=request, demo=lambda: room_sample, generator=PreviewGenerator())

    def camera(client=None):
        client = client or next(iter(app.server.get_clients().values()))
        return np.concatenate([client.camera.position, client.camera.wxyz])

    def orbit(page, keyframe) -> tuple[float, float]:
        """Drag from the middle of the 3D view as a user orbits: how far the keyframe's pose (its
        w2c entries) and the camera moved."""
        box = page.locator("canvas").first.bounding_box()
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        pose, view = keyframe.w2c.clone(), _settled(camera)
        page.mouse.move(x, y)
        page.mouse.down()
        page.mouse.move(x + 120, y + 30, steps=10)
        page.mouse.up()
        moved = lambda: not np.array_equal(camera(), view) or not keyframe.w2c.equal(pose)  # noqa: E731
        _wait(moved, "the drag reaching the app (the camera or the keyframe moving)")
        view_moved = float(np.abs(_settled(camera) - view)[:3].max())
        return float((keyframe.w2c - pose).abs().max()), view_moved

    def pixel(page, point, client=None) -> np.ndarray:
        """Where the viewer's camera (OpenCV, vertical FOV) shows world ``point`` in the page."""
        cam = (client or next(iter(app.server.get_clients().values()))).camera
        box = page.locator("canvas").first.bounding_box()
        R = quaternion_to_matrix(torch.as_tensor(cam.wxyz)).numpy()
        x, y, z = R.T @ (np.asarray(point) - cam.position)
        f = 0.5 * box["height"] / np.tan(cam.fov / 2)
        return np.array([box["x"] + box["width"] / 2 + f * x / z, box["y"] + box["height"] / 2 + f * y / z])

    def drag_arrow(page, keyframe, length: float, client=None) -> tuple[float, float]:
        """Drag the keyframe's gizmo by the arrow (of ``length``) that looks longest from the view
        (``client``'s: the page's viewer; the first by default)."""
        c2w = keyframe.w2c.inverse().numpy()
        ends = [(pixel(page, c2w[:3, 3], client), pixel(page, c2w[:3, 3] + 0.8 * length * c2w[:3, i], client)) for i in range(3)]
        base, tip = max(ends, key=lambda e: np.linalg.norm(e[1] - e[0]))
        target = tip + 40 * (tip - base) / np.linalg.norm(tip - base)
        its_camera = functools.partial(camera, client)
        pose, view = keyframe.w2c.clone(), _settled(its_camera)
        page.mouse.move(*tip)
        page.mouse.down()
        page.mouse.move(*target, steps=10)
        page.mouse.up()
        moved = lambda: not np.array_equal(its_camera(), view) or not keyframe.w2c.equal(pose)  # noqa: E731
        _wait(moved, "the drag reaching the app (the camera or the keyframe moving)")
        view_moved = float(np.abs(_settled(its_camera) - view)[:3].max())
        return float((keyframe.w2c - pose).abs().max()), view_moved

    try:
        with _browser(tmp_path) as browser:
            page = _open(browser, app)
            _wait(lambda: app.server.get_clients(), "the page connected")
            client_camera = next(iter(app.server.get_clients().values())).camera
            views = []
            client_camera.on_update(lambda cam: views.append(cam.position.copy()))
            page.get_by_role("button", name="Load demo sample").click()
            _wait(lambda: app.state.source is not None and "Loaded" in app.status.content, "the demo loaded")
            page.get_by_role("tab", name="Camera path").click()
            render = page.locator("img[src^='blob:']")  # the cache render (the other images are icons)
            shown = render.get_attribute("src")
            _settled(camera)  # the view has eased into the initial view the load set
            page.get_by_role("button", name="Add from current view").click()
            _wait(lambda: len(app.state.keyframes) == 1, "one keyframe")
            keyframe = app.state.keyframes[0]
            # The cache render, drawn after the keyframe, has changed in the page: the keyframe is there too.
            page.wait_for_function("([img, src]) => img.getAttribute('src') !== src", arg=[render.element_handle(), shown])
            _next_frames(page)
            scale = app.state.scene_scale()

            keyframe_moved, view_moved = orbit(page, keyframe)
            assert keyframe_moved == 0, f"the drag moved the keyframe (by {keyframe_moved:.3g}) instead of the view"
            assert view_moved > 0.05 * scale, f"the drag did not orbit the view (it moved {view_moved:.3g})"
            # Away from the keyframe, its gizmo is back: seen from behind, dragging an arrow moves the
            # keyframe, not the view.
            assert isinstance(app._keyframe_nodes[client_camera.client.client_id][keyframe.id], viser.TransformControlsHandle)
            c2w = keyframe.w2c.inverse().numpy()
            behind = c2w[:3, 3] + c2w[:3, :3] @ np.array([0.15, -0.15, -0.5]) * scale
            views.clear()
            with client_camera.client.atomic():
                client_camera.position, client_camera.look_at = behind, c2w[:3, 3]
            _wait(lambda: any(np.allclose(v, behind, atol=1e-4 * scale) for v in views), "the view behind the keyframe")
            _next_frames(page)
            keyframe_moved, view_moved = drag_arrow(page, keyframe, 0.15 * scale)
            assert keyframe_moved > 0 and view_moved == 0, (keyframe_moved, view_moved)

            # "View" puts the camera back at the keyframe: an orbit from there orbits too.
            views.clear()
            page.get_by_role("button", name="View", exact=True).click()
            centre = keyframe.w2c.inverse()[:3, 3].numpy()
            _wait(lambda: any(np.allclose(v, centre, atol=1e-4 * scale) for v in views), "the view at the keyframe")
            _next_frames(page)
            keyframe_moved, view_moved = orbit(page, keyframe)
            assert keyframe_moved == 0, f"after View, the drag moved the keyframe (by {keyframe_moved:.3g}) instead of the view"
            assert view_moved > 0.05 * scale, f"after View, the drag did not orbit the view (it moved {view_moved:.3g})"

            # Two viewers: the first at the keyframe (its gizmo hidden there), a second one behind
            # it. The hiding is the first viewer's only: the second drags the keyframe by its gizmo.
            views.clear()
            page.get_by_role("button", name="View", exact=True).click()
            centre = keyframe.w2c.inverse()[:3, 3].numpy()
            _wait(lambda: any(np.allclose(v, centre, atol=1e-4 * scale) for v in views), "the first view at the keyframe")
            first = client_camera.client
            second_page = _open(browser, app)
            _wait(lambda: len(app.server.get_clients()) == 2, "the second page connected")
            second = next(c for c in app.server.get_clients().values() if c.client_id != first.client_id)
            second_views = []
            second.camera.on_update(lambda cam: second_views.append(cam.position.copy()))
            c2w = keyframe.w2c.inverse().numpy()
            behind = c2w[:3, 3] + c2w[:3, :3] @ np.array([0.15, -0.15, -0.5]) * scale
            with second.atomic():
                second.camera.position, second.camera.look_at = behind, c2w[:3, 3]
            _wait(lambda: any(np.allclose(v, behind, atol=1e-4 * scale) for v in second_views), "the second view behind the keyframe")
            _wait(lambda: isinstance(app._keyframe_nodes.get(second.client_id, {}).get(keyframe.id), viser.TransformControlsHandle),
                  "the keyframe's gizmo in the second view")  # fmt: skip
            assert not isinstance(app._keyframe_nodes[first.client_id][keyframe.id], viser.TransformControlsHandle)
            _next_frames(second_page)
            keyframe_moved, view_moved = drag_arrow(second_page, keyframe, 0.15 * scale, second)
            assert keyframe_moved > 0 and view_moved == 0, f"the second viewer could not drag the keyframe: {(keyframe_moved, view_moved)}"
    finally:
        app.stop()


@needs_viser
def test_gui_command_logs_a_run_s_notes_as_note_lines(tmp_path, monkeypatch):
    """A run's notes (the page shows them too) reached `gen3c gui`'s terminal as Python warnings,
    with their file, line and source line ("…/request.py:414: UserWarning: multi-view npz … has
    12 cameras …" then "  cameras = scene_cameras(…)"), where gen3c generate says "note: …"."""
    import threading
    import warnings

    from typer.testing import CliRunner

    from gen3c.cli import app
    from gen3c.gui.app import Gen3cApp

    def a_run_notes(self):  # as the run's worker thread warns
        worker = threading.Thread(target=lambda: warnings.warn("the first 4 of 6 cameras are rendered", UserWarning, stacklevel=1))
        worker.start()
        worker.join()
        self.stop()

    monkeypatch.setattr(Gen3cApp, "serve_forever", a_run_notes)
    res = CliRunner().invoke(app, ["gui", "--port", "0", "--work_dir", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "note: the first 4 of 6 cameras are rendered" in res.output and "UserWarning" not in res.output, res.output
