"""The SDK's one door to `mycelium_native`, the module built into mycelium-host.

Importing this module outside mycelium-host raises ImportError: the rest of the SDK
imports it in a `try` and takes the out-of-process path when it fails. The test is
"is `mycelium_native` a built-in module of this interpreter", not "can it be imported":
Mycelium's own PyO3 extension had the same name, and a copy installed in site-packages
must not make a plain `python3` process believe it runs inside the host.
"""

import sys

if "mycelium_native" not in sys.builtin_module_names:
    raise ImportError("mycelium_native is built into mycelium-host and exists only inside it; "
                      "outside the host the SDK connects over a socket (see docs/python-sdk.md)")

import mycelium_native as native  # noqa: E402 - only after the check above

__all__ = ["native"]
