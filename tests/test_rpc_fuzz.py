"""A bounded fuzz run over the real socket: every protocol method, every kind of bad frame.

Seeded random (reproducible: the seed is in the test) generates a few thousand frames:
- for every method in ``common.protocol.METHODS`` (iterated, so methods added later are
  fuzzed too), params with at least one field poisoned by a value no field may hold
  (NUL or a lone surrogate in text, integers outside SQLite's 64 bits, the wrong JSON type)
  and the other fields filled at random, so even mutating methods must refuse the call;
- frame-level garbage: binary, truncated JSON, deep nesting, 5,000-digit integers, boolean,
  float, object and surrogate ids, surrogate and NUL method names, NaN, params of the
  wrong type, unknown methods;
- valid calls of the read-only methods with extreme in-range values.

Each frame must be answered (the daemon never leaves a caller waiting), poisoned ones with
a -32700, -32600 or -32602 error; never an internal error; another client keeps working;
the database dump is the same afterwards; and no traceback reaches the log.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import random
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from clientlink.common.protocol import INT_MAX, INT_MIN, MAX_FRAME_BYTES, METHODS, ErrorCode

SEED = 20240808
FRAMES = 3000
REFUSED = {ErrorCode.PARSE_ERROR, ErrorCode.INVALID_REQUEST, ErrorCode.INVALID_PARAMS}

# Values no params field accepts, whatever its type (text, integer, bool, enum, list, object).
POISONS: list[Any] = [
    "a\x00b",
    "\x00",
    "\ud800",
    "x\udfffy",
    2**63,
    -(2**63) - 1,
    10**30,
    -(10**38),
    ["ok", "\x00"],
    [1, 2**64],
    ["\udc80"],
    {"\x00": 1},
    {"k": "\ud800"},
    [[[[[[["deep"]]]]]]],
]

# Read-only calls with extreme values that are in range: they must answer, never fail inside.
READ_CALLS: list[tuple[str, dict[str, Any]]] = [
    ("daemon.status", {}),
    ("providers.list", {}),
    ("templates.list", {}),
    ("clients.list", {}),
    ("clients.list", {"offset": INT_MAX, "limit": 1000}),
    ("clients.list", {"filter": {"text": "%_\\'\"; DROP TABLE clients; --"}}),
    ("clients.list", {"filter": {"text": "\u202e\U0001f600\u00e9", "active": None}}),
    ("clients.list", {"filter": {"status": ["connected", "error"], "provider": "nope"}}),
    ("clients.get", {"client_id": INT_MAX}),
    ("clients.get", {"client_id": INT_MIN}),
    ("clients.get", {"client_id": 0}),
    ("clients.history", {"client_id": INT_MAX, "limit": 1000}),
    ("jobs.list", {"limit": 1000}),
    ("jobs.get", {"job_id": INT_MIN, "items": True, "offset": INT_MAX}),
    # No such job: a clear error, nothing changed.
    ("jobs.add_sign_in", {"job_id": INT_MAX, "grant_id": INT_MIN}),
    ("jobs.skip_sign_in", {"job_id": INT_MIN, "business": "\u202eACME01%_"}),
    ("notifications.list", {"unread_only": True, "limit": 1000}),
    ("invites.list", {"client_id": INT_MIN}),
    # No such clients (skipped, said why) or no such template: nothing sent, nothing changed.
    ("invites.preview", {"client_ids": [INT_MAX, INT_MIN, 0], "template_id": "default-sms"}),
    ("invites.preview", {"client_ids": [1], "template_id": "\u202e%_", "sample_client_id": 0}),
    ("audit.list", {"client_id": INT_MAX, "limit": 10_000}),
    ("audit.list", {"actor": "%_\\'; --", "offset": INT_MAX, "limit": 1}),
    ("clients.list", {"filter": {"mine": True, "text": "\u202e"}}),
    ("staff.list", {"include_left": False}),
    # No such user or person: a clear error, nothing changed.
    ("staff.add", {"login": "\u202eno_such_login", "role": "admin"}),
    ("staff.update", {"login": "ghost", "role": "read-only", "email": ""}),
    ("audit.export", {"path": "relative.csv", "actor": "x"}),
    ("auth.status", {"session_id": "\U0001f600" * 50}),
    ("banks.connections", {"client_id": INT_MAX}),
    ("clients.import_file", {"path": "/"}),
    ("clients.import_file", {"path": "/dev/null", "verdict": "refuse"}),
    ("clients.import_file", {"path": "/no/such.csv", "offset": INT_MAX, "limit": 1000}),
    ("clients.import_file", {"path": "~/../../etc/../x.xlsx", "confirm": True, "digest": "0"}),
    # Nobody by that login: a clear error, nothing changed (a dry run changes nothing anyway).
    ("staff.leave", {"login": "\u202e%_' OR 1=1 --"}),
    ("staff.leave", {"login": "x" * 64, "dry_run": True}),
    ("staff.preferences", {}),
    # Single-user mode keeps no staff preferences: a clear refusal, nothing changed.
    ("staff.set_preferences", {"agent": "all", "email_alerts": False}),
    ("alerts.list", {"limit": 1000}),
    # No such grant, tenant or client: a clear error, nothing attached.
    ("clients.attach", {"grant_id": INT_MAX, "tenant_id": "\u202e%_' --", "client_id": INT_MIN}),
    ("clients.import", {"grant_id": INT_MIN, "as_new": ["\u202e", "x" * 200]}),
]


def dump_database(path: Path) -> list[str]:
    """Every row and schema statement of the database, as the daemon has committed it."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return list(connection.iterdump())
    finally:
        connection.close()


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def random_value(rng: random.Random, depth: int = 0) -> Any:
    """Any JSON value (or a poison), as a careless or hostile client might send."""
    choice = rng.randrange(12)
    if choice == 0:
        return rng.choice(POISONS)
    if choice == 1:
        return rng.randint(-(2**70), 2**70)
    if choice == 2:
        return rng.choice([0, -1, 1, INT_MAX, INT_MIN, 10**18])
    if choice == 3:
        return rng.choice([True, False, None])
    if choice == 4:
        return rng.choice([0.5, -1e308, 1e-308, 3.0])
    if choice == 5:
        return "".join(chr(rng.randrange(0x20, 0x3000)) for _ in range(rng.randrange(0, 30)))
    if choice == 6:
        return rng.choice(["", "connected", "xero", "email", "reauthorise", "~", "/", "..", "%s"])
    if choice == 7:
        return "x" * rng.choice([199, 201, 4097, 20_001])
    if choice in (8, 9) and depth < 3:
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(0, 4))]
    if choice in (10, 11) and depth < 3:
        return {f"k{n}": random_value(rng, depth + 1) for n in range(rng.randrange(0, 3))}
    return rng.choice(POISONS)


