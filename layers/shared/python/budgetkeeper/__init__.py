"""Bedrock Budgetkeeper: meter, price and enforce budgets on Amazon Bedrock usage.

Everything here is what the Lambda functions need; it ships as the shared layer
(`/opt/python/budgetkeeper`). Operators' tools live in `budgetkeeper_cli`.
"""
