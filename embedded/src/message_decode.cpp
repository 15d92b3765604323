// Decoding a message's bytes into Python values (message_decode.hpp). Read from the
// registry's layout: a field is one Python object, a numeric sequence a read-only numpy
// view over the payload's bytes when numpy is importable.

#include "message_decode.hpp"

#include <string>

namespace mycelium::embedded {

/// numpy.frombuffer, imported on first use; nullptr when numpy is not installed.
PyObject* numpy_frombuffer() {
    static PyObject* frombuffer = [] {
        PyObject* numpy = PyImport_ImportModule("numpy");
        if (numpy == nullptr) {
            PyErr_Clear();
            return static_cast<PyObject*>(nullptr);
        }
        PyObject* fn = PyObject_GetAttrString(numpy, "frombuffer");
        Py_DECREF(numpy);
        if (fn == nullptr) PyErr_Clear();
        return fn;
    }();
    return frombuffer;
}

namespace {

const char* numpy_dtype(Scalar s) {
    switch (s) {
        case Scalar::U8: return "<u1";
        case Scalar::U16: return "<u2";
        case Scalar::U32: return "<u4";
        case Scalar::U64: return "<u8";
        case Scalar::I8: return "<i1";
        case Scalar::I16: return "<i2";
        case Scalar::I32: return "<i4";
        case Scalar::I64: return "<i8";
        case Scalar::F32: return "<f4";
        case Scalar::F64: return "<f8";
        case Scalar::Bool: return "?";
    }
    return "<u1";
}

PyObject* scalar_to_python(Scalar s, const std::byte* p) {
    switch (s) {
        case Scalar::U8: return PyLong_FromUnsignedLong(load_unaligned<std::uint8_t>(p));
        case Scalar::U16: return PyLong_FromUnsignedLong(load_unaligned<std::uint16_t>(p));
        case Scalar::U32: return PyLong_FromUnsignedLong(load_unaligned<std::uint32_t>(p));
        case Scalar::U64: return PyLong_FromUnsignedLongLong(load_unaligned<std::uint64_t>(p));
        case Scalar::I8: return PyLong_FromLong(load_unaligned<std::int8_t>(p));
        case Scalar::I16: return PyLong_FromLong(load_unaligned<std::int16_t>(p));
        case Scalar::I32: return PyLong_FromLong(load_unaligned<std::int32_t>(p));
        case Scalar::I64: return PyLong_FromLongLong(load_unaligned<std::int64_t>(p));
        case Scalar::F32: return PyFloat_FromDouble(load_unaligned<float>(p));
        case Scalar::F64: return PyFloat_FromDouble(load_unaligned<double>(p));
        case Scalar::Bool: return PyBool_FromLong(load_unaligned<std::uint8_t>(p) != 0);
    }
    Py_RETURN_NONE;
}

PyObject* zero_bytes(std::size_t n) {
    PyObject* b = PyBytes_FromStringAndSize(nullptr, static_cast<Py_ssize_t>(n));
    if (b != nullptr) std::memset(PyBytes_AS_STRING(b), 0, n);
    return b;
}

/// One element of an array or a vector read from `p`: a number, or bytes for a U256 or
/// `[u8; N]` element.
PyObject* element_to_python(const Field& f, const std::byte* p) {
    if (f.element_kind == ElementKind::Scalar) return scalar_to_python(f.element, p);
    return bytes_of(p, f.element_size);
}

PyObject* decode_sequence(const TypeInfo& info, const Field& f, const std::byte* base, PyObject* backing,
                          std::size_t offset) {
    const std::byte* p = base + offset;
    std::size_t count = f.capacity;
    std::size_t data_offset = offset;
    if (f.kind == FieldKind::Vec) {
        count = load_unaligned<std::uint16_t>(p);
        if (count > f.capacity) {
            return info.raise_decode(f, "count " + std::to_string(count) + " exceeds the capacity " +
                                            std::to_string(f.capacity));
        }
        data_offset += schema::FIXED_HEADER_SIZE;
    }
    if (backing != nullptr && is_numeric_sequence(f)) {
        if (PyObject* frombuffer = numpy_frombuffer()) {
            return PyObject_CallFunction(frombuffer, "Osnn", backing, numpy_dtype(f.element),
                                         static_cast<Py_ssize_t>(count), static_cast<Py_ssize_t>(data_offset));
        }
    }
    PyObject* list = PyList_New(static_cast<Py_ssize_t>(count));
    if (list == nullptr) return nullptr;
    for (std::size_t i = 0; i < count; ++i) {
        PyObject* v = element_to_python(f, base + data_offset + i * f.element_size);
        if (v == nullptr) {
            Py_DECREF(list);
            return nullptr;
        }
        PyList_SET_ITEM(list, static_cast<Py_ssize_t>(i), v);
    }
    return list;
}

PyObject* decode_field(const TypeInfo& info, const Field& f, const std::byte* base, PyObject* backing) {
    const std::byte* p = base + f.offset;
    switch (f.kind) {
        case FieldKind::Scalar: return scalar_to_python(f.element, p);
        case FieldKind::U256: return bytes_of(p, U256_SIZE);
        case FieldKind::String: {
            const std::size_t length = load_unaligned<std::uint16_t>(p);
            if (length > f.capacity) {
                return info.raise_decode(f, "length " + std::to_string(length) + " exceeds the capacity " +
                                                std::to_string(f.capacity));
            }
            PyObject* s = PyUnicode_DecodeUTF8(reinterpret_cast<const char*>(p + schema::FIXED_HEADER_SIZE),
                                               static_cast<Py_ssize_t>(length), "strict");
            if (s == nullptr && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
                PyErr_Clear();
                return info.raise_decode(f, "not valid UTF-8");
            }
            return s;
        }
        case FieldKind::Array:
            if (is_byte_array(f)) return bytes_of(p, f.capacity);
            return decode_sequence(info, f, base, backing, f.offset);
        case FieldKind::Vec: return decode_sequence(info, f, base, backing, f.offset);
    }
    Py_RETURN_NONE;
}

}  // namespace

PyObject* decode_into_new(const TypeInfo& info, std::span<const std::byte> payload, PyObject* backing) {
    if (payload.size() != info.schema->size) {
        PyErr_Format(info.decode_error, "%s: expected %zu bytes, got %zu", info.schema->name.c_str(),
                     info.schema->size, payload.size());
        return nullptr;
    }
    PyObject* self = info.type->tp_alloc(info.type, 0);
    if (self == nullptr) return nullptr;
    const auto& fields = info.schema->fields;
    for (std::size_t i = 0; i < fields.size(); ++i) {
        PyObject* v = decode_field(info, fields[i], payload.data(), backing);
        if (v == nullptr) {
            Py_DECREF(self);
            return nullptr;
        }
        value_at(self, i) = v;
    }
    Py_XINCREF(backing);
    reinterpret_cast<MessageObject*>(self)->backing = backing;
    return self;
}

PyObject* zero_value(const Field& f) {
    static const std::byte zero[U256_SIZE]{};
    switch (f.kind) {
        case FieldKind::Scalar: return scalar_to_python(f.element, zero);
        case FieldKind::U256: return zero_bytes(U256_SIZE);
        case FieldKind::String: return PyUnicode_FromStringAndSize("", 0);
        case FieldKind::Vec: return PyList_New(0);
        case FieldKind::Array: {
            if (is_byte_array(f)) return zero_bytes(f.capacity);
            PyObject* list = PyList_New(static_cast<Py_ssize_t>(f.capacity));
            for (std::size_t i = 0; list != nullptr && i < f.capacity; ++i) {
                PyObject* z = f.element_kind == ElementKind::Scalar ? scalar_to_python(f.element, zero)
                                                                    : zero_bytes(f.element_size);
                if (z == nullptr) {
                    Py_CLEAR(list);
                    break;
                }
                PyList_SET_ITEM(list, static_cast<Py_ssize_t>(i), z);
            }
            return list;
        }
    }
    Py_RETURN_NONE;
}

}  // namespace mycelium::embedded