def poisoned_params(rng: random.Random, method: str) -> dict[str, Any]:
    """Params for ``method`` that its model must refuse: one field holds a poison."""
    fields = list(METHODS[method].params.model_fields)
    params = {name: random_value(rng) for name in fields if rng.random() < 0.5}
    if fields and rng.random() < 0.85:
        params[rng.choice(fields)] = rng.choice(POISONS)
    else:
        params[rng.choice(["bogus", "\x00", "id", "params"])] = random_value(rng)
    return params


def frame_bytes(message: Any) -> bytes:
    return json.dumps(message).encode() + b"\n"


def garbage_frame(rng: random.Random, request_id: int) -> tuple[bytes, bool]:
    """A frame that is not a usable request; returns it and whether the id can be echoed."""
    method = rng.choice(list(METHODS))
    kind = rng.randrange(16)
    if kind == 0:
        raw = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
        return (raw.replace(b"\n", b" ").strip() or b"\xff") + b"\n", False
    if kind == 1:
        whole = frame_bytes({"jsonrpc": "2.0", "id": request_id, "method": method})
        return whole[: rng.randrange(1, len(whole) - 1)] + b"\n", False
    if kind == 2:
        depth = rng.choice([33, 100, 990, 5000])
        return b'{"jsonrpc":"2.0","id":1,"method":"daemon.status","params":{"a":' + (
            b"[" * depth + b"]" * depth
        ) + b"}}\n", False
    if kind == 3:
        return f'{{"jsonrpc":"2.0","id":{"7" * 5000},"method":"{method}"}}\n'.encode(), False
    if kind == 4:
        digits = "9" * rng.choice([4301, 5000, 41])
        body = f'{{"jsonrpc":"2.0","id":1,"method":"{method}","params":{{"n":{digits}}}}}'
        return body.encode() + b"\n", False
    if kind == 5:
        bad_id = rng.choice([True, False, 1.5, [1], {"a": 1}, "\ud800", "x" * 300, 2**64])
        return frame_bytes({"jsonrpc": "2.0", "id": bad_id, "method": method}), False
    if kind == 6:
        bad_method = rng.choice(["\ud800", "clients.list\x00", "", "x" * 1000, "event"])
        return frame_bytes({"jsonrpc": "2.0", "id": request_id, "method": bad_method}), True
    if kind == 7:
        return frame_bytes({"jsonrpc": "2.0", "id": request_id, "method": 5}), True
    if kind == 8:
        return f'{{"jsonrpc":"2.0","id":{request_id},"method":"{method}","params":{{'.encode() + (
            b'"a":NaN}}\n'
        ), False
    if kind == 9:
        params = rng.choice([[], [1, 2], "text", 7, True])
        message = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
        return frame_bytes(message), True
    if kind == 10:
        message = {"jsonrpc": rng.choice(["1.0", 2, None]), "id": request_id, "method": method}
        return frame_bytes(message), True
    if kind == 11:
        return rng.choice([b"[]\n", b"null\n", b'"text"\n', b"12\n", b"[{}]\n"]), False
    if kind == 12:
        return b'{"jsonrpc":"2.0","id":1,"method":"\\ud800"}\n', False
    if kind == 13:
        return f'{{"jsonrpc":"2.0","id":"\\udfff","method":"{method}"}}\n'.encode(), False
    if kind == 14:
        message = {"jsonrpc": "2.0", "id": request_id, "method": f"{method}.nope"}
        return frame_bytes(message), True
    return b'\xef\xbb\xbf{"jsonrpc":"2.0","id":1,"method":"daemon.status"}\n', False


