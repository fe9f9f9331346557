"""The import contract of docs/architecture.md, one test per row of its package table.

The table is the single source: this file parses it, so changing what a package may import
means changing the documentation, and a new top-level package without a row fails here.
"""

import ast
import os
import re
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(REPO, "docs", "architecture.md")

# Standard-library modules that would let a pure core touch the outside world.
IMPURE = {
    "time",
    "datetime",
    "os",
    "socket",
    "io",
    "pathlib",
    "random",
    "subprocess",
    "threading",
    "sqlite3",
    "logging",
    "shutil",
    "tempfile",
    "urllib",
    "http",
    "asyncio",
    "select",
    "signal",
    "multiprocessing",
    "zoneinfo",
    "secrets",
    "uuid",
    "tomllib",
    "glob",
    "sys",
}


def contract():
    """{dotted package or module: (allowed top-level names, stdlib allowed, pure)} from the doc."""
    rows = {}
    in_table = False
    with open(DOC, encoding="utf-8") as f:
        for line in f:
            if line.startswith("| package | runs on | may import"):
                in_table = True
                continue
            if in_table:
                if not line.startswith("|"):
                    break
                cells = [c.strip() for c in line.strip().strip("|").split("|")]
                if set(cells[0]) <= {"-"}:
                    continue
                name = re.fullmatch(r"`([a-z_.]+)`", cells[0]).group(1)
                may = cells[2]
                allowed = set(re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)`", may))
                pure = "pure stdlib" in may
                stdlib = pure or re.search(r"\bstdlib\b", may) is not None
                rows[name] = (allowed, stdlib, pure)
    return rows


CONTRACT = contract()


def packages():
    return sorted(d for d in os.listdir(REPO) if os.path.isfile(os.path.join(REPO, d, "__init__.py")) and d != "tests")


def modules(package):
    """(dotted module name, path) of every .py file of a top-level package."""
    for root, _dirs, files in os.walk(os.path.join(REPO, package)):
        for f in sorted(files):
            if f.endswith(".py"):
                path = os.path.join(root, f)
                rel = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".")
                yield (rel[: -len(".__init__")] if rel.endswith(".__init__") else rel), path


def imports(path):
    """Top-level names of everything a file imports, anywhere in it (functions included)."""
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, node.lineno
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module, node.lineno


def rule_for(module):
    """The most specific row naming this module or one of its packages."""
    parts = module.split(".")
    for i in range(len(parts), 0, -1):
        name = ".".join(parts[:i])
        if name in CONTRACT:
            return name
    return None


def test_every_top_level_package_has_a_row():
    missing = [p for p in packages() if p not in CONTRACT]
    assert not missing, "docs/architecture.md has no row for %s" % missing


@pytest.mark.parametrize("row", sorted(CONTRACT))
def test_package_imports_only_what_its_row_allows(row):
    allowed, stdlib, pure = CONTRACT[row]
    top = row.split(".")[0]
    checked = 0
    problems = []
    for module, path in modules(top):
        if rule_for(module) != row:
            continue
        checked += 1
        for name, line in imports(path):
            first = name.split(".")[0]
            if first == top or first in allowed:
                continue
            if stdlib and first in sys.stdlib_module_names and not (pure and first in IMPURE):
                continue
            problems.append("%s:%d imports %s" % (os.path.relpath(path, REPO), line, name))
    assert checked, "the row %s matches no module" % row
    assert not problems, "not allowed by docs/architecture.md:\n" + "\n".join(problems)


def test_kpi_core_public_api():
    import kpi_core

    for name in [
        "PollCounts",
        "Figure",
        "di_staff",
        "di_office",
        "eli",
        "exact_conversion",
        "visitor_coverage",
        "fm_rate",
        "wilson",
        "count_polls",
        "flags",
        "bottleneck",
        "Thresholds",
        "Flag",
        "Diagnosis",
    ]:
        assert name in kpi_core.__all__ and hasattr(kpi_core, name)


# ---- table ownership: "Who owns which table" in docs/architecture.md ----------------------------
MIGRATIONS = os.path.join(REPO, "gateway", "migrations")
SQL_TABLE = r"\b(?:FROM|JOIN|INTO|UPDATE|TABLE(?:\s+IF\s+(?:NOT\s+)?EXISTS)?)\s+%s\b"


def table_owners():
    text = open(DOC, encoding="utf-8").read()
    section = text.split("### Who owns which table", 1)[1].split("\n## ", 1)[0]
    owners = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 2 or not cells[1].endswith(".py"):
            continue
        for table in cells[0].split(","):
            owners[table.strip()] = cells[1]
    return owners


def migration_tables():
    names = set()
    for name in os.listdir(MIGRATIONS):
        if name.endswith(".sql"):
            sql = open(os.path.join(MIGRATIONS, name), encoding="utf-8").read()
            names |= set(re.findall(r"(?i)CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)", sql))
    return names


def test_every_table_has_an_owner():
    missing = sorted(migration_tables() - set(table_owners()))
    assert not missing, "docs/architecture.md names no owner for the tables %s" % missing


def test_sql_on_a_table_only_in_its_owner():
    owners = table_owners()
    problems = []
    for top in packages():
        for _module, path in modules(top):
            rel = os.path.relpath(path, REPO)
            text = open(path, encoding="utf-8").read()
            for table, owner in owners.items():
                if rel == owner:
                    continue
                for m in re.finditer(SQL_TABLE % table, text):  # SQL keywords are upper case here
                    line = text.count("\n", 0, m.start()) + 1
                    problems.append("%s:%d %r (owned by %s)" % (rel, line, m.group(0), owner))
    assert not problems, "SQL on another module's table:\n" + "\n".join(problems)
