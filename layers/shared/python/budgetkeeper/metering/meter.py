"""The meter: a log message becomes attributed, priced usage.

Shared by the usage calculator (Lambda) and `budgetkeeper meter` (offline), so both price and
attribute the same record the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import msgspec

from budgetkeeper.domain.log_records import parse_invocation
from budgetkeeper.domain.scopes import Attribution, attribute, is_application_inference_profile
from budgetkeeper.domain.usage import Invocation
from budgetkeeper.pricing.profiles import InferenceProfiles
from budgetkeeper.pricing.rates import Priced, price_invocation
from budgetkeeper.pricing.table import PriceTable, Rates

# Attributions one meter remembers; beyond it (a long offline run over many callers) it starts over.
ATTRIBUTIONS_REMEMBERED = 10_000


class Metered(msgspec.Struct, frozen=True):  # a Struct: one is built per record (domain/usage.py)
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
    people: Mapping[str, str] = field(default_factory=dict)  # principal scope -> person
    # Organization mode: the central account, whose principals keep unqualified scopes (attribute).
    home_account: str | None = None
    org_units: Callable[[str], tuple[str, ...]] | None = None  # account -> OU ids (metering.org_units)
    # Attributions by caller, account and request metadata: callers repeat from record to record.
    _attributions: dict[tuple[str, str, tuple[tuple[str, str], ...]], Attribution] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def meter(self, message: str | bytes) -> Metered:
        return self.meter_invocation(parse_invocation(message))

    def attribute(self, invocation: Invocation) -> Attribution:
        """`scopes.attribute` of the invocation, remembered by the call's caller, account and metadata.

        Those are all it reads unless the model is an application inference profile: then it also
        reads the profile's tags, which expire, so such calls are attributed afresh each time.
        """
        if is_application_inference_profile(invocation.model_id):
            return self._attribute(invocation)
        key = (invocation.identity_arn, invocation.account_id, tuple(invocation.request_metadata.items()))
        found = self._attributions.get(key)
        if found is None:
            if len(self._attributions) >= ATTRIBUTIONS_REMEMBERED:
                self._attributions.clear()  # many distinct callers (a long offline run): start over
            found = self._attributions[key] = self._attribute(invocation)
        return found

    def _attribute(self, invocation: Invocation) -> Attribution:
        return attribute(
            invocation,
            teams=self.teams,
            profile_tags=self.profiles.tags_for if self.profiles else None,
            registered_profiles=self.registered_profiles,
            people=self.people,
            home_account=self.home_account,
            org_units=self.org_units,
        )

    def meter_invocation(
        self, invocation: Invocation, *, request_prompt_tokens: int | None = None
    ) -> Metered:
        """Attribute and price a parsed invocation, or a group of them summed into one (the Athena
        engine's groups: `request_prompt_tokens` is then one request's prompt, see price_invocation)."""
        attribution = self.attribute(invocation)
        return Metered(
            invocation, attribution, self.price(invocation, request_prompt_tokens=request_prompt_tokens)
        )

    def price(self, invocation: Invocation, *, request_prompt_tokens: int | None = None) -> Priced:
        """What the invocation costs, at its model, source Region and tier (pricing.price_invocation)."""
        return price_invocation(
            self.prices,
            invocation.model_id,
            invocation.region,
            invocation.tokens,
            self.profiles,
            invocation.service_tier,
            request_prompt_tokens=request_prompt_tokens,
            unknown_model_rates=self.unknown_model_rates,
        )
