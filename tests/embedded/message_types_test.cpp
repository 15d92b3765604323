#include <doctest/doctest.h>
#include <pybind11/eval.h>
#include <pybind11/pybind11.h>

#include <cstring>
#include <filesystem>
#include <vector>

#include "../../embedded/src/message_types.hpp"

namespace py = pybind11;
using namespace mycelium;

namespace {

std::shared_ptr<const schema::Registry> fixture_registry() {
    static auto registry = std::make_shared<schema::Registry>(schema::Registry::load_file(
        std::filesystem::path(MYCELIUM_FIXTURES_DIR) / "contracts" / "valid" / "all_types.yaml"));
    return registry;
}

/// Exception classes with the (message, field, rule, detail) constructor the module uses.
py::object exception_classes() {
    py::dict scope;
    py::exec(R"(
class ValidationError(ValueError):
    def __init__(self, message, field, rule, detail):
        super().__init__(f"{message}.{field}: {rule}: {detail}")
        self.rule = rule
class DecodeError(ValueError):
    pass
)", scope);
    return scope;
}

struct Fixture {
    py::object errors = exception_classes();
    py::object validation = errors["ValidationError"];
    py::object decode = errors["DecodeError"];
    embedded::MessageTypes types{fixture_registry(), validation.ptr(), decode.ptr()};
    py::object module = py::module_::import("types").attr("ModuleType")("fixture_messages");

    Fixture() { REQUIRE(types.add_to(module.ptr())); }
    py::object cls(const char* name) { return module.attr(name); }
};

}  // namespace

TEST_SUITE("embedded.messages") {

TEST_CASE("a class encodes to the registry's layout and decodes back") {
    Fixture f;
    py::object text = f.cls("TextMessage")(py::arg("sender") = "alice", py::arg("content") = "hi",
                                           py::arg("timestamp") = 7);
    const auto bytes = text.attr("to_bytes")().cast<std::string>();
    REQUIRE(bytes.size() == 312);
    std::uint16_t sender_length = 0;
    std::memcpy(&sender_length, bytes.data(), 2);
    CHECK(sender_length == 5);
    CHECK(bytes.substr(8, 5) == "alice");
    std::uint64_t timestamp = 0;
    std::memcpy(&timestamp, bytes.data() + 304, 8);
    CHECK(timestamp == 7);

    const auto* schema = fixture_registry()->find("TextMessage");
    py::object decoded = py::reinterpret_steal<py::object>(f.types.decode(
        f.types.find(schema->type_id), {reinterpret_cast<const std::byte*>(bytes.data()), bytes.size()}));
    REQUIRE(decoded);
    CHECK(decoded.equal(text));
    CHECK(decoded.attr("sender").cast<std::string>() == "alice");
}

TEST_CASE("encoding reports the message, the field and the rule") {
    Fixture f;
    py::object every = f.cls("Everything")(py::arg("name") = "");
    std::vector<std::byte> out(fixture_registry()->find("Everything")->size);
    CHECK_FALSE(f.types.encode(every.ptr(), out));
    py::error_already_set error;
    CHECK(error.matches(f.validation));
    CHECK(std::string(py::str(error.value())) == "Everything.name: not_empty: must not be empty");

    py::object wide = f.cls("Everything")(py::arg("name") = "ok", py::arg("a_u16") = 70000);
    CHECK_FALSE(f.types.encode(wide.ptr(), out));
    py::error_already_set range_error;
    CHECK(std::string(py::str(range_error.value())) == "Everything.a_u16: range: 70000 is outside the range of u16");
}

TEST_CASE("a corrupt length from the wire is a DecodeError, not a crash") {
    Fixture f;
    const auto* schema = fixture_registry()->find("TextMessage");
    std::vector<std::byte> payload(schema->size);
    const std::uint16_t too_long = 999;
    std::memcpy(payload.data(), &too_long, 2);
    PyObject* decoded = f.types.decode(f.types.find(schema->type_id), payload);
    CHECK(decoded == nullptr);
    py::error_already_set error;
    CHECK(error.matches(f.decode));
    CHECK(std::string(py::str(error.value())) == "TextMessage.sender: length 999 exceeds the capacity 32");

    std::vector<std::byte> short_payload(10);
    CHECK(f.types.decode(f.types.find(schema->type_id), short_payload) == nullptr);
    py::error_already_set size_error;
    CHECK(std::string(py::str(size_error.value())) == "TextMessage: expected 312 bytes, got 10");
}

TEST_CASE("numeric vectors decode to read-only numpy views of one buffer") {
    Fixture f;
    py::object every = f.cls("Everything")(py::arg("name") = "ok", py::arg("ids") = py::make_tuple(4, 5),
                                           py::arg("samples") = py::make_tuple(1.5));
    py::bytes bytes = every.attr("to_bytes")();
    py::object decoded = f.cls("Everything").attr("from_bytes")(bytes);
    py::object ids = decoded.attr("ids");
    py::object samples = decoded.attr("samples");
    CHECK(py::str(ids.get_type().attr("__name__")).cast<std::string>() == "ndarray");
    CHECK(py::object(ids.attr("base")).is(bytes));
    CHECK(py::object(samples.attr("base")).is(bytes));
    CHECK_FALSE(ids.attr("flags").attr("writeable").cast<bool>());
    CHECK(ids.attr("tolist")().equal(py::list(py::make_tuple(4, 5))));
    CHECK(decoded.equal(every));
}

TEST_CASE("U256 and byte-array elements encode to their bytes at the registry's offsets") {
    auto registry = std::make_shared<schema::Registry>(schema::Registry::load_file(
        std::filesystem::path(MYCELIUM_FIXTURES_DIR) / "contracts" / "valid" / "inhost_types.yaml"));
    py::object errors = exception_classes();
    embedded::MessageTypes types{registry, errors["ValidationError"].ptr(), errors["DecodeError"].ptr()};
    py::object module = py::module_::import("types").attr("ModuleType")("inhost_messages");
    REQUIRE(types.add_to(module.ptr()));
    const auto* schema = registry->find("PoolState");

    py::object pool = module.attr("PoolState")(py::arg("reserve") = 0x0102, py::arg("class_") = 9,
                                               py::arg("hops") = py::make_tuple(py::bytes(std::string(20, 'a'))));
    CHECK(py::isinstance<py::bytes>(pool.attr("reserve")));
    const auto bytes = pool.attr("to_bytes")().cast<std::string>();
    REQUIRE(bytes.size() == schema->size);
    const auto& reserve = *schema->find_field("reserve");
    CHECK(bytes.substr(reserve.offset, 32) == std::string(30, '\0') + "\x01\x02");  // big-endian
    const auto& hops = *schema->find_field("hops");
    CHECK(bytes[hops.offset] == 1);  // the FixedVec's count
    CHECK(bytes.substr(hops.offset + 8, 20) == std::string(20, 'a'));
    CHECK(static_cast<unsigned char>(bytes[schema->find_field("class")->offset]) == 9);

    py::object decoded = py::reinterpret_steal<py::object>(
        types.decode(types.find(schema->type_id), {reinterpret_cast<const std::byte*>(bytes.data()), bytes.size()}));
    REQUIRE(decoded);
    CHECK(decoded.equal(pool));
    CHECK(py::isinstance<py::list>(decoded.attr("siblings")));
    CHECK(py::len(decoded.attr("siblings")) == 6);
}

}  // TEST_SUITE
