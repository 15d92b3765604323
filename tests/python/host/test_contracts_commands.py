"""What the commands do with contracts in Mycelium's syntax: `schema` shows the rules,
defaults and schema section; `--strict` turns unknown keys into errors on every command
that loads contracts; `codegen --check` finds drift both ways; text from a contracts file
can never break out of the generated C++ (the Python side: test_codegen.py)."""

import json
import subprocess

import pytest

HOSTILE_DESCRIPTION = 'ends the comment */ and the line\\\n#error injected "quote" \\'


@pytest.fixture
def mycelium_syntax(repo):
    return repo / "tests" / "fixtures" / "contracts" / "valid" / "mycelium_syntax.yaml"


def test_schema_table_shows_rules_defaults_and_the_schema_section(run_host, mycelium_syntax):
    result = run_host("schema", "--contracts", mycelium_syntax)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "schema    id 0x05445535, version 3, min_compatible 2" in out
    assert "TokenInfo (type 1101, topic market-data, 52 bytes, align 4)" in out
    assert "ticker               String                   not_empty, max_length 16, no_0x_prefix" in out
    assert "network              u32                      not enforced: known_chain" in out
    assert "memo                 String (capacity 32: Mycelium's default)" in out
    assert "RouteSignal (type 1120, topic signal, 144 bytes, align 8, sensitive: values stay out of logs)" in out
    # Warnings go to stderr, one per line, each naming the file and the line.
    assert f"mycelium-host: warning: {mycelium_syntax}:48: message 'TokenInfo', field 'network': validation rule " \
           "'known_chain' is not enforced by this host" in result.stderr.splitlines()


def test_schema_json_has_rules_and_versions(run_host, mycelium_syntax):
    result = run_host("schema", "--contracts", mycelium_syntax, "--json")
    doc = json.loads(result.stdout)
    assert doc["schema"] == {"id": 0x5445535, "version": 3, "min_compatible": 2}
    assert len(doc["warnings"]) == 4
    token = next(m for m in doc["messages"] if m["name"] == "TokenInfo")
    precision = next(f for f in token["fields"] if f["name"] == "precision")
    assert precision["rules"] == {"min": 1, "max": 30}
    network = next(f for f in token["fields"] if f["name"] == "network")
    assert network["unenforced_rules"] == ["known_chain"]
    proof = next(m for m in doc["messages"] if m["name"] == "MerkleProof")
    memo = next(f for f in proof["fields"] if f["name"] == "memo")
    assert (memo["capacity"], memo["default_capacity"]) == (32, True)
    route = next(m for m in doc["messages"] if m["name"] == "RouteSignal")
    assert route["sensitive"] is True


UNKNOWN_KEY = """messages:
  Order:
    tlv_type: 1000
    domian: Orders
    fields:
      qty: u64
"""


@pytest.mark.parametrize("command", [["schema"], ["codegen", "--python", "{out}"],
                                     ["pub", "--connect", "unix:{out}.sock", "--type", "Order", "--json", "{{}}"],
                                     ["tap", "--connect", "unix:{out}.sock"], ["--duration", "0.1", "--script", "{script}"]])
def test_strict_makes_an_unknown_key_an_error_on_every_command(run_host, tmp_path, command):
    contracts = tmp_path / "contracts.yaml"
    contracts.write_text(UNKNOWN_KEY)
    script = tmp_path / "idle.py"
    script.write_text("")
    args = [a.format(out=tmp_path / "out.py", script=script) for a in command]
    expected = f"{contracts}:4: message 'Order': unknown key 'domian', did you mean 'domain'?"
    strict = run_host(*args, "--contracts", contracts, "--strict")
    assert strict.returncode == 2, strict.stderr
    assert f"error: {expected} (--strict)" in strict.stderr
    if command[0] in ("schema", "codegen"):
        lenient = run_host(*args, "--contracts", contracts)
        assert lenient.returncode == 0, lenient.stderr
        assert f"mycelium-host: warning: {expected}" in lenient.stderr


def test_run_logs_contract_warnings(run_host, tmp_path):
    contracts = tmp_path / "contracts.yaml"
    contracts.write_text(UNKNOWN_KEY)
    script = tmp_path / "idle.py"
    script.write_text("")
    result = run_host("--contracts", contracts, "--script", script, "--duration", "0.1")
    assert result.returncode == 0, result.stderr
    assert f"{contracts}:4: message 'Order': unknown key 'domian', did you mean 'domain'?" in result.stderr


