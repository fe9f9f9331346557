"""Who may see and do what: roles' capabilities and an account's office scope. Pure.

A scope is a set of office ids (site ids of the site file) plus region names, or every office.
A region expands into its offices through the site file's location tree (`[[regions]]`,
nested ones included) when the scope is read: `regions(history, t)`, so an office added to a
region later is in scope without touching the account.
"""

CAPABILITIES = {
    # the review queue and one item (reading)
    "review": ("admin", "expert"),
    # giving verdicts (valid / invalid / confirm / reject / undo)
    "verdict": ("admin", "expert"),
    # the KPI page and the report API
    "reports": ("admin", "expert", "analyst", "store-manager"),
    # polls through the API
    "polls": ("admin", "expert", "analyst", "store-manager"),
    # the panel fleet and dead letters
    "fleet": ("admin", "technician", "store-manager"),
    # accounts and API tokens
    "admin": ("admin",),
    # the CRM follow-ups through the API (customers' loyalty references): integrations only,
    # never staff (docs/integrations.md)
    "followups": ("integration",),
    # posting POS sales (POST /api/v1/transactions): an office's own integration account
    # (a store-manager scoped to its offices) or an admin; never shown loyalty references
    "pos": ("admin", "store-manager"),
}


def can(role, capability):
    return role in CAPABILITIES.get(capability, ())


def regions(history, t) -> dict[str, list[str]]:
    """{region id: [office ids]} of the site file's location tree at time t (History.regions)."""
    return history.regions(t)


class Scope:
    """The offices an account may see."""

    def __init__(self, all_offices=False, offices=(), region_names=()):
        self.all_offices = bool(all_offices)
        self.offices: frozenset[str] = frozenset(offices or ())
        self.regions: frozenset[str] = frozenset(region_names or ())

    @classmethod
    def of(cls, user):
        if user["role"] == "admin":
            return cls(all_offices=True)
        return cls(user["all_offices"], user["offices"], user["regions"])

    def sites(self, history, t):
        """The office ids in scope at time t: a frozenset, or None for every office."""
        if self.all_offices:
            return None
        out: set[str] = set(self.offices)
        tree = regions(history, t)
        for name in self.regions:
            out.update(tree.get(name, []))
        return frozenset(out)

    def allows(self, site, history, t):
        sites = self.sites(history, t)
        return sites is None or site in sites


def visible(all_sites, in_scope):
    """The offices of `all_sites` an account with `in_scope` (None: all) may see, sorted."""
    return sorted(s for s in all_sites if in_scope is None or s in in_scope)
