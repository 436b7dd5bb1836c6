"""The benchmark's job: a no-op that returns its argument. Every system runs this same function; the
workers import it by dotted path (``benchjobs.f``), so this folder is on their PYTHONPATH."""


def f(i):
    return i


async def af(i):
    """The same no-op as an ``async def`` (pgqueue's drain of async jobs)."""
    return i
