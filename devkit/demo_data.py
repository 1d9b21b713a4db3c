"""A realistic day of Bedrock traffic, as model invocation log records: for the demo, tests and benchmarks.

Deterministic: the same day, count, seed and account give the same records, byte for byte. Every
name, email address and message is made up.

Who calls (21 principals in one account): eight IAM users (alice, the heavy user whose spend is
clearly the largest, bob, carol, dave, erin, frank, grace, heidi); five IAM Identity Center sessions,
named by email, on two shared `AWSReservedSSO_*` roles; four Lambda functions on the app roles
`ChatbotApp-BedrockRole` and `SupportBot-BedrockRole` (sessions named like the functions); two
long-term API-key users; a reporting job whose role is no app role but which names its app in
`requestMetadata` (`{"app": "ReportBuilder"}`); a nightly search indexer.

What they call: Claude Sonnet 4.5 (`us.` and `global.` profile ids, a system inference-profile ARN,
`eu.` from eu-west-1), Claude Haiku 4.5 (`us.`, `global.`, `eu.`), Claude 3 Haiku, Nova Micro, Lite
(also `eu.`) and Pro, Titan Text Embeddings v2, Llama 3.3 70B, Mistral Large (24.07), and a
provisioned-throughput model; from us-east-1, us-west-2 and eu-west-1; through all four logged
operations, streams included. Claude 4.5 calls use prompt caching (reads, writes, 1-hour writes
told apart in `usage.cache_creation` where the log shows it); about 1% of calls fail with
ThrottlingException (zero tokens). Each caller follows its own 24-hour rhythm (US office hours,
European office hours, customers round the clock, nightly jobs). Bodies are a few KB; an input
over `OFFLOAD_PROMPT_TOKENS` tokens is offloaded to S3 (`inputBodyS3Path`) as Bedrock does with
large bodies, and `write_s3_layout` writes those bodies under `data/`.

Cheap on purpose: the message texts, stream chunks and embeddings are built once; a record is a few
small dicts around them.
"""

from __future__ import annotations

import functools
import gzip
import json
import random
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import accumulate
from pathlib import Path
from typing import Any

DEMO_ACCOUNT = "111122223333"
DEMO_BUCKET = "budgetkeeper-demo-invocation-logs"  # named in the S3 paths of offloaded bodies
RECORDS_PER_OBJECT = 500  # Bedrock writes several objects an hour; one per region+hour chunk
OFFLOAD_PROMPT_TOKENS = 40_000  # inputs larger than this go to data/<requestId>_input.json.gz
LOG_PREFIX = "AWSLogs/{account}/BedrockModelInvocationLogs/"

SSO_DATA_SCIENCE_ROLE = "AWSReservedSSO_DataScience_4f1c9a7e2b5d8c30"
SSO_DEVELOPERS_ROLE = "AWSReservedSSO_Developers_9b2e6d4a1c7f3e58"

# Model ids as the logs show them; `{account}` is filled in per day.
SONNET_45_US = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
SONNET_45_GLOBAL = "global.anthropic.claude-sonnet-4-5-20250929-v1:0"
SONNET_45_EU = "eu.anthropic.claude-sonnet-4-5-20250929-v1:0"
SONNET_45_US_ARN = f"arn:aws:bedrock:us-east-1:{{account}}:inference-profile/{SONNET_45_US}"
HAIKU_45_US = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
HAIKU_45_GLOBAL = "global.anthropic.claude-haiku-4-5-20251001-v1:0"
HAIKU_45_EU = "eu.anthropic.claude-haiku-4-5-20251001-v1:0"
HAIKU_3 = "anthropic.claude-3-haiku-20240307-v1:0"
NOVA_MICRO = "amazon.nova-micro-v1:0"
NOVA_LITE = "amazon.nova-lite-v1:0"
NOVA_LITE_EU = "eu.amazon.nova-lite-v1:0"
NOVA_PRO_US = "us.amazon.nova-pro-v1:0"
TITAN_EMBED_V2 = "amazon.titan-embed-text-v2:0"
LLAMA_33_70B_US = "us.meta.llama3-3-70b-instruct-v1:0"
MISTRAL_LARGE = "mistral.mistral-large-2407-v1:0"
PROVISIONED_MODEL = "arn:aws:bedrock:us-east-1:{account}:provisioned-model/t2nq8y4c6w1z"

INVOKE = "InvokeModel"
INVOKE_STREAM = "InvokeModelWithResponseStream"
CONVERSE = "Converse"
CONVERSE_STREAM = "ConverseStream"

THROTTLED_SHARE = 0.01
THROTTLING = "ThrottlingException"


# --- who calls what ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Model:
    family: str  # body shape: claude, nova, llama, mistral, titan_embed
    body_name: str  # the model name inside response bodies
    caching: bool  # prompt caching with separately priced reads and writes (Claude 4.5)
    inference_regions: tuple[str, ...] = ()  # where a cross-region profile may run a call


_US = ("us-east-1", "us-east-2", "us-west-2")
_EU = ("eu-west-1", "eu-west-3", "eu-central-1", "eu-north-1")
_GLOBAL = ("us-east-1", "us-east-2", "us-west-2", "eu-west-1", "ap-northeast-1", "ap-southeast-2")

