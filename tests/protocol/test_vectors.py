"""Protocol v1 against its vectors on CPython and on the MicroPython VM, plus property tests:
encode->decode is the identity, decoders raise nothing but ProtocolError, and CPython and
MicroPython decode the same mutated payloads to the same result."""

import json
import os
import random
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mpy_support import CASES_DIR, REPO, check_mpy_cases, run_micropython

from protocol import ProtocolError, messages, topics

sys.path.insert(0, CASES_DIR)
import protocol_vectors_cases as cases  # noqa: E402  (shared with the MicroPython run)

ALL = [(name, v) for name in cases.FILES for v in cases.load(name)]


@pytest.mark.parametrize("name,vector", ALL, ids=["%s:%s" % (n, v["name"]) for n, v in ALL])
def test_protocol_vector_cpython(name, vector):
    problem = cases.check_vector(name, vector)
    assert problem is None, problem


@pytest.mark.e2e
def test_protocol_vectors_micropython():
    proc = check_mpy_cases("protocol_vectors_cases")
    assert "6 passed, 0 failed" in proc.stdout


@pytest.mark.e2e
def test_protocol_heap_budget_micropython():
    check_mpy_cases("protocol_budget_cases")


def test_protocol_vectors_cover_the_edge_cases():
    names = {v["name"] for _, v in ALL}
    for must in (
        "null t (clock never synced)",
        "hold on yes",
        "257 bytes",
        "seq bool",
        "full example (Russian question)",
        "exactly 256 bytes with padding",
    ):
        assert must in names
    assert len(ALL) >= 150


def test_protocol_error_reads_field_colon_problem():
    with pytest.raises(ProtocolError) as info:
        messages.decode_event(b'{"v":1,"seq":-3,"boot":7,"up":1,"t":null,"ev":"yes"}')
    assert str(info.value) == "seq: must be an integer >= 1, got -3"
    assert (info.value.field, info.value.problem) == ("seq", "must be an integer >= 1, got -3")
    assert isinstance(info.value, ValueError)


def test_protocol_offline_will_is_a_valid_state():
    assert messages.decode_state(messages.OFFLINE_WILL) == {"v": 1, "online": False}


# ---- properties (CPython) ------------------------------------------------------------------

ints = lambda lo, hi=messages.MAX_INT: st.integers(lo, hi)  # noqa: E731
wall = st.one_of(st.none(), ints(messages.T_MIN, messages.T_MAX - 1))
text = lambda lo, hi: st.text(  # noqa: E731 - no lone surrogates: not text (see spec)
    alphabet=st.characters(blacklist_categories=("Cs",)), min_size=lo, max_size=hi
)
ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=32)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def events(draw):
    ev = draw(st.sampled_from(messages.EVENTS))
    hold = draw(st.one_of(st.none(), ints(0))) if ev in messages.SELLER_EVENTS else None
    return dict(seq=draw(ints(1)), boot=draw(ints(0)), up=draw(ints(0)), t=draw(wall), ev=ev, hold=hold)


@FAST
@given(events())
def test_protocol_event_round_trip(event):
    data = messages.encode_event(**event)
    assert len(data) <= messages.MAX_EVENT_BYTES
    assert b" " not in data
    assert messages.decode_event(data) == dict(event, v=1)


states = st.fixed_dictionaries(
    {
        "online": st.just(True),
        "boot": ints(0),
        "up": ints(0),
        "t": wall,
        "fw": text(1, 32),
        "seq": ints(0),
        "pending": ints(0),
        "dropped": ints(0),
        "heap": ints(0),
        "rssi": st.one_of(st.none(), ints(-127, 0)),
        "faults": st.lists(text(1, 32), max_size=16),
        "cfg": st.one_of(st.none(), ints(1)),
        "cfg_err": st.one_of(st.none(), text(1, 200)),
    }
)


