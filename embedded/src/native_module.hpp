#pragma once
// The mycelium_native module registers itself in CPython's inittab from a static
// initialiser. Its translation unit would be dropped from the static library if nothing
// referenced it; the host calls this to keep it.

namespace mycelium::embedded {
void ensure_native_module_linked();
}
