"""The workflow's tasks and what they change: runs (starting the state machines), the budget
monitor's sweep, the deny records, the DenyFunction's IAM steps, session and Identity Center
denies, and whether principals exist. Imports every package below it and notify.
"""
