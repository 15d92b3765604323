# Script mode helper of mycelium_embed_file: writes INPUT's bytes as a C++ array.
file(READ ${INPUT} hex HEX)
string(LENGTH "${hex}" hex_length)
math(EXPR size "${hex_length} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
file(WRITE ${OUTPUT}
"// Generated from ${INPUT}; do not edit.\n#include <string_view>\n"
"namespace mycelium::embedded_files {\n"
"static const unsigned char ${SYMBOL}_bytes[] = {${bytes} 0x00};\n"
"extern const std::string_view ${SYMBOL}(reinterpret_cast<const char*>(${SYMBOL}_bytes), ${size});\n"
"}\n")
