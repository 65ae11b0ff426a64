// gRPC core server glue. See include/wgrpc_shim.h for the contract.
//
// Every completion-queue tag points at a wgrpc_tag embedded in the object it
// belongs to; the kind says how to route the event.
//
// Call lifetime uses two counters:
//   grpc_refs   - the close notification batch + the response batch, plus
//                 one per send or read batch in flight. When all completed
//                 (or the response will never be sent because the server
//                 orphaned the call), the grpc_call and every buffer of the
//                 call are freed and the call leaves the server's live list.
//   handle_refs - the application's handle + the gRPC side above. The small
//                 wgrpc_call struct is freed when both are gone, so a handle
//                 held by Swift past server shutdown never dangles.
//
// Shutdown must never start a batch on a completion queue that is already
// shut down. A call handed to the application is either answered before the
// drain ends or "orphaned" under its mutex; respond on an orphaned call does
// nothing, so no batch can start after the queue shuts down. Sends and reads
// start only on a call still awaiting its response; a status deferred behind
// a send (see wgrpc_call_respond) is dropped by the orphan pass.

#define _GNU_SOURCE // pthread_setname_np

#include "wgrpc_shim.h"
#include "wgrpc_internal.h"

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/log.h>
#include <grpc/support/time.h>

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WGRPC_STATUS_CODE_MAX 16
#define WGRPC_STATUS_DETAILS_KEY "grpc-status-details-bin"

// ---------------------------------------------------------------------------
// Log lines: gRPC core's and the shim's own, to the application's sink when
// it set one (wgrpc_set_log_sink), else to stderr as plain text.

static _Atomic(wgrpc_log_sink) log_sink = NULL;

static void log_line(int severity, const char *file, int line,
                     const char *message) {
  wgrpc_log_sink sink = atomic_load(&log_sink);
  if (sink == NULL) {
    fprintf(stderr, "%s:%d %s\n", file, line, message);
    return;
  }
  sink(severity, file, line, message);
}

static void log_to_sink(gpr_log_func_args *args) {
  int severity = args->severity == GPR_LOG_SEVERITY_DEBUG  ? WGRPC_LOG_DEBUG
                 : args->severity == GPR_LOG_SEVERITY_INFO ? WGRPC_LOG_INFO
                                                           : WGRPC_LOG_ERROR;
  log_line(severity, args->file, args->line, args->message);
}

void wgrpc_set_log_sink(wgrpc_log_sink sink) {
  atomic_store(&log_sink, sink);
  gpr_set_log_function(log_to_sink);
}

// The shim's own error lines ("wgrpc_shim: ..."): a batch gRPC core refused
// to start, an invariant about to abort.
static void shim_log_error(const char *file, int line, const char *format,
                           ...) __attribute__((format(printf, 3, 4)));
static void shim_log_error(const char *file, int line, const char *format,
                           ...) {
  char message[512];
  int prefix = snprintf(message, sizeof(message), "wgrpc_shim: ");
  va_list args;
  va_start(args, format);
  vsnprintf(message + prefix, sizeof(message) - (size_t)prefix, format, args);
  va_end(args);
  log_line(WGRPC_LOG_ERROR, file, line, message);
}

#define WGRPC_LOG_ERROR(...) shim_log_error(__FILE__, __LINE__, __VA_ARGS__)

// Invariant violations are bugs: say what broke and stop.
#define WGRPC_ASSERT(condition, what)                                         \
  do {                                                                        \
    if (!(condition)) {                                                       \
      WGRPC_LOG_ERROR("%s", (what));                                          \
      abort();                                                                \
    }                                                                         \
  } while (0)

typedef enum {
  TAG_REQUEST_REGISTERED,
  TAG_REQUEST_UNKNOWN,
  TAG_CALL_CLOSED,
  TAG_CALL_RESPONDED,
  TAG_CALL_SENT,
  TAG_CALL_READ,
  TAG_SERVER_SHUTDOWN,
} tag_kind;

typedef struct {
  tag_kind kind;
  void *owner;
} wgrpc_tag;

// One pre-posted grpc_server_request_(registered_)call.
typedef struct {
  wgrpc_tag tag;
  wgrpc_server *server;
  int method_index; // -1: the unknown-method fallback
  bool streaming;   // registered with payload handling NONE
  grpc_call *call;
  gpr_timespec deadline;
  grpc_metadata_array request_metadata;
  grpc_byte_buffer *payload;
  grpc_call_details details; // fallback only
} request_slot;

typedef enum {
  CALL_AWAITING_RESPONSE,
  CALL_RESPONDED,
  CALL_ORPHANED, // server shut down first; respond is a no-op
} call_state;

struct wgrpc_call {
  wgrpc_server *server; // valid while the gRPC side is alive
  grpc_call *call;
  pthread_mutex_t mutex;
  call_state state;           // guarded by mutex
  bool handed_to_application; // counted in server->calls_unanswered
  bool counted_on_connection; // counted in server->connections
  int64_t connection_bytes;   // what it adds to its connection's bytes
  bool over_connection_limit; // refused: too many calls on its connection
  bool response_in_flight;    // counted in server->responses_in_flight
  atomic_int cancelled;
  atomic_int grpc_refs;
  atomic_int handle_refs;
  gpr_timespec deadline; // GPR_CLOCK_MONOTONIC
  char *peer;            // gpr_malloc'd, may be NULL
  // Read once when the call arrives (see wgrpc_call_get_context); malloc'd,
  // NULL when absent.
  char *identity;
  size_t identity_len;
  char *traceparent;
  size_t traceparent_len;
  char *request_id;
  size_t request_id_len;
  wgrpc_tag closed_tag;
  wgrpc_tag responded_tag;
  int close_cancelled;
  // Guarded by mutex: the streaming state.
  bool initial_metadata_sent;
  bool closed; // the close notification arrived
  wgrpc_close_callback close_callback;
  void *close_ctx;
  bool send_pending;
  grpc_byte_buffer *send_buffer;
  wgrpc_send_callback send_callback;
  void *send_ctx;
  // wgrpc_call_send_messages: the messages still to send, started one after
  // another from the completion-queue thread; NULL for a single send.
  grpc_byte_buffer **send_queue;
  size_t send_queue_count;
  size_t send_queue_next;
  size_t send_queue_sent;
  wgrpc_send_many_callback send_many_callback;
  bool read_pending;
  grpc_byte_buffer *read_buffer;
  wgrpc_read_callback read_callback;
  void *read_ctx;
  // respond arrived while a send was in flight; the status batch starts when
  // the send completes (one SEND_STATUS after the last SEND_MESSAGE).
  bool status_deferred;
  wgrpc_tag sent_tag;
  wgrpc_tag read_tag;
  // Owned by the response batch; freed with the gRPC side.
  int status_code;
  grpc_slice status_message;
  bool has_status_message;
  grpc_metadata trailing_metadata[1];
  size_t trailing_metadata_count;
  grpc_byte_buffer *response;
  // server->live_calls, guarded by server->mutex
  struct wgrpc_call *live_prev;
  struct wgrpc_call *live_next;
};

// One open-addressing slot of wgrpc_server.connections.
typedef struct {
  char *peer; // malloc'd; NULL: empty
  int calls;
  int64_t bytes; // answers (and stream messages) handed over, not yet sent
} connection_count;

// What one connection may hold before its new calls are refused (see
// wgrpc_server_options.max_concurrent_streams): bytes of answers not yet
// sent, which is what a client that never reads piles up.
#define WGRPC_CONNECTION_PENDING_BYTES_MAX ((int64_t)16 * 1024 * 1024)

struct wgrpc_server {
  grpc_server *server;
  grpc_completion_queue *cq;
  pthread_t cq_thread;
  int port;
  wgrpc_request_callback callback;
  void *user_ctx;
  int method_count;
  void **registered_methods;
  bool *methods_streaming; // per registered method
  request_slot *slots;
  int slot_count;
  wgrpc_tls *tls; // retained while the gRPC server may fetch from it
  wgrpc_tag shutdown_tag;

  pthread_mutex_t mutex;
  pthread_cond_t changed; // CLOCK_MONOTONIC; signals the fields below
  bool shutting_down;
  bool shutdown_notified;
  int64_t calls_unanswered;
  // Status batches started and not yet completed: the drain waits for these
  // too, so that its cancel pass cannot cut off a status on its way out.
  int64_t responses_in_flight;
  wgrpc_call *live_calls;
  size_t live_call_count;
  // Calls alive per connection (keyed by the peer address, which names one
  // TCP connection), so that a client cannot hold more than
  // max_calls_per_connection at once whether or not it acknowledged the
  // SETTINGS that advertise the limit. Guarded by mutex.
  int max_calls_per_connection; // 0: no limit
  connection_count *connections;
  size_t connections_capacity; // a power of two, or 0
  size_t connections_used;     // slots holding a peer (count may be 0)
};

// ---------------------------------------------------------------------------
// Library and configuration

static pthread_once_t library_once = PTHREAD_ONCE_INIT;

// lock_order.cc: absl's lock-order tracking off (see there).
void wgrpc_skip_lock_order_tracking(void);

// gRPC stays initialized for the life of the process: servers (and later
// clients) come and go, and gRPC 1.51's init/shutdown cycles restart internal
// threads, so one grpc_init here is both simpler and safer.
static void library_init_once(void) {
  wgrpc_skip_lock_order_tracking();
  grpc_init();
}

// The one place that decides transport security.
static grpc_server_credentials *server_credentials_create(wgrpc_tls *tls) {
  return tls != NULL ? wgrpc_tls_server_credentials(tls)
                     : grpc_insecure_server_credentials_create();
}

