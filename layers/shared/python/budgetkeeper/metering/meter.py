"""The meter: a log message becomes attributed, priced usage.

Shared by the usage calculator (Lambda) and `budgetkeeper meter` (offline), so both price and
attribute the same record the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from budgetkeeper.domain.log_records import parse_invocation
from budgetkeeper.domain.scopes import Attribution, attribute
from budgetkeeper.domain.usage import Invocation
from budgetkeeper.pricing.profiles import InferenceProfiles
from budgetkeeper.pricing.rates import Priced, price_invocation
from budgetkeeper.pricing.table import PriceTable, Rates


@dataclass(frozen=True, slots=True)
class Metered:
    invocation: Invocation
    attribution: Attribution
    priced: Priced
    folded_model: str | None = None  # set when a cap folded an unpriced model id (cardinality)

    @property
    def hour(self) -> str:
        return self.invocation.timestamp.strftime("%Y-%m-%dT%H")

    @property
    def model(self) -> str:
        """The model a report shows: the priced key, or the id as logged when it has none."""
        return self.folded_model or self.priced.model_key or self.invocation.model_id


@dataclass(frozen=True, slots=True)
class Meter:
    """Parses, attributes and prices one invocation log message (raises MalformedEvent)."""

    prices: PriceTable
    teams: Mapping[str, str]
    profiles: InferenceProfiles | None = None
    registered_profiles: Mapping[str, str] = field(default_factory=dict)  # profile ARN -> app
    unknown_model_rates: Rates | None = None  # the operators' rate for models the table lacks

    def meter(self, message: str | bytes) -> Metered:
        return self.meter_invocation(parse_invocation(message))

    def meter_invocation(
        self, invocation: Invocation, *, request_prompt_tokens: int | None = None
    ) -> Metered:
        """Attribute and price a parsed invocation, or a group of them summed into one (the Athena
        engine's groups: `request_prompt_tokens` is then one request's prompt, see price_invocation)."""
        attribution = attribute(
            invocation,
            teams=self.teams,
            profile_tags=self.profiles.tags_for if self.profiles else None,
            registered_profiles=self.registered_profiles,
        )
        priced = price_invocation(
            self.prices,
            invocation.model_id,
            invocation.region,
            invocation.tokens,
            self.profiles,
            invocation.service_tier,
            request_prompt_tokens=request_prompt_tokens,
            unknown_model_rates=self.unknown_model_rates,
        )
        return Metered(invocation, attribution, priced)
