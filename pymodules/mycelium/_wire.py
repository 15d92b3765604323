"""Bytes on the wire (docs/wire-protocol.md): handshake, TLV header, control frames.

All structs are compiled once here; nothing on a hot path builds a format string.
"""

import struct

#: u16 type id, u32 payload length (little-endian).
HEADER = struct.Struct("<HI")
HEADER_SIZE = HEADER.size  # 6
#: The handshake: u16 digest length, then the digest.
DIGEST_LENGTH = struct.Struct("<H")
DIGEST_SIZE = 32
#: The largest payload the protocol allows; a host may be configured lower.
MAX_PAYLOAD = 4 * 1024 * 1024

# Control frame type ids (1-999 are the runtime's own).
ERROR = 1
HELLO = 2
SUBSCRIBE = 3
UNSUBSCRIBE = 4
PING = 5
PONG = 6
METRICS = 7
SHM_REQUEST = 16
SHM_OFFER = 17
SHM_REFUSE = 18
SHM_READY = 19
SHM_SWITCH = 20
FIRST_APPLICATION_TYPE = 1000

HELLO_VERSION = 1
ROLE_CLIENT = 0

NONCE = struct.Struct("<Q")
ERROR_CODE = struct.Struct("<H")
_HELLO_HEAD = struct.Struct("<BBH")

#: ERROR codes (wire-protocol.md "ERROR").
ERROR_CODES = {
    1: "bad_digest_length",
    2: "digest_mismatch",
    3: "handshake_timeout",
    4: "oversize",
    5: "unknown_type",
    6: "size_mismatch",
    7: "protocol_violation",
    8: "too_many_connections",
    9: "slow_consumer",
    10: "shutting_down",
    11: "unsupported_version",
    12: "shm_corrupt",
    13: "limit_exceeded",
    14: "invalid_payload",
    15: "idle_timeout",
}
CODE_BAD_DIGEST_LENGTH = 1
CODE_DIGEST_MISMATCH = 2
CODE_UNKNOWN_TYPE = 5
CODE_SIZE_MISMATCH = 6
CODE_LIMIT_EXCEEDED = 13
CODE_INVALID_PAYLOAD = 14
CODE_SHUTTING_DOWN = 10
CODE_UNSUPPORTED_VERSION = 11


SHM_VERSION = 1
_SHM_REQUEST = struct.Struct("<BBI")
#: SHM_OFFER: version, flags, descriptor count, reserved, capacity client->host, host->client.
SHM_OFFER_BODY = struct.Struct("<BBBBQQ")
#: SHM_REFUSE reasons (wire-protocol.md "Shared-memory setup").
SHM_REFUSALS = {1: "disabled", 2: "not_local", 3: "no_memory", 4: "unsupported_version", 5: "already_active",
                6: "bad_offer"}
SHM_REFUSE_BAD_OFFER = 6


def shm_request(capacity=0):
    """SHM_REQUEST for `capacity` data bytes per direction (0: the node's default)."""
    return frame(SHM_REQUEST, _SHM_REQUEST.pack(SHM_VERSION, 0, capacity))


def shm_refuse(reason, text):
    return frame(SHM_REFUSE, ERROR_CODE.pack(reason) + text.encode("utf-8")[:1024])


def decode_shm_refuse(payload):
    """(reason name, text) of a SHM_REFUSE payload."""
    if len(payload) < 2:
        return "malformed", bytes(payload).hex()
    code = ERROR_CODE.unpack_from(payload)[0]
    return SHM_REFUSALS.get(code, f"reason {code}"), bytes(payload[2:]).decode("utf-8", "replace")


def parse_digest(digest):
    """The 32 digest bytes from bytes-like (32 bytes) or a 64-character hex string."""
    if isinstance(digest, str):
        text = digest.strip()
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raise ValueError(f"schema digest {digest!r} is not a hex string") from None
        if len(raw) != DIGEST_SIZE:
            raise ValueError(f"schema digest must be 64 hex characters, got {len(text)}")
        return raw
    if isinstance(digest, (bytes, bytearray, memoryview)):
        raw = bytes(digest)
        if len(raw) != DIGEST_SIZE:
            raise ValueError(f"schema digest must be {DIGEST_SIZE} bytes, got {len(raw)}")
        return raw
    raise TypeError(f"schema digest must be bytes or a hex string, not {type(digest).__name__}")


