"""A small deployment to report on: one office, two sellers, three days of polls and counts."""

from gw_site_support import MIN, SITE_TOML, T0, Panel, apply_site, sqlite_db, store_events

from gateway import derive, store

DAY = 24 * 60 * MIN
HOUR = 60 * MIN


def chain_db(tmp_path, extra=""):
    """Two sellers on desk-1 (Ivanova Monday, Petrov from Tuesday), Ivanova on the exit panel,
    three days of polls and counts; the site file's language is Russian."""
    text = SITE_TOML.replace('lang = "en"', 'lang = "ru"')
    text += '\n[[roster]]\npanel = "msk/desk-1"\nemployee = "petrov"\nfrom = 2025-01-06T21:00:00Z\n'
    text += '\n[[roster]]\npanel = "msk/exit"\nemployee = "ivanova"\nfrom = 2025-01-01T00:00:00Z\n'
    text += extra
    db = sqlite_db(tmp_path)
    apply_site(db, text)
    d, e = Panel(), Panel(device="exit")
    for day in range(3):
        for i in range(6):
            t = T0 + day * DAY + i * 10 * MIN
            d.poll(t, "no" if i % (3 if day == 0 else 6) == 0 else "yes")  # DI-staff 33 %, then 17 %
            e.poll(t + 2 * MIN, "yes" if i % 2 else None)
    store_events(db, d.events + e.events)
    derive.update(db, [("msk", "desk-1"), ("msk", "exit")], T0 + 4 * DAY)
    with db.transaction():
        for day in range(3):
            store.insert_counts(db, "msk", "", T0 + day * DAY - HOUR, T0 + day * DAY + 3 * HOUR, 9, 30, "t", T0)
    db.close()
    return "sqlite:///%s" % (tmp_path / "rating.db")
