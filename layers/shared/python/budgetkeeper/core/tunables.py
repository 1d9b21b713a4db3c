"""The tunables, declared once: what an operator changes at run time in SSM Parameter Store under
`/budgetkeeper/<env>/` (Settings.parameter_prefix), each with its parameter name, default, parser and
meaning (`TUNABLES`), read by the functions through `load_tunables()` and checked for the CLI's
`config set` by `check_tunable()`. Their defaults live here and nowhere else; the template does not
own the parameters, so a redeploy never resets an operator's change.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from budgetkeeper.core.settings import Settings
from budgetkeeper.core.windows import InvalidWindow, parse_time_zone


class InvalidTunable(ValueError):
    """An SSM parameter holds a value that cannot be used."""


def _parse_bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"true", "yes", "1", "on"}:
        return True
    if lowered in {"false", "no", "0", "off", ""}:
        return False
    raise InvalidTunable(f"expected true or false, got {raw!r}")


def _parse_decimal(raw: str) -> Decimal:
    try:
        value = Decimal(raw.strip())
    except ArithmeticError as error:
        raise InvalidTunable(f"expected a number, got {raw!r}") from error
    if not value.is_finite() or value < 0:
        raise InvalidTunable(f"expected a non-negative number, got {raw!r}")
    return value


def _parse_int(raw: str) -> int:
    try:
        value = int(raw.strip())
    except ValueError as error:
        raise InvalidTunable(f"expected a whole number, got {raw!r}") from error
    if value < 0:
        raise InvalidTunable(f"expected a non-negative whole number, got {raw!r}")
    return value


def _parse_list(raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def _parse_time_zone(raw: str) -> str:
    try:
        parse_time_zone(raw)
    except InvalidWindow as error:
        raise InvalidTunable(str(error)) from None
    return raw.strip()


_REGION = re.compile(r"[a-z]{2}(?:-[a-z]+)+-\d{1,2}")


def _parse_regions(raw: str) -> tuple[str, ...]:
    regions = _parse_list(raw)
    for region in regions:
        if not _REGION.fullmatch(region):
            raise InvalidTunable(f"{region!r} is not an AWS Region name such as eu-west-1")
    return regions


def _parse_app_profiles(raw: str) -> tuple[tuple[str, str], ...]:
    """`<application inference profile ARN>=<app>` pairs, comma-separated: profiles an operator
    registered for an app (budgetkeeper.domain.scopes.attribute trusts these; a profile's own tags
    are claims)."""
    pairs = []
    for item in _parse_list(raw):
        arn, equals, app = (part.strip() for part in item.partition("="))
        if not (equals and arn.startswith("arn:") and ":application-inference-profile/" in arn):
            raise InvalidTunable(f"expected <application inference profile ARN>=<app>, got {item!r}")
        if not (app and app.isprintable() and app == app.strip()):
            raise InvalidTunable(f"app name missing or unprintable in {item!r}")
        pairs.append((arn, app))
    return tuple(pairs)


_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _parse_unknown_model_rate(raw: str) -> tuple[Decimal, Decimal] | None:
    """`INPUT/OUTPUT` USD per 1M tokens (e.g. `15/75`), or empty: the price table's estimate."""
    if not raw.strip():
        return None
    parts = raw.split("/")
    if len(parts) != 2:
        raise InvalidTunable(f"expected INPUT/OUTPUT USD per 1M tokens such as 15/75, got {raw!r}")
    input_rate, output_rate = (_parse_decimal(part) for part in parts)
    return input_rate, output_rate


def _parse_log_level(raw: str) -> str:
    level = raw.strip().upper()
    if level not in _LOG_LEVELS:
        raise InvalidTunable(f"expected one of {', '.join(_LOG_LEVELS)}, got {raw!r}")
    return level


def _parse_language(raw: str) -> str:
    """A two-letter language code; one with no templates gets English (budgetkeeper.notify.render)."""
    language = raw.strip().lower()
    if not re.fullmatch(r"[a-z]{2}", language):
        raise InvalidTunable(f"expected a two-letter language code such as en or es, got {raw!r}")
    return language


@dataclass(frozen=True, slots=True)
class Tunable:
    field: str  # attribute of Tunables
    parameter: str  # name below the prefix, e.g. "thresholds/warning_percent"
    default: str
    parse: Callable[[str], Any]
    description: str


