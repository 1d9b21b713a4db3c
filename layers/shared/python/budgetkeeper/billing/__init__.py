"""Reconciliation of metered spend with what AWS bills (Cost Explorer, the Cost and Usage Report).
Imports metering, storage, notify, domain and core; nothing imports it but its handler and the CLI.
"""
