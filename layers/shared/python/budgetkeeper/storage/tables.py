"""DynamoDB storage: one pynamodb model per table and their binding. Table names and the endpoint
are bound from settings by `bind_tables()` (called by each handler and by the local harness), never
at import time. Reads several packages share are in storage.readers; the keys of the usage rows in
storage.keys."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pynamodb.attributes import (
    Attribute,
    BinaryAttribute,
    BinarySetAttribute,
    BooleanAttribute,
    ListAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
)
from pynamodb.connection import Connection
from pynamodb.constants import NUMBER
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from budgetkeeper.budgets.rules import DEFAULT_BUDGET_WINDOWS, Status, is_manual_window
from budgetkeeper.core.settings import Settings
from budgetkeeper.domain.usage import TokenCounts

# The value of BudgetItem.sweep on budgets the monitor must look at.
SWEEP_DUE = "due"


def budget_key(scope: str, window: str) -> str:
    """A budget's key in the totals table and the sweep index: `<scope>|<window spec>`."""
    return f"{scope}|{window}"


# The KindIndex partition suffix of an operator's daily and monthly budgets.
OPERATOR_SET = "set"


def index_kind(scope: str, window: str, *, by_operator: bool) -> str | None:
    """A budget's KindIndex partition (see KindIndex); None: not in the index (a default budget no
    operator changed or protected, an operator's hold)."""
    kind = scope.split(":", 1)[0]
    if is_manual_window(window):
        return None
    if window not in DEFAULT_BUDGET_WINDOWS:
        return kind
    return f"{kind}#{OPERATOR_SET}" if by_operator else None


class DecimalAttribute(Attribute[Decimal]):
    """An exact number: pynamodb's NumberAttribute goes through float and would lose cents."""

    attr_type = NUMBER

    def serialize(self, value: Decimal) -> str:
        return str(value)

    def deserialize(self, value: str) -> Decimal:
        return Decimal(value)


# The counters of a rollup or usage line: the first are written on every update, the flags (calls
# priced at anything but their exact rate) only once not zero.
ROLLUP_COUNTERS_ALWAYS: tuple[str, ...] = (
    "calls",
    "errors",
    "unpriced_calls",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "cost_usd",
)
ROLLUP_FLAG_COUNTERS: tuple[str, ...] = (
    "region_fallback_calls",
    "tier_fallback_calls",
    "kept_bundled_calls",
    "estimated_calls",
    "estimated_cost_usd",
)
ROLLUP_COUNTERS = ROLLUP_COUNTERS_ALWAYS + ROLLUP_FLAG_COUNTERS