def frame(type_id, payload=b""):
    """One TLV frame."""
    return HEADER.pack(type_id, len(payload)) + payload


class OversizeFrame(ValueError):
    """A frame header declared a payload above the limit: the stream cannot be framed."""

    def __init__(self, type_id, length, limit):
        super().__init__(f"a frame of {length} bytes (type {type_id}), above the limit of {limit}")
        self.type_id, self.length, self.limit = type_id, length, limit


def split_frames(buf, start, end, max_payload=MAX_PAYLOAD):
    """The one TLV splitter of the SDK: yields (type_id, payload_start, payload_stop) for each
    whole frame of buf[start:end], in order, and stops before a partial one (the caller
    keeps it: its start is the last payload_stop, or `start`). Raises OversizeFrame for a
    header above `max_payload`, before its payload arrives."""
    unpack = HEADER.unpack_from
    while end - start >= HEADER_SIZE:
        type_id, length = unpack(buf, start)
        if length > max_payload:
            raise OversizeFrame(type_id, length, max_payload)
        stop = start + HEADER_SIZE + length
        if stop > end:
            return
        yield type_id, start + HEADER_SIZE, stop
        start = stop


def handshake(digest):
    return DIGEST_LENGTH.pack(len(digest)) + digest


def hello(name):
    data = name.encode("utf-8")
    if not 1 <= len(data) <= 255 or any(b < 0x20 or b == 0x7F for b in data):
        raise ValueError(f"client name {name!r} must be 1-255 bytes without control characters")
    return frame(HELLO, _HELLO_HEAD.pack(HELLO_VERSION, ROLE_CLIENT, len(data)) + data)


def type_list(control, type_ids):
    """SUBSCRIBE or UNSUBSCRIBE frames for `type_ids` (several if the list is long)."""
    ids = sorted(set(type_ids))
    out = b""
    step = MAX_PAYLOAD // 2
    for i in range(0, len(ids), step):
        chunk = ids[i:i + step]
        out += frame(control, struct.pack(f"<{len(chunk)}H", *chunk))
    return out


def ping(nonce):
    return frame(PING, NONCE.pack(nonce))


def pong(nonce):
    return frame(PONG, NONCE.pack(nonce))


def decode_error(payload):
    """(code, name, reason) of an ERROR payload; a malformed one gives code 0."""
    if len(payload) < 2:
        return 0, "malformed", bytes(payload).hex()
    code = ERROR_CODE.unpack_from(payload)[0]
    reason = bytes(payload[2:]).decode("utf-8", "replace")
    return code, ERROR_CODES.get(code, f"code {code}"), reason


def parse_endpoint(text):
    """('unix', path), ('shm', path) or ('tcp', (host, port)) from 'unix:PATH', 'shm:PATH'
    (shared memory set up over the node's Unix socket PATH) or 'tcp:HOST:PORT' (IPv6 in
    brackets: 'tcp:[::1]:9000')."""
    for kind in ("unix", "shm"):
        if text.startswith(kind + ":"):
            path = text[len(kind) + 1:]
            if not path:
                raise ValueError(f"endpoint {text!r}: empty socket path")
            return kind, path
    if text.startswith("tcp:"):
        return "tcp", parse_host_port(text[len("tcp:"):], what=f"endpoint {text!r}")
    raise ValueError(f"endpoint {text!r} must be unix:PATH, shm:PATH or tcp:HOST:PORT")


def parse_host_port(text, what="address"):
    """(host, port) from 'host:port' or '[v6]:port'."""
    if text.startswith("["):
        close = text.find("]")
        if close < 0 or text[close + 1:close + 2] != ":":
            raise ValueError(f"{what}: expected [IPv6]:PORT, got {text!r}")
        host, port = text[1:close], text[close + 2:]
    else:
        host, sep, port = text.rpartition(":")
        if not sep or not host:
            raise ValueError(f"{what}: expected HOST:PORT, got {text!r}")
        if ":" in host:
            raise ValueError(f"{what}: an IPv6 address goes in brackets, got {text!r}")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{what}: port {port!r} is not a number in 0-65535")
    return host, int(port)