_MODELS: Mapping[str, _Model] = {
    SONNET_45_US: _Model("claude", "claude-sonnet-4-5-20250929", True, _US),
    SONNET_45_US_ARN: _Model("claude", "claude-sonnet-4-5-20250929", True, _US),
    SONNET_45_GLOBAL: _Model("claude", "claude-sonnet-4-5-20250929", True, _GLOBAL),
    SONNET_45_EU: _Model("claude", "claude-sonnet-4-5-20250929", True, _EU),
    HAIKU_45_US: _Model("claude", "claude-haiku-4-5-20251001", True, _US),
    HAIKU_45_GLOBAL: _Model("claude", "claude-haiku-4-5-20251001", True, _GLOBAL),
    HAIKU_45_EU: _Model("claude", "claude-haiku-4-5-20251001", True, _EU),
    HAIKU_3: _Model("claude", "claude-3-haiku-20240307", False),
    PROVISIONED_MODEL: _Model("claude", "claude-3-haiku-20240307", False),
    NOVA_MICRO: _Model("nova", "nova-micro", False),
    NOVA_LITE: _Model("nova", "nova-lite", False),
    NOVA_LITE_EU: _Model("nova", "nova-lite", False, _EU),
    NOVA_PRO_US: _Model("nova", "nova-pro", False, _US),
    TITAN_EMBED_V2: _Model("titan_embed", "titan-embed-text-v2", False),
    LLAMA_33_70B_US: _Model("llama", "llama3-3-70b-instruct", False, _US),
    MISTRAL_LARGE: _Model("mistral", "mistral-large-2407", False),
}

# Requests per UTC hour (00 to 23), relative; a caller's calls are spread over the day by its rhythm.
_RHYTHMS: Mapping[str, tuple[float, ...]] = {
    name: tuple(float(weight) for weight in weights.split())
    for name, weights in {
        # US office hours (Eastern and Pacific): 13:00 to 01:00 UTC
        "us_office": "3 2 1 .5 .3 .3 .3 .3 .4 .5 .8 1.5 4 7 9 10 10 9 8 9 8 6 5 4",
        # European office hours: 07:00 to 18:00 UTC
        "eu_office": ".2 .2 .2 .2 .3 .6 2 6 9 10 9 6 7 9 9 8 6 3 1.5 1 .6 .4 .3 .2",
        # customers round the clock, busiest in the American day
        "customers": "5 4 3 2.5 2 2 2.5 3 4 5 6 6 7 8 9 10 10 10 9 9 8 7 6 6",
        # batch jobs after midnight UTC
        "nightly": "2 8 10 9 6 2 .2 .1 .1 .1 .1 .1 .1 .1 .1 .1 .1 .1 .1 .1 .1 .1 .1 .5",
    }.items()
}


@dataclass(frozen=True, slots=True)
class _Size:
    """Token counts of a kind of work: log-normal around a median, capped."""

    input_median: int
    output_median: int
    cached_prefix: int  # tokens of a cacheable system prompt or document, 0 when there is none
    output_cap: int = 4096


_SIZES: Mapping[str, _Size] = {
    "heavy": _Size(2500, 1400, 60_000, 8192),  # long documents and code bases, kept in the cache
    "rag": _Size(4000, 500, 8_000),
    "chat": _Size(700, 350, 3_000),
    "short": _Size(220, 90, 0, 512),
    "embed": _Size(320, 0, 0),
}


@dataclass(frozen=True, slots=True)
class _Caller:
    arn: str  # `{account}` filled in per day
    weight: float  # share of the day's calls
    region: str
    models: tuple[tuple[str, float], ...]
    operations: tuple[tuple[str, float], ...]
    rhythm: str
    size: str
    cache_share: float = 0.0  # share of calls (to caching models) that use the prompt cache
    metadata: Mapping[str, str] | None = None  # requestMetadata of Converse calls
    use: str = "general"  # which prompts and answers the bodies hold


def _user(name: str) -> str:
    return f"arn:aws:iam::{{account}}:user/{name}"


def _session(role: str, session: str) -> str:
    return f"arn:aws:sts::{{account}}:assumed-role/{role}/{session}"


_ALL_OPS = ((INVOKE, 0.3), (INVOKE_STREAM, 0.2), (CONVERSE, 0.3), (CONVERSE_STREAM, 0.2))
_CONVERSE_OPS = ((CONVERSE, 0.6), (CONVERSE_STREAM, 0.4))

