"""Counts import (`rating counts import`): line-numbered errors for values out of range."""


def test_counts_csv_huge_numbers_are_line_errors(tmp_path):
    """A count or an epoch too large for a BIGINT must be a line-numbered error, not a crash
    (SQLite OverflowError / PostgreSQL out of range) halfway through the import."""
    from gateway import counts

    text = (
        "site,from,to,transactions\n"
        "s1,1717000000000,1717000060000,99999999999999999999\n"
        "s1,1717000000000,99999999999999999999,1\n"
    )
    try:
        counts.parse(text, "c.csv")
    except counts.CountsError as exc:
        assert "line 2: transactions" in str(exc) and "line 3: to" in str(exc), str(exc)
    else:
        raise AssertionError("huge numbers were accepted")
