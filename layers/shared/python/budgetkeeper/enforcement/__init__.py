"""The workflow's tasks and what they change: the typed workflow state, runs (starting the state
machines), the budget monitor's sweep, the deny records, the DenyFunction's IAM steps, session and
Identity Center denies, and whether principals exist. Imports notify, storage, budgets, domain and
core; never metering, pricing or billing.
"""
