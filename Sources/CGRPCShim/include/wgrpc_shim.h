// A small C surface over gRPC core (1.51). Swift sees opaque handles only;
// every gRPC core struct stays inside wgrpc_shim.c.
//
// Threading model (server):
//   - Each server owns one completion queue and one pthread that drains it.
//   - The request callback runs on that thread and must return quickly.
//   - wgrpc_call_respond / _finish / _send_message / _read_message /
//     _on_close / _is_cancelled / _deadline_remaining_ms / _peer / _release
//     may be called from any thread. Send, read and close callbacks run on
//     the completion-queue thread too, also during wgrpc_server_shutdown.
//
// Call handle lifetime: a wgrpc_call handed to the request callback carries
// one reference owned by the callee. The callee must call wgrpc_call_respond
// (or wgrpc_call_finish) exactly once and wgrpc_call_release exactly once (in
// that order, or release alone after respond). gRPC resources of the call are
// freed as soon as the response batch, the close notification and every send
// and read have completed; the small handle itself lives until
// wgrpc_call_release.
//
// Streaming (methods registered as WGRPC_METHOD_STREAMING): the request
// callback gets no message; the callee reads the client's messages with
// wgrpc_call_read_message, sends its own with wgrpc_call_send_message (at
// most one read and one send in flight) and ends the call with
// wgrpc_call_finish. Such a call counts as unanswered for the shutdown drain
// until it is finished, like a unary call until it is answered.
//
// Threading model (client):
//   - Each channel owns one HTTP/2 connection (never shared with another
//     channel), 1 to WGRPC_CHANNEL_THREADS_MAX completion queues and one
//     pthread per queue; calls are spread over the queues round-robin.
//   - The unary callback runs on one of those threads and must return
//     quickly; it may start new calls on any channel.
//   - wgrpc_client_call_unary may be called from any thread, also after
//     wgrpc_channel_shutdown (it then fails at once). wgrpc_channel_destroy
//     must be the last use of the handle.

#ifndef WGRPC_SHIM_H
#define WGRPC_SHIM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// gRPC status codes used by the shim itself.
enum {
  WGRPC_STATUS_OK = 0,
  WGRPC_STATUS_CANCELLED = 1,
  WGRPC_STATUS_INVALID_ARGUMENT = 3,
  WGRPC_STATUS_UNIMPLEMENTED = 12,
  WGRPC_STATUS_INTERNAL = 13,
  WGRPC_STATUS_UNAVAILABLE = 14,
};

/// How a registered method's messages reach the application.
enum {
  /// One request message, handed to the request callback.
  WGRPC_METHOD_UNARY = 0,
  /// Any number of messages each way (client, server or bidirectional
  /// streaming); see "Streaming" above.
  WGRPC_METHOD_STREAMING = 1,
};

/// Upper bounds checked by wgrpc_server_create.
enum {
  WGRPC_METHODS_MAX = 256,
  /// Pre-posted requests per registered method (and for the unknown-method
  /// fallback). A new call is accepted immediately while at least one is
  /// posted; gRPC core queues the rest.
  WGRPC_REQUESTS_POSTED_PER_METHOD = 32,
  WGRPC_ERROR_MESSAGE_BYTES_MAX = 256,
};

typedef struct wgrpc_server wgrpc_server;
typedef struct wgrpc_call wgrpc_call;

/// Invoked on the server's completion-queue thread for each call to a
/// registered method. `request` is valid only during the callback; a call that
/// carried no message gets request NULL and request_len 0. The callee owns one
/// reference to `call` (see the lifetime rules above).
typedef void (*wgrpc_request_callback)(void *user_ctx, wgrpc_call *call,
                                       int method_index,
                                       const uint8_t *request,
                                       size_t request_len);

/// Starts a server listening on `listen_address` ("HOST:PORT"; port 0 picks an
/// ephemeral port) for the `method_count` full method paths in `methods`
/// ("/pkg.Service/Method"). The callback's method_index is an index into
/// `methods`. Calls to any other path are answered UNIMPLEMENTED by the shim.
/// Returns NULL on failure and writes a NUL-terminated reason to `error`
/// (which may be NULL) of capacity `error_capacity`.
wgrpc_server *wgrpc_server_create(const char *listen_address,
                                  const char *const *methods,
                                  int method_count,
                                  wgrpc_request_callback callback,
                                  void *user_ctx, char *error,
                                  size_t error_capacity);

