// Encoding Python values into a message's bytes (message_encode.hpp), field by field
// from the registry's layout; the registry then checks the contracts' rules.

#include "message_encode.hpp"

#include <cstdint>
#include <limits>
#include <string>

namespace mycelium::embedded {

namespace {

/// An int for an error's detail: its digits (at most 80), or "value" for a sensitive
/// message, whose values stay out of errors and so out of log lines.
[[gnu::cold]] std::string value_text(const TypeInfo& info, PyObject* integer) {
    if (info.schema->sensitive) return "value";
    PyObject* text = PyObject_Str(integer);
    const char* digits = text != nullptr ? PyUnicode_AsUTF8(text) : nullptr;
    std::string out = digits != nullptr ? digits : "value";
    Py_XDECREF(text);
    PyErr_Clear();
    if (out.size() > 80) out = out.substr(0, 77) + "...";
    return out;
}

/// "element 3: " for a value inside an array or a vector (index >= 0), else "".
std::string element_label(std::ptrdiff_t index) {
    return index < 0 ? std::string() : "element " + std::to_string(index) + ": ";
}

/// Copies a bytes-like `value` of exactly `size` bytes to `p` (`[u8; N]` and its arrays).
// noinline: kept out of encode_field, so the scalar fields' path stays as small as before.
[[gnu::noinline]] bool encode_bytes(const TypeInfo& info, const Field& f, PyObject* value, std::size_t size, std::byte* p,
                  std::ptrdiff_t index, const char* expected = "bytes") {
    Py_buffer view;
    if (PyObject_GetBuffer(value, &view, PyBUF_SIMPLE) != 0) {
        PyErr_Clear();
        info.raise_validation(f, "type", element_label(index) + "expected " + expected + ", got " +
                                             Py_TYPE(value)->tp_name);
        return false;
    }
    const auto got = static_cast<std::size_t>(view.len);
    if (got == size) std::memcpy(p, view.buf, size);
    PyBuffer_Release(&view);
    if (got != size) {
        info.raise_validation(f, "size", element_label(index) + "expected " + std::to_string(size) + " bytes, got " +
                                             std::to_string(got));
        return false;
    }
    return true;
}

/// A U256 from 32 bytes (big-endian, as stored) or from an int in [0, 2**256).
[[gnu::noinline]] bool encode_u256(const TypeInfo& info, const Field& f, PyObject* value, std::byte* p,
                                   std::ptrdiff_t index) {
    if (!PyLong_Check(value)) return encode_bytes(info, f, value, U256_SIZE, p, index, "32 bytes or an int");
    int overflow = 0;
    const long long small = PyLong_AsLongLongAndOverflow(value, &overflow);
    bool in_range = overflow > 0 || (overflow == 0 && small >= 0);
    if (in_range && overflow == 0) {
        // The common case, a value that fits 63 bits: no call into int.to_bytes.
        std::memset(p, 0, U256_SIZE);
        for (std::size_t k = 0; k < 8; ++k) {
            p[U256_SIZE - 1 - k] = static_cast<std::byte>(static_cast<unsigned long long>(small) >> (8 * k));
        }
        return true;
    }
    if (in_range) {
        PyObject* bytes = PyObject_CallMethod(value, "to_bytes", "ns", static_cast<Py_ssize_t>(U256_SIZE), "big");
        if (bytes != nullptr) {
            std::memcpy(p, PyBytes_AS_STRING(bytes), U256_SIZE);
            Py_DECREF(bytes);
            return true;
        }
        if (!PyErr_ExceptionMatches(PyExc_OverflowError)) return false;
        PyErr_Clear();
        in_range = false;
    }
    info.raise_validation(f, "range", element_label(index) + value_text(info, value) +
                                          " is outside the range of U256 (0 to 2**256-1)");
    return false;
}

/// The 32-byte bytes object a U256 value is stored as (new reference).
PyObject* u256_object(const TypeInfo& info, const Field& f, PyObject* value, std::ptrdiff_t index) {
    if (PyBytes_CheckExact(value) && PyBytes_GET_SIZE(value) == static_cast<Py_ssize_t>(U256_SIZE)) {
        Py_INCREF(value);  // bytes are immutable: share them
        return value;
    }
    std::byte raw[U256_SIZE];
    if (!encode_u256(info, f, value, raw, index)) return nullptr;
    return bytes_of(raw, U256_SIZE);
}

bool encode_integer(const TypeInfo& info, const Field& f, PyObject* value, std::byte* p) {
    PyObject* index = PyNumber_Index(value);
    if (index == nullptr) {
        PyErr_Clear();
        info.raise_validation(f, "type", std::string("expected an integer, got ") + Py_TYPE(value)->tp_name);
        return false;
    }
    int overflow = 0;
    const long long as_signed = PyLong_AsLongLongAndOverflow(index, &overflow);
    long long lo = 0;
    unsigned long long hi = 0;
    switch (f.element) {
        case Scalar::U8: hi = 0xff; break;
        case Scalar::U16: hi = 0xffff; break;
        case Scalar::U32: hi = 0xffffffffULL; break;
        case Scalar::U64: hi = std::numeric_limits<std::uint64_t>::max(); break;
        case Scalar::I8: lo = -128; hi = 127; break;
        case Scalar::I16: lo = -32768; hi = 32767; break;
        case Scalar::I32: lo = std::numeric_limits<std::int32_t>::min(); hi = std::numeric_limits<std::int32_t>::max(); break;
        case Scalar::I64: lo = std::numeric_limits<std::int64_t>::min(); hi = std::numeric_limits<std::int64_t>::max(); break;
        default: break;
    }
    bool in_range = false;
    unsigned long long bits = 0;
    if (overflow == 0 && !PyErr_Occurred()) {
        in_range = as_signed >= lo && (as_signed < 0 || static_cast<unsigned long long>(as_signed) <= hi);
        bits = static_cast<unsigned long long>(as_signed);
    } else if (overflow > 0 && f.element == Scalar::U64) {
        PyErr_Clear();
        bits = PyLong_AsUnsignedLongLong(index);
        in_range = !PyErr_Occurred();
    }
    if (!in_range) {
        PyErr_Clear();
        const std::string detail =
            value_text(info, index) + " is outside the range of " + std::string(schema::scalar_name(f.element));
        Py_DECREF(index);
        info.raise_validation(f, "range", detail);
        return false;
    }
    Py_DECREF(index);
    switch (schema::scalar_size(f.element)) {
        case 1: store_unaligned(p, static_cast<std::uint8_t>(bits)); break;
        case 2: store_unaligned(p, static_cast<std::uint16_t>(bits)); break;
        case 4: store_unaligned(p, static_cast<std::uint32_t>(bits)); break;
        default: store_unaligned(p, static_cast<std::uint64_t>(bits)); break;
    }
    return true;
}

bool encode_scalar(const TypeInfo& info, const Field& f, PyObject* value, std::byte* p) {
    switch (f.element) {
        case Scalar::F32:
        case Scalar::F64: {
            const double d = PyFloat_AsDouble(value);
            if (d == -1.0 && PyErr_Occurred()) {
                PyErr_Clear();
                info.raise_validation(f, "type", std::string("expected a number, got ") + Py_TYPE(value)->tp_name);
                return false;
            }
            if (f.element == Scalar::F32) store_unaligned(p, static_cast<float>(d));
            else store_unaligned(p, d);
            return true;
        }
        case Scalar::Bool: {
            const int truth = PyObject_IsTrue(value);
            if (truth < 0) return false;
            store_unaligned(p, static_cast<std::uint8_t>(truth));
            return true;
        }
        default: return encode_integer(info, f, value, p);
    }
}

bool encode_sequence(const TypeInfo& info, const Field& f, PyObject* value, std::byte* p) {
    PyObject* seq = PySequence_Fast(value, "");
    if (seq == nullptr) {
        PyErr_Clear();
        info.raise_validation(f, "type", std::string("expected a sequence, got ") + Py_TYPE(value)->tp_name);
        return false;
    }
    const auto n = static_cast<std::size_t>(PySequence_Fast_GET_SIZE(seq));
    std::byte* data = p;
    if (f.kind == FieldKind::Array && n != f.capacity) {
        Py_DECREF(seq);
        info.raise_validation(f, "size", "expected " + std::to_string(f.capacity) + " values, got " + std::to_string(n));
        return false;
    }
    if (f.kind == FieldKind::Vec) {
        const std::size_t max = f.validation.max_length.value_or(f.capacity);
        if (n > max) {
            Py_DECREF(seq);
            info.raise_validation(f, "max_length", "length " + std::to_string(n) + " is above " + std::to_string(max));
            return false;
        }
        store_unaligned(p, static_cast<std::uint16_t>(n));
        data = p + schema::FIXED_HEADER_SIZE;
    }
    // encode_scalar reads only f.element (and f's names for errors): no per-element copy.
    PyObject** items = PySequence_Fast_ITEMS(seq);
    for (std::size_t i = 0; i < n; ++i) {
        std::byte* at = data + i * f.element_size;
        const auto index = static_cast<std::ptrdiff_t>(i);
        bool ok = false;
        switch (f.element_kind) {
            case ElementKind::Scalar: ok = encode_scalar(info, f, items[i], at); break;
            case ElementKind::U256: ok = encode_u256(info, f, items[i], at, index); break;
            case ElementKind::Bytes: ok = encode_bytes(info, f, items[i], f.element_size, at, index); break;
        }
        if (!ok) {
            Py_DECREF(seq);
            return false;
        }
    }
    Py_DECREF(seq);
    return true;
}

bool encode_field(const TypeInfo& info, const Field& f, PyObject* value, std::byte* base) {
    std::byte* p = base + f.offset;
    if (value == nullptr) {
        info.raise_validation(f, "type", "is not set");
        return false;
    }
    switch (f.kind) {
        case FieldKind::Scalar: return encode_scalar(info, f, value, p);
        case FieldKind::U256: return encode_u256(info, f, value, p, -1);
        case FieldKind::String: {
            if (!PyUnicode_Check(value)) {
                info.raise_validation(f, "type", std::string("expected str, got ") + Py_TYPE(value)->tp_name);
                return false;
            }
            Py_ssize_t size = 0;
            const char* utf8 = PyUnicode_AsUTF8AndSize(value, &size);
            if (utf8 == nullptr) return false;  // lone surrogates: UnicodeEncodeError stays set
            const std::size_t max = f.validation.max_length.value_or(f.capacity);
            if (static_cast<std::size_t>(size) > max) {
                info.raise_validation(f, "max_length", "length " + std::to_string(size) + " is above " + std::to_string(max));
                return false;
            }
            store_unaligned(p, static_cast<std::uint16_t>(size));
            std::memcpy(p + schema::FIXED_HEADER_SIZE, utf8, static_cast<std::size_t>(size));
            return true;
        }
        case FieldKind::Array:
            if (is_byte_array(f)) return encode_bytes(info, f, value, f.capacity, p, -1);
            return encode_sequence(info, f, value, p);
        case FieldKind::Vec: return encode_sequence(info, f, value, p);
    }
    return false;
}

}  // namespace

bool encode_message(const TypeInfo& info, PyObject* self, std::span<std::byte> out) {
    std::memset(out.data(), 0, out.size());
    const auto& fields = info.schema->fields;
    for (std::size_t i = 0; i < fields.size(); ++i) {
        if (!encode_field(info, fields[i], value_at(self, i), out.data())) return false;
    }
    // All seven rules, checked by the registry that C++ and `pub` use, with its one text.
    auto checked = info.registry->validate(*info.schema, out);
    if (!checked) {
        info.raise_failure(checked.error());
        return false;
    }
    return true;
}


PyObject* stored_value(const TypeInfo& info, const Field& f, PyObject* value) {
    if (!converts_on_set(f)) {
        Py_INCREF(value);
        return value;
    }
    if (f.kind == FieldKind::U256) return u256_object(info, f, value, -1);
    PyObject* seq = PySequence_Fast(value, "");
    if (seq == nullptr) {
        PyErr_Clear();
        return info.raise_validation(f, "type", std::string("expected a sequence, got ") + Py_TYPE(value)->tp_name);
    }
    const Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject* list = PyList_New(n);
    for (Py_ssize_t i = 0; list != nullptr && i < n; ++i) {
        PyObject* item = u256_object(info, f, PySequence_Fast_GET_ITEM(seq, i), i);
        if (item == nullptr) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, i, item);
    }
    Py_DECREF(seq);
    return list;
}

}  // namespace mycelium::embedded
