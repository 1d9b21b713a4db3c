"""`make prices`' cross-check: each disagreement of the bundled table with genai-prices, both figures."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from budgetkeeper.domain.usage import ServiceTier
from budgetkeeper.pricing.table import ANY_REGION, PriceRow, PriceTable, Rates
from scripts.cross_check_prices import Disagreement, compare, current_price, their_rates

D = Decimal


def row(model: str, region: str, rates: Rates, tier: ServiceTier = ServiceTier.STANDARD) -> PriceRow:
    return PriceRow(model, region, rates, None, "test", date(2026, 1, 1), tier=tier)


def test_every_disagreement_is_listed_with_both_figures_and_agreement_is_not():
    # Given our table: one model in agreement, one with a different output price in a Region,
    # one whose cache write the other source does not price, a priority row, and one they don't know
    ours = PriceTable(
        [
            row("a.same-v1", ANY_REGION, Rates(D(1), D(2))),
            row("a.moved-v1", "us-east-1", Rates(D(3), D(15), cache_read=D("0.3"))),
            row("a.cache-v1", ANY_REGION, Rates(D(1), D(2), cache_write_5m=D("1.25"))),
            row("a.same-v1", ANY_REGION, Rates(D(9), D(9)), tier=ServiceTier.PRIORITY),
            row("a.new-v1", ANY_REGION, Rates(D(1), D(1))),
        ],
        version="test",
    )
    theirs = {
        "a.same-v1": Rates(D(1), D(2)),
        "a.moved-v1": Rates(D(3), D("16.5"), cache_read=D("0.3")),
        "a.cache-v1": Rates(D(1), D(2)),
    }
    # When they are compared
    check = compare(ours, lambda model: (f"their.{model}", theirs[model]) if model in theirs else None)
    # Then each differing charged rate is listed once, with both figures; the cache write they do
    # not price is charged at their input rate (the stand-in rule), so both its kinds differ
    assert check.disagreements == (
        Disagreement("a.moved-v1", "us-east-1", "output", D(15), D("16.5"), "their.a.moved-v1"),
        Disagreement("a.cache-v1", None, "cache_write_5m", D("1.25"), D(1), "their.a.cache-v1"),
        Disagreement("a.cache-v1", None, "cache_write_1h", D("1.25"), D(1), "their.a.cache-v1"),
    )
    # And the priority row is not compared (they have no tiers); the unknown model is counted
    assert check.compared_rows == 3 and check.unknown_to_them == ("a.new-v1",)


class _Price:
    def __init__(self, **fields):
        self.__dict__.update(fields)


class _Tiered:
    def __init__(self, base):
        self.base = base


class _Conditional:
    def __init__(self, start, prices):
        self.constraint = None if start is None else _Price(start_date=start)
        self.prices = prices


def test_their_prices_are_read_at_the_base_rate_in_force_on_the_day():
    old = _Price(input_mtok=D(5), output_mtok=D(30))
    new = _Price(input_mtok=_Tiered(D(4)), output_mtok=_Tiered(D(20)), cache_read_mtok=D("0.4"))
    prices = [_Conditional(None, old), _Conditional(date(2026, 8, 21), new)]
    assert their_rates(current_price(prices, date(2026, 8, 20))) == Rates(D(5), D(30))
    assert their_rates(current_price(prices, date(2026, 8, 21))) == Rates(D(4), D(20), cache_read=D("0.4"))
    assert their_rates(_Price(input_mtok=D(1))) is None  # no output price: not comparable


def test_the_installed_genai_prices_is_read_offline_by_its_own_match_rules():
    from scripts.cross_check_prices import genai_prices_lookup

    lookup = genai_prices_lookup(date(2026, 11, 12))
    their_model, rates = lookup("amazon.nova-pro-v1:0")
    assert their_model == "amazon.nova-pro-v1:0" and (rates.input, rates.output) == (D("0.8"), D("3.2"))
    assert lookup("acme.no-such-model-v1:0") is None
