// topology.toml -> Spec. One pass reads and checks each table (keys, types, ranges);
// a second pass checks what spans nodes (names, services, sockets, ports, hosts).
// Every failure throws TopologyError with the position of the offending key or value,
// so the message can name the exact place (the rule for bad input: "a clear error that
// names the thing and the place").

#include <toml++/toml.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <span>
#include <sstream>
#include <utility>

#include "detail.hpp"
#include "mycelium/file_text.hpp"
#include "mycelium/suggest.hpp"
#include "mycelium/topology/topology.hpp"

namespace mycelium::topology {
namespace {

namespace fs = std::filesystem;
using namespace std::string_view_literals;

// Keys accepted in each table, in the order suggestions prefer them.
constexpr std::array TOP_KEYS = {"socket_dir"sv, "nodes"sv, "contracts"sv, "socket_mode"sv,
                                 "limits"sv};
constexpr std::array NODE_KEYS = {
    "name"sv,    "services"sv,  "host"sv,    "port"sv,   "endpoint"sv, "bind"sv,   "socket_mode"sv,
    "scripts"sv, "contracts"sv, "metrics"sv, "queues"sv, "shm"sv,      "workers"sv, "slow_consumer"sv,
    "legacy_layout"sv, "trust_payloads"sv};
constexpr std::array ENDPOINT_KEYS = {"kind"sv, "addr"sv};
constexpr std::array QUEUE_KEYS = {"capacity"sv, "policy"sv, "link_capacity"sv};
constexpr std::array SLOW_CONSUMER_KEYS = {"legacy"sv, "client"sv, "peer"sv, "wait_ms"sv};
constexpr std::array SHM_KEYS = {"enabled"sv, "ring_bytes"sv, "spin_us"sv, "wait_ms"sv};
constexpr std::array WORKER_KEYS = {"name"sv,
                                    "script"sv,
                                    "args"sv,
                                    "restart"sv,
                                    "backoff_initial_ms"sv,
                                    "backoff_max_ms"sv,
                                    "backoff_multiplier"sv,
                                    "max_restarts"sv,
                                    "restart_window_s"sv,
                                    "stop_grace_ms"sv};
constexpr std::array LIMIT_KEYS = {"max_payload"sv,
                                   "handshake_timeout_ms"sv,
                                   "max_connections"sv,
                                   "max_connections_per_listener"sv,
                                   "max_connections_per_client"sv,
                                   "idle_timeout_ms"sv,
                                   "max_metrics_bytes"sv,
                                   "max_metrics_series"sv};

std::string_view type_name(toml::node_type type) {
    switch (type) {
        case toml::node_type::table:
            return "a table";
        case toml::node_type::array:
            return "an array";
        case toml::node_type::string:
            return "a string";
        case toml::node_type::integer:
            return "an integer";
        case toml::node_type::floating_point:
            return "a float";
        case toml::node_type::boolean:
            return "a boolean";
        case toml::node_type::date:
            return "a date";
        case toml::node_type::time:
            return "a time";
        case toml::node_type::date_time:
            return "a date-time";
        case toml::node_type::none:
            break;
    }
    return "nothing";
}

std::string in_quotes(std::string_view text) {
    return "'" + std::string(text) + "'";
}

bool valid_name(std::string_view name) {
    return std::all_of(name.begin(), name.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' || c == '-' || c == '.';
    });
}

// Explains why `text` is not host:port; empty when it is one.
std::string address_problem(std::string_view text) {
    if (parse_socket_address(text)) return {};
    std::string_view host = text;
    std::string_view port;
    if (!text.empty() && text.front() == '[') {
        const auto close = text.find(']');
        if (close == std::string_view::npos) return "unclosed '[' in IPv6 address";
        host = text.substr(1, close - 1);
        if (close + 1 >= text.size() || text[close + 1] != ':') return "expected host:port";
        port = text.substr(close + 2);
    } else {
        const auto colon = text.rfind(':');
        if (colon == std::string_view::npos) return "expected host:port";
        host = text.substr(0, colon);
        port = text.substr(colon + 1);
        if (host.find(':') != std::string_view::npos)
            return "IPv6 addresses need brackets, as in [::1]:9000";
    }
    if (host.empty()) return "the host is empty";
    if (!detail::valid_host(host)) return "bad host " + in_quotes(host);
    return "port " + in_quotes(port) + " is not a number in 0-65535";
}

// Per-node positions kept for the checks that span nodes.
struct NodeMarks {
    toml::source_region name;
    toml::source_region host;
    toml::source_region port;
    toml::source_region bind;
    toml::source_region metrics;
    toml::source_region socket;  // endpoint addr, else the name
    std::vector<toml::source_region> services;
};

class Parser {
public:
    Parser(std::string source_name, fs::path base_dir, LoadOptions options)
        : source_name_(std::move(source_name)), base_dir_(std::move(base_dir)), options_(options) {}

