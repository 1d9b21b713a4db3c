"""Who a run or an audit row acts for when no operator did: the names the workflow, the monitor and
the deny reconciler write, and the notices read to tell "Budgetkeeper did this" from a person."""

from __future__ import annotations

SYSTEM_ACTOR = "budgetkeeper"  # a run no operator started (a crossing, a due restore)
MONITOR_ACTOR = "budgetkeeper-monitor"  # a run the budget monitor's sweep started
RECONCILER = "budgetkeeper-reconciler"  # a deny change the monitor's reconciliation made
# Who raised an operator alert about no budget window (their causes are fields, worded per reader)
PRICE_REFRESH_ACTOR = "price-refresh"
BILLING_ACTOR = "reconciler"  # the billing reconciler: metered against billed
BATCH_JOBS_ACTOR = "batch-jobs"
