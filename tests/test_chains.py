"""chain(): jobs that run one after the other, each optionally given the result of the one before
(docs/workflows.md); a link that fails cancels the rest."""

from __future__ import annotations

from typing import Any

import pgq_testjobs as tj
import psycopg
import pytest

from pgqueue import Batch, JobStatus, Queue, SimpleWorker, chain


def drain() -> None:
    SimpleWorker(["default"]).work(burst=True)


def test_each_link_gets_the_result_of_the_one_before() -> None:
    jobs = chain(Queue.prepare_data(tj.add, args=(1, 2)), Queue.prepare_data(tj.add, args=(10,)),
                 Queue.prepare_data(tj.prefixed, args=("x",)),
                 Queue.prepare_data(tj.identity), pass_result=True)
    assert [j.status for j in jobs] == [JobStatus.QUEUED] + [JobStatus.DEFERRED] * 3
    assert [j.depends_on for j in jobs[1:]] == [[jobs[0].id], [jobs[1].id], [jobs[2].id]]
    drain()
    for job in jobs:
        job.refresh()
    assert [j.result for j in jobs] == [3, 13, [13, "x"], [13, "x"]]
    assert jobs[1].args == [3, 10]  # the result is written into the link's args when it is released


def test_without_pass_result_the_links_keep_their_arguments() -> None:
    jobs = chain(Queue.prepare_data(tj.noop, args=(1,)), Queue.prepare_data(tj.noop, args=(2,)), queue="default")
    drain()
    assert [(j.refresh(), j.result)[1] for j in jobs] == [1, 2]


def test_a_failed_link_cancels_the_rest_unless_they_allow_it(db: psycopg.Connection[Any]) -> None:
    jobs = chain(Queue.prepare_data(tj.noop, args=(1,)), Queue.prepare_data(tj.fail),
                 Queue.prepare_data(tj.record, args=("after",)),
                 Queue.prepare_data(tj.record, args=("last",)), pass_result=True)
    anyway = chain(Queue.prepare_data(tj.fail), Queue.prepare_data(tj.prefixed, allow_dependency_failures=True),
                   pass_result=True)
    drain()
    for job in [*jobs, *anyway]:
        job.refresh()
    assert [j.status for j in jobs] == [JobStatus.FINISHED, JobStatus.FAILED, JobStatus.CANCELED, JobStatus.CANCELED]
    assert jobs[2].exc_info == f"dependency failed: {jobs[1].id}"
    assert jobs[3].exc_info == f"dependency canceled: {jobs[2].id}"
    assert db.execute("SELECT count(*) FROM pgq_test.runs").fetchone() == (0,)
    assert (anyway[1].status, anyway[1].result) == (JobStatus.FINISHED, [None])  # passed None: nothing to pass


def test_a_chain_in_a_batch_and_bad_chains(db: psycopg.Connection[Any]) -> None:
    with Batch(on_complete=tj.batch_callback) as batch:
        jobs = chain(Queue.prepare_data(tj.add, args=(1, 1)), Queue.prepare_data(tj.add, args=(1,)),
                     pass_result=True, batch=batch)
    drain()
    batch.refresh()
    assert (batch.total, batch.finished, batch.status) == (2, 2, "finished") and jobs[1].refresh() is None
    assert jobs[1].result == 3
    with pytest.raises(ValueError, match="at least one job"):
        chain()
    with pytest.raises(TypeError, match="prepare_data"):
        chain(tj.noop)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="link 2 of the chain"):
        chain(Queue.prepare_data(tj.noop), Queue.prepare_data(tj.noop, depends_on=jobs[0]))
