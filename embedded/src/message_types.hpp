#pragma once
// Python classes for the messages of a schema registry: mycelium_native.messages.<Name>.
// Encoding and decoding run in C++ straight from the registry's layouts, so a message
// crosses into Python with one allocation per field and no Python-level code.

#include <Python.h>

#include <cstddef>
#include <memory>
#include <span>
#include <unordered_map>
#include <vector>

#include "mycelium/schema.hpp"

namespace mycelium::embedded {

/// The classes of one registry, named by each message's Python name. Instances of a class:
/// keyword constructor with zero defaults, one attribute per field under its Python name
/// (`class_` for `class`), to_bytes(), from_bytes(), validate(), TYPE_ID, NAME, TOPIC
/// (the schema's, Mycelium's derivation), SIZE, FIELDS (Python names), equality and repr.
/// Values: `[u8; N]` and U256 are bytes (a U256 also takes an int in [0, 2**256) and
/// stores its 32 big-endian bytes); arrays and vectors of `[u8; N]` or U256 are lists of
/// bytes; numeric arrays and vectors decode to read-only numpy views over the message's
/// bytes when numpy is importable, else lists.
/// Thread safety: every call needs the GIL. One instance per interpreter.
class MessageTypes {
public:
    /// One class's layout and exception types (defined in message_object.hpp).
    struct TypeInfo;

    /// Creates the classes (needs the GIL). `validation_error` and `decode_error` are the
    /// exception classes raised by encode and decode. Each class keeps its own layout
    /// (and the registry) alive, so classes and instances may outlive this object.
    MessageTypes(std::shared_ptr<const schema::Registry> registry, PyObject* validation_error,
                 PyObject* decode_error);
    ~MessageTypes();
    MessageTypes(const MessageTypes&) = delete;
    MessageTypes& operator=(const MessageTypes&) = delete;

    /// Adds every class to `module` under its message name. Returns false with a Python error set.
    bool add_to(PyObject* module) const;

    /// The class of a type id (borrowed), or nullptr.
    PyTypeObject* find(std::uint16_t type_id) const;
    /// The layout of one of our classes, or nullptr when `type` is not one (one hash
    /// lookup: the publish path calls it once per message).
    const TypeInfo* info_for(PyTypeObject* type) const noexcept;
    static const schema::MessageSchema& schema_of(const TypeInfo& info) noexcept;
    /// The schema of one of our classes, or nullptr when `type` is not one.
    const schema::MessageSchema* schema_of(PyTypeObject* type) const;

    /// A new instance decoded from `payload` (new reference), or nullptr with a Python
    /// error set (DecodeError for a corrupt length or invalid UTF-8).
    PyObject* decode(PyTypeObject* type, std::span<const std::byte> payload) const;
    /// decode() for a class whose info the caller already looked up (the delivery path).
    PyObject* decode(const TypeInfo& info, std::span<const std::byte> payload) const;

    /// Encodes an instance of one of our classes into `out` (exactly its size), checking
    /// types, integer ranges and the contracts' validation rules. Returns false with a
    /// Python error set (ValidationError naming the message, the field and the rule).
    bool encode(PyObject* message, std::span<std::byte> out) const;
    /// encode() for a message whose class's info the caller already looked up.
    bool encode(const TypeInfo& info, PyObject* message, std::span<std::byte> out) const;

private:
    std::vector<PyObject*> types_;                              ///< owned references
    std::unordered_map<std::uint16_t, TypeInfo*> by_type_id_;  ///< owned by the classes
    std::unordered_map<PyTypeObject*, TypeInfo*> by_class_;    ///< valid while types_ holds them
};

}  // namespace mycelium::embedded
