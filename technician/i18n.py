"""The technician's messages in the user's language, without a dependency on the gateway.

technician/ may not import gateway/ (docs/architecture.md), so it holds no catalogue of its own:
its texts are marked with `_()` like everywhere else, extracted into the one catalogue
(gateway/locale, `make i18n`), and the `rating` command (rating/cli.py, the composition root)
installs the gateway's translation functions here before it builds its parser. Used alone,
the technician's modules speak English.
"""

_translate = {
    "gettext": lambda message: message,
    "ngettext": lambda s, p, n: s if n == 1 else p,
    "number": lambda value, digits=1: "%.*f" % (digits, value),
}


def install(gettext, ngettext, number=None):
    """Translate through these (gateway.i18n's `_`, `ngettext` and `number`) from now on."""
    _translate.update(gettext=gettext, ngettext=ngettext)
    if number is not None:
        _translate["number"] = number


def N_(message):
    """Mark `message` for the catalogue where it is defined; `_()` translates it where it is shown."""
    return message


def _(message):
    return _translate["gettext"](message)


def ngettext(singular, plural, n):
    return _translate["ngettext"](singular, plural, n)


def number(value, digits=1):
    """`value` with `digits` decimals as the language writes it (0,5 in Russian)."""
    return _translate["number"](value, digits)