static void set_error(char *error, size_t capacity, const char *format, ...) {
  if (error == NULL || capacity == 0) {
    return;
  }
  va_list args;
  va_start(args, format);
  vsnprintf(error, capacity, format, args);
  va_end(args);
}

static void lock(pthread_mutex_t *mutex) {
  WGRPC_ASSERT(pthread_mutex_lock(mutex) == 0, "pthread_mutex_lock failed");
}

static void unlock(pthread_mutex_t *mutex) {
  WGRPC_ASSERT(pthread_mutex_unlock(mutex) == 0, "pthread_mutex_unlock failed");
}

// ---------------------------------------------------------------------------
// Calls alive per connection (under server->mutex)

static uint64_t peer_hash(const char *peer) {
  uint64_t hash = 1469598103934665603ULL; // FNV-1a
  for (const unsigned char *p = (const unsigned char *)peer; *p != 0; p++) {
    hash = (hash ^ *p) * 1099511628211ULL;
  }
  return hash;
}

// The slot of `peer`, or the empty slot where it would go.
static connection_count *connection_slot(connection_count *table,
                                         size_t capacity, const char *peer) {
  size_t mask = capacity - 1;
  for (size_t i = peer_hash(peer) & mask;; i = (i + 1) & mask) {
    if (table[i].peer == NULL || strcmp(table[i].peer, peer) == 0) {
      return &table[i];
    }
  }
}

// Rebuilds the table at `capacity`, dropping connections with no call.
static void connections_rehash(wgrpc_server *server, size_t capacity) {
  connection_count *table = calloc(capacity, sizeof(*table));
  WGRPC_ASSERT(table != NULL, "out of memory");
  size_t used = 0;
  for (size_t i = 0; i < server->connections_capacity; i++) {
    connection_count *old = &server->connections[i];
    if (old->peer == NULL) {
      continue;
    }
    if (old->calls == 0) {
      free(old->peer);
      continue;
    }
    *connection_slot(table, capacity, old->peer) = *old;
    used += 1;
  }
  free(server->connections);
  server->connections = table;
  server->connections_capacity = capacity;
  server->connections_used = used;
}

// Counts a new call on its connection; false (nothing counted) when the
// connection already has max_calls_per_connection calls alive.
static bool connection_admit(wgrpc_server *server, const char *peer) {
  WGRPC_ASSERT(server->max_calls_per_connection > 0 && peer != NULL,
               "connection_admit without a limit");
  // Keep the table at most half full (counting slots of connections whose
  // calls all ended: a rehash drops those).
  if ((server->connections_used + 1) * 2 > server->connections_capacity) {
    size_t live = 0;
    for (size_t i = 0; i < server->connections_capacity; i++) {
      live += server->connections[i].peer != NULL &&
              server->connections[i].calls > 0;
    }
    size_t capacity = 64;
    while ((live + 1) * 4 > capacity) {
      capacity *= 2;
    }
    connections_rehash(server, capacity);
  }
  connection_count *slot =
      connection_slot(server->connections, server->connections_capacity, peer);
  if (slot->peer == NULL) {
    slot->peer = strdup(peer);
    WGRPC_ASSERT(slot->peer != NULL, "out of memory");
    slot->calls = 0;
    server->connections_used += 1;
  }
  if (slot->calls >= server->max_calls_per_connection ||
      slot->bytes >= WGRPC_CONNECTION_PENDING_BYTES_MAX) {
    return false;
  }
  slot->calls += 1;
  return true;
}

static void connection_release(wgrpc_server *server, const char *peer,
                               int64_t bytes) {
  connection_count *slot =
      connection_slot(server->connections, server->connections_capacity, peer);
  WGRPC_ASSERT(slot->peer != NULL && slot->calls > 0 && slot->bytes >= bytes,
               "a connection's call count out of sync");
  slot->calls -= 1;
  slot->bytes -= bytes;
}

// Adds (or, negative, removes) bytes the call hands to gRPC core and that
// are not sent yet. Under call->mutex (taken before server->mutex).
static void call_count_bytes(wgrpc_call *call, int64_t delta) {
  if (!call->counted_on_connection || delta == 0 || call->server == NULL) {
    return;
  }
  wgrpc_server *server = call->server;
  lock(&server->mutex);
  connection_count *slot = connection_slot(
      server->connections, server->connections_capacity, call->peer);
  WGRPC_ASSERT(slot->peer != NULL && slot->bytes + delta >= 0,
               "a connection's byte count out of sync");
  slot->bytes += delta;
  call->connection_bytes += delta;
  unlock(&server->mutex);
}

// ---------------------------------------------------------------------------
// Calls

static void call_handle_release(wgrpc_call *call) {
  int previous = atomic_fetch_sub(&call->handle_refs, 1);
  WGRPC_ASSERT(previous >= 1, "call handle released too often");
  if (previous == 1) {
    pthread_mutex_destroy(&call->mutex);
    if (call->peer != NULL) {
      gpr_free(call->peer);
    }
    free(call->identity);
    free(call->traceparent);
    free(call->request_id);
    free(call);
  }
}

static void call_grpc_side_finish(wgrpc_call *call) {
  wgrpc_server *server = call->server;
  lock(&server->mutex);
  if (call->live_prev != NULL) {
    call->live_prev->live_next = call->live_next;
  } else {
    server->live_calls = call->live_next;
  }
  if (call->live_next != NULL) {
    call->live_next->live_prev = call->live_prev;
  }
  call->live_prev = NULL;
  call->live_next = NULL;
  server->live_call_count -= 1;
  if (call->counted_on_connection) {
    connection_release(server, call->peer, call->connection_bytes);
    call->counted_on_connection = false;
    call->connection_bytes = 0;
  }
  unlock(&server->mutex);

  grpc_call_unref(call->call);
  call->call = NULL;
  call->server = NULL;
  if (call->has_status_message) {
    grpc_slice_unref(call->status_message);
    call->has_status_message = false;
  }
  for (size_t i = 0; i < call->trailing_metadata_count; i++) {
    grpc_slice_unref(call->trailing_metadata[i].key);
    grpc_slice_unref(call->trailing_metadata[i].value);
  }
  call->trailing_metadata_count = 0;
  if (call->response != NULL) {
    grpc_byte_buffer_destroy(call->response);
    call->response = NULL;
  }
  call_handle_release(call);
}

static void call_grpc_release(wgrpc_call *call) {
  int previous = atomic_fetch_sub(&call->grpc_refs, 1);
  WGRPC_ASSERT(previous >= 1, "call gRPC side released too often");
  if (previous == 1) {
    call_grpc_side_finish(call);
  }
}

// Creates the call, links it into the live list and decides under the server
// lock whether the application may see it, so shutdown's orphan pass cannot
// miss a call handed over concurrently.
// A copy of `length` bytes at `bytes`, NUL-terminated for debuggers.
static char *copy_bytes(const void *bytes, size_t length) {
  char *copy = malloc(length + 1);
  WGRPC_ASSERT(copy != NULL, "out of memory");
  memcpy(copy, bytes, length);
  copy[length] = '\0';
  return copy;
}

// An identity is stored with the transactions it writes and logged: it must
// be 1 to WGRPC_IDENTITY_BYTES_MAX bytes with no control characters (no NUL
// for Postgres text, no newline for a log line). A certificate whose chosen
// name breaks this carries no identity.
static bool identity_is_printable(const char *value, size_t length) {
  if (length == 0 || length > WGRPC_IDENTITY_BYTES_MAX) {
    return false;
  }
  for (size_t i = 0; i < length; i++) {
    unsigned char byte = (unsigned char)value[i];
    if (byte < 0x20 || byte == 0x7f) {
      return false;
    }
  }
  return true;
}

// The verified client certificate's identity: the first URI SAN, else the
// first DNS SAN, else the subject CN. gRPC core lists a certificate's SANs
// in the order the certificate gives them.
static void call_read_identity(wgrpc_call *call) {
  grpc_auth_context *context = grpc_call_auth_context(call->call);
  if (context == NULL) {
    return;
  }
  static const char *const sources[] = {GRPC_PEER_URI_PROPERTY_NAME,
                                        GRPC_PEER_DNS_PROPERTY_NAME,
                                        GRPC_X509_CN_PROPERTY_NAME};
  for (size_t i = 0; i < sizeof(sources) / sizeof(sources[0]); i++) {
    grpc_auth_property_iterator properties =
        grpc_auth_context_find_properties_by_name(context, sources[i]);
    const grpc_auth_property *property =
        grpc_auth_property_iterator_next(&properties);
    if (property == NULL) {
      continue;
    }
    // The first name of the first source that has one decides: a bad one
    // leaves the call without identity rather than falling back.
    if (identity_is_printable(property->value, property->value_length)) {
      call->identity = copy_bytes(property->value, property->value_length);
      call->identity_len = property->value_length;
    }
    break;
  }
  grpc_auth_context_release(context);
}

// Copies the request metadata the service reads. gRPC core lowercases keys.
static void call_read_metadata(wgrpc_call *call,
                               const grpc_metadata_array *metadata) {
  for (size_t i = 0; i < metadata->count; i++) {
    const grpc_metadata *entry = &metadata->metadata[i];
    size_t value_length = GRPC_SLICE_LENGTH(entry->value);
    if (value_length == 0 || value_length > WGRPC_METADATA_VALUE_BYTES_MAX) {
      continue;
    }
    char **target = NULL;
    size_t *target_length = NULL;
    if (grpc_slice_str_cmp(entry->key, "traceparent") == 0) {
      target = &call->traceparent;
      target_length = &call->traceparent_len;
    } else if (grpc_slice_str_cmp(entry->key, "x-request-id") == 0) {
      target = &call->request_id;
      target_length = &call->request_id_len;
    }
    if (target != NULL && *target == NULL) {
      *target = copy_bytes(GRPC_SLICE_START_PTR(entry->value), value_length);
      *target_length = value_length;
    }
  }
}

