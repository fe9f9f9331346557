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
    "sorted_by": ("рейтинг по", "ranked by"),
    "pivot_note": (
        "* меньше %(min_n)d опросов: лишь ориентир; - нет опросов; н/д: не рассчитать.",
        "* fewer than %(min_n)d polls: a rough indication only; - no polls; n/a: cannot be computed.",
    ),
    "sheet_employee": ("Сотрудники", "Employees"),
    "sheet_device": ("Панели", "Panels"),
    "sheet_site": ("Офисы", "Offices"),
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


def t(lang, key):
    ru, en = TEXT[key]
    return ru if lang == "ru" else en


def flag_text(lang, code, **values):
    ru, en = FLAGS[code]
    return (ru if lang == "ru" else en) % values


def answer_text(lang, answer):
    return t(lang, answer or "silent")
