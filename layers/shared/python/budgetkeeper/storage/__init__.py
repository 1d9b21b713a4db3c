"""The DynamoDB tables: one pynamodb model per table (tables), the keys of the usage rows (keys),
reads several packages share (readers), the writes of budget rows (budget_rows) and of audit lines
(audit_rows), and conditional writes read one way (conditional). The only package that defines
table schemas. Imports budgets, domain and core.
"""