@FAST
@given(states)
def test_protocol_state_round_trip(state):
    try:
        data = messages.encode_state(state)
    except ProtocolError as e:  # only the size limit may refuse a valid-looking state
        assert e.field == "payload"
        return
    assert messages.decode_state(data) == dict(state, v=1)


configs = st.fixed_dictionaries(
    {"ver": ints(1)},
    optional=dict(
        {"question": text(1, 200), "kind": st.sampled_from(messages.CONFIG_KINDS)},
        **{k: st.integers(lo, hi) for k, (lo, hi) in messages.CONFIG_RANGES.items()},
    ),
)


@FAST
@given(configs)
def test_protocol_config_round_trip(config):
    data = messages.encode_config(config)
    assert len(data) <= messages.MAX_BYTES  # 200 chars of any script fit: UTF-8 is sent raw
    assert messages.decode_config(data) == dict(config, v=1)


@FAST
@given(
    ints(messages.T_MIN, messages.T_MAX - 2),
    st.integers(1, 10**9),
    st.one_of(st.none(), ints(0)),
    st.one_of(st.none(), ints(0)),
    st.one_of(st.none(), ids),
)
def test_protocol_counts_round_trip(start, length, transactions, visitors, device):
    counts = {
        "from": start,
        "to": min(start + length, messages.T_MAX - 1),
        "transactions": transactions,
        "visitors": visitors,
        "device": device,
    }
    if transactions is None and visitors is None:
        with pytest.raises(ProtocolError):
            messages.encode_counts(counts)
        return
    assert messages.decode_counts(messages.encode_counts(counts)) == dict(counts, v=1)


@FAST
@given(ints(0))
def test_protocol_ack_round_trip(seq):
    assert messages.decode_ack(messages.encode_ack(seq)) == seq


DECODERS = [
    messages.decode_event,
    messages.decode_state,
    messages.decode_ack,
    messages.decode_config,
    messages.decode_counts,
]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
KEYS = [
    "v",
    "seq",
    "boot",
    "up",
    "t",
    "ev",
    "hold",
    "online",
    "fw",
    "faults",
    "rssi",
    "cfg",
    "cfg_err",
    "ver",
    "question",
    "kind",
    "window_s",
    "from",
    "to",
    "transactions",
    "visitors",
    "device",
]


def _only_protocol_errors(data):
    for decode in DECODERS:
        try:
            decode(data)
        except ProtocolError as e:
            assert e.field and e.problem
        # any other exception fails the test


@FAST
@given(st.binary(max_size=300))
def test_protocol_decoders_raise_only_protocol_error_on_bytes(data):
    _only_protocol_errors(data)


@FAST
@given(st.text(max_size=300))
def test_protocol_decoders_raise_only_protocol_error_on_text(data):
    _only_protocol_errors(data)


@FAST
@given(st.dictionaries(st.sampled_from(KEYS), json_values, max_size=12), st.sampled_from([1, 1, 1, 2, None]))
def test_protocol_decoders_raise_only_protocol_error_on_json_objects(obj, v):
    if v is not None:
        obj["v"] = v
    _only_protocol_errors(json.dumps(obj).encode())


@FAST
@given(st.text(max_size=80), st.sampled_from(["rating/v1", "a/b/c", "x"]))
def test_protocol_topic_parse_raises_only_protocol_error(topic, root):
    try:
        site, device, kind = topics.parse(root, topic)
    except ProtocolError:
        return
    if device is None:
        assert topics.counts_topic(root, site) == topic
    else:
        assert topics.device_topic(root, site, device, kind) == topic


def test_protocol_deep_nesting_is_a_protocol_error():
    for decode in DECODERS:
        with pytest.raises(ProtocolError):
            decode(b"[" * 1000)


# ---- CPython and MicroPython agree ---------------------------------------------------------

POOL = [
    0,
    1,
    -1,
    2,
    42,
    True,
    False,
    None,
    1.5,
    1.0,
    "",
    "yes",
    "seller_long",
    "x" * 40,
    [],
    {},
    ["stuck:yes"],
    2**53,
    2**53 - 1,
    1763812345123,
    1577836799999,
    4102444800000,
    -127,
    600,
    601,
    "Вопрос?",
    "staff",
    "pos-1",
    "POS",
]


