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
#include <string>

#include "message_decode.hpp"
#include "message_encode.hpp"
#include "message_object.hpp"

namespace mycelium::embedded {

namespace {

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
