"""Errors the CLI turns into exit codes: 1 for a failure, 2 for a usage error."""


class CommandFailed(Exception):
    """The command ran but could not do what was asked (exit 1)."""


class UsageError(Exception):
    """The arguments are wrong; the message says what to type instead (exit 2)."""
