"""Workers: the supervisor loop and the slots that run jobs."""

from ._queues import DequeueStrategy
from ._supervisor import SimpleWorker, Worker

__all__ = ["DequeueStrategy", "SimpleWorker", "Worker"]
