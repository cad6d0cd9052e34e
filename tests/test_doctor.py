"""`mnistgen doctor`: the report of this installation and its self-test, on the real Paddle."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from mnistgen.cli import app

runner = CliRunner()


def test_doctor_json_passes_and_names_the_paddle_version():
    from mnistgen.runtime import import_paddle

    result = runner.invoke(app, ["doctor", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    env = report["environment"]
    assert env["paddle"] == import_paddle().__version__
    assert env["device"] == "cpu" and env["cpus_usable"] >= 1
    statuses = {row["check"]: row["status"] for row in report["checks"]}
    assert statuses["self-test: training"] == "ok"
    assert statuses["self-test: CPU decoder (fp32)"] == "ok"
    assert statuses["weights cvae"] == "ok"
    assert "fail" not in statuses.values()


def test_doctor_and_models_tables_are_the_result_on_stdout_whole_when_piped():
    report = runner.invoke(app, ["doctor"])  # `mnistgen doctor > report.txt` keeps the report
    assert report.exit_code == 0, report.output
    assert "mnistgen doctor" in report.stdout and "self-test: training" in report.stdout
    listing = runner.invoke(app, ["models"])  # not a terminal: no cell cut short with "…"
    assert listing.exit_code == 0, listing.output
    assert "classifier-b" in listing.stdout and "…" not in listing.stdout
