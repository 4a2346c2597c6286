"""Importing clients from a spreadsheet: every row checked, a verdict each, then all or nothing.

A row names a client (name, ABN, software, the software's id for it, email, mobile). Each is
checked with the rules clientlink uses everywhere: the ABN's ATO checksum
(:mod:`clientlink.common.abn`), the email and the mobile as a client's contact details are
(:mod:`clientlink.daemon.contacts`; a mobile must be able to take an SMS), and the software
must name a provider configured in config.toml. Then each row gets a verdict:

- ``add``: a new client, not connected yet, bound at its first sign-in by the software's id;
- ``match``: a client the practice has already (same software and id, or same ABN; the reason
  says which). Blank email, mobile or ABN are filled from the row; a different value the
  client has is kept, and the reason says so;
- ``refuse``: the reason says why (several reasons are joined). A row repeating an earlier
  row (same software and id, or same ABN, or the same existing client) is refused, naming it.

The verdicts are worked out in a scratch SQLite file of the import's own (unnamed once open,
so a killed daemon leaves nothing), a bounded number of rows at a time: a 100,000-row file
costs the daemon a few megabytes, whatever it holds. Writing happens only on confirmation,
for the exact file previewed (its digest), in one transaction with one audit entry.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clientlink.common import protocol as p
from clientlink.common.abn import abn_digits, abn_problem
from clientlink.common.protocol import ClientsImported, ErrorCode
from clientlink.common.wording import agree, plural
from clientlink.daemon.clock import Clock
from clientlink.daemon.contacts import is_mobile, normalise_email, normalise_phone
from clientlink.daemon.events import EventBus
from clientlink.daemon.providers import ProviderDefinition
from clientlink.daemon.rpc_errors import RpcFailure
from clientlink.daemon.spreadsheet import FIELD_LABELS, SheetRow, heading_key, open_spreadsheet
from clientlink.daemon.store import ClientRow, Store

CHUNK = 500
EVENT_IDS = 1000
"""At most this many ids of each kind go in the ``clients.imported`` event (``more`` counts
the rest): a 100,000-row import must not become one enormous frame."""

KIND_NAMES = {
    "xero": ("Xero",),
    "quickbooks": ("QuickBooks Online", "QuickBooks", "QBO", "Intuit QuickBooks"),
    "bgl": ("BGL", "BGL 360", "BGL Simple Fund 360", "Simple Fund 360", "SF360"),
    "class": ("Class", "Class Super"),
    "myob": ("MYOB", "MYOB Business", "MYOB AccountRight"),
}
"""What people write in a Software column for each kind of provider, besides the provider's
name in config.toml and its display name."""


class SoftwareNames:
    """The configured providers by every name people give them, case and spaces ignored."""

    def __init__(self, definitions: dict[str, ProviderDefinition]) -> None:
        self.definitions = definitions
        self._by_key: dict[str, set[str]] = {}
        for name, definition in definitions.items():
            words = (name, definition.display_name, definition.kind)
            for word in (*words, *KIND_NAMES.get(definition.kind, ())):
                self._by_key.setdefault(heading_key(word), set()).add(name)

    def resolve(self, text: str) -> tuple[str | None, str | None]:
        """(the provider's name, None), or (None, why the text names none)."""
        if not text:
            return None, "the Software cell is empty"
        names = self._by_key.get(heading_key(text), set())
        if len(names) == 1:
            return next(iter(names)), None
        if names:
            return None, (
                f"{text!r} names {len(names)} configured providers ({', '.join(sorted(names))}); "
                "write the one you mean"
            )
        known = ", ".join(d.display_name for _, d in sorted(self.definitions.items()))
        return None, (
            f"{text!r} is not accounting software clientlink is set up for "
            f"(configured: {known or 'none'})"
        )

    def display(self, provider: str) -> str:
        return self.definitions[provider].display_name


@dataclass
class Verdict:
    """A row's verdict, as the plan keeps it."""

    row: int
    verdict: str
    name: str
    software: str
    provider: str | None = None
    tenant_id: str | None = None
    abn: str | None = None
    email: str | None = None
    phone: str | None = None
    client_id: int | None = None
    reason: str | None = None
    fills: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def to_protocol(self) -> p.ImportRow:
        return p.ImportRow(
            row=self.row,
            verdict=self.verdict,
            name=self.name,
            software=self.software,
            provider=self.provider,
            tenant_id=self.tenant_id,
            abn=self.abn,
            email=self.email,
            phone=self.phone,
            client_id=self.client_id,
            reason=self.reason,
            fills=sorted(self.fills),
        )


def check_row(row: SheetRow, names: SoftwareNames) -> Verdict:
    """A row's own checks (the verdict is ``refuse`` with its problems, or undecided)."""
    values = row.values
    verdict = Verdict(row=row.number, verdict="", name=values["name"], software=values["software"])
    problems = verdict.problems
    if row.problem:
        problems.append(row.problem)
    for column, text in values.items():
        if "\x00" in text:
            problems.append(f"the {FIELD_LABELS[column]} cell holds a NUL character")
    if not verdict.name:
        problems.append("the Name cell is empty")
    verdict.provider, problem = names.resolve(verdict.software)
    if problem:
        problems.append(problem)
    verdict.tenant_id = values["software_id"] or None
    if values["abn"]:
        problem = abn_problem(values["abn"])
        if problem:
            problems.append(f"{values['abn']!r}: {problem}")
        else:
            verdict.abn = abn_digits(values["abn"])
    if values["email"]:
        try:
            verdict.email = normalise_email(values["email"])
        except RpcFailure as exc:
            problems.append(exc.message)
    if values["mobile"]:
        try:
            verdict.phone = normalise_phone(values["mobile"])
        except RpcFailure as exc:
            problems.append(exc.message)
        else:
            if not is_mobile(verdict.phone):
                problems.append(
                    f"{values['mobile']!r} is not a mobile number: invitations go by SMS "
                    "(an Australian mobile looks like 0491 570 156)"
                )
                verdict.phone = None
    return verdict


class Plan:
    """The import's scratch database: keys seen so far and every row's verdict."""

    def __init__(self, folder: Path) -> None:
        descriptor, name = tempfile.mkstemp(prefix=".import-", suffix=".db", dir=folder)
        os.close(descriptor)
        try:
            self._db = sqlite3.connect(name, check_same_thread=False, isolation_level=None)
            # No journal, one connection: nothing else is ever named after the file, so it
            # can be unlinked at once and vanishes with the process, however it ends.
            self._db.execute("PRAGMA journal_mode = OFF")
            self._db.execute("PRAGMA locking_mode = EXCLUSIVE")
            self._db.execute("PRAGMA synchronous = OFF")
            self._db.execute("PRAGMA cache_size = -2048")
            self._db.executescript(
                """
                CREATE TABLE seen (key TEXT PRIMARY KEY, row INTEGER NOT NULL) WITHOUT ROWID;
                CREATE TABLE plan (row INTEGER PRIMARY KEY, verdict TEXT NOT NULL,
                                   body TEXT NOT NULL);
                CREATE INDEX plan_by_verdict ON plan (verdict, row);
                """
            )
        finally:
            Path(name).unlink(missing_ok=True)

    def close(self) -> None:
        self._db.close()

    def first_seen(self, key: str, row: int) -> int | None:
        """The row that had ``key`` before ``row`` (None: it is new, and now recorded)."""
        cursor = self._db.execute("INSERT OR IGNORE INTO seen (key, row) VALUES (?, ?)", (key, row))
        if cursor.rowcount:
            return None
        found = self._db.execute("SELECT row FROM seen WHERE key = ?", (key,)).fetchone()
        return int(found[0])

    def add(self, verdicts: list[Verdict]) -> None:
        self._db.execute("BEGIN")
        self._db.executemany(
            "INSERT INTO plan (row, verdict, body) VALUES (?, ?, ?)",
            [(v.row, v.verdict, json.dumps(_body(v))) for v in verdicts],
        )
        self._db.execute("COMMIT")

    def counts(self) -> dict[str, int]:
        counts = {"add": 0, "match": 0, "refuse": 0}
        for verdict, count in self._db.execute(
            "SELECT verdict, count(*) FROM plan GROUP BY verdict"
        ):
            counts[verdict] = count
        return counts

    def page(self, verdict: str | None, offset: int, limit: int) -> list[Verdict]:
        if verdict is None:
            rows = self._db.execute(
                "SELECT body FROM plan ORDER BY row LIMIT ? OFFSET ?", (limit, offset)
            )
        else:
            rows = self._db.execute(
                "SELECT body FROM plan WHERE verdict = ? ORDER BY row LIMIT ? OFFSET ?",
                (verdict, limit, offset),
            )
        return [Verdict(**json.loads(body)) for (body,) in rows]

    def after(self, verdict: str, row: int, limit: int) -> list[Verdict]:
        """The next ``limit`` verdicts of one kind after ``row``."""
        rows = self._db.execute(
            "SELECT body FROM plan WHERE verdict = ? AND row > ? ORDER BY row LIMIT ?",
            (verdict, row, limit),
        )
        return [Verdict(**json.loads(body)) for (body,) in rows]


def _body(verdict: Verdict) -> dict[str, Any]:
    body = dict(vars(verdict))
    body["problems"] = []
    return body


@dataclass
class ImportOutcome:
    digest: str
    kind: str
    columns: dict[str, str]
    counts: dict[str, int]
    filtered: int
    rows: list[Verdict]
    imported: bool = False
    created: int = 0
    updated: int = 0


class ClientImporter:
    """Previews and imports spreadsheets of clients (``clients.import_file``)."""

    def __init__(
        self,
        store: Store,
        definitions: dict[str, ProviderDefinition],
        events: EventBus,
        clock: Clock,
        scratch_dir: Path,
    ) -> None:
        self._store = store
        self._names = SoftwareNames(definitions)
        self._events = events
        self._clock = clock
        self._scratch_dir = scratch_dir

    async def run(
        self,
        path: Path,
        may_read: Any,
        *,
        confirm: bool,
        digest: str | None,
        skip_refused: bool,
        verdict: str | None,
        offset: int,
        limit: int,
        actor: str,
    ) -> ImportOutcome:
        """Preview ``path`` (every row's verdict, a page of them) and, with ``confirm``,
        import it: only the file whose ``digest`` the preview gave, all or nothing."""
        if confirm and not digest:
            raise RpcFailure(
                ErrorCode.INVALID_PARAMS,
                "preview the file first: importing needs the digest the preview answered",
            )
        self._scratch_dir.mkdir(parents=True, exist_ok=True)
        sheet = await asyncio.to_thread(open_spreadsheet, path, self._scratch_dir, may_read)
        plan: Plan | None = None
        try:
            if confirm and digest != sheet.digest:
                raise RpcFailure(
                    ErrorCode.CONFLICT,
                    f"{path} changed since it was previewed; preview it again and check the "
                    "rows before importing. Nothing was imported.",
                )
            plan = await asyncio.to_thread(Plan, self._scratch_dir)
            await self._decide_all(sheet.rows(), plan)
            counts = await asyncio.to_thread(plan.counts)
            outcome = ImportOutcome(
                digest=sheet.digest,
                kind=sheet.kind,
                columns=dict(sheet.columns),
                counts=counts,
                filtered=counts[verdict] if verdict else sum(counts.values()),
                rows=await asyncio.to_thread(plan.page, verdict, offset, limit),
            )
            if confirm:
                await self._import(path, plan, outcome, skip_refused, actor)
            return outcome
        finally:
            if plan is not None:
                await asyncio.to_thread(plan.close)
            await asyncio.to_thread(sheet.close)

    # ------------------------------------------------------------------ verdicts

    async def _decide_all(self, rows: Iterator[SheetRow], plan: Plan) -> None:
        while True:
            chunk = await asyncio.to_thread(self._check_chunk, rows, plan)
            if not chunk:
                return
            await self._decide(chunk, plan)
            await asyncio.to_thread(plan.add, chunk)

    def _check_chunk(self, rows: Iterator[SheetRow], plan: Plan) -> list[Verdict]:
        chunk = []
        for row in rows:
            verdict = check_row(row, self._names)
            keys = []
            if verdict.provider and verdict.tenant_id:
                label = f"{self._names.display(verdict.provider)} id {verdict.tenant_id}"
                keys.append((f"t\0{verdict.provider}\0{verdict.tenant_id}", label))
            if verdict.abn:
                keys.append((f"a\0{verdict.abn}", f"ABN {verdict.abn}"))
            for key, label in keys:
                earlier = plan.first_seen(key, verdict.row)
                if earlier is not None:
                    verdict.problems.append(f"repeats row {earlier} (the same {label})")
            chunk.append(verdict)
            if len(chunk) >= CHUNK:
                break
        return chunk

    async def _decide(self, chunk: list[Verdict], plan: Plan) -> None:
        tenants = {(v.provider, v.tenant_id) for v in chunk if v.provider and v.tenant_id}
        abns = {v.abn for v in chunk if v.abn}
        by_tenant = {
            (c.provider, c.tenant_id): c
            for c in await self._store.clients_by_tenants(sorted(tenants))  # type: ignore[arg-type]
        }
        by_abn: dict[str, list[ClientRow]] = {}
        for client in await self._store.clients_by_abns(sorted(abns)):
            by_abn.setdefault(client.abn or "", []).append(client)
        for verdict in chunk:
            if not verdict.problems:
                self._against_practice(verdict, by_tenant, by_abn)
        matched = [v for v in chunk if v.verdict == "match" and not v.problems]
        earlier_rows = await asyncio.to_thread(
            lambda: [plan.first_seen(f"c\0{v.client_id}", v.row) for v in matched]
        )
        for verdict, earlier in zip(matched, earlier_rows, strict=True):
            if earlier is not None:
                verdict.problems.append(
                    f"row {earlier} matches the same client (#{verdict.client_id}) already"
                )
        for verdict in chunk:
            if verdict.problems:
                verdict.verdict = "refuse"
                verdict.reason = "; ".join(verdict.problems)
                verdict.client_id = None
                verdict.fills = {}

    def _against_practice(
        self,
        verdict: Verdict,
        by_tenant: dict[tuple[str, str | None], ClientRow],
        by_abn: dict[str, list[ClientRow]],
    ) -> None:
        assert verdict.provider is not None
        software = self._names.display(verdict.provider)
        client = by_tenant.get((verdict.provider, verdict.tenant_id))
        same_abn = by_abn.get(verdict.abn or "", [])
        if client is not None:
            others = [c for c in same_abn if c.id != client.id]
            if others and client.abn and client.abn != verdict.abn:
                verdict.problems.append(
                    f"the {software} id is client #{client.id}'s ({client.name!r}) but the ABN "
                    f"is client #{others[0].id}'s ({others[0].name!r}); correct one of them"
                )
                return
            self._match(verdict, client, f"its {software} id")
            return
        if same_abn:
            candidates = [c for c in same_abn if c.provider == verdict.provider] or same_abn
            if len(candidates) > 1:
                listed = ", ".join(f"#{c.id} {c.name!r}" for c in candidates[:3])
                verdict.problems.append(
                    f"the ABN belongs to {plural(len(candidates), 'client')} ({listed}); give the "
                    f"{software} id to say which"
                )
                return
            self._match(verdict, candidates[0], "its ABN")
            return
        if not verdict.tenant_id:
            verdict.problems.append(
                f"the Software ID is empty: clientlink finds the client in {software} by "
                "that id when someone signs in (a Xero tenant id, a BGL fund id, ...)"
            )
            return
        verdict.verdict = "add"

    def _match(self, verdict: Verdict, client: ClientRow, how: str) -> None:
        verdict.verdict = "match"
        verdict.client_id = client.id
        notes = [f"matches client #{client.id} {client.name!r} by {how}"]
        if client.provider != verdict.provider:
            notes.append(f"which is in {self._display_any(client.provider)}")
        elif verdict.tenant_id and client.tenant_id != verdict.tenant_id:
            notes.append(f"kept its id {client.tenant_id!r} (the file says {verdict.tenant_id!r})")
        if verdict.name.casefold() != client.name.casefold():
            notes.append(f"kept its name (the file says {verdict.name!r})")
        for column, label in (("email", "email"), ("phone", "mobile"), ("abn", "ABN")):
            new = getattr(verdict, column)
            old = getattr(client, column)
            if not new:
                continue
            if not old:
                verdict.fills[column] = new
            elif old != new:
                notes.append(f"kept its {label} {old} (the file says {new})")
        if verdict.fills:
            filled = ", ".join("mobile" if c == "phone" else c for c in sorted(verdict.fills))
            notes.append(f"fills its blank {filled}")
        verdict.reason = "; ".join(notes)

    def _display_any(self, provider: str) -> str:
        definition = self._names.definitions.get(provider)
        return definition.display_name if definition else provider

    # ------------------------------------------------------------------ import

    async def _import(
        self, path: Path, plan: Plan, outcome: ImportOutcome, skip_refused: bool, actor: str
    ) -> None:
        refused = outcome.counts["refuse"]
        if refused and not skip_refused:
            first = await asyncio.to_thread(plan.page, "refuse", 0, 3)
            listed = "; ".join(f"row {v.row}: {v.reason}" for v in first)
            raise RpcFailure(
                ErrorCode.CONFLICT,
                f"{plural(refused, 'row')} {agree(refused, 'is', 'are')} refused "
                f"({listed}{'; ...' if refused > 3 else ''}). "
                "Correct them and preview again, or import the others and skip them "
                "(skip_refused). Nothing was imported.",
            )
        now = self._clock.now()
        created: list[int] = []
        updated: list[int] = []
        counts = {"created": 0, "updated": 0}
        async with self._store.transaction():
            last = 0
            while batch := await asyncio.to_thread(plan.after, "add", last, CHUNK):
                last = batch[-1].row
                ids = await self._store.create_unconnected_clients(
                    [
                        {
                            "provider": v.provider,
                            "tenant_id": v.tenant_id,
                            "name": v.name,
                            "abn": v.abn,
                            "email": v.email,
                            "phone": v.phone,
                        }
                        for v in batch
                    ],
                    now,
                )
                if len(ids) != len(batch):
                    raise RpcFailure(
                        ErrorCode.CONFLICT,
                        "clients with some of these software ids were added while the file "
                        "was being checked; preview it again. Nothing was imported.",
                    )
                counts["created"] += len(ids)
                created.extend(ids[: max(0, EVENT_IDS - len(created))])
            last = 0
            while batch := await asyncio.to_thread(plan.after, "match", last, CHUNK):
                last = batch[-1].row
                for verdict in batch:
                    if not verdict.fills or verdict.client_id is None:
                        continue
                    if await self._store.fill_blank_details(verdict.client_id, verdict.fills, now):
                        counts["updated"] += 1
                        if len(updated) < EVENT_IDS:
                            updated.append(verdict.client_id)
            await self._store.add_audit(
                actor=actor,
                action="clients.import_file",
                client_id=None,
                detail={
                    "path": str(path),
                    "digest": outcome.digest,
                    "created": counts["created"],
                    "updated": counts["updated"],
                    "matched": outcome.counts["match"],
                    "skipped_refused": refused,
                },
                now=now,
            )
        outcome.imported = True
        outcome.created = counts["created"]
        outcome.updated = counts["updated"]
        more = counts["created"] + counts["updated"] - len(created) - len(updated)
        self._events.publish(ClientsImported(created=created, updated=updated, more=more))
