"""`make demo` end to end, smaller: a subprocess against a ThreadedMotoServer on 127.0.0.1.

It keeps the user's first command working at every commit, and runs the stack over HTTP the way
the functions call AWS, not in-process.
"""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import timedelta

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
        "BUDGET WARNING: user:alice (daily)",
        "BUDGET EXCEEDED: SUSPENSION FOLLOWS THE GRACE PERIOD: user:alice (daily)",
        "BEDROCK ACCESS SUSPENDED: user:alice (daily)",
        '"Sid": "DenyBedrockInference"',
        "BEDROCK ACCESS RESTORED: app:SupportBot (daily) by arn:aws:sts::",
        "IAM user alice has no deny policy attached any more",
        "BEDROCK ACCESS RESTORED: user:alice (daily)",
        "grace      suspended",
        "operators (SMS): SUSPENDED: user:alice (USD ",
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
    # It ends with the HTML report of the day, written where it says, and the way to the console
    last_lines = out.rstrip().splitlines()[-4:]
    written = f"HTML report written to {tmp_path / 'r.html'} (open it in a browser; it needs no network)"
    assert written in last_lines
    assert "`make console` runs this day again and opens it in the operators' web console." in last_lines
    assert "Spend per team" in (tmp_path / "r.html").read_text()
