"""Workers: the supervisor loop and the slots that run jobs."""

from ._supervisor import SimpleWorker, Worker

__all__ = ["SimpleWorker", "Worker"]