# Who calls, how much (weight), from where, which models and operations, when, and how big.
# fmt: off
_CALLERS: tuple[_Caller, ...] = (
    _Caller(_user("alice"), 10, "us-east-1",
            ((SONNET_45_US, 0.65), (SONNET_45_US_ARN, 0.25), (HAIKU_45_US, 0.1)),
            ((INVOKE_STREAM, 0.55), (INVOKE, 0.25), (CONVERSE_STREAM, 0.2)),
            "us_office", "heavy", cache_share=0.9, use="code"),
    _Caller(_user("bob"), 5, "us-east-1", ((HAIKU_45_US, 0.5), (NOVA_PRO_US, 0.3), (HAIKU_3, 0.2)),
            _ALL_OPS, "us_office", "chat", cache_share=0.2),
    _Caller(_user("carol"), 4, "us-west-2",
            ((SONNET_45_GLOBAL, 0.4), (LLAMA_33_70B_US, 0.3), (MISTRAL_LARGE, 0.3)),
            _ALL_OPS, "us_office", "chat", cache_share=0.3, use="code"),
    _Caller(_user("dave"), 3, "us-east-1", ((NOVA_MICRO, 0.5), (NOVA_LITE, 0.5)),
            _ALL_OPS, "us_office", "short"),
    _Caller(_user("erin"), 3, "us-east-1", ((PROVISIONED_MODEL, 0.6), (HAIKU_3, 0.4)),
            ((INVOKE, 1.0),), "us_office", "short", use="finance"),
    _Caller(_user("frank"), 2, "us-west-2", ((HAIKU_45_GLOBAL, 0.6), (SONNET_45_GLOBAL, 0.4)),
            _CONVERSE_OPS, "us_office", "chat", cache_share=0.3, use="code"),
    _Caller(_user("grace"), 3, "eu-west-1", ((SONNET_45_EU, 0.5), (HAIKU_45_EU, 0.3), (NOVA_LITE_EU, 0.2)),
            _ALL_OPS, "eu_office", "chat", cache_share=0.4),
    _Caller(_user("heidi"), 2, "eu-west-1", ((HAIKU_45_EU, 0.6), (NOVA_LITE_EU, 0.4)),
            _CONVERSE_OPS, "eu_office", "short"),
    _Caller(_session(SSO_DATA_SCIENCE_ROLE, "priya.shah@example.com"), 5, "us-east-1",
            ((SONNET_45_GLOBAL, 0.5), (SONNET_45_US, 0.2), (HAIKU_45_US, 0.3)),
            _ALL_OPS, "us_office", "rag", cache_share=0.5, use="analytics"),
    _Caller(_session(SSO_DATA_SCIENCE_ROLE, "tom.berg@example.com"), 4, "us-east-1",
            ((SONNET_45_US, 0.4), (LLAMA_33_70B_US, 0.3), (NOVA_PRO_US, 0.3)),
            _ALL_OPS, "us_office", "chat", cache_share=0.3, use="analytics"),
    _Caller(_session(SSO_DATA_SCIENCE_ROLE, "lena.ortiz@example.com"), 3, "eu-west-1",
            ((SONNET_45_EU, 0.6), (NOVA_LITE_EU, 0.4)),
            _CONVERSE_OPS, "eu_office", "rag", cache_share=0.4, use="analytics"),
    _Caller(_session(SSO_DEVELOPERS_ROLE, "sam.ito@example.com"), 3, "us-west-2",
            ((HAIKU_45_GLOBAL, 0.5), (SONNET_45_GLOBAL, 0.3), (NOVA_MICRO, 0.2)),
            _ALL_OPS, "us_office", "chat", cache_share=0.3, use="code"),
    _Caller(_session(SSO_DEVELOPERS_ROLE, "maria.lopez@example.com"), 2, "us-east-1",
            ((HAIKU_45_US, 0.7), (NOVA_LITE, 0.3)), _ALL_OPS, "us_office", "chat", use="code"),
    _Caller(_session("ChatbotApp-BedrockRole", "chatbot-prod-ChatFunction-1A2B3C4D5E6F"), 14, "us-east-1",
            ((HAIKU_45_US, 0.6), (HAIKU_3, 0.4)), ((CONVERSE_STREAM, 0.6), (CONVERSE, 0.4)),
            "customers", "chat", cache_share=0.7, use="support"),
    _Caller(_session("ChatbotApp-BedrockRole", "chatbot-prod-EmbedFunction-7G8H9J0K1L2M"), 6, "us-east-1",
            ((TITAN_EMBED_V2, 1.0),), ((INVOKE, 1.0),), "customers", "embed", use="support"),
    _Caller(_session("SupportBot-BedrockRole", "supportbot-prod-TriageFunction-3N4P5Q6R7S8T"), 8, "us-east-1",
            ((NOVA_LITE, 0.5), (HAIKU_3, 0.5)), ((INVOKE, 0.5), (CONVERSE, 0.5)),
            "customers", "short", use="support"),
    _Caller(_session("SupportBot-BedrockRole", "supportbot-prod-SummarizeFunction-9U0V1W2X3Y4Z"), 4,
            "us-west-2",
            ((SONNET_45_GLOBAL, 0.5), (HAIKU_45_GLOBAL, 0.5)), ((INVOKE_STREAM, 0.5), (INVOKE, 0.5)),
            "customers", "rag", cache_share=0.6, use="support"),
    _Caller(_user("BedrockAPIKey-x7k2"), 5, "us-east-1", ((NOVA_PRO_US, 0.5), (LLAMA_33_70B_US, 0.5)),
            ((CONVERSE, 0.5), (CONVERSE_STREAM, 0.3), (INVOKE, 0.2)), "customers", "chat"),
    _Caller(_user("BedrockAPIKey-m3p9"), 2, "us-west-2", ((MISTRAL_LARGE, 0.6), (NOVA_LITE, 0.4)),
            _ALL_OPS, "us_office", "chat"),
    _Caller(_session("ReportingJobRole", "report-builder-nightly"), 4, "us-east-1",
            ((SONNET_45_US, 0.5), (NOVA_PRO_US, 0.5)), _CONVERSE_OPS, "nightly", "rag", cache_share=0.5,
            metadata={"app": "ReportBuilder", "job": "daily-sales"}, use="finance"),
    _Caller(_session("SearchIndexerRole", "indexer-3"), 4, "us-east-1",
            ((TITAN_EMBED_V2, 1.0),), ((INVOKE, 1.0),), "nightly", "embed"),
)
# fmt: on


