from decimal import Decimal

import pytest

from budgetkeeper.core.tunables import TUNABLES, InvalidTunable, Tunables


def test_every_tunable_has_a_default_that_parses():
    defaults = Tunables.defaults()
    assert defaults.warning_percent == Decimal(70)
    assert defaults.critical_percent == Decimal(90)
    assert defaults.dry_run is False
    assert {t.field for t in TUNABLES} == set(Tunables.__dataclass_fields__)


def test_operator_values_override_defaults():
    tunables = Tunables.from_values(
        {"grace_seconds": "60", "exclusions": "user:admin, role:Ops", "dry_run": "yes"}
    )
    assert tunables.grace_seconds == 60
    assert tunables.exclusions == ("user:admin", "role:Ops")
    assert tunables.dry_run is True


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("grace_seconds", "soon"),
        ("thresholds/warning_percent", "-5"),
        ("dry_run", "maybe"),
        ("time_zone", "Europe/Pariss"),
        ("log_level", "LOUD"),
    ],
)
def test_a_bad_parameter_value_names_the_parameter(name, value):
    with pytest.raises(InvalidTunable, match=name):
        Tunables.from_values({name: value})


def test_a_running_function_takes_the_default_for_a_bad_value_and_applies_the_rest():
    tunables, rejected = Tunables.accepting({"time_zone": "Europe/Pariss", "grace_seconds": "60"})
    assert (tunables.time_zone, tunables.grace_seconds) == ("UTC", 60)
    (problem,) = rejected
    assert problem.parameters == ("time_zone",) and "'Europe/Pariss'" in str(problem)


def test_thresholds_out_of_order_fall_back_together():
    values = {"thresholds/warning_percent": "95", "thresholds/critical_percent": "80"}
    tunables, rejected = Tunables.accepting(values)
    assert (tunables.warning_percent, tunables.critical_percent) == (Decimal(70), Decimal(90))
    (problem,) = rejected
    assert problem.parameters == ("thresholds/warning_percent", "thresholds/critical_percent")
    assert str(problem) == (
        "thresholds/warning_percent (95) must be below thresholds/critical_percent (80); both defaults apply"
    )
    with pytest.raises(InvalidTunable, match="below"):
        Tunables.from_values(values)