class RollupItem(Model):
    """Usage of one scope in one UTC hour, for one model in one region at one
    service tier; or a usage line; or an entry of the usage journal.

    A usage line (scope `usage#<day>`, written by `usage_writer`) holds one hour of one caller's
    calls to one model in one region, with the caller's whole attribution: what reports read.
    A journal entry (scope `usage-journal`, storage.usage_journal) holds rollup and line deltas of a
    metered batch that the compactor has not yet added to those rows.
    """

    class Meta:
        table_name = "unbound-rollups"

    scope = UnicodeAttribute(hash_key=True)
    # "<YYYY-MM-DDTHH>#<model>#<region>", and "#<tier>" after it for a tier other than standard
    bucket = UnicodeAttribute(range_key=True)
    hour = UnicodeAttribute(null=True)
    model = UnicodeAttribute(null=True)
    region = UnicodeAttribute(null=True)
    # Usage lines only: who called, and the scopes the calls were charged to.
    identity_arn = UnicodeAttribute(null=True)
    principal = UnicodeAttribute(null=True)
    role = UnicodeAttribute(null=True)
    app = UnicodeAttribute(null=True)
    team = UnicodeAttribute(null=True)
    service_tier = UnicodeAttribute(null=True)  # absent on rows written before tiers: standard
    operation = UnicodeAttribute(null=True)  # a usage line's: absent for runtime calls (metering.writer)
    batch_job = UnicodeAttribute(null=True)  # a batch job's creator record, JSON (metering.batch_jobs)
    calls = NumberAttribute(default=0)
    errors = NumberAttribute(default=0)
    unpriced_calls = NumberAttribute(default=0)
    input_tokens = NumberAttribute(default=0)
    output_tokens = NumberAttribute(default=0)
    cache_read_tokens = NumberAttribute(default=0)
    cache_write_5m_tokens = NumberAttribute(default=0)
    cache_write_1h_tokens = NumberAttribute(default=0)
    cost_usd = DecimalAttribute(default=Decimal)
    # Calls priced at anything but their exact rate (pricing.PriceBasis), present once there is one;
    # estimated_cost_usd is the part of cost_usd that is an estimate, until it is re-priced.
    region_fallback_calls = NumberAttribute(null=True)
    tier_fallback_calls = NumberAttribute(null=True)
    kept_bundled_calls = NumberAttribute(null=True)
    estimated_calls = NumberAttribute(null=True)
    estimated_cost_usd = DecimalAttribute(null=True)
    # Estimate ledger items only (usage_writer): every item the estimated usage was charged to, as JSON.
    charged = UnicodeAttribute(null=True)
    # Models-seen items only (storage.models_seen): "<model>|<region>" priced on that day.
    models_seen = UnicodeSetAttribute(null=True)
    # Journal entries only (storage.usage_journal): the rows' deltas (storage.journal_codec); on the
    # journal's fold counter, how many folds have run (readers re-read it to know no fold ran while
    # they read).
    deltas = BinaryAttribute(null=True, legacy_encoding=False)
    folds = NumberAttribute(null=True)
    # TTL (epoch seconds): usage_retention_days after the hour; the S3 archive is the long-term record.
    expires_at = NumberAttribute(null=True)

    def token_counts(self) -> TokenCounts:
        return TokenCounts(
            input=int(self.input_tokens),
            output=int(self.output_tokens),
            cache_read=int(self.cache_read_tokens),
            cache_write_5m=int(self.cache_write_5m_tokens),
            cache_write_1h=int(self.cache_write_1h_tokens),
        )


class TotalItem(Model):
    """Spend of one budget (scope and window spec) in one window."""

    class Meta:
        table_name = "unbound-totals"

    budget = UnicodeAttribute(hash_key=True)  # "<scope>|<window spec>"
    window_id = UnicodeAttribute(range_key=True)
    scope = UnicodeAttribute(null=True)
    window = UnicodeAttribute(null=True)
    window_start = UnicodeAttribute(null=True)
    window_end = UnicodeAttribute(null=True)
    calls = NumberAttribute(default=0)
    spent_usd = DecimalAttribute(default=Decimal)
    # App budgets: the part of spent_usd the app got only by callers' claims (request metadata),
    # and who made them: enforcement for that part reaches these principals, not the app's role.
    claimed_usd = DecimalAttribute(null=True)
    claimed_by = UnicodeSetAttribute(null=True)
    expires_at = NumberAttribute(null=True)  # TTL: usage_retention_days after the window's end


class SweepIndex(GlobalSecondaryIndex["BudgetItem"]):
    class Meta:
        index_name = "SweepIndex"
        projection = AllProjection()

    sweep = UnicodeAttribute(hash_key=True)
    sweep_key = UnicodeAttribute(range_key=True)


class KindIndex(GlobalSecondaryIndex["BudgetItem"]):
    """Sparse: the budgets operators wrote, by scope kind (`index_kind`). Budgets of a window other
    than daily and monthly (only operators write those) are under the scope kind itself, so a batch
    reads them with one query per scope kind, however many scopes it has; an operator's daily and
    monthly budgets are under `<kind>#set`, which the batch never reads (it gets those by key). The
    operators' views (storage.readers) read both: never the default budgets callers mint."""

    class Meta:
        index_name = "KindIndex"
        projection = AllProjection()

    kind = UnicodeAttribute(hash_key=True)
    kind_key = UnicodeAttribute(range_key=True)


