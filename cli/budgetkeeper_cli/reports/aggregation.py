"""Usage totals per group: the group fields of a metered record or a usage line, summed exactly.

`UsageReport` keeps one `Totals` per combination of group values, so memory grows with the number of
groups, never with the number of records. Costs are `Decimal` sums of the per-record costs.
"""

from __future__ import annotations

import difflib
import functools
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TypeVar

from budgetkeeper.domain.scopes import parse_identity_arn
from budgetkeeper.domain.usage import RUNTIME_OPERATION
from budgetkeeper.metering.deltas import calls_counter
from budgetkeeper.metering.meter import Metered
from budgetkeeper.pricing.table import PriceBasis
from budgetkeeper.storage.tables import RollupItem
from budgetkeeper_cli.errors import UsageError

GROUP_FIELDS: tuple[str, ...] = (
    "principal",
    "role",
    "app",
    "team",
    "model",
    "region",
    "operation",
    "day",
    "hour",
    "account",
    "ou",
)
COUNTER_FIELDS: tuple[str, ...] = (
    "calls",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cost_usd",
    "estimated_usd",
    "flagged",
)
# The bases a usage line counts calls of (usage_writer.calls_counter): every one but exact.
FLAGGED_BASES: tuple[PriceBasis, ...] = tuple(basis for basis in PriceBasis if basis is not PriceBasis.EXACT)
ROW_FIELDS: tuple[str, ...] = (*COUNTER_FIELDS[:-1], "price_basis")

# --- group fields ------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def account_of(identity_arn: str | None) -> str | None:
    """The account a caller's ARN names (AWS signs it; a record's accountId is its claim)."""
    return parse_identity_arn(identity_arn).account if identity_arn else None


Record = TypeVar("Record", Metered, RollupItem)

# The nearest organizational unit of an account (None: in the root), for the `ou` field.
UnitOf = Callable[[str], str | None]

_FIELD_VALUE: Mapping[str, Callable[[Metered], str | None]] = {
    "account": lambda m: account_of(m.invocation.identity_arn),
    "principal": lambda m: m.attribution.principal,
    "role": lambda m: m.attribution.role,
    "app": lambda m: m.attribution.app,
    "team": lambda m: m.attribution.team,
    "model": lambda m: m.model,
    "region": lambda m: m.invocation.region,
    "operation": lambda m: RUNTIME_OPERATION,  # invocation logs record runtime calls only
    "day": lambda m: m.invocation.timestamp.date().isoformat(),  # timestamps are UTC
    "hour": lambda m: m.hour,
}

# The same fields of a usage line (the rollups table's finest rollup: one hour of one caller).
_LINE_VALUE: Mapping[str, Callable[[RollupItem], str | None]] = {
    "account": lambda line: account_of(line.identity_arn),
    "principal": lambda line: line.principal,
    "role": lambda line: line.role,
    "app": lambda line: line.app,
    "team": lambda line: line.team,
    "model": lambda line: line.model,
    "region": lambda line: line.region,
    # A batch job or bedrock-mantle project tokens (usage.OFF_LOG_OPERATIONS), else runtime calls.
    "operation": lambda line: line.operation or RUNTIME_OPERATION,
    "day": lambda line: line.hour[:10] if line.hour else None,
    "hour": lambda line: line.hour,
}


def parse_group_by(text: str) -> tuple[str, ...]:
    """`principal,model` -> ("principal", "model"); an unknown field is a UsageError naming the valid ones."""
    fields = [name.strip().lower() for name in text.split(",") if name.strip()]
    if not fields:
        raise UsageError(
            f"--group-by needs at least one field: type e.g. --group-by principal,model "
            f"(fields: {', '.join(GROUP_FIELDS)})"
        )
    unknown = [name for name in fields if name not in GROUP_FIELDS]
    if unknown:
        guesses = [_with_guess(name) for name in unknown]
        raise UsageError(
            f"unknown --group-by field{'s' if len(unknown) > 1 else ''} {', '.join(guesses)}: "
            f"use a comma-separated list of {', '.join(GROUP_FIELDS)}, e.g. --group-by team,model"
        )
    return tuple(dict.fromkeys(fields))


# What people type for a group field, by the field's other names: a user, an API key and a role
# session are the principal of a call; an application is an app.
_GROUP_SYNONYMS: Mapping[str, str] = {
    "user": "principal",
    "apikey": "principal",
    "api_key": "principal",
    "session": "principal",
    "caller": "principal",
    "identity": "principal",
    "arn": "principal",
    "application": "app",
    "organizational_unit": "ou",
    "unit": "ou",
    "date": "day",
    "time": "hour",
}


def _closest_group_fields(name: str) -> list[str]:
    """The group fields `name` most likely meant (another name, a typo, a plural), if any."""
    singular = name.removesuffix("s")
    synonym = _GROUP_SYNONYMS.get(name) or _GROUP_SYNONYMS.get(singular)
    if synonym:
        return [synonym]
    return difflib.get_close_matches(singular, GROUP_FIELDS, n=2, cutoff=0.6)


