#include <doctest/doctest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "mycelium/schema.hpp"

using namespace mycelium::schema;
namespace fs = std::filesystem;

namespace {

const fs::path FIXTURES = fs::path(MYCELIUM_FIXTURES_DIR) / "contracts";

Registry parsing_should_succeed(const fs::path& path) {
    try {
        return Registry::load_file(path);
    } catch (const SchemaError& e) {
        FAIL("unexpected SchemaError: " << e.what());
        throw;
    }
}

/// Each invalid fixture begins with "# error: <message>", {file} standing for its path.
std::string expected_error(const fs::path& path) {
    std::ifstream in(path);
    std::string first;
    std::getline(in, first);
    const std::string prefix = "# error: ";
    REQUIRE(first.rfind(prefix, 0) == 0);
    std::string message = first.substr(prefix.size());
    const auto at = message.find("{file}");
    if (at != std::string::npos) message.replace(at, 6, path.string());
    return message;
}

const Field& field_of(const MessageSchema& m, const char* name) {
    const Field* f = m.find_field(name);
    REQUIRE(f != nullptr);
    return *f;
}

}  // namespace

TEST_SUITE("schema") {

TEST_CASE("Mycelium's example messages have Mycelium's layout") {
    const Registry r = parsing_should_succeed(FIXTURES / "valid" / "all_types.yaml");
    const MessageSchema* text = r.find("TextMessage");
    REQUIRE(text != nullptr);
    CHECK(text->type_id == 1001);
    CHECK(text->size == 312);
    CHECK(field_of(*text, "sender").offset == 0);
    CHECK(field_of(*text, "content").offset == 40);
    CHECK(field_of(*text, "timestamp").offset == 304);
    CHECK(text->topic == "text_message");
    CHECK(text->domain == "chat");

    const MessageSchema* counter = r.find(std::uint16_t{1002});
    REQUIRE(counter != nullptr);
    CHECK(counter->name == "CounterUpdate");
    CHECK(counter->size == 16);
    CHECK(field_of(*counter, "value").offset == 8);
}

TEST_CASE("every field type follows natural C alignment with explicit padding") {
    const Registry r = parsing_should_succeed(FIXTURES / "valid" / "all_types.yaml");
    const MessageSchema& m = *r.find("Everything");
    CHECK(m.topic == "everything.v1");
    struct Expect { const char* name; std::size_t offset, size, align; FieldKind kind; };
    const Expect expected[] = {
        {"a_u8", 0, 1, 1, FieldKind::Scalar},    {"a_u16", 2, 2, 2, FieldKind::Scalar},
        {"a_u32", 4, 4, 4, FieldKind::Scalar},   {"a_u64", 8, 8, 8, FieldKind::Scalar},
        {"a_i8", 16, 1, 1, FieldKind::Scalar},   {"a_i16", 18, 2, 2, FieldKind::Scalar},
        {"a_i32", 20, 4, 4, FieldKind::Scalar},  {"a_i64", 24, 8, 8, FieldKind::Scalar},
        {"a_f32", 32, 4, 4, FieldKind::Scalar},  {"a_f64", 40, 8, 8, FieldKind::Scalar},
        {"a_bool", 48, 1, 1, FieldKind::Scalar}, {"name", 50, 14, 2, FieldKind::String},
        {"raw", 64, 3, 1, FieldKind::Array},     {"floats", 68, 12, 4, FieldKind::Array},
        {"ids", 80, 20, 4, FieldKind::Vec},      {"samples", 104, 24, 8, FieldKind::Vec},
        {"flag", 128, 1, 1, FieldKind::Scalar},
    };
    REQUIRE(m.fields.size() == std::size(expected));
    for (std::size_t i = 0; i < m.fields.size(); ++i) {
        CAPTURE(m.fields[i].name);
        CHECK(m.fields[i].name == expected[i].name);
        CHECK(m.fields[i].offset == expected[i].offset);
        CHECK(m.fields[i].size == expected[i].size);
        CHECK(m.fields[i].align == expected[i].align);
        CHECK(m.fields[i].kind == expected[i].kind);
    }
    CHECK(m.align == 8);
    CHECK(m.size == 136);  // 129 rounded up to the 8-byte alignment
    CHECK(field_of(m, "samples").capacity == 2);  // capacity taken from validation.max_length
}

TEST_CASE("the digest is the SHA-256 of the file's bytes") {
    CHECK(to_hex(sha256("abc")) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const auto path = FIXTURES / "valid" / "all_types.yaml";
    std::ifstream in(path, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const Registry r = Registry::load_file(path);
    CHECK(r.digest() == sha256(bytes));
    CHECK(r.digest_hex().size() == 64);
}

TEST_CASE("every invalid contracts fixture fails with its exact message") {
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(FIXTURES / "invalid")) files.push_back(entry.path());
    REQUIRE(files.size() >= 10);
    for (const auto& path : files) {
        CAPTURE(path.filename().string());
        const std::string expected = expected_error(path);
        try {
            Registry::load_file(path);
            FAIL("loaded without error");
        } catch (const SchemaError& e) {
            CHECK(std::string(e.what()) == expected);
        }
    }
}

TEST_CASE("a missing file names the path") {
    try {
        Registry::load_file("/nonexistent/contracts.yaml");
        FAIL("loaded a missing file");
    } catch (const SchemaError& e) {
        CHECK(std::string(e.what()) == "/nonexistent/contracts.yaml: cannot open the contracts file");
    }
}

TEST_CASE("a lower payload limit rejects messages that fit the default") {
    const char* yaml = "messages:\n  Big:\n    tlv_type: 1000\n    fields:\n      data: \"[u8; 100]\"\n";
    CHECK_NOTHROW(Registry::load_string(yaml, "big.yaml"));
    try {
        Registry::load_string(yaml, "big.yaml", LoadOptions{64});
        FAIL("accepted a message over the limit");
    } catch (const SchemaError& e) {
        CHECK(std::string(e.what()) ==
              "big.yaml:5: message 'Big', field 'data': the message grows to 100 bytes here, over the "
              "payload limit of 64 bytes");
        CHECK(e.message_name() == "Big");
        CHECK(e.field_name() == "data");
        CHECK(e.line() == 5);
    }
}

TEST_CASE("validation names the message, the field and the rule") {
    const Registry r = parsing_should_succeed(FIXTURES / "valid" / "all_types.yaml");
    const MessageSchema& m = *r.find("Everything");
    std::vector<std::byte> payload(m.size);
    const auto set_len = [&](const char* field, std::uint16_t n) {
        std::memcpy(payload.data() + field_of(m, field).offset, &n, 2);
    };
    const auto set_text = [&](const char* field, const char* s) {
        set_len(field, static_cast<std::uint16_t>(std::strlen(s)));
        std::memcpy(payload.data() + field_of(m, field).offset + FIXED_HEADER_SIZE, s, std::strlen(s));
    };

    auto result = r.validate(m, payload);
    REQUIRE_FALSE(result);
    CHECK(result.error().rule == "not_empty");
    CHECK(result.error().field == "name");
    CHECK(result.error().detail == "Everything.name: not_empty: must not be empty");

    set_text("name", "a");
    result = r.validate(m, payload);
    REQUIRE_FALSE(result);
    CHECK(result.error().rule == "min_length");

    set_text("name", "abc");
    CHECK(r.validate(m, payload));

    set_len("name", 6);
    result = r.validate(m, payload);
    REQUIRE_FALSE(result);
    CHECK(result.error().rule == "max_length");

    set_text("name", "a\xff");
    result = r.validate(m, payload);
    REQUIRE_FALSE(result);
    CHECK(result.error().rule == "utf8");

    set_text("name", "h\xc3\xa9");  // "hé"
    CHECK(r.validate(m, payload));

    set_len("samples", 3);
    result = r.validate(m, payload);
    REQUIRE_FALSE(result);
    CHECK(result.error().detail == "Everything.samples: max_length: length 3 is above 2");
    set_len("samples", 2);
    CHECK(r.validate(m, payload));

    payload.pop_back();
    result = r.validate(m, payload);
    REQUIRE_FALSE(result);
    CHECK(result.error().rule == "size");
}

TEST_CASE("the bundled demo contracts load") {
    const Registry r = parsing_should_succeed(fs::path(MYCELIUM_FIXTURES_DIR) / ".." / ".." / "scripts" /
                                              "contracts.yaml");
    CHECK(r.find("TradeTick") != nullptr);
    CHECK(r.find("TextMessage")->size == 312);
}

}  // TEST_SUITE
