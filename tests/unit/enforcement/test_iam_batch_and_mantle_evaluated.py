"""Batch jobs and bedrock-mantle projects, as IAM evaluates the documents the stack ships
(tests/iam_eval.py, iam-simulate): a suspended principal cannot create a batch job, and a
suspended project (tagged by the DenyFunction) is denied inference through MantleProjectGuardPolicy,
attached to the caller or set as an SCP, while another project is not."""

from __future__ import annotations

import pytest

from budgetkeeper.domain.scopes import project_arn
from budgetkeeper.enforcement.project_tags import SUSPENDED_TAG, SUSPENDED_VALUE
from tests.deployed_template import concrete_template, managed_policy
from tests.iam_eval import ACCOUNT, BEDROCK_FULL_ACCESS, REGION, Request, iam_user, role_session

JOB_ARN = f"arn:aws:bedrock:{REGION}:{ACCOUNT}:model-invocation-job/abc123xyz"
MODEL = f"arn:aws:bedrock:{REGION}::foundation-model/anthropic.claude-sonnet-4-5-20250929-v1:0"
SUSPENDED = {f"aws:ResourceTag/{SUSPENDED_TAG}": SUSPENDED_VALUE}


@pytest.fixture(scope="module")
def template() -> dict:
    return concrete_template("defaults")


def test_a_suspended_principal_cannot_create_a_batch_job_and_another_can(iam_evaluator, template):
    deny = managed_policy(template, "BedrockDenyPolicy")
    granted = {"AmazonBedrockFullAccess": BEDROCK_FULL_ACCESS}
    # Given alice suspended (the deny policy attached) and bob not
    requests = [
        Request(iam_user(who), "bedrock:CreateModelInvocationJob", resource, identity_policies=policies)
        for who, policies in (("alice", {**granted, "BedrockDenyPolicy": deny}), ("bob", granted))
        for resource in (JOB_ARN, MODEL)
    ]
    # When each creates a batch job / Then alice is denied by the deny's statement, bob is allowed
    alice_job, alice_model, bob_job, bob_model = iam_evaluator.evaluate(requests)
    for decision in (alice_job, alice_model):
        assert decision.explicitly_denied and decision.denying_sids == {"DenyBedrockInference"}, decision
    assert bob_job.allowed and bob_model.allowed


def test_a_suspended_project_is_denied_inference_and_another_project_is_not(iam_evaluator, template):
    guard = managed_policy(template, "MantleProjectGuardPolicy")
    granted = {"AmazonBedrockFullAccess": BEDROCK_FULL_ACCESS}
    tagged, untagged = project_arn(REGION, ACCOUNT, "proj_over"), project_arn(REGION, ACCOUNT, "proj_fine")
    callers = [
        iam_user("carol"),
        role_session("ChatbotApp-BedrockRole", "worker-1", role_id="AROAEXAMPLEROLEID01"),
    ]
    # Given the guard attached to the callers; proj_over carries the suspension tag, proj_fine not
    requests = [
        Request(
            caller, "bedrock-mantle:CreateInference", project, {**granted, "Guard": guard}, context=context
        )
        for caller in callers
        for project, context in ((tagged, SUSPENDED), (untagged, {}))
    ]
    decisions = iam_evaluator.evaluate(requests)
    # Then every caller is denied on the tagged project and allowed on the other
    assert [d.explicitly_denied for d in decisions] == [True, False, True, False]
    assert all(d.allowed for d in decisions[1::2])
    assert {sid for d in decisions[::2] for sid in d.denying_sids} == {"DenySuspendedMantleProjects"}


def test_the_guard_as_an_scp_denies_principals_the_stack_does_not_manage(iam_evaluator, template):
    guard = managed_policy(template, "MantleProjectGuardPolicy")
    allow_all = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    caller = iam_user("dave")  # no guard attached: a principal of another team's stack
    project = project_arn(REGION, ACCOUNT, "proj_over")
    requests = [
        Request(
            caller,
            "bedrock-mantle:CreateInference",
            project,
            {"AmazonBedrockFullAccess": BEDROCK_FULL_ACCESS},
            context=context,
            service_control_policies={"FullAWSAccess": allow_all, "BudgetkeeperMantleGuard": guard},
        )
        for context in (SUSPENDED, {})
    ]
    on_tagged, on_untagged = iam_evaluator.evaluate(requests)
    assert on_tagged.explicitly_denied and on_untagged.allowed
