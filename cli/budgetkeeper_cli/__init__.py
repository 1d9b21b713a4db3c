"""Operators' tools for Bedrock Budgetkeeper: the `budgetkeeper` command. Not shipped to Lambda."""