def test_codegen_check_passes_on_current_files_and_writes_nothing(run_host, mycelium_syntax, tmp_path):
    cpp, py = tmp_path / "m.hpp", tmp_path / "m.py"
    assert run_host("codegen", "--contracts", mycelium_syntax, "--cpp", cpp, "--python", py).returncode == 0
    before = (cpp.stat().st_mtime_ns, py.stat().st_mtime_ns)
    result = run_host("codegen", "--contracts", mycelium_syntax, "--cpp", cpp, "--python", py, "--check")
    assert result.returncode == 0, result.stderr
    assert (cpp.stat().st_mtime_ns, py.stat().st_mtime_ns) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.hpp", "m.py"]


def test_codegen_check_names_the_first_file_and_line_that_differ(run_host, mycelium_syntax, tmp_path):
    cpp, py = tmp_path / "m.hpp", tmp_path / "m.py"
    assert run_host("codegen", "--contracts", mycelium_syntax, "--cpp", cpp, "--python", py).returncode == 0
    lines = py.read_text().splitlines(keepends=True)
    lines[6] = "# edited by hand\n"
    py.write_text("".join(lines))
    edited = py.read_text()
    result = run_host("codegen", "--contracts", mycelium_syntax, "--cpp", cpp, "--python", py, "--check")
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1].startswith(
        f"mycelium-host: {py}:7: differs from what {mycelium_syntax} generates now")
    assert py.read_text() == edited  # nothing written

    cpp.unlink()
    result = run_host("codegen", "--contracts", mycelium_syntax, "--cpp", cpp, "--check")
    assert result.returncode == 1
    assert f"{cpp}:1: missing" in result.stderr
    assert not cpp.exists()


def test_committed_generated_files_are_current(run_host, repo):
    contracts = repo / "scripts" / "contracts.yaml"
    result = run_host("codegen", "--contracts", contracts, "--cpp", repo / "host" / "src" / "demo" / "demo_messages.hpp",
                      "--namespace", "mycelium::demo", "--check")
    assert result.returncode == 0, result.stderr
    result = run_host("codegen", "--contracts", contracts, "--python", repo / "scripts" / "examples" / "demo_messages.py",
                      "--check")
    assert result.returncode == 0, result.stderr


def test_text_from_the_contracts_cannot_break_the_cpp_header(run_host, repo, tmp_path):
    """Hostile descriptions, keyword names, and a field named like the padding members."""
    contracts = tmp_path / "hostile.yaml"
    contracts.write_text(f"""messages:
  None:
    tlv_type: 1000
    domain: "Mixed\\\\Case\\"Domain\\n"
    description: {json.dumps(HOSTILE_DESCRIPTION)}
    fields:
      class:
        type: U256
        description: {json.dumps(HOSTILE_DESCRIPTION)}
      errno:
        type: "Vec<[u8; 20]>"
      siblings: "[[u8; 32]; 6]"
      tag: u8
      padding_0_: u64
""")
    header = tmp_path / "hostile.hpp"
    result = run_host("codegen", "--contracts", contracts, "--cpp", header)
    assert result.returncode == 0, result.stderr
    text = header.read_text()
    assert all(line.lstrip().startswith("///") for line in text.splitlines() if "injected" in line)
    source = tmp_path / "use.cpp"
    source.write_text('#include "hostile.hpp"\n'
                      "int main() { mycelium::messages::None m{}; m.class_[0] = 1; m.errno_.push_back({}); m.padding_0_ = 7;"
                      " return m.siblings.size() == 6 && mycelium::messages::None::TOPIC.size() > 0 ? 0 : 1; }\n")
    compiled = subprocess.run(["g++", "-std=c++20", "-Wall", "-Werror", "-I", str(repo / "host" / "include"),
                               "-I", str(tmp_path), "-o", str(tmp_path / "use"), str(source)],
                              capture_output=True, text=True, timeout=120)
    assert compiled.returncode == 0, compiled.stderr
    assert subprocess.run([str(tmp_path / "use")], timeout=30).returncode == 0