/// wgrpc_server_create where `method_kinds[i]` (WGRPC_METHOD_UNARY or
/// WGRPC_METHOD_STREAMING) says how `methods[i]` is served; `method_kinds`
/// NULL means every method is unary.
wgrpc_server *wgrpc_server_create_with_kinds(
    const char *listen_address, const char *const *methods,
    const int *method_kinds, int method_count, wgrpc_request_callback callback,
    void *user_ctx, char *error, size_t error_capacity);

// ---------------------------------------------------------------------------
// Transport security and limits

/// Server TLS material: a certificate chain, its key and, for mutual TLS, the
/// CA that client certificates must chain to. Reference-counted: a server
/// created with it keeps it alive until the server is freed. Thread-safe.
typedef struct wgrpc_tls wgrpc_tls;

/// Checks the PEM texts (the chain parses, the key parses and matches the
/// leaf certificate, the client CA, when not NULL, holds at least one
/// certificate) and returns a TLS object, or NULL with a reason in `error`.
/// `client_ca_pem` NULL: TLS without client certificates (no caller
/// identity); else every client must present a certificate signed by it, or
/// the handshake is refused.
wgrpc_tls *wgrpc_tls_create(const char *cert_chain_pem, const char *key_pem,
                            const char *client_ca_pem, char *error,
                            size_t error_capacity);

/// Checks new PEM texts as wgrpc_tls_create does and, when they pass, stages
/// them: connections accepted from now on use them, open connections keep
/// theirs. Returns 1 when staged; 0 with a reason in `error` when refused,
/// and the previous material stays in use. Whether a client CA is given must
/// not change (gRPC fixes the client-certificate mode when the server starts).
int wgrpc_tls_reload(wgrpc_tls *tls, const char *cert_chain_pem,
                     const char *key_pem, const char *client_ca_pem,
                     char *error, size_t error_capacity);

/// Drops the creator's reference.
void wgrpc_tls_release(wgrpc_tls *tls);

/// A server's transport settings. A limit of 0 leaves gRPC core's default.
typedef struct {
  /// NULL: plaintext.
  wgrpc_tls *tls;
  /// Streams one connection may have open at once: advertised in SETTINGS
  /// (gRPC core refuses streams past it, but only from a client that
  /// acknowledged them), and enforced by the shim for every client: a call
  /// arriving while its connection already has twice this many alive
  /// (not yet fully answered) is answered UNAVAILABLE at once (twice:
  /// a client that honours the limit may open a stream before this server
  /// has processed the completion of the one it replaces). 0: unlimited.
  int max_concurrent_streams;
  /// A connection with no call open for this long is closed (GOAWAY).
  int max_connection_idle_ms;
  /// A connection is closed this long after it opened (GOAWAY), after
  /// max_connection_age_grace_ms for calls still open on it.
  int max_connection_age_ms;
  int max_connection_age_grace_ms;
  /// The server pings an idle connection this often and closes it when no
  /// answer comes within keepalive_timeout_ms.
  int keepalive_time_ms;
  int keepalive_timeout_ms;
  /// Larger request messages are refused with RESOURCE_EXHAUSTED.
  int max_receive_message_bytes;
  /// The header list size advertised in SETTINGS and enforced per call.
  int max_header_list_bytes;
  /// A connection that has not finished its TLS and HTTP/2 handshake in
  /// this time is closed.
  int handshake_timeout_ms;
} wgrpc_server_options;

/// wgrpc_server_create_with_kinds with transport settings; `options` NULL
/// means plaintext with gRPC core's defaults. The options are copied.
wgrpc_server *wgrpc_server_create_with_options(
    const char *listen_address, const char *const *methods,
    const int *method_kinds, int method_count,
    const wgrpc_server_options *options, wgrpc_request_callback callback,
    void *user_ctx, char *error, size_t error_capacity);

/// The TCP port the server is bound to.
int wgrpc_server_port(const wgrpc_server *server);

/// Stops accepting calls, waits up to `drain_timeout_ms` for calls already
/// handed to the callback to be answered, then cancels the rest, joins the
/// completion-queue thread and frees the server. No callback runs after this
/// returns. Calls still held by the application stay valid handles: their
/// wgrpc_call_respond becomes a no-op, and they must still be released.
/// Must be called exactly once per server, never from the callback.
void wgrpc_server_shutdown(wgrpc_server *server, int64_t drain_timeout_ms);

/// Answers the call: initial metadata, the response message (only when
/// status_code is OK and `response` is not NULL; response_len may be 0 for an
/// empty message), and the status with `message` (may be NULL) and, when
/// status_details_len > 0, the trailing binary metadata
/// `grpc-status-details-bin` carrying `status_details` (a serialized
/// google.rpc.Status). Buffers are copied before returning. Thread-safe.
/// Calling it twice on the same call aborts the process.
void wgrpc_call_respond(wgrpc_call *call, int status_code, const char *message,
                        const uint8_t *response, size_t response_len,
                        const uint8_t *status_details,
                        size_t status_details_len);

