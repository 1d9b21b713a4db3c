"""Operators' tools for Bedrock Budgetkeeper: the `budgetkeeper` command, the demo and the local harness.

Not shipped to Lambda.
"""
