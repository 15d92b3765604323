// The message classes are heap types built with the C API rather than pybind11 classes
// or generated Python: a decoded message is one allocation for the object plus one per
// field, and no Python bytecode runs, which is what lets a callback receive millions of
// messages a second. Field values live in a PyObject* array after the object header and
// are exposed as member descriptors, like __slots__; a field whose value is converted when
// set (a U256 given as an int becomes its 32 bytes) has a getter and setter instead.
//
// Python sees the fields' Python names (`class_` for `class`) and the message's Python
// name; errors name the contracts' names, in the registry's one text (ValidationFailure).

#include "message_types.hpp"

#include <structmember.h>

#include <cstdint>
#include <cstring>
#include <limits>
#include <string>

#include "mycelium/unaligned.hpp"

namespace mycelium::embedded {

using schema::ElementKind;
using schema::Field;
using schema::FieldKind;
using schema::MessageSchema;
using schema::Scalar;

constexpr std::size_t U256_SIZE = 32;

namespace {

struct MessageObject {
    PyObject_HEAD
    PyObject* backing;   ///< bytes that numpy views share, or nullptr
    PyObject* values[1];  ///< one per field (the type's basicsize makes room for all)
};

constexpr Py_ssize_t VALUES_OFFSET = offsetof(MessageObject, values);

PyObject*& value_at(PyObject* self, std::size_t i) {
    return reinterpret_cast<MessageObject*>(self)->values[i];
}

/// Key under which each class keeps its TypeInfo capsule in its own __dict__: the
/// info then lives exactly as long as the class, whatever outlives the module.
constexpr const char* INFO_KEY = "__mycelium_type_info__";

std::size_t field_count(PyObject* self) {
    return static_cast<std::size_t>((Py_TYPE(self)->tp_basicsize - VALUES_OFFSET) /
                                    static_cast<Py_ssize_t>(sizeof(PyObject*)));
}

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

/// `[u8; N]`: one bytes object.
bool is_byte_array(const Field& f) {
    return f.kind == FieldKind::Array && f.element_kind == ElementKind::Scalar && f.element == Scalar::U8;
}
bool is_sequence(const Field& f) { return f.kind == FieldKind::Array || f.kind == FieldKind::Vec; }
/// Arrays and vectors of numbers: read-only numpy views when numpy is importable, else lists.
bool is_numeric_sequence(const Field& f) {
    return is_sequence(f) && f.element_kind == ElementKind::Scalar && !is_byte_array(f);
}
/// A U256, or an array or vector of them: an int given for one is turned into its 32 bytes
/// when the field is set, so the attribute always reads back as bytes.
bool converts_on_set(const Field& f) { return f.element_kind == ElementKind::U256; }

template <class T>
T load(const std::byte* p) {
    return load_unaligned<T>(p);
}

template <class T>
void store(std::byte* p, T v) {
    store_unaligned(p, v);
}

PyObject* scalar_to_python(Scalar s, const std::byte* p) {
    switch (s) {
        case Scalar::U8: return PyLong_FromUnsignedLong(load<std::uint8_t>(p));
        case Scalar::U16: return PyLong_FromUnsignedLong(load<std::uint16_t>(p));
        case Scalar::U32: return PyLong_FromUnsignedLong(load<std::uint32_t>(p));
        case Scalar::U64: return PyLong_FromUnsignedLongLong(load<std::uint64_t>(p));
        case Scalar::I8: return PyLong_FromLong(load<std::int8_t>(p));
        case Scalar::I16: return PyLong_FromLong(load<std::int16_t>(p));
        case Scalar::I32: return PyLong_FromLong(load<std::int32_t>(p));
        case Scalar::I64: return PyLong_FromLongLong(load<std::int64_t>(p));
        case Scalar::F32: return PyFloat_FromDouble(load<float>(p));
        case Scalar::F64: return PyFloat_FromDouble(load<double>(p));
        case Scalar::Bool: return PyBool_FromLong(load<std::uint8_t>(p) != 0);
    }
    Py_RETURN_NONE;
}

PyObject* bytes_of(const std::byte* p, std::size_t n) {
    return PyBytes_FromStringAndSize(reinterpret_cast<const char*>(p), static_cast<Py_ssize_t>(n));
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

}  // namespace

struct MessageTypes::TypeInfo {
    std::shared_ptr<const schema::Registry> registry;
    const MessageSchema* schema = nullptr;
    PyTypeObject* type = nullptr;  ///< borrowed: the class owns this info, not the reverse
    PyObject* validation_error = nullptr;  ///< owned reference
    PyObject* decode_error = nullptr;      ///< owned reference
    bool has_numeric_sequences = false;
    std::string qualified_name;
    std::vector<PyMemberDef> members;  ///< names point into the schema, which the registry keeps alive
    std::vector<PyGetSetDef> getsets;  ///< the fields that convert_on_set
    /// Interned Python names of the fields (owned): a keyword lookup hashes nothing and
    /// compares pointers, as the interpreter interns the keywords of a call.
    std::vector<PyObject*> keywords;

