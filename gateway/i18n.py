"""Words people read, in Russian and English, through GNU gettext.

The catalogue is `gateway/locale/ru/LC_MESSAGES/rating.po` (English message ids, Russian
translations, the Russian plural rule: 1 опрос, 2 опроса, 5 опросов, 21 опрос); `rating.mo`
beside it is compiled from it by `make i18n` (tests/gateway/test_i18n.py fails when it is stale
or a message lacks a translation). English is the source language: `en` uses the message ids.

Two ways to ask for a word:
- code that has a language at hand (a report for `lang`): `words = i18n.Words(lang)`, then
  `words.gettext("Polls")`, `words.ngettext("%(n)d poll", "%(n)d polls", n)`, `words.number(0.5)`,
  `words.percent(0.29)`, `words.range(0.29, 0.84)`;
- the commands (`rating ...`): `_("...")` and `ngettext(...)` of this module speak the
  process's language, chosen once by rating/cli.py (`choose`, `activate`) and switched to the
  deployment's by a command that reads the settings (`follow_deployment`), unless the user
  chose one. Mark a text that is translated later (a table of words) with `N_("...")`.

How the language is chosen (rating/cli.py, `choose`):
1. `--lang ru|en` on the command line;
2. `$RATING_LANG`;
3. for a command that reads the database: the deployment's `lang` from the site file (what its
   operators and experts read); help texts and argument errors come before any database is
   opened (and opening one just to print help would be wrong), so they skip this step;
4. the locale (`$LANGUAGE`, `$LC_ALL`, `$LC_MESSAGES`, `$LANG` starting with ru or en);
5. English.

argparse translates its own words ("usage:", "options", its error messages) through the process
gettext domain: `cli_language(lang)` points that domain at this catalogue while a command runs.

The KPI names are the method's own (METHOD.md): ИНК@Персонал / DI-staff, ИНК@Офис / DI-office,
ИЭЛ / ELI.
"""

import contextlib
import gettext
import os
import threading

DOMAIN = "rating"
LOCALEDIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "locale")
LANGS = ("ru", "en")
FALLBACK = "en"
ENV = "RATING_LANG"

_state = {"lang": FALLBACK, "explicit": False}
_catalogues = {}
# a language for one thread only (`speaking`): the console checks a form in its reader's language
# while other requests are served in theirs
_local = threading.local()


def N_(message):
    """Mark `message` for the catalogue; it is translated where it is shown."""
    return message


def catalogue(lang):
    """The gettext translations of `lang` (English: the message ids themselves)."""
    cat = _catalogues.get(lang)
    if cat is None:
        cat = _catalogues[lang] = gettext.translation(DOMAIN, LOCALEDIR, languages=[lang], fallback=True)
    return cat


# ---- the process's language (the commands) ---------------------------------------------------


def locale_lang(env=None):
    """ru or en from the locale variables (gettext's order), or None."""
    env = os.environ if env is None else env
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = env.get(name) or ""
        for item in value.split(":"):
            code = item[:2].lower()
            if code in LANGS:
                return code
        if value:
            return None
    return None


def choose(flag=None, env=None):
    """(lang, explicit) for a command: --lang, else $RATING_LANG, else the locale, else English.
    `explicit` is True when the user chose (flag or $RATING_LANG): the deployment's language
    does not override that. ValueError for a language this program does not speak."""
    env = os.environ if env is None else env
    if flag is not None:
        if flag not in LANGS:
            raise ValueError("--lang %s: must be one of %s" % (flag, ", ".join(LANGS)))
        return flag, True
    value = env.get(ENV)
    if value:
        if value not in LANGS:
            raise ValueError("$%s=%s: must be one of %s" % (ENV, value, ", ".join(LANGS)))
        return value, True
    return locale_lang(env) or FALLBACK, False


def activate(lang, explicit=False):
    """Make `lang` the process's language (what `_` speaks)."""
    _state["lang"] = lang if lang in LANGS else FALLBACK
    _state["explicit"] = explicit


def current():
    return _state["lang"]


def chosen():
    """Did the user choose the language (--lang, $RATING_LANG), rather than the default?"""
    return _state["explicit"]


