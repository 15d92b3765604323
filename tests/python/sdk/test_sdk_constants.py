"""The SDK's wire and ring constants are the C++ host's: read from the headers themselves
(topology/include/mycelium/wire_limits.hpp, host/include/mycelium/*.hpp), so that a
change on one side without the other fails here."""

import pathlib
import re

from mycelium import _ring, _wire, codec

REPO = pathlib.Path(__file__).resolve().parents[3]
HEADERS = [REPO / "topology/include/mycelium/wire_limits.hpp", REPO / "host/include/mycelium/codec.hpp",
           REPO / "host/include/mycelium/link_protocol.hpp", REPO / "host/include/mycelium/shm_ring.hpp",
           REPO / "host/include/mycelium/schema.hpp"]


def cpp_constants():
    """{NAME: int} of every `inline constexpr <integer type> NAME = <integer literal>;`, but
    the ring header's field offsets (shm_ring.hpp's `layout`, marked `///<`)."""
    found = {}
    for header in HEADERS:
        for line in header.read_text().splitlines():
            m = re.match(r"\s*inline constexpr std::(?:size_t|u?int\d+_t) (\w+) = (0x[0-9a-fA-F]+|\d+)u?;", line)
            if m and "///<" not in line:
                assert m.group(1) not in found or found[m.group(1)] == int(m.group(2), 0), m.group(1)
                found[m.group(1)] = int(m.group(2), 0)
    return found


def cpp_enum(header, name):
    """{Member: int} of `enum class name : ... { Member = N, ... }` in `header`."""
    text = (REPO / header).read_text()
    body = re.search(r"enum class " + name + r"\b[^{]*\{(.*?)\};", text, re.S).group(1)
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^\s*(\w+) = (\d+),", body, re.M)}


def snake(name):
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def test_the_headers_define_what_this_test_compares():
    c = cpp_constants()
    for name in ("MAX_PAYLOAD", "MIN_RING_CAPACITY", "MAX_RING_CAPACITY", "HEADER_SIZE", "HELLO", "SHM_SWITCH",
                 "RING_HEADER_SIZE", "RING_VERSION", "MIN_APP_TYPE_ID"):
        assert name in c, f"{name} is no longer a plain constant in the headers this test reads"


def test_frame_limits_match():
    c = cpp_constants()
    assert _wire.MAX_PAYLOAD == codec.MAX_PAYLOAD_SIZE == c["MAX_PAYLOAD"]
    assert _wire.HEADER_SIZE == codec.HEADER_SIZE == c["HEADER_SIZE"]
    assert _wire.FIRST_APPLICATION_TYPE == c["MIN_APP_TYPE_ID"]


def test_control_type_ids_and_versions_match():
    c = cpp_constants()
    for name in ("ERROR", "HELLO", "SUBSCRIBE", "UNSUBSCRIBE", "PING", "PONG", "METRICS", "SHM_REQUEST", "SHM_OFFER",
                 "SHM_REFUSE", "SHM_READY", "SHM_SWITCH", "SHM_VERSION"):
        assert getattr(_wire, name) == c[name], name
    assert _wire.HELLO_VERSION == c["PROTOCOL_VERSION"]


def test_error_codes_and_shm_refusals_match():
    codes = cpp_enum("host/include/mycelium/link_protocol.hpp", "ErrorCode")
    assert {n: snake(k) for k, n in codes.items()} == _wire.ERROR_CODES
    refusals = cpp_enum("host/include/mycelium/link_protocol.hpp", "ShmRefusal")
    assert {n: snake(k) for k, n in refusals.items()} == _wire.SHM_REFUSALS


def test_ring_constants_match():
    c = cpp_constants()
    assert _ring.HEADER_BYTES == c["RING_HEADER_SIZE"]
    assert _ring.VERSION == c["RING_VERSION"]
    assert _ring.MIN_CAPACITY == c["MIN_RING_CAPACITY"]
    assert _ring.MAX_CAPACITY == c["MAX_RING_CAPACITY"]
    assert _ring.WRAP_LENGTH == c["WRAP_LENGTH"]
    offsets = {"_Q_CAPACITY": ("CAPACITY", 8), "_Q_PRODUCER": ("PRODUCER_INDEX", 8), "_Q_CONSUMER": ("CONSUMER_INDEX", 8),
               "_I_VERSION": ("VERSION", 4), "_I_HEADER_SIZE": ("HEADER_SIZE_OFFSET", 4),
               "_I_SLEEPING": ("CONSUMER_SLEEPING", 4), "_I_WAITING": ("PRODUCER_WAITING", 4),
               "_I_PRODUCER_CLOSED": ("PRODUCER_CLOSED", 4), "_I_CONSUMER_CLOSED": ("CONSUMER_CLOSED", 4)}
    text = (REPO / "host/include/mycelium/shm_ring.hpp").read_text()
    layout = {m.group(1): int(m.group(2))
              for m in re.finditer(r"inline constexpr std::size_t (\w+) = (\d+);\s+///<", text)}
    layout["HEADER_SIZE_OFFSET"] = layout["HEADER_SIZE"]  # the header's own field (offset 12)
    for python_name, (cpp_name, width) in offsets.items():
        assert getattr(_ring, python_name) * width == layout[cpp_name], python_name