    /// Raises ValidationError(message, field, rule, detail): its text is failure.text().
    [[gnu::cold]] std::nullptr_t raise_failure(const schema::ValidationFailure& failure) const {
        if (failure.field.empty()) {
            PyErr_SetString(PyExc_ValueError, failure.text().c_str());
            return nullptr;
        }
        PyObject* err = PyObject_CallFunction(validation_error, "ssss", failure.message.c_str(),
                                              failure.field.c_str(), failure.rule.c_str(), failure.detail.c_str());
        if (err != nullptr) {
            PyErr_SetObject(validation_error, err);
            Py_DECREF(err);
        }
        return nullptr;
    }
    [[gnu::cold]] std::nullptr_t raise_validation(const Field& f, const char* rule, const std::string& detail) const {
        return raise_failure({schema->name, f.name, rule, detail});
    }
    std::nullptr_t raise_decode(const Field& f, const std::string& detail) const {
        PyErr_Format(decode_error, "%s.%s: %s", schema->name.c_str(), f.name.c_str(), detail.c_str());
        return nullptr;
    }
};

namespace {

using TypeInfo = MessageTypes::TypeInfo;

TypeInfo* info_of(PyTypeObject* type) {
    // An interned key: the lookup hashes nothing and compares pointers.
    static PyObject* key = PyUnicode_InternFromString(INFO_KEY);
    PyObject* capsule = type->tp_dict != nullptr ? PyDict_GetItem(type->tp_dict, key) : nullptr;
    return capsule != nullptr ? static_cast<TypeInfo*>(PyCapsule_GetPointer(capsule, INFO_KEY)) : nullptr;
}

TypeInfo* info_or_raise(PyObject* self) {
    TypeInfo* info = info_of(Py_TYPE(self));
    if (info == nullptr) PyErr_SetString(PyExc_TypeError, "not a mycelium message");
    return info;
}

// ---------------------------------------------------------------- decoding

PyObject* decode_sequence(const TypeInfo& info, const Field& f, const std::byte* base, PyObject* backing,
                          std::size_t offset) {
    const std::byte* p = base + offset;
    std::size_t count = f.capacity;
    std::size_t data_offset = offset;
    if (f.kind == FieldKind::Vec) {
        count = load<std::uint16_t>(p);
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
            const std::size_t length = load<std::uint16_t>(p);
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

/// Decodes into a new instance. `backing` (may be null) is a bytes object holding the
/// same payload, for numpy views to share.
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

// ---------------------------------------------------------------- encoding

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

/// What a field holds once set (new reference): a U256 as its 32 bytes, a sequence of
/// U256 as a list of them, any other value as given (it is checked when encoded).
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
        case 1: store(p, static_cast<std::uint8_t>(bits)); break;
        case 2: store(p, static_cast<std::uint16_t>(bits)); break;
        case 4: store(p, static_cast<std::uint32_t>(bits)); break;
        default: store(p, static_cast<std::uint64_t>(bits)); break;
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
            if (f.element == Scalar::F32) store(p, static_cast<float>(d));
            else store(p, d);
            return true;
        }
        case Scalar::Bool: {
            const int truth = PyObject_IsTrue(value);
            if (truth < 0) return false;
            store(p, static_cast<std::uint8_t>(truth));
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
        store(p, static_cast<std::uint16_t>(n));
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
            store(p, static_cast<std::uint16_t>(size));
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

// ---------------------------------------------------------------- slots

void message_dealloc(PyObject* self) {
    PyTypeObject* type = Py_TYPE(self);
    for (std::size_t i = 0; i < field_count(self); ++i) Py_CLEAR(value_at(self, i));
    Py_CLEAR(reinterpret_cast<MessageObject*>(self)->backing);
    type->tp_free(self);
    Py_DECREF(type);  // instances of heap types own a reference to their type
}

/// The index of the field whose Python name is `name`, or -1.
std::ptrdiff_t python_field_index(const MessageSchema& m, const char* name) {
    for (std::size_t i = 0; name != nullptr && i < m.fields.size(); ++i) {
        if (m.fields[i].python_name == name) return static_cast<std::ptrdiff_t>(i);
    }
    return -1;
}

int message_init(PyObject* self, PyObject* args, PyObject* kwargs) {
    TypeInfo* info = info_or_raise(self);
    if (info == nullptr) return -1;
    const MessageSchema& m = *info->schema;
    const auto& fields = m.fields;
    const Py_ssize_t positional = PyTuple_GET_SIZE(args);
    if (positional > static_cast<Py_ssize_t>(fields.size())) {
        PyErr_Format(PyExc_TypeError, "%s() takes at most %zu arguments (%zd given)", m.python_name.c_str(),
                     fields.size(), positional);
        return -1;
    }
    Py_ssize_t matched = 0;  // keywords that named a field
    for (std::size_t i = 0; i < fields.size(); ++i) {
        PyObject* given = nullptr;
        if (kwargs != nullptr) {
            given = PyDict_GetItemWithError(kwargs, info->keywords[i]);
            if (given == nullptr && PyErr_Occurred()) return -1;
            if (given != nullptr && static_cast<Py_ssize_t>(i) < positional) {
                PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%s'", m.python_name.c_str(),
                             fields[i].python_name.c_str());
                return -1;
            }
            matched += given != nullptr;
        }
        if (given == nullptr && static_cast<Py_ssize_t>(i) < positional) {
            given = PyTuple_GET_ITEM(args, static_cast<Py_ssize_t>(i));
        }
        PyObject* v = given != nullptr ? stored_value(*info, fields[i], given) : zero_value(fields[i]);
        if (v == nullptr) return -1;
        Py_XSETREF(value_at(self, i), v);
    }
    if (kwargs != nullptr && matched != PyDict_GET_SIZE(kwargs)) {
        // Only on this error path: find the keyword that names no field.
        PyObject* key = nullptr;
        PyObject* unused = nullptr;
        Py_ssize_t pos = 0;
        while (PyDict_Next(kwargs, &pos, &key, &unused)) {
            if (python_field_index(m, PyUnicode_Check(key) ? PyUnicode_AsUTF8(key) : nullptr) < 0) {
                PyErr_Clear();
                PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%S'", m.python_name.c_str(),
                             key);
                return -1;
            }
        }
    }
    return 0;
}

/// Getter and setter of a field that converts_on_set; `closure` is the field's index.
PyObject* converted_get(PyObject* self, void* closure) {
    PyObject* v = value_at(self, reinterpret_cast<std::uintptr_t>(closure));
    if (v == nullptr) {
        PyErr_SetString(PyExc_AttributeError, "the field is not set");
        return nullptr;
    }
    Py_INCREF(v);
    return v;
}

int converted_set(PyObject* self, PyObject* value, void* closure) {
    TypeInfo* info = info_or_raise(self);
    if (info == nullptr) return -1;
    const auto i = reinterpret_cast<std::uintptr_t>(closure);
    const Field& f = info->schema->fields[i];
    if (value == nullptr) {
        PyErr_Format(PyExc_AttributeError, "%s.%s cannot be deleted", info->schema->python_name.c_str(),
                     f.python_name.c_str());
        return -1;
    }
    PyObject* stored = stored_value(*info, f, value);
    if (stored == nullptr) return -1;
    Py_XSETREF(value_at(self, i), stored);
    return 0;
}

PyObject* message_repr(PyObject* self) {
    TypeInfo* info = info_or_raise(self);
    if (info == nullptr) return nullptr;
    std::string text = info->schema->python_name + "(";
    const auto& fields = info->schema->fields;
    for (std::size_t i = 0; i < fields.size(); ++i) {
        PyObject* r = value_at(self, i) != nullptr ? PyObject_Repr(value_at(self, i)) : PyUnicode_FromString("<unset>");
        if (r == nullptr) return nullptr;
        const char* utf8 = PyUnicode_AsUTF8(r);
        text += (i == 0 ? "" : ", ") + fields[i].python_name + "=" + (utf8 != nullptr ? utf8 : "?");
        Py_DECREF(r);
    }
    text += ")";
    return PyUnicode_FromStringAndSize(text.data(), static_cast<Py_ssize_t>(text.size()));
}

/// Equality of two field values; arrays and vectors compare element-wise, so numpy views,
/// lists and the tuples a caller may have given compare by content.
int values_equal(const Field& f, PyObject* a, PyObject* b) {
    if (a == nullptr || b == nullptr) return a == b;
    if (!is_sequence(f) || is_byte_array(f)) return PyObject_RichCompareBool(a, b, Py_EQ);
    PyObject* ta = PySequence_Tuple(a);
    PyObject* tb = ta != nullptr ? PySequence_Tuple(b) : nullptr;
    const int eq = tb != nullptr ? PyObject_RichCompareBool(ta, tb, Py_EQ) : -1;
    Py_XDECREF(ta);
    Py_XDECREF(tb);
    return eq;
}

PyObject* message_richcompare(PyObject* self, PyObject* other, int op) {
    if ((op != Py_EQ && op != Py_NE) || Py_TYPE(self) != Py_TYPE(other)) Py_RETURN_NOTIMPLEMENTED;
    TypeInfo* info = info_or_raise(self);
    if (info == nullptr) return nullptr;
    const auto& fields = info->schema->fields;
    bool equal = true;
    for (std::size_t i = 0; equal && i < fields.size(); ++i) {
        const int eq = values_equal(fields[i], value_at(self, i), value_at(other, i));
        if (eq < 0) return nullptr;
        equal = eq == 1;
    }
    return PyBool_FromLong((op == Py_EQ) == equal);
}

PyObject* message_to_bytes(PyObject* self, PyObject*) {
    TypeInfo* info = info_or_raise(self);
    if (info == nullptr) return nullptr;
    PyObject* out = PyBytes_FromStringAndSize(nullptr, static_cast<Py_ssize_t>(info->schema->size));
    if (out == nullptr) return nullptr;
    auto* data = reinterpret_cast<std::byte*>(PyBytes_AS_STRING(out));
    if (!encode_message(*info, self, {data, info->schema->size})) {
        Py_DECREF(out);
        return nullptr;
    }
    return out;
}

PyObject* message_validate(PyObject* self, PyObject*) {
    PyObject* bytes = message_to_bytes(self, nullptr);
    if (bytes == nullptr) return nullptr;
    Py_DECREF(bytes);
    Py_RETURN_NONE;
}

PyObject* message_from_bytes(PyObject* cls, PyObject* data) {
    TypeInfo* info = info_of(reinterpret_cast<PyTypeObject*>(cls));
    if (info == nullptr) {
        PyErr_SetString(PyExc_TypeError, "not a mycelium message class");
        return nullptr;
    }
    if (PyBytes_Check(data)) {
        // bytes are immutable: numpy views can share them without a copy.
        const std::span<const std::byte> payload(reinterpret_cast<const std::byte*>(PyBytes_AS_STRING(data)),
                                                 static_cast<std::size_t>(PyBytes_GET_SIZE(data)));
        return decode_into_new(*info, payload, info->has_numeric_sequences ? data : nullptr);
    }
    PyObject* copy = PyBytes_FromObject(data);  // bytearray, memoryview: take an immutable copy
    if (copy == nullptr) return nullptr;
    PyObject* result = message_from_bytes(cls, copy);
    Py_DECREF(copy);
    return result;
}

PyMethodDef MESSAGE_METHODS[] = {
    {"to_bytes", message_to_bytes, METH_NOARGS, "Encode to the contracts' wire layout (validates first)."},
    {"validate", message_validate, METH_NOARGS, "Raise ValidationError if a field breaks a rule."},
    {"from_bytes", message_from_bytes, METH_O | METH_CLASS, "Decode from bytes of the message's size."},
    {nullptr, nullptr, 0, nullptr},
};

PyTypeObject* info_type(PyObject* type) { return reinterpret_cast<PyTypeObject*>(type); }

bool set_type_attr(PyTypeObject* type, const char* name, PyObject* value) {
    if (value == nullptr) return false;
    const int rc = PyObject_SetAttrString(reinterpret_cast<PyObject*>(type), name, value);
    Py_DECREF(value);
    return rc == 0;
}


void destroy_info(PyObject* capsule) {
    auto* info = static_cast<TypeInfo*>(PyCapsule_GetPointer(capsule, INFO_KEY));
    if (info == nullptr) return;
    Py_XDECREF(info->validation_error);
    Py_XDECREF(info->decode_error);
    for (PyObject* k : info->keywords) Py_XDECREF(k);
    delete info;
}

}  // namespace

MessageTypes::MessageTypes(std::shared_ptr<const schema::Registry> registry, PyObject* validation_error,
                           PyObject* decode_error) {
    for (const MessageSchema& m : registry->messages()) {
        auto info = std::make_unique<TypeInfo>();
        info->registry = registry;
        info->schema = &m;
        Py_INCREF(validation_error);
        info->validation_error = validation_error;
        Py_INCREF(decode_error);
        info->decode_error = decode_error;
        info->qualified_name = "mycelium_native.messages." + m.python_name;
        for (std::size_t i = 0; i < m.fields.size(); ++i) {
            const Field& f = m.fields[i];
            info->has_numeric_sequences = info->has_numeric_sequences || is_numeric_sequence(f);
            if (converts_on_set(f)) {
                info->getsets.push_back(PyGetSetDef{f.python_name.c_str(), converted_get, converted_set, nullptr,
                                                    reinterpret_cast<void*>(static_cast<std::uintptr_t>(i))});
            } else {
                info->members.push_back(PyMemberDef{f.python_name.c_str(), T_OBJECT_EX,
                                                    VALUES_OFFSET + static_cast<Py_ssize_t>(i * sizeof(PyObject*)), 0,
                                                    nullptr});
            }
        }
        for (const Field& f : m.fields) {
            PyObject* keyword = PyUnicode_InternFromString(f.python_name.c_str());
            if (keyword == nullptr) throw std::runtime_error("cannot create the field names of " + m.name);
            info->keywords.push_back(keyword);
        }
        info->members.push_back(PyMemberDef{nullptr, 0, 0, 0, nullptr});
        info->getsets.push_back(PyGetSetDef{nullptr, nullptr, nullptr, nullptr, nullptr});

        PyType_Slot slots[] = {
            {Py_tp_dealloc, reinterpret_cast<void*>(message_dealloc)},
            {Py_tp_init, reinterpret_cast<void*>(message_init)},
            {Py_tp_new, reinterpret_cast<void*>(PyType_GenericNew)},
            {Py_tp_repr, reinterpret_cast<void*>(message_repr)},
            {Py_tp_richcompare, reinterpret_cast<void*>(message_richcompare)},
            {Py_tp_hash, reinterpret_cast<void*>(PyObject_HashNotImplemented)},
            {Py_tp_methods, MESSAGE_METHODS},
            {Py_tp_members, info->members.data()},
            {Py_tp_getset, info->getsets.data()},
            {Py_tp_doc, const_cast<char*>(m.description.c_str())},
            {0, nullptr},
        };
        PyType_Spec spec{info->qualified_name.c_str(),
                         static_cast<int>(VALUES_OFFSET + static_cast<Py_ssize_t>(m.fields.size() * sizeof(PyObject*))),
                         0, Py_TPFLAGS_DEFAULT, slots};
        PyObject* type = PyType_FromSpec(&spec);
        if (type == nullptr) throw std::runtime_error("cannot create the Python class for " + m.name);
        info->type = reinterpret_cast<PyTypeObject*>(type);
        types_.push_back(type);  // owned until ~MessageTypes

        PyObject* field_names = PyTuple_New(static_cast<Py_ssize_t>(m.fields.size()));
        for (std::size_t i = 0; field_names != nullptr && i < m.fields.size(); ++i) {
            PyTuple_SET_ITEM(field_names, static_cast<Py_ssize_t>(i),
                             PyUnicode_FromString(m.fields[i].python_name.c_str()));
        }
        TypeInfo* raw = info.get();
        PyObject* capsule = PyCapsule_New(raw, INFO_KEY, destroy_info);
        if (capsule == nullptr) throw std::runtime_error("cannot attach the layout of " + m.name);
        info.release();  // the capsule owns it now
        const bool ok = set_type_attr(info_type(type), INFO_KEY, capsule) &&
                        set_type_attr(info_type(type), "TYPE_ID", PyLong_FromLong(m.type_id)) &&
                        set_type_attr(info_type(type), "NAME", PyUnicode_FromString(m.name.c_str())) &&
                        set_type_attr(info_type(type), "TOPIC", PyUnicode_FromString(m.topic.c_str())) &&
                        set_type_attr(info_type(type), "SIZE", PyLong_FromSize_t(m.size)) &&
                        set_type_attr(info_type(type), "FIELDS", field_names);
        if (!ok) throw std::runtime_error("cannot set the class attributes of " + m.name);
        by_type_id_[m.type_id] = raw;
        by_class_[raw->type] = raw;
    }
}

MessageTypes::~MessageTypes() {
    for (PyObject* type : types_) Py_DECREF(type);
}

bool MessageTypes::add_to(PyObject* module) const {
    for (PyObject* type : types_) {
        const TypeInfo* info = info_of(reinterpret_cast<PyTypeObject*>(type));
        Py_INCREF(type);
        if (PyModule_AddObject(module, info->schema->python_name.c_str(), type) != 0) {
            Py_DECREF(type);
            return false;
        }
    }
    return true;
}

PyTypeObject* MessageTypes::find(std::uint16_t type_id) const {
    const auto it = by_type_id_.find(type_id);
    return it == by_type_id_.end() ? nullptr : it->second->type;
}

const MessageTypes::TypeInfo* MessageTypes::info_for(PyTypeObject* type) const noexcept {
    const auto it = by_class_.find(type);
    return it == by_class_.end() ? nullptr : it->second;
}

const schema::MessageSchema* MessageTypes::schema_of(PyTypeObject* type) const {
    const TypeInfo* info = info_for(type);
    return info != nullptr ? info->schema : nullptr;
}

PyObject* MessageTypes::decode(PyTypeObject* type, std::span<const std::byte> payload) const {
    const TypeInfo* info = info_for(type);
    if (info == nullptr) {
        PyErr_SetString(PyExc_TypeError, "not a mycelium message class");
        return nullptr;
    }
    return decode(*info, payload);
}

PyObject* MessageTypes::decode(const TypeInfo& info, std::span<const std::byte> payload) const {
    if (!info.has_numeric_sequences || numpy_frombuffer() == nullptr) return decode_into_new(info, payload, nullptr);
    // numpy views need an immutable Python buffer to share: copy the payload once.
    PyObject* backing = PyBytes_FromStringAndSize(reinterpret_cast<const char*>(payload.data()),
                                                  static_cast<Py_ssize_t>(payload.size()));
    if (backing == nullptr) return nullptr;
    PyObject* result = decode_into_new(info, payload, backing);
    Py_DECREF(backing);
    return result;
}

bool MessageTypes::encode(PyObject* message, std::span<std::byte> out) const {
    const TypeInfo* info = info_for(Py_TYPE(message));
    if (info == nullptr) {
        PyErr_SetString(PyExc_TypeError, "not a mycelium message");
        return false;
    }
    return encode(*info, message, out);
}

bool MessageTypes::encode(const TypeInfo& info, PyObject* message, std::span<std::byte> out) const {
    if (out.size() != info.schema->size) {
        PyErr_SetString(PyExc_ValueError, "encode buffer has the wrong size");
        return false;
    }
    return encode_message(info, message, out);
}

const schema::MessageSchema& MessageTypes::schema_of(const TypeInfo& info) noexcept { return *info.schema; }

}  // namespace mycelium::embedded
