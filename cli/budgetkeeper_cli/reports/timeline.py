"""Spend over time as a chart: every day or hour of a window on a continuous axis (zero ones too),
a money axis with ticks, the window before overlaid, budget lines and the forecast.

Geometry is computed here so the template only draws; every column carries its exact cost (the JSON
report's decimal string) and the chart's table lists the same slots.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from budgetkeeper.core import money
from budgetkeeper_cli.reports.aggregation import UsageReport
from budgetkeeper_cli.reports.rollups import ReportWindow

DAY, HOUR = timedelta(days=1), timedelta(hours=1)
PLOT_LEFT = 78  # room for the money axis labels ("$12,345.67")
PLOT_TOP = 22  # room for the value label above the highest column
PLOT_HEIGHT = 200
PLOT_WIDTH = 1120  # the plot area; the chart stays within a 1,400 px page
AXIS_BELOW = 42  # room for the time labels
MIN_LABEL_GAP = 84  # pixels between two time labels
# A label every this many slots, the first that leaves the gap: days by 1, 2, a week; hours on the clock.
LABEL_STEPS = {"day": (1, 2, 7, 14, 28), "hour": (1, 2, 3, 6, 12, 24, 48, 168)}
VALUE_LABEL_MIN_STEP = 34  # a column this wide or wider shows its value above it
_NICE_STEPS = (Decimal(1), Decimal(2), Decimal("2.5"), Decimal(5), Decimal(10))


@dataclass(frozen=True, slots=True)
class Slot:
    """One day or hour of the window: its spend, and the spend of the same slot in the window before."""

    key: str  # 2025-11-18 or 2025-11-18T09, as the report's day and hour groups are keyed
    label: str  # what the axis says
    cost: str  # exact decimal string
    shown: str
    calls: int
    x: float
    width: float
    top: float  # y of the column's top
    previous: str | None = None  # exact cost of the slot in the window before
    previous_y: float | None = None
    previous_shown: str = ""
    show_label: bool = True
    show_value: bool = False


@dataclass(frozen=True, slots=True)
class Tick:
    value: str  # exact
    shown: str
    y: float


@dataclass(frozen=True, slots=True)
class Level:
    """A horizontal line across the plot: a budget's limit, or the forecast at the window's end."""

    kind: str  # budget | forecast
    label: str
    value: str  # exact
    shown: str
    y: float


@dataclass(slots=True)
class TimeChart:
    id: str
    title: str
    step: str  # day | hour
    slots: list[Slot]
    ticks: list[Tick]
    levels: list[Level] = field(default_factory=list)
    previous_title: str | None = None
    plot_left: int = PLOT_LEFT
    plot_top: int = PLOT_TOP
    plot_width: float = PLOT_WIDTH
    plot_height: int = PLOT_HEIGHT

    @property
    def width(self) -> float:
        return self.plot_left + self.plot_width + 12

    @property
    def height(self) -> int:
        return self.plot_top + self.plot_height + AXIS_BELOW

    @property
    def baseline(self) -> int:
        return self.plot_top + self.plot_height

    @property
    def empty(self) -> bool:
        return all(slot.calls == 0 for slot in self.slots)


def slot_starts(window: ReportWindow, step: str) -> list[datetime]:
    """Every day (from the window's first midnight) or hour of the window, in time order."""
    size = DAY if step == "day" else HOUR
    moment = window.since.replace(hour=0) if step == "day" else window.since
    starts = []
    while moment < window.until:
        starts.append(moment)
        moment += size
    return starts


def slot_key(moment: datetime, step: str) -> str:
    return moment.strftime("%Y-%m-%d") if step == "day" else moment.strftime("%Y-%m-%dT%H")


def nice_top(highest: Decimal) -> tuple[Decimal, Decimal]:
    """The axis' top and tick step: 4 to 5 ticks of 1, 2, 2.5 or 5 times a power of ten."""
    if highest <= 0:
        return Decimal(1), Decimal("0.25")
    rough = highest / 4
    power = Decimal(10) ** (rough.adjusted())
    step = next(nice * power for nice in _NICE_STEPS if nice * power >= rough)
    top = step * ((highest / step).to_integral_value(rounding="ROUND_CEILING"))
    return top, step


def _y(value: Decimal, top: Decimal) -> float:
    return round(PLOT_TOP + PLOT_HEIGHT - float(value / top) * PLOT_HEIGHT, 2)


def build_time_chart(
    chart_id: str,
    title: str,
    step: str,
    report: UsageReport,
    window: ReportWindow,
    *,
    previous: UsageReport | None = None,
    levels: Sequence[tuple[str, str, Decimal]] = (),
) -> TimeChart:
    """`report` grouped by `step` (day or hour) over `window`, every slot drawn, zero or not.

    `previous`: the same grouping over `window.previous()`, overlaid slot by slot. `levels`: (kind,
    label, value) lines across the plot, e.g. a budget's limit or the forecast.
    """
    starts = slot_starts(window, step)
    before = slot_starts(window.previous(), step) if previous is not None else []
    totals = [report.totals_of((slot_key(start, step),)) for start in starts]
    earlier = [
        previous.totals_of((slot_key(before[index], step),)).cost_usd
        if previous is not None and index < len(before)
        else None
        for index in range(len(starts))
    ]
    highest = max(
        [t.cost_usd for t in totals] + [e for e in earlier if e is not None] + [v for _, _, v in levels],
        default=Decimal(0),
    )
    top, tick_step = nice_top(highest)
    width = PLOT_WIDTH / max(len(starts), 1)
    label_every = next(
        (every for every in LABEL_STEPS[step] if every * width >= MIN_LABEL_GAP), LABEL_STEPS[step][-1]
    )
    slots = [
        Slot(
            key=slot_key(start, step),
            label=_axis_label(start, step),
            cost=money.exact(totals[index].cost_usd),
            shown=money.dollars(totals[index].cost_usd),
            calls=totals[index].calls,
            x=round(PLOT_LEFT + index * width, 2),
            width=round(width, 2),
            top=_y(totals[index].cost_usd, top),
            previous=money.exact(earlier[index]) if earlier[index] is not None else None,
            previous_y=_y(earlier[index], top) if earlier[index] is not None else None,
            previous_shown=money.dollars(earlier[index]) if earlier[index] is not None else "",
            show_label=(start.hour if step == "hour" else index) % label_every == 0
            and index * width + MIN_LABEL_GAP <= PLOT_WIDTH + width,
            show_value=width >= VALUE_LABEL_MIN_STEP and totals[index].cost_usd > 0,
        )
        for index, start in enumerate(starts)
    ]
    ticks = []
    value = Decimal(0)
    while value <= top:
        ticks.append(Tick(money.exact(value), money.dollars(value), _y(value, top)))
        value += tick_step
    chart_levels = [
        Level(kind, label, money.exact(amount), money.dollars(amount), _y(amount, top))
        for kind, label, amount in levels
    ]
    return TimeChart(
        chart_id,
        title,
        step,
        slots,
        ticks,
        chart_levels,
        previous_title=str(window.previous()) if previous is not None else None,
        plot_width=PLOT_WIDTH,
    )


def _axis_label(start: datetime, step: str) -> str:
    return start.strftime("%a %d %b") if step == "day" else start.strftime("%d %b %H:00")