static wgrpc_call *call_create(wgrpc_server *server, grpc_call *grpc_call_,
                               gpr_timespec deadline,
                               const grpc_metadata_array *metadata,
                               bool registered, bool *hand_to_application) {
  wgrpc_call *call = calloc(1, sizeof(*call));
  WGRPC_ASSERT(call != NULL, "out of memory");
  WGRPC_ASSERT(pthread_mutex_init(&call->mutex, NULL) == 0,
               "pthread_mutex_init failed");
  call->server = server;
  call->call = grpc_call_;
  call->state = CALL_AWAITING_RESPONSE;
  atomic_init(&call->cancelled, 0);
  atomic_init(&call->grpc_refs, 2);   // close batch + response batch
  atomic_init(&call->handle_refs, 2); // owner's handle + gRPC side
  call->deadline = gpr_convert_clock_type(deadline, GPR_CLOCK_MONOTONIC);
  call->peer = grpc_call_get_peer(grpc_call_);
  if (registered) {
    call_read_identity(call);
    call_read_metadata(call, metadata);
  }
  call->closed_tag = (wgrpc_tag){TAG_CALL_CLOSED, call};
  call->responded_tag = (wgrpc_tag){TAG_CALL_RESPONDED, call};
  call->sent_tag = (wgrpc_tag){TAG_CALL_SENT, call};
  call->read_tag = (wgrpc_tag){TAG_CALL_READ, call};

  lock(&server->mutex);
  *hand_to_application = registered && !server->shutting_down;
  if (*hand_to_application && server->max_calls_per_connection > 0 &&
      call->peer != NULL) {
    // Its whole life counts, until its answer has left: a client that never
    // reads holds its answers, and so its connection's count, up.
    call->counted_on_connection = connection_admit(server, call->peer);
    call->over_connection_limit = !call->counted_on_connection;
    *hand_to_application = call->counted_on_connection;
  }
  call->handed_to_application = *hand_to_application;
  if (*hand_to_application) {
    server->calls_unanswered += 1;
  }
  call->live_next = server->live_calls;
  if (server->live_calls != NULL) {
    server->live_calls->live_prev = call;
  }
  server->live_calls = call;
  server->live_call_count += 1;
  unlock(&server->mutex);
  return call;
}

// Posted in its own batch at call start so cancellation becomes visible while
// the application is still working on the call.
static void call_start_close_batch(wgrpc_call *call) {
  grpc_op op;
  memset(&op, 0, sizeof(op));
  op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
  op.data.recv_close_on_server.cancelled = &call->close_cancelled;
  grpc_call_error error =
      grpc_call_start_batch(call->call, &op, 1, &call->closed_tag, NULL);
  if (error != GRPC_CALL_OK) {
    WGRPC_LOG_ERROR("RECV_CLOSE_ON_SERVER failed: %s",
            grpc_call_error_to_string(error));
    atomic_store(&call->cancelled, 1);
    lock(&call->mutex);
    call->closed = true;
    unlock(&call->mutex);
    call_grpc_release(call);
  }
}

// Caller holds call->mutex. The call stops counting as unanswered for the
// drain once its status batch starts (`responding`: it then counts as a
// response in flight until the batch completes, with no moment between the
// two when the drain could see neither) or will never start.
static void call_mark_answered(wgrpc_call *call, wgrpc_server *server,
                               bool responding) {
  if (!call->handed_to_application && !responding) {
    return;
  }
  // Under call->mutex: shutdown cannot free the server while this call is
  // not orphaned.
  lock(&server->mutex);
  if (call->handed_to_application) {
    call->handed_to_application = false;
    server->calls_unanswered -= 1;
  }
  if (responding) {
    call->response_in_flight = true;
    server->responses_in_flight += 1;
  }
  pthread_cond_broadcast(&server->changed);
  unlock(&server->mutex);
}

// The status batch completed (or failed to start): the drain stops waiting
// for it. Before the batch's gRPC reference is released, while
// call->server is still set.
static void call_response_done(wgrpc_call *call) {
  wgrpc_server *server = call->server;
  lock(&server->mutex);
  if (call->response_in_flight) {
    call->response_in_flight = false;
    server->responses_in_flight -= 1;
    pthread_cond_broadcast(&server->changed);
  }
  unlock(&server->mutex);
}

// Caller holds call->mutex and has moved the state to CALL_RESPONDED. Keeps
// what the status batch sends in the call, so the batch can start later.
static void call_prepare_response(wgrpc_call *call, int status_code,
                                  const char *message, const uint8_t *response,
                                  size_t response_len,
                                  const uint8_t *status_details,
                                  size_t status_details_len) {
  call->status_code = status_code;
  if (status_code == WGRPC_STATUS_OK && response != NULL) {
    grpc_slice slice =
        response_len > 0
            ? grpc_slice_from_copied_buffer((const char *)response,
                                            response_len)
            : grpc_empty_slice();
    call->response = grpc_raw_byte_buffer_create(&slice, 1);
    grpc_slice_unref(slice);
  }
  if (status_details != NULL && status_details_len > 0) {
    call->trailing_metadata[0].key =
        grpc_slice_from_static_string(WGRPC_STATUS_DETAILS_KEY);
    call->trailing_metadata[0].value = grpc_slice_from_copied_buffer(
        (const char *)status_details, status_details_len);
    call->trailing_metadata_count = 1;
  }
  if (message != NULL && message[0] != '\0') {
    call->status_message = grpc_slice_from_copied_string(message);
    call->has_status_message = true;
  }
}

// Caller holds call->mutex; the response is prepared and no send is in
// flight.
static void call_start_response_batch(wgrpc_call *call) {
  // Before the batch starts: its completion may free the gRPC side.
  call_mark_answered(call, call->server, true);
  grpc_op ops[3];
  memset(ops, 0, sizeof(ops));
  size_t op_count = 0;

  if (!call->initial_metadata_sent) {
    call->initial_metadata_sent = true;
    ops[op_count].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[op_count].data.send_initial_metadata.count = 0;
    op_count++;
  }
  if (call->response != NULL) {
    ops[op_count].op = GRPC_OP_SEND_MESSAGE;
    ops[op_count].data.send_message.send_message = call->response;
    op_count++;
  }
  ops[op_count].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
  ops[op_count].data.send_status_from_server.status =
      (grpc_status_code)call->status_code;
  ops[op_count].data.send_status_from_server.status_details =
      call->has_status_message ? &call->status_message : NULL;
  ops[op_count].data.send_status_from_server.trailing_metadata_count =
      call->trailing_metadata_count;
  ops[op_count].data.send_status_from_server.trailing_metadata =
      call->trailing_metadata_count > 0 ? call->trailing_metadata : NULL;
  op_count++;

  grpc_call_error error = grpc_call_start_batch(call->call, ops, op_count,
                                                &call->responded_tag, NULL);
  if (error != GRPC_CALL_OK) {
    WGRPC_LOG_ERROR("response batch failed: %s",
            grpc_call_error_to_string(error));
    call_response_done(call);
    // The owner's handle ref keeps the struct (and its mutex) alive here.
    call_grpc_release(call);
  }
}

void wgrpc_call_respond(wgrpc_call *call, int status_code, const char *message,
                        const uint8_t *response, size_t response_len,
                        const uint8_t *status_details,
                        size_t status_details_len) {
  WGRPC_ASSERT(call != NULL, "wgrpc_call_respond: NULL call");
  WGRPC_ASSERT(status_code >= 0 && status_code <= WGRPC_STATUS_CODE_MAX,
               "wgrpc_call_respond: status code out of range");
  lock(&call->mutex);
  if (call->state == CALL_ORPHANED) {
    unlock(&call->mutex);
    return;
  }
  WGRPC_ASSERT(call->state == CALL_AWAITING_RESPONSE,
               "wgrpc_call_respond called twice on one call");
  call->state = CALL_RESPONDED;
  call_prepare_response(call, status_code, message, response, response_len,
                        status_details, status_details_len);
  if (call->response != NULL) {
    // Until the call's gRPC side is done (call_grpc_side_finish).
    call_count_bytes(call, (int64_t)response_len);
  }
  if (call->send_pending) {
    call->status_deferred = true;
  } else {
    call_start_response_batch(call);
  }
  unlock(&call->mutex);
}

void wgrpc_call_finish(wgrpc_call *call, int status_code, const char *message,
                       const uint8_t *status_details,
                       size_t status_details_len) {
  wgrpc_call_respond(call, status_code, message, NULL, 0, status_details,
                     status_details_len);
}

// Starts one SEND_MESSAGE batch for `buffer` (owned by the call from now
// on), preceded by the initial metadata on the first send. Under
// call->mutex; send_pending must be false. False when gRPC core refused (the
// buffer is then freed and nothing is pending).
static bool call_start_send_locked(wgrpc_call *call, grpc_byte_buffer *buffer) {
  WGRPC_ASSERT(!call->send_pending, "a send is already in flight");
  call->send_buffer = buffer;
  call_count_bytes(call, (int64_t)grpc_byte_buffer_length(buffer));
  grpc_op ops[2];
  memset(ops, 0, sizeof(ops));
  size_t op_count = 0;
  if (!call->initial_metadata_sent) {
    call->initial_metadata_sent = true;
    ops[op_count].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[op_count].data.send_initial_metadata.count = 0;
    op_count++;
  }
  ops[op_count].op = GRPC_OP_SEND_MESSAGE;
  ops[op_count].data.send_message.send_message = call->send_buffer;
  op_count++;

  call->send_pending = true;
  atomic_fetch_add(&call->grpc_refs, 1);
  grpc_call_error error =
      grpc_call_start_batch(call->call, ops, op_count, &call->sent_tag, NULL);
  if (error != GRPC_CALL_OK) {
    WGRPC_LOG_ERROR("send batch failed: %s",
            grpc_call_error_to_string(error));
    call->send_pending = false;
    call_count_bytes(call, -(int64_t)grpc_byte_buffer_length(call->send_buffer));
    grpc_byte_buffer_destroy(call->send_buffer);
    call->send_buffer = NULL;
    // The response ref is still held: this cannot free the gRPC side.
    atomic_fetch_sub(&call->grpc_refs, 1);
    return false;
  }
  return true;
}

