"""A stand-in for the ``requests`` package, for RQ's examples that fetch a page: this machine has no
network, so ``get(url)`` serves a few pages from memory and raises ``ConnectionError`` for any other URL,
as ``requests.get`` does when the network is down. The job functions import it as ``requests``, so their
bodies are RQ's, word for word.

A worker started with ``RQDOCS_SLOW_URL=URL`` in its environment fetches that URL slowly: the fetch records
``started:URL`` in ``pgq_test.runs`` and waits for a row ``release:URL`` (see :func:`release`), so a test
can look at a job while it surely runs (RQ's example sleeps 0.1 s for that).
"""

from __future__ import annotations

import os
import time
from types import SimpleNamespace

import pgq_testjobs as tj

#: The pages of the offline web: RQ's docs say ``count_words_at_url('http://nvie.com')`` gives 889.
PAGES = {"http://nvie.com": " ".join(["word"] * 889)}

exceptions = SimpleNamespace(ConnectionError=ConnectionError)


class Response:
    def __init__(self, url: str, text: str) -> None:
        self.url, self.text, self.status_code = url, text, 200


def get(url: str, timeout: float = 10.0) -> Response:
    if url == os.environ.get("RQDOCS_SLOW_URL"):
        tj.record(f"started:{url}")
        deadline = time.monotonic() + timeout
        while not tj._db().execute("SELECT 1 FROM pgq_test.runs WHERE tag = %s", (f"release:{url}",)).fetchone():
            if time.monotonic() > deadline:
                raise TimeoutError(f"nobody released {url}")
            time.sleep(0.01)
    if url not in PAGES:
        raise exceptions.ConnectionError(f"offline: cannot reach {url}")
    return Response(url, PAGES[url])


def release(url: str) -> None:
    """What a test calls to let a slow fetch of ``url`` finish."""
    tj._db().execute("INSERT INTO pgq_test.runs (tag) VALUES (%s)", (f"release:{url}",))
