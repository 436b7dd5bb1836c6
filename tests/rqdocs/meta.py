"""RQ's job function that stores data on its job (jobs.md, "Storing arbitrary data on jobs")."""

import socket
import time

from pgqueue import get_current_job  # RQ's example uses get_current_job imported as in the example before


def add(x, y):
    job = get_current_job()
    job.meta['handled_by'] = socket.gethostname()
    job.save_meta()

    # do more work
    time.sleep(1)
    return x + y