def principal_arns(account_id: str = DEMO_ACCOUNT) -> list[str]:
    """The identity ARNs of the demo's callers, the heavy user first."""
    return [caller.arn.format(account=account_id) for caller in _CALLERS]


def teams() -> dict[str, str]:
    """The demo's team mapping, scope -> team, as the teams table holds it.

    Users are mapped one by one, SSO sessions through their role, app sessions through their app,
    the reporting job through its role (its app is only claimed in requestMetadata, and a claim
    never reaches the app's team); heidi is left unmapped on purpose, so reports show spend
    without a team.
    """
    return {
        "user:alice": "research",
        "user:bob": "platform",
        "user:carol": "research",
        "user:dave": "platform",
        "user:erin": "finance",
        "user:frank": "platform",
        "user:grace": "research",
        f"role:{SSO_DATA_SCIENCE_ROLE}": "data-science",
        f"role:{SSO_DEVELOPERS_ROLE}": "platform",
        "app:ChatbotApp": "customer-experience",
        "app:SupportBot": "customer-experience",
        "app:ReportBuilder": "finance",
        "role:ReportingJobRole": "finance",
        "apikey:BedrockAPIKey-x7k2": "partners",
        "apikey:BedrockAPIKey-m3p9": "partners",
        "role:SearchIndexerRole": "search",
    }


# --- texts, built once -------------------------------------------------------------------------

_PROMPTS: Mapping[str, tuple[str, ...]] = {
    "general": (
        "Draft a short announcement for the team about the new expense policy: receipts are now "
        "uploaded through the portal, approvals take two working days, and travel over 500 EUR needs "
        "a manager's sign-off before booking.",
        "Rewrite this paragraph in plain English for a customer newsletter, keeping it under 120 words.",
        "List the pros and cons of moving our weekly planning meeting from Monday to Tuesday morning.",
        "Summarise the attached meeting notes into decisions, owners and due dates.",
    ),
    "code": (
        "Review this Python function for correctness and performance. It reads a CSV export of orders, "
        "groups them by customer and returns the ten customers with the highest total. Point out edge "
        "cases around empty files, duplicated headers and currency rounding.",
        "Explain why this SQL query does a full table scan on orders and propose an index.",
        "Write unit tests with pytest for the retry helper below; cover the back-off and the give-up path.",
        "Convert this Bash deployment script into a Makefile target and keep the error handling.",
    ),
    "analytics": (
        "Given the weekly active users table below, describe the trend and any anomaly in week 41.",
        "Suggest three features for a churn model from these event columns and explain each briefly.",
        "Summarise the A/B test results: variant B improved checkout conversion from 3.1% to 3.4% "
        "with 48,000 sessions per arm. Is the difference significant at the 5% level?",
        "Explain the difference between the median and the mean session length in this export.",
    ),
    "support": (
        "Customer message: my parcel shows delivered but I never received it. Order 88213.",
        "Customer message: how do I change the billing address on my account?",
        "Classify this ticket as billing, delivery, account or other and give a one-line summary.",
        "Customer message: the app logs me out every time I switch to the camera. Phone model X200.",
    ),
    "finance": (
        "Summarise yesterday's sales by region in three bullet points from the table below.",
        "Tag this invoice line with vendor, month, amount and currency: "
        "'Cloud services, November, 1,204.17 USD'.",
        "Write a two-sentence commentary on the gross margin change between Q2 and Q3.",
    ),
}

_ANSWERS: Mapping[str, tuple[str, ...]] = {
    "general": (
        "Here is a draft announcement:\n\nFrom 1 December, expense receipts go through the portal. "
        "Approvals take up to two working days. Any trip over 500 EUR needs your manager's sign-off "
        "before you book. Questions? Ask in #finance-help.",
        "Pros: Monday stays free for catching up; people have Monday's context. Cons: a shorter week "
        "for acting on decisions; it clashes with the Tuesday release review.",
        "Decisions: ship the beta on the 14th (owner: platform). Owners and dates are listed below.",
    ),
    "code": (
        "The function is correct for well-formed input, but: an empty file raises StopIteration at "
        "the header read; duplicated headers silently overwrite columns in DictReader; and summing "
        "floats accumulates rounding errors, so use Decimal for currency. Sorting the whole dict to "
        "take ten items is O(n log n); heapq.nlargest(10, ...) is O(n log 10).",
        "The WHERE clause wraps created_at in a function, so the planner cannot use the index. "
        "Compare the raw column with a range instead, and add an index on (customer_id, created_at).",
        "Here are four tests: success on first try, success after two retries, back-off timing with a "
        "fake clock, and giving up after the maximum attempts with the last error re-raised.",
    ),
    "analytics": (
        "Weekly actives grew about 2% a week until week 40. Week 41 dropped 9%, which lines up with "
        "the outage on the 9th; week 42 recovered to the trend line.",
        "1. Days since last login. 2. Support tickets in the last 30 days. 3. Share of sessions on mobile.",
        "With 48,000 sessions per arm, the lift from 3.1% to 3.4% gives z of about 2.7, so p is about "
        "0.007: significant at the 5% level.",
    ),
    "support": (
        "I'm sorry your parcel hasn't arrived. I've opened a trace with the carrier for order 88213; "
        "you'll hear from us within 48 hours, and we'll resend it if it can't be found.",
        "You can change it under Account > Billing > Address. The change applies from your next invoice.",
        "Category: delivery. Summary: parcel marked delivered but not received.",
        "Thanks for the details. Please update the app to 4.12, which fixes a logout on camera switch.",
    ),
    "finance": (
        "- EMEA up 4% on the week\n- AMER flat\n- APAC down 2% after the holiday",
        "vendor=Cloud services; month=November; amount=1204.17; currency=USD",
        "Gross margin rose 1.2 points to 41.8% in Q3, mainly from lower freight costs.",
    ),
}

