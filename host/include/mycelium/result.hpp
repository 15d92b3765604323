#pragma once
/// Result<T, E>: a value or an operation's own error enum, for hot paths that must not
/// throw. C++20 has no std::expected and Debian 12 packages no tl-expected, so this is
/// the small subset we use.
/// Thread safety: a value type; distinct objects safe, shared objects unsafe.

#include <cassert>
#include <optional>
#include <type_traits>
#include <utility>
#include <variant>

namespace mycelium {

/// Wraps an error value so `return Err{PublishError::QueueFull};` reads clearly.
template <class E>
struct Err {
    E error;
};
template <class E>
Err(E) -> Err<E>;

template <class T, class E>
class [[nodiscard]] Result {
public:
    Result(T value) : state_(std::in_place_index<0>, std::move(value)) {}
    Result(Err<E> err) : state_(std::in_place_index<1>, std::move(err.error)) {}

    bool has_value() const noexcept { return state_.index() == 0; }
    explicit operator bool() const noexcept { return has_value(); }

    T& value() & { assert(has_value()); return std::get<0>(state_); }
    const T& value() const& { assert(has_value()); return std::get<0>(state_); }
    T&& value() && { assert(has_value()); return std::get<0>(std::move(state_)); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }

    const E& error() const { assert(!has_value()); return std::get<1>(state_); }

private:
    std::variant<T, E> state_;
};

/// Result<void, E>: success carries nothing, and constructs no E. (With `E error_{}` and
/// a defaulted constructor, every `return {};` zero-filled a ValidationFailure's four
/// strings with `rep stos`: about 15 ns a successful validate(), as much as checking a
/// short string. A user-provided constructor and an optional write one flag.)
template <class E>
class [[nodiscard]] Result<void, E> {
public:
    Result() noexcept {}  // not `= default`: value-initialisation would zero the whole object
    Result(Err<E> err) : error_(std::move(err.error)) {}

    bool has_value() const noexcept { return !error_.has_value(); }
    explicit operator bool() const noexcept { return has_value(); }
    const E& error() const { assert(!has_value()); return *error_; }

private:
    std::optional<E> error_;
};

}  // namespace mycelium
