"""The DynamoDB tables: one pynamodb model per table (tables), the keys of the usage rows (keys),
reads several packages share (readers) and the budget and audit rows' reads and writes
(budget_rows). The only package that defines table schemas. Imports budgets, domain and core.
"""
