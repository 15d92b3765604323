"""The SDK's one TLV splitter (mycelium._wire.split_frames), which every reader uses."""

import pytest

from mycelium import _wire


def test_whole_frames_are_split_in_order_and_a_partial_one_is_left():
    data = _wire.frame(1000, b"abc") + _wire.frame(5, b"") + _wire.frame(1001, b"xy")[:-1]
    frames = list(_wire.split_frames(data, 0, len(data)))
    assert [(t, bytes(data[a:b])) for t, a, b in frames] == [(1000, b"abc"), (5, b"")]
    last_stop = frames[-1][2]
    assert data[last_stop:] == _wire.frame(1001, b"xy")[:-1]  # the caller keeps it


def test_a_start_offset_and_a_header_alone_are_handled():
    data = b"junk" + _wire.frame(1000, b"12345678")
    assert [(t, a, b) for t, a, b in _wire.split_frames(data, 4, len(data))] == [(1000, 10, 18)]
    assert list(_wire.split_frames(data, 4, 4 + 5)) == []  # less than a header


def test_a_header_above_the_limit_is_refused_before_its_payload_arrives():
    header = _wire.HEADER.pack(1000, 70000)
    with pytest.raises(_wire.OversizeFrame, match=r"a frame of 70000 bytes \(type 1000\), above the limit of 65536"):
        list(_wire.split_frames(header, 0, len(header), 65536))
    # What came before it is still handed over first.
    data = _wire.frame(1000, b"ok") + header
    frames = _wire.split_frames(data, 0, len(data), 65536)
    assert next(frames)[0] == 1000
    with pytest.raises(_wire.OversizeFrame):
        next(frames)
