"""The GUI end to end: the `gen3c gui` command, and the page in real headless Chromium
(Debian's `chromium`, driven by Playwright, no network features)."""

import io
import json
import os
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
from PIL import Image

from gen3c.pipelines.request import GenerationRequest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
SRC = Path(__file__).resolve().parents[1] / "src"


def test_gui_command_serves_localhost(tmp_path):
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
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


#: Deadline for anything the page or the app does: generous, since CI shares 2 cores with other
#: jobs. Every wait below is on the app's state or the page's DOM, never on a clock.
DEADLINE_S = 180.0


def _wait(condition, what: str, timeout: float = DEADLINE_S) -> None:
    """Poll the app's server-side state until ``condition()`` holds."""
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, f"the app did not reach: {what} (within {timeout:.0f} s)"
        time.sleep(0.05)


def _browser_missing() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is missing: apt-get install -y chromium"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is missing: pip install playwright"
    return None


def _field(page, label: str):
    """The input of the control labelled ``label``."""
    return page.locator(f"xpath=//label[normalize-space()='{label}']/ancestor::div[.//input][1]//input").first


@pytest.mark.slow
@pytest.mark.skipif(_browser_missing() is not None, reason=str(_browser_missing()))
def test_page_loads_inputs_generates_and_plays(tmp_path, monkeypatch):
    from layouts import scene, write_sample
    from playwright.sync_api import sync_playwright

    from gen3c.gui.app import Gen3cApp

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # no depth weights: an image alone gets the prior, with the note
    photo = tmp_path / "photo.png"
    Image.fromarray(scene(1, 176, 320)[0][0]).save(photo)
    rgb, depth, _, w2c, K = scene(6, 72, 128)
    sample = write_sample(tmp_path / "batch_0000", rgb, depth, depth > 0, w2c, K)

    request = GenerationRequest(resolution="176x320", num_video_frames=9)
    app = Gen3cApp(tmp_path / "work", port=0, request=request)  # the library's demo sample
    assert app.url.startswith("http://127.0.0.1:") and app.demo is not None
    profile = tempfile.mkdtemp(prefix="chromium-", dir=tmp_path)
    shots = {}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
                viewport={"width": 1400, "height": 860}, accept_downloads=True,
            )  # fmt: skip
            page = browser.new_page()
            page.set_default_timeout(DEADLINE_S * 1000)
            page.goto(app.url)

            # The 3D canvas and the controls are there; the Input tab offers every input the library reads.
            page.wait_for_selector("canvas")
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
            page.get_by_role("button", name="Add from current view").click()
            _wait(lambda: len(app.state.keyframes) == 1 and app.state.path_mode == "keyframes", "one keyframe")
            page.get_by_role("button", name="Delete", exact=True).click()
            _wait(lambda: not app.state.keyframes, "no keyframe")
            _field(page, "Path").click()
            page.get_by_role("option", name="Preset").click()
            _wait(lambda: app.state.path_mode == "preset", "the preset path")

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
            browser.close()
    finally:
        app.stop()
        shutil.rmtree(profile, ignore_errors=True)

    for shot in shots.values():
        pixels = np.asarray(Image.open(io.BytesIO(shot.read_bytes())).convert("RGB"), dtype=np.float32)
        assert pixels.shape == (860, 1400, 3)
        assert pixels.std() > 20  # not a blank page
        assert len(np.unique(pixels.reshape(-1, 3)[::7], axis=0)) > 500  # a picture, not a few flat colours
    print("screenshots:", *shots.values())
