#include "mycelium/file_text.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <system_error>

namespace mycelium {

FileText read_file_text(const std::filesystem::path& path, std::size_t max_bytes) {
    std::error_code ec;
    // An ifstream opens a directory without complaint and then reads nothing.
    if (std::filesystem::is_directory(path, ec)) return {{}, FileText::Failure::Directory, {}};
    const std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
    if (!file) return {{}, FileText::Failure::CannotOpen, std::strerror(errno)};
    FileText out;
    char chunk[64 * 1024];
    for (;;) {
        const std::size_t n = std::fread(chunk, 1, sizeof chunk, file.get());
        if (out.text.size() + n > max_bytes) {
            return {{}, FileText::Failure::TooLarge, {}};
        }
        out.text.append(chunk, n);
        if (n < sizeof chunk) break;
    }
    if (std::ferror(file.get())) return {{}, FileText::Failure::CannotRead, std::strerror(errno)};
    return out;
}

}  // namespace mycelium
