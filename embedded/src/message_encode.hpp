#pragma once
// Python values to a message's bytes: the encoder of the message classes
// (message_types.hpp). Every call needs the GIL. Private header of embedded/src/.

#include <Python.h>

#include <cstddef>
#include <span>

#include "message_object.hpp"

namespace mycelium::embedded {

/// Encodes instance `self` of `info`'s class into `out` (exactly its size): types and
/// integer ranges field by field, then the contracts' seven rules through the registry.
/// Returns false with a Python error set (ValidationError naming the message, the field
/// and the rule; UnicodeEncodeError for a lone surrogate).
bool encode_message(const TypeInfo& info, PyObject* self, std::span<std::byte> out);

/// What field `f` holds once set to `value` (new reference): a U256 as its 32 bytes, a
/// sequence of U256 as a list of them, any other value as given (checked when encoded).
/// nullptr with ValidationError set when a U256 cannot be converted.
PyObject* stored_value(const TypeInfo& info, const schema::Field& f, PyObject* value);

}  // namespace mycelium::embedded
