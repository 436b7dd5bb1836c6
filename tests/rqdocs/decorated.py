"""RQ's ``@job`` example (index.md): the decorated function, in a module a worker imports."""

from pgqueue import Connection as Redis  # RQ: from redis import Redis
from pgqueue.decorators import job  # RQ: from rq.decorators import job

my_redis_conn = Redis()


@job('low', connection=my_redis_conn, timeout=5)
def add(x, y):
    return x + y