    Spec parse(std::string_view text) {
        toml::table root;
        try {
            root = toml::parse(text, source_name_);
        } catch (const toml::parse_error& e) {
            throw TopologyError(std::string(e.description()), at(e.source()));
        }
        Spec spec;
        spec.source_name = source_name_;
        spec.base_dir = base_dir_;
        read_top(root, spec);
        check_across_nodes(spec);
        spec.warnings = std::move(warnings_);
        return spec;
    }

private:
    SourceLocation at(const toml::source_region& region) const {
        return SourceLocation{source_name_, static_cast<int>(region.begin.line),
                              static_cast<int>(region.begin.column)};
    }

    [[noreturn]] void fail(std::string description, const toml::source_region& region) const {
        throw TopologyError(std::move(description), at(region));
    }

    void check_keys(const toml::table& table, std::span<const std::string_view> allowed,
                    std::string_view context) const {
        for (auto&& [key, value] : table) {
            (void)value;
            if (std::find(allowed.begin(), allowed.end(), key.str()) != allowed.end()) continue;
            std::string message = "unknown key " + in_quotes(key.str());
            if (!context.empty()) message += " in " + std::string(context);
            const std::string_view suggestion = closest_match(key.str(), allowed);
            if (!suggestion.empty()) message += ", did you mean " + in_quotes(suggestion) + "?";
            // Mycelium ignores keys it does not know, and files written for it carry some.
            if (!options_.strict) {
                warnings_.push_back(TopologyWarning{std::move(message), at(key.source())});
                continue;
            }
            fail(std::move(message), key.source());
        }
    }

    [[noreturn]] void wrong_type(std::string_view key, std::string_view expected,
                                 const toml::node& value) const {
        fail(in_quotes(key) + " must be " + std::string(expected) + ", not " +
                 std::string(type_name(value.type())),
             value.source());
    }

    std::string string_of(std::string_view key, const toml::node& value) const {
        const auto* s = value.as_string();
        if (s == nullptr) wrong_type(key, "a string", value);
        return s->get();
    }

    std::string non_empty_string(std::string_view key, const toml::node& value) const {
        std::string s = string_of(key, value);
        if (s.empty()) fail(in_quotes(key) + " must not be empty", value.source());
        return s;
    }

    std::int64_t integer_of(std::string_view key, const toml::node& value, std::int64_t min,
                            std::int64_t max) const {
        const auto* i = value.as_integer();
        if (i == nullptr) wrong_type(key, "an integer", value);
        const std::int64_t v = i->get();
        if (v < min) {
            if (min == 1)
                fail(in_quotes(key) + " must be positive, got " + std::to_string(v),
                     value.source());
            if (min == 0)
                fail(in_quotes(key) + " must not be negative, got " + std::to_string(v),
                     value.source());
            fail(in_quotes(key) + " must be at least " + std::to_string(min) + ", got " +
                     std::to_string(v),
                 value.source());
        }
        if (v > max)
            fail(in_quotes(key) + " must be at most " + std::to_string(max) + ", got " +
                     std::to_string(v),
                 value.source());
        return v;
    }

    bool boolean_of(std::string_view key, const toml::node& value) const {
        const auto* b = value.as_boolean();
        if (b == nullptr) wrong_type(key, "a boolean", value);
        return b->get();
    }

    double number_of(std::string_view key, const toml::node& value) const {
        if (const auto* i = value.as_integer()) return static_cast<double>(i->get());
        const auto* f = value.as_floating_point();
        if (f == nullptr) wrong_type(key, "a number", value);
        if (!std::isfinite(f->get()))
            fail(in_quotes(key) + " must be a finite number", value.source());
        return f->get();
    }

    const toml::table& table_of(std::string_view key, const toml::node& value) const {
        const auto* t = value.as_table();
        if (t == nullptr) wrong_type(key, "a table", value);
        return *t;
    }

