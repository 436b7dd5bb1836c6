"""The job functions, callbacks and exception handlers that RQ's documentation defines, for
tests/test_rq_examples.py: workers import them by dotted path (tests/ is on PYTHONPATH). Where RQ's docs
write ``from somewhere import count_words_at_url``, the ported examples write
``from rqdocs.tasks import count_words_at_url``.
"""