static grpc_byte_buffer *byte_buffer_copy(const uint8_t *message,
                                          size_t message_len) {
  grpc_slice slice =
      message_len > 0
          ? grpc_slice_from_copied_buffer((const char *)message, message_len)
          : grpc_empty_slice();
  grpc_byte_buffer *buffer = grpc_raw_byte_buffer_create(&slice, 1);
  grpc_slice_unref(slice);
  return buffer;
}

int wgrpc_call_send_message(wgrpc_call *call, const uint8_t *message,
                            size_t message_len, wgrpc_send_callback callback,
                            void *ctx) {
  WGRPC_ASSERT(call != NULL && callback != NULL,
               "wgrpc_call_send_message: NULL argument");
  WGRPC_ASSERT(message != NULL || message_len == 0,
               "wgrpc_call_send_message: NULL message");
  lock(&call->mutex);
  if (call->state != CALL_AWAITING_RESPONSE) {
    unlock(&call->mutex);
    return WGRPC_STATUS_CANCELLED;
  }
  WGRPC_ASSERT(!call->send_pending,
               "wgrpc_call_send_message: a send is already in flight");
  call->send_callback = callback;
  call->send_ctx = ctx;
  bool started =
      call_start_send_locked(call, byte_buffer_copy(message, message_len));
  unlock(&call->mutex);
  return started ? WGRPC_STATUS_OK : WGRPC_STATUS_INTERNAL;
}

int wgrpc_call_send_messages(wgrpc_call *call, const uint8_t *const *messages,
                             const size_t *lengths, size_t count,
                             wgrpc_send_many_callback callback, void *ctx) {
  WGRPC_ASSERT(call != NULL && callback != NULL && count > 0 &&
                   messages != NULL && lengths != NULL,
               "wgrpc_call_send_messages: bad arguments");
  lock(&call->mutex);
  if (call->state != CALL_AWAITING_RESPONSE) {
    unlock(&call->mutex);
    return WGRPC_STATUS_CANCELLED;
  }
  WGRPC_ASSERT(!call->send_pending,
               "wgrpc_call_send_messages: a send is already in flight");
  grpc_byte_buffer **queue = calloc(count, sizeof(*queue));
  WGRPC_ASSERT(queue != NULL, "out of memory");
  for (size_t i = 0; i < count; i++) {
    WGRPC_ASSERT(messages[i] != NULL || lengths[i] == 0,
                 "wgrpc_call_send_messages: NULL message");
    queue[i] = byte_buffer_copy(messages[i], lengths[i]);
  }
  call->send_queue = queue;
  call->send_queue_count = count;
  call->send_queue_next = 1;
  call->send_queue_sent = 0;
  call->send_many_callback = callback;
  call->send_ctx = ctx;
  bool started = call_start_send_locked(call, queue[0]);
  if (!started) {
    for (size_t i = 1; i < count; i++) {
      grpc_byte_buffer_destroy(queue[i]);
    }
    free(queue);
    call->send_queue = NULL;
  }
  unlock(&call->mutex);
  return started ? WGRPC_STATUS_OK : WGRPC_STATUS_INTERNAL;
}

// A queued send completed (under call->mutex): starts the next one and
// returns true, or frees what is left of the queue and returns false.
static bool call_send_queue_advance(wgrpc_call *call, bool success) {
  if (success) {
    call->send_queue_sent += 1;
  }
  if (success && !call->status_deferred &&
      call->state == CALL_AWAITING_RESPONSE &&
      call->send_queue_next < call->send_queue_count) {
    grpc_byte_buffer *next = call->send_queue[call->send_queue_next];
    call->send_queue[call->send_queue_next] = NULL;
    call->send_queue_next += 1;
    if (call_start_send_locked(call, next)) {
      return true;
    }
  }
  for (size_t i = call->send_queue_next; i < call->send_queue_count; i++) {
    grpc_byte_buffer_destroy(call->send_queue[i]);
  }
  free(call->send_queue);
  call->send_queue = NULL;
  return false;
}

static void call_send_completed(wgrpc_call *call, bool success) {
  lock(&call->mutex);
  WGRPC_ASSERT(call->send_pending, "send completion without a send");
  call->send_pending = false;
  call_count_bytes(call, -(int64_t)grpc_byte_buffer_length(call->send_buffer));
  grpc_byte_buffer_destroy(call->send_buffer);
  call->send_buffer = NULL;
  if (call->send_queue != NULL && call_send_queue_advance(call, success)) {
    // The next message of the queue is on its way; nothing to tell yet.
    unlock(&call->mutex);
    call_grpc_release(call); // the completed send batch
    return;
  }
  wgrpc_send_callback callback = call->send_callback;
  wgrpc_send_many_callback many_callback = call->send_many_callback;
  size_t sent = call->send_queue_sent;
  call->send_many_callback = NULL;
  void *ctx = call->send_ctx;
  if (call->status_deferred) {
    call->status_deferred = false;
    call_start_response_batch(call);
  }
  unlock(&call->mutex);
  if (many_callback != NULL) {
    many_callback(ctx, sent);
  } else {
    callback(ctx, success ? 1 : 0);
  }
  call_grpc_release(call); // the send batch
}

int wgrpc_call_read_message(wgrpc_call *call, wgrpc_read_callback callback,
                            void *ctx) {
  WGRPC_ASSERT(call != NULL && callback != NULL,
               "wgrpc_call_read_message: NULL argument");
  lock(&call->mutex);
  if (call->state != CALL_AWAITING_RESPONSE) {
    unlock(&call->mutex);
    return WGRPC_STATUS_CANCELLED;
  }
  WGRPC_ASSERT(!call->read_pending,
               "wgrpc_call_read_message: a read is already in flight");
  grpc_op op;
  memset(&op, 0, sizeof(op));
  op.op = GRPC_OP_RECV_MESSAGE;
  op.data.recv_message.recv_message = &call->read_buffer;
  call->read_buffer = NULL;
  call->read_pending = true;
  call->read_callback = callback;
  call->read_ctx = ctx;
  atomic_fetch_add(&call->grpc_refs, 1);
  grpc_call_error error =
      grpc_call_start_batch(call->call, &op, 1, &call->read_tag, NULL);
  int result = WGRPC_STATUS_OK;
  if (error != GRPC_CALL_OK) {
    WGRPC_LOG_ERROR("read batch failed: %s",
            grpc_call_error_to_string(error));
    call->read_pending = false;
    atomic_fetch_sub(&call->grpc_refs, 1); // the response ref is still held
    result = WGRPC_STATUS_INTERNAL;
  }
  unlock(&call->mutex);
  return result;
}

static void call_read_completed(wgrpc_call *call, bool success) {
  lock(&call->mutex);
  WGRPC_ASSERT(call->read_pending, "read completion without a read");
  call->read_pending = false;
  grpc_byte_buffer *buffer = call->read_buffer;
  call->read_buffer = NULL;
  wgrpc_read_callback callback = call->read_callback;
  void *ctx = call->read_ctx;
  unlock(&call->mutex);

  // An empty message must still be told apart from the end of the stream.
  static const uint8_t empty_message[1] = {0};
  bool delivered = false;
  if (success && buffer != NULL) {
    grpc_byte_buffer_reader reader;
    if (grpc_byte_buffer_reader_init(&reader, buffer)) {
      grpc_slice message = grpc_byte_buffer_reader_readall(&reader);
      grpc_byte_buffer_reader_destroy(&reader);
      size_t length = GRPC_SLICE_LENGTH(message);
      callback(ctx, length > 0 ? GRPC_SLICE_START_PTR(message) : empty_message,
               length);
      grpc_slice_unref(message);
      delivered = true;
    }
  }
  if (!delivered) {
    callback(ctx, NULL, 0);
  }
  if (buffer != NULL) {
    grpc_byte_buffer_destroy(buffer);
  }
  call_grpc_release(call); // the read batch
}

int wgrpc_call_on_close(wgrpc_call *call, wgrpc_close_callback callback,
                        void *ctx) {
  WGRPC_ASSERT(call != NULL && callback != NULL,
               "wgrpc_call_on_close: NULL argument");
  lock(&call->mutex);
  bool registered = !call->closed;
  if (registered) {
    WGRPC_ASSERT(call->close_callback == NULL,
                 "wgrpc_call_on_close called twice on one call");
    call->close_callback = callback;
    call->close_ctx = ctx;
  }
  unlock(&call->mutex);
  return registered ? 1 : 0;
}

static void call_close_completed(wgrpc_call *call, bool success) {
  if (call->close_cancelled != 0 || !success) {
    atomic_store(&call->cancelled, 1);
  }
  lock(&call->mutex);
  call->closed = true;
  wgrpc_close_callback callback = call->close_callback;
  void *ctx = call->close_ctx;
  call->close_callback = NULL;
  unlock(&call->mutex);
  if (callback != NULL) {
    callback(ctx);
  }
  call_grpc_release(call); // the close batch
}

