#pragma once
/// Every lifetime counter of a LinkServer, listed once. The table makes LinkStats' fields,
/// the server's atomic counters and their copy in LinkServer::stats() (host/src/transport),
/// and their Prometheus metrics (host/src/metrics/link_collector.cpp): adding a counter is
/// one line here, and it shows up in all four.
///
/// MYCELIUM_LINK_COUNTERS(X) calls X(field, family, label, doc) for each counter:
/// - `field`: the LinkStats member;
/// - `family`: its Prometheus family, one of MYCELIUM_LINK_COUNTER_FAMILIES;
/// - `label`: the value of the family's label for this counter ("" when the family has
///   one counter and no label);
/// - `doc`: what it counts.
///
/// MYCELIUM_LINK_COUNTER_FAMILIES(F) calls F(family, name, label_name, help).
///
/// Thread safety: macros only.

// clang-format off
#define MYCELIUM_LINK_COUNTER_FAMILIES(F)                                                                          \
    F(accepted, "mycelium_link_accepted_total", "", "Connections accepted")                                       \
    F(handshakes, "mycelium_link_handshakes_total", "", "Handshakes completed")                                  \
    F(handshake_failures, "mycelium_link_handshake_failures_total", "reason",                                     \
      "Connections closed during the digest handshake, by reason")                                               \
    F(decode_errors, "mycelium_link_decode_errors_total", "reason",                                               \
      "Bad frames, by reason: oversize and protocol_error close the connection, unknown_type, size_mismatch "    \
      "and invalid_payload drop the frame")                                                                       \
    F(disconnects, "mycelium_link_disconnects_total", "reason",                                                   \
      "Connections the host closed, by reason (besides bad frames and handshakes)")                              \
    F(flow_pauses, "mycelium_link_flow_pauses_total", "",                                                         \
      "Times a connection's reading was paused until a full queue its frames go to had room")                   \
    F(legacy_packed, "mycelium_link_legacy_packed_frames_total", "direction",                                     \
      "Padded-type frames converted between Mycelium's packed encoding and the C layout for legacy clients: in "  \
      "(received packed), out (sent packed)")                                                                     \
    F(legacy_switches, "mycelium_link_legacy_layout_switches_total", "",                                          \
      "Legacy connections switched to the C layout by a padded type sent at its C size")                        \
    F(dropped, "mycelium_link_dropped_frames_total", "", "Frames evicted from send queues (drop_oldest)")        \
    F(unsendable, "mycelium_link_unsendable_frames_total", "",                                                    \
      "Local frames not sent because their size does not match their type")                                      \
    F(frames_received, "mycelium_link_frames_received_total", "", "Frames received")                              \
    F(frames_sent, "mycelium_link_frames_sent_total", "", "Frames sent")                                          \
    F(bytes_received, "mycelium_link_received_bytes_total", "", "Bytes received")                                 \
    F(bytes_sent, "mycelium_link_sent_bytes_total", "", "Bytes sent")                                             \
    F(writes, "mycelium_link_writes_total", "", "Socket writes (frames_sent / writes shows coalescing)")          \
    F(shm_links, "mycelium_link_shm_links_total", "", "Connections that moved to shared-memory rings")            \
    F(shm_refused, "mycelium_link_shm_refused_total", "",                                                         \
      "Shared-memory requests refused (the link stays on the socket)")                                           \
    F(shm_corrupt, "mycelium_link_shm_corrupt_total", "", "Connections closed over a corrupt shared-memory ring") \
    F(shm_frames_received, "mycelium_link_shm_frames_received_total", "", "Frames read from shared-memory rings") \
    F(shm_frames_sent, "mycelium_link_shm_frames_sent_total", "", "Frames written to shared-memory rings")

