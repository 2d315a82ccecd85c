"""A worker that is not Python-specific: it speaks only HTTP to ``dagnats serve``'s ``/v1``.

Run with: ``python -m examples.http_worker.http_worker http://127.0.0.1:8080`` (add
``DAGNATS_HTTP_TOKEN`` when the server asks for a token), with ``dagnats serve`` and
``dagnats worker examples.http_worker.workflow:worker`` running.

Run it from the repository root: the ``examples`` package is not installed with dagnats.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from typing import Any

import httpx

POLL_WAIT_S = 20


def count_words(text: Any) -> dict[str, int]:
    if not isinstance(text, str):
        raise TypeError(f"count_words needs text, got {type(text).__name__}")
    return dict(Counter(text.split()).most_common(3))


def serve(base_url: str, *, max_tasks: int | None = None, token: str | None = None) -> int:
    """Serve ``count_words`` until ``max_tasks`` are done (None: for ever); returns the count."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    done = 0
    with httpx.Client(base_url=base_url, headers=headers, timeout=POLL_WAIT_S + 10) as http:
        hello = {"name": "words-over-http", "tasks": [{"task": "count_words"}]}
        worker_id = http.post("/v1/workers", json=hello).raise_for_status().json()["worker_id"]
        try:
            while max_tasks is None or done < max_tasks:
                poll = http.post(f"/v1/workers/{worker_id}/poll", json={"wait_s": POLL_WAIT_S})
                for task in poll.raise_for_status().json()["tasks"]:
                    url = f"/v1/tasks/{task['task_id']}"
                    try:
                        result = {"output": count_words(task["input"])}
                        http.post(f"{url}/complete", json=result).raise_for_status()
                    except TypeError as exc:  # bad input: retrying cannot help
                        failure = {"error": str(exc), "error_type": "BadInput", "retryable": False}
                        http.post(f"{url}/fail", json=failure).raise_for_status()
                    done += 1
        finally:
            http.delete(f"/v1/workers/{worker_id}")  # give back anything still held
    return done


if __name__ == "__main__":
    serve(
        sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080",
        token=os.environ.get("DAGNATS_HTTP_TOKEN"),
    )