def follow_deployment(lang):
    """A command read the deployment's language: speak it unless the user chose one."""
    if lang in LANGS and not _state["explicit"]:
        _state["lang"] = lang
    return _state["lang"]


def _lang():
    return getattr(_local, "lang", None) or _state["lang"]


def _(message):
    return catalogue(_lang()).gettext(message)


def ngettext(singular, plural, n):
    return catalogue(_lang()).ngettext(singular, plural, n)


@contextlib.contextmanager
def speaking(lang):
    """`_` speaks `lang` in this thread while the block runs (the process's language is untouched)."""
    old = getattr(_local, "lang", None)
    _local.lang = lang if lang in LANGS else FALLBACK
    try:
        yield
    finally:
        _local.lang = old


@contextlib.contextmanager
def cli_language(lang):
    """While a command runs, argparse's own words ("usage:", its errors) come from this
    catalogue in `lang`: argparse asks gettext's process domain, which reads $LANGUAGE. The
    process's language (`activate`, `follow_deployment`) is restored afterwards."""
    old_domain = gettext.textdomain()
    old_language = os.environ.get("LANGUAGE")
    old_state = dict(_state)
    gettext.bindtextdomain(DOMAIN, LOCALEDIR)
    gettext.textdomain(DOMAIN)
    os.environ["LANGUAGE"] = lang
    try:
        yield
    finally:
        _state.update(old_state)  # a command's language ends with it (tests run many in one process)
        gettext.textdomain(old_domain)
        if old_language is None:
            os.environ.pop("LANGUAGE", None)
        else:
            os.environ["LANGUAGE"] = old_language


# ---- numbers ---------------------------------------------------------------------------------


def number(value, digits=1, lang=None):
    """'0,5' in Russian, '0.5' in English; thousands grouped as each language writes them."""
    from babel.numbers import format_decimal

    pattern = "#,##0" + ("." + "0" * digits if digits > 0 else "")
    return format_decimal(value, format=pattern, locale=lang or current())


def percent(fraction, digits=0, lang=None, sign=False):
    """0.29 -> '29 %' (Russian, with a no-break space) or '29%' (English); sign=True: '+29 %'."""
    from babel import Locale
    from babel.numbers import format_percent

    lang = lang or current()
    pattern = Locale(lang).percent_formats[None].pattern  # "#,##0\xa0%" / "#,##0%"
    if digits > 0:
        pattern = pattern.replace("#,##0", "#,##0." + "0" * digits)
    if sign:
        pattern = "+%s;-%s" % (pattern, pattern)
    return format_percent(fraction, format=pattern, locale=lang)


def range_text(low, high, digits=0, lang=None, sign=True):
    """An interval of two fractions: 'от +29 до +84 %' / '+29% to +84%'."""
    words = catalogue(lang or current())
    lo = percent(low, digits, lang, sign)
    hi = percent(high, digits, lang, sign)
    if (lang or current()) == "ru":  # the unit once, after the upper bound
        lo = lo.replace("\xa0%", "").replace("%", "")
    return words.gettext("%(low)s to %(high)s") % {"low": lo, "high": hi}


class Words:
    """The catalogue in one language, for code that is given a `lang` (reports)."""

    def __init__(self, lang):
        self.lang = lang if lang in LANGS else FALLBACK
        self._cat = catalogue(self.lang)

    def gettext(self, message):
        return self._cat.gettext(message)

    def ngettext(self, singular, plural, n):
        return self._cat.ngettext(singular, plural, n)

    def number(self, value, digits=1):
        return number(value, digits, self.lang)

    def percent(self, fraction, digits=0, sign=False):
        return percent(fraction, digits, self.lang, sign)

    def range(self, low, high, digits=0, sign=True):
        return range_text(low, high, digits, self.lang, sign)


# ---- words by key (the report's vocabulary) --------------------------------------------------
# key -> English message id. A (ru, en) pair is the older form of an entry: it still works, and
# belongs in the catalogue (the report's own words move there with the report).

