"""The `ou` group field: each caller's account's nearest organizational unit, from AWS Organizations."""

from __future__ import annotations

import functools
from typing import Any

from botocore.exceptions import ClientError

from budgetkeeper.metering.org_units import parent_unit
from budgetkeeper_cli.errors import CommandFailed
from budgetkeeper_cli.reports.aggregation import UnitOf


def nearest_units(organizations: Any) -> UnitOf:
    """An account's nearest OU (None: it sits in the root), read once per account. Organizations
    answers only the management account or a delegated administrator: a refusal stops the report
    with what to do, rather than leave its calls in no OU."""

    @functools.cache
    def nearest(account: str) -> str | None:
        try:
            return parent_unit(organizations, account)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            raise CommandFailed(
                f"--group-by ou reads AWS Organizations, which refused ({code}) for account {account}: "
                "run it with credentials of the management account or a delegated administrator, "
                "or group by account"
            ) from None

    return nearest
