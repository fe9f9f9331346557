"""Site file: the location tree ([[regions]], sites[].region) and what the history says of it."""

import pytest
from gw_site_support import SITE_TOML, T0, apply_site, sqlite_db

from gateway import site

TREE = """
[[regions]]
id = "russia"
name = "Russia"

[[regions]]
id = "central"
name = "Central"
parent = "russia"

[[regions]]
id = "north"
name = "North-West"
parent = "russia"
"""


def with_tree(tree=TREE, msk_region="central", extra_sites=""):
    text = SITE_TOML.replace("[[sites]]", tree + "\n[[sites]]", 1)
    if msk_region:
        text = text.replace('timezone = "Europe/Moscow"', 'timezone = "Europe/Moscow"\nregion = "%s"' % msk_region, 1)
    return text.replace("[[questions]]", extra_sites + "\n[[questions]]", 1)


def errors_of(text):
    with pytest.raises(site.SiteFileError) as info:
        site.parse(text, "bad.toml")
    return info.value.errors


def test_gw_regions_unknown_region_of_an_office_is_one_line():
    assert errors_of(with_tree(msk_region="south")) == ["sites[0].region: 'south' is not listed in [[regions]]"]


def test_gw_regions_unknown_parent_is_one_line():
    tree = TREE.replace(
        'parent = "russia"\n\n[[regions]]\nid = "north"', 'parent = "europe"\n\n[[regions]]\nid = "north"'
    )
    assert errors_of(with_tree(tree)) == ["regions[1].parent: 'europe' is not listed in [[regions]]"]


def test_gw_regions_a_cycle_is_one_line_naming_it():
    tree = TREE.replace('id = "russia"\nname = "Russia"', 'id = "russia"\nname = "Russia"\nparent = "north"')
    assert errors_of(with_tree(tree)) == [
        "regions[0].parent: the regions form a cycle (russia -> north -> russia): a region cannot contain itself"
    ]


def test_gw_regions_a_region_that_is_its_own_parent_is_a_cycle():
    tree = TREE.replace(
        'id = "north"\nname = "North-West"\nparent = "russia"', 'id = "north"\nname = "N"\nparent = "north"'
    )
    assert errors_of(with_tree(tree)) == [
        "regions[2].parent: the regions form a cycle (north -> north): a region cannot contain itself"
    ]


def test_gw_regions_roll_up_through_nesting_and_take_offices_added_later(tmp_path):
    db = sqlite_db(tmp_path)
    apply_site(db, with_tree())
    h = site.load(db)
    assert h.regions() == {"russia": ["msk"], "central": ["msk"], "north": []}
    assert h.region_of("msk") == "central"
    assert h.region_tree()["north"] == {"name": "North-West", "parent": "russia"}
    spb = '[[sites]]\nid = "spb"\nname = "SPb"\ntimezone = "Europe/Moscow"\nregion = "north"\n'
    apply_site(db, with_tree(extra_sites=spb), T0 + 1000)
    h = site.load(db)
    assert h.regions() == {"russia": ["msk", "spb"], "central": ["msk"], "north": ["spb"]}
    db.close()


def test_gw_regions_a_file_without_regions_stores_offices_as_before(tmp_path):
    db = sqlite_db(tmp_path)
    apply_site(db)
    h = site.load(db)
    assert h.regions() == {} and h.region_of("msk") is None
    assert site.preview(db, site.parse(SITE_TOML), T0 + 1000) == []
    db.close()


def test_gw_regions_site_apply_lists_them_with_the_rest(tmp_path, capsys):
    from rating.cli import main

    path = tmp_path / "site.toml"
    path.write_text(with_tree(), encoding="utf-8")
    url = "sqlite:///%s" % (tmp_path / "rating.db")
    assert main(["--lang", "en", "site", "apply", str(path), "--db", url]) == 0
    out = capsys.readouterr().out
    assert "region" in out and "central" in out and "north" in out


def test_gw_regions_an_alert_names_the_office_s_own_region_not_one_above_it(tmp_path):
    from gateway import alerts

    db = sqlite_db(tmp_path)
    apply_site(db, with_tree(TREE.replace('"russia"', '"all"')))
    h = site.load(db)
    assert alerts.region_of(h, "msk", T0) == "central"  # "all" also holds it, and sorts first
    db.close()
