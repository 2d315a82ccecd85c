"""The nats-py types and errors the seam hands out, under the one import path allowed.

Roles (engine, worker, client, server) receive connections, messages, KV handles and
subscriptions from this package and annotate them with these names; they never import
``nats`` themselves (ruff TID251 enforces it). The roles catch none of nats-py's errors:
the seam translates them (absent keys and messages are ``None``, an empty bucket ``[]``, a
lost CAS ``None``, a timeout the builtin ``TimeoutError``, a refused connect
``NatsUnavailableError``); the error classes are exported for the seam's own tests.
Re-exporting, rather than wrapping, keeps the hot path free of an extra call per message
while the import graph stays honest.
"""

from __future__ import annotations

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import ConnectionClosedError, NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    PubAck,
    RetentionPolicy,
    StreamConfig,
)
from nats.js.errors import (
    BucketNotFoundError,
    KeyNotFoundError,
    KeyWrongLastSequenceError,
    NoKeysError,
    NoStreamResponseError,
    NotFoundError,
    ObjectNotFoundError,
)
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue
from nats.micro import add_service
from nats.micro.request import Request
from nats.micro.service import Service
from nats.nuid import NUID

__all__ = [
    "KV_DEL",
    "KV_PURGE",
    "NUID",
    "AckPolicy",
    "BucketNotFoundError",
    "ConnectionClosedError",
    "ConsumerConfig",
    "DeliverPolicy",
    "JetStreamContext",
    "KeyNotFoundError",
    "KeyValue",
    "KeyWrongLastSequenceError",
    "Msg",
    "NatsClient",
    "NatsTimeoutError",
    "NoKeysError",
    "NoRespondersError",
    "NoStreamResponseError",
    "NotFoundError",
    "ObjectNotFoundError",
    "PubAck",
    "Request",
    "RetentionPolicy",
    "Service",
    "StreamConfig",
    "Subscription",
    "add_service",
]
