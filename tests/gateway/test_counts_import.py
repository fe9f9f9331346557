"""`rating counts import` reads what Russian Excel writes (`;`, decimal commas, a BOM, dd.mm.yyyy
times), times without an offset in the office's timezone, refuses offices and panels the
settings never had (listing the known ones), one line per bad row, nothing half-imported."""

import pytest
from gw_site_support import SITE_TOML, apply_site, open_db, run_cli

from gateway import store

# 2025-01-06 09:00 Moscow = 06:00 UTC
NINE_MSK = 1736143200000
HOUR = 3600000

TWO_OFFICES = SITE_TOML.replace(
    "[[questions]]", '[[sites]]\nid = "la"\nname = "LA"\ntimezone = "America/Los_Angeles"\n\n[[questions]]', 1
)


@pytest.fixture
def url(any_db_url):
    u = any_db_url
    db = open_db(u)
    apply_site(db, TWO_OFFICES)
    db.close()
    return u


def stored(url):
    db = open_db(url)
    try:
        return [
            (r["site"], r["device"], r["from_ms"], r["to_ms"], r["transactions"], r["visitors"])
            for r in store.counts(db)
        ]
    finally:
        db.close()


def test_a_russian_excel_export_is_imported_in_the_offices_timezone(url, tmp_path, capsys):
    text = (
        "site;device;from;to;transactions;visitors\r\n"
        "msk;;06.01.2025 09:00;06.01.2025 10:00;12,0;1 234\r\n"
        "msk;desk-1;2025-01-06T10:00;2025-01-06T11:00;3;\r\n"
        "la;;06.01.2025 09:00;06.01.2025 10:00;\u00a05;7\r\n"
    )
    path = tmp_path / "counts.csv"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))  # Excel's "CSV UTF-8" has a BOM
    code, out, err = run_cli(capsys, "counts", "import", str(path), "--db", url)
    assert (code, err) == (0, "") and "3 intervals stored" in out
    la_nine = 1736182800000  # 2025-01-06 09:00 Los Angeles = 17:00 UTC
    assert sorted(stored(url)) == sorted(
        [
            ("msk", "", NINE_MSK, NINE_MSK + HOUR, 12, 1234),
            ("msk", "desk-1", NINE_MSK + HOUR, NINE_MSK + 2 * HOUR, 3, None),
            ("la", "", la_nine, la_nine + HOUR, 5, 7),
        ]
    )
    code, out, _err = run_cli(capsys, "counts", "list", "--db", url, "--site", "msk")
    assert code == 0 and "2025-01-06 09:00:00-10:00:00 MSK" in out and "1234" in out and "2 intervals" in out


def test_an_unknown_office_or_panel_is_refused_listing_the_known_ones(url, tmp_path, capsys):
    path = tmp_path / "counts.csv"
    path.write_text(
        "site,device,from,to,visitors\n"
        "msk,,2025-01-06T09:00+03:00,2025-01-06T10:00+03:00,5\n"
        "spb,,2025-01-06T09:00+03:00,2025-01-06T10:00+03:00,5\n"
        "msk,desk-9,2025-01-06T09:00+03:00,2025-01-06T10:00+03:00,5\n",
        encoding="utf-8",
    )
    code, _out, err = run_cli(capsys, "counts", "import", str(path), "--db", url)
    assert code == 2
    assert "  line 3: site: no office 'spb' in the settings; the offices are: la, msk\n" in err
    assert "  line 4: device: office msk has no panel 'desk-9'; its panels are: desk-1, door, exit\n" in err
    assert stored(url) == []  # nothing half-imported


def test_each_bad_row_is_one_line_and_nothing_is_imported(url, tmp_path, capsys):
    path = tmp_path / "counts.csv"
    path.write_text(
        "site;from;to;transactions\n"
        "msk;06.01.2025 09:00;06.01.2025 10:00;12,5\n"
        "msk;31.02.2025 09:00;06.01.2025 10:00;1\n"
        "msk;06.01.2025 10:00;06.01.2025 11:00;-3\n",
        encoding="utf-8",
    )
    code, _out, err = run_cli(capsys, "counts", "import", str(path), "--db", url)
    lines = err.splitlines()
    assert code == 2 and lines[0] == "error: counts.csv: nothing imported, 3 problems:"
    assert lines[1] == "  line 2: transactions: must be a whole number >= 0 or empty, got '12,5'"
    assert lines[2].startswith("  line 3: from: '31.02.2025 09:00': ")
    assert lines[3] == "  line 4: transactions: must be a whole number >= 0 or empty, got '-3'"
    assert stored(url) == []


def test_a_file_that_is_not_utf8_says_how_to_save_it(url, tmp_path, capsys):
    path = tmp_path / "counts.csv"
    path.write_bytes("site;from;to;visitors\nмск;1;2;3\n".encode("cp1251"))  # Excel's plain "CSV"
    code, _out, err = run_cli(capsys, "counts", "import", str(path), "--db", url)
    assert code == 2 and err.count("\n") == 1 and 'save it as "CSV UTF-8"' in err


def test_a_time_without_offset_is_refused_where_no_office_gives_a_zone():
    from gateway import counts

    with pytest.raises(counts.CountsError, match="no UTC offset"):
        counts.parse("site,from,to,visitors\nmsk,2025-01-06T09:00,2025-01-06T10:00,1\n")
