"""A user's own tests, run by Django's test runner (`manage.py test shop`) on the test database it creates:
`migrate` brought pgqueue's schema there too."""

from django.test import TestCase, TransactionTestCase
from psycopg.conninfo import conninfo_to_dict

from pgqueue import Job, JobStatus
from pgqueue.contrib.django import Queue, dsn
from shop import tasks
from shop.models import Order


class ShopTests(TestCase):
    def test_the_test_database_has_pgqueues_schema(self) -> None:
        self.assertTrue(conninfo_to_dict(dsn())["dbname"].startswith("test_"), dsn())
        self.assertEqual(len(Queue("shop")), 0)

    def test_eager_queue_runs_the_job_in_the_tests_transaction(self) -> None:
        order = Order.objects.create(item="book")
        job = Queue("shop", is_async=False).enqueue(tasks.ship, order.id)
        self.assertEqual((job.get_status(refresh=False), job.result), (JobStatus.FINISHED, "shipped"))
        order.refresh_from_db()
        self.assertEqual(order.status, "shipped")


class ViewTests(TransactionTestCase):
    def test_the_view_enqueues_and_the_job_is_committed(self) -> None:
        response = self.client.post("/orders/", {"item": "pen"}, content_type="application/json")
        self.assertEqual(response.status_code, 201)
        job = Job.fetch(response.json()["job"], dsn=dsn())
        self.assertEqual((job.func_name, job.args, job.status), ("shop.tasks.ship", [response.json()["order"]],
                                                                 JobStatus.QUEUED))