_SYSTEM_PROMPTS: Mapping[str, str] = {
    "general": "You are a helpful assistant for an internal workplace. Be concise and friendly.",
    "code": "You are a senior software engineer. Review code carefully; prefer small, tested changes.",
    "analytics": "You are a data analyst. Say which numbers you used and how you computed results.",
    "support": "You are the support assistant of an online shop. Never promise refunds; offer a trace or "
    "a hand-over to a human agent instead.",
    "finance": "You prepare short finance summaries. Use the figures given; never invent numbers.",
}

# Filler that makes bodies a few KB, like real prompts with pasted context.
_CONTEXT = (
    "Context follows. Orders table: order_id, customer_id, created_at, status, total, currency. "
    "Customers table: customer_id, region, segment, signed_up_at. Events: session_id, user_id, event, "
    "ts, device. Policy excerpt: travel must be booked through the portal; receipts are kept for "
    "seven years; approvals follow the cost-centre hierarchy. "
)


@dataclass(frozen=True, slots=True)
class _Texts:
    prompts: tuple[str, ...]
    answers: tuple[str, ...]
    answer_pieces: tuple[tuple[str, ...], ...]  # each answer cut into stream chunks
    system: str


def _pieces(text: str, size: int = 48) -> tuple[str, ...]:
    return tuple(text[start : start + size] for start in range(0, len(text), size)) or ("",)


@functools.cache
def _texts() -> dict[str, _Texts]:
    texts = {}
    for use, prompts in _PROMPTS.items():
        with_context = tuple(
            f"{prompt}\n\n{_CONTEXT * repeat}" for prompt in prompts for repeat in (2, 5, 9)
        )  # about 0.8, 2 and 3.5 KB
        answers = _ANSWERS[use]
        texts[use] = _Texts(with_context, answers, tuple(_pieces(a) for a in answers), _SYSTEM_PROMPTS[use])
    return texts


@functools.cache
def _embeddings() -> tuple[tuple[float, ...], ...]:
    rng = random.Random(1024)
    return tuple(tuple(round(rng.uniform(-0.12, 0.12), 6) for _ in range(256)) for _ in range(4))


# --- records -----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Call:
    """One sampled call: who, what, when and how many tokens of each kind."""

    caller: _Caller
    model_id: str
    model: _Model
    operation: str
    moment: datetime
    request_id: str
    input: int
    output: int
    cache_read: int
    cache_write_5m: int
    cache_write_1h: int
    error: str | None
    texts: _Texts
    pick: int  # which prompt and answer
    inference_region: str | None  # where a cross-region profile ran the call


def generate_day(
    day: date, *, records: int = 3000, seed: int = 7, account_id: str = DEMO_ACCOUNT
) -> list[dict[str, Any]]:
    """`records` invocation log records spread over the 24 UTC hours of `day`, in time order.

    The traffic depends on `seed`, not on the date, so a demo or a bench tells the same story on any day.
    """
    rng = random.Random(f"{seed}:{account_id}")  # the same day's shape on any date
    texts = _texts()
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    callers = _CALLERS
    caller_weights = list(accumulate(caller.weight for caller in callers))
    hour_weights = {name: list(accumulate(weights)) for name, weights in _RHYTHMS.items()}
    calls: list[_Call] = []
    for caller in rng.choices(callers, cum_weights=caller_weights, k=records):
        model_id = _weighted(rng, caller.models)
        model = _MODELS[model_id]
        operation = INVOKE if model.family == "titan_embed" else _weighted(rng, caller.operations)
        hour = rng.choices(range(24), cum_weights=hour_weights[caller.rhythm])[0]
        moment = start + timedelta(hours=hour, seconds=rng.randrange(3600))
        calls.append(_sample_tokens(rng, caller, model_id, model, operation, moment, texts[caller.use]))
    calls.sort(key=lambda call: call.moment)
    return [_record(call, account_id) for call in calls]


def _weighted(rng: random.Random, choices: Sequence[tuple[str, float]]) -> str:
    return rng.choices([name for name, _ in choices], weights=[weight for _, weight in choices])[0]