TEXT = {
    "di_staff": N_("DI-staff"),
    "di_office": N_("DI-office"),
    "eli": N_("ELI"),
    "exact_conversion": N_("Exact conversion"),
    "visitor_coverage": N_("Visitor coverage"),
    "fm_rate": N_("Force-majeure rate"),
    "polls": N_("Polls"),
    "period": N_("period"),
    "by": N_("by"),
    "total": N_("Total"),
    "all": N_("all"),
    "period_all": N_("all"),
    "period_day": N_("by day"),
    "period_week": N_("by week"),
    "period_month": N_("by month"),
    "employee": N_("Employee"),
    "device": N_("Panel"),
    "site": N_("Office"),
    "region": N_("Region"),
    "question": N_("Question"),
    "unassigned": N_("(unassigned)"),
    "flags": N_("Flags"),
    "bottleneck": N_("Bottleneck"),
    "report_title": N_("KPI report"),
    "k": N_("correction coefficient k"),
    "na": N_("n/a"),
    "no_rows": N_("No polls in the chosen period."),
    "no_region": N_("offices outside every region"),
    "too_few_to_rank": N_("too few polls to rank"),
    "no_reference": N_("no reference values set (deployment.reference in the site file)"),
    "sorted_by": ("рейтинг по", "ranked by"),
    "pivot_note": (
        "* меньше %(min_n)d опросов: лишь ориентир; - нет опросов; н/д: не рассчитать.",
        "* fewer than %(min_n)d polls: a rough indication only; - no polls; n/a: cannot be computed.",
    ),
    "sheet_employee": ("Сотрудники", "Employees"),
    "sheet_device": ("Панели", "Panels"),
    "sheet_site": ("Офисы", "Offices"),
    "sheet_region": ("Регионы", "Regions"),
    "sheet_question": ("Вопросы", "Questions"),
    "sheet_pivot": ("Сводная", "Pivot"),
    "col_rank": ("Место", "Rank"),
    "col_label": ("Название", "Name"),
    "col_key": ("Код", "Id"),
    "col_from": ("С", "From"),
    "col_to": ("По (не включая)", "To (exclusive)"),
    "col_timezone": ("Часовой пояс", "Timezone"),
    "col_invalid": ("Недействительные опросы", "Invalid polls"),
    "col_low": ("от", "low"),
    "col_high": ("до", "high"),
    "col_transactions": ("Продажи", "Transactions"),
    "col_visitors": ("Посетители", "Visitors"),
    "col_fm_reports": ("Форс-мажоры", "Force-majeure reports"),
    "col_fm_pending": ("Форс-мажоры без проверки", "Force majeure not reviewed"),
    "col_lost": ("Потеряно событий", "Lost events"),
    "col_verdict": ("Вывод", "Verdict"),
    "col_reason": ("Пояснение", "Reason"),
    # the POS section of every report form (gateway/report_pos.py, docs/transactions.md)
    "pos_title": (
        "Продажи с кассы и опросы (точная конверсия = опросы после продажи / продажи):",
        "Sales matched to polls (exact conversion = matched polls / sales; docs/transactions.md):",
    ),
    "pos_by_device": ("По панелям", "Per panel"),
    "pos_by_employee": ("По сотрудникам", "Per employee"),
    "pos_sales": ("Продажи", "Sales"),
    "pos_polls": ("Опросы", "Polls"),
    "pos_matched": ("Опросы после продажи", "Matched polls"),
    "pos_no_sale": ("Опросы без продажи", "Polls with no sale"),
    "pos_no_poll": ("Продажи без опроса", "Sales with no poll"),
    "pos_sheet": ("Касса", "POS"),
    "pos_note": (
        "В скобках: 95 % интервал Уилсона; n — число продаж, на котором держится конверсия.",
        "In brackets: the 95 % Wilson interval; n is the number of sales the conversion rests on.",
    ),
    "col_grouping": ("Разрез", "Grouping"),
    # the HTML/PDF report and the e-mailed one (gateway/report_docs.py, gateway/reportmail.py)
    "doc_generated": ("Составлен", "Generated"),
    "doc_range": ("Период", "Range"),
    "doc_open": ("без ограничения", "open"),
    "doc_timezones": ("Часовой пояс офисов", "Offices' timezone"),
    "doc_interval": (
        "В скобках: 95 % интервал и n, на скольких опросах держится показатель.",
        "In brackets: the 95 % interval and n, the number of polls the figure rests on.",
    ),
    "doc_attached": (
        "Полный отчёт во вложении: .xlsx (все разрезы) и PDF.",
        "The full report is attached: .xlsx (every grouping) and PDF.",
    ),
    # the charts of the documents (gateway/report_docs.figures)
    "chart_band": ("95 % интервал", "95 % interval"),
    "chart_small": ("меньше %(n)d опросов", "fewer than %(n)d polls"),
    "chart_intervals": ("%(by)s: показатели и их 95 %% интервалы", "%(by)s: the figures and their 95 %% intervals"),
    "chart_first": ("первые %(n)d из %(total)d", "the first %(n)d of %(total)d"),
    "every_day": ("ежедневный", "daily"),
    "every_week": ("еженедельный", "weekly"),
    "every_month": ("ежемесячный", "monthly"),
    # review list
    "stratum_no": N_("No answer"),
    "stratum_fm": N_("force majeure"),
    "stratum_random": N_("random sample"),
    "stratum_doubt": N_("doubtful"),
    # why a poll is doubtful (gateway/doubt.py)
    "doubt_very_fast_answer": N_("answered before a person could read the question"),
    "doubt_fast_answer": N_("answered faster than a customer reacts"),
    "doubt_seller_held": N_("an answer pressed while the seller's button was still held"),
    "doubt_reopened": N_("poll opened again (a No overwritten?)"),
    "doubt_extra_presses": N_("more answer presses than one customer makes"),
    "doubt_yes_streak": N_("in a run of Yes far above the employee's own share"),
    "doubt_unsolicited_near": N_("buttons pressed with no poll open nearby"),
    "doubt_no_sale": N_("no sale at that till before the poll (POS)"),
    "silent": N_("silent"),
    "yes": N_("Yes"),
    "no": N_("No"),
    "unsure": N_("Unsure"),
    "video": N_("video"),
    "verdict": N_("verdict"),
    "pending": N_("pending review"),
    "confirmed": N_("confirmed"),
    "rejected": N_("rejected"),
    "invalid": N_("invalid"),
    "valid": N_("valid"),
}

