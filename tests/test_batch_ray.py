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


@pytest.mark.parametrize(
    "address, said",
    [("x", "--ray_address 'x' must be 'auto', 'HOST:PORT' or 'ray://HOST:PORT'"),
     ("127.0.0.1:1", "--ray_address '127.0.0.1:1': nothing answers at 127.0.0.1:1")],
)  # fmt: skip
def test_a_ray_address_of_no_use_is_refused_before_the_output_folder_is_made(tmp_path, address, said):
    """A --ray_address of no form, or where nothing answers, was refused only once the output folder
    had been made and locked: it was left holding .gen3c_batch.lock and a batch_summary.csv listing
    every job 'not_run', under a progress line 'Batch of 1 job: 0/1 (0%)'."""
    from typer.testing import CliRunner

    import gen3c
    from gen3c.cli import app

    image = Path(gen3c.__file__).parent / "assets" / "demo_image.png"
    (tmp_path / "m.jsonl").write_text(json.dumps({"name": "a", "input_image_path": str(image)}) + "\n")
    res = CliRunner().invoke(app, ["batch", str(tmp_path / "m.jsonl"), "--output_folder", str(tmp_path / "out"), "--ray_address", address])
    assert res.exit_code == 2 and res.output.startswith(f"error: {said}") and len(res.output.splitlines()) == 1, res.output
    assert not (tmp_path / "out").exists()


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



class _Never:
    """A task that never finishes (its actor never starts)."""


class _Died(Exception):
    """An actor that dies as it starts."""


class _InProcessRay:
    """Just enough of Ray for :func:`gen3c.batch.ray_engine.run_ray`, its actors run in this
    process (so a test can patch what they call), their exceptions raised by ``get`` as Ray
    raises them: a RayTaskError that is also an instance of the task's exception."""

    exceptions = ray.exceptions
    dying = 0  # how many of the first actors die as they start

    def is_initialized(self):
        return True

    def cluster_resources(self):
        return {"CPU": 1.0}

    def remote(self, **resources):
        # Actors beyond what the cluster's CPUs fit never start, nor do the tasks given to them.
        fits = int(self.cluster_resources()["CPU"] // resources["num_cpus"]) if resources.get("num_cpus") else 1 << 30
        made, born = [], []
        owner = self

        def actor_class(cls):
            class Handle:
                def __init__(self, *args):
                    dies = len(born) < owner.dying
                    born.append(self)
                    up = dies or len(made) < fits  # (a dead actor holds no resources)
                    if not dies:
                        made.append(self)
                    instance = cls(*args)

                    def task(call):
                        return call if up else _Never()

                    def ready():
                        if dies:  # (get raises it as Ray does, not as a task's own error)
                            raise _Died()
                        return instance.ready()

                    self.ready = type("Method", (), {"remote": lambda _: task(ready)})()
                    self.run = type("Method", (), {"remote": lambda _, job: task(lambda: instance.run(job))})()

            return type("ActorClass", (), {"remote": staticmethod(Handle)})

        return actor_class

    def wait(self, refs, num_returns=1, timeout=None):
        done = [ref for ref in refs if not isinstance(ref, _Never)][:num_returns]
        assert done, "every task waited on never finishes: the batch would hang"
        return done, [ref for ref in refs if ref not in done]

    def get(self, ref):
        try:
            return ref()
        except _Died:
            raise ray.exceptions.RayActorError() from None
        except Exception as exc:
            raise ray.exceptions.RayTaskError("BatchActor.run", "Traceback …", exc).as_instanceof_cause() from None

    def kill(self, actor):
        pass


def _half_made(out, kept) -> None:
    """What job a's actor leaves while writing its second chunk and video: a kept chunk, a chunk
    being written and a half-written video."""
    (kept / "chunk_0000").mkdir(parents=True)
    (kept / ".chunk_0001.x1").mkdir()
    (out / ".a.x2.part.mp4").write_bytes(b"half a video")


def test_a_status_file_that_cannot_be_written_stops_a_ray_batch_as_it_stops_a_local_one(box_scene, tmp_path, monkeypatch):
    """An actor's BatchStopped (a status file it cannot write: a full disk, a read-only folder)
    reached the driver as a Ray task error and failed only that job ("Ray could not run it
    (ray::BatchActor.run() (pid=…, ip=…, actor_id=…))"), the batch going on to the next; the local
    engine stops the batch in one line naming the file and the fix (test_batch.py's same test)."""
    import errno
    import os

    from gen3c.batch.jobs import BatchStopped

    def full(path, text):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr("gen3c.batch.ray_engine.import_ray", _InProcessRay)
    monkeypatch.setattr("gen3c.batch.jobs.write_text_atomic", full)
    image, depth, _, _ = box_scene
    common = {"input_image_path": str(image), "depth_path": str(depth), "fov": 60, "resolution": "64x112", "num_video_frames": 9}
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join(json.dumps({"name": n, **common}) for n in ("a", "b")))
    out = tmp_path / "ray"
    with pytest.raises(BatchStopped) as stopped:
        run_batch(manifest, out, ray=True, workers=1)
    assert str(stopped.value).startswith(
        f"gen3c batch stopped: cannot write {str(out / 'a_status.json')!r} (No space left on device): free space on that disk"
    )
    assert "lists every job" in str(stopped.value) and "ray::" not in str(stopped.value)