def _tokens(rng: random.Random, median: int, cap: int) -> int:
    return max(1, min(cap, int(median * rng.lognormvariate(0, 0.6))))


def _sample_tokens(
    rng: random.Random,
    caller: _Caller,
    model_id: str,
    model: _Model,
    operation: str,
    moment: datetime,
    texts: _Texts,
) -> _Call:
    size = _SIZES[caller.size]
    request_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    pick = rng.randrange(len(texts.prompts) * len(texts.answers))
    call = _Call(
        caller, model_id, model, operation, moment, request_id, 0, 0, 0, 0, 0, None, texts, pick, None
    )
    if rng.random() < THROTTLED_SHARE:
        call.error = THROTTLING
        return call
    regions = model.inference_regions
    if regions:  # mostly served at home when the profile covers the source region
        stay = caller.region in regions and rng.random() < 0.5
        call.inference_region = caller.region if stay else rng.choice(regions)
    # Caps keep every prompt under the 200K-token long-context threshold of Claude Sonnet.
    call.input = _tokens(rng, size.input_median, 50_000)
    call.output = 0 if model.family == "titan_embed" else _tokens(rng, size.output_median, size.output_cap)
    if model.caching and size.cached_prefix and rng.random() < caller.cache_share:
        prefix = _tokens(rng, size.cached_prefix, 140_000)
        if rng.random() < 0.15:  # the first call of a while writes the cache, later ones read it
            one_hour = prefix if operation in (INVOKE, INVOKE_STREAM) and rng.random() < 0.4 else 0
            call.cache_write_1h, call.cache_write_5m = one_hour, prefix - one_hour
        else:
            call.cache_read = prefix
        call.input = max(1, call.input // 8)  # the uncached rest of the prompt
    return call


def _record(call: _Call, account_id: str) -> dict[str, Any]:
    caller, model = call.caller, call.model
    region = caller.region
    model_id = call.model_id.format(account=account_id)
    texts = call.texts
    prompt = texts.prompts[call.pick % len(texts.prompts)]
    answer_index = call.pick % len(texts.answers)
    cache_counts = model.caching or model.family == "nova" or call.operation == CONVERSE_STREAM
    input_section: dict[str, Any] = {"inputContentType": "application/json"}
    prompt_total = call.input + call.cache_read + call.cache_write_5m + call.cache_write_1h
    if prompt_total > OFFLOAD_PROMPT_TOKENS:
        input_section["inputBodyS3Path"] = _body_uri(
            DEMO_BUCKET, account_id, region, call.moment, call.request_id
        )
    else:
        input_section["inputBodyJson"] = _input_body(call, prompt, texts.system)
    input_section["inputTokenCount"] = call.input
    if cache_counts and call.error is None:
        input_section["cacheReadInputTokenCount"] = call.cache_read
        input_section["cacheWriteInputTokenCount"] = call.cache_write_5m + call.cache_write_1h
    output_section: dict[str, Any] = {"outputContentType": "application/json"}
    if call.error is None:
        output_section["outputBodyJson"] = _output_body(
            call, texts.answers[answer_index], texts.answer_pieces[answer_index]
        )
        if model.family != "titan_embed":
            output_section["outputTokenCount"] = call.output
    else:
        output_section["outputTokenCount"] = 0
    record: dict[str, Any] = {
        "schemaType": "ModelInvocationLog",
        "schemaVersion": "1.0",
        "timestamp": call.moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "accountId": account_id,
        "identity": {"arn": caller.arn.format(account=account_id)},
        "region": region,
        "requestId": call.request_id,
        "operation": call.operation,
        "modelId": model_id,
    }
    if call.inference_region is not None:
        record["inferenceRegion"] = call.inference_region
    record["input"] = input_section
    record["output"] = output_section
    if caller.metadata is not None and call.operation in (CONVERSE, CONVERSE_STREAM):
        record["requestMetadata"] = dict(caller.metadata)
    if call.error is not None:
        record["errorCode"] = call.error
    return record


def _body_uri(bucket: str, account_id: str, region: str, moment: datetime, request_id: str) -> str:
    return f"s3://{bucket}/{_hour_prefix(account_id, region, moment)}data/{request_id}_input.json.gz"


def _hour_prefix(account_id: str, region: str, moment: datetime) -> str:
    return f"{LOG_PREFIX.format(account=account_id)}{region}/{moment:%Y/%m/%d/%H}/"


def _is_converse(operation: str) -> bool:
    return operation in (CONVERSE, CONVERSE_STREAM)


def _input_body(call: _Call, prompt: str, system: str) -> dict[str, Any]:
    family, cached = call.model.family, bool(call.cache_read or call.cache_write_5m or call.cache_write_1h)
    max_tokens = 4096 if call.output > 1024 else 1024
    if _is_converse(call.operation):
        system_blocks: list[dict[str, Any]] = [{"text": system}]
        if cached:
            system_blocks.append({"cachePoint": {"type": "default"}})
        return {
            "messages": [{"role": "user", "content": [{"text": prompt}]}],
            "system": system_blocks,
            "inferenceConfig": {"maxTokens": max_tokens, "temperature": 0.5},
        }
    if family == "claude":
        system_block: dict[str, Any] = {"type": "text", "text": system}
        if cached:
            system_block["cache_control"] = (
                {"type": "ephemeral", "ttl": "1h"} if call.cache_write_1h else {"type": "ephemeral"}
            )
        return {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": max_tokens,
            "system": [system_block],
            "messages": [{"role": "user", "content": [{"type": "text", "text": prompt}]}],
        }
    if family == "nova":
        return {
            "schemaVersion": "messages-v1",
            "system": [{"text": system}],
            "messages": [{"role": "user", "content": [{"text": prompt}]}],
            "inferenceConfig": {"maxTokens": max_tokens, "temperature": 0.5},
        }
    if family == "llama":
        return {
            "prompt": "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
            f"{system}<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n{prompt}<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n",
            "max_gen_len": max_tokens,
            "temperature": 0.5,
            "top_p": 0.9,
        }
    if family == "mistral":
        return {
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": prompt}],
            "max_tokens": max_tokens,
            "temperature": 0.5,
        }
    return {"inputText": prompt[:2000], "dimensions": 256, "normalize": True}  # titan_embed


def _output_body(call: _Call, answer: str, pieces: tuple[str, ...]) -> Any:
    family, operation = call.model.family, call.operation
    latency = 300 + call.output * 12 + call.pick % 97
    if _is_converse(operation):
        usage: dict[str, Any] = {
            "inputTokens": call.input,
            "outputTokens": call.output,
            "totalTokens": call.input
            + call.output
            + call.cache_read
            + call.cache_write_5m
            + call.cache_write_1h,
        }
        if call.model.caching:
            usage["cacheReadInputTokens"] = call.cache_read
            usage["cacheWriteInputTokens"] = call.cache_write_5m + call.cache_write_1h
        return {
            "output": {"message": {"role": "assistant", "content": [{"text": answer}]}},
            "stopReason": "end_turn",
            "metrics": {"latencyMs": latency},
            "usage": usage,
        }
    metrics = {
        "inputTokenCount": call.input,
        "outputTokenCount": call.output,
        "invocationLatency": latency,
        "firstByteLatency": 180 + call.pick % 211,
    }
    if family == "claude":
        return _claude_output(call, answer, pieces, operation, metrics)
    if family == "nova":
        if operation == INVOKE:
            return {
                "output": {"message": {"content": [{"text": answer}], "role": "assistant"}},
                "stopReason": "end_turn",
                "usage": {
                    "inputTokens": call.input,
                    "outputTokens": call.output,
                    "totalTokens": call.input + call.output,
                },
            }
        return [
            {"messageStart": {"role": "assistant"}},
            *({"contentBlockDelta": {"delta": {"text": piece}, "contentBlockIndex": 0}} for piece in pieces),
            {"contentBlockStop": {"contentBlockIndex": 0}},
            {"messageStop": {"stopReason": "end_turn"}},
            {
                "metadata": {
                    "usage": {"inputTokens": call.input, "outputTokens": call.output},
                    "metrics": {},
                },
                "amazon-bedrock-invocationMetrics": metrics,
            },
        ]
    if family == "llama":
        if operation == INVOKE:
            return {
                "generation": answer,
                "prompt_token_count": call.input,
                "generation_token_count": call.output,
                "stop_reason": "stop",
            }
        chunks: list[dict[str, Any]] = [
            {
                "generation": piece,
                "prompt_token_count": call.input if index == 0 else None,
                "generation_token_count": index + 1,
                "stop_reason": None,
            }
            for index, piece in enumerate(pieces)
        ]
        chunks.append(
            {
                "generation": "",
                "prompt_token_count": None,
                "generation_token_count": call.output,
                "stop_reason": "stop",
                "amazon-bedrock-invocationMetrics": metrics,
            }
        )
        return chunks
    if family == "mistral":
        if operation == INVOKE:
            return {
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": answer}, "stop_reason": "stop"}
                ]
            }
        chunks = [
            {
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": piece}, "stop_reason": None}
                ]
            }
            for piece in pieces
        ]
        chunks.append(
            {
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": ""}, "stop_reason": "stop"}
                ],
                "amazon-bedrock-invocationMetrics": metrics,
            }
        )
        return chunks
    embedding = _embeddings()[call.pick % 4]
    return {
        "embedding": embedding,
        "embeddingsByType": {"float": embedding},
        "inputTextTokenCount": call.input,
    }


