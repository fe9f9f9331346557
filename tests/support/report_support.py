"""A small deployment to report on: one office, two sellers, three days of polls and counts;
the check of an e-mailed report's inline charts."""

import io

from gw_site_support import MIN, SITE_TOML, T0, Panel, apply_site, sqlite_db, store_events
from PIL import Image

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


def check_inline_charts(msg):
    """mixed[alternative[text, related[html, png...]], xlsx, pdf]; every PNG has a Content-ID the
    HTML shows as cid:, is a real picture with ink in it, and the HTML has no SVG left."""
    assert msg.get_content_type() == "multipart/mixed"
    alternative, xlsx, pdf = msg.iter_parts()
    assert alternative.get_content_type() == "multipart/alternative"
    assert xlsx.get_filename().endswith(".xlsx") and pdf.get_content_type() == "application/pdf"
    text, related = alternative.iter_parts()
    assert text.get_content_type() == "text/plain" and related.get_content_type() == "multipart/related"
    html, *images = related.iter_parts()
    assert html.get_content_type() == "text/html" and images
    page = html.get_content()
    assert "<svg" not in page
    for image in images:
        assert image.get_content_type() == "image/png" and image.get("Content-Disposition", "").startswith("inline")
        cid = image["Content-ID"].strip("<>")
        assert 'src="cid:%s"' % cid in page
        picture = Image.open(io.BytesIO(image.get_content())).convert("L")
        assert picture.width > 600 and picture.height > 200
        dark = sum(picture.histogram()[:200])
        assert dark > picture.width * picture.height * 0.01  # drawn, not blank
    return images