void wgrpc_call_release(wgrpc_call *call) {
  WGRPC_ASSERT(call != NULL, "wgrpc_call_release: NULL call");
  lock(&call->mutex);
  bool unanswered = call->state == CALL_AWAITING_RESPONSE;
  unlock(&call->mutex);
  if (unanswered) {
    // Only the owner responds, and the owner is here: no race with another
    // respond. An orphan pass in between turns this into a no-op.
    wgrpc_call_respond(call, WGRPC_STATUS_INTERNAL,
                       "handler released the call without responding", NULL,
                       0, NULL, 0);
  }
  call_handle_release(call);
}

int wgrpc_call_is_cancelled(const wgrpc_call *call) {
  return atomic_load(&((wgrpc_call *)call)->cancelled);
}

int64_t wgrpc_call_deadline_remaining_ms(const wgrpc_call *call) {
  if (call->deadline.tv_sec == INT64_MAX) {
    return INT64_MAX;
  }
  gpr_timespec remaining =
      gpr_time_sub(call->deadline, gpr_now(GPR_CLOCK_MONOTONIC));
  // gpr normalizes tv_nsec into [0, 1e9), also for negative spans.
  return remaining.tv_sec * 1000 + remaining.tv_nsec / 1000000;
}

void wgrpc_call_get_context(const wgrpc_call *call,
                            wgrpc_call_context *context) {
  *context = (wgrpc_call_context){
      .peer = call->peer,
      .peer_len = call->peer != NULL ? strlen(call->peer) : 0,
      .identity = call->identity,
      .identity_len = call->identity_len,
      .traceparent = call->traceparent,
      .traceparent_len = call->traceparent_len,
      .request_id = call->request_id,
      .request_id_len = call->request_id_len,
  };
}

size_t wgrpc_call_peer(const wgrpc_call *call, char *buffer, size_t capacity) {
  const char *peer = call->peer != NULL ? call->peer : "";
  size_t length = strlen(peer);
  if (buffer != NULL && capacity > 0) {
    size_t copied = length < capacity - 1 ? length : capacity - 1;
    memcpy(buffer, peer, copied);
    buffer[copied] = '\0';
  }
  return length;
}

// ---------------------------------------------------------------------------
// Accepting calls

static bool slot_post(request_slot *slot) {
  wgrpc_server *server = slot->server;
  slot->call = NULL;
  slot->payload = NULL;
  grpc_metadata_array_init(&slot->request_metadata);
  grpc_call_error error;
  if (slot->method_index >= 0) {
    // A streaming method's messages are read by the application.
    error = grpc_server_request_registered_call(
        server->server, server->registered_methods[slot->method_index],
        &slot->call, &slot->deadline, &slot->request_metadata,
        slot->streaming ? NULL : &slot->payload, server->cq, server->cq,
        &slot->tag);
  } else {
    grpc_call_details_init(&slot->details);
    error = grpc_server_request_call(server->server, &slot->call,
                                     &slot->details, &slot->request_metadata,
                                     server->cq, server->cq, &slot->tag);
  }
  if (error != GRPC_CALL_OK) {
    WGRPC_LOG_ERROR("posting a request failed: %s",
            grpc_call_error_to_string(error));
    grpc_metadata_array_destroy(&slot->request_metadata);
    if (slot->method_index < 0) {
      grpc_call_details_destroy(&slot->details);
    }
    return false;
  }
  return true;
}

// Answers a call the application never sees, then drops the owner handle.
static void call_answer_internally(wgrpc_call *call, int status_code,
                                   const char *message) {
  wgrpc_call_respond(call, status_code, message, NULL, 0, NULL, 0);
  wgrpc_call_release(call);
}

static void slot_completed(request_slot *slot, bool success) {
  wgrpc_server *server = slot->server;
  grpc_call *accepted = slot->call;
  grpc_byte_buffer *payload = slot->payload;
  slot->call = NULL;
  slot->payload = NULL;

  if (success && accepted != NULL) {
    bool registered = slot->method_index >= 0;
    gpr_timespec deadline =
        registered ? slot->deadline : slot->details.deadline;
    bool hand_to_application = false;
    wgrpc_call *call =
        call_create(server, accepted, deadline, &slot->request_metadata,
                    registered, &hand_to_application);
    // The array is ours; its entries belong to the call, and what the call
    // keeps of them is copied.
    grpc_metadata_array_destroy(&slot->request_metadata);
    call_start_close_batch(call);
    if (!registered) {
      char message[WGRPC_ERROR_MESSAGE_BYTES_MAX];
      snprintf(message, sizeof(message), "Method not found: %.*s",
               (int)GRPC_SLICE_LENGTH(slot->details.method),
               (const char *)GRPC_SLICE_START_PTR(slot->details.method));
      call_answer_internally(call, WGRPC_STATUS_UNIMPLEMENTED, message);
    } else if (call->over_connection_limit) {
      // Retryable, as a stream refused by the HTTP/2 limit would be.
      call_answer_internally(call, WGRPC_STATUS_UNAVAILABLE,
                             "too many calls open on this connection");
    } else if (!hand_to_application) {
      call_answer_internally(call, WGRPC_STATUS_UNAVAILABLE,
                             "server is shutting down");
    } else if (payload == NULL) {
      server->callback(server->user_ctx, call, slot->method_index, NULL, 0);
    } else {
      grpc_byte_buffer_reader reader;
      if (!grpc_byte_buffer_reader_init(&reader, payload)) {
        call_answer_internally(call, WGRPC_STATUS_INTERNAL,
                               "cannot read the request message");
      } else {
        grpc_slice request = grpc_byte_buffer_reader_readall(&reader);
        grpc_byte_buffer_reader_destroy(&reader);
        server->callback(server->user_ctx, call, slot->method_index,
                         GRPC_SLICE_START_PTR(request),
                         GRPC_SLICE_LENGTH(request));
        grpc_slice_unref(request);
      }
    }
  } else {
    grpc_metadata_array_destroy(&slot->request_metadata);
    if (accepted != NULL) {
      grpc_call_unref(accepted);
    }
  }

  if (payload != NULL) {
    grpc_byte_buffer_destroy(payload);
  }
  if (slot->method_index < 0) {
    grpc_call_details_destroy(&slot->details);
  }

  // A failed slot means the server is shutting down; otherwise keep the
  // number of posted requests constant.
  if (success) {
    lock(&server->mutex);
    bool repost = !server->shutting_down;
    unlock(&server->mutex);
    if (repost) {
      slot_post(slot);
    }
  }
}

