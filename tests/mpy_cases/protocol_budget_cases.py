"""Heap budget of the hot paths on the panel (measured on the unix port; ESP32 allocates a
little more for big ints such as `t`). A regression here means every button press costs more."""

import gc

from protocol import messages

ENCODE_EVENT_BUDGET = 400  # bytes allocated per encode_event (measured ~290)
DECODE_ACK_BUDGET = 300  # bytes per decode_ack (measured ~160)


def _allocated(fn, *args):
    fn(*args)  # warm up: first call may intern strings
    gc.collect()
    gc.disable()
    try:
        before = gc.mem_alloc()
        fn(*args)
        return gc.mem_alloc() - before
    finally:
        gc.enable()


def test_encode_event_is_cheap():
    used = _allocated(messages.encode_event, 42, 7, 123456, 1763812345123, "seller_long", 1500)
    assert used <= ENCODE_EVENT_BUDGET, "encode_event allocated %d bytes" % used


def test_decode_ack_is_cheap():
    used = _allocated(messages.decode_ack, b'{"v":1,"seq":42}')
    assert used <= DECODE_ACK_BUDGET, "decode_ack allocated %d bytes" % used


def test_protocol_imports_fit_small_heap():
    gc.collect()
    assert gc.mem_free() > 40000, "only %d bytes free after importing protocol" % gc.mem_free()
