"""Times and numbers as people read them, in Russian and English. Pure.

Times are shown in the office's timezone with the zone named ("2025-03-03 11:02:03 MSK"); the
zone's abbreviation where it has a letter one, else its UTC offset ("+04"). Numbers use the
language's decimal mark (12,5 % in Russian, 12.5% in English).
"""

import datetime as _dt

# the share of a figure: one decimal below 10 %, none above (as kpi_core prints them)


def local(ms, tz):
    return _dt.datetime.fromtimestamp(ms / 1000.0, tz)


def zone(ms, tz):
    """'MSK', 'CET', or '+04' when the zone has no letter abbreviation."""
    name = local(ms, tz).tzname() or ""
    return name if name[:1].isalpha() else name


def time(ms, tz, lang, seconds=True):
    """'03.03.2025 11:02:03 MSK' (ru) / '2025-03-03 11:02:03 MSK' (en); '—' for None."""
    if ms is None:
        return "—"
    d = local(ms, tz)
    clock = d.strftime("%H:%M:%S" if seconds else "%H:%M")
    day = d.strftime("%d.%m.%Y") if lang == "ru" else d.strftime("%Y-%m-%d")
    return "%s %s %s" % (day, clock, zone(ms, tz))


def clock(ms, tz, seconds=True):
    if ms is None:
        return "—"
    return local(ms, tz).strftime("%H:%M:%S" if seconds else "%H:%M")


def date(ms, tz, lang):
    d = local(ms, tz)
    return d.strftime("%d.%m.%Y") if lang == "ru" else d.strftime("%Y-%m-%d")


def day(d, lang):
    """A calendar date: 03.03.2025 (ru) / 2025-03-03 (en)."""
    return d.strftime("%d.%m.%Y") if lang == "ru" else d.isoformat()


def input_value(ms, tz):
    """The value of an <input type="datetime-local"> for ms in tz."""
    return local(ms, tz).strftime("%Y-%m-%dT%H:%M:%S")


def number(value, lang, decimals=0):
    """12 345,6 (ru, a narrow no-break space between thousands) / 12,345.6 (en)."""
    if value is None:
        return "—"
    text = "{:,.{d}f}".format(value, d=decimals)
    if lang == "ru":
        text = text.replace(",", "\u202f").replace(".", ",")
    return text


def _decimals(value):
    return 1 if abs(value) < 0.1 else 0


def percent(value, lang, decimals=None, signed=False):
    if value is None:
        return "—"
    d = _decimals(value) if decimals is None else decimals
    text = number(value * 100, lang, d)
    if signed and value > 0:
        text = "+" + text
    return text + ("\u00a0%" if lang == "ru" else "%")


def figure(fig, lang, na_text="n/a"):
    """A report figure object ({value, low, high, n, reason}) as '12 % (8–17 %, n = 230)'."""
    if fig is None:
        return "—"
    if fig.get("value") is None:
        return "%s (%s)" % (na_text, fig.get("reason") or "—")
    signed = fig.get("low") is not None and fig["low"] < 0 or fig["value"] < 0
    d = _decimals(fig["value"])
    head = percent(fig["value"], lang, d, signed)
    if fig.get("low") is None or fig.get("high") is None:
        return "%s (n\u00a0=\u00a0%s)" % (head, number(fig.get("n") or 0, lang))
    low, high = (percent(fig[k], lang, d, signed) for k in ("low", "high"))
    unit = "\u00a0%" if lang == "ru" else "%"
    return "%s (%s–%s, n\u00a0=\u00a0%s)" % (head, low[: -len(unit)], high, number(fig["n"], lang))


def parse_local(text, tz):
    """'2025-03-03T11:02' or '2025-03-03T11:02:03' (an <input type=datetime-local>) in tz ->
    epoch ms; ValueError when it is not such a time."""
    when = _dt.datetime.fromisoformat((text or "").strip())
    if when.tzinfo is not None:
        raise ValueError("no UTC offset expected")
    return int(when.replace(tzinfo=tz).timestamp() * 1000)


def parse_date(text):
    """'2025-03-03' -> date; ValueError otherwise."""
    return _dt.date.fromisoformat((text or "").strip())


# what a panel's fault codes (firmware/app.py, firmware/buttons.py) mean
_FAULTS = {
    "journal": ("запись журнала не удалась", "the journal could not be written"),
    "journal_small": ("журнал меньше заданного (мало места)", "the journal is smaller than set (little space)"),
    "cfg_write": ("конфигурация не сохранена на панели", "the config could not be kept on the panel"),
}
_BUTTONS = {
    "yes": ("«Да»", "Yes"),
    "no": ("«Нет»", "No"),
    "unsure": ("«Затрудняюсь»", "Unsure"),
    "seller": ("продавца", "seller"),
}


def fault(code, lang):
    """A panel fault in words ("stuck:yes" -> "stuck button: Yes"); an unknown code as it is."""
    ru = lang == "ru"
    if code.startswith("stuck:"):
        button = _BUTTONS.get(code[6:], (code[6:], code[6:]))
        return ("залипла кнопка %s" if ru else "stuck button: %s") % button[0 if ru else 1]
    words = _FAULTS.get(code)
    return code if words is None else words[0 if ru else 1]