# Flags the gateway adds next to kpi_core's: code -> English message id (a %-template).
FLAGS = {
    "fm_pending": N_(
        "%(n)d force-majeure report(s) not reviewed yet: until an expert confirms them, "
        "DI-staff counts every No and silent poll."
    ),
    "time_not_device": N_(
        "%(share)s of polls have a repaired (%(repaired)d) or arrival (%(arrival)d) time: "
        "the panel clock was not synced."
    ),
    "lost_events": N_("%(n)d panel event(s) lost (%(ranges)s): polls of that time are incomplete."),
    "counts_partial_transactions": (
        "Продажи посчитаны только за часть периода (%(hours)s ч, %(share)s): точная конверсия учитывает "
        "опросы этого времени (%(inside)d), опросы вне его (%(outside)d) не учтены.",
        "Sales were counted for part of the period only (%(hours)s h, %(share)s): exact conversion "
        "counts the %(inside)d polls of that time and leaves out the %(outside)d outside it.",
    ),
    "counts_partial_visitors": (
        "Посетители посчитаны только за часть периода (%(hours)s ч, %(share)s): охват посетителей "
        "учитывает опросы этого времени (%(inside)d), опросы вне его (%(outside)d) не учтены.",
        "Visitors were counted for part of the period only (%(hours)s h, %(share)s): visitor coverage "
        "counts the %(inside)d polls of that time and leaves out the %(outside)d outside it.",
    ),
    "counts_partial_open_transactions": (
        "Продажи посчитаны не за всё время опросов (%(hours)s ч): точная конверсия учитывает опросы "
        "этого времени (%(inside)d), опросы вне его (%(outside)d) не учтены.",
        "Sales were not counted for all the time of the polls (%(hours)s h counted): exact conversion "
        "counts the %(inside)d polls of that time and leaves out the %(outside)d outside it.",
    ),
    "counts_partial_open_visitors": (
        "Посетители посчитаны не за всё время опросов (%(hours)s ч): охват посетителей учитывает "
        "опросы этого времени (%(inside)d), опросы вне его (%(outside)d) не учтены.",
        "Visitors were not counted for all the time of the polls (%(hours)s h counted): visitor "
        "coverage counts the %(inside)d polls of that time and leaves out the %(outside)d outside it.",
    ),
    "no_roster": (
        "Опросов без сотрудника: %(n)d (%(panels)s): в это время никто не был назначен на панель. "
        "Добавьте её в [[roster]] файла площадок на это время, чтобы отнести опросы к сотруднику.",
        "%(n)d poll(s) on %(panels)s were opened while no one was on the panel's roster: add the "
        "panel to [[roster]] in the site file for that time to see them under a person.",
    ),
}


