"""Poll rows as derivation reads them back (derive's light rows), for the doubt score's tests
(gateway/test_doubt.py, console/test_review_queue_doubt.py): an answer `reaction` ms after
the seller's press, one seller press, no extra presses, unless told otherwise."""

T = 1736150400000  # 2025-01-06 08:00 UTC, a Monday
S = 1000


def poll(seq, opened, answer="yes", reaction=4 * S, device="desk-1", employee="ivanova", **kw):
    row = {
        "site": "msk",
        "device": device,
        "open_seq": seq,
        "opened_ms": opened,
        "answered_ms": None if answer is None else opened + reaction,
        "answer": answer,
        "extra_presses": 0,
        "seller_presses": 1,
        "employee": employee,
    }
    row.update(kw)
    return row
