"""The DynamoDB tables: one pynamodb model per table (tables) and the budget rows' reads and
writes (budget_rows). The only package that defines table schemas.
"""
