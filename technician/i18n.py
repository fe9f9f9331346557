"""The technician's messages in the user's language, without a dependency on the gateway.

technician/ may not import gateway/ (docs/architecture.md), so it holds no catalogue of its own:
its texts are marked with `_()` like everywhere else, extracted into the one catalogue
(gateway/locale, `make i18n`), and the `rating` command (rating/cli.py, the composition root)
installs the gateway's translation functions here before it builds its parser. Used alone,
the technician's modules speak English.
"""

_translate = {"gettext": lambda message: message, "ngettext": lambda s, p, n: s if n == 1 else p}


def install(gettext, ngettext):
    """Translate through these (gateway.i18n's `_` and `ngettext`) from now on."""
    _translate.update(gettext=gettext, ngettext=ngettext)


def _(message):
    return _translate["gettext"](message)


def ngettext(singular, plural, n):
    return _translate["ngettext"](singular, plural, n)