WARNING_PARAMETER = "thresholds/warning_percent"
CRITICAL_PARAMETER = "thresholds/critical_percent"

# The one declaration of every tunable and its default.
TUNABLES: tuple[Tunable, ...] = (
    Tunable(
        "default_daily_usd",
        "default_budget/daily_usd",
        "10",
        _parse_decimal,
        "daily limit for principals with no budget of their own",
    ),
    Tunable(
        "default_monthly_usd",
        "default_budget/monthly_usd",
        "150",
        _parse_decimal,
        "monthly limit for principals with no budget of their own",
    ),
    Tunable(
        "default_budget_floor_usd",
        "default_budget/session_floor_usd",
        "0.10",
        _parse_decimal,
        "a role session's default budgets are stored once its spend in a window reaches this (USD)",
    ),
    Tunable(
        "warning_percent",
        WARNING_PARAMETER,
        "70",
        _parse_decimal,
        "percent of the limit that warns",
    ),
    Tunable(
        "critical_percent",
        CRITICAL_PARAMETER,
        "90",
        _parse_decimal,
        "percent of the limit that is critical",
    ),
    Tunable(
        "grace_seconds",
        "grace_seconds",
        "900",
        _parse_int,
        "wait between the exceeded notice and the suspension",
    ),
    Tunable("time_zone", "time_zone", "UTC", _parse_time_zone, "time zone of budget windows that name none"),
    Tunable("dry_run", "dry_run", "false", _parse_bool, "run the workflow and notify, but never touch IAM"),
    Tunable(
        "exclusions",
        "exclusions",
        "",
        _parse_list,
        "comma-separated scopes that are metered but never denied, whichever budget's deny would reach them",
    ),
    Tunable(
        "app_profiles",
        "app_profiles",
        "",
        _parse_app_profiles,
        "comma-separated <application inference profile ARN>=<app>: profiles registered for an app "
        "(an unregistered profile's app tag is only a claim)",
    ),
    Tunable("log_level", "log_level", "INFO", _parse_log_level, "Powertools log level"),
    Tunable(
        "regions",
        "regions",
        "",
        _parse_regions,
        "comma-separated Bedrock Regions in use besides the stack's (logging check and doctor look at each; "
        "the mantle sweep reads their bedrock-mantle metrics)",
    ),
    Tunable(
        "dedupe_ttl_days", "dedupe_ttl_days", "7", _parse_int, "how long a metered payload's marker is kept"
    ),
    Tunable(
        "usage_retention_days",
        "usage_retention_days",
        "400",
        _parse_int,
        "rollups and totals expire this many days after their hour or window (the S3 archive keeps all)",
    ),
    Tunable(
        "usage_fold_minutes",
        "metering/fold_minutes",
        "15",
        _parse_int,
        "the compactor (every 5 minutes) adds the usage journal to the rollups once its oldest entry is "
        "this many minutes old (reports read the journal too: a longer wait costs them reads, not freshness)",
    ),
    Tunable(
        "app_claims_per_principal",
        "limits/app_claims_per_principal",
        "10",
        _parse_int,
        "distinct claimed apps one principal charges in a batch; the rest are charged to app:(other)",
    ),
    Tunable(
        "unknown_models_per_batch",
        "limits/unknown_models_per_batch",
        "5",
        _parse_int,
        "distinct unpriced model ids a batch keeps by name; the rest are counted as (other unknown)",
    ),
    Tunable(
        "profile_lookups_per_batch",
        "limits/profile_lookups_per_batch",
        "20",
        _parse_int,
        "application inference profiles a batch may look up in Bedrock; the rest wait for a later batch",
    ),
    Tunable(
        "summary_rows",
        "notify/summary_rows",
        "10",
        _parse_int,
        "rows of each list in the daily summary; the rest are counted",
    ),
    Tunable(
        "notify_contact",
        "notify/contact",
        "",
        str.strip,
        "who owners are told to contact (empty: your Bedrock platform team)",
    ),
    Tunable(
        "console_url",
        "notify/console_url",
        "",
        str.strip,
        "the console's address, linked from notices (empty: notices point to `budgetkeeper me`)",
    ),
    Tunable(
        "operator_language",
        "notify/operator_language",
        "en",
        _parse_language,
        "language of the operators' notices (Slack, SNS e-mail and SMS)",
    ),
    Tunable(
        "reconcile_drift_percent",
        "reconcile/drift_percent",
        "5",
        _parse_decimal,
        "metered and billed spend of a day further apart than this percent of the bill alert operators",
    ),
    Tunable(
        "reconcile_drift_min_usd",
        "reconcile/drift_min_usd",
        "1",
        _parse_decimal,
        "a gap between metered and billed spend smaller than this (USD) never alerts",
    ),
    Tunable(
        "reconcile_days",
        "reconcile/days",
        "3",
        _parse_int,
        "the daily reconciliation checks this many days before today (Cost Explorer and CUR lag)",
    ),
    Tunable(
        "unknown_model_usd_per_million",
        "prices/unknown_model_usd_per_million",
        "",
        _parse_unknown_model_rate,
        "INPUT/OUTPUT USD per 1M tokens charged for a model the price table does not know, e.g. 15/75 "
        "(empty: the highest known rate of the model's vendor and endpoint kind); re-priced once known",
    ),
)


