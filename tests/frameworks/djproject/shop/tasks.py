"""Job functions: the worker imports them by dotted path (shop.tasks.ship) and runs them with the ORM ready."""

from django.db import connection

from shop.models import Order


def ship(order_id: int) -> str:
    Order.objects.filter(id=order_id).update(status="shipped")
    return Order.objects.get(id=order_id).status


def backend_pid() -> int:
    """The server process of this job process's Django connection."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return int(cursor.fetchone()[0])
