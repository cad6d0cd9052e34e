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
    if not import_paddle().is_compiled_with_cuda():
        assert {"check": "GPU", "status": "ok", "detail": "no CUDA build: jobs run on the CPU"} in report["checks"]


def test_doctor_names_a_failing_gpu_and_goes_on(broken_gpu):
    """The machine doctor is for: a CUDA build whose GPU fails (no cuDNN). The GPU row says why, in one
    line; every job runs on the CPU, so the self-tests still run, there."""
    result = runner.invoke(app, ["doctor", "--json"])
    assert result.exit_code == 0, result.output
    assert result.stderr == ""  # the GPU row says it: no note besides
    report = json.loads(result.stdout)
    assert report["environment"]["device"] == "cpu" and "gpu" not in report["environment"]
    rows = {row["check"]: row for row in report["checks"]}
    assert rows["GPU"] == {
        "check": "GPU",
        "status": "warn",
        "detail": "RuntimeError: (PreconditionNotMet) Cannot load cudnn shared library. Cannot invoke method "
        "cudnnGetVersion.",
        "fix": "check the driver (nvidia-smi) and that CUDA and cuDNN match this Paddle's paddle_cuda and "
        "paddle_cudnn; jobs run on the CPU meanwhile",
    }
    assert rows["self-test: training"]["status"] == rows["self-test: CPU decoder (fp32)"]["status"] == "ok"


def test_a_check_that_raises_is_a_fail_row_and_the_report_goes_on(monkeypatch):
    from mnistgen import doctor

    monkeypatch.setattr(doctor, "SELFTEST_MODEL", "no-such-model")  # the decoder self-test's inspect raises
    result = runner.invoke(app, ["doctor", "--json"])
    assert result.exit_code == 1  # doctor's convention for a fail row: the report, then one error line
    rows = {row["check"]: row for row in json.loads(result.stdout)["checks"]}
    assert rows["self-test: training"]["status"] == "ok"
    failed = rows["self-test: decoders"]
    assert failed["status"] == "fail" and failed["detail"].startswith("MnistgenError: unknown model 'no-such-model': ")
    fix = "run `mnistgen doctor --json` and attach its output to an issue"
    assert result.stderr == f"Error: self-test: decoders: {failed['detail']}; {fix}\n"


def test_doctor_and_models_tables_are_the_result_on_stdout_whole_when_piped():
    report = runner.invoke(app, ["doctor"])  # `mnistgen doctor > report.txt` keeps the report
    assert report.exit_code == 0, report.output
    assert "mnistgen doctor" in report.stdout and "self-test: training" in report.stdout
    listing = runner.invoke(app, ["models"])  # not a terminal: no cell cut short with "…"
    assert listing.exit_code == 0, listing.output
    assert "classifier-b" in listing.stdout and "…" not in listing.stdout


def test_an_unusable_cache_fails_its_row_and_is_named_where_it_slows_the_decoder(tmp_path, monkeypatch):
    """$MNISTGEN_DATA a file: the cache row said `ok (0.0 MB)` and the decoder rows blamed Paddle
    ("reinstall Paddle") for a NotADirectoryError under the cache."""
    cache = tmp_path / "notadir"
    cache.write_text("")
    monkeypatch.setenv("MNISTGEN_DATA", str(cache))
    result = runner.invoke(app, ["doctor", "--json"])
    assert result.exit_code == 1  # doctor's convention for a fail row
    rows = {row["check"]: row for row in json.loads(result.stdout)["checks"]}
    problem, fix = f"the cache {cache} is a file, not a folder", "set $MNISTGEN_DATA to a folder you can write"
    assert rows["cache"] == {"check": "cache", "status": "fail", "detail": problem, "fix": fix}
    decoder = rows["self-test: CPU decoder (fp32)"]
    assert decoder["status"] == "warn"
    assert (
        decoder["detail"]
        == f"the fast CPU decoder is unavailable ({problem}: {fix}); decoding in eager Paddle, about 5x slower"
    )
    assert decoder["fix"] == f"{fix}: the fast decoder is exported into it"
    assert result.stderr == f"Error: cache: {problem}; {fix}\n"


def test_a_cache_under_a_file_cannot_be_made(tmp_path, monkeypatch):
    from mnistgen.data import cache_problem

    (tmp_path / "file").write_text("")
    monkeypatch.setenv("MNISTGEN_DATA", str(tmp_path / "file" / "cache"))
    assert cache_problem() == f"the cache {tmp_path / 'file' / 'cache'} cannot be made: {tmp_path / 'file'} is a file"
    monkeypatch.setenv("MNISTGEN_DATA", str(tmp_path / "new" / "cache"))
    assert cache_problem() is None  # made on first use
