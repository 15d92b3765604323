// mycelium/utf8.hpp: the one definition of valid UTF-8 that validation, the JSON tools,
// the supervisor's log lines and METRICS frames share.

#include <doctest/doctest.h>

#include <string>

#include "mycelium/utf8.hpp"

using namespace mycelium;

TEST_SUITE("schema") {

TEST_CASE("the eight-byte ASCII scan hands every non-ASCII byte to the full check, wherever it is") {
    for (std::size_t at = 0; at < 24; ++at) {
        CAPTURE(at);
        std::string text(24, 'a');
        text[at] = '\xff';
        CHECK_FALSE(utf8::is_valid(text));
        text.replace(at, 1, "\xc3\xa9");  // a valid two-byte sequence across any word boundary
        CHECK(utf8::is_valid(text));
        text.resize(at + 1);  // cut inside it
        CHECK_FALSE(utf8::is_valid(text));
    }
    CHECK(utf8::is_valid(std::string(64, 'z')));
}

TEST_CASE("valid UTF-8 excludes overlong forms, surrogates and values past U+10FFFF") {
    CHECK(utf8::is_valid(""));
    CHECK(utf8::is_valid("AAPL"));
    CHECK(utf8::is_valid("\xc3\xa9"));          // é
    CHECK(utf8::is_valid("\xf0\x9f\x98\x80"));  // U+1F600
    CHECK_FALSE(utf8::is_valid("\xc0\xaf"));    // overlong '/'
    CHECK_FALSE(utf8::is_valid("\xed\xa0\x80"));  // a surrogate
    CHECK_FALSE(utf8::is_valid("\xf4\x90\x80\x80"));  // past U+10FFFF
    CHECK_FALSE(utf8::is_valid("\xc3"));        // cut short
    CHECK_FALSE(utf8::is_valid("\xff"));
}

TEST_CASE("sanitize replaces each byte that starts no valid sequence with U+FFFD") {
    CHECK(utf8::sanitize("ok \xc3\xa9") == "ok \xc3\xa9");
    CHECK(utf8::sanitize("a\xffz") == "a\xef\xbf\xbdz");
    CHECK(utf8::sanitize("\xc0\xaf") == "\xef\xbf\xbd\xef\xbf\xbd");
    CHECK(utf8::sanitize("\xe2\x82") == "\xef\xbf\xbd\xef\xbf\xbd");
}

}  // TEST_SUITE
