#pragma once
// What the message classes of message_types.cpp are made of, shared by their encoder
// (message_encode.cpp) and decoder (message_decode.cpp): the instance layout, each
// class's TypeInfo, and what a field's kind means for its Python value. Private header
// of embedded/src/.

#include <Python.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "message_types.hpp"
#include "mycelium/schema.hpp"
#include "mycelium/unaligned.hpp"

namespace mycelium::embedded {

using schema::ElementKind;
using schema::Field;
using schema::FieldKind;
using schema::MessageSchema;
using schema::Scalar;

inline constexpr std::size_t U256_SIZE = 32;

/// An instance: the object header, then one PyObject* per field.
struct MessageObject {
    PyObject_HEAD
    PyObject* backing;   ///< bytes that numpy views share, or nullptr
    PyObject* values[1];  ///< one per field (the type's basicsize makes room for all)
};

inline constexpr Py_ssize_t VALUES_OFFSET = offsetof(MessageObject, values);

inline PyObject*& value_at(PyObject* self, std::size_t i) {
    return reinterpret_cast<MessageObject*>(self)->values[i];
}

inline std::size_t field_count(PyObject* self) {
    return static_cast<std::size_t>((Py_TYPE(self)->tp_basicsize - VALUES_OFFSET) /
                                    static_cast<Py_ssize_t>(sizeof(PyObject*)));
}

/// Key under which each class keeps its TypeInfo capsule in its own __dict__: the
/// info then lives exactly as long as the class, whatever outlives the module.
inline constexpr const char* INFO_KEY = "__mycelium_type_info__";

/// One class's layout and exception types; owned by the class (a capsule in its __dict__).
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

using TypeInfo = MessageTypes::TypeInfo;

/// `[u8; N]`: one bytes object.
inline bool is_byte_array(const Field& f) {
    return f.kind == FieldKind::Array && f.element_kind == ElementKind::Scalar && f.element == Scalar::U8;
}
inline bool is_sequence(const Field& f) { return f.kind == FieldKind::Array || f.kind == FieldKind::Vec; }
/// Arrays and vectors of numbers: read-only numpy views when numpy is importable, else lists.
inline bool is_numeric_sequence(const Field& f) {
    return is_sequence(f) && f.element_kind == ElementKind::Scalar && !is_byte_array(f);
}
/// A U256, or an array or vector of them: an int given for one is turned into its 32 bytes
/// when the field is set, so the attribute always reads back as bytes.
inline bool converts_on_set(const Field& f) { return f.element_kind == ElementKind::U256; }

inline PyObject* bytes_of(const std::byte* p, std::size_t n) {
    return PyBytes_FromStringAndSize(reinterpret_cast<const char*>(p), static_cast<Py_ssize_t>(n));
}

}  // namespace mycelium::embedded