class BudgetItem(Model):
    """A budget on one scope for one window spec. A null limit follows the default budget."""

    class Meta:
        table_name = "unbound-budgets"

    scope = UnicodeAttribute(hash_key=True)
    window = UnicodeAttribute(range_key=True)
    limit_usd = DecimalAttribute(null=True)
    time_zone = UnicodeAttribute(null=True)
    warning_percent = DecimalAttribute(null=True)
    critical_percent = DecimalAttribute(null=True)
    grace_seconds = NumberAttribute(null=True)
    origin = UnicodeAttribute(default="explicit")  # explicit | default
    protected = BooleanAttribute(default=False)
    protected_by = UnicodeAttribute(null=True)
    protected_reason = UnicodeAttribute(null=True)
    dry_run = BooleanAttribute(null=True)
    owner_email = UnicodeAttribute(null=True)
    language = UnicodeAttribute(null=True)
    status = UnicodeAttribute(default=str(Status.OK))
    status_window_id = UnicodeAttribute(null=True)  # the window the status belongs to
    revision = NumberAttribute(default=1)
    # The highest level notified in a window and revision, so no level is announced twice.
    notified_level = NumberAttribute(default=0)
    notified_window_id = UnicodeAttribute(null=True)
    notified_revision = NumberAttribute(null=True)
    forecast_window_id = UnicodeAttribute(null=True)
    # Spend at the last restore: only spend beyond it suspends again in the same window.
    baseline_usd = DecimalAttribute(null=True)
    baseline_window_id = UnicodeAttribute(null=True)
    suspended_until = UnicodeAttribute(null=True)
    suspended_by = UnicodeAttribute(null=True)
    suspended_reason = UnicodeAttribute(null=True)
    target_kind = UnicodeAttribute(null=True)
    target_name = UnicodeAttribute(null=True)
    target_sessions = ListAttribute(of=UnicodeAttribute, null=True)
    execution_arn = UnicodeAttribute(null=True)
    created_at = UnicodeAttribute(null=True)
    updated_at = UnicodeAttribute(null=True)
    # Present only while the budget needs the monitor's attention (sparse index).
    sweep = UnicodeAttribute(null=True)
    sweep_key = UnicodeAttribute(null=True)
    sweep_index = SweepIndex()
    # Present only on budgets of other windows than the daily and monthly ones (sparse index).
    kind = UnicodeAttribute(null=True)
    kind_key = UnicodeAttribute(null=True)
    kind_index = KindIndex()

    def save(self, *args: Any, **kwargs: Any) -> Any:
        # The KindIndex holds what operators wrote (see KindIndex); a default budget stays out of
        # it until an operator changes it (budget_rows.change_budget).
        kind = index_kind(self.scope, self.window, by_operator=self.by_operator)
        if kind is not None:
            self.kind, self.kind_key = kind, budget_key(self.scope, self.window)
        return super().save(*args, **kwargs)

    @property
    def by_operator(self) -> bool:
        """An operator set or protected it (a default budget an operator changed is explicit)."""
        return self.origin == "explicit" or bool(self.protected)

    def notified_level_in(self, window_id: str) -> int:
        """The level already notified in this window at the current revision (0: none)."""
        if self.notified_window_id == window_id and self.notified_revision == self.revision:
            return int(self.notified_level)
        return 0


class AuditItem(Model):
    """One transition of a budget's status. The system never deletes these."""

    class Meta:
        table_name = "unbound-audit"

    scope = UnicodeAttribute(hash_key=True)
    at_id = UnicodeAttribute(range_key=True)  # "<ISO time>#<id>"
    window = UnicodeAttribute(null=True)
    from_status = UnicodeAttribute(null=True)
    to_status = UnicodeAttribute(null=True)
    actor = UnicodeAttribute(null=True)
    reason = UnicodeAttribute(null=True)
    execution_arn = UnicodeAttribute(null=True)