def _with_guess(name: str) -> str:
    close = _closest_group_fields(name)
    return f"{name!r} (did you mean {' or '.join(close)}?)" if close else repr(name)


# --- aggregation -------------------------------------------------------------------------------


def _field_value(
    name: str, values: Mapping[str, Callable[[Record], str | None]], unit_of: UnitOf | None
) -> Callable[[Record], str | None]:
    """How a record (a metered call or a usage line) gives field `name`; `ou` from its account."""
    if name != "ou":
        return values[name]
    account = values["account"]
    assert unit_of is not None

    def unit(record: Record) -> str | None:
        of = account(record)
        return unit_of(of) if of else None

    return unit


@dataclass(slots=True)
class Totals:
    """Calls, tokens by kind and exact cost of a group of invocations."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0  # 5-minute and 1-hour writes together
    cost_usd: Decimal = field(default_factory=Decimal)
    estimated_usd: Decimal = field(default_factory=Decimal)  # the part of cost_usd that is an estimate
    flagged: Counter[str] = field(default_factory=Counter)  # calls priced at anything but exact, by basis

    def add(self, metered: Metered, calls: int = 1) -> None:
        """One invocation, or `calls` of them summed into `metered` (the Athena engine's groups)."""
        tokens = metered.invocation.tokens
        priced = metered.priced
        self.calls += calls
        self.input_tokens += tokens.input
        self.output_tokens += tokens.output
        self.cache_read_tokens += tokens.cache_read
        self.cache_write_tokens += tokens.cache_write_5m + tokens.cache_write_1h
        self.cost_usd += priced.cost_usd
        if priced.flagged:
            self.flagged[str(priced.basis)] += calls
        if priced.basis is PriceBasis.ESTIMATE:
            self.estimated_usd += priced.cost_usd

    def add_line(self, line: RollupItem) -> None:
        self.calls += int(line.calls)
        self.input_tokens += int(line.input_tokens)
        self.output_tokens += int(line.output_tokens)
        self.cache_read_tokens += int(line.cache_read_tokens)
        self.cache_write_tokens += int(line.cache_write_5m_tokens) + int(line.cache_write_1h_tokens)
        self.cost_usd += line.cost_usd
        self.estimated_usd += line.estimated_cost_usd or 0
        for basis in FLAGGED_BASES:
            self.flagged[str(basis)] += int(getattr(line, calls_counter(basis)) or 0)

    def merge(self, other: Totals) -> None:
        for name in COUNTER_FIELDS:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def price_basis(self) -> str:
        """`exact`, or the calls priced otherwise by basis: `region_fallback x3, estimate x1`."""
        flagged = [f"{basis} x{count:,}" for basis, count in sorted(self.flagged.items()) if count]
        return ", ".join(flagged) or str(PriceBasis.EXACT)


@dataclass(frozen=True, slots=True)
class ReportRow:
    group: tuple[str | None, ...]  # values in the order of UsageReport.group_by; None: the record has none
    totals: Totals


class UsageReport:
    """Totals of metered invocations per combination of `group_by` values; `ou` needs `unit_of`
    (organization mode: AWS Organizations read, see budgetkeeper_cli.reports.org_units)."""

    def __init__(self, group_by: Sequence[str], unit_of: UnitOf | None = None) -> None:
        unknown = [name for name in group_by if name not in GROUP_FIELDS]
        if unknown or not group_by:
            raise UsageError(
                f"group fields must be some of {', '.join(GROUP_FIELDS)}, not {list(group_by)!r}"
            )
        if "ou" in group_by and unit_of is None:
            raise ValueError("a report by ou needs unit_of")
        self.group_by: tuple[str, ...] = tuple(group_by)
        self._getters = tuple(_field_value(name, _FIELD_VALUE, unit_of) for name in self.group_by)
        self._line_getters = tuple(_field_value(name, _LINE_VALUE, unit_of) for name in self.group_by)
        self._groups: dict[tuple[str | None, ...], Totals] = {}

    def _totals(self, key: tuple[str | None, ...]) -> Totals:
        totals = self._groups.get(key)
        if totals is None:
            totals = self._groups[key] = Totals()
        return totals

    def add(self, metered: Metered, calls: int = 1) -> None:
        self._totals(tuple(getter(metered) for getter in self._getters)).add(metered, calls)

    def add_line(self, line: RollupItem) -> None:
        """A usage line of the rollups table: the same fields, the same counters, summed exactly."""
        self._totals(tuple(getter(line) for getter in self._line_getters)).add_line(line)

    def totals_of(self, group: tuple[str | None, ...]) -> Totals:
        """The totals of one group; zero when the report has none of it."""
        return self._groups.get(group) or Totals()

    def __len__(self) -> int:
        return len(self._groups)

    def rows(self) -> list[ReportRow]:
        """Every group, the most expensive first (then most calls, then by group values)."""
        return [
            ReportRow(group, totals)
            for group, totals in sorted(
                self._groups.items(),
                key=lambda item: (-item[1].cost_usd, -item[1].calls, tuple(v or "" for v in item[0])),
            )
        ]

    @property
    def total(self) -> Totals:
        total = Totals()
        for totals in self._groups.values():
            total.merge(totals)
        return total
