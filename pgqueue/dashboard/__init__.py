"""pgqueue's web dashboard: queues, jobs, workers, and the actions on them, in a browser.

Optional: ``pip install 'pgqueue[dashboard]'`` (Starlette, Jinja2, uvicorn). Run it with
``pgqueue dashboard``, or serve :func:`create_app` with any ASGI server, or mount it in your own app.
docs/dashboard.md says how, and what it guarantees about security and cost."""

from __future__ import annotations

from .app import create_app
from .data import Limits

__all__ = ["Limits", "create_app"]