class DedupeItem(Model):
    """Markers that make metering exactly once; every one expires through the table's TTL.

    - `seen#<minute>#<shard>`: a slot, the 8-byte digests (`seen`) of the payloads with events whose
      first event was logged in that minute, metered or claimed by one of `journals`; `version`
      guards each update;
    - `payload#<sha256>`: this payload, without a slot, is metered (or claimed by `journal`); or it
      has a slot and `quarantined` lists the ids of its events quarantined instead: what a redrive
      may count;
    - `payload#<sha256>#event#<event id>`: that quarantined event, redriven, is metered;
    - `journal#<id>`: deltas of a group of payloads too large for one transaction;
    - `journal#<id>#<n>`: chunk n of that journal is applied.
    """

    class Meta:
        table_name = "unbound-dedupe"

    id = UnicodeAttribute(hash_key=True)
    journal = UnicodeAttribute(null=True)
    chunks = NumberAttribute(null=True)
    deltas = BinaryAttribute(null=True, legacy_encoding=False)
    quarantined = UnicodeSetAttribute(null=True)
    expires_at = NumberAttribute(null=True)
    seen = BinarySetAttribute(null=True, legacy_encoding=False)
    journals = UnicodeSetAttribute(null=True)
    version = NumberAttribute(null=True)


class TeamItem(Model):
    """Which team a principal (or role, or app) scope belongs to, and which person a principal is:
    operators' mapping, which may join identities of several accounts (organization mode)."""

    class Meta:
        table_name = "unbound-teams"

    principal = UnicodeAttribute(hash_key=True)
    team = UnicodeAttribute(null=True)  # absent on an identity mapped to a person only
    person = UnicodeAttribute(null=True)
    # Who to tell about this scope's budgets when no owner is known; on the team's own item
    # (`principal` = the team scope), the team's contact.
    contact = UnicodeAttribute(null=True)


class DenyItem(Model):
    """A deny applied in IAM and the budgets that hold it
    (written only by budgetkeeper.enforcement.denies)."""

    class Meta:
        table_name = "unbound-denies"

    entry = UnicodeAttribute(hash_key=True)  # user:alice, role:R, group:G, session:R/s
    holders = UnicodeSetAttribute(null=True)  # budget keys scope|window; absent when none is left
    applied = BooleanAttribute(default=False)  # IAM was seen to hold it after it was recorded
    updated_at = UnicodeAttribute(null=True)
    # When operators were last told its member account could not be reached; gone once it was.
    unreachable_told_at = UnicodeAttribute(null=True)


class PriceVersionItem(Model):
    """A price version (rows from one Price List refresh); under ACTIVE_PRICE_VERSION, the pointer
    to the active one; under OVERRIDES, the operators' price overrides as rows, `created_at` their
    last change (all written only by budgetkeeper.pricing.versions)."""

    class Meta:
        table_name = "unbound-prices"

    version = UnicodeAttribute(hash_key=True)
    status = UnicodeAttribute(null=True)  # stored | active | refused | superseded
    created_at = UnicodeAttribute(null=True)
    source = UnicodeAttribute(null=True)
    rows = BinaryAttribute(null=True, legacy_encoding=False)  # gzipped JSON: the rows as PriceRow.to_dict
    row_count = NumberAttribute(null=True)
    refusals = ListAttribute(of=UnicodeAttribute, null=True)  # why it was not activated
    active_version = UnicodeAttribute(null=True)  # on the pointer item only
    activated_at = UnicodeAttribute(null=True)
    activated_by = UnicodeAttribute(null=True)


TABLE_MODELS: dict[str, type[Model]] = {
    "rollups_table": RollupItem,
    "totals_table": TotalItem,
    "budgets_table": BudgetItem,
    "audit_table": AuditItem,
    "dedupe_table": DedupeItem,
    "teams_table": TeamItem,
    "denies_table": DenyItem,
    "prices_table": PriceVersionItem,
}


def bind_tables(settings: Settings) -> None:
    """Point every model at the deployed table names and endpoint."""
    for setting_name, model in TABLE_MODELS.items():
        meta: Any = model.Meta
        table_name = getattr(settings, setting_name)
        if table_name is None:
            continue  # an optional table the stack does not have
        if (meta.table_name, getattr(meta, "host", None)) != (table_name, settings.dynamodb_endpoint):
            meta.table_name = table_name
            meta.host = settings.dynamodb_endpoint
            meta.region = settings.region
            model._connection = None  # rebuilt lazily against the new table


def transaction_connection(settings: Settings) -> Connection:
    return Connection(region=settings.region, host=settings.dynamodb_endpoint)