def _mutations(rng, count):
    """Valid sample payloads with values replaced, keys dropped or added: JSON both VMs parse alike."""
    samples = []
    for name in ("events", "state", "ack", "config", "counts"):
        decoder = cases.DECODERS[name][0].__name__
        for v in cases.load(name):
            if v.get("ok") and "payload" in v and "encode" not in v:
                samples.append((decoder, json.loads(v["payload"])))
    out = []
    for _ in range(count):
        decoder, obj = rng.choice(samples)
        obj = dict(obj)
        for _ in range(rng.randint(1, 3)):
            key = rng.choice(sorted(obj) + KEYS)
            roll = rng.random()
            if roll < 0.2:
                obj.pop(key, None)
            else:
                obj[key] = rng.choice(POOL)
        out.append([decoder, json.dumps(obj, ensure_ascii=False)])
    return out


@pytest.mark.e2e
def test_protocol_cpython_and_micropython_decode_alike(tmp_path):
    payloads = _mutations(random.Random(20251122), 600)
    path = tmp_path / "payloads.jsonl"
    path.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in payloads), encoding="utf-8")
    script = os.path.join(CASES_DIR, "protocol_differential.py")
    mpy = run_micropython(script, args=[str(path)])
    assert mpy.returncode == 0, mpy.stdout + mpy.stderr
    here = subprocess.run(
        [sys.executable, script, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, PYTHONPATH=REPO),
    )
    assert here.returncode == 0, here.stderr
    mpy_lines = [json.loads(line) for line in mpy.stdout.splitlines()]
    cpy_lines = [json.loads(line) for line in here.stdout.splitlines()]
    assert len(mpy_lines) == len(cpy_lines) == len(payloads)
    outcomes = {line[0] for line in cpy_lines}
    assert outcomes == {"ok", "err"}, "mutations should give both outcomes, got %s" % outcomes
    differ = [(p, c, m) for p, c, m in zip(payloads, cpy_lines, mpy_lines, strict=True) if c != m]
    assert not differ, "CPython and MicroPython disagree on %d payloads, e.g. %r" % (len(differ), differ[:3])


def test_protocol_largest_event_fits_with_room():
    big = messages.MAX_INT
    data = messages.encode_event(big, big, big, messages.T_MAX - 1, "seller_short", big)
    assert len(data) <= 140 < messages.MAX_EVENT_BYTES


def test_protocol_spec_examples_decode():
    """Every one-line JSON example in protocol/README.md is valid for its section's decoder."""
    decoders = {
        "event": messages.decode_event,
        "state": messages.decode_state,
        "ack": messages.decode_ack,
        "config": messages.decode_config,
        "counts": messages.decode_counts,
    }
    section, checked = None, 0
    with open(os.path.join(REPO, "protocol", "README.md"), encoding="utf-8") as f:
        for line in f:
            if line.startswith("### "):
                section = line.split()[1]
            for chunk in line.split("`")[1::2]:
                if chunk.startswith('{"v":1') and section in decoders:
                    decoders[section](chunk)
                    checked += 1
    assert checked >= 6


IMPORT_HEAP_BUDGET = 24000  # bytes on the 64-bit unix port (measured ~18.5k; ESP32 needs ~60 %)


@pytest.mark.e2e
def test_protocol_import_heap_micropython():
    """What importing protocol costs the panel's heap: a regression guard (freezing the modules
    into the firmware image would make it ~0)."""
    code = (
        "import gc\ngc.collect()\na = gc.mem_alloc()\nfrom protocol import messages, topics\n"
        "gc.collect()\nprint(gc.mem_alloc() - a)\n"
    )
    proc = run_micropython(code)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 1000 < int(proc.stdout) <= IMPORT_HEAP_BUDGET, "importing protocol took %s bytes" % proc.stdout