def lang_or_default(lang):
    return lang if lang in LANGS else "ru"


def _word(entry, lang):
    if isinstance(entry, tuple):  # (ru, en): an entry not in the catalogue yet
        return entry[0] if lang == "ru" else entry[1]
    return catalogue(lang).gettext(entry)


def t(lang, key):
    return _word(TEXT[key], lang)


def flag_text(lang, code, **values):
    return _word(FLAGS[code], lang) % values


def answer_text(lang, answer):
    return t(lang, answer or "silent")


# ---- dead-letter reasons ---------------------------------------------------------------------
# A dead letter keeps the reason as the check said it, in English: protocol/ runs on the panel
# too and has no catalogue. The reader sees it in their language: each check's wording is
# recognised by a pattern and its message (in the catalogue) filled in with what it captured.
_VALUE = r"(?P<got>.*)"
REASONS = (
    (r"missing", N_("missing")),
    (r"must be an integer >= (?P<lo>-?\d+), got " + _VALUE, N_("must be an integer >= %(lo)s, got %(got)s")),
    (
        r"must be an integer >= (?P<lo>-?\d+) or null, got " + _VALUE,
        N_("must be an integer >= %(lo)s or null, got %(got)s"),
    ),
    (
        r"must be an integer (?P<lo>-?\d+)\.\.(?P<hi>-?\d+), got " + _VALUE,
        N_("must be an integer from %(lo)s to %(hi)s, got %(got)s"),
    ),
    (
        r"must be an integer (?P<lo>-?\d+)\.\.(?P<hi>-?\d+) or null, got " + _VALUE,
        N_("must be an integer from %(lo)s to %(hi)s or null, got %(got)s"),
    ),
    (
        r"must be Unix time in ms from 2020 to 2100, got " + _VALUE,
        N_("must be Unix time in ms from 2020 to 2100, got %(got)s"),
    ),
    (
        r"must be Unix time in ms from 2020 to 2100 or null, got " + _VALUE,
        N_("must be Unix time in ms from 2020 to 2100 or null, got %(got)s"),
    ),
    (
        r"must be (?P<lo>\d+)\.\.(?P<hi>\d+) characters long, got (?P<got>\d+)",
        N_("must be %(lo)s to %(hi)s characters long, got %(got)s"),
    ),
    (r"must be a string, got " + _VALUE, N_("must be a string, got %(got)s")),
    (r"must be a string or null, got " + _VALUE, N_("must be a string or null, got %(got)s")),
    (r'must be a string like "stuck:yes", got ' + _VALUE, N_('must be a string like "stuck:yes", got %(got)s')),
    (
        r"contains a UTF-16 surrogate escape; send the text as plain UTF-8",
        N_("contains a UTF-16 surrogate escape; send the text as plain UTF-8"),
    ),
    (r"must be one of (?P<choices>.*), got " + _VALUE, N_("must be one of %(choices)s, got %(got)s")),
    (r"only allowed on seller events, got it on " + _VALUE, N_("only allowed on seller events, got it on %(got)s")),
    (r"must be true or false, got " + _VALUE, N_("must be true or false, got %(got)s")),
    (
        r"must be a list of at most (?P<n>\d+) strings, got " + _VALUE,
        N_("must be a list of at most %(n)s strings, got %(got)s"),
    ),
    (r"(?P<size>\d+) bytes, limit is (?P<limit>\d+)", N_("%(size)s bytes, limit is %(limit)s")),
    (r"not valid UTF-8", N_("not valid UTF-8")),
    (r"not valid JSON", N_("not valid JSON")),
    (r"must be a JSON object, got " + _VALUE, N_("must be a JSON object, got %(got)s")),
    (
        r"missing \(protocol version, must be (?P<n>\d+)\)",
        N_("missing (protocol version, must be %(n)s)"),
    ),
    (
        r"unsupported protocol version (?P<got>.*), this side speaks (?P<n>\d+)",
        N_("unsupported protocol version %(got)s, this side speaks %(n)s"),
    ),
    (
        r"may only contain a-z, 0-9 and '-', got (?P<ch>.*) in (?P<got>.*)",
        N_("may only contain a-z, 0-9 and '-', got %(ch)s in %(got)s"),
    ),
    (
        r"has an empty segment in (?P<got>.*) \(no leading, trailing or double '/'\)",
        N_("has an empty segment in %(got)s (no leading, trailing or double '/')"),
    ),
    (
        r"may only contain a-z, 0-9, '-', '_', '\.' and '/', got (?P<ch>.*) in (?P<got>.*)",
        N_("may only contain a-z, 0-9, '-', '_', '.' and '/', got %(ch)s in %(got)s"),
    ),
    (r"must be a non-empty string like (?P<got>.*)", N_("must be a non-empty string like %(got)s")),
    (r"must be at most (?P<n>\d+) characters, got (?P<got>\d+)", N_("must be at most %(n)s characters, got %(got)s")),
    (r"must be a string id \(a-z, 0-9, '-'\), got " + _VALUE, N_("must be a string id (a-z, 0-9, '-'), got %(got)s")),
    (
        r"must be an id of 1\.\.(?P<n>\d+) characters a-z, 0-9, '-', got " + _VALUE,
        N_("must be an id of 1 to %(n)s characters a-z, 0-9, '-', got %(got)s"),
    ),
    (r"must be after from \((?P<start>\d+)\), got " + _VALUE, N_("must be after from (%(start)s), got %(got)s")),
    (r"missing: give transactions, visitors or both", N_("missing: give transactions, visitors or both")),
    (r"(?P<topic>.*) is not under root (?P<root>.*)", N_("%(topic)s is not under root %(root)s")),
    (
        r"(?P<topic>.*) must be <root>/<site>/<device>/<kind> or <root>/<site>/counts",
        N_("%(topic)s must be <root>/<site>/<device>/<kind> or <root>/<site>/counts"),
    ),
    (
        r"database refused the message: (?P<error>.*)",
        N_("database refused the message: %(error)s"),
    ),
    (r"gateway error while decoding: (?P<error>.*)", N_("gateway error while decoding: %(error)s")),
    (
        r"seq (?P<seq>\d+) of (?P<panel>\S+) is already stored with different content \(panel journal reset or "
        r"firmware bug\?\); the stored event is kept",
        N_(
            "seq %(seq)s of %(panel)s is already stored with different content (panel journal reset or "
            "firmware bug?); the stored event is kept"
        ),
    ),
    (
        r"seq (?P<seq>\d+) of (?P<panel>\S+) is already stored with different content(?P<rest>.*)",
        N_("seq %(seq)s of %(panel)s is already stored with different content%(rest)s"),
    ),
    (
        r"seq (?P<seq>\d+) of (?P<panel>\S+) was acked past as a dead letter, so this is another event "
        r"\(panel journal reset\?\)",
        N_("seq %(seq)s of %(panel)s was acked past as a dead letter, so this is another event (panel journal reset?)"),
    ),
)
_REASONS = None


def reason(text, lang=None):
    """A dead letter's reason ("seq: must be an integer >= 1, got -3") in `lang` (default: the
    process's); a reason no pattern knows stays as it was stored."""
    global _REASONS
    import re

    if _REASONS is None:
        _REASONS = [(re.compile(pattern + "$", re.DOTALL), msgid) for pattern, msgid in REASONS]
    words = catalogue(lang or current())
    field, sep, problem = text.partition(": ")
    if not sep or " " in field:
        field, problem = "", text
    for pattern, msgid in _REASONS:
        m = pattern.match(problem)
        if m:
            said = words.gettext(msgid) % m.groupdict()
            return "%s: %s" % (field, said) if field else said
    return text
