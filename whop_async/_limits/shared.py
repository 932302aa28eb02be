"""An operation's budget as Redis keeps it, and the scripts that take a turn of it and
change it there.

Keys, all of one budget in one Cluster slot (the budget's name is their hash tag):

    <prefix>{<key>}:<operation>            hash: the budget's fields, each a JSON value
    <prefix>{<key>}:<operation>:accepted   sorted set: accepted answers, by slot of time
    <prefix>{<key>}:<operation>:refused    sorted set: refusals, by slot of time
    <prefix>{<key>}:workers                sorted set: the workers, by when last seen

Taking a turn is the hot path: one script (``take.lua``), one round trip of a few
hundred bytes, whatever the number of workers. It books the next turn (the worker
sleeps until it and sends without asking again) and tells the others when to ask
again, one interval apart in the order they asked, serving them before newcomers, so
waiting workers are never woken all at once. The script holds copies of the rules it needs
(pacing, the gate's check and its probe, the rate in force, counting accepted answers,
checking stored values); their constants, field kinds and defaults are rendered into it
from here, and tests run both on the same events. Everything else a turn's answer
changes (a refusal, a probe's answer) is rare: the budget is read whole (``read.lua``),
changed by the Python rules, and written back unless another such change came in
between (``write.lua``).

No value is Infinity: a field at its infinite default is not stored. A value that does
not decode, or lies out of bounds, is replaced by a fresh budget (see ``Bounds``).

Pure: no I/O.
"""

from __future__ import annotations

import enum
import hashlib
import importlib.resources
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, TypeVar

import attrs

from .estimate import CLIMB, CLIMB_LONGEST, KEPT, MIN_RATE, SLOT, Phase, RateEstimate
from .gate import MAX_STEP, PROBE_LEASE, Gate
from .operation import OperationBudget
from .pacing import EARLY, Pacing

# A turn is booked when it is at most this many turns ahead; an asker whose turn lies
# further is told when to come back. One: a refusal finds at most one turn handed out
# and not yet sent (with a burst's worth booked, 16 workers against a server at half
# the told rate met 109 refusals in 750 requests, against 36 with one, on the engine of
# 2026-12-06; this engine's density rule meets 95 in 735 with one, a lone client about
# 6 %), for two round trips a turn once more than one worker waits.
BOOKED_AHEAD = 1
# A worker is counted as sharing the budget for this long after it last asked: one
# waiting its turn asks again within a few turns, one at a closed gate when its probe
# is due (within twice its max_server_wait at most, usually seconds). One kept waiting
# longer drops out of the count, and the others' fallback share grows for that while.
# Thirty seconds: a worker that died stops counting within half a minute, one that
# waits out a hinted wait of Whop's (a minute's window at most) seldom does.
ALIVE = 30.0
# Clocks of the host a failover promotes may differ from the old master's this much
# (NTP keeps hosts within milliseconds; a second covers one that just started).
SKEW = 1.0
# Every key lives an hour after its last write: longer than any wait a budget stores
# (twice a max_server_wait of two minutes, a rate_limit_timeout of ten), so nothing in
# use expires, and a budget nobody uses is gone within the hour.
TTL_MS = 3_600_000
# No rate, span or count beyond these is anything but a wrong value: a billion
# requests a second, or seconds (31 years); counts up to 2**53, where a float stops
# holding every whole number.
RATE_MAX = 1e9
SPAN_MAX = 1e9
COUNT_MAX = float(2**53)


class Script(NamedTuple):
    """A Lua script, its SHA1 as EVALSHA names it, and the type of its answers."""

    source: str
    sha: str
    answers: type


@attrs.frozen
class Bounds:
    """How far from now each kind of stored moment may lie for a client with a given
    limit and ``max_server_wait``: what no client ever writes is a wrong value."""

    ahead: float
    """The next turn (the last asker told to come back, a burst withheld, turns owed
    after paced apart)."""
    gate: float
    """A probe's moment (twice the cap: a hint up to it, then a step up to it)."""
    lease: float
    past: float
    """A moment already passed (or a booked turn's)."""

    @classmethod
    def of(cls, ceiling: float, burst: int, cap: float) -> Bounds:
        """The bounds for ``ceiling`` requests a second in bursts of ``burst``. The next
        turn may lie ahead by a burst withheld, turns owed by a worker back from pacing
        alone, and the askers told to come back, each about a burst: three bursts and
        four turns leave room for all at once."""
        longest = 1.0 / min(ceiling, MIN_RATE)
        return cls(
            ahead=(3 * burst + 4) * longest + SKEW,
            gate=2 * cap + MAX_STEP + SKEW,
            lease=PROBE_LEASE + SKEW,
            past=BOOKED_AHEAD * longest + SKEW,
        )

    def args(self) -> list[str]:
        """As the take script reads them."""
        return [repr(self.ahead), repr(self.gate), repr(self.lease), repr(self.past)]


