#pragma once
/// Minimal JSON text helpers for the command line's machine-readable output.
/// Thread safety: pure functions.

#include <cstdio>
#include <string>
#include <string_view>

namespace mycelium {

/// `s` as a JSON string literal, quotes included; control characters are \u-escaped.
inline std::string json_quote(std::string_view s) {
    std::string out = "\"";
    for (char c : s) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (static_cast<unsigned char>(c) < 0x20) {
                    char buf[8];
                    std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
                    out += buf;
                } else {
                    out.push_back(c);
                }
        }
    }
    return out + "\"";
}

}  // namespace mycelium
