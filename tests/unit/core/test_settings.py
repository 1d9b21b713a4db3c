import pytest

from budgetkeeper.core.settings import MissingSetting, Settings

ENVIRONMENT = {
    "AWS_REGION": "eu-west-1",
    "BUDGETKEEPER_ENV": "prod",
    "STACK_NAME": "budgetkeeper-prod",
    "ROLLUPS_TABLE": "r",
    "TOTALS_TABLE": "t",
    "BUDGETS_TABLE": "b",
    "AUDIT_TABLE": "a",
    "DEDUPE_TABLE": "d",
    "TEAMS_TABLE": "tm",
    "DENIES_TABLE": "dn",
    "IDEMPOTENCY_TABLE": "i",
    "ARCHIVE_BUCKET": "bucket",
}


def test_settings_read_the_environment_and_name_the_parameter_prefix():
    settings = Settings.from_environ(ENVIRONMENT)
    assert settings.region == "eu-west-1"
    assert settings.parameter_prefix == "/budgetkeeper/prod/"
    assert settings.dynamodb_endpoint is None


def test_a_missing_variable_is_named():
    environment = {k: v for k, v in ENVIRONMENT.items() if k != "DEDUPE_TABLE"}
    with pytest.raises(MissingSetting, match="DEDUPE_TABLE"):
        Settings.from_environ(environment)


def test_an_optional_arn_is_named_when_used_without_being_set():
    with pytest.raises(MissingSetting, match="EVALUATION_MACHINE_ARN"):
        _ = Settings.from_environ(ENVIRONMENT).evaluation_machine_arn
