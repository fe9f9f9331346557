"""Staff-facing words in Russian and English, keyed by stable names.

The KPI names are the method's own (METHOD.md): ИНК@Персонал / DI-staff, ИНК@Офис / DI-office,
ИЭЛ / ELI. Flag messages come from kpi_core (message_en / message_ru) or from FLAGS below.
"""

LANGS = ("ru", "en")

TEXT = {
    "di_staff": ("ИНК@Персонал", "DI-staff"),
    "di_office": ("ИНК@Офис", "DI-office"),
    "eli": ("ИЭЛ", "ELI"),
    "exact_conversion": ("Точная конверсия", "Exact conversion"),
    "visitor_coverage": ("Охват посетителей", "Visitor coverage"),
    "fm_rate": ("Уровень форс-мажора", "Force-majeure rate"),
    "polls": ("Опросы", "Polls"),
    "period": ("период", "period"),
    "by": ("разрез", "by"),
    "total": ("Итого", "Total"),
    "all": ("весь период", "all"),
    "period_all": ("весь период", "all"),
    "period_day": ("по дням", "by day"),
    "period_week": ("по неделям", "by week"),
    "period_month": ("по месяцам", "by month"),
    "employee": ("Сотрудник", "Employee"),
    "device": ("Панель", "Panel"),
    "site": ("Офис", "Office"),
    "question": ("Вопрос", "Question"),
    "unassigned": ("(не назначен)", "(unassigned)"),
    "flags": ("Предупреждения", "Flags"),
    "bottleneck": ("Узкое место", "Bottleneck"),
    "report_title": ("Отчёт по KPI", "KPI report"),
    "k": ("поправочный коэффициент k", "correction coefficient k"),
    "na": ("н/д", "n/a"),
    "no_rows": ("Нет опросов за выбранный период.", "No polls in the chosen period."),
    "no_reference": (
        "не заданы референсные значения (deployment.reference в файле площадок)",
        "no reference values set (deployment.reference in the site file)",
    ),
    # review list
    "stratum_no": ("ответ «Нет»", "No answer"),
    "stratum_fm": ("форс-мажор", "force majeure"),
    "stratum_random": ("случайная выборка", "random sample"),
    "silent": ("молчун", "silent"),
    "yes": ("Да", "Yes"),
    "no": ("Нет", "No"),
    "unsure": ("Затрудняюсь ответить", "Unsure"),
    "video": ("видео", "video"),
    "verdict": ("вердикт", "verdict"),
    "pending": ("ждёт проверки", "pending review"),
    "confirmed": ("подтверждён", "confirmed"),
    "rejected": ("отклонён", "rejected"),
    "invalid": ("недействителен", "invalid"),
    "valid": ("действителен", "valid"),
}

# Flags the gateway adds next to kpi_core's: code -> (ru, en) templates.
FLAGS = {
    "fm_pending": (
        "Форс-мажоров без проверки эксперта: %(n)d. Пока они не подтверждены, ИНК@Персонал "
        "учитывает все ответы «Нет» и молчунов.",
        "%(n)d force-majeure report(s) not reviewed yet: until an expert confirms them, "
        "DI-staff counts every No and silent poll.",
    ),
    "time_not_device": (
        "У %(share)s опросов время восстановлено (%(repaired)d) или взято по приходу "
        "(%(arrival)d): часы панели не были синхронизированы.",
        "%(share)s of polls have a repaired (%(repaired)d) or arrival (%(arrival)d) time: "
        "the panel clock was not synced.",
    ),
    "lost_events": (
        "Потеряно событий панелей: %(n)d (%(ranges)s). Опросы за это время неполны.",
        "%(n)d panel event(s) lost (%(ranges)s): polls of that time are incomplete.",
    ),
}


def lang_or_default(lang):
    return lang if lang in LANGS else "ru"


def t(lang, key):
    ru, en = TEXT[key]
    return ru if lang == "ru" else en


def flag_text(lang, code, **values):
    ru, en = FLAGS[code]
    return (ru if lang == "ru" else en) % values


def answer_text(lang, answer):
    return t(lang, answer or "silent")
