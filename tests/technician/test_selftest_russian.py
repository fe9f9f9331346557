"""The self-test speaks the technician's language: technician/ has no catalogue of its own, the
`rating` command installs the gateway's (technician/i18n.py)."""

from gateway import i18n
from rating import cli
from technician import selftest


def test_the_self_test_result_and_its_hints_are_russian_with_lang_ru():
    cli.build_parser()  # installs the translation into technician/
    report = selftest.SelfTestReport()
    report.fw = "0.3.0"
    lines = []
    with i18n.cli_language("ru"):
        i18n.activate("ru", explicit=True)
        selftest.format_report(report, out=lines.append)
        timeout = selftest._timeout_message("start", report)
    text = "\n".join(lines)
    assert "Результат (прошивка 0.3.0):" in text and "Итог: FAIL" in text
    assert "проверьте --wifi-ssid/--wifi-password (только сеть 2,4 ГГц)" in text
    assert timeout.startswith("панель не начала самопроверку")


def test_in_english_the_self_test_reads_english():
    lines = []
    selftest.format_report(selftest.SelfTestReport(), out=lines.append)
    assert "Result (firmware ?):" in lines
