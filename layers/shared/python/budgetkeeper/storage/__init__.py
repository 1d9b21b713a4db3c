"""The DynamoDB tables: one pynamodb model per table (tables), the budget rows' reads and writes
(budget_rows), the operators' bounded reads of budgets (readers) and the models priced each day
(models_seen). The only package that defines table schemas.
"""
