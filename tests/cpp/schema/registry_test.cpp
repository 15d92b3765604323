#include <doctest/doctest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
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
    CHECK(text->topic == "chat");  // Mycelium's TOPIC: the domain, lowercased
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

TEST_CASE("an endless contracts file stops at the size limit") {
    // Once, memory grew about 200 MB/s reading /dev/zero.
    try {
        Registry::load_file("/dev/zero");
        FAIL("loaded /dev/zero");
    } catch (const SchemaError& e) {
        CHECK(std::string(e.what()) == "/dev/zero: the contracts file is larger than 16777216 bytes, the limit");
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
    CHECK(result.error().text() == "Everything.name: not_empty: must not be empty");

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
    CHECK(result.error().text() == "Everything.samples: max_length: length 3 is above 2");
    set_len("samples", 2);
    CHECK(r.validate(m, payload));

    payload.pop_back();
    result = r.validate(m, payload);
    REQUIRE_FALSE(result);
    CHECK(result.error().rule == "size");
}

TEST_CASE("Mycelium's syntax: validation lists, U256, byte arrays, vectors of arrays, defaults") {
    const Registry r = parsing_should_succeed(FIXTURES / "valid" / "mycelium_syntax.yaml");
    struct Expect { const char* message; const char* field; std::size_t offset, size, align, capacity; FieldKind kind; };
    // The same numbers rustc gives for Mycelium's repr(C) structs (test_rust_layout.py checks them with rustc).
    const Expect expected[] = {
        {"TokenInfo", "address", 0, 20, 1, 20, FieldKind::Array},
        {"TokenInfo", "ticker", 20, 24, 2, 16, FieldKind::String},
        {"TokenInfo", "precision", 44, 1, 1, 1, FieldKind::Scalar},
        {"TokenInfo", "network", 48, 4, 4, 1, FieldKind::Scalar},
        {"PoolSnapshot", "venue", 20, 2, 2, 1, FieldKind::Scalar},
        {"PoolSnapshot", "reserve_a", 22, 32, 1, 1, FieldKind::U256},
        {"PoolSnapshot", "reserve_b", 54, 32, 1, 1, FieldKind::U256},
        {"PoolSnapshot", "tick", 88, 4, 4, 1, FieldKind::Scalar},
        {"PoolSnapshot", "block", 96, 8, 8, 1, FieldKind::Scalar},
        {"RouteSignal", "hops", 8, 88, 2, 4, FieldKind::Vec},
        {"RouteSignal", "profit", 96, 8, 8, 1, FieldKind::Scalar},
        {"RouteSignal", "gas", 104, 32, 1, 1, FieldKind::U256},
        {"MerkleProof", "siblings", 32, 192, 1, 6, FieldKind::Array},
        {"MerkleProof", "memo", 224, 40, 2, 32, FieldKind::String},
        {"MerkleProof", "flags", 264, 24, 2, 16, FieldKind::Vec},
        {"MerkleProof", "digests", 288, 136, 2, 4, FieldKind::Vec},
        {"MerkleProof", "leaf_index", 424, 2, 2, 1, FieldKind::Scalar},
        {"PaddedQuote", "price", 8, 8, 8, 1, FieldKind::Scalar},
        {"PaddedQuote", "side", 20, 1, 1, 1, FieldKind::Scalar},
    };
    for (const Expect& e : expected) {
        CAPTURE(e.message);
        CAPTURE(e.field);
        const Field& f = field_of(*r.find(e.message), e.field);
        CHECK(f.offset == e.offset);
        CHECK(f.size == e.size);
        CHECK(f.align == e.align);
        CHECK(f.capacity == e.capacity);
        CHECK(f.kind == e.kind);
    }
    CHECK(r.find("TokenInfo")->size == 52);
    CHECK(r.find("PoolSnapshot")->size == 104);
    CHECK(r.find("RouteSignal")->size == 144);
    CHECK(r.find("MerkleProof")->size == 426);
    CHECK(r.find("PaddedQuote")->size == 24);

    const MessageSchema& proof = *r.find("MerkleProof");
    CHECK(field_of(proof, "siblings").element_kind == ElementKind::Bytes);
    CHECK(field_of(proof, "siblings").element_size == 32);
    CHECK(field_of(proof, "digests").element_size == 32);
    CHECK(field_of(proof, "memo").default_capacity);
    CHECK(field_of(proof, "flags").default_capacity);
    CHECK_FALSE(field_of(*r.find("TokenInfo"), "ticker").default_capacity);

    CHECK(r.find("TokenInfo")->topic == "market-data");
    CHECK(r.find("RouteSignal")->topic == "signal");
    CHECK(r.find("MerkleProof")->topic == "proofs");
    CHECK(r.find("RouteSignal")->sensitive);
    CHECK_FALSE(r.find("TokenInfo")->sensitive);
    CHECK(field_of(*r.find("PoolSnapshot"), "tick").optional);

    const Validation& ticker = field_of(*r.find("TokenInfo"), "ticker").validation;
    CHECK(ticker.not_empty);
    CHECK(ticker.no_0x_prefix);
    CHECK(ticker.max_length == 16u);
    const Validation& precision = field_of(*r.find("TokenInfo"), "precision").validation;
    CHECK(precision.min->text == "1");
    CHECK(precision.max->text == "30");
    CHECK(field_of(*r.find("TokenInfo"), "network").validation.unenforced == std::vector<std::string>{"known_chain"});

    REQUIRE(r.version());
    CHECK(r.version()->id == 0x5445535u);
    CHECK(r.version()->version == 3);
    CHECK(r.version()->min_compatible == std::uint16_t{2});

    std::vector<std::string> warnings;
    for (const SchemaWarning& w : r.warnings()) warnings.push_back(w.text);
    const std::string file = (FIXTURES / "valid" / "mycelium_syntax.yaml").string();
    CHECK(warnings == std::vector<std::string>{
        file + ":48: message 'TokenInfo', field 'network': validation rule 'known_chain' is not enforced by this host",
        file + ":64: message 'PoolSnapshot', field 'venue': validation rule 'known_venue' is not enforced by this host",
        file + ":81: message 'PoolSnapshot', field 'block': validation rule 'monotonic' is not enforced by this host",
        file + ":114: message 'MerkleProof': tlv_type 50001 is in tag_ranges.experimental (50000-65535): it may "
               "change without a version bump",
    });
}

TEST_CASE("names Python or C++ reserve get a trailing underscore in generated code") {
    const Registry r = parsing_should_succeed(FIXTURES / "valid" / "names.yaml");
    const MessageSchema& lesson = *r.find("Lesson");
    CHECK(field_of(lesson, "class").python_name == "class_");
    CHECK(field_of(lesson, "class").cpp_name == "class_");
    CHECK(field_of(lesson, "from").python_name == "from_");
    CHECK(field_of(lesson, "from").cpp_name == "from");
    CHECK(field_of(lesson, "TYPE_ID").python_name == "TYPE_ID_");
    CHECK(field_of(lesson, "TYPE_ID").cpp_name == "TYPE_ID_");
    CHECK(field_of(lesson, "errno").python_name == "errno");
    CHECK(field_of(lesson, "errno").cpp_name == "errno_");
    CHECK(r.find("None")->python_name == "None_");
    CHECK(r.find("None")->cpp_name == "None");
}

TEST_CASE("an unknown key is a warning with a suggestion, and an error with strict") {
    const char* yaml =
        "messages:\n"
        "  Order:\n"
        "    tlv_type: 1000\n"
        "    descripton: typo\n"
        "    fields:\n"
        "      qty:\n"
        "        type: u64\n"
        "        validaton: []\n"
        "extras: 1\n";
    const Registry r = Registry::load_string(yaml, "keys.yaml");
    REQUIRE(r.warnings().size() == 3);
    CHECK(r.warnings()[0].text == "keys.yaml:9: unknown key 'extras'");
    CHECK(r.warnings()[1].text == "keys.yaml:4: message 'Order': unknown key 'descripton', did you mean 'description'?");
    CHECK(r.warnings()[2].text ==
          "keys.yaml:8: message 'Order', field 'qty': unknown key 'validaton', did you mean 'validation'?");
    CHECK(r.warnings()[1].line == 4);
    try {
        Registry::load_string(yaml, "keys.yaml", LoadOptions{.strict = true});
        FAIL("strict accepted an unknown key");
    } catch (const SchemaError& e) {
        CHECK(std::string(e.what()) == "keys.yaml:9: unknown key 'extras' (--strict)");
    }
}

TEST_CASE("the seven rules are enforced with the message, the field and the rule") {
    const Registry r = parsing_should_succeed(FIXTURES / "valid" / "mycelium_syntax.yaml");
    const MessageSchema& token = *r.find("TokenInfo");
    std::vector<std::byte> payload(token.size);
    const auto put = [&](const char* field, std::size_t at, const void* data, std::size_t n) {
        std::memcpy(payload.data() + field_of(token, field).offset + at, data, n);
    };
    const auto set_ticker = [&](const char* s) {
        const auto n = static_cast<std::uint16_t>(std::strlen(s));
        put("ticker", 0, &n, 2);
        put("ticker", FIXED_HEADER_SIZE, s, n);
    };
    const auto failure_of = [&](const MessageSchema& m) {
        auto result = r.validate(m, payload);
        REQUIRE_FALSE(result);
        return result.error();
    };

    CHECK(failure_of(token).text() == "TokenInfo.address: not_zero: must not be zero");
    const std::uint8_t one = 1;
    put("address", 19, &one, 1);
    CHECK(failure_of(token).text() == "TokenInfo.ticker: not_empty: must not be empty");
    set_ticker("0xdeadbeef");
    CHECK(failure_of(token).text() == "TokenInfo.ticker: no_0x_prefix: '0xdeadbeef' starts with 0x");
    set_ticker("WETH");
    CHECK(failure_of(token).text() == "TokenInfo.precision: min: value 0 is below 1");
    const std::uint8_t too_many = 31;
    put("precision", 0, &too_many, 1);
    CHECK(failure_of(token).text() == "TokenInfo.precision: max: value 31 is above 30");
    const std::uint8_t eighteen = 18;
    put("precision", 0, &eighteen, 1);
    CHECK(r.validate(token, payload));

    // A sensitive message's values stay out of the text.
    const MessageSchema& route = *r.find("RouteSignal");
    payload.assign(route.size, std::byte{0});
    const std::uint16_t two = 2;
    std::memcpy(payload.data() + field_of(route, "hops").offset, &two, 2);
    const double loss = -5.5;
    std::memcpy(payload.data() + field_of(route, "profit").offset, &loss, 8);
    CHECK(failure_of(route).text() == "RouteSignal.profit: min: value is below 0");
    const double gain = 1.0;
    std::memcpy(payload.data() + field_of(route, "profit").offset, &gain, 8);
    CHECK(failure_of(route).text() == "RouteSignal.gas: not_zero: must not be zero");
    payload[field_of(route, "gas").offset + 31] = std::byte{1};
    CHECK(r.validate(route, payload));
    const std::uint16_t one_hop = 1;
    std::memcpy(payload.data() + field_of(route, "hops").offset, &one_hop, 2);
    CHECK(failure_of(route).text() == "RouteSignal.hops: min_length: length 1 is below 2");
}

TEST_CASE("a message with no string, no vector and no rule is plain: its size is all validate checks") {
    const Registry r = Registry::load_string(
        "messages:\n"
        "  Tick: {tlv_type: 1000, fields: {price: f64, qty: u32, flags: \"[u8; 4]\", ok: bool}}\n"
        "  Named: {tlv_type: 1001, fields: {price: f64, name: {type: String, max_length: 8}}}\n"
        "  Items: {tlv_type: 1002, fields: {ids: {type: \"Vec<u32>\", max_length: 4}}}\n"
        "  Ruled: {tlv_type: 1003, fields: {qty: {type: u32, validation: [{not_zero: true}]}}}\n",
        "plain.yaml");
    CHECK(r.find("Tick")->plain);
    CHECK_FALSE(r.find("Named")->plain);
    CHECK_FALSE(r.find("Items")->plain);
    CHECK_FALSE(r.find("Ruled")->plain);
    const MessageSchema& tick = *r.find("Tick");
    CHECK(r.validate(tick, std::vector<std::byte>(tick.size, std::byte{0xff})));
    CHECK_FALSE(r.validate(tick, std::vector<std::byte>(tick.size + 1)));
    const MessageSchema& ruled = *r.find("Ruled");
    CHECK_FALSE(r.validate(ruled, std::vector<std::byte>(ruled.size)));
}

TEST_CASE("bounds apply to each element of arrays and vectors, NaN included") {
    const char* yaml =
        "messages:\n"
        "  Curve:\n"
        "    tlv_type: 1000\n"
        "    fields:\n"
        "      points:\n"
        "        type: Vec<f64>\n"
        "        validation:\n"
        "          - max_length: 3\n"
        "          - min: -1.5\n"
        "          - max: 1e3\n";
    const Registry r = Registry::load_string(yaml, "curve.yaml");
    const MessageSchema& m = *r.find("Curve");
    std::vector<std::byte> payload(m.size);
    const std::uint16_t count = 2;
    std::memcpy(payload.data(), &count, 2);
    const double values[] = {0.5, -2.0, 9999.0};  // the third is past the count: not checked
    std::memcpy(payload.data() + FIXED_HEADER_SIZE, values, sizeof values);
    auto result = r.validate(m, payload);
    REQUIRE_FALSE(result);
    CHECK(result.error().text() == "Curve.points: min: element 1 -2 is below -1.5");
    const double nan = std::numeric_limits<double>::quiet_NaN();
    std::memcpy(payload.data() + FIXED_HEADER_SIZE + 8, &nan, 8);
    result = r.validate(m, payload);
    REQUIRE_FALSE(result);
    CHECK(result.error().text() == "Curve.points: min: element 1 nan cannot be compared with -1.5");
    const double fine = 1000.0;
    std::memcpy(payload.data() + FIXED_HEADER_SIZE + 8, &fine, 8);
    CHECK(r.validate(m, payload));
}

TEST_CASE("a String or Vec without max_length gets Mycelium's default capacity") {
    const char* yaml =
        "messages:\n"
        "  Defaults:\n"
        "    tlv_type: 1000\n"
        "    fields:\n"
        "      text: String\n"
        "      raw: Vec<u8>\n"
        "      ids: Vec<[u8; 20]>\n"
        "      prices: Vec<f64>\n";
    const Registry r = Registry::load_string(yaml, "defaults.yaml");
    const MessageSchema& m = *r.find("Defaults");
    CHECK(field_of(m, "text").capacity == 32);
    CHECK(field_of(m, "raw").capacity == 16);
    CHECK(field_of(m, "ids").capacity == 4);
    CHECK(field_of(m, "prices").capacity == 4);
    for (const Field& f : m.fields) CHECK(f.default_capacity);
}

TEST_CASE("the bundled demo contracts load") {
    const Registry r = parsing_should_succeed(fs::path(MYCELIUM_FIXTURES_DIR) / ".." / ".." / "scripts" /
                                              "contracts.yaml");
    CHECK(r.find("TradeTick") != nullptr);
    CHECK(r.find("TextMessage")->size == 312);
}

}  // TEST_SUITE
