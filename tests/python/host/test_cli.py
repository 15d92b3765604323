"""The command line: help, version, subcommands, and one-line errors with exit 2."""

import json

import pytest


def test_help_lists_the_subcommands(run_host):
    result = run_host("--help")
    assert result.returncode == 0
    for command in ("schema", "codegen"):
        assert command in result.stdout


def test_version(run_host):
    result = run_host("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("mycelium-host ")


@pytest.mark.parametrize("args", [["--no-such-flag"], ["schema", "--contracts"], ["frobnicate"]])
def test_bad_flags_give_one_line_and_exit_2(run_host, args):
    result = run_host(*args)
    assert result.returncode == 2
    assert result.stderr.startswith("mycelium-host: error: ")
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("args", [
    ["--handshake-timeout", "1e10"],  # once -9223372036854775808 ms: every client dropped
    ["--handshake-timeout", "nan"],
    ["--shutdown-timeout", "inf"],
    ["--log-interval", "-1"],
    ["--duration", "1e300"],
    ["--duration", "5s"],
    ["tap", "--connect", "unix:/nonexistent", "--timeout", "nan"],
])
def test_durations_out_of_range_are_refused_by_name(run_host, args):
    result = run_host(*args)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("mycelium-host: error: ")
    assert len(result.stderr.strip().splitlines()) == 1
    assert args[-2] in result.stderr and "a number of seconds above 0 and at most" in result.stderr


@pytest.mark.parametrize("value", ["nan", "-1", "1e10", "inf"])
def test_an_idle_timeout_out_of_range_is_refused_and_0_turns_it_off(run_host, value):
    result = run_host("--idle-timeout", value, "--demo-feed", "10", "--duration", "0.1")
    assert result.returncode == 2, result.stderr
    assert "--idle-timeout" in result.stderr and "a number of seconds from 0 and at most" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    off = run_host("--idle-timeout", "0", "--demo-feed", "10", "--duration", "0.1")
    assert off.returncode == 0, off.stderr


@pytest.mark.parametrize("args, text", [
    (["--shm", "--demo-feed", "10"], "--shm offers shared memory to the clients of a Unix listener"),
    (["--shm", "--listen", "tcp:127.0.0.1:0"], "add --listen unix:PATH"),
    (["--listen", "unix:/tmp/never.sock", "--shm", "--shm-ring-bytes", "1000"], "must be a power of two from 4096"),
    (["--listen", "unix:/tmp/never.sock", "--shm", "--shm-ring-bytes", "2048"], "got 2048"),
    (["--listen", "unix:/tmp/never.sock", "--shm", "--shm-ring-bytes", "lots"], "'lots' is not a number of bytes"),
])
def test_bad_shared_memory_flags_name_the_flag(run_host, args, text):
    result = run_host(*args)
    assert result.returncode == 2
    assert result.stderr.startswith("mycelium-host: error: ")
    assert text in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("args", [["--contracts", "/dev/zero", "--demo-feed", "10"], ["schema", "--contracts", "/dev/zero"],
                                  ["check", "--topology", "/dev/zero"]])
def test_an_endless_configuration_file_stops_at_the_limit(run_host, args):
    result = run_host(*args, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "/dev/zero" in result.stderr and "larger than 16777216 bytes, the limit" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_contracts_file_exits_2(run_host, tmp_path):
    missing = tmp_path / "nope.yaml"
    result = run_host("schema", "--contracts", missing)
    assert result.returncode == 2
    assert str(missing) in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def invalid_fixtures(repo_root):
    return sorted((repo_root / "tests" / "fixtures" / "contracts" / "invalid").glob("*.yaml"))


def test_every_invalid_contracts_file_exits_2_with_its_message(run_host, repo):
    fixtures = invalid_fixtures(repo)
    assert len(fixtures) >= 10
    for path in fixtures:
        expected = path.read_text().splitlines()[0].removeprefix("# error: ").replace("{file}", str(path))
        for command in (["schema", "--contracts", path], ["codegen", "--contracts", path, "--python", "/dev/null"]):
            result = run_host(*command)
            assert result.returncode == 2, path.name
            assert result.stderr.strip() == f"mycelium-host: error: {expected}", path.name


def test_schema_table_is_readable(run_host, repo):
    result = run_host("schema", "--contracts", repo / "scripts" / "contracts.yaml")
    assert result.returncode == 0
    assert "TextMessage (type 1001, topic demo, 312 bytes, align 8)" in result.stdout
    assert "     304       8  timestamp" in result.stdout


def test_schema_json_has_the_documented_shape(run_host, repo):
    result = run_host("schema", "--contracts", repo / "scripts" / "contracts.yaml", "--json")
    doc = json.loads(result.stdout)
    assert len(doc["digest"]) == 64
    text = next(m for m in doc["messages"] if m["name"] == "TextMessage")
    assert {k: text[k] for k in ("type_id", "topic", "size", "align")} == {
        "type_id": 1001, "topic": "demo", "size": 312, "align": 8}
    assert [(f["name"], f["type"], f["offset"], f["size"]) for f in text["fields"]] == [
        ("sender", "String", 0, 40), ("content", "String", 40, 264), ("timestamp", "u64", 304, 8)]


def test_codegen_without_outputs_exits_2(run_host, repo):
    result = run_host("codegen", "--contracts", repo / "scripts" / "contracts.yaml")
    assert result.returncode == 2
    assert "--cpp" in result.stderr


def test_codegen_writes_both_files(run_host, repo, tmp_path):
    result = run_host("codegen", "--contracts", repo / "scripts" / "contracts.yaml",
                      "--cpp", tmp_path / "m.hpp", "--python", tmp_path / "m.py")
    assert result.returncode == 0, result.stderr
    assert "static_assert(offsetof(TradeTick, price) == 24" in (tmp_path / "m.hpp").read_text()
    assert "class TradeTick:" in (tmp_path / "m.py").read_text()