@dataclass(frozen=True, slots=True)
class RejectedTunable:
    """A parameter value that cannot be used: its default applies until an operator fixes it."""

    parameters: tuple[str, ...]  # names below the prefix: the one at fault, or both thresholds
    problem: str  # what is wrong, naming the parameter and its value

    def __str__(self) -> str:
        return self.problem


@dataclass(frozen=True, slots=True)
class Tunables:
    default_daily_usd: Decimal
    default_monthly_usd: Decimal
    default_budget_floor_usd: Decimal
    warning_percent: Decimal
    critical_percent: Decimal
    grace_seconds: int
    time_zone: str
    dry_run: bool
    exclusions: tuple[str, ...]
    app_profiles: tuple[tuple[str, str], ...]
    log_level: str
    dedupe_ttl_days: int
    regions: tuple[str, ...]
    usage_retention_days: int
    usage_fold_minutes: int
    app_claims_per_principal: int
    unknown_models_per_batch: int
    profile_lookups_per_batch: int
    summary_rows: int
    notify_contact: str
    console_url: str
    operator_language: str
    reconcile_drift_percent: Decimal
    reconcile_drift_min_usd: Decimal
    reconcile_days: int
    unknown_model_usd_per_million: tuple[Decimal, Decimal] | None

    @classmethod
    def from_values(cls, values: Mapping[str, str]) -> Tunables:
        """Parse raw parameter values (names below the prefix), refusing the first bad one."""
        tunables, rejected = cls.accepting(values)
        if rejected:
            raise InvalidTunable(str(rejected[0]))
        return tunables

    @classmethod
    def accepting(cls, values: Mapping[str, str]) -> tuple[Tunables, tuple[RejectedTunable, ...]]:
        """Parse what can be used; each bad value takes its default and is named in the second item.

        Running functions read tunables this way: one mistyped parameter must never stop metering
        or enforcement, it is reported (and alerted on) while everything else applies.
        """
        parsed: dict[str, Any] = {}
        rejected: list[RejectedTunable] = []
        by_field = {tunable.field: tunable for tunable in TUNABLES}
        for tunable in TUNABLES:
            raw = values.get(tunable.parameter, tunable.default)
            try:
                parsed[tunable.field] = tunable.parse(raw)
            except InvalidTunable as error:
                rejected.append(
                    RejectedTunable(
                        (tunable.parameter,),
                        f"parameter {tunable.parameter}: {error}; the default {tunable.default!r} applies",
                    )
                )
                parsed[tunable.field] = tunable.parse(tunable.default)
        warning, critical = parsed["warning_percent"], parsed["critical_percent"]
        if not thresholds_in_order(warning, critical):
            for field in ("warning_percent", "critical_percent"):
                tunable = by_field[field]
                parsed[field] = tunable.parse(tunable.default)
            rejected.append(
                RejectedTunable(
                    (WARNING_PARAMETER, CRITICAL_PARAMETER),
                    f"{WARNING_PARAMETER} ({warning}) must be below {CRITICAL_PARAMETER} ({critical}); "
                    "both defaults apply",
                )
            )
        return cls(**parsed), tuple(rejected)

    @classmethod
    def defaults(cls) -> Tunables:
        return cls.from_values({})


def thresholds_in_order(warning: Decimal, critical: Decimal) -> bool:
    return warning < critical