#define MYCELIUM_LINK_COUNTERS(X)                                                                                  \
    X(accepted, accepted, "", "Connections accepted (including those refused for max_connections).")             \
    X(rejected_max_connections, disconnects, "max_connections",                                                   \
      "Connections refused because max_connections were open.")                                                  \
    X(rejected_per_listener, disconnects, "max_connections_per_listener",                                         \
      "Connections refused because their listener served max_connections_per_listener.")                         \
    X(rejected_per_client, disconnects, "max_connections_per_client",                                             \
      "Connections refused because their client identity held max_connections_per_client.")                      \
    X(rejected_out_of_descriptors, disconnects, "out_of_descriptors",                                             \
      "Connections refused because the process was out of file descriptors.")                                    \
    X(idle_timeouts, disconnects, "idle_timeout",                                                                 \
      "Connections closed because they sent nothing and answered no PING within idle_timeout.")                  \
    X(handshakes_ok, handshakes, "", "Handshakes that completed.")                                                \
    X(bad_digest_length, handshake_failures, "bad_digest_length", "Handshakes whose digest length was not 32.")   \
    X(digest_mismatch, handshake_failures, "digest_mismatch", "Handshakes whose digest differed from the registry's.") \
    X(handshake_timeout, handshake_failures, "handshake_timeout", "Handshakes not complete within handshake_timeout.") \
    X(truncated, disconnects, "truncated", "Connections that ended inside the handshake or inside a frame.")      \
    X(oversize, decode_errors, "oversize", "Frames whose header declared a payload above the limit.")             \
    X(unknown_type, decode_errors, "unknown_type",                                                                \
      "Frames of an unknown application type or an unserved control type, dropped (the connection stays), and "  \
      "type id 0 (the connection closes).")                                                                       \
    X(size_mismatch, decode_errors, "size_mismatch",                                                              \
      "Application frames whose payload size did not match their type, dropped.")                                \
    X(invalid_payload, decode_errors, "invalid_payload",                                                          \
      "Application frames whose payload broke its contract (a string not UTF-8 or above its capacity, a vector " \
      "above its capacity, a rule), dropped; links whose payloads are trusted are not checked.")                \
    X(metrics_over_limit, decode_errors, "metrics_over_limit",                                                    \
      "METRICS frames above the per-client limits (max_metrics_bytes, max_metrics_series), dropped.")           \
    X(protocol_errors, decode_errors, "protocol_error",                                                           \
      "Malformed or misplaced control frames (including an ERROR frame from the client).")                       \
    X(slow_consumers, disconnects, "slow_consumer",                                                               \
      "Connections closed as slow consumers (Disconnect, or Block after its wait).")                             \
    X(flow_pauses, flow_pauses, "",                                                                               \
      "Times a connection's reading was paused because a queue its frames go to (the scripts' queue) was full: " \
      "flow control, the frames wait in the client's socket.")                                                   \
    X(dropped_frames, dropped, "", "Frames evicted from send queues under SlowConsumerPolicy::DropOldest.")       \
    X(legacy_packed_in, legacy_packed, "in", "Padded-type frames legacy clients sent packed, converted to the C layout.") \
    X(legacy_packed_out, legacy_packed, "out", "Padded-type frames sent packed to legacy clients (LegacyLayout::Packed).") \
    X(legacy_layout_switches, legacy_switches, "",                                                                \
      "Legacy connections switched from Packed to C by a padded type sent at its C size.")                       \
    X(unsendable, unsendable, "",                                                                                 \
      "Frames published on this node's bus that were not sent because their payload size does not match their " \
      "type: the far side would close the link over them.")                                                      \
    X(frames_received, frames_received, "", "Frames received after the handshake (application and control).")    \
    X(frames_sent, frames_sent, "", "Frames written to sockets.")                                                 \
    X(bytes_received, bytes_received, "", "Bytes read (handshakes included).")                                    \
    X(bytes_sent, bytes_sent, "", "Bytes written.")                                                               \
    X(writes, writes, "", "Socket writes issued: frames_sent / writes shows how well writes coalesce.")           \
    X(shm_links, shm_links, "", "Connections that moved to shared-memory rings (SHM_READY received).")           \
    X(shm_refused, shm_refused, "",                                                                               \
      "SHM_REQUESTs answered with SHM_REFUSE (disabled, not a Unix socket, no memory, ...), and SHM_OFFERs the " \
      "client refused.")                                                                                          \
    X(shm_corrupt, shm_corrupt, "", "Connections closed because a ring broke its rules (ERROR shm_corrupt).")     \
    X(shm_frames_received, shm_frames_received, "", "Frames read from client->host rings (also in frames_received).") \
    X(shm_frames_sent, shm_frames_sent, "", "Frames written to host->client rings (also in frames_sent).")
// clang-format on