static void *cq_thread_main(void *argument) {
  wgrpc_server *server = argument;
  pthread_setname_np(pthread_self(), "wgrpc-server-cq");
  for (;;) {
    grpc_event event = grpc_completion_queue_next(
        server->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
    if (event.type == GRPC_QUEUE_SHUTDOWN) {
      break;
    }
    if (event.type != GRPC_OP_COMPLETE) {
      continue;
    }
    wgrpc_tag *tag = event.tag;
    switch (tag->kind) {
    case TAG_REQUEST_REGISTERED:
    case TAG_REQUEST_UNKNOWN:
      slot_completed(tag->owner, event.success != 0);
      break;
    case TAG_CALL_CLOSED:
      call_close_completed(tag->owner, event.success != 0);
      break;
    case TAG_CALL_SENT:
      call_send_completed(tag->owner, event.success != 0);
      break;
    case TAG_CALL_READ:
      call_read_completed(tag->owner, event.success != 0);
      break;
    case TAG_CALL_RESPONDED:
      call_response_done(tag->owner);
      call_grpc_release(tag->owner);
      break;
    case TAG_SERVER_SHUTDOWN:
      lock(&server->mutex);
      server->shutdown_notified = true;
      pthread_cond_broadcast(&server->changed);
      unlock(&server->mutex);
      break;
    }
  }
  return NULL;
}

// ---------------------------------------------------------------------------
// Server lifecycle

// Waits out a queue that was shut down and has no thread of its own draining
// it (a create that failed before starting one): gRPC core requires every
// event to be taken before the queue is destroyed.
static void drain_shut_down_queue(grpc_completion_queue *queue) {
  while (grpc_completion_queue_next(queue, gpr_inf_future(GPR_CLOCK_MONOTONIC),
                                    NULL)
             .type != GRPC_QUEUE_SHUTDOWN) {
  }
}

// Frees whatever part of the server exists; used by a failed create (the
// server never started) and at the end of shutdown (everything drained).
static void server_free(wgrpc_server *server) {
  if (server->server != NULL) {
    grpc_server_destroy(server->server);
  }
  if (server->cq != NULL) {
    grpc_completion_queue_shutdown(server->cq);
    drain_shut_down_queue(server->cq);
    grpc_completion_queue_destroy(server->cq);
  }
  pthread_cond_destroy(&server->changed);
  pthread_mutex_destroy(&server->mutex);
  free(server->registered_methods);
  free(server->methods_streaming);
  free(server->slots);
  for (size_t i = 0; i < server->connections_capacity; i++) {
    free(server->connections[i].peer);
  }
  free(server->connections);
  wgrpc_tls_release(server->tls);
  free(server);
}

wgrpc_server *wgrpc_server_create(const char *listen_address,
                                  const char *const *methods,
                                  int method_count,
                                  wgrpc_request_callback callback,
                                  void *user_ctx, char *error,
                                  size_t error_capacity) {
  return wgrpc_server_create_with_kinds(listen_address, methods, NULL,
                                        method_count, callback, user_ctx,
                                        error, error_capacity);
}

wgrpc_server *wgrpc_server_create_with_kinds(
    const char *listen_address, const char *const *methods,
    const int *method_kinds, int method_count, wgrpc_request_callback callback,
    void *user_ctx, char *error, size_t error_capacity) {
  return wgrpc_server_create_with_options(listen_address, methods,
                                          method_kinds, method_count, NULL,
                                          callback, user_ctx, error,
                                          error_capacity);
}

// Appends an integer channel argument when `value` is set (> 0).
static void add_integer_argument(grpc_arg *arguments, size_t *count,
                                 size_t capacity, const char *key,
                                 int value) {
  if (value <= 0) {
    return;
  }
  WGRPC_ASSERT(*count < capacity, "too many channel arguments");
  arguments[*count].type = GRPC_ARG_INTEGER;
  arguments[*count].key = (char *)key;
  arguments[*count].value.integer = value;
  *count += 1;
}

wgrpc_server *wgrpc_server_create_with_options(
    const char *listen_address, const char *const *methods,
    const int *method_kinds, int method_count,
    const wgrpc_server_options *options, wgrpc_request_callback callback,
    void *user_ctx, char *error, size_t error_capacity) {
  set_error(error, error_capacity, "");
  wgrpc_server_options settings = {0};
  if (options != NULL) {
    settings = *options;
  }
  if (listen_address == NULL || callback == NULL || method_count < 0 ||
      method_count > WGRPC_METHODS_MAX ||
      (method_count > 0 && methods == NULL)) {
    set_error(error, error_capacity, "invalid arguments");
    return NULL;
  }
  pthread_once(&library_once, library_init_once);

  wgrpc_server *server = calloc(1, sizeof(*server));
  WGRPC_ASSERT(server != NULL, "out of memory");
  WGRPC_ASSERT(pthread_mutex_init(&server->mutex, NULL) == 0,
               "pthread_mutex_init failed");
  pthread_condattr_t condition_attributes;
  pthread_condattr_init(&condition_attributes);
  pthread_condattr_setclock(&condition_attributes, CLOCK_MONOTONIC);
  WGRPC_ASSERT(pthread_cond_init(&server->changed, &condition_attributes) == 0,
               "pthread_cond_init failed");
  pthread_condattr_destroy(&condition_attributes);
  server->callback = callback;
  server->user_ctx = user_ctx;
  server->method_count = method_count;
  server->shutdown_tag = (wgrpc_tag){TAG_SERVER_SHUTDOWN, server};
  // Twice the advertised limit, and 16 MiB of answers not yet sent. A
  // client that honours the limit still opens a new stream as soon as it
  // has an answer, before this server's queue thread may have seen that
  // answer's completion (wallet-bench's setup was refused at exactly the
  // limit); and a client may open streams before it has the server's
  // SETTINGS at all: past twice the limit such a burst is refused
  // UNAVAILABLE (retryable) too. Eight times was tried: a burst of 6,000
  // streams from a client that never reads then held +455 MB; twice holds
  // +68 MB. The bytes bound what a client that never reads piles up
  // stream by stream.
  server->max_calls_per_connection =
      settings.max_concurrent_streams > 0 ? 2 * settings.max_concurrent_streams
                                          : 0;

  // SO_REUSEPORT would let a second server silently share a busy port.
  grpc_arg arguments[12];
  size_t argument_count = 1;
  arguments[0].type = GRPC_ARG_INTEGER;
  arguments[0].key = GRPC_ARG_ALLOW_REUSEPORT;
  arguments[0].value.integer = 0;
  const size_t capacity = sizeof(arguments) / sizeof(arguments[0]);
  add_integer_argument(arguments, &argument_count, capacity,
                       GRPC_ARG_MAX_CONCURRENT_STREAMS,
                       settings.max_concurrent_streams);
  add_integer_argument(arguments, &argument_count, capacity,
                       GRPC_ARG_MAX_CONNECTION_IDLE_MS,
                       settings.max_connection_idle_ms);
  add_integer_argument(arguments, &argument_count, capacity,
                       GRPC_ARG_MAX_CONNECTION_AGE_MS,
                       settings.max_connection_age_ms);
  add_integer_argument(arguments, &argument_count, capacity,
                       GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS,
                       settings.max_connection_age_grace_ms);
  add_integer_argument(arguments, &argument_count, capacity,
                       GRPC_ARG_KEEPALIVE_TIME_MS, settings.keepalive_time_ms);
  add_integer_argument(arguments, &argument_count, capacity,
                       GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
                       settings.keepalive_timeout_ms);
  add_integer_argument(arguments, &argument_count, capacity,
                       GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
                       settings.max_receive_message_bytes);
  add_integer_argument(arguments, &argument_count, capacity,
                       GRPC_ARG_MAX_METADATA_SIZE,
                       settings.max_header_list_bytes);
  add_integer_argument(arguments, &argument_count, capacity,
                       GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS,
                       settings.handshake_timeout_ms);
  grpc_channel_args channel_args = {argument_count, arguments};
  server->server = grpc_server_create(&channel_args, NULL);
  server->cq = grpc_completion_queue_create_for_next(NULL);
  grpc_server_register_completion_queue(server->server, server->cq, NULL);

  server->registered_methods =
      calloc((size_t)method_count + 1, sizeof(void *));
  server->methods_streaming = calloc((size_t)method_count + 1, sizeof(bool));
  WGRPC_ASSERT(server->registered_methods != NULL &&
                   server->methods_streaming != NULL,
               "out of memory");
  for (int i = 0; i < method_count; i++) {
    if (methods[i] == NULL || methods[i][0] != '/') {
      set_error(error, error_capacity, "method %d is not a path", i);
      server_free(server);
      return NULL;
    }
    int kind = method_kinds != NULL ? method_kinds[i] : WGRPC_METHOD_UNARY;
    if (kind != WGRPC_METHOD_UNARY && kind != WGRPC_METHOD_STREAMING) {
      set_error(error, error_capacity, "method %d has an unknown kind", i);
      server_free(server);
      return NULL;
    }
    server->methods_streaming[i] = kind == WGRPC_METHOD_STREAMING;
    server->registered_methods[i] = grpc_server_register_method(
        server->server, methods[i], NULL,
        server->methods_streaming[i]
            ? GRPC_SRM_PAYLOAD_NONE
            : GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER,
        0);
    if (server->registered_methods[i] == NULL) {
      set_error(error, error_capacity, "cannot register method %s",
                methods[i]);
      server_free(server);
      return NULL;
    }
  }

  if (settings.tls != NULL) {
    // Released in server_free, after grpc_server_destroy: the credentials'
    // fetcher points at it until then.
    wgrpc_tls_retain(settings.tls);
    server->tls = settings.tls;
  }
  grpc_server_credentials *credentials = server_credentials_create(server->tls);
  server->port =
      grpc_server_add_http2_port(server->server, listen_address, credentials);
  grpc_server_credentials_release(credentials);
  if (server->port == 0) {
    set_error(error, error_capacity, "cannot listen on %s", listen_address);
    server_free(server);
    return NULL;
  }

  // Started before grpc_server_start so nothing ever waits on an undrained
  // queue; until then it just blocks in grpc_completion_queue_next.
  if (pthread_create(&server->cq_thread, NULL, cq_thread_main, server) != 0) {
    set_error(error, error_capacity,
              "cannot start the completion queue thread");
    server_free(server);
    return NULL;
  }

  grpc_server_start(server->server);

  server->slot_count = (method_count + 1) * WGRPC_REQUESTS_POSTED_PER_METHOD;
  server->slots = calloc((size_t)server->slot_count, sizeof(request_slot));
  WGRPC_ASSERT(server->slots != NULL, "out of memory");
  for (int i = 0; i < server->slot_count; i++) {
    request_slot *slot = &server->slots[i];
    int method_index = i / WGRPC_REQUESTS_POSTED_PER_METHOD;
    slot->server = server;
    slot->method_index = method_index < method_count ? method_index : -1;
    slot->streaming = slot->method_index >= 0 &&
                      server->methods_streaming[slot->method_index];
    slot->tag = (wgrpc_tag){slot->method_index >= 0 ? TAG_REQUEST_REGISTERED
                                                    : TAG_REQUEST_UNKNOWN,
                            slot};
    WGRPC_ASSERT(slot_post(slot), "cannot post initial request");
  }
  return server;
}

int wgrpc_server_port(const wgrpc_server *server) { return server->port; }

static struct timespec monotonic_after_ms(int64_t milliseconds) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  if (milliseconds < 0) {
    milliseconds = 0;
  }
  int64_t nanoseconds =
      (int64_t)now.tv_nsec + (milliseconds % 1000) * 1000000;
  now.tv_sec += (time_t)(milliseconds / 1000 + nanoseconds / 1000000000);
  now.tv_nsec = (long)(nanoseconds % 1000000000);
  return now;
}

// Makes every call still awaiting a response unreachable for gRPC: respond on
// it becomes a no-op and its response-batch reference is dropped here.
static void server_orphan_unanswered_calls(wgrpc_server *server) {
  lock(&server->mutex);
  size_t count = server->live_call_count;
  wgrpc_call **calls = calloc(count > 0 ? count : 1, sizeof(wgrpc_call *));
  WGRPC_ASSERT(calls != NULL, "out of memory");
  size_t index = 0;
  for (wgrpc_call *call = server->live_calls; call != NULL;
       call = call->live_next) {
    atomic_fetch_add(&call->handle_refs, 1); // keep it alive past the lock
    calls[index++] = call;
  }
  WGRPC_ASSERT(index == count, "live call count out of sync");
  unlock(&server->mutex);

  // call->mutex is taken before server->mutex everywhere, so never while
  // holding server->mutex here.
  for (size_t i = 0; i < count; i++) {
    wgrpc_call *call = calls[i];
    lock(&call->mutex);
    if (call->state == CALL_AWAITING_RESPONSE) {
      call->state = CALL_ORPHANED;
      call_mark_answered(call, server, false);
      call_grpc_release(call); // the response batch that will never run
    } else if (call->status_deferred) {
      // Its send may complete after the queue shut down: never start it.
      call->status_deferred = false;
      call_mark_answered(call, server, false);
      call_grpc_release(call);
    }
    unlock(&call->mutex);
    call_handle_release(call);
  }
  free(calls);
}

