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


def test_gui_command_refuses_bad_settings(tmp_path):
    from typer.testing import CliRunner

    from gen3c.cli import app

    res = CliRunner().invoke(app, ["gui", "--resolution", "big", "--work_dir", str(tmp_path)])
    assert res.exit_code == 2 and "HEIGHTxWIDTH" in res.output


def _wait(condition, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "the page did not update the app in time"
        time.sleep(0.05)


def _browser_missing() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is missing: apt-get install -y chromium"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is missing: pip install playwright"
    return None


@pytest.mark.slow
@pytest.mark.skipif(_browser_missing() is not None, reason=str(_browser_missing()))
def test_page_loads_demo_generates_and_plays(tmp_path):
    from playwright.sync_api import sync_playwright

    from gen3c.gui.app import Gen3cApp

    request = GenerationRequest(resolution="176x320", num_video_frames=9)
    app = Gen3cApp(tmp_path / "work", port=0, request=request)  # the library's demo sample
    assert app.url.startswith("http://127.0.0.1:") and app.demo is not None
    profile = tempfile.mkdtemp(prefix="chromium-", dir=tmp_path)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
                viewport={"width": 1400, "height": 860}, accept_downloads=True,
            )  # fmt: skip
            page = browser.new_page()
            page.goto(app.url)

            # The 3D canvas and the controls are there.
            page.wait_for_selector("canvas", timeout=30_000)
            for tab in ("Input", "Camera path", "Generate"):
                page.get_by_role("tab", name=tab).wait_for(timeout=30_000)
            page.get_by_role("button", name="Load image + depth").wait_for()
            assert page.get_by_role("button", name="Video dataset (not supported by the library yet)").is_disabled()

            # A bad path is refused with the CLI's message, shown in the page.
            image_path = page.locator("xpath=//label[normalize-space()='Image path']/ancestor::div[.//input][1]//input")
            image_path.fill(str(tmp_path / "missing.png"))
            image_path.press("Enter")
            page.get_by_role("button", name="Load image + depth").click()
            page.get_by_text("does not exist").first.wait_for(timeout=10_000)

            # Load the demo: the cache render of frame 0 appears.
            page.get_by_role("button", name="Load demo sample").click()
            page.get_by_text("Loaded demo sample").wait_for(timeout=20_000)
            assert app.state.source is not None and app.state.source.size == (176, 320)

            # Scrub to another frame: the cache render follows.
            frame = page.locator("xpath=//label[normalize-space()='Frame']/ancestor::div[.//input][1]//input").last
            frame.fill("5")
            frame.press("Enter")
            _wait(lambda: app.frame.value == 5)

            # A keyframe from the current view switches to the keyframe path; delete it, back to the preset.
            page.get_by_role("tab", name="Camera path").click()
            page.get_by_role("button", name="Add from current view").click()
            _wait(lambda: len(app.state.keyframes) == 1 and app.state.path_mode == "keyframes")
            page.get_by_role("button", name="Delete", exact=True).click()
            _wait(lambda: not app.state.keyframes)
            page.locator("xpath=//label[normalize-space()='Path']/ancestor::div[.//input][1]//input").first.click()
            page.get_by_role("option", name="Preset").click()
            _wait(lambda: app.state.path_mode == "preset")

            # Download the camera path.
            with page.expect_download(timeout=10_000) as download:
                page.get_by_role("button", name="Download camera_path.json").click()
            data = json.loads(Path(download.value.path()).read_text())
            assert len(data["camera_path"]) == 9 and data["render_width"] == 320

            # Generate a preview and play it in the page.
            page.get_by_role("tab", name="Generate").click()
            page.get_by_role("button", name="Generate", exact=True).click()
            page.wait_for_selector("video#gen3c-result", timeout=60_000)
            page.wait_for_function(
                "() => { const v = document.querySelector('video#gen3c-result'); return v && v.readyState >= 2; }",
                timeout=20_000,
            )
            size = page.evaluate("() => { const v = document.querySelector('video#gen3c-result'); return [v.videoWidth, v.videoHeight]; }")
            assert size == [320, 176]
            assert (tmp_path / "work" / "outputs" / "gui_001.mp4").is_file()

            # Dismiss notifications (e.g. "software WebGL") in one go: clicking them one by one races
            # their exit animations (the next one moves and detaches while Playwright waits on it).
            page.evaluate("() => document.querySelectorAll('.mantine-Notification-closeButton').forEach(b => b.click())")
            time.sleep(1.0)
            shot = tmp_path / "gui.png"
            page.screenshot(path=str(shot))
            browser.close()
    finally:
        app.stop()
        shutil.rmtree(profile, ignore_errors=True)

    pixels = np.asarray(Image.open(io.BytesIO(shot.read_bytes())).convert("RGB"), dtype=np.float32)
    assert pixels.shape == (860, 1400, 3)
    assert pixels.std() > 20  # not a blank page
    assert len(np.unique(pixels.reshape(-1, 3)[::7], axis=0)) > 500  # a picture, not a few flat colours
    print(f"screenshot: {shot}")
