"""Batch generation: many jobs from a manifest, resumable, in this process, a process per GPU or on Ray.

See ``docs/batch.md``. Entry point: :func:`gen3c.batch.runner.run_batch` (``gen3c batch``).
"""

from gen3c.batch.jobs import BatchStopped, JobOutcome
from gen3c.batch.manifest import Job, load_manifest
from gen3c.batch.runner import BatchSummary, run_batch

__all__ = ["BatchStopped", "BatchSummary", "Job", "JobOutcome", "load_manifest", "run_batch"]
