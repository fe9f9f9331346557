"""The review queue's doubt (console/queue.py `with_doubt`): only the doubtful polls go on past
scoring, and the queue is the one every poll's score gives."""

import random

from doubt_support import S, T
from doubt_support import poll as _poll

from console import queue
from gateway import doubt, review


def test_the_console_queue_with_only_the_doubtful_polls_is_the_queue_with_every_score():
    """console.queue.with_doubt goes on with the doubtful polls only (doubt.doubtful): the same
    sample, order, scores and reasons as review.risk_first over every poll with doubt.score."""
    rnd = random.Random(7)
    polls, t, unsolicited = [], T, []
    for seq in range(1, 400):
        t += rnd.randrange(20 * S, 400 * S)
        answer = rnd.choice(("yes", "yes", "yes", "no", "unsure", None))
        polls.append(
            _poll(
                seq,
                t,
                answer,
                reaction=rnd.choice((300, 1000, 4 * S, 9 * S)),
                device=rnd.choice(("desk-1", "desk-2")),
                employee=rnd.choice(("ivanova", "petrov")),
                extra_presses=int(rnd.random() < 0.05),
                seller_presses=1 + int(rnd.random() < 0.05),
                seller_hold_ms=rnd.choice((None, 200, 2 * S)),
            )
        )
        if rnd.random() < 0.05:
            unsolicited.append({"site": "msk", "device": "desk-1", "at_ms": t + 10 * S})
    polls.sort(key=lambda p: (p["opened_ms"], p["site"], p["device"], p["open_seq"]))
    no_sale = {doubt.poll_id(p) for p in polls[::37]}
    sampled = review.sample(polls, [], 0.1)
    scores = doubt.score(polls, unsolicited, no_sale=no_sale)
    dense = [
        (s, dict(r, doubt=scores[queue.ident(s, r)].score, doubt_reasons=scores[queue.ident(s, r)].reasons))
        for s, r in review.risk_first(sampled, polls, scores)
    ]
    assert queue.with_doubt(sampled, polls, unsolicited, no_sale) == dense
    assert sum(s == "doubt" for s, _ in dense) > 10  # the case is not empty
