"""Every word the console shows exists in Russian and English."""

import os
import re

from console import data, i18n

HERE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONSOLE = os.path.join(HERE, "console")


def _sources():
    for folder in (CONSOLE, os.path.join(CONSOLE, "templates")):
        for name in sorted(os.listdir(folder)):
            if name.endswith((".py", ".html")):
                with open(os.path.join(folder, name), encoding="utf-8") as f:
                    yield name, f.read()


def test_every_key_the_console_uses_has_both_languages():
    used = set()
    for _name, text in _sources():
        used |= {k for k in re.findall(r"\bt\(['\"]([a-z0-9_]+)['\"]", text) if not k.endswith("_")}
    used |= set(data.POLL_REASONS + data.FM_REASONS)
    # keys put together from a prefix and a value
    for prefix, values in {
        "role_": ("admin", "expert", "analyst", "store-manager", "technician"),
        "home_role_": ("admin", "expert", "analyst", "store-manager", "technician"),
        "stratum_": ("no", "fm", "random"),
        "status_": ("pending", "decided", "all"),
        "verdict_": ("valid", "invalid", "confirm", "reject", "reopen"),
        "answer_": ("yes", "no", "unsure", "silent"),
        "conn_": ("online", "stale", "offline", "never_seen"),
        "by_": ("site", "employee", "device", "question"),
        "period_": ("all", "day", "week", "month"),
        "source_": ("device", "repaired", "arrival"),
        "ev_": ("yes", "no", "unsure", "seller_short", "seller_long"),
        "qkind_": ("staff", "office", "loyalty"),
        "done_": ("saved", "undone", "bulk", "added", "state", "revoked", "password"),
        "error_": ("not_found", "forbidden", "csrf", "not_found_hint", "forbidden_hint", "csrf_hint"),
        "kpi_": ("di_staff", "di_office", "eli", "exact_conversion", "visitor_coverage", "fm_rate"),
    }.items():
        used |= {prefix + v for v in values}
    missing = sorted(k for k in used if k not in i18n.TEXT)
    assert not missing, missing
    for key, (ru, en) in i18n.TEXT.items():
        assert ru.strip() and en.strip(), key
        assert re.findall(r"%\((\w+)\)s", ru) == re.findall(r"%\((\w+)\)s", en) or sorted(
            re.findall(r"%\((\w+)\)s", ru)
        ) == sorted(re.findall(r"%\((\w+)\)s", en)), key


def test_placeholders_format_in_both_languages():
    assert i18n.t("ru", "progress_text", done="3", total="5") == "проверено 3 из 5"
    assert i18n.t("en", "report_caption", k="0.8").startswith("KPIs with the 95 % Wilson interval")
