// libFuzzer target for in-host payload decoding (embedded/src/message_decode.cpp): a
// payload from the bus becomes an instance of its Python message class, with the
// interpreter embedded in the fuzzer. Every message kind of the fixture contracts
// (contracts/valid/all_types.yaml and inhost_types.yaml's shapes) is decoded; an accepted
// payload is encoded back (message_encode.cpp) and, when that passes the contracts'
// rules, decoded and encoded again to the same bytes (a fixed point: decoding may
// normalise, e.g. a bool byte 2 reads as True and is written back as 1).
// A refused payload must raise DecodeError (a corrupt length, invalid UTF-8), never
// crash or leave a different exception.
//
// Input layout: byte 0 picks the message, the rest is the payload (cut or zero-padded
// to the message's size 3 times out of 4, so that most inputs reach the fields).

#include <pybind11/embed.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <span>
#include <vector>

#include "../../embedded/src/message_types.hpp"

namespace py = pybind11;

namespace {

constexpr const char* CONTRACTS = R"(messages:
  Scalars:
    tlv_type: 1000
    fields: {a_u8: u8, a_u16: u16, a_u32: u32, a_u64: u64, a_i8: i8, a_i16: i16, a_i32: i32, a_i64: i64, a_f32: f32, a_f64: f64, a_bool: bool}
  Texts:
    tlv_type: 1001
    fields:
      name: {type: String, max_length: 5}
      note: String
  Sequences:
    tlv_type: 1002
    fields:
      raw: "[u8; 3]"
      floats: "[f32; 3]"
      ids: {type: Vec<u32>, max_length: 3}
      bytes: {type: Vec<u8>, max_length: 4}
      flags: "[bool; 2]"
  Wide:
    tlv_type: 1003
    fields:
      amount: U256
      amounts: "[U256; 2]"
      hashes: "[[u8; 3]; 2]"
      hops: {type: "Vec<[u8; 2]>", max_length: 3}
      big: {type: Vec<U256>, max_length: 2}
  Ruled:
    tlv_type: 1004
    fields:
      qty: {type: u32, validation: {min: 1, max: 10}}
      tag: {type: String, max_length: 4, validation: {not_empty: true}}
)";

struct State {
    py::scoped_interpreter interpreter{};
    py::object errors;
    py::object validation;
    py::object decode_error;
    std::shared_ptr<const mycelium::schema::Registry> registry;
    std::unique_ptr<mycelium::embedded::MessageTypes> types;

    State() {
        py::dict scope;
        py::exec(R"(
class ValidationError(ValueError):
    def __init__(self, message, field, rule, detail):
        super().__init__(f"{message}.{field}: {rule}: {detail}")
class DecodeError(ValueError):
    pass
)", scope);
        validation = scope["ValidationError"];
        decode_error = scope["DecodeError"];
        registry = std::make_shared<mycelium::schema::Registry>(
            mycelium::schema::Registry::load_string(CONTRACTS, "payload_decode_fuzz.yaml"));
        types = std::make_unique<mycelium::embedded::MessageTypes>(registry, validation.ptr(), decode_error.ptr());
    }
};

State* state = nullptr;

void check(bool ok) {
    if (!ok) std::abort();
}

/// encode(decode(payload)): false when decode refused it (DecodeError) or encode did
/// (ValidationError); any other exception is a failure.
bool round(PyTypeObject* type, const mycelium::schema::MessageSchema& m, std::span<const std::byte> payload,
           std::vector<std::byte>& out) {
    PyObject* object = state->types->decode(type, payload);
    if (object == nullptr) {
        check(PyErr_ExceptionMatches(state->decode_error.ptr()) != 0);
        PyErr_Clear();
        return false;
    }
    out.assign(m.size, std::byte{0});
    const bool encoded = state->types->encode(object, out);
    Py_DECREF(object);
    if (!encoded) {
        check(PyErr_ExceptionMatches(state->validation.ptr()) != 0 || PyErr_ExceptionMatches(PyExc_ValueError) != 0);
        PyErr_Clear();
        return false;
    }
    return true;
}

}  // namespace

// Python keeps objects for the process's life (interned strings, type caches).
extern "C" const char* __asan_default_options() { return "detect_leaks=0"; }

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    state = new State();  // never destroyed: the interpreter lives as long as the process
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const auto messages = state->registry->messages();
    const auto& m = messages[data[0] % messages.size()];
    PyTypeObject* type = state->types->find(m.type_id);
    check(type != nullptr);
    // An exact-size copy, so that reading past the payload is a heap overflow.
    std::vector<std::byte> payload(reinterpret_cast<const std::byte*>(data) + 1,
                                   reinterpret_cast<const std::byte*>(data) + size);
    if ((data[0] >> 6) != 0) payload.resize(m.size);

    std::vector<std::byte> once;
    if (!round(type, m, payload, once)) return 0;
    check(payload.size() == m.size);  // a payload of another size is refused
    std::vector<std::byte> twice;
    check(round(type, m, once, twice));
    check(once == twice);
    return 0;
}