def _spellings(tunable: Tunable) -> set[str]:
    """Every name a tunable answers to: its parameter, its field, and its parameter's last part."""
    return {_plain(tunable.parameter), _plain(tunable.field), _plain(tunable.parameter.rpartition("/")[2])}


def _plain(name: str) -> str:
    return re.sub(r"[/\-_ ]+", "_", name.strip().strip("/").lower())


def tunable_named(key: str) -> Tunable:
    """A tunable by any of its names: `thresholds/warning_percent`, `warning_percent`, `warning-percent`;
    `notify/contact`, `notify_contact` or `contact`. A name two tunables share is refused."""
    wanted = _plain(key)
    matches = [tunable for tunable in TUNABLES if wanted in _spellings(tunable)]
    if len(matches) == 1:
        return matches[0]
    names = [tunable.parameter for tunable in TUNABLES]
    if matches:
        raise InvalidTunable(
            f"{key!r} names {' and '.join(t.parameter for t in matches)}: type the whole name"
        )
    close = difflib.get_close_matches(key.strip().strip("/"), names, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]}? " if close else ""
    raise InvalidTunable(f"no setting named {key!r}: {hint}use one of {', '.join(names)}")


def check_tunable(tunable: Tunable, raw: str, current: Mapping[str, str]) -> str:
    """The value to store for `tunable`, checked as the functions will read it and against the
    other values in force (`current`: the parameters set now, by name below the prefix).

    Raises InvalidTunable saying what is wrong.
    """
    value = raw.strip()
    try:
        tunable.parse(value)
    except InvalidTunable as error:
        raise InvalidTunable(f"{tunable.parameter}: {error}") from None
    values = {**current, tunable.parameter: value}
    by_parameter = {item.parameter: item for item in TUNABLES}
    warning = _parsed_or_default(by_parameter[WARNING_PARAMETER], values)
    critical = _parsed_or_default(by_parameter[CRITICAL_PARAMETER], values)
    if not thresholds_in_order(warning, critical):
        raise InvalidTunable(
            f"{WARNING_PARAMETER} ({warning}) must be below {CRITICAL_PARAMETER} ({critical})"
        )
    return value


def _parsed_or_default(tunable: Tunable, values: Mapping[str, str]) -> Any:
    try:
        return tunable.parse(values.get(tunable.parameter, tunable.default))
    except InvalidTunable:
        return tunable.parse(tunable.default)


# Short enough that an operator's change takes effect within a minute.
TUNABLES_MAX_AGE_SECONDS = 30


# The last tunables read per prefix, kept for when SSM cannot be reached.
_last_read: dict[str, Tunables] = {}


def load_tunables(settings: Settings) -> Tunables:
    """Read the tunables from SSM through Powertools Parameters, cached for a short max_age.

    Never fails: SSM out of reach gives the last values read (else the defaults), and a bad value
    gives its default; both are logged as errors and counted in the `TunableProblems` metric.
    """
    from aws_lambda_powertools.metrics import MetricUnit
    from aws_lambda_powertools.utilities import parameters

    from budgetkeeper.core.observability import logger, metrics

    prefix = settings.parameter_prefix
    try:
        raw = parameters.get_parameters(prefix, max_age=TUNABLES_MAX_AGE_SECONDS, recursive=True)
    except parameters.exceptions.GetParameterError as error:
        fallback = _last_read.get(prefix)
        logger.error(
            "cannot read tunables from SSM",
            error=str(error),
            using="the last values read" if fallback else "the defaults",
        )
        metrics.add_metric(name="TunableProblems", unit=MetricUnit.Count, value=1)
        return fallback or Tunables.defaults()
    tunables, rejected = Tunables.accepting({name.lstrip("/"): str(value) for name, value in raw.items()})
    for problem in rejected:
        logger.error("tunable rejected", problem=str(problem))
    if rejected:
        metrics.add_metric(name="TunableProblems", unit=MetricUnit.Count, value=len(rejected))
    _last_read[prefix] = tunables
    return tunables


def tune_invocation(settings: Settings) -> Tunables:
    """The tunables one invocation of a function runs with, the logger set to their log level:
    every handler starts with it, so `log_level` applies to every function."""
    from budgetkeeper.core.observability import logger

    tunables = load_tunables(settings)
    logger.setLevel(tunables.log_level)
    return tunables
