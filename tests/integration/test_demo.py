"""`make demo` end to end, smaller: a subprocess against a ThreadedMotoServer on 127.0.0.1.

It keeps the user's first command working at every commit, and runs the stack over HTTP the way
the functions call AWS, not in-process.
"""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import timedelta
from decimal import Decimal

import pytest

from tests.checkout import ROOT, checkout_env

# Among the longest tests (subprocesses, real workflows on moto): `-m 'not slow'` skips them.
pytestmark = pytest.mark.slow


@pytest.mark.e2e
def test_the_demo_tells_the_whole_life_of_a_budget(clock, tmp_path):
    # The day's traffic is generated from its date: the test's day, not the machine's, keeps it fixed.
    day = clock().date().isoformat()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "devkit.demo",
            "--records",
            "400",
            "--day",
            day,
            "--report",
            str(tmp_path / "r.html"),
        ],
        capture_output=True,
        text=True,
        timeout=540,
        cwd=ROOT,
        env=checkout_env(),
    )
    out = result.stdout
    assert result.returncode == 0, result.stderr[-3000:]
    for told in (
        "0. Day one: the doctor, invocation logging, teams and users",
        "us-east-1: logging on to /aws/bedrock/modelinvocations",
        "user:alice: IAM user arn:aws:iam::123456789012:user/budgetkeeper/users/alice created",
        "you are arn:aws:iam::123456789012:user/budgetkeeper/users/alice",
        "1. The day's invocation logs, metered offline from S3",
        "1b. Spend no invocation log records: a batch job and a bedrock-mantle project",
        "dave is charged $1.26 at the batch rate (on demand the same tokens cost $2.52)",
        "The same event delivered again charged nothing.",
        "project:proj_research is charged $1.80 of its 20 USD daily budget.",
        "an ESTIMATE from their CreateInference calls in CloudTrail "
        "(never used to deny): user:bob about $1.08, user:carol about $0.72.",
        "BUDGET WARNING: user:alice (daily)",
        "BUDGET EXCEEDED: SUSPENSION FOLLOWS THE GRACE PERIOD: user:alice (daily)",
        "BEDROCK ACCESS SUSPENDED: user:alice (daily)",
        '"Sid": "DenyBedrockInference"',
        "BEDROCK ACCESS RESTORED: app:SupportBot (daily) by arn:aws:sts::",
        "IAM user alice has no deny policy attached any more",
        "BEDROCK ACCESS RESTORED: user:alice (daily)",
        "grace      suspended",
        "operators (SMS): SUSPENDED: user:alice ($",
        "export BUDGETKEEPER_STACK=budgetkeeper-demo",
        "export AWS_DEFAULT_REGION=us-east-1",
        "alice@example.com (e-mail): Bedrock access suspended: user:alice  -> ",
        "soporte@example.com (e-mail): Acceso a Bedrock suspendido: app:SupportBot",
        "e-mails to owners, as HTML, in ",
        '"text": ":rotating_light: *Bedrock access suspended: ',
    ):
        assert told in out, f"the demo no longer says: {told}"
    # The doctor's table (its columns as wide as its longest check) finds logging off
    assert re.search(r"logging us-east-1 +fail +model invocation logging is off", out), "no doctor finding"
    # After the refresh the demo's clock is in the next day: status shows that window, at zero
    next_day = (clock().date() + timedelta(days=1)).isoformat()
    assert f"daily   {next_day}  $0.00" in out, "status does not show the window after the refresh"
    assert '{"level"' not in out and '"_aws"' not in out  # logs and metrics stay out of the story
    # The CLI's settings for its stack, with the port the local AWS listens on
    assert re.search(r"export AWS_ENDPOINT_URL=http://127\.0\.0\.1:\d+\n", out), "no export lines"
    # It writes the HTML report of the day where it says, and owners' e-mails beside it, not in /tmp
    written = f"HTML report written to {tmp_path / 'r.html'} (open it in a browser; it needs no network)"
    assert written in out
    assert f"e-mails to owners, as HTML, in {tmp_path / 'demo-mail'}" in out
    assert list((tmp_path / "demo-mail").glob("*.html"))
    # and ends with what the suspensions saved: the day metered offline, less what was metered live
    last_lines = out.rstrip().splitlines()[-6:]
    offline, live, stopped = (
        Decimal(re.search(pattern, out)[1].replace(",", ""))
        for pattern in (
            r"metered offline as if nothing had stopped it: +\$([\d,.]+)",
            r"Metered live, with the suspensions enforced by IAM: +\$([\d,.]+)",
            r"About \$([\d,.]+) was stopped by the suspensions\.",
        )
    )
    assert offline > live > 0 and stopped == offline - live
    assert any("was stopped by the suspensions" in line for line in last_lines)
    assert "`make console` runs this day again and opens it in the operators' web console." in last_lines
    assert "Spend per team" in (tmp_path / "r.html").read_text()
