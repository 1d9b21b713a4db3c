"""A function's environment, declared once: the table names, ARNs and endpoints the template gives
each function, read by `get_settings()`. What operators change at run time (SSM Parameter Store
under `parameter_prefix`) is budgetkeeper.core.tunables.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal


class MissingSetting(RuntimeError):
    """An environment variable a function needs is not set."""

    def __init__(self, variable: str) -> None:
        super().__init__(f"environment variable {variable} is not set")
        self.variable = variable


@dataclass(frozen=True, slots=True)
class Settings:
    env: str
    stack_name: str
    region: str
    rollups_table: str
    totals_table: str
    budgets_table: str
    audit_table: str
    dedupe_table: str
    teams_table: str
    denies_table: str
    idempotency_table: str
    archive_bucket: str
    # pynamodb does not read AWS_ENDPOINT_URL* as boto3 does; None means the regional endpoint.
    dynamodb_endpoint: str | None = None
    # The evaluation machine the usage calculator and the monitor start; the operators' machine
    # (suspend, restore, protect, unprotect) the CLI and the console start (README, "Who may start what").
    evaluation_machine_arn_value: str | None = None
    operator_machine_arn_value: str | None = None
    deny_policy_arn_value: str | None = None
    notifications_topic_arn: str | None = None
    identity_center_admin_role_arn: str | None = None
    identity_center_region: str | None = None  # the Identity Center instance's Region; None: the stack's
    operator_alerts_topic_arn: str | None = None
    notification_sender: str | None = None  # a verified SES identity; None: no e-mail to owners
    prices_table: str | None = None  # price versions from the Price List; None: the bundled table only
    # A Price List refresh moving a unit price by more than this factor is stored, not activated.
    price_move_max_factor: Decimal = Decimal(2)
    # The CUR 2.0 data export in Athena, for reconciliation per IAM principal; no table: that level is off.
    cur_database: str | None = None
    cur_table: str | None = None
    cur_workgroup: str = "primary"
    cur_output_location: str | None = None  # None: the workgroup's own result location
    # Organization mode (docs/organization.md): the organization, and this stack's own account, whose
    # principals keep unqualified scopes while other accounts' are named with their account.
    organization_id: str | None = None
    home_account_id: str | None = None

    @property
    def qualifying_account(self) -> str | None:
        """In organization mode, the account whose principals are named without it; else None
        (a one-account stack names every principal without its account)."""
        return self.home_account_id if self.organization_id else None

    @property
    def parameter_prefix(self) -> str:
        return f"/budgetkeeper/{self.env}/"

    @property
    def slack_webhook_parameter(self) -> str:
        """The SSM SecureString holding the Slack incoming-webhook URL (absent: no Slack).

        Outside the tunables' prefix on purpose: the functions that read the tunables by path
        never see it; only the notifier may read (and decrypt) this one parameter.
        """
        return f"/budgetkeeper-secrets/{self.env}/slack_webhook_url"

    @property
    def operator_alerts_topic(self) -> str:
        return _need(self.operator_alerts_topic_arn, "OPERATOR_ALERTS_TOPIC_ARN")

    @property
    def evaluation_machine_arn(self) -> str:
        return _need(self.evaluation_machine_arn_value, "EVALUATION_MACHINE_ARN")

    @property
    def operator_machine_arn(self) -> str:
        return _need(self.operator_machine_arn_value, "OPERATOR_MACHINE_ARN")

    @property
    def deny_policy_arn(self) -> str:
        return _need(self.deny_policy_arn_value, "DENY_POLICY_ARN")

    @property
    def notifications_topic(self) -> str:
        return _need(self.notifications_topic_arn, "NOTIFICATIONS_TOPIC_ARN")

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Settings:
        def required(name: str) -> str:
            value = environ.get(name)
            if not value:
                raise MissingSetting(name)
            return value

        return cls(
            env=environ.get("BUDGETKEEPER_ENV", "dev"),
            stack_name=required("STACK_NAME"),
            region=environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or required("AWS_REGION"),
            rollups_table=required("ROLLUPS_TABLE"),
            totals_table=required("TOTALS_TABLE"),
            budgets_table=required("BUDGETS_TABLE"),
            audit_table=required("AUDIT_TABLE"),
            dedupe_table=required("DEDUPE_TABLE"),
            teams_table=required("TEAMS_TABLE"),
            denies_table=required("DENIES_TABLE"),
            idempotency_table=required("IDEMPOTENCY_TABLE"),
            archive_bucket=required("ARCHIVE_BUCKET"),
            dynamodb_endpoint=environ.get("AWS_ENDPOINT_URL_DYNAMODB") or environ.get("AWS_ENDPOINT_URL"),
            evaluation_machine_arn_value=environ.get("EVALUATION_MACHINE_ARN") or None,
            operator_machine_arn_value=environ.get("OPERATOR_MACHINE_ARN") or None,
            deny_policy_arn_value=environ.get("DENY_POLICY_ARN") or None,
            notifications_topic_arn=environ.get("NOTIFICATIONS_TOPIC_ARN") or None,
            identity_center_admin_role_arn=environ.get("IDENTITY_CENTER_ADMIN_ROLE_ARN") or None,
            identity_center_region=environ.get("IDENTITY_CENTER_REGION") or None,
            operator_alerts_topic_arn=environ.get("OPERATOR_ALERTS_TOPIC_ARN") or None,
            notification_sender=environ.get("NOTIFICATION_SENDER") or None,
            prices_table=environ.get("PRICES_TABLE") or None,
            price_move_max_factor=Decimal(environ.get("PRICE_MOVE_MAX_FACTOR") or 2),
            cur_database=environ.get("CUR_DATABASE") or None,
            cur_table=environ.get("CUR_TABLE") or None,
            cur_workgroup=environ.get("CUR_WORKGROUP") or "primary",
            cur_output_location=environ.get("CUR_OUTPUT_LOCATION") or None,
            organization_id=environ.get("ORGANIZATION_ID") or None,
            home_account_id=environ.get("HOME_ACCOUNT_ID") or None,
        )


def _need(value: str | None, variable: str) -> str:
    if not value:
        raise MissingSetting(variable)
    return value


@functools.cache
def get_settings() -> Settings:
    """The function's settings, read from the environment on first use (not at import)."""
    return Settings.from_environ(os.environ)
