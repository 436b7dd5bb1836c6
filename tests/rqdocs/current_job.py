"""RQ's job function that finds its own job (jobs.md, "Accessing the current job")."""

from pgqueue import get_current_job  # RQ: from rq import get_current_job


def add(x, y):
    job = get_current_job()
    print('Current job: %s' % (job.id,))
    return x + y