/// Ends a streaming call with a status: wgrpc_call_respond without a
/// response message. When a send is still in flight the status follows it
/// once it completed. Same rules as wgrpc_call_respond.
void wgrpc_call_finish(wgrpc_call *call, int status_code, const char *message,
                       const uint8_t *status_details,
                       size_t status_details_len);

/// `ok` is 1 when the message went to the transport, 0 when the call ended
/// first (client cancel, deadline, connection loss, shutdown).
typedef void (*wgrpc_send_callback)(void *ctx, int ok);

/// `message` is the next client message (valid only during the callback;
/// non-NULL also for an empty message), or NULL once the client half-closed
/// or the call ended.
typedef void (*wgrpc_read_callback)(void *ctx, const uint8_t *message,
                                    size_t message_len);

typedef void (*wgrpc_close_callback)(void *ctx);

/// Sends one message (copied before returning), preceded by the initial
/// metadata on the first send. At most one send may be in flight: starting a
/// second aborts the process. Returns WGRPC_STATUS_OK when the send started:
/// `callback` then runs exactly once. CANCELLED when the call was already
/// answered or orphaned by shutdown, INTERNAL when gRPC core refused; the
/// callback never runs then.
int wgrpc_call_send_message(wgrpc_call *call, const uint8_t *message,
                            size_t message_len, wgrpc_send_callback callback,
                            void *ctx);

/// `sent` messages of a wgrpc_call_send_messages went to the transport:
/// all of them, or fewer when the call ended first.
typedef void (*wgrpc_send_many_callback)(void *ctx, size_t sent);

/// Sends `count` (> 0) messages one after another, as wgrpc_call_send_message
/// would one at a time, but starting each next one from the completion-queue
/// thread as the previous one completes: one callback for the lot instead of
/// a round trip through the caller per message. The messages are copied
/// before returning (the caller bounds how many it hands over). Counts as
/// the one send in flight until `callback` runs; a status given meanwhile
/// (wgrpc_call_finish) stops the rest and follows the message in flight.
/// Returns like wgrpc_call_send_message.
int wgrpc_call_send_messages(wgrpc_call *call, const uint8_t *const *messages,
                             const size_t *lengths, size_t count,
                             wgrpc_send_many_callback callback, void *ctx);

/// Asks for the client's next message. At most one read may be in flight:
/// starting a second aborts the process. Returns like
/// wgrpc_call_send_message.
int wgrpc_call_read_message(wgrpc_call *call, wgrpc_read_callback callback,
                            void *ctx);

/// Registers `callback` to run once when the call is over for gRPC (status
/// sent, client cancel, deadline, connection loss, shutdown); see
/// wgrpc_call_is_cancelled for which. Returns 1 when registered (the
/// callback then runs exactly once), 0 when the call is already over (it
/// never runs). At most one registration per call.
int wgrpc_call_on_close(wgrpc_call *call, wgrpc_close_callback callback,
                        void *ctx);

/// Drops the caller's reference. The handle must not be used afterwards.
void wgrpc_call_release(wgrpc_call *call);

/// 1 once the call ended without the server's status reaching the client
/// (client cancel, deadline exceeded, connection loss, server shutdown).
int wgrpc_call_is_cancelled(const wgrpc_call *call);

/// Milliseconds left before the client's deadline, measured now on the
/// monotonic clock; zero or negative once it passed; INT64_MAX when the client
/// set no deadline.
int64_t wgrpc_call_deadline_remaining_ms(const wgrpc_call *call);

/// Copies the peer address ("ipv4:127.0.0.1:5555") captured when the call
/// arrived into `buffer`, NUL-terminated and truncated to `capacity`. Returns
/// the full length of the peer string (excluding the NUL).
size_t wgrpc_call_peer(const wgrpc_call *call, char *buffer, size_t capacity);

/// What the shim knows of a call when it arrives. The pointers stay valid
/// until wgrpc_call_release; strings are not NUL-terminated (use the
/// lengths); an absent value is NULL with length 0.
typedef struct {
  /// "ipv4:127.0.0.1:5555"
  const char *peer;
  size_t peer_len;
  /// The verified client certificate's first URI SAN, else its first DNS
  /// SAN, else its subject CN; absent without mutual TLS or when the
  /// certificate has none of these (or the chosen one is empty, longer than
  /// WGRPC_IDENTITY_BYTES_MAX or holds a control character).
  const char *identity;
  size_t identity_len;
  /// Request metadata the service reads (at most
  /// WGRPC_METADATA_VALUE_BYTES_MAX bytes; a longer value is absent).
  const char *traceparent;
  size_t traceparent_len;
  const char *request_id; // x-request-id
  size_t request_id_len;
} wgrpc_call_context;

