"""kpi_core and gateway/windows.py stay pure: stdlib only, no clocks, files or sockets."""
import ast
import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KPI = os.path.join(REPO, "kpi_core")
FILES = [os.path.join(KPI, f) for f in sorted(os.listdir(KPI)) if f.endswith(".py")]
FILES.append(os.path.join(REPO, "gateway", "windows.py"))
# Modules that would let a pure core touch the outside world.
IMPURE = {"time", "datetime", "os", "socket", "io", "pathlib", "random", "subprocess", "threading",
          "sqlite3", "logging", "shutil", "tempfile", "urllib", "http", "asyncio", "select"}


def imported(path):
    tree = ast.parse(open(path, encoding="utf-8").read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            yield node.module or ""


@pytest.mark.parametrize("path", FILES, ids=lambda p: os.path.relpath(p, REPO))
def test_imports_only_stdlib_and_itself(path):
    for name in imported(path):
        top = name.split(".")[0]
        if top == "kpi_core" and path.startswith(KPI):
            continue
        assert top in sys.stdlib_module_names, "%s imports %s" % (path, name)
        assert top not in IMPURE, "%s imports %s, which reaches outside" % (path, name)


def test_kpi_core_public_api():
    import kpi_core
    for name in ["PollCounts", "Figure", "di_staff", "di_office", "eli", "exact_conversion",
                 "visitor_coverage", "fm_rate", "wilson", "count_polls", "flags", "bottleneck",
                 "Thresholds", "Flag", "Diagnosis"]:
        assert name in kpi_core.__all__ and hasattr(kpi_core, name)