class Kind(NamedTuple):
    """A number's bounds: ``low <= x - base <= high``, where base is now when the
    number is ``relative``, else 0; a string names one of ``Bounds``."""

    relative: bool
    low: float | str
    high: float | str
    integral: bool = False


KINDS = {
    "ahead": Kind(True, -math.inf, "ahead"),
    "gate": Kind(True, -math.inf, "gate"),
    "lease": Kind(True, -math.inf, "lease"),
    "past": Kind(True, -math.inf, "past"),
    "step": Kind(False, 0.0, "gate"),
    "span": Kind(False, 0.0, SPAN_MAX),
    "rate": Kind(False, MIN_RATE, RATE_MAX),
    "count": Kind(False, 0.0, COUNT_MAX, integral=True),
}
# Every stored field's kind ("flag" and "phase" are not numbers).
KIND_OF = {
    "tat": "ahead",
    "queue_at": "ahead",
    "passing": "flag",
    "probe_at": "gate",
    "lease_until": "lease",
    "latest": "gate",
    "step": "step",
    "floor": "step",
    "opened_at": "past",
    "closed_at": "past",
    "last_wait": "span",
    "probes_refused": "count",
    "cut_rate": "rate",
    "last_cut": "past",
    "phase": "phase",
    "episode_start": "past",
    "last_refusal": "past",
    "v": "count",
}
# What a take reads.
HOT = ("tat", "queue_at", "passing", "probe_at", "lease_until", "cut_rate", "last_cut", "phase")
VERSION = "v"
# Kept apart (the evidence), or each client's own (the limit it was told).
_NOT_FIELDS = {"ceiling", "accepted", "refused_slots"}
_PARTS = ("pacing", "gate", "estimate")
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
# An evidence entry is ``[slot, count, "nonce"]``, some forty bytes: a longer one is no
# entry of ours, and is not decoded.
_LONGEST_MEMBER = 100


T = TypeVar("T")


class BadData(Exception):
    """A stored value that is no budget's: why, in a few words."""


class Ask(NamedTuple):
    """What a worker tells the take script: its limit, whether it was told to come back,
    the accepted answers it has not told yet, the seconds it owes after pacing apart,
    who it is, and a fresh nonce."""

    ceiling: float
    burst: int
    queued: bool
    accepted: int
    owed: float
    worker: str
    nonce: str


class Answered(NamedTuple):
    """The take script's answer: ``kind`` send (at ``moment``), probe, or wait
    (``moment`` seconds, ``gated`` at a closed gate, ``firm`` unless a probe is in
    flight); the workers alive; the time it read; why it replaced the budget, if it did."""

    kind: str
    moment: float
    gated: bool
    firm: bool
    alive: int
    now: float
    bad: str


class Rewrite(NamedTuple):
    """What a change made of the budget it read: the time it was read at, the version
    to write over (``*``: whatever is there), the change as the write script takes it,
    and why the budget read was replaced, if it was."""

    now: float
    expected: str
    change: str
    bad: str | None


def take_args(now: str, ask: Ask, bounds: Bounds) -> list[str]:
    """The take script's arguments (``now`` empty for Redis's own time)."""
    return [
        now,
        repr(ask.ceiling),
        str(ask.burst),
        str(BOOKED_AHEAD),
        "1" if ask.queued else "0",
        str(ask.accepted),
        repr(ask.owed),
        ask.worker,
        str(TTL_MS),
        ask.nonce,
        *bounds.args(),
    ]


def answered(reply: Sequence[Any]) -> Answered:
    """The take script's reply, read."""
    kind, moment, gated, firm, alive, now, bad = (_text(item) for item in reply)
    return Answered(kind, float(moment), gated == "1", firm == "1", int(alive), float(now), bad)