async def answer_to(reader: asyncio.StreamReader) -> dict[str, Any]:
    """The next answer on the connection (events pushed in between are skipped)."""
    while True:
        line = await asyncio.wait_for(reader.readline(), 10)
        assert line, "the daemon closed the fuzz connection"
        message = json.loads(line)
        if message.get("method") != "event":
            return message


@pytest.mark.timeout(180)
async def test_fuzzed_frames_are_all_answered_and_change_nothing(practice, caplog):
    caplog.set_level(logging.INFO)
    rng = random.Random(SEED)
    # What seeding left in memory is written first (digests, the egress count), so the
    # dumps compare what the fuzzed frames did and nothing else.
    await practice.daemon.notifier.flush()
    await practice.daemon.save_usage()
    database = practice.paths.database
    before = dump_database(database)
    rss_before = rss_mb()
    watcher = await practice.connect("well-behaved")
    total = (await watcher.call_raw("clients.list", {"limit": 1000}))["total"]

    reader, writer = await asyncio.open_unix_connection(
        str(practice.socket_path), limit=MAX_FRAME_BYTES + 1
    )
    writer.write(
        frame_bytes(
            {
                "jsonrpc": "2.0",
                "id": 0,
                "method": "daemon.hello",
                "params": {"protocol": 1, "client": "fuzz"},
            }
        )
    )
    assert "result" in await answer_to(reader)

    methods = list(METHODS)
    sent = errors = results = 0
    for number in range(1, FRAMES + 1):
        request_id: Any = number if rng.random() < 0.7 else f"req-{number}"
        roll = rng.random()
        if roll < 0.55:
            method = methods[number % len(methods)]  # every method, in turn
            message = {
                "jsonrpc": "2.0",
                "id": request_id,
                "method": method,
                "params": poisoned_params(rng, method),
            }
            payload, echoed, must_refuse = frame_bytes(message), True, True
        elif roll < 0.85:
            payload, echoed = garbage_frame(rng, number)
            request_id, must_refuse = number, True
        else:
            method, params = rng.choice(READ_CALLS)
            message = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
            payload, echoed, must_refuse = frame_bytes(message), True, False
        writer.write(payload)
        await writer.drain()
        sent += 1
        try:
            answer = await answer_to(reader)
        except TimeoutError:
            raise AssertionError(f"frame {number} was never answered: {payload[:300]!r}") from None
        assert answer.get("jsonrpc") == "2.0", (payload[:200], answer)
        if "error" in answer:
            errors += 1
            code = answer["error"]["code"]
            assert code != ErrorCode.INTERNAL_ERROR, (payload[:200], answer)
            if must_refuse:
                assert code in REFUSED or code == ErrorCode.METHOD_NOT_FOUND, (
                    payload[:200],
                    answer,
                )
            assert answer["error"]["message"]
        else:
            results += 1
            assert not must_refuse, (payload[:200], answer)
        if echoed:
            assert answer["id"] == request_id, (payload[:200], answer)
        if number % 200 == 0:
            assert (await watcher.call_raw("clients.list", {"limit": 1000}))["total"] == total
    writer.close()

    assert (await watcher.call_raw("daemon.status"))["version"]
    await practice.daemon.notifier.flush()
    after = dump_database(database)
    gc.collect()
    await asyncio.sleep(0)
    rss_after = rss_mb()
    changed = sorted(set(before) ^ set(after))
    print(
        f"\nfuzz: {sent} frames sent, {errors} errors returned, {results} results, "
        f"{len(changed)} changed dump lines, RSS {rss_before:.0f} -> {rss_after:.0f} MB"
    )
    assert after == before, changed[:10]
    tracebacks = [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    assert not tracebacks, [r.getMessage() for r in tracebacks[:5]]
    assert "exception was never retrieved" not in caplog.text
    assert "Traceback" not in caplog.text


# The frames the issue saw go unanswered or throw, one by one, each with the answer it must get.
ISSUE_FRAMES: list[tuple[bytes, int, Any, str]] = [
    (
        b'{"jsonrpc":"2.0","id":1,"method":"daemon.status","params":{"a":'
        + b"[" * 990
        + b"]" * 990
        + b"}}\n",
        ErrorCode.PARSE_ERROR,
        None,
        "nested more than 32",
    ),
    (
        b'{"jsonrpc":"2.0","id":1,"method":"clients.get","params":{"client_id":'
        + b"7" * 5000
        + b"}}\n",
        ErrorCode.PARSE_ERROR,
        None,
        "5000 digits",
    ),
    (b'{"jsonrpc":"2.0","id":1,"method":"\\ud800"}\n', ErrorCode.INVALID_REQUEST, 1, "surrogate"),
    (
        b'{"jsonrpc":"2.0","id":"\\ud800","method":"daemon.status"}\n',
        ErrorCode.INVALID_REQUEST,
        None,
        "surrogate",
    ),
    (
        b'{"jsonrpc":"2.0","id":true,"method":"daemon.status"}\n',
        ErrorCode.INVALID_REQUEST,
        None,
        '"id" must be a string or an integer',
    ),
    (
        frame_bytes(
            {"jsonrpc": "2.0", "id": 2, "method": "clients.get", "params": {"client_id": 2**63}}
        ),
        ErrorCode.INVALID_PARAMS,
        2,
        "client_id: is out of range",
    ),
    (
        frame_bytes(
            {
                "jsonrpc": "2.0",
                "id": 3,
                "method": "clients.list",
                "params": {"filter": {"text": "a\x00"}},
            }
        ),
        ErrorCode.INVALID_PARAMS,
        3,
        "filter.text: must not contain a NUL",
    ),
    (
        frame_bytes(
            {
                "jsonrpc": "2.0",
                "id": 4,
                "method": "clients.export",
                "params": {"path": "/tmp/clients\x00.csv"},
            }
        ),
        ErrorCode.INVALID_PARAMS,
        4,
        "path: must not contain a NUL",
    ),
    (
        frame_bytes(
            {
                "jsonrpc": "2.0",
                "id": 5,
                "method": "clients.export",
                "params": {"path": "/tmp/\ud800.csv"},
            }
        ),
        ErrorCode.INVALID_PARAMS,
        5,
        "path: must be valid Unicode",
    ),
    (
        frame_bytes(
            {
                "jsonrpc": "2.0",
                "id": 7,
                "method": "clients.import_file",
                "params": {"path": "/tmp/clients\x00.csv", "confirm": True},
            }
        ),
        ErrorCode.INVALID_PARAMS,
        7,
        "path: must not contain a NUL",
    ),
    (
        frame_bytes(
            {
                "jsonrpc": "2.0",
                "id": 6,
                "method": "jobs.start",
                "params": {"kind": "reimport", "client_ids": [1, -(2**64)]},
            }
        ),
        ErrorCode.INVALID_PARAMS,
        6,
        "client_ids: [1] is out of range",
    ),
    (
        frame_bytes(
            {
                "jsonrpc": "2.0",
                "id": 7,
                "method": "jobs.skip_sign_in",
                "params": {"job_id": 1, "business": "A" * 65},
            }
        ),
        ErrorCode.INVALID_PARAMS,
        7,
        "business:",
    ),
]


@pytest.mark.parametrize("payload,code,request_id,says", ISSUE_FRAMES)
async def test_each_frame_the_issue_found_gets_a_clear_error(
    daemon, caplog, payload, code, request_id, says
):
    reader, writer = await asyncio.open_unix_connection(
        str(daemon.socket_path), limit=MAX_FRAME_BYTES + 1
    )
    hello = {"jsonrpc": "2.0", "id": 0, "method": "daemon.hello", "params": {"protocol": 1}}
    writer.write(frame_bytes(hello))
    assert "result" in await answer_to(reader)
    writer.write(payload)
    answer = await answer_to(reader)
    assert answer["error"]["code"] == code
    assert answer["id"] == request_id
    assert says in answer["error"]["message"]
    writer.write(frame_bytes({"jsonrpc": "2.0", "id": 9, "method": "daemon.status"}))
    assert "result" in await answer_to(reader)  # the connection goes on
    writer.close()
    assert not [r for r in caplog.records if r.exc_info]
