"""The state store as an adapter's bulk job journal: a crash resumes a job, never repeats it.

An adapter notes each bulk write job before each of its steps
(:class:`~connector.crm.base.JobJournal`); the note is committed before the
step is sent. The next run of the same connection and object hands the notes
it finds to :meth:`~connector.crm.base.CrmAdapter.resume` before it plans, so
a job the crashed run uploaded is finished (its rows land once, and the plan
finds them written) and an empty or unknown Open job is aborted.
"""

from __future__ import annotations

from typing import cast

from connector.crm.base import JobNote, JobStep
from connector.store.store import Store
from connector.sync.steps import StoreSteps


class StoreJournal:
    """The bulk jobs of one connection and object, noted in the store under one run."""

    def __init__(
        self, store: Store, connection: str, obj: str, run_id: int, steps: StoreSteps | None = None
    ) -> None:
        self._store = store
        # A note is an upsert, done a delete, notes a read: each retried alike,
        # and the writes fenced before their first try too (a run that lost
        # its job notes nothing over the new holder's notes).
        self._steps = steps or StoreSteps.once()
        self._connection = connection
        self._object = obj
        self._run_id = run_id

    def note(self, note: JobNote) -> None:
        """Record the job's latest step (committed on return)."""
        self._steps.write(
            "note a bulk job",
            self._store.note_job,
            self._connection,
            self._object,
            self._run_id,
            note.marker,
            note.job_id,
            note.step,
            note.since,
        )

    def done(self, marker: str) -> None:
        """Forget a job that ended."""
        self._steps.write(
            "forget a bulk job", self._store.job_done, self._connection, self._object, marker
        )

    def notes(self) -> list[JobNote]:
        """The jobs noted and not done (what a crashed run left)."""
        return [
            JobNote(marker, job_id, cast(JobStep, step), since)
            for marker, job_id, step, since in self._steps(
                "read the bulk jobs", self._store.job_notes, self._connection, self._object
            )
        ]
