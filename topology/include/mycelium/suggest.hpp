#pragma once
/// "Did you mean" for hand-written configuration: the topology and the contracts parsers
/// both name the nearest known key when they meet an unknown one. It lives in the
/// topology library because that is the lowest one; the core links it.
/// Thread safety: pure functions.

#include <cstddef>
#include <span>
#include <string_view>

namespace mycelium {

/// Optimal string alignment distance: a swapped pair of letters ("sokcet") counts as one
/// edit, which is the typo people make most.
std::size_t edit_distance(std::string_view a, std::string_view b);

/// The candidate `word` was most likely meant as, or "" when none is close: within two
/// edits (three for words of 8 letters or more), else a prefix of at least 3 letters
/// either way ("addr" for "address").
std::string_view closest_match(std::string_view word, std::span<const std::string_view> candidates);

}  // namespace mycelium
