"""`gen3c batch --ray`: the same jobs on a local Ray instance (CPU, preview generator) give the
local run's outputs, with one generator per actor, resumable like the local run."""

import json
from pathlib import Path

import numpy as np
import pytest

from gen3c.batch import run_batch
from gen3c.io.video import read_video

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_instance():
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    yield
    ray.shutdown()


def test_unreachable_ray_address_fails_at_once(tmp_path):
    from typer.testing import CliRunner

    import gen3c
    from gen3c.cli import app

    image = Path(gen3c.__file__).parent / "assets" / "demo_image.png"
    (tmp_path / "m.jsonl").write_text(json.dumps({"name": "a", "input_image_path": str(image)}) + "\n")
    res = CliRunner().invoke(
        app,
        [
            "batch",
            str(tmp_path / "m.jsonl"),
            "--output_folder",
            str(tmp_path),
            "--ray_address",
            "127.0.0.1:1",
        ],
    )
    assert res.exit_code == 2 and "nothing answers at 127.0.0.1:1" in res.output
    assert not ray.is_initialized()


def test_ray_batch_matches_the_local_run(ray_instance, box_scene, tmp_path):
    image, depth, _, _ = box_scene
    common = {
        "input_image_path": str(image),
        "depth_path": str(depth),
        "fov": 60,
        "resolution": "64x112",
        "num_video_frames": 9,
    }
    rows = [{"name": t, "trajectory": t, **common} for t in ("left", "up", "zoom_in", "counterclockwise")]
    (tmp_path / "nope.npy").write_bytes(b"not a depth map")  # found by the run, not the manifest check
    rows.append({"name": "broken", **common, "depth_path": str(tmp_path / "nope.npy")})
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join(json.dumps(r) for r in rows))
    local = run_batch(manifest, tmp_path / "local")
    remote = run_batch(manifest, tmp_path / "ray", ray=True, workers=2)
    assert (
        [o.state for o in remote.outcomes] == [o.state for o in local.outcomes] == ["done"] * 4 + ["failed"]
    )
    assert "nope.npy" in remote.outcomes[-1].error
    # Models load once per actor: 5 jobs, at most 2 loads, on processes other than this one.
    assert (
        sum(o.loaded_generator for o in remote.outcomes) <= 2
        and len({o.worker for o in remote.outcomes}) <= 2
    )
    for row in rows[:4]:
        a = read_video(tmp_path / "local" / f"{row['name']}.mp4")[0]
        b = read_video(tmp_path / "ray" / f"{row['name']}.mp4")[0]
        assert a.shape == (9, 64, 112, 3) and np.abs(a.astype(int) - b).max() <= 2
    # Resuming is decided before any job is handed out: the re-run starts no actor at all.
    again = run_batch(manifest, tmp_path / "ray", ray=True, workers=2)
    assert [o.state for o in again.outcomes] == ["skipped"] * 4 + ["failed_earlier"]