def _claude_output(
    call: _Call, answer: str, pieces: tuple[str, ...], operation: str, metrics: dict[str, Any]
) -> Any:
    usage: dict[str, Any] = {"input_tokens": call.input}
    if call.model.caching:
        usage["cache_creation_input_tokens"] = call.cache_write_5m + call.cache_write_1h
        usage["cache_read_input_tokens"] = call.cache_read
        usage["cache_creation"] = {
            "ephemeral_5m_input_tokens": call.cache_write_5m,
            "ephemeral_1h_input_tokens": call.cache_write_1h,
        }
    message_id = f"msg_bdrk_01{call.request_id.replace('-', '')[:22]}"
    if operation == INVOKE:
        usage["output_tokens"] = call.output
        return {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": call.model.body_name,
            "content": [{"type": "text", "text": answer}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": usage,
        }
    usage["output_tokens"] = 1
    if call.model.caching:
        metrics = {
            **metrics,
            "cacheReadInputTokenCount": call.cache_read,
            "cacheWriteInputTokenCount": call.cache_write_5m + call.cache_write_1h,
        }
    return [
        {
            "type": "message_start",
            "message": {
                "id": message_id,
                "type": "message",
                "role": "assistant",
                "model": call.model.body_name,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": usage,
            },
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        *(
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}
            for piece in pieces
        ),
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": call.output},
        },
        {"type": "message_stop", "amazon-bedrock-invocationMetrics": metrics},
    ]


