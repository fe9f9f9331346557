"""The MicroPython test infrastructure works: VM found, fakes injected, runner fails on failure."""

import pytest
from mpy_support import check_mpy_cases, run_micropython


@pytest.mark.e2e
def test_mpy_runs_code_and_reports_exit_code():
    proc = run_micropython("import sys\nprint('hi', sys.implementation.name)\nsys.exit(3)")
    assert proc.returncode == 3
    assert proc.stdout.strip() == "hi micropython"


@pytest.mark.e2e
def test_mpy_repo_root_is_importable():
    proc = run_micropython("import protocol\nprint(protocol.VERSION)")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "1"


@pytest.mark.e2e
def test_mpy_heapsize_is_applied():
    proc = run_micropython("import gc\ngc.collect()\nprint(gc.mem_free() + gc.mem_alloc())", heapsize="64k")
    assert proc.returncode == 0, proc.stderr
    assert 60000 < int(proc.stdout) <= 65536


@pytest.mark.e2e
def test_mpy_fake_cases_pass():
    proc = check_mpy_cases("fakes_cases")
    assert "15 passed, 0 failed" in proc.stdout


@pytest.mark.e2e
def test_mpy_runner_fails_on_failing_case(tmp_path):
    cases = tmp_path / "bad_cases.py"
    cases.write_text("def test_ok():\n    pass\n\ndef test_bad():\n    assert 1 == 2, 'one is not two'\n")
    with pytest.raises(AssertionError) as info:
        check_mpy_cases(str(cases))
    assert "1 passed, 1 failed" in str(info.value)
    assert "one is not two" in str(info.value)


@pytest.mark.e2e
def test_mpy_runner_fails_when_nothing_ran(tmp_path):
    cases = tmp_path / "empty_cases.py"
    cases.write_text("X = 1\n")
    with pytest.raises(AssertionError):
        check_mpy_cases(str(cases))
