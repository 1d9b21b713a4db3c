"""The enforcement model: random sequences of operations on the real stack, invariants after each.

Each example is a fresh stack on moto, made from template.yaml: the real usage calculator, the
real workflow and deny tasks running the real ASL (moto's executor), the real monitor. Wait states
end when the product's clock reaches their end (`WaitControl(follow_clock=True)`), so time moves
only in the `advance` step, and after every step `settle()` blocks until every run is asleep in a
Wait that ends later: the invariants are checked on a system at rest.

The numbered invariants are the issue's (26):
1. every deny IAM holds has a live holder in the records, and every record's deny is in IAM;
2. every principal whose trusted spend is over an enforcing limit, past its grace, is denied;
3. no protected or excluded principal is denied, through any scope;
4. no principal is denied for spend that only others claimed;
5. every total equals an independent sum of the records fed in, to the nano-dollar;
6. an operator hold is lifted only by its own end or by a restore.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from unittest import mock

import botocore.httpsession
import botocore.session
from aws_lambda_powertools.utilities import parameters
from botocore.exceptions import ClientError
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    MultipleResults,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
)
from hypothesis.strategies._internal.featureflags import FeatureFlags
from moto import mock_aws
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
from moto.stepfunctions.parser.asl.parse.preprocessor import Preprocessor

import devkit.harness.workflow as harness_workflow
from budgetkeeper.budgets.rules import ENFORCING
from budgetkeeper.core import clock as product_clock
from budgetkeeper.core.windows import iso_utc
from budgetkeeper.enforcement.iam_denies import IamDenies
from budgetkeeper.enforcement.identity_center import connect_identity_center
from budgetkeeper.enforcement.runs import WorkflowStarter, operator_request
from budgetkeeper.pricing.profiles import InferenceProfiles
from budgetkeeper.storage import budget_rows
from budgetkeeper.storage.audit_rows import Change
from budgetkeeper.storage.tables import BudgetItem, DenyItem, TeamItem, TotalItem
from devkit.harness.clock import ManualClock
from devkit.harness.lambdas import invoke
from devkit.harness.logs import cloudwatch_payload, converse_message, firehose_event
from devkit.harness.stack import LocalStack
from devkit.harness.workflow import WaitControl, real_handlers
from tests.conftest import PINNED_MOMENT
from tests.integration.conftest import MOTO_CONFIG
from tests.model.expectation import (
    ACCOUNT,
    BUDGET_SCOPES,
    CALLERS,
    CHATBOT_ROLE,
    CLAIMS,
    DEFAULT_BUDGET_KINDS,
    DEFAULT_WINDOWS,
    GROUP_MEMBERS,
    NANO_PER_TOKEN,
    PRINCIPAL_KINDS,
    SHARED_ROLE,
    SSO_ROLE,
    TEAM,
    TEAM_APP,
    TEAM_MEMBERS,
    USD,
    WINDOWS,
    Hold,
    ModelBudget,
    charge,
    charges_aimed_at,
    deny_reach,
    entity_of,
    neighbourhood,
    trusted_reach,
    window_of,
)
from tests.opt_in import OPTED_IN

# Where every example starts: a Wednesday 10:00 UTC, mid-month.
START = PINNED_MOMENT
IDENTITY_CENTER_ADMIN = "arn:aws:iam::123456789012:role/IdentityCenterAdmin"
OPERATOR = "arn:aws:iam::123456789012:user/oncall"
NOVA_PRO = "amazon.nova-pro-v1:0"
CALLERS_PROFILE = f"arn:aws:bedrock:us-east-1:{ACCOUNT}:application-inference-profile/m4ll0ry0wn"
SHARED_SCOPES = (f"team:{TEAM}", "app:Chatbot", f"role:{CHATBOT_ROLE}", f"app:{TEAM_APP}")
# What an example may start with an operator's hold on: scopes whose hold denies someone.
HOLD_SCOPES = (
    f"team:{TEAM}",
    "app:Chatbot",
    f"role:{CHATBOT_ROLE}",
    "user:alice",
    f"session:{SHARED_ROLE}/carol",
)
GUARDS = (None, "protect", "exclude")
SPENDS_USD = (Decimal("0.3"), Decimal("0.6"), Decimal("1.2"))  # never equal to a limit below
LIMITS_USD = (Decimal("0.5"), Decimal("1"), Decimal("2"), Decimal("5"))
GRACES = (0, 600)
HOLD_LENGTHS = {"30m": timedelta(minutes=30), "2h": timedelta(hours=2)}
HOLD_ENDS = (None, *HOLD_LENGTHS)
# A deny due after a grace period: the Wait ends at grace, the model looks this much later.
SLACK = timedelta(seconds=2)

ALL_CHECKS = frozenset(range(1, 7))
MOVES_IN_A_ROW = 2  # the clock moves at most this often between two other steps
VERBOSE = bool(os.environ.get("MODEL_VERBOSE"))  # each step on stderr as it runs


_parse_asl = AmazonStateLanguageParser.parse


@functools.cache
def _asl_syntax_tree(definition: str):
    return _parse_asl(definition)[1]


def _parse_asl_once(definition: str):
    """moto parses the ASL at every execution (0.2 s here); the syntax tree is the same each time,
    so it is parsed once and only turned into fresh evaluation components per run."""
    tree = _asl_syntax_tree(definition)
    return Preprocessor().visit(tree), tree


_SSL_CONTEXT = botocore.httpsession.create_urllib3_context()


def _moto_made_faster() -> contextlib.ExitStack:
    """Costs that are the same at every call and change nothing moto answers: the ASL's parse;
    a new boto3 client for every call of the stack's set-up and of a handler (each loads its
    service model and copies every event hook moto registered), made once per session and
    arguments instead; the TLS context each client loads its CA bundle into (moto answers in
    process; no connection is ever made)."""
    patches = contextlib.ExitStack()
    patches.enter_context(
        mock.patch.object(AmazonStateLanguageParser, "parse", staticmethod(_parse_asl_once))
    )
    patches.enter_context(
        mock.patch.object(botocore.httpsession.URLLib3Session, "_get_ssl_context", lambda _: _SSL_CONTEXT)
    )
    clients: dict[tuple, tuple[botocore.session.Session, object]] = {}  # this example's only
    create_client = botocore.session.Session.create_client

    def create_client_once(session: botocore.session.Session, *args, **kwargs):
        key = (id(session), args, tuple(sorted(kwargs.items())))
        if key not in clients:  # the session is kept with its client: its id is not reused
            clients[key] = (session, create_client(session, *args, **kwargs))
        return clients[key][1]

    patches.enter_context(mock.patch.object(botocore.session.Session, "create_client", create_client_once))
    return patches


class EnforcementModel(RuleBasedStateMachine):
    checks: frozenset[int] = ALL_CHECKS  # which invariants this machine asserts
    # Each example looks closely at one caller: the scopes its calls and claims reach (and one more)
    # are the ones operators budget, protect, exclude, suspend and restore, so that steps meet.
    cast = Bundle("cast")
    budgeted = Bundle("budgeted")  # scopes an operator set a budget on
    held = Bundle("held")  # scopes an operator suspended

    def __init__(self) -> None:
        super().__init__()
        # Hypothesis' swarm testing switches a random share of the rules off for a whole example:
        # over thousands of cheap examples that finds what one rule would mask; over the tens this
        # budget affords, it mostly makes examples of clock moves alone. Every rule stays on.
        self._rules_strategy.enabled_rules_strategy = st.just(FeatureFlags())
        if only := os.environ.get("MODEL_CHECKS"):  # e.g. "4,6": look for one kind of defect
            self.checks = self.checks & {int(number) for number in only.split(",")}
        self.started = time.monotonic()
        self.exits = contextlib.ExitStack()
        self.exits.enter_context(_moto_made_faster())
        self.exits.enter_context(mock_aws(config=MOTO_CONFIG))
        parameters.clear_caches()
        self.exits.callback(parameters.clear_caches)
        self.stack = LocalStack(parameters={"IdentityCenterAdminRoleArn": IDENTITY_CENTER_ADMIN}).create()
        self.settings = self.exits.enter_context(self.stack.activated())
        self.clock = ManualClock(START)
        self.exits.enter_context(product_clock.use(self.clock))
        # Bedrock's answers for the profile a caller made and tagged app=Chatbot herself (moto has
        # no application inference profiles).
        self.exits.enter_context(
            mock.patch.object(InferenceProfiles, "tags_for", lambda _, arn: {"app": "Chatbot"})
        )
        self.exits.enter_context(
            mock.patch.object(InferenceProfiles, "model_id_for", lambda _, arn: NOVA_PRO)
        )
        self.failing: tuple[str, bool] | None = None  # the next task to fail once: (function, after its work)
        self.exits.enter_context(mock.patch.object(harness_workflow, "invoke", self._invoke_failing_once))
        self.waits = self.exits.enter_context(real_handlers(self.stack, WaitControl(follow_clock=True)))
        self.exits.callback(self._stop_runs)
        self._create_directory()
        self.iam_denies = IamDenies(
            self.stack.client("iam"), self.stack.physical_ids["BedrockDenyPolicy"], self._identity_center
        )
        self.starter = WorkflowStarter(
            self.stack.client("stepfunctions"), self.stack.physical_ids["BudgetEnforcementStateMachine"]
        )
        # The model's own expectation.
        self.budgets: dict[tuple[str, str], ModelBudget] = {}
        self.holds: list[Hold] = []
        self.exclusions: tuple[str, ...] = ()
        self.grandfathered: set[str] = set()  # protected or excluded while already denied
        self.last_batch: dict | None = None
        self.clock_moves_in_a_row = 0

    # ------------------------------------------------------------------ set-up and tear-down

    def _create_directory(self) -> None:
        iam = self.stack.client("iam")
        for name in ("alice", "bob", "mallory", "BedrockAPIKey-k1"):
            iam.create_user(UserName=name)
        iam.create_group(GroupName=TEAM)
        iam.add_user_to_group(GroupName=TEAM, UserName="alice")
        for role in (CHATBOT_ROLE, SHARED_ROLE):
            iam.create_role(RoleName=role, AssumeRolePolicyDocument="{}", Tags=OPTED_IN)
        iam.create_role(RoleName="IdentityCenterAdmin", AssumeRolePolicyDocument="{}")
        sso = self.stack.client("sso-admin")
        instance = sso.list_instances()["Instances"][0]["InstanceArn"]
        permission_set = sso.create_permission_set(InstanceArn=instance, Name="DataScience")
        sso.create_account_assignment(
            InstanceArn=instance,
            TargetId=ACCOUNT,
            TargetType="AWS_ACCOUNT",
            PermissionSetArn=permission_set["PermissionSet"]["PermissionSetArn"],
            PrincipalType="USER",
            PrincipalId="user-priya",
        )
        for scope in (*TEAM_MEMBERS, f"app:{TEAM_APP}"):
            TeamItem(scope, team=TEAM).save()

    def _identity_center(self):
        if not hasattr(self, "_connection"):
            self._connection = connect_identity_center(IDENTITY_CENTER_ADMIN)
        return self._connection

    def _invoke_failing_once(self, logical_id: str, event: dict):
        armed, self.failing = self.failing, None
        if armed is None or armed[0] != logical_id:
            self.failing = armed
            return invoke(logical_id, event)
        throttled = ClientError(
            {"Error": {"Code": "Throttling", "Message": "injected: fails once"}}, "Invoke"
        )
        if armed[1]:
            invoke(logical_id, event)  # the work is done, the answer is lost
        raise throttled

    def _stop_runs(self) -> None:
        sfn = self.stack.client("stepfunctions")
        machine = self.stack.physical_ids["BudgetEnforcementStateMachine"]
        pages = sfn.get_paginator("list_executions").paginate(stateMachineArn=machine, statusFilter="RUNNING")
        for page in pages:
            for run in page["executions"]:
                sfn.stop_execution(executionArn=run["executionArn"], error="TestOver")
        self.waits.release()

    def teardown(self) -> None:
        self.exits.close()

    def settle(self) -> None:
        self.waits.settle(self.stack)

    def _log(self, step: str, *, moves_clock: bool = False) -> None:
        self.clock_moves_in_a_row = self.clock_moves_in_a_row + 1 if moves_clock else 0
        if VERBOSE:
            took = time.monotonic() - self.started
            print(f"  {took:6.2f}s {iso_utc(self.clock())} {step}", file=sys.__stderr__, flush=True)

    # ------------------------------------------------------------------ operations

    @initialize(target=cast, focus=st.sampled_from(sorted(CALLERS)), extra=st.sampled_from(BUDGET_SCOPES))
    def choose_cast(self, focus: str, extra: str):
        self._log(f"choose_cast({focus!r}, {extra!r})")
        return multiple(*sorted(neighbourhood(focus) | {extra}))

    @initialize(
        targets=(budgeted, cast),
        budgets=st.lists(
            st.tuples(st.sampled_from(SHARED_SCOPES), st.sampled_from(WINDOWS), st.sampled_from(LIMITS_USD)),
            min_size=1,
            max_size=len(SHARED_SCOPES),
            unique_by=lambda budget: budget[0],
        ),
        guard=st.sampled_from(GUARDS),
        data=st.data(),
    )
    def first_budgets(
        self, budgets: list[tuple[str, str, Decimal]], guard: str | None, data: st.DataObject
    ) -> MultipleResults:
        """Every example starts with budgets on scopes whose deny reaches more than one caller (a
        team, an app, a role), unprotected and without grace: who they deny is what can go wrong.
        Maybe one principal their denies would reach is protected or excluded: it must be spared."""
        for scope, window, limit in budgets:
            self.set_budget(scope, window, limit, 0, False)
        scopes = [scope for scope, _, _ in budgets]
        reach = sorted(set().union(*map(trusted_reach, scopes)) - set(scopes))
        if guard and reach:
            principal = data.draw(st.sampled_from(reach), label="guarded")
            if guard == "protect":
                self.set_budget(principal, budgets[0][1], max(LIMITS_USD), 0, True)
            else:
                self.set_exclusions((principal,))
        return multiple(*scopes)

    @rule(
        caller=st.sampled_from(sorted(CALLERS)),
        claim=st.sampled_from(CLAIMS),
        usd=st.sampled_from(SPENDS_USD),
    )
    def spend(self, caller: str, claim: tuple[str, str] | None, usd: Decimal) -> None:
        """A call metered by the calculator: the caller's own ARN, maybe a claim of an app."""
        self._log(f"spend({caller!r}, {claim!r}, {usd!r})")
        arn = CALLERS[caller][0]
        tokens = int(usd * USD) // NANO_PER_TOKEN
        now = self.clock()
        metadata = {"app": claim[1]} if claim and claim[0] == "metadata" else None
        model = CALLERS_PROFILE if claim and claim[0] == "profile" else NOVA_PRO
        message = converse_message(
            arn, model, tokens, account=ACCOUNT, timestamp=iso_utc(now), request_metadata=metadata
        )
        self.last_batch = firehose_event([cloudwatch_payload([message])])
        response = invoke("UsageCalculatorFunction", self.last_batch)
        assert {record["result"] for record in response["records"]} == {"Ok"}
        self._expect_charge(charge(caller, claim, tokens), now)
        self.settle()

    @rule(scope=budgeted, data=st.data(), over=st.booleans(), usd=st.sampled_from(SPENDS_USD))
    def spend_on(self, scope: str, data: st.DataObject, over: bool, usd: Decimal) -> None:
        """A call charged to a budgeted scope on what AWS signed and operators wrote; maybe over
        its highest limit at once, so that a defect in who is denied shows within a few steps."""
        own, claims = charges_aimed_at(scope)
        self._spend_aimed_at(scope, own or claims, data, over, usd)

    @rule(scope=budgeted, data=st.data(), over=st.booleans(), usd=st.sampled_from(SPENDS_USD))
    def claim_on(self, scope: str, data: st.DataObject, over: bool, usd: Decimal) -> None:
        """A call whose requestMetadata claims a budgeted scope, or an app an operator mapped to it
        (a team a claim must not reach)."""
        self._claim_aimed_at(scope, "metadata", data, over, usd)

    @rule(scope=budgeted, data=st.data(), over=st.booleans(), usd=st.sampled_from(SPENDS_USD))
    def profile_claim_on(self, scope: str, data: st.DataObject, over: bool, usd: Decimal) -> None:
        """A call through an application inference profile the caller made and tagged with a
        budgeted app (or one mapped to a budgeted team): the tag is only a claim."""
        self._claim_aimed_at(scope, "profile", data, over, usd)

    def _claim_aimed_at(self, scope: str, how: str, data: st.DataObject, over: bool, usd: Decimal) -> None:
        own, claims = charges_aimed_at(scope)
        this_way = [(caller, claim) for caller, claim in claims if claim and claim[0] == how]
        self._spend_aimed_at(scope, this_way or claims or own, data, over, usd)

    def _spend_aimed_at(self, scope: str, calls: list, data: st.DataObject, over: bool, usd: Decimal) -> None:
        if over:
            highest = max(budget.limit for budget in self.budgets.values() if budget.scope == scope)
            usd = Decimal(highest) / USD + Decimal("0.1")
        caller, claim = data.draw(st.sampled_from(calls), label="caller and claim")
        self.spend(caller, claim, usd)

    @precondition(lambda self: self.last_batch is not None)
    @rule()
    def redeliver(self) -> None:
        """Firehose delivers the last batch again: it is metered once."""
        self._log("redeliver()")
        response = invoke("UsageCalculatorFunction", self.last_batch)
        assert {record["result"] for record in response["records"]} == {"Ok"}
        self.settle()

    @rule(
        target=budgeted,
        scope=cast,
        window=st.sampled_from(WINDOWS),
        limit=st.sampled_from(LIMITS_USD),
        grace=st.sampled_from(GRACES),
        protect=st.booleans(),
    )
    def set_budget(self, scope: str, window: str, limit: Decimal, grace: int, protect: bool) -> str:
        """An operator sets, raises or lowers a budget (what `budgetkeeper budget set` writes),
        and maybe protects the scope."""
        self._log(f"set_budget({scope!r}, {window!r}, {limit!r}, {grace!r}, {protect!r})")
        change = Change(actor=OPERATOR, at=self.clock(), reason="model")
        try:
            item = BudgetItem.get(scope, window, consistent_read=True)
        except BudgetItem.DoesNotExist:
            values = {"limit_usd": limit, "grace_seconds": grace}
            budget_rows.create_budget(scope, window, values, "budget created", change)
        else:
            changed = {"limit_usd": limit, "grace_seconds": grace}
            changed = {name: value for name, value in changed.items() if getattr(item, name) != value}
            if changed:
                budget_rows.change_budget(item, changed, "budget changed", change)
        nano = int(limit * USD)
        budget = self.budgets.get((scope, window))
        if budget is None:
            self.budgets[(scope, window)] = ModelBudget(scope, window, nano, grace)
        else:
            if budget.limit != nano:
                budget.limit = nano
                budget.forget_notice()
            budget.grace = grace
            budget.in_window(window_of(window, self.clock())[0])  # the lowest limit of this window
        self.settle()
        if protect:
            self.protection(scope, True)
        return scope

    @rule(scope=budgeted, protect=st.booleans())
    def protection(self, scope: str, protect: bool) -> None:
        """An operator protects a scope's budgets (alerts only), or lifts that."""
        self._log(f"protection({scope!r}, {protect!r})")
        self._operator("protect" if protect else "unprotect", scope)
        for budget in self.budgets.values():
            if budget.scope == scope:
                budget.protected = protect
                budget.forget_notice()
                budget.needs_sweep = not protect
        if protect:
            self._grandfather(scope)

    @rule(exclusions=st.lists(cast, max_size=2, unique=True).map(tuple))
    def set_exclusions(self, exclusions: tuple[str, ...]) -> None:
        """An operator sets the `exclusions` tunable."""
        self._log(f"set_exclusions({exclusions!r})")
        self.stack.client("ssm").put_parameter(
            Name=self.settings.parameter_prefix + "exclusions",
            Value=",".join(exclusions) or " ",
            Type="String",
            Overwrite=True,
        )
        parameters.clear_caches()
        self.exclusions = exclusions
        for budget in self.budgets.values():
            budget.forget_notice()
        for scope in exclusions:
            self._grandfather(scope)

    @rule(scope=held, ends=st.sampled_from(HOLD_ENDS))
    def suspend_again(self, scope: str, ends: str | None) -> None:
        """Another operator suspends a scope that is (or was) suspended already."""
        self.suspend(scope, ends)

    @rule(target=held, scope=cast, ends=st.sampled_from(HOLD_ENDS))
    def suspend(self, scope: str, ends: str | None) -> str:
        """An operator suspends a scope, until a time or with no end."""
        self._log(f"suspend({scope!r}, {ends!r})")
        until = None if ends is None else self.clock() + HOLD_LENGTHS[ends]
        entities = deny_reach(scope, trusted_reach(scope), self._exempt_principals())
        extra = {"until": iso_utc(until)} if until else {}
        self._operator("suspend", scope, **extra)
        if entities:
            self.holds.append(Hold(scope, until.replace(microsecond=0) if until else None, entities))
        return scope

    @rule(scope=cast)
    def restore(self, scope: str) -> None:
        """An operator restores a scope: every hold on it and every suspended budget of it ends."""
        self._log(f"restore({scope!r})")
        self._operator("restore", scope)
        self.holds = [hold for hold in self.holds if hold.scope != scope]
        now = self.clock()
        for budget in self.budgets.values():
            if budget.scope == scope:
                window_id = window_of(budget.window, now)[0]
                budget.baseline = (window_id, budget.in_window(window_id).total)
                budget.forget_notice()

    @precondition(lambda self: self.clock_moves_in_a_row < MOVES_IN_A_ROW)
    @rule(step=st.sampled_from(("next-day", "next-week", "next-month")))
    def advance_far(self, step: str) -> None:
        """Days pass: windows end."""
        self.advance(step)

    @precondition(lambda self: self.clock_moves_in_a_row < MOVES_IN_A_ROW)
    @rule(step=st.sampled_from(("5m", "16m", "2h")))
    def advance(self, step: str) -> None:
        """Time passes: Waits that end meanwhile end in their order, then the monitor sweeps."""
        self._log(f"advance({step!r})", moves_clock=True)
        now = self.clock()
        day = datetime(now.year, now.month, now.day, tzinfo=UTC)
        final = {
            "5m": now + timedelta(minutes=5),
            "16m": now + timedelta(minutes=16),
            "2h": now + timedelta(hours=2),
            "next-day": day + timedelta(days=1, seconds=1),
            "next-week": day + timedelta(days=7 - now.weekday(), seconds=1),
            "next-month": (day.replace(day=1) + timedelta(days=32)).replace(day=1) + timedelta(seconds=1),
        }[step]
        while ends := [end for end in self.waits.wait_ends() if end <= final]:
            self.clock.set(max(ends[0] + timedelta(seconds=1), self.clock()))
            self.settle()
        self.clock.set(final)
        self.settle()
        invoke("BudgetMonitorFunction", {"source": "aws.events", "detail-type": "Scheduled Event"})
        self._expect_sweep(self.clock())
        self.settle()

    @rule(function=st.sampled_from(("EnforcementFunction", "DenyFunction")), after_work=st.booleans())
    def fail_next_task(self, function: str, after_work: bool) -> None:
        """The next invocation of a workflow task fails once (before its work, or after it, with
        the answer lost); Step Functions retries it."""
        self._log(f"fail_next_task({function!r}, {after_work!r})")
        self.failing = (function, after_work)

    def _operator(self, action: str, scope: str, **extra) -> None:
        name, request = operator_request(action, scope, actor=OPERATOR, reason="model", **extra)
        self.starter.start(name, request)
        self.settle()

    # ------------------------------------------------------------------ the expectation

    def _expect_charge(self, charged, now: datetime) -> None:
        principal = charged.principal
        if principal.split(":", 1)[0] in DEFAULT_BUDGET_KINDS and not any(
            budget.scope == principal for budget in self.budgets.values()
        ):
            for window, (limit, grace) in DEFAULT_WINDOWS.items():
                self.budgets[(principal, window)] = ModelBudget(principal, window, limit, grace)
        for budget in self.budgets.values():
            if budget.scope not in charged.trusted:
                continue
            window_id = window_of(budget.window, now)[0]
            spend = budget.in_window(window_id)
            spend.total += charged.nano
            if charged.trusted[budget.scope]:
                spend.trusted += charged.nano
            else:
                spend.claimers.add(principal)
            self._notice(budget, now)

    def _expect_sweep(self, now: datetime) -> None:
        for budget in self.budgets.values():
            if budget.needs_sweep:
                budget.needs_sweep = False
                self._notice(budget, now)

    def _notice(self, budget: ModelBudget, now: datetime) -> None:
        """The system was shown this budget now: if trusted spend is over, its grace starts."""
        window_id = window_of(budget.window, now)[0]
        if budget.noticed_window != window_id:
            budget.forget_notice()
        if budget.noticed_at is None and self._trusted_over(budget, window_id):
            budget.noticed_at, budget.noticed_window = now, window_id

    def _trusted_over(self, budget: ModelBudget, window_id: str) -> bool:
        spend = budget.spend.get(window_id)
        if spend is None:
            return False
        if budget.baseline and budget.baseline[0] == window_id and spend.total <= budget.baseline[1]:
            return False
        return spend.trusted > budget.limit and spend.total > budget.limit

    def _grandfather(self, scope: str) -> None:
        """Protection and exclusions do not lift a deny in force: that principal is left out of
        invariant 3 until it is seen undenied."""
        if scope.split(":", 1)[0] in PRINCIPAL_KINDS and self._reaches(scope, self._denied()):
            self.grandfathered.add(scope)

    def _exempt_principals(self) -> set[str]:
        """Scopes an operator protected (any budget of theirs) or excluded: never denied."""
        protected = {budget.scope for budget in self.budgets.values() if budget.protected}
        return {*protected, *self.exclusions}

    @staticmethod
    def _denied_through(principal: str, denied: set[str]) -> set[str]:
        """What denies a principal: its own IAM object, its group, or (a role) a session of it."""
        through = {entity_of(principal)} & denied
        if principal in GROUP_MEMBERS and f"group:{TEAM}" in denied:
            through.add(f"group:{TEAM}")
        if principal.startswith("role:"):
            through |= {entity for entity in denied if entity.startswith(f"session:{principal[5:]}/")}
        return through

    def _reaches(self, principal: str, denied: set[str]) -> bool:
        return bool(self._denied_through(principal, denied))

    def _held(self, now: datetime) -> set[str]:
        return {entity for hold in self.holds if hold.active(now) for entity in hold.entities}

    # ------------------------------------------------------------------ what IAM and the tables hold

    def _denied(self) -> set[str]:
        """Every IAM object denied now: users, roles and groups with the deny policy, sessions."""
        denied = {f"{kind}:{name}" for kind, name in self.iam_denies.attached_principals()}
        for role in (CHATBOT_ROLE, SHARED_ROLE, SSO_ROLE):
            denied |= {f"session:{role}/{session}" for session in self.iam_denies.denied_sessions(role)}
        return denied

    # ------------------------------------------------------------------ invariants

    @invariant()
    def invariants_hold(self) -> None:
        now = self.clock()
        denied = self._denied()
        self.grandfathered = {scope for scope in self.grandfathered if self._reaches(scope, denied)}
        for number in sorted(self.checks):
            getattr(self, f"_check_{number}")(now, denied)

    def _check_1(self, now: datetime, denied: set[str]) -> None:
        records = {item.entry: set(item.holders or ()) for item in DenyItem.scan(consistent_read=True)}
        held = {entry for entry, holders in records.items() if holders}
        assert denied == held, f"1: IAM denies {sorted(denied)}, the records hold {sorted(held)}"
        for entry, holders in records.items():
            for holder in holders:
                scope, _, window = holder.rpartition("|")
                try:
                    status = BudgetItem.get(scope, window, consistent_read=True).status
                except BudgetItem.DoesNotExist:
                    status = "no row"
                assert status in ENFORCING, f"1: {entry} is held by {holder}, which is {status}"

    def _check_2(self, now: datetime, denied: set[str]) -> None:
        exempt = self._exempt_principals()
        for budget in self.budgets.values():
            window_id = window_of(budget.window, now)[0]
            if (
                budget.noticed_at is None
                or budget.noticed_window != window_id
                or now < budget.noticed_at + timedelta(seconds=budget.grace) + SLACK
                or not self._trusted_over(budget, window_id)
                or budget.protected
                or budget.scope in exempt
            ):
                continue
            missing = deny_reach(budget.scope, trusted_reach(budget.scope), exempt) - denied
            assert not missing, (
                f"2: {budget.scope} {budget.window} is over its limit by trusted spend since "
                f"{iso_utc(budget.noticed_at)} (grace {budget.grace} s), yet {sorted(missing)} not denied"
            )

    def _check_3(self, now: datetime, denied: set[str]) -> None:
        for principal in sorted(self._exempt_principals() - self.grandfathered):
            if principal.split(":", 1)[0] not in PRINCIPAL_KINDS:
                continue
            wrongly = self._denied_through(principal, denied)
            why = "protected" if principal not in self.exclusions else "excluded"
            assert not wrongly, f"3: {principal} is {why}, yet denied through {sorted(wrongly)}"

    def _check_4(self, now: datetime, denied: set[str]) -> None:
        justified = self._held(now)
        for budget in self.budgets.values():
            spend = budget.spend.get(window_of(budget.window, now)[0])
            if spend is None or spend.lowest_limit is None:
                continue
            kind = budget.scope.split(":", 1)[0]
            if kind in PRINCIPAL_KINDS and spend.total > spend.lowest_limit:
                justified.add(entity_of(budget.scope))
            if spend.trusted > spend.lowest_limit:
                justified |= deny_reach(budget.scope, trusted_reach(budget.scope), set())
            if spend.total > spend.lowest_limit:
                justified |= {entity_of(claimer) for claimer in spend.claimers}
        unjustified = denied - justified
        assert not unjustified, (
            f"4: {sorted(unjustified)} denied with no trusted spend of their own over a limit, "
            "no claim of their own, and no operator hold"
        )

    def _check_5(self, now: datetime, denied: set[str]) -> None:
        stored = {
            (*item.budget.rsplit("|", 1), item.window_id): item.spent_usd
            for item in TotalItem.scan(consistent_read=True)
        }
        expected = {
            (budget.scope, budget.window, window_id): Decimal(spend.total) / USD
            for budget in self.budgets.values()
            for window_id, spend in budget.spend.items()
            if spend.total
        }
        wrong = {
            key: (stored.get(key), expected.get(key))
            for key in stored.keys() | expected.keys()
            if stored.get(key, Decimal(0)) != expected.get(key, Decimal(0))
        }
        assert not wrong, f"5: totals (stored, expected): {wrong}"

    def _check_6(self, now: datetime, denied: set[str]) -> None:
        for hold in self.holds:
            if not hold.active(now):
                continue
            missing = hold.entities - denied
            ends = iso_utc(hold.until) if hold.until else "no end"
            assert not missing, f"6: the hold on {hold.scope} ({ends}) no longer denies {sorted(missing)}"
