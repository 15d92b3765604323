#pragma once
// A message's bytes to Python values: the decoder of the message classes
// (message_types.hpp). Every call needs the GIL. Private header of embedded/src/.

#include <Python.h>

#include <cstddef>
#include <span>

#include "message_object.hpp"

namespace mycelium::embedded {

/// numpy.frombuffer, imported on first use; nullptr when numpy is not installed.
PyObject* numpy_frombuffer();

/// Decodes `payload` into a new instance of `info`'s class (new reference), or nullptr
/// with DecodeError (a corrupt length, invalid UTF-8, the wrong size) or another error
/// set. `backing` (may be null) is a bytes object holding the same payload, for numpy
/// views to share.
PyObject* decode_into_new(const TypeInfo& info, std::span<const std::byte> payload, PyObject* backing);

/// The value of field `f` in a message of zeros (new reference): what a keyword
/// constructor gives a field it is not given.
PyObject* zero_value(const schema::Field& f);

}  // namespace mycelium::embedded
