"""The ground every other package stands on: the one clock, money arithmetic, the settings and
tunables (names and defaults, one source), budget windows, Powertools' logger, tracer and metrics,
the IAM tag names the stack uses, the actors runs act for and AWS error codes. Imports nothing else
of budgetkeeper (docs/architecture.md, "The layers").
"""
