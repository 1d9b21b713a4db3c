"""The ground every other package stands on: the one clock, money arithmetic, the settings and
tunables (names and defaults, one source), budget windows, Powertools' logger, tracer and metrics,
and the IAM tag names the stack uses. Imports nothing else of budgetkeeper.
"""
