"""Answers each Request with a Reply carrying twice its value."""

import mycelium_native as mn
from mycelium_native.messages import Reply, Request


@mn.subscribe(Request)
def on_request(request):
    mn.publish(Reply(id=request.id, value=request.value * 2, note="doubled in Python"))