def test_workers_beyond_what_the_cluster_fits_hold_no_job_back(box_scene, tmp_path, monkeypatch):
    """--workers 2 on a cluster with room for one actor: the second never started, and the job
    handed to it waited for ever (the batch hung at its end). A job goes to an actor that is up."""
    monkeypatch.setattr("gen3c.batch.ray_engine.import_ray", _InProcessRay)
    image, depth, _, _ = box_scene
    common = {"input_image_path": str(image), "depth_path": str(depth), "fov": 60, "resolution": "64x112", "num_video_frames": 9}
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join(json.dumps({"name": n, **common}) for n in ("a", "b", "c")))
    summary = run_batch(manifest, tmp_path / "ray", ray=True, workers=2)
    assert [(o.name, o.state) for o in summary.outcomes] == [("a", "done"), ("b", "done"), ("c", "done")]
    assert sum(o.loaded_generator for o in summary.outcomes) == 1  # one actor ran them all


def test_an_actor_that_dies_as_it_starts_fails_one_job_and_is_replaced(box_scene, tmp_path, monkeypatch):
    ray_like = type("DyingFirst", (_InProcessRay,), {"dying": 1})
    monkeypatch.setattr("gen3c.batch.ray_engine.import_ray", ray_like)
    image, depth, _, _ = box_scene
    common = {"input_image_path": str(image), "depth_path": str(depth), "fov": 60, "resolution": "64x112", "num_video_frames": 9}
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join(json.dumps({"name": n, **common}) for n in ("a", "b")))
    summary = run_batch(manifest, tmp_path / "ray", ray=True, workers=1)
    assert [(o.name, o.state) for o in summary.outcomes] == [("a", "failed"), ("b", "done")]
    assert summary.outcomes[0].error == (
        "its Ray worker died as it started (The actor experienced an error before finishing this task.); rerun with --retry_failed"
    )
    monkeypatch.setattr("gen3c.batch.ray_engine.import_ray", _InProcessRay)
    again = run_batch(manifest, tmp_path / "ray", ray=True, workers=1, retry_failed=True)
    assert [o.state for o in again.outcomes] == ["done", "skipped"]


def test_ctrl_c_removes_the_temporary_files_of_the_jobs_in_flight(box_scene, tmp_path, monkeypatch):
    """Ctrl-C while an actor is in the middle of a job: Ray's workers block SIGINT and ray.kill ends
    them at once, so the job's half-written video and half-kept chunk stayed behind (hidden files
    as large as a chunk) until the job ran again. The driver removes them once the actor is gone;
    the finished chunk stays for the next run."""
    from gen3c.pipelines.resume import partial_dir

    out = tmp_path / "ray"
    kept = partial_dir(out, "a")

    class CtrlCInJob(_InProcessRay):
        waits, killed = 0, False

        def wait(self, refs, num_returns=1, timeout=None):
            self.waits += 1
            if self.waits == 2:  # job a handed out: its actor is writing its second chunk and video
                _half_made(out, kept)
                raise KeyboardInterrupt
            return super().wait(refs, num_returns)

        def kill(self, actor):
            self.killed = True

        def get(self, ref):
            if self.killed:  # (the job's task ends as its actor does)
                raise ray.exceptions.RayActorError()
            return super().get(ref)

    monkeypatch.setattr("gen3c.batch.ray_engine.import_ray", CtrlCInJob)
    image, depth, _, _ = box_scene
    common = {"input_image_path": str(image), "depth_path": str(depth), "fov": 60, "resolution": "64x112", "num_video_frames": 9}
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join(json.dumps({"name": n, **common}) for n in ("a", "b")))
    with pytest.raises(KeyboardInterrupt):
        run_batch(manifest, out, ray=True, workers=1)
    assert sorted(p.name for p in kept.iterdir()) == ["chunk_0000"]
    assert not list(out.glob(".a.*"))


def test_temporary_files_of_an_actor_not_seen_to_end_go_at_the_next_batch_start(box_scene, tmp_path, monkeypatch):
    """An actor on a remote node not seen to end within STOP_GRACE_S kept its job's half-written
    video and half-kept chunk until that job ran again (hours later in a long batch, never if it
    did not). The driver says so, and the next batch into the folder removes them as it starts."""
    import warnings

    from gen3c.pipelines.resume import partial_dir

    out = tmp_path / "ray"
    kept = partial_dir(out, "a")

    class SlowToEnd(_InProcessRay):
        waits = 0

        def wait(self, refs, num_returns=1, timeout=None):
            self.waits += 1
            if self.waits == 2:  # job a handed out: its actor is writing its second chunk and video
                _half_made(out, kept)
                (out / "a_status.json").write_text(json.dumps({"name": "a", "state": "running"}))
                raise KeyboardInterrupt
            if timeout is not None:  # the stop's wait: the remote actor does not answer in time
                return [], list(refs)
            return super().wait(refs, num_returns)

    monkeypatch.setattr("gen3c.batch.ray_engine.import_ray", SlowToEnd)
    image, depth, _, _ = box_scene
    common = {"input_image_path": str(image), "depth_path": str(depth), "fov": 60, "resolution": "64x112", "num_video_frames": 9}
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join(json.dumps({"name": n, **common}) for n in ("a", "b")))
    with warnings.catch_warnings(record=True) as caught, pytest.raises(KeyboardInterrupt):
        warnings.simplefilter("always")
        run_batch(manifest, out, ray=True, workers=1)
    assert [str(w.message) for w in caught if "Ray worker" in str(w.message)] == [
        f"the Ray worker of job a did not end within 2 s, so its temporary files stay in {str(out.resolve())!r} until the next "
        "gen3c batch into that folder removes them as it starts"
    ]
    assert (kept / ".chunk_0001.x1").is_dir() and (out / ".a.x2.part.mp4").is_file()
    # The next batch, stopped before it reaches job a: its leftovers went as it started.
    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("gen3c.batch.runner._engine", stopped)
    with pytest.raises(KeyboardInterrupt):
        run_batch(manifest, out)
    assert sorted(p.name for p in kept.iterdir()) == ["chunk_0000"]
    assert not list(out.glob(".a.*"))