    std::vector<std::string> strings_of(std::string_view key, const toml::node& value,
                                        std::vector<toml::source_region>* regions = nullptr) const {
        const auto* array = value.as_array();
        if (array == nullptr) wrong_type(key, "an array of strings", value);
        std::vector<std::string> out;
        for (const toml::node& element : *array) {
            const auto* s = element.as_string();
            if (s == nullptr)
                fail(in_quotes(key) + " must hold strings, not " +
                         std::string(type_name(element.type())),
                     element.source());
            if (regions != nullptr) {
                if (s->get().empty())
                    fail(in_quotes(key) + " must not hold empty strings", element.source());
                regions->push_back(element.source());
            }
            out.push_back(s->get());
        }
        return out;
    }

    fs::path resolve(const std::string& path) const {
        fs::path p(path);
        if (p.is_relative() && !base_dir_.empty()) p = base_dir_ / p;
        return p.lexically_normal();
    }

    SocketAddress address_of(std::string_view key, const toml::node& value) const {
        const std::string text = string_of(key, value);
        if (auto address = parse_socket_address(text)) return *address;
        fail("bad address " + in_quotes(text) + " for " + in_quotes(key) + ": " +
                 address_problem(text),
             value.source());
    }

    std::uint32_t socket_mode_of(const toml::node& value) const {
        if (!value.is_string())
            wrong_type("socket_mode", "an octal string such as \"0660\"", value);
        const std::string text = value.as_string()->get();
        const bool octal =
            !text.empty() && text.size() <= 4 &&
            std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '7'; });
        unsigned mode = 0;
        if (octal) std::from_chars(text.data(), text.data() + text.size(), mode, 8);
        if (!octal || text.size() < 3 || mode > 0777)
            fail("bad socket_mode " + in_quotes(text) +
                     ", expected an octal mode from \"000\" to \"0777\" such as \"0660\"",
                 value.source());
        return mode;
    }

    void read_top(const toml::table& root, Spec& spec) {
        check_keys(root, TOP_KEYS, {});
        if (const toml::node* v = root.get("socket_dir"))
            spec.socket_dir = resolve(non_empty_string("socket_dir", *v));
        if (const toml::node* v = root.get("contracts"))
            spec.contracts = resolve(non_empty_string("contracts", *v));
        if (const toml::node* v = root.get("socket_mode")) spec.socket_mode = socket_mode_of(*v);
        if (const toml::node* v = root.get("limits"))
            read_limits(table_of("limits", *v), spec.limits);

        const toml::node* nodes = root.get("nodes");
        if (nodes == nullptr)
            throw TopologyError("no [[nodes]] defined", SourceLocation{source_name_, 0, 0});
        const auto* array = nodes->as_array();
        if (array != nullptr && array->empty()) fail("no [[nodes]] defined", nodes->source());
        if (array == nullptr || !array->is_array_of_tables())
            wrong_type("nodes", "an array of tables ([[nodes]])",
                       array == nullptr ? *nodes : *find_non_table(*array));
        for (const toml::node& element : *array) {
            spec.nodes.push_back(read_node(*element.as_table(), spec));
        }
    }

    static const toml::node* find_non_table(const toml::array& array) {
        for (const toml::node& element : array)
            if (!element.is_table()) return &element;
        return &array;
    }

    void read_limits(const toml::table& table, Limits& limits) const {
        check_keys(table, LIMIT_KEYS, "[limits]");
        if (const toml::node* v = table.get("max_payload"))
            limits.max_payload = static_cast<std::size_t>(
                integer_of("max_payload", *v, 1, static_cast<std::int64_t>(MAX_PAYLOAD_LIMIT)));
        if (const toml::node* v = table.get("handshake_timeout_ms"))
            limits.handshake_timeout =
                std::chrono::milliseconds(integer_of("handshake_timeout_ms", *v, 1, 3'600'000));
        if (const toml::node* v = table.get("max_connections"))
            limits.max_connections =
                static_cast<std::uint32_t>(integer_of("max_connections", *v, 1, 1'000'000));
        if (const toml::node* v = table.get("max_connections_per_listener"))
            limits.max_connections_per_listener =
                static_cast<std::uint32_t>(integer_of("max_connections_per_listener", *v, 0, 1'000'000));
        if (const toml::node* v = table.get("max_connections_per_client"))
            limits.max_connections_per_client =
                static_cast<std::uint32_t>(integer_of("max_connections_per_client", *v, 0, 1'000'000));
        if (const toml::node* v = table.get("idle_timeout_ms"))
            limits.idle_timeout = std::chrono::milliseconds(integer_of("idle_timeout_ms", *v, 0, 86'400'000));
        if (const toml::node* v = table.get("max_metrics_bytes"))
            limits.max_metrics_bytes = static_cast<std::size_t>(
                integer_of("max_metrics_bytes", *v, 1, static_cast<std::int64_t>(MAX_PAYLOAD_LIMIT)));
        if (const toml::node* v = table.get("max_metrics_series"))
            limits.max_metrics_series = static_cast<std::size_t>(integer_of("max_metrics_series", *v, 0, 10'000'000));
    }

    Node read_node(const toml::table& table, const Spec& spec) {
        check_keys(table, NODE_KEYS, "[[nodes]]");
        Node node;
        NodeMarks marks;
        node.source = at(table.source());
        node.socket_mode = spec.socket_mode;
        node.contracts = spec.contracts;

        const toml::node* name = table.get("name");
        if (name == nullptr) fail("[[nodes]] entry is missing 'name'", table.source());
        node.name = non_empty_string("name", *name);
        if (!valid_name(node.name))
            fail("node name " + in_quotes(node.name) +
                     " may only use letters, digits, '_', '-' and '.'",
                 name->source());
        marks.name = name->source();
        marks.socket = name->source();

        if (const toml::node* v = table.get("services"))
            node.services = strings_of("services", *v, &marks.services);
        if (const toml::node* v = table.get("host")) {
            node.host = string_of("host", *v);
            if (!node.host.empty() && !detail::valid_host(node.host))
                fail("bad host " + in_quotes(node.host), v->source());
            marks.host = v->source();
        }
        if (const toml::node* v = table.get("port")) {
            node.port = static_cast<std::uint16_t>(integer_of("port", *v, 0, 65535));
            marks.port = v->source();
        }
        if (const toml::node* v = table.get("endpoint")) {
            node.endpoint = read_endpoint(table_of("endpoint", *v));
            marks.socket = v->source();
        }
        read_bind(table, node, marks);
        if (const toml::node* v = table.get("socket_mode")) node.socket_mode = socket_mode_of(*v);
        if (const toml::node* v = table.get("scripts")) {
            std::vector<toml::source_region> regions;
            for (const std::string& script : strings_of("scripts", *v, &regions))
                node.scripts.push_back(resolve(script));
        }
        if (const toml::node* v = table.get("contracts"))
            node.contracts = resolve(non_empty_string("contracts", *v));
        if (const toml::node* v = table.get("metrics")) {
            node.metrics = address_of("metrics", *v);
            marks.metrics = v->source();
        }
        if (const toml::node* v = table.get("queues"))
            read_queues(table_of("queues", *v), node.queues);
        if (const toml::node* v = table.get("shm")) read_shm(table_of("shm", *v), node.shm);
        read_slow_consumer(table, node);
        if (const toml::node* v = table.get("legacy_layout")) node.legacy_layout = legacy_layout_of(*v);
        if (const toml::node* v = table.get("trust_payloads")) node.trust_payloads = trust_payloads_of(*v);
        if (const toml::node* v = table.get("workers")) read_workers(*v, node);

        if (!node.is_local() && !node.port &&
            !(node.endpoint && node.endpoint->kind == EndpointKind::Tcp))
            fail("node " + in_quotes(node.name) + " is on remote host " + in_quotes(node.host) +
                     " and needs a 'port'",
                 marks.host);
        if (!node.is_local() && node.port && *node.port == 0)
            fail("node " + in_quotes(node.name) + " is on remote host " + in_quotes(node.host) +
                     ": port 0 cannot be reached, give a real 'port'",
                 marks.port);
        marks_.push_back(std::move(marks));
        return node;
    }

    Endpoint read_endpoint(const toml::table& table) const {
        check_keys(table, ENDPOINT_KEYS, "endpoint");
        const toml::node* kind = table.get("kind");
        if (kind == nullptr) fail("endpoint is missing 'kind'", table.source());
        const toml::node* addr = table.get("addr");
        Endpoint endpoint;
        const std::string kind_text = string_of("kind", *kind);
        if (kind_text == "unix") {
            endpoint.kind = EndpointKind::Unix;
        } else if (kind_text == "tcp") {
            endpoint.kind = EndpointKind::Tcp;
        } else {
            fail("bad endpoint kind " + in_quotes(kind_text) + ", expected 'unix' or 'tcp'",
                 kind->source());
        }
        // Mycelium ignores `addr` for unix endpoints: the socket is socket_dir/<node>.sock,
        // which socket_path() gives for an empty path.
        if (addr == nullptr) {
            if (endpoint.kind == EndpointKind::Unix) return endpoint;
            fail("endpoint is missing 'addr'", table.source());
        }
        endpoint.addr = non_empty_string("addr", *addr);
        if (endpoint.kind == EndpointKind::Unix) {
            endpoint.path = resolve(endpoint.addr);
        } else {
            endpoint.address = address_of("addr", *addr);
        }
        return endpoint;
    }

    // `bind` is host or host:port; the port falls back to the node's `port`, the host to
    // 127.0.0.1 for a local node and to the node's own host for a remote one (a remote
    // node bound to loopback could never be reached by its peers).
    void read_bind(const toml::table& table, Node& node, NodeMarks& marks) const {
        const toml::node* v = table.get("bind");
        if (v == nullptr) {
            if (node.port) {
                node.bind = SocketAddress{
                    node.is_local() ? std::string(DEFAULT_BIND_HOST) : node.host, *node.port};
                marks.bind = marks.port;
            } else if (node.endpoint && node.endpoint->kind == EndpointKind::Tcp) {
                // Peers dial the tcp endpoint, so that is where the node listens.
                node.bind = node.endpoint->address;
                marks.bind = marks.socket;
            }
            return;
        }
        marks.bind = v->source();
        const std::string text = string_of("bind", *v);
        if (auto address = parse_socket_address(text)) {
            node.bind = *address;
            return;
        }
        const bool host_only = text.find(':') == std::string::npos && detail::valid_host(text);
        const bool bracketed_host_only =
            text.size() > 2 && text.front() == '[' && text.back() == ']' &&
            detail::valid_host(std::string_view(text).substr(1, text.size() - 2));
        if (!host_only && !bracketed_host_only)
            fail("bad address " + in_quotes(text) + " for 'bind': " + address_problem(text),
                 v->source());
        if (!node.port)
            fail("'bind' " + in_quotes(text) + " has no port and node " + in_quotes(node.name) +
                     " has no 'port'; write \"host:port\"",
                 v->source());
        node.bind =
            SocketAddress{bracketed_host_only ? text.substr(1, text.size() - 2) : text, *node.port};
    }

    void read_queues(const toml::table& table, QueueConfig& queues) const {
        check_keys(table, QUEUE_KEYS, "[nodes.queues]");
        const auto max = static_cast<std::int64_t>(MAX_QUEUE_CAPACITY);
        if (const toml::node* v = table.get("capacity"))
            queues.capacity = static_cast<std::size_t>(integer_of("capacity", *v, 1, max));
        if (const toml::node* v = table.get("link_capacity"))
            queues.link_capacity =
                static_cast<std::size_t>(integer_of("link_capacity", *v, 1, max));
        if (const toml::node* v = table.get("policy")) {
            const std::string policy = string_of("policy", *v);
            if (policy == "block") {
                queues.policy = QueuePolicy::Block;
            } else if (policy == "drop_oldest") {
                queues.policy = QueuePolicy::DropOldest;
            } else if (policy == "fail") {
                queues.policy = QueuePolicy::Fail;
            } else {
                fail("bad queue policy " + in_quotes(policy) +
                         ", expected 'block', 'drop_oldest' or 'fail'",
                     v->source());
            }
        }
    }

    // `[nodes.slow_consumer]`, after `[nodes.queues]` and `[nodes.shm]`: their older keys
    // `policy` and `wait_ms` give the defaults it overrides.
    void read_slow_consumer(const toml::table& node_table, Node& node) const {
        SlowConsumerConfig& config = node.slow_consumer;
        config.wait = node.shm.wait;
        if (const toml::table* queues = node_table["queues"].as_table()) {
            if (const toml::node* v = queues->get("policy")) {
                const SlowConsumer policy = node.queues.policy == QueuePolicy::Block        ? SlowConsumer::Block
                                            : node.queues.policy == QueuePolicy::DropOldest ? SlowConsumer::DropOldest
                                                                                            : SlowConsumer::Disconnect;
                if (node.queues.policy == QueuePolicy::Fail) warn_fail_policy("[nodes.queues] policy", *v);
                config.client = config.peer = policy;
            }
        }
        const toml::node* v = node_table.get("slow_consumer");
        if (v == nullptr) return;
        const toml::table& table = table_of("slow_consumer", *v);
        check_keys(table, SLOW_CONSUMER_KEYS, "[nodes.slow_consumer]");
        if (const toml::node* p = table.get("legacy")) config.legacy = slow_consumer_of("legacy", *p);
        if (const toml::node* p = table.get("client")) config.client = slow_consumer_of("client", *p);
        if (const toml::node* p = table.get("peer")) config.peer = slow_consumer_of("peer", *p);
        if (const toml::node* w = table.get("wait_ms"))
            config.wait = std::chrono::milliseconds(integer_of("wait_ms", *w, 0, MAX_SHM_WAIT.count()));
    }

    TrustPayloads trust_payloads_of(const toml::node& value) const {
        const std::string text = string_of("trust_payloads", value);
        if (const auto trust = parse_trust_payloads(text)) return *trust;
        fail("bad trust_payloads " + in_quotes(text) + ", expected 'none', 'peers' or 'all'", value.source());
    }

    LegacyLayout legacy_layout_of(const toml::node& value) const {
        const std::string text = string_of("legacy_layout", value);
        if (const auto layout = parse_legacy_layout(text)) return *layout;
        fail("bad legacy_layout " + in_quotes(text) + ", expected 'packed' or 'c'", value.source());
    }

    SlowConsumer slow_consumer_of(std::string_view key, const toml::node& value) const {
        const std::string text = string_of(key, value);
        if (const auto policy = parse_slow_consumer(text)) return *policy;
        if (text == "fail") {
            warn_fail_policy("[nodes.slow_consumer] " + std::string(key), value);
            return SlowConsumer::Disconnect;
        }
        fail("bad slow-consumer policy " + in_quotes(text) + " for " + in_quotes(key) +
                 ", expected 'drop_oldest', 'disconnect' or 'block'",
             value.source());
    }

    void warn_fail_policy(const std::string& where, const toml::node& value) const {
        warnings_.push_back(TopologyWarning{
            where + " = \"fail\" reads as \"disconnect\" for links (a slow client or peer is disconnected)",
            at(value.source())});
    }

    void read_shm(const toml::table& table, ShmConfig& shm) const {
        check_keys(table, SHM_KEYS, "[nodes.shm]");
        if (const toml::node* v = table.get("enabled")) shm.enabled = boolean_of("enabled", *v);
        if (const toml::node* v = table.get("ring_bytes")) {
            const auto bytes = static_cast<std::size_t>(
                integer_of("ring_bytes", *v, 1, static_cast<std::int64_t>(MAX_RING_BYTES)));
            if (bytes < MIN_RING_BYTES)
                fail("'ring_bytes' must be at least " + std::to_string(MIN_RING_BYTES) + ", got " +
                         std::to_string(bytes),
                     v->source());
            if ((bytes & (bytes - 1)) != 0)
                fail("'ring_bytes' must be a power of two, got " + std::to_string(bytes),
                     v->source());
            shm.ring_bytes = bytes;
        }
        if (const toml::node* v = table.get("spin_us"))
            shm.spin = std::chrono::microseconds(integer_of("spin_us", *v, 0, MAX_SPIN.count()));
        if (const toml::node* v = table.get("wait_ms"))
            shm.wait = std::chrono::milliseconds(integer_of("wait_ms", *v, 0, MAX_SHM_WAIT.count()));
    }

    void read_workers(const toml::node& value, Node& node) const {
        const auto* array = value.as_array();
        if (array != nullptr && array->empty()) return;
        if (array == nullptr || !array->is_array_of_tables())
            wrong_type("workers", "an array of tables ([[nodes.workers]])",
                       array == nullptr ? value : *find_non_table(*array));
        std::map<std::string, int, std::less<>> first_line;
        for (const toml::node& element : *array) {
            const toml::table& table = *element.as_table();
            Worker worker = read_worker(table);
            const toml::node& name = *table.get("name");
            const auto [it, inserted] = first_line.emplace(worker.name, worker.source.line);
            if (!inserted)
                fail("duplicate worker name " + in_quotes(worker.name) + " on node " +
                         in_quotes(node.name) + " (first defined at line " +
                         std::to_string(it->second) + ")",
                     name.source());
            node.workers.push_back(std::move(worker));
        }
    }

    Worker read_worker(const toml::table& table) const {
        check_keys(table, WORKER_KEYS, "[[nodes.workers]]");
        Worker worker;
        worker.source = at(table.source());
        const toml::node* name = table.get("name");
        if (name == nullptr) fail("[[nodes.workers]] entry is missing 'name'", table.source());
        worker.name = non_empty_string("name", *name);
        if (!valid_name(worker.name))
            fail("worker name " + in_quotes(worker.name) +
                     " may only use letters, digits, '_', '-' and '.'",
                 name->source());
        const toml::node* script = table.get("script");
        if (script == nullptr) fail("[[nodes.workers]] entry is missing 'script'", table.source());
        worker.script = resolve(non_empty_string("script", *script));
        if (const toml::node* v = table.get("args")) worker.args = strings_of("args", *v);
        if (const toml::node* v = table.get("restart")) {
            const std::string restart = string_of("restart", *v);
            if (restart == "always") {
                worker.restart = RestartPolicy::Always;
            } else if (restart == "on-failure") {
                worker.restart = RestartPolicy::OnFailure;
            } else if (restart == "never") {
                worker.restart = RestartPolicy::Never;
            } else {
                fail("bad restart policy " + in_quotes(restart) +
                         ", expected 'always', 'on-failure' or 'never'",
                     v->source());
            }
        }
        constexpr std::int64_t DAY_MS = 86'400'000;
        if (const toml::node* v = table.get("backoff_initial_ms"))
            worker.backoff_initial =
                std::chrono::milliseconds(integer_of("backoff_initial_ms", *v, 1, DAY_MS));
        const toml::node* backoff_max = table.get("backoff_max_ms");
        if (backoff_max != nullptr)
            worker.backoff_max =
                std::chrono::milliseconds(integer_of("backoff_max_ms", *backoff_max, 1, DAY_MS));
        if (worker.backoff_max < worker.backoff_initial)
            fail("'backoff_max_ms' (" + std::to_string(worker.backoff_max.count()) +
                     ") must not be below 'backoff_initial_ms' (" +
                     std::to_string(worker.backoff_initial.count()) + ")",
                 backoff_max != nullptr ? backoff_max->source()
                                        : table.get("backoff_initial_ms")->source());
        if (const toml::node* v = table.get("backoff_multiplier")) {
            worker.backoff_multiplier = number_of("backoff_multiplier", *v);
            if (worker.backoff_multiplier < 1.0 || worker.backoff_multiplier > 100.0) {
                std::ostringstream got;
                got << worker.backoff_multiplier;
                fail("'backoff_multiplier' must be between 1.0 and 100.0, got " + got.str(),
                     v->source());
            }
        }
        if (const toml::node* v = table.get("max_restarts"))
            worker.max_restarts =
                static_cast<std::uint32_t>(integer_of("max_restarts", *v, 1, 1'000'000));
        if (const toml::node* v = table.get("restart_window_s"))
            worker.restart_window =
                std::chrono::seconds(integer_of("restart_window_s", *v, 1, 86'400));
        if (const toml::node* v = table.get("stop_grace_ms"))
            worker.stop_grace =
                std::chrono::milliseconds(integer_of("stop_grace_ms", *v, 1, 3'600'000));
        return worker;
    }

    // Names, services, socket paths and listening ports must not collide across nodes.
    void check_across_nodes(const Spec& spec) const {
        std::map<std::string, std::size_t, std::less<>> node_by_name;
        std::map<std::string, std::size_t, std::less<>> node_by_service;
        for (std::size_t i = 0; i < spec.nodes.size(); ++i) {
            const Node& node = spec.nodes[i];
            const auto [named, fresh] = node_by_name.emplace(node.name, i);
            if (!fresh)
                fail("duplicate node name " + in_quotes(node.name) + " (first defined at line " +
                         std::to_string(spec.nodes[named->second].source.line) + ")",
                     marks_[i].name);
            for (std::size_t s = 0; s < node.services.size(); ++s) {
                const auto [owner, added] = node_by_service.emplace(node.services[s], i);
                if (added) continue;
                if (owner->second == i)
                    fail("service " + in_quotes(node.services[s]) + " is listed twice on node " +
                             in_quotes(node.name),
                         marks_[i].services[s]);
                fail("service " + in_quotes(node.services[s]) + " is on nodes " +
                         in_quotes(spec.nodes[owner->second].name) + " and " + in_quotes(node.name),
                     marks_[i].services[s]);
            }
        }

        // Per host, the first node that uses each socket path and each port: the same first
        // collision as comparing every earlier node on the same host (the smallest j; for one
        // j, the socket before the TCP port before the metrics port), in O(n log n) instead
        // of O(n^2) socket_path calls (issue 16: 2,400 nodes took 24 s).
        std::map<std::pair<std::string, std::string>, std::size_t, std::less<>> socket_owner;
        std::map<std::pair<std::string, std::uint16_t>, std::size_t, std::less<>> port_owner;
        constexpr std::size_t NONE = std::numeric_limits<std::size_t>::max();
        for (std::size_t i = 0; i < spec.nodes.size(); ++i) {
            const Node& node = spec.nodes[i];
            const std::string path = socket_path(spec, node).string();
            if (path.size() > MAX_UNIX_PATH)
                fail("unix socket path " + in_quotes(path) + " of node " + in_quotes(node.name) +
                         " is " + std::to_string(path.size()) + " bytes, longer than " +
                         std::to_string(MAX_UNIX_PATH),
                     marks_[i].socket);
            if (node.bind && node.metrics && node.bind->port != 0 &&
                node.bind->port == node.metrics->port)
                fail("node " + in_quotes(node.name) + " uses port " +
                         std::to_string(node.bind->port) + " for both TCP and metrics",
                     marks_[i].metrics);
            std::string host = detail::host_key(node);
            const auto socket_user = socket_owner.find(std::pair{host, path});
            const std::size_t by_socket = socket_user == socket_owner.end() ? NONE : socket_user->second;
            const auto port_user = [&](const std::optional<SocketAddress>& listener) {
                if (!listener || listener->port == 0) return NONE;
                const auto it = port_owner.find(std::pair{host, listener->port});
                return it == port_owner.end() ? NONE : it->second;
            };
            const std::size_t by_bind = port_user(node.bind);
            const std::size_t by_metrics = port_user(node.metrics);
            const std::size_t first = std::min({by_socket, by_bind, by_metrics});
            if (first != NONE) {
                const Node& other = spec.nodes[first];
                if (by_socket == first)
                    fail("node " + in_quotes(node.name) + " uses unix socket " + in_quotes(path) +
                             ", already used by node " + in_quotes(other.name),
                         marks_[i].socket);
                const bool bind_first = by_bind == first;
                fail("node " + in_quotes(node.name) + " listens on port " +
                         std::to_string((bind_first ? node.bind : node.metrics)->port) +
                         ", already used by node " + in_quotes(other.name) + " on the same host",
                     bind_first ? marks_[i].bind : marks_[i].metrics);
            }
            for (const auto* listener : {&node.bind, &node.metrics})
                if (*listener && (*listener)->port != 0) port_owner.emplace(std::pair{host, (*listener)->port}, i);
            socket_owner.emplace(std::pair{std::move(host), path}, i);
        }
    }

    std::string source_name_;
    fs::path base_dir_;
    LoadOptions options_;
    std::vector<NodeMarks> marks_;  // parallel to Spec::nodes
    // Filled by check_keys, which the const readers call: warnings are the parse's
    // output, not the parser's state.
    mutable std::vector<TopologyWarning> warnings_;
};

}  // namespace

Spec load_string(std::string_view toml, std::string source_name, std::filesystem::path base_dir,
                 const LoadOptions& options) {
    return Parser(std::move(source_name), std::move(base_dir), options).parse(toml);
}

Spec load_file(const std::filesystem::path& path, const LoadOptions& options) {
    const SourceLocation whole_file{path.string(), 0, 0};
    const FileText file = read_file_text(path);
    switch (file.failure) {
        case FileText::Failure::None:
            break;
        case FileText::Failure::CannotOpen:
            throw TopologyError("cannot open topology file: " + file.reason, whole_file);
        case FileText::Failure::Directory:
            throw TopologyError("topology path is a directory, not a file", whole_file);
        case FileText::Failure::TooLarge:
            throw TopologyError("topology file is larger than " + std::to_string(MAX_CONFIG_FILE_BYTES) +
                                    " bytes, the limit",
                                whole_file);
        case FileText::Failure::CannotRead:
            throw TopologyError("cannot read topology file: " + file.reason, whole_file);
    }
    std::error_code ec;
    fs::path base = fs::absolute(path, ec).parent_path();
    if (ec) base = path.parent_path();
    return load_string(file.text, path.string(), base, options);
}

}  // namespace mycelium::topology
