"""Methodology: the hostile inputs that broke the API service on a real nats-server, each sent
raw (``nc.request`` with bytes, as any NATS client could) so that no client-side check hides
them: a 5,000-character name (it used to close the shared connection for good), inputs nested
deeper than the JSON depth limit (accepted, then silently lost by the engine), an output
nested 200 deep (the run stayed ``running``), a catastrophic ``pattern`` (it stalled the event
loop), an error reply with a huge message, and lists called in a loop (a consumer leaked per
call). Each checks the answer is a 4xx naming the limit, the connection is still up, and the
service still answers. Every wait is bounded."""

from __future__ import annotations

import json
import time
from typing import Any

import dagnats
from dagnats import protocol
from dagnats.protocol.limits import MAX_JSON_DEPTH
from dagnats.testing import DagnatsEnv

WAIT_S = 20.0


def nested(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


async def raw(env: DagnatsEnv, op: str, body: bytes | dict[str, Any]) -> tuple[int, Any]:
    """The status code (200 for a reply without error headers) and the decoded body."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    msg = await env.nc.request(f"{protocol.API_SUBJECT_PREFIX}.{op}", data, timeout=10.0)
    code = int((msg.headers or {}).get("Nats-Service-Error-Code", "200"))
    return code, json.loads(msg.data) if msg.data else None


async def still_serving(env: DagnatsEnv) -> None:
    assert env.nc.is_connected and not env.nc.is_closed
    code, _ = await raw(env, "workflow.list", {})
    assert code == 200


def _echo_flow(env: DagnatsEnv) -> dagnats.Workflow:
    worker = dagnats.Worker()

    @worker.task()
    async def echo(ctx: dagnats.TaskContext, value: Any) -> Any:
        return value

    @worker.task()
    async def deep(ctx: dagnats.TaskContext, value: Any) -> Any:
        return nested(200)

    env.add_worker(worker)
    wf = dagnats.Workflow("edges")
    wf.step("a", task="echo")
    return wf


async def test_a_name_of_5000_characters_is_400_and_the_connection_stays(
    dagnats_env: DagnatsEnv,
) -> None:
    long = "a" * 5000
    cases: list[tuple[str, dict[str, Any]]] = [
        ("workflow.get", {"name": long}),
        ("workflow.delete", {"name": long}),
        ("run.start", {"workflow": long}),
        ("run.get", {"run_id": long}),
        ("run.signal", {"run_id": "r1", "name": long}),
        ("event.publish", {"name": ".".join(["e"] * 2000)}),
        ("run.list", {"workflow": long}),  # a filter, never a key: fine
    ]
    for op, body in cases:
        code, reply = await raw(dagnats_env, op, body)
        if op == "run.list":
            assert code == 200, reply
            continue
        assert code == 400, (op, reply)
        assert "the limit is" in reply["error"]["message"], reply
        assert len(json.dumps(reply)) < 1000
    await still_serving(dagnats_env)


async def test_names_that_are_not_subject_tokens_are_400(dagnats_env: DagnatsEnv) -> None:
    # Dots are allowed (Go's "order.v2"), but only between parts; "=" spells a dot on the wire.
    for bad in ["a..b", ".a", "a.", "a=b", "a b", "*", ">", "a\r\nPUB x 1", "é", ""]:
        code, reply = await raw(dagnats_env, "workflow.get", {"name": bad})
        assert code == 400, (bad, reply)
    code, reply = await raw(dagnats_env, "workflow.get", {"name": "a.b"})
    assert code == 404, reply
    bodies: list[dict[str, Any]] = [{"name": 5}, {"name": ["a"]}, {"name": None}, {"name": {}}]
    for body in bodies:
        assert (await raw(dagnats_env, "workflow.get", body))[0] == 400
    await still_serving(dagnats_env)


async def test_input_deeper_than_the_limit_is_400_naming_it(dagnats_env: DagnatsEnv) -> None:
    await dagnats_env.client.register(_echo_flow(dagnats_env))
    for depth in (MAX_JSON_DEPTH, 197, 230, 300, 5000):
        deep = b"[" * depth + b"1" + b"]" * depth
        body = b'{"workflow": "edges", "input": ' + deep + b"}"
        code, reply = await raw(dagnats_env, "run.start", body)
        assert code == 400, (depth, reply)
        assert "MAX_JSON_DEPTH" in reply["error"]["message"]
    # Raw bytes too deep for Python's own parser: still a 400, not a RecursionError.
    code, reply = await raw(dagnats_env, "run.start", b"[" * 100_000 + b"]" * 100_000)
    assert code == 400 and "MAX_JSON_DEPTH" in reply["error"]["message"]
    code, reply = await raw(dagnats_env, "run.start", b"{not json")
    assert code == 400 and "not valid JSON" in reply["error"]["message"]
    # Python reads NaN and Infinity, JSON has neither: they used to end a run as null.
    for word in (b"NaN", b"Infinity", b"-Infinity", b"[1, NaN]"):
        code, reply = await raw(
            dagnats_env, "run.start", b'{"workflow": "edges", "input": ' + word + b"}"
        )
        assert code == 400 and "RFC 8259" in reply["error"]["message"], (word, reply)
    # Within the limit the run is accepted and its input arrives whole.
    value = nested(MAX_JSON_DEPTH - 4)
    code, reply = await raw(dagnats_env, "run.start", {"workflow": "edges", "input": value})
    assert code == 200, reply
    await dagnats_env.wait_workers_ready()
    run = dagnats_env.client.run(reply["run_id"])
    assert await run.result(timeout=WAIT_S) == value


async def test_deep_input_from_the_client_is_a_clear_error(dagnats_env: DagnatsEnv) -> None:
    await dagnats_env.client.register(_echo_flow(dagnats_env))
    try:
        await dagnats_env.client.start("edges", nested(5000))
    except ValueError as exc:
        assert "MAX_JSON_DEPTH" in str(exc)
    else:
        raise AssertionError("a 5000-deep input was accepted")


async def test_an_output_deeper_than_the_limit_fails_the_run(dagnats_env: DagnatsEnv) -> None:
    _echo_flow(dagnats_env)
    wf = dagnats.Workflow("deep-output")
    wf.step("a", task="deep")
    run = await dagnats_env.client.start(wf, None)
    await dagnats_env.wait_workers_ready()
    try:
        await run.result(timeout=WAIT_S)
    except dagnats.RunFailedError as exc:
        assert "MAX_JSON_DEPTH" in str(exc)
    else:
        raise AssertionError("a 200-deep output completed the run")


async def test_a_catastrophic_pattern_does_not_stall_the_service(dagnats_env: DagnatsEnv) -> None:
    wf = dagnats.Workflow("redos", input_schema={"type": "string", "pattern": "^(a+)+$"})
    wf.step("a", task="echo")
    await dagnats_env.client.register(wf)
    started = time.monotonic()
    code, reply = await raw(
        dagnats_env, "run.start", {"workflow": "redos", "input": "a" * 40 + "!"}
    )
    assert time.monotonic() - started < 1.0
    assert code == 422 and "does not match" in reply["error"]["message"]


async def test_an_error_with_a_huge_message_is_answered_bounded(dagnats_env: DagnatsEnv) -> None:
    # A definition whose problems repeat large values: the reply must fit one NATS message.
    steps = [{"id": "s" * 100_000 + str(i), "task": "t" * 100_000} for i in range(4)]
    body = {"definition": {"name": "big", "steps": steps}}
    code, reply = await raw(dagnats_env, "workflow.register", body)
    assert code == 400
    assert len(json.dumps(reply)) <= 8192
    await still_serving(dagnats_env)


async def _consumers(env: DagnatsEnv, bucket: str) -> int:
    info = await env.nc.jetstream().stream_info(f"KV_{bucket}")
    return int(info.state.consumer_count)


async def test_lists_leave_no_consumer_behind(dagnats_env: DagnatsEnv) -> None:
    await dagnats_env.client.register(_echo_flow(dagnats_env))
    defs_before = await _consumers(dagnats_env, protocol.KV_DEFS)
    runs_before = await _consumers(dagnats_env, protocol.KV_RUNS)
    for _ in range(30):
        assert (await raw(dagnats_env, "workflow.list", {}))[0] == 200
        assert (await raw(dagnats_env, "run.list", {"status": "completed"}))[0] == 200
    assert await _consumers(dagnats_env, protocol.KV_DEFS) == defs_before
    assert await _consumers(dagnats_env, protocol.KV_RUNS) == runs_before


async def test_wrong_types_are_400(dagnats_env: DagnatsEnv) -> None:
    await dagnats_env.client.register(_echo_flow(dagnats_env))
    cases: list[tuple[str, bytes | dict[str, Any]]] = [
        ("run.list", {"limit": "x"}),
        ("run.list", {"limit": [1]}),
        ("run.list", {"status": 3}),
        ("workflow.get", {"name": "edges", "revision": "x"}),
        ("workflow.get", {"name": "edges", "revision": -1}),
        ("run.start", {"workflow": "edges", "revision": {"a": 1}}),
        ("run.start", {"workflow": "edges", "run_id": 7}),
        ("run.cancel", {"run_id": "r", "reason": ["x"]}),
        ("workflow.register", {"definition": 3}),
        ("workflow.register", {"definition": "{"}),
        ("run.list", b"[1, 2]"),
    ]
    for op, body in cases:
        code, reply = await raw(dagnats_env, op, body)
        assert 400 <= code < 500, (op, body, reply)


async def test_a_run_reference_that_is_not_a_key_is_400_everywhere(dagnats_env: DagnatsEnv) -> None:
    # Found by the API fuzz: run.resolve looked the reference up as a scheduled run (a KV
    # key) before checking it, and ':' answered 500.
    for op in ("run.resolve", "run.get"):
        code, reply = await raw(dagnats_env, op, {"run_id": ":"})
        assert code == 400, (op, reply)
        assert "run_id" in reply["error"]["message"]