void wgrpc_server_shutdown(wgrpc_server *server, int64_t drain_timeout_ms) {
  WGRPC_ASSERT(server != NULL, "wgrpc_server_shutdown: NULL server");
  lock(&server->mutex);
  WGRPC_ASSERT(!server->shutting_down, "wgrpc_server_shutdown called twice");
  server->shutting_down = true;
  unlock(&server->mutex);

  grpc_server_shutdown_and_notify(server->server, server->cq,
                                  &server->shutdown_tag);

  struct timespec drain_deadline = monotonic_after_ms(drain_timeout_ms);
  lock(&server->mutex);
  while (server->calls_unanswered > 0 || server->responses_in_flight > 0) {
    int result = pthread_cond_timedwait(&server->changed, &server->mutex,
                                        &drain_deadline);
    if (result == ETIMEDOUT) {
      break;
    }
  }
  unlock(&server->mutex);

  grpc_server_cancel_all_calls(server->server);
  server_orphan_unanswered_calls(server);

  // Fires once every pending request failed and every call finished.
  lock(&server->mutex);
  while (!server->shutdown_notified) {
    pthread_cond_wait(&server->changed, &server->mutex);
  }
  unlock(&server->mutex);

  grpc_server_destroy(server->server);
  server->server = NULL;
  grpc_completion_queue_shutdown(server->cq);
  WGRPC_ASSERT(pthread_join(server->cq_thread, NULL) == 0,
               "pthread_join failed");
  grpc_completion_queue_destroy(server->cq);
  server->cq = NULL;

  WGRPC_ASSERT(server->live_calls == NULL && server->live_call_count == 0,
               "calls still alive after the completion queue drained");
  WGRPC_ASSERT(server->calls_unanswered == 0, "unanswered call count broken");
  WGRPC_ASSERT(server->responses_in_flight == 0,
               "responses in flight count broken");
  server_free(server);
}

// ---------------------------------------------------------------------------
// Client
//
// A client call is one batch with all six unary ops and one tag (the call
// itself: a client queue carries nothing else). The channel counts calls from
// start to the return of their callback; shutdown waits for that count to
// reach zero before it shuts the queues down, so no callback runs after
// wgrpc_channel_shutdown returns and no batch is ever started on a queue that
// is shut down.
//
// Shutdown cancels the calls on the live list. A call joins that list before
// its grpc_call exists and leaves it before the grpc_call is released, so the
// cancel pass only ever touches live gRPC calls; a call created after the pass
// sees `closing` and cancels itself before its batch starts.

typedef struct client_call client_call;

typedef struct {
  char *path; // malloc'd
  void *handle;
} client_method;

struct wgrpc_channel {
  grpc_channel *channel;
  int thread_count;
  grpc_completion_queue *queues[WGRPC_CHANNEL_THREADS_MAX];
  pthread_t threads[WGRPC_CHANNEL_THREADS_MAX];
  int threads_started;
  atomic_uint next_queue;

  pthread_mutex_t mutex;
  pthread_cond_t idle; // calls_in_flight reached zero, or shut_down set
  bool closing;        // guarded by mutex; no new calls
  bool shut_down;      // guarded by mutex; threads joined, channel closed
  int64_t calls_in_flight;
  client_call *live_calls;
  client_method methods[WGRPC_CHANNEL_METHODS_MAX];
  int method_count;
};

struct client_call {
  wgrpc_channel *channel;
  grpc_call *call; // set under channel->mutex; NULL until created
  wgrpc_unary_callback callback;
  void *ctx;
  grpc_byte_buffer *request;
  grpc_byte_buffer *response;
  grpc_metadata_array initial_metadata;
  grpc_metadata_array trailing_metadata;
  grpc_status_code status;
  grpc_slice status_message;
  // channel->live_calls, guarded by channel->mutex
  client_call *live_prev;
  client_call *live_next;
};

static void channel_link(wgrpc_channel *channel, client_call *call) {
  call->live_prev = NULL;
  call->live_next = channel->live_calls;
  if (channel->live_calls != NULL) {
    channel->live_calls->live_prev = call;
  }
  channel->live_calls = call;
}

static void channel_unlink(wgrpc_channel *channel, client_call *call) {
  if (call->live_prev != NULL) {
    call->live_prev->live_next = call->live_next;
  } else {
    channel->live_calls = call->live_next;
  }
  if (call->live_next != NULL) {
    call->live_next->live_prev = call->live_prev;
  }
  call->live_prev = NULL;
  call->live_next = NULL;
}

// Caller holds channel->mutex. Registered calls skip interning the path on
// every call.
static void *channel_method_handle(wgrpc_channel *channel, const char *method) {
  for (int i = 0; i < channel->method_count; i++) {
    if (strcmp(channel->methods[i].path, method) == 0) {
      return channel->methods[i].handle;
    }
  }
  if (channel->method_count == WGRPC_CHANNEL_METHODS_MAX) {
    return NULL;
  }
  char *path = strdup(method);
  WGRPC_ASSERT(path != NULL, "out of memory");
  void *handle = grpc_channel_register_call(channel->channel, path, NULL, NULL);
  channel->methods[channel->method_count++] = (client_method){path, handle};
  return handle;
}

static void client_call_free(client_call *call) {
  if (call->request != NULL) {
    grpc_byte_buffer_destroy(call->request);
  }
  if (call->response != NULL) {
    grpc_byte_buffer_destroy(call->response);
  }
  grpc_metadata_array_destroy(&call->initial_metadata);
  grpc_metadata_array_destroy(&call->trailing_metadata);
  grpc_slice_unref(call->status_message);
  free(call);
}

static void channel_call_finished(wgrpc_channel *channel) {
  lock(&channel->mutex);
  channel->calls_in_flight -= 1;
  WGRPC_ASSERT(channel->calls_in_flight >= 0, "client call count broken");
  if (channel->calls_in_flight == 0) {
    pthread_cond_broadcast(&channel->idle);
  }
  unlock(&channel->mutex);
}

static void client_call_completed(client_call *call, bool success) {
  wgrpc_channel *channel = call->channel;
  lock(&channel->mutex);
  channel_unlink(channel, call);
  unlock(&channel->mutex);

  // A batch holding RECV_STATUS_ON_CLIENT always reports a status; a failed
  // batch would be a gRPC core bug, surfaced as INTERNAL rather than a crash.
  int status_code = success ? (int)call->status : WGRPC_STATUS_INTERNAL;
  grpc_slice response = grpc_empty_slice();
  bool has_response = false;
  if (call->response != NULL) {
    grpc_byte_buffer_reader reader;
    if (grpc_byte_buffer_reader_init(&reader, call->response)) {
      response = grpc_byte_buffer_reader_readall(&reader);
      grpc_byte_buffer_reader_destroy(&reader);
      has_response = true;
    } else if (status_code == WGRPC_STATUS_OK) {
      status_code = WGRPC_STATUS_INTERNAL;
    }
  }
  const uint8_t *details = NULL;
  size_t details_len = 0;
  for (size_t i = 0; i < call->trailing_metadata.count; i++) {
    const grpc_metadata *entry = &call->trailing_metadata.metadata[i];
    // gRPC core has already base64-decoded the -bin value.
    if (grpc_slice_str_cmp(entry->key, WGRPC_STATUS_DETAILS_KEY) == 0) {
      details = GRPC_SLICE_START_PTR(entry->value);
      details_len = GRPC_SLICE_LENGTH(entry->value);
      break;
    }
  }
  call->callback(call->ctx, status_code,
                 has_response ? GRPC_SLICE_START_PTR(response) : NULL,
                 has_response ? GRPC_SLICE_LENGTH(response) : 0, details,
                 details_len);
  grpc_slice_unref(response);
  // Only now: the received metadata (the details above among it) may point
  // into the call's own memory, which its last unref frees. Unref'd before
  // the callback, a failed call's details were read after free (wallet-bench
  // crashed copying them: the new array's buffer overlapped the freed one).
  grpc_call_unref(call->call);
  call->call = NULL;
  client_call_free(call);
  channel_call_finished(channel);
}

