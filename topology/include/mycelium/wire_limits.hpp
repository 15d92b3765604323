#pragma once
/// The wire's and the rings' size limits, in one place for every library (topology is the
/// lowest layer, so the bus, the codec, the links, the rings and the topology parser all
/// reach this header). The Python SDK keeps its own copies (pymodules/mycelium/_wire.py,
/// _ring.py); tests/python/sdk/test_sdk_constants.py checks that they match these and the
/// other wire constants of the C++ headers.
///
/// Plain integers on purpose: that test reads them from this file.

#include <cstddef>

namespace mycelium::wire {

/// Largest payload a frame may carry (4 MiB); configuration may only lower it.
inline constexpr std::size_t MAX_PAYLOAD = 4194304;
/// Smallest data area of a shared-memory ring the ring format allows (bytes, a power of two).
inline constexpr std::size_t MIN_RING_CAPACITY = 64;
/// Largest data area of a shared-memory ring (1 GiB).
inline constexpr std::size_t MAX_RING_CAPACITY = 1073741824;
/// Smallest ring a topology (`[nodes.shm] ring_bytes`) or `--shm-ring-bytes` may ask for
/// (one page).
inline constexpr std::size_t MIN_CONFIGURED_RING_BYTES = 4096;

}  // namespace mycelium::wire
