"""Caps on what callers mint: names a caller chooses must not create rows without bound.

A caller chooses its app claim (`requestMetadata`) and its model id, and each distinct value would
be a rollup per scope, a usage line and a metric. Per batch:
- a principal's claims beyond `app_claims_per_principal` distinct apps are charged to OTHER_APP
  (`app:(other)`), one scope whatever the number of claims; the principal's own scopes are charged
  in full, so no spend is lost, only the claimed app's name;
- unpriced model ids beyond `unknown_models_per_batch` distinct ids are kept as OTHER_UNKNOWN_MODEL
  in rollups and usage lines; the archive keeps every id as logged.
The calculator counts what it folded (EMF `AppClaimsFolded`, `UnknownModelsFolded`) and logs the
principals who hit the cap, so an operator sees who did it and can raise the cap.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

import msgspec

from budgetkeeper.metering.meter import Metered
from budgetkeeper.pricing.rates import PriceStatus

OTHER_APP = "app:(other)"
OTHER_UNKNOWN_MODEL = "(other unknown)"


@dataclass(slots=True)
class Folded:
    """What one batch folded: claimed calls per principal, and calls of unknown models."""

    app_claims: Counter[str] = field(default_factory=Counter)
    unknown_model_calls: int = 0


@dataclass(slots=True)
class MintedNames:
    """The names seen so far in one batch, and what was folded beyond the caps."""

    app_claims_per_principal: int
    unknown_models_per_batch: int
    claims: dict[str, set[str]] = field(default_factory=dict)  # principal -> claimed app scopes kept
    unknown_models: set[str] = field(default_factory=set)
    folded: Folded = field(default_factory=Folded)

    def cap(self, items: Iterable[Metered]) -> list[Metered]:
        return [self._cap(item) for item in items]

    def _cap(self, item: Metered) -> Metered:
        who = item.attribution
        if who.app_claimed and who.app is not None:
            kept = self.claims.setdefault(who.principal, set())
            if who.app not in kept and len(kept) >= self.app_claims_per_principal:
                scopes = tuple(OTHER_APP if scope == who.app else scope for scope in who.scopes)
                item = msgspec.structs.replace(item, attribution=replace(who, app=OTHER_APP, scopes=scopes))
                self.folded.app_claims[who.principal] += 1
            else:
                kept.add(who.app)
        if item.priced.status in (PriceStatus.UNKNOWN_MODEL, PriceStatus.ESTIMATED):  # names no table has
            model = item.model
            if model not in self.unknown_models:
                if len(self.unknown_models) >= self.unknown_models_per_batch:
                    self.folded.unknown_model_calls += 1
                    return msgspec.structs.replace(item, folded_model=OTHER_UNKNOWN_MODEL)
                self.unknown_models.add(model)
        return item
