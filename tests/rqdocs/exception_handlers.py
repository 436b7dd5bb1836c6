"""RQ's custom exception handlers (exceptions.md). RQ's bodies are comments ("do custom things here");
these record their call in ``pgq_test.runs`` so the tests can see it."""

import pgq_testjobs as tj


def _note(name, job, exc_type, exc_value):
    tj._db().execute("INSERT INTO pgq_test.runs (job_id, tag) VALUES (%s, %s)",
                     (job.id, f"{name}:{exc_type.__name__}:{exc_value}"))


def foo_handler(job, exc_type, exc_value, traceback):
    _note("foo_handler", job, exc_type, exc_value)


def bar_handler(job, exc_type, exc_value, traceback):
    _note("bar_handler", job, exc_type, exc_value)


def my_handler(job, *exc_info):
    _note("my_handler", job, *exc_info[:2])


def black_hole(job, *exc_info):
    _note("black_hole", job, *exc_info[:2])
    return False


def my_work_horse_killed_handler(job, retpid, ret_val, rusage):
    _note("my_work_horse_killed_handler", job, type(ret_val), ret_val)
