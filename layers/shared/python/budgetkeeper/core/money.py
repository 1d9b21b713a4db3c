"""Money as text: the one place a Decimal dollar amount becomes a string.

Two readers, three functions:
- `money.exact`: for machines (JSON, CSV, the archive, price tables): plain notation, no exponent,
  no rounding, no trailing zeros (`1.8E-7` -> `0.00000018`, `3.750000` -> `3.75`, any zero -> `0`).
  Money is kept exact end to end, so its text is too.
- `money.cents`: for people (budgets, status, estimates, audit reasons, the demo): `$13.92`,
  `$0.01`, `<$0.01`, so a nonzero amount is never shown as zero; notices word amounts per language
  in budgetkeeper.notify.locale.
- `money.dollars`: for people reading the cost of single calls (report and meter tables): cents,
  six places below a cent; below a micro-dollar exact.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

_CENT = Decimal("0.01")
_MICRO_DOLLAR = Decimal("0.000001")


def exact(value: Decimal) -> str:
    """Plain decimal text of an exact amount: `1.8E-7` -> `0.00000018`, `1E+1` -> `10`, zero -> `0`."""
    return format(value.normalize(), "f") if value else "0"


def dollars(value: Decimal) -> str:
    """A dollar amount for people: cents, or more digits when below a cent."""
    if value == 0:
        return "$0.00"
    if abs(value) < _MICRO_DOLLAR:
        return f"${exact(value)}"  # exact: never a nonzero cost shown as zero
    if abs(value) < _CENT:
        return f"${value:.6f}"
    return f"${value:,.2f}"


def cents(value: Decimal) -> str:
    """A dollar amount in cents: `$1,234.50`; a nonzero amount below a cent is `<$0.01`, never `$0.00`."""
    if value and abs(value) < _CENT:
        return "<$0.01" if value > 0 else "-<$0.01"
    return f"${value.quantize(_CENT, ROUND_HALF_UP):,.2f}"
