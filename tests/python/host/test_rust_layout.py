"""Layouts against the real thing: for each fixture, a Rust program declares the structs
Mycelium's codegen would generate (#[repr(C)], FixedStr/FixedVec as in its fixed_vec.rs,
U256 as [u8; 32]) and prints what rustc laid out; `mycelium-host schema --json` must
agree on every size, alignment and offset."""

import json
import os
import re
import shutil
import subprocess

import pytest

FIXTURES = ["mycelium_syntax.yaml", "all_types.yaml"]

RUST_PRELUDE = """#![allow(dead_code, non_snake_case, non_camel_case_types)]
use std::mem::{align_of, size_of, MaybeUninit};

#[repr(C)]
#[derive(Clone, Copy)]
pub struct FixedStr<const N: usize> { len: u16, _padding: [u8; 6], data: [u8; N] }

#[repr(C)]
#[derive(Clone, Copy)]
pub struct FixedVec<T: Copy, const N: usize> { count: u16, _padding: [u8; 6], elements: [T; N] }
"""


def rustc():
    """Debian's rustc (the one CI installs) before any other on PATH."""
    return "/usr/bin/rustc" if os.path.exists("/usr/bin/rustc") else shutil.which("rustc")


def rust_type(type_text, capacity):
    text = type_text.replace(" ", "")
    if text == "U256":
        return "[u8; 32]"
    if text == "String":
        return f"FixedStr<{capacity}>"
    vec = re.fullmatch(r"Vec<(.+)>", text)
    if vec:
        return f"FixedVec<{rust_type(vec.group(1), 1)}, {capacity}>"
    array = re.fullmatch(r"\[(.+);(\d+)\]", text)
    if array:
        return f"[{rust_type(array.group(1), 1)}; {array.group(2)}]"
    return text  # u8 ... f64, bool: the same names in Rust


def rust_program(messages):
    out = [RUST_PRELUDE]
    for m in messages:
        fields = "".join(f"    pub r#{f['name']}: {rust_type(f['type'], f['capacity'])},\n" for f in m["fields"])
        out.append(f"#[repr(C)]\npub struct {m['name']} {{\n{fields}}}\n")
    out.append("fn main() {")
    for m in messages:
        name = m["name"]
        out.append(f'    println!("{name} {{}} {{}}", size_of::<{name}>(), align_of::<{name}>());')
        out.append(f"    let u = MaybeUninit::<{name}>::uninit();\n    let p = u.as_ptr();")
        for f in m["fields"]:
            out.append(f'    println!("{name}.{f["name"]} {{}}", unsafe {{ std::ptr::addr_of!((*p).r#{f["name"]}) '
                       f"as usize - p as usize }});")
    out.append("}")
    return "\n".join(out)


@pytest.mark.parametrize("fixture", FIXTURES)
def test_layouts_are_rustc_repr_c(fixture, run_host, repo, tmp_path):
    compiler = rustc()
    if compiler is None:
        pytest.skip("rustc is not installed (scripts/setup.sh test installs Debian's rustc)")
    result = run_host("schema", "--contracts", repo / "tests" / "fixtures" / "contracts" / "valid" / fixture, "--json")
    assert result.returncode == 0, result.stderr
    messages = json.loads(result.stdout)["messages"]
    source = tmp_path / "layout.rs"
    source.write_text(rust_program(messages))
    build = subprocess.run([compiler, "--edition", "2021", "-O", "-o", str(tmp_path / "layout"), str(source)],
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr
    printed = subprocess.run([str(tmp_path / "layout")], capture_output=True, text=True, timeout=30,
                             check=True).stdout.splitlines()
    expected = []
    for m in messages:
        expected.append(f"{m['name']} {m['size']} {m['align']}")
        expected.extend(f"{m['name']}.{f['name']} {f['offset']}" for f in m["fields"])
    assert printed == expected
