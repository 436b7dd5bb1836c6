"""RQ's job function that asks to be retried by returning ``Retry`` (results.md, "Asking RQ to Retry", RQ
2.1, in beta there). pgqueue has no such result: the test shows what happens instead."""

from pgqueue import Retry  # RQ: from rq import Retry
from rqdocs import offline_requests as requests  # RQ: import requests (this machine is offline)


def count_words_at_url(url, max=1, interval=60):
    try:
        resp = requests.get(url)
    except requests.exceptions.ConnectionError:
        return Retry(max=max, interval=interval)
    return len(resp.text.split())
