"""Reconciliation of metered spend with what AWS bills (Cost Explorer, the Cost and Usage Report).
Imports metering, storage, domain and core; never enforcement.
"""