static void *client_thread_main(void *argument) {
  grpc_completion_queue *queue = argument;
  pthread_setname_np(pthread_self(), "wgrpc-client-cq");
  for (;;) {
    grpc_event event = grpc_completion_queue_next(
        queue, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
    if (event.type == GRPC_QUEUE_SHUTDOWN) {
      break;
    }
    if (event.type == GRPC_OP_COMPLETE) {
      client_call_completed(event.tag, event.success != 0);
    }
  }
  return NULL;
}

// Frees whatever part of the channel exists. No call may be in flight.
static void channel_free(wgrpc_channel *channel) {
  for (int i = 0; i < channel->thread_count; i++) {
    if (channel->queues[i] == NULL) {
      continue;
    }
    grpc_completion_queue_shutdown(channel->queues[i]);
    if (i < channel->threads_started) {
      WGRPC_ASSERT(pthread_join(channel->threads[i], NULL) == 0,
                   "pthread_join failed");
    } else {
      drain_shut_down_queue(channel->queues[i]);
    }
    grpc_completion_queue_destroy(channel->queues[i]);
    channel->queues[i] = NULL;
  }
  channel->threads_started = 0;
  if (channel->channel != NULL) {
    grpc_channel_destroy(channel->channel);
    channel->channel = NULL;
  }
}

wgrpc_channel *wgrpc_channel_create(const char *target, int thread_count,
                                    char *error, size_t error_capacity) {
  return wgrpc_channel_create_secure(target, thread_count, NULL, error,
                                     error_capacity);
}

wgrpc_channel *wgrpc_channel_create_secure(const char *target, int thread_count,
                                           const wgrpc_channel_tls *tls,
                                           char *error, size_t error_capacity) {
  set_error(error, error_capacity, "");
  if (tls != NULL && (tls->cert_chain_pem == NULL) != (tls->key_pem == NULL)) {
    set_error(error, error_capacity,
              "a client certificate needs its key, and a key its certificate");
    return NULL;
  }
  if (target == NULL || target[0] == '\0' || thread_count < 1 ||
      thread_count > WGRPC_CHANNEL_THREADS_MAX) {
    set_error(error, error_capacity, "invalid arguments");
    return NULL;
  }
  pthread_once(&library_once, library_init_once);

  wgrpc_channel *channel = calloc(1, sizeof(*channel));
  WGRPC_ASSERT(channel != NULL, "out of memory");
  WGRPC_ASSERT(pthread_mutex_init(&channel->mutex, NULL) == 0,
               "pthread_mutex_init failed");
  WGRPC_ASSERT(pthread_cond_init(&channel->idle, NULL) == 0,
               "pthread_cond_init failed");
  atomic_init(&channel->next_queue, 0);
  channel->thread_count = thread_count;

  // A local subchannel pool gives every channel its own connection, so a
  // caller that wants N connections creates N channels. Retries are the
  // caller's business (a load generator counts them itself), and the retry
  // filter would buffer every request.
  grpc_arg arguments[3];
  size_t argument_count = 2;
  arguments[0].type = GRPC_ARG_INTEGER;
  arguments[0].key = GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL;
  arguments[0].value.integer = 1;
  arguments[1].type = GRPC_ARG_INTEGER;
  arguments[1].key = GRPC_ARG_ENABLE_RETRIES;
  arguments[1].value.integer = 0;
  if (tls != NULL && tls->server_name_override != NULL) {
    arguments[2].type = GRPC_ARG_STRING;
    arguments[2].key = GRPC_SSL_TARGET_NAME_OVERRIDE_ARG;
    arguments[2].value.string = (char *)tls->server_name_override;
    argument_count = 3;
  }
  grpc_channel_args channel_args = {argument_count, arguments};
  grpc_channel_credentials *credentials;
  if (tls != NULL) {
    grpc_ssl_pem_key_cert_pair pair = {tls->key_pem, tls->cert_chain_pem};
    credentials = grpc_ssl_credentials_create(
        tls->root_pem, tls->cert_chain_pem != NULL ? &pair : NULL, NULL, NULL);
  } else {
    credentials = grpc_insecure_credentials_create();
  }
  channel->channel = grpc_channel_create(target, credentials, &channel_args);
  grpc_channel_credentials_release(credentials);
  if (channel->channel == NULL) {
    set_error(error, error_capacity, "cannot create a channel to %s", target);
    channel_free(channel);
    pthread_cond_destroy(&channel->idle);
    pthread_mutex_destroy(&channel->mutex);
    free(channel);
    return NULL;
  }

  for (int i = 0; i < thread_count; i++) {
    channel->queues[i] = grpc_completion_queue_create_for_next(NULL);
  }
  for (int i = 0; i < thread_count; i++) {
    if (pthread_create(&channel->threads[i], NULL, client_thread_main,
                       channel->queues[i]) != 0) {
      set_error(error, error_capacity,
                "cannot start a completion queue thread");
      channel_free(channel);
      pthread_cond_destroy(&channel->idle);
      pthread_mutex_destroy(&channel->mutex);
      free(channel);
      return NULL;
    }
    channel->threads_started = i + 1;
  }
  return channel;
}

// Undoes a call that never reached gRPC core's completion queue.
static void client_call_abandon(client_call *call) {
  wgrpc_channel *channel = call->channel;
  lock(&channel->mutex);
  channel_unlink(channel, call);
  unlock(&channel->mutex);
  if (call->call != NULL) {
    grpc_call_unref(call->call);
  }
  client_call_free(call);
  channel_call_finished(channel);
}

int wgrpc_client_call_unary(wgrpc_channel *channel, const char *method,
                            const uint8_t *request, size_t request_len,
                            int64_t timeout_ms, wgrpc_unary_callback callback,
                            void *ctx) {
  if (channel == NULL || method == NULL || method[0] != '/' ||
      strnlen(method, WGRPC_METHOD_PATH_BYTES_MAX) ==
          WGRPC_METHOD_PATH_BYTES_MAX ||
      callback == NULL || (request == NULL && request_len > 0) ||
      timeout_ms < 1 || timeout_ms > WGRPC_CALL_TIMEOUT_MS_MAX) {
    return WGRPC_STATUS_INVALID_ARGUMENT;
  }

  client_call *call = calloc(1, sizeof(*call));
  WGRPC_ASSERT(call != NULL, "out of memory");
  call->channel = channel;
  call->callback = callback;
  call->ctx = ctx;
  call->status = GRPC_STATUS_UNKNOWN;
  call->status_message = grpc_empty_slice();
  grpc_metadata_array_init(&call->initial_metadata);
  grpc_metadata_array_init(&call->trailing_metadata);

  lock(&channel->mutex);
  if (channel->closing) {
    unlock(&channel->mutex);
    client_call_free(call);
    return WGRPC_STATUS_UNAVAILABLE;
  }
  void *registered = channel_method_handle(channel, method);
  channel->calls_in_flight += 1;
  channel_link(channel, call);
  unlock(&channel->mutex);

  unsigned queue_index =
      atomic_fetch_add_explicit(&channel->next_queue, 1, memory_order_relaxed) %
      (unsigned)channel->thread_count;
  grpc_completion_queue *queue = channel->queues[queue_index];
  gpr_timespec deadline =
      gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                   gpr_time_from_millis(timeout_ms, GPR_TIMESPAN));
  grpc_call *created;
  if (registered != NULL) {
    created = grpc_channel_create_registered_call(
        channel->channel, NULL, GRPC_PROPAGATE_DEFAULTS, queue, registered,
        deadline, NULL);
  } else {
    grpc_slice path = grpc_slice_from_copied_string(method);
    created = grpc_channel_create_call(channel->channel, NULL,
                                       GRPC_PROPAGATE_DEFAULTS, queue, path,
                                       NULL, deadline, NULL);
    grpc_slice_unref(path);
  }
  if (created == NULL) {
    client_call_abandon(call);
    return WGRPC_STATUS_INTERNAL;
  }

  lock(&channel->mutex);
  call->call = created;
  bool cancel = channel->closing; // shutdown's cancel pass missed this call
  unlock(&channel->mutex);
  if (cancel) {
    grpc_call_cancel(created, NULL);
  }

  grpc_slice payload =
      request_len > 0
          ? grpc_slice_from_copied_buffer((const char *)request, request_len)
          : grpc_empty_slice();
  call->request = grpc_raw_byte_buffer_create(&payload, 1);
  grpc_slice_unref(payload);

  grpc_op ops[6];
  memset(ops, 0, sizeof(ops));
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[0].data.send_initial_metadata.count = 0;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = call->request;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata =
      &call->initial_metadata;
  ops[4].op = GRPC_OP_RECV_MESSAGE;
  ops[4].data.recv_message.recv_message = &call->response;
  ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[5].data.recv_status_on_client.trailing_metadata =
      &call->trailing_metadata;
  ops[5].data.recv_status_on_client.status = &call->status;
  ops[5].data.recv_status_on_client.status_details = &call->status_message;

  grpc_call_error error = grpc_call_start_batch(created, ops, 6, call, NULL);
  if (error != GRPC_CALL_OK) {
    WGRPC_LOG_ERROR("client batch failed: %s",
            grpc_call_error_to_string(error));
    client_call_abandon(call);
    return WGRPC_STATUS_INTERNAL;
  }
  return WGRPC_STATUS_OK;
}

int64_t wgrpc_channel_calls_in_flight(wgrpc_channel *channel) {
  lock(&channel->mutex);
  int64_t count = channel->calls_in_flight;
  unlock(&channel->mutex);
  return count;
}

void wgrpc_channel_shutdown(wgrpc_channel *channel) {
  WGRPC_ASSERT(channel != NULL, "wgrpc_channel_shutdown: NULL channel");
  for (int i = 0; i < channel->threads_started; i++) {
    WGRPC_ASSERT(!pthread_equal(pthread_self(), channel->threads[i]),
                 "wgrpc_channel_shutdown called from a callback");
  }
  lock(&channel->mutex);
  if (channel->closing) {
    // Another shutdown is under way or done: wait for it to finish.
    while (!channel->shut_down) {
      pthread_cond_wait(&channel->idle, &channel->mutex);
    }
    unlock(&channel->mutex);
    return;
  }
  channel->closing = true;
  for (client_call *call = channel->live_calls; call != NULL;
       call = call->live_next) {
    if (call->call != NULL) {
      // Completions go through the queue, never inline: safe under the lock.
      grpc_call_cancel(call->call, NULL);
    }
  }
  while (channel->calls_in_flight > 0) {
    pthread_cond_wait(&channel->idle, &channel->mutex);
  }
  WGRPC_ASSERT(channel->live_calls == NULL, "client calls still linked");
  unlock(&channel->mutex);
  // Only this caller gets here; new calls fail while `closing` is set.
  channel_free(channel);
  lock(&channel->mutex);
  channel->shut_down = true;
  pthread_cond_broadcast(&channel->idle);
  unlock(&channel->mutex);
}

void wgrpc_channel_destroy(wgrpc_channel *channel) {
  WGRPC_ASSERT(channel != NULL, "wgrpc_channel_destroy: NULL channel");
  wgrpc_channel_shutdown(channel);
  for (int i = 0; i < channel->method_count; i++) {
    free(channel->methods[i].path);
  }
  pthread_cond_destroy(&channel->idle);
  pthread_mutex_destroy(&channel->mutex);
  free(channel);
}