def rewrite(
    reply: Sequence[Any],
    ask: Ask,
    bounds: Bounds,
    change: Callable[[OperationBudget, float], T],
) -> tuple[T, Rewrite]:
    """Apply ``change(budget, now)`` to the budget the read script read (a fresh one
    when it held no budget's values); what it returned, and what to write."""
    now = float(_text(reply[0]))
    blank = OperationBudget.new(ask.ceiling, ask.burst)
    nonce = ask.nonce
    bad = None
    try:
        stored = _contents(reply[1], "budget")
        fields = dict(zip(stored[::2], stored[1::2], strict=True))
        evidence = (_contents(reply[2], "accepted"), _contents(reply[3], "refused"))
        budget, version = budget_of(fields, evidence, blank, now, bounds)
    except BadData as replaced:
        bad, fields, budget, version = str(replaced), {}, blank, 0
    accepted = dict(budget.estimate.accepted)
    refused = dict(budget.estimate.refused_slots)
    result = change(budget, now)
    after = fields_of(budget, version + 1)
    written = {
        "set": {k: v for k, v in after.items() if v is not None and v != fields.get(k)},
        "delete": [name for name, value in after.items() if value is None and name in fields],
        "accepted": _added(accepted, budget.estimate.accepted, nonce),
        "refused": _added(refused, budget.estimate.refused_slots, nonce),
        "forget": str(int((now - KEPT) // SLOT)),
    }
    expected = "*" if bad is not None else fields.get(VERSION, "")
    return result, Rewrite(now, expected, json.dumps(written, separators=(",", ":")), bad)


def keys(prefix: str, key: str, operation: str) -> list[str]:
    """The keys of ``operation``'s budget: the hash, its evidence, the workers."""
    budget = f"{prefix}{{{key}}}:{operation}"
    return [budget, f"{budget}:accepted", f"{budget}:refused", f"{prefix}{{{key}}}:workers"]


def defaults() -> dict[str, object]:
    """Each field's value in a fresh budget."""
    blank = OperationBudget.new(1.0, 1)
    values: dict[str, object] = {VERSION: 0}
    for part in _PARTS:
        instance = getattr(blank, part)
        for field in attrs.fields(type(instance)):
            if field.name not in _NOT_FIELDS:
                values[field.name] = getattr(instance, field.name)
    return values


def text(value: object) -> str | None:
    """A field's value as stored (JSON), None for an infinite default (not stored)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        return json.dumps(value.value)
    if isinstance(value, int):
        return str(value)
    assert isinstance(value, float)
    return repr(value) if math.isfinite(value) else None


def checked(kind: str, raw: str, now: float, bounds: Bounds) -> object:
    """The value of a stored field of ``kind``.

    Raises:
        BadData: it is not one.
    """
    if kind == "flag":
        if raw in ("true", "false"):
            return raw == "true"
        raise BadData(raw)
    if kind == "phase":
        for phase in Phase:
            if raw == json.dumps(phase.value):
                return phase
        raise BadData(raw)
    if not _JSON_NUMBER.fullmatch(raw):
        raise BadData(raw)
    x = float(raw)
    relative, low, high, integral = KINDS[kind]
    base = now if relative else 0.0
    low = getattr(bounds, low) if isinstance(low, str) else low
    high = getattr(bounds, high) if isinstance(high, str) else high
    if not math.isfinite(x) or x < base + low or x > base + high:
        raise BadData(raw)
    if integral:
        if x != math.floor(x):
            raise BadData(raw)
        return int(x)
    return x


def fields_of(budget: OperationBudget, version: int) -> dict[str, str | None]:
    """A budget's fields as stored."""
    fields = {VERSION: text(version)}
    for part in _PARTS:
        instance = getattr(budget, part)
        for field in attrs.fields(type(instance)):
            if field.name not in _NOT_FIELDS:
                value = getattr(instance, field.name)
                # Only an infinite default goes unstored: no other infinity can be read back.
                assert value == field.default or not _infinite(value), field.name
                fields[field.name] = text(value)
    return fields


def _infinite(value: object) -> bool:
    return isinstance(value, float) and math.isinf(value)


def budget_of(
    stored: Mapping[str, str],
    evidence: tuple[Sequence[str], Sequence[str]],
    blank: OperationBudget,
    now: float,
    bounds: Bounds,
) -> tuple[OperationBudget, int]:
    """The budget stored as ``stored`` (its fields) and ``evidence`` (the members of its
    accepted and refused sets), with what is each client's own from ``blank``; and its
    version.

    Raises:
        BadData: a value is not a budget's.
    """
    values = defaults()
    for name, raw in stored.items():
        kind = KIND_OF.get(name)
        if kind is not None:
            try:
                values[name] = checked(kind, raw, now, bounds)
            except BadData:
                raise BadData(f"{name} = {raw[:40]!r}") from None
    latest_slot = int((now + bounds.past) // SLOT)
    accepted, refused = (_slots(members, latest_slot) for members in evidence)

    def part(cls: type[Any], **others: object) -> Any:
        names = [f.name for f in attrs.fields(cls) if f.name not in _NOT_FIELDS]
        return cls(**{name: values[name] for name in names}, **others)

    budget = OperationBudget(
        part(Pacing),
        part(
            RateEstimate, ceiling=blank.estimate.ceiling, accepted=accepted, refused_slots=refused
        ),
        part(Gate),
        blank.burst,
    )
    version = values[VERSION]
    assert isinstance(version, int)
    return budget, version


def member(slot: int, count: int, nonce: str) -> str:
    """One entry of evidence: ``count`` answers in ``slot`` (``nonce`` keeps it apart)."""
    return f'[{slot},{count},"{nonce}"]'


def _slots(members: Sequence[str], latest: int) -> dict[int, int]:
    """Counts per slot, in time order (as the rules keep them)."""
    counts: dict[int, int] = {}
    for entry in members:
        try:
            parsed: Any = json.loads(entry) if len(entry) <= _LONGEST_MEMBER else None
        except ValueError:
            parsed = None
        if not (isinstance(parsed, list) and len(parsed) == 3 and _whole(parsed[0])):
            raise BadData(f"evidence {entry[:40]!r}")
        slot, count = int(parsed[0]), parsed[1]
        if not (_whole(count) and count > 0 and slot <= latest):
            raise BadData(f"evidence {entry[:40]!r}")
        counts[slot] = counts.get(slot, 0) + int(count)
    return dict(sorted(counts.items()))


def _added(before: dict[int, int], after: dict[int, int], nonce: str) -> list[list[str]]:
    """The evidence entries for what ``after`` counts beyond ``before``."""
    return [
        [str(slot), member(slot, count - before.get(slot, 0), nonce)]
        for slot, count in after.items()
        if count > before.get(slot, 0)
    ]


def _text(item: object) -> str:
    return item.decode() if isinstance(item, bytes) else str(item)


def _contents(item: object, name: str) -> list[str]:
    """A key's contents as read, or BadData when it holds another type."""
    if not isinstance(item, list):
        raise BadData(f"the {name} key is a {_text(item)}")
    try:
        return [_text(entry) for entry in item]
    except UnicodeDecodeError:
        raise BadData(f"the {name} key holds bytes that are not text") from None


def _whole(value: object) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value == math.floor(value)
        and abs(value) <= COUNT_MAX
    )


def _lua(value: object) -> str:
    """A Python constant as a Lua literal."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, float) and math.isinf(value):
        return "math.huge" if value > 0 else "-math.huge"
    if isinstance(value, (tuple, list)):
        return "{" + ", ".join(_lua(item) for item in value) + "}"
    return repr(value)


def _generated() -> str:
    """The take script's constants, field kinds and defaults, from the Python rules."""
    fresh = defaults()
    hot = [(name, KIND_OF[name], _stored_default(fresh[name])) for name in (*HOT, VERSION)]
    kinds = ", ".join(f"{name} = {_lua(tuple(kind))}" for name, kind in KINDS.items())
    phases = ", ".join(f"[{_lua(json.dumps(phase.value))}] = true" for phase in Phase)
    constants = {
        "EARLY": EARLY,
        "SLOT": SLOT,
        "KEPT": KEPT,
        "ALIVE": ALIVE,
        "PROBE_LEASE": PROBE_LEASE,
        "CLIMB": CLIMB,
        "CLIMB_LONGEST": CLIMB_LONGEST,
        "MEASURED": json.dumps(Phase.MEASURED.value),
    }
    lines = [f"local {name} = {_lua(value)}" for name, value in constants.items()]
    lines += [
        f"local KINDS = {{{kinds}}}",
        f"local PHASES = {{{phases}}}",
        f"local HOT = {_lua(hot)}",
    ]
    return "\n".join(lines)


def _stored_default(value: object) -> object:
    """A default as the take script holds it (a phase as its stored text)."""
    return json.dumps(value.value) if isinstance(value, enum.Enum) else value


def _script(name: str, answers: type, generated: str = "") -> Script:
    source = importlib.resources.files(__package__).joinpath(name).read_text()
    if generated:
        source = source.replace(_GENERATED, generated)
    assert _GENERATED not in source
    return Script(source, hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest(), answers)


_GENERATED = "-- (generated from shared.py)"
TAKE = _script("take.lua", list, _generated())
READ = _script("read.lua", list)
WRITE = _script("write.lua", int)
