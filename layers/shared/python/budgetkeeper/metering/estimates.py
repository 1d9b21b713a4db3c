"""Estimated usage re-priced exactly, once its model's price arrives.

A call to a model the price table does not know is charged at a conservative estimate
(`pricing.price_invocation`, status `estimated`) so that it counts toward every budget at once. The
usage writer also adds it to a ledger item that lists every rollup, usage line and window total it
was charged to (`usage_writer.EstimateDelta`). `reprice_estimates` prices each ledger item with a
table that now prices the model and applies the difference to those same items, deleting the ledger
item in the same transaction: a correction, never a second charge, applied once however often it
runs (the price refresh runs it after every refresh; `budgetkeeper prices activate` and
`prices override` after theirs).

The ledger keeps calls with prompts over pricing.LONG_CONTEXT_THRESHOLD_TOKENS apart from the
others, so a model whose long-context rates start at that threshold (every one AWS publishes) is
re-priced exactly from summed tokens.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal

from pynamodb.connection import Connection

from budgetkeeper.core import money
from budgetkeeper.domain.usage import ServiceTier
from budgetkeeper.metering.deltas import correction_deltas
from budgetkeeper.metering.writer import commit_correction
from budgetkeeper.pricing.rates import PriceStatus, price_invocation
from budgetkeeper.pricing.table import LONG_CONTEXT_THRESHOLD_TOKENS, PriceTable
from budgetkeeper.storage.keys import ESTIMATES_PARTITION
from budgetkeeper.storage.tables import RollupItem

MAX_ATTEMPTS = 3  # per ledger item: a calculator adding to it in between makes us read it again


@dataclass(slots=True)
class RepriceReport:
    corrected: Counter[str] = field(default_factory=Counter)  # ledger items re-priced, by model
    difference_usd: Decimal = field(default_factory=Decimal)  # exact minus estimated, summed
    still_estimated: Counter[str] = field(default_factory=Counter)  # ledger items still unpriced
    busy: int = 0  # ledger items changing under us: the next run re-prices them

    def to_dict(self) -> dict[str, object]:
        return {
            "corrected": dict(self.corrected),
            "difference_usd": money.exact(self.difference_usd),
            "still_estimated": dict(self.still_estimated),
            "busy": self.busy,
        }


def _long_prompt(item: RollupItem) -> bool:
    return '"long_prompt":true' in str(item.charged)


def reprice_estimates(table: PriceTable, connection: Connection, retention_seconds: int) -> RepriceReport:
    """Re-price every ledger item whose model `table` now prices; leave the others for later. The
    items corrected keep their expiry, `retention_seconds` after their hour or window."""
    report = RepriceReport()
    for item in RollupItem.query(ESTIMATES_PARTITION):
        for _ in range(MAX_ATTEMPTS):
            priced = price_invocation(
                table,
                str(item.model),
                str(item.region),
                item.token_counts(),
                tier=ServiceTier(item.service_tier or ServiceTier.STANDARD),
                request_prompt_tokens=LONG_CONTEXT_THRESHOLD_TOKENS + 1 if _long_prompt(item) else 0,
            )
            if priced.status is not PriceStatus.PRICED:
                report.still_estimated[str(item.model)] += 1
                break
            deltas = correction_deltas(item, priced.cost_usd, priced.basis)
            if commit_correction(connection, item, deltas, retention_seconds):
                report.corrected[str(item.model)] += 1
                report.difference_usd += priced.cost_usd - item.cost_usd
                break
            try:
                item = RollupItem.get(item.scope, item.bucket, consistent_read=True)
            except RollupItem.DoesNotExist:
                break  # corrected by another run
        else:
            report.busy += 1
    return report
