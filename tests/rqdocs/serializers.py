"""A serializer of one's own, as RQ's docs use ``rq.serializers.JSONSerializer``: RQ takes any object with
``dumps`` and ``loads``. pgqueue takes none (it stores JSON); the tests show the error it gives instead."""

import json


class JSONSerializer:
    @staticmethod
    def dumps(*args, **kwargs):
        return json.dumps(*args, **kwargs).encode("utf-8")

    @staticmethod
    def loads(s, *args, **kwargs):
        return json.loads(s.decode("utf-8"), *args, **kwargs)