enum {
  WGRPC_METADATA_VALUE_BYTES_MAX = 512,
  WGRPC_IDENTITY_BYTES_MAX = 1024,
};

/// Fills `context` for the call. Any thread.
void wgrpc_call_get_context(const wgrpc_call *call,
                            wgrpc_call_context *context);

// ---------------------------------------------------------------------------
// Client

/// Upper bounds of the client side.
enum {
  WGRPC_CHANNEL_THREADS_MAX = 8,
  /// Method paths a channel registers with gRPC core (cheaper calls); calls
  /// to further paths still work, unregistered.
  WGRPC_CHANNEL_METHODS_MAX = 64,
  WGRPC_METHOD_PATH_BYTES_MAX = 256,
  /// Longest deadline a call may ask for: one hour.
  WGRPC_CALL_TIMEOUT_MS_MAX = 3600000,
};

typedef struct wgrpc_channel wgrpc_channel;

/// Invoked exactly once per started call, on one of the channel's
/// completion-queue threads. `response` is the response message (NULL when
/// none arrived, e.g. for a non-OK status) and `status_details` the value of
/// the `grpc-status-details-bin` trailer (NULL when absent); both are valid
/// only during the callback. Client-side failures arrive as statuses too:
/// DEADLINE_EXCEEDED, UNAVAILABLE (no connection), CANCELLED (shutdown).
typedef void (*wgrpc_unary_callback)(void *ctx, int status_code,
                                     const uint8_t *response,
                                     size_t response_len,
                                     const uint8_t *status_details,
                                     size_t status_details_len);

/// Creates an insecure channel to `target` ("HOST:PORT") served by
/// `thread_count` (1 to WGRPC_CHANNEL_THREADS_MAX) completion-queue threads.
/// Connects lazily, on the first call. Returns NULL on failure and writes a
/// NUL-terminated reason to `error` (may be NULL) of capacity
/// `error_capacity`.
wgrpc_channel *wgrpc_channel_create(const char *target, int thread_count,
                                    char *error, size_t error_capacity);

/// Client TLS material. `root_pem`: the CA the server's certificate must
/// chain to (NULL: the system's roots). `cert_chain_pem` and `key_pem`
/// (both or neither): the client certificate for mutual TLS.
/// `server_name_override`: the name checked against the server's
/// certificate instead of the target's host (NULL: the target's host).
typedef struct {
  const char *root_pem;
  const char *cert_chain_pem;
  const char *key_pem;
  const char *server_name_override;
} wgrpc_channel_tls;

/// wgrpc_channel_create over TLS (`tls` NULL: plaintext).
wgrpc_channel *wgrpc_channel_create_secure(const char *target, int thread_count,
                                           const wgrpc_channel_tls *tls,
                                           char *error, size_t error_capacity);

/// Starts a unary call of `method` ("/pkg.Service/Method") carrying the
/// `request_len` bytes at `request` (copied before returning; may be NULL
/// when request_len is 0), with a deadline `timeout_ms` from now (1 to
/// WGRPC_CALL_TIMEOUT_MS_MAX). Returns WGRPC_STATUS_OK when the call started:
/// `callback` then runs exactly once. Any other value means nothing was sent
/// and the callback never runs: INVALID_ARGUMENT for bad arguments,
/// UNAVAILABLE once the channel is shut down, INTERNAL if gRPC core refused.
/// Thread-safe.
int wgrpc_client_call_unary(wgrpc_channel *channel, const char *method,
                            const uint8_t *request, size_t request_len,
                            int64_t timeout_ms, wgrpc_unary_callback callback,
                            void *ctx);

/// Calls started on the channel whose callback has not returned yet.
int64_t wgrpc_channel_calls_in_flight(wgrpc_channel *channel);

/// Refuses new calls, cancels the calls in flight (their callbacks get
/// CANCELLED unless the answer won the race), waits until every callback
/// returned, then joins the completion-queue threads and closes the
/// connection. Idempotent. Must not be called from a callback.
void wgrpc_channel_shutdown(wgrpc_channel *channel);

/// Shuts the channel down if needed and frees it. The handle must not be
/// used by anyone afterwards.
void wgrpc_channel_destroy(wgrpc_channel *channel);

#ifdef __cplusplus
}
#endif

#endif // WGRPC_SHIM_H