# --- malformed events --------------------------------------------------------------------------


def malformed_lines() -> list[str]:
    """Log lines the meter must count as malformed, not crash on: for the demo to show."""
    records = generate_day(date(2025, 11, 18), records=3, seed=99)
    whole = json.dumps(records[0], separators=(",", ":"))
    missing_request_id = {key: value for key, value in records[1].items() if key != "requestId"}
    negative_count = json.loads(json.dumps(records[2]))
    negative_count["input"]["inputTokenCount"] = -12
    return [
        whole[: len(whole) // 2],  # truncated JSON, as a cut-off download leaves it
        json.dumps(missing_request_id, separators=(",", ":")),
        json.dumps(negative_count, separators=(",", ":")),
        "CWL CONTROL MESSAGE: Checking health of destination Firehose.",
    ]


# --- delivery layout ---------------------------------------------------------------------------


def layout_objects(
    records: Sequence[Mapping[str, Any]],
    account_id: str = DEMO_ACCOUNT,
    *,
    bucket: str = DEMO_BUCKET,
    prefix: str = "",
    records_per_object: int = RECORDS_PER_OBJECT,
    bodies: bool = True,
) -> Iterator[tuple[str, bytes]]:
    """(key, gzipped bytes) of every object Bedrock would deliver for `records`.

    Records are grouped by source region and hour into gzipped JSON-lines objects of at most
    `records_per_object` records, named by a UUID derived from their first request id (so writing
    the same records again replaces the same objects). With `bodies`, each offloaded input body is
    written to `.../HH/data/<requestId>_input.json.gz`, and records point at it in `bucket`.
    """
    chunks: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for record in records:
        chunks.setdefault((record["region"], record["timestamp"][:13]), []).append(record)
    for (region, hour), chunk in sorted(chunks.items()):
        moment = datetime.fromisoformat(f"{hour}:00:00+00:00")
        folder = prefix + _hour_prefix(account_id, region, moment)
        for start in range(0, len(chunk), records_per_object):
            part = chunk[start : start + records_per_object]
            lines = []
            for record in part:
                input_section = record.get("input", {})
                if "inputBodyS3Path" in input_section:
                    key = f"{folder}data/{record['requestId']}_input.json.gz"
                    if bodies:
                        yield key, _gzip(json.dumps(_offloaded_body(record)).encode())
                    uri = f"s3://{bucket}/{key}"
                    if input_section["inputBodyS3Path"] != uri:
                        record = {**record, "input": {**input_section, "inputBodyS3Path": uri}}
                lines.append(json.dumps(record, separators=(",", ":"), ensure_ascii=False))
            name = uuid.uuid5(uuid.NAMESPACE_URL, f"{folder}{part[0]['requestId']}")
            yield f"{folder}{name}.json.gz", _gzip(("\n".join(lines) + "\n").encode())


def write_s3_layout(
    records: Sequence[Mapping[str, Any]],
    s3_client: Any,
    bucket: str,
    account_id: str = DEMO_ACCOUNT,
    *,
    prefix: str = "",
    records_per_object: int = RECORDS_PER_OBJECT,
    bodies: bool = True,
) -> list[str]:
    """Put `records` into `bucket` as Bedrock delivers invocation logs; returns the keys written."""
    keys = []
    for key, data in layout_objects(
        records,
        account_id,
        bucket=bucket,
        prefix=prefix,
        records_per_object=records_per_object,
        bodies=bodies,
    ):
        s3_client.put_object(Bucket=bucket, Key=key, Body=data, ContentType="application/x-gzip")
        keys.append(key)
    return keys


def write_local_layout(
    records: Sequence[Mapping[str, Any]],
    root: Path,
    account_id: str = DEMO_ACCOUNT,
    *,
    records_per_object: int = RECORDS_PER_OBJECT,
    bodies: bool = True,
) -> list[Path]:
    """The same objects as files under `root`, as `aws s3 sync` would download them."""
    paths = []
    for key, data in layout_objects(
        records, account_id, records_per_object=records_per_object, bodies=bodies
    ):
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        paths.append(path)
    return paths


def _offloaded_body(record: Mapping[str, Any]) -> dict[str, Any]:
    texts = _texts()["code"]
    prompt = texts.prompts[int(record["requestId"][:8], 16) % len(texts.prompts)]
    if _is_converse(record["operation"]):
        return {
            "messages": [{"role": "user", "content": [{"text": prompt}]}],
            "system": [{"text": texts.system}, {"cachePoint": {"type": "default"}}],
            "inferenceConfig": {"maxTokens": 4096, "temperature": 0.5},
        }
    return {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 4096,
        "system": [{"type": "text", "text": texts.system, "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": prompt}]}],
    }


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=6, mtime=0)
