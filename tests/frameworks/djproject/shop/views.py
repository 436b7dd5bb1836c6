import json

from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from pgqueue.contrib.django import Queue
from shop import tasks
from shop.models import Order

shipping = Queue("shop")  # made at import: its database is looked up when used


@csrf_exempt
def place_order(request: HttpRequest) -> JsonResponse:
    """Saves the order and enqueues its shipping in one transaction; an item "crash" fails after both."""
    item = json.loads(request.body)["item"]
    with transaction.atomic():
        order = Order.objects.create(item=item)
        job = shipping.enqueue(tasks.ship, order.id)
        if item == "crash":
            raise RuntimeError("the payment service is down")
    return JsonResponse({"order": order.id, "job": job.id}, status=201)
