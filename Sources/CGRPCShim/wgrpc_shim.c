// gRPC core server glue. See include/wgrpc_shim.h for the contract.
//
// Every completion-queue tag points at a wgrpc_tag embedded in the object it
// belongs to; the kind says how to route the event.
//
// Call lifetime uses two counters:
//   grpc_refs   - the close notification batch + the response batch. When
//                 both completed (or the response will never be sent because
//                 the server orphaned the call), the grpc_call and every
//                 buffer of the call are freed and the call leaves the
//                 server's live list.
//   handle_refs - the application's handle + the gRPC side above. The small
//                 wgrpc_call struct is freed when both are gone, so a handle
//                 held by Swift past server shutdown never dangles.
//
// Shutdown must never start a batch on a completion queue that is already
// shut down. A call handed to the application is either answered before the
// drain ends or "orphaned" under its mutex; respond on an orphaned call does
// nothing, so no batch can start after the queue shuts down.

#define _GNU_SOURCE // pthread_setname_np

#include "wgrpc_shim.h"

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
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

// Invariant violations are bugs: say what broke and stop.
#define WGRPC_ASSERT(condition, what)                                         \
  do {                                                                        \
    if (!(condition)) {                                                       \
      fprintf(stderr, "wgrpc_shim: %s:%d: %s\n", __FILE__, __LINE__, (what)); \
      abort();                                                                \
    }                                                                         \
  } while (0)

typedef enum {
  TAG_REQUEST_REGISTERED,
  TAG_REQUEST_UNKNOWN,
  TAG_CALL_CLOSED,
  TAG_CALL_RESPONDED,
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
  atomic_int cancelled;
  atomic_int grpc_refs;
  atomic_int handle_refs;
  gpr_timespec deadline; // GPR_CLOCK_MONOTONIC
  char *peer;            // gpr_malloc'd, may be NULL
  wgrpc_tag closed_tag;
  wgrpc_tag responded_tag;
  int close_cancelled;
  // Owned by the response batch; freed with the gRPC side.
  grpc_slice status_message;
  bool has_status_message;
  grpc_metadata trailing_metadata[1];
  size_t trailing_metadata_count;
  grpc_byte_buffer *response;
  // server->live_calls, guarded by server->mutex
  struct wgrpc_call *live_prev;
  struct wgrpc_call *live_next;
};

struct wgrpc_server {
  grpc_server *server;
  grpc_completion_queue *cq;
  pthread_t cq_thread;
  int port;
  wgrpc_request_callback callback;
  void *user_ctx;
  int method_count;
  void **registered_methods;
  request_slot *slots;
  int slot_count;
  wgrpc_tag shutdown_tag;

  pthread_mutex_t mutex;
  pthread_cond_t changed; // CLOCK_MONOTONIC; signals the fields below
  bool shutting_down;
  bool shutdown_notified;
  int64_t calls_unanswered;
  wgrpc_call *live_calls;
  size_t live_call_count;
};

// ---------------------------------------------------------------------------
// Library and configuration

static pthread_once_t library_once = PTHREAD_ONCE_INIT;

// gRPC stays initialized for the life of the process: servers (and later
// clients) come and go, and gRPC 1.51's init/shutdown cycles restart internal
// threads, so one grpc_init here is both simpler and safer.
static void library_init_once(void) { grpc_init(); }

// The one place that decides transport security. mTLS replaces this with
// grpc_ssl_server_credentials_create_ex(...) fed from configuration.
static grpc_server_credentials *server_credentials_create(void) {
  return grpc_insecure_server_credentials_create();
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
// Calls

static void call_handle_release(wgrpc_call *call) {
  int previous = atomic_fetch_sub(&call->handle_refs, 1);
  WGRPC_ASSERT(previous >= 1, "call handle released too often");
  if (previous == 1) {
    pthread_mutex_destroy(&call->mutex);
    if (call->peer != NULL) {
      gpr_free(call->peer);
    }
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
static wgrpc_call *call_create(wgrpc_server *server, grpc_call *grpc_call_,
                               gpr_timespec deadline, bool registered,
                               bool *hand_to_application) {
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
  call->closed_tag = (wgrpc_tag){TAG_CALL_CLOSED, call};
  call->responded_tag = (wgrpc_tag){TAG_CALL_RESPONDED, call};

  lock(&server->mutex);
  *hand_to_application = registered && !server->shutting_down;
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
    fprintf(stderr, "wgrpc_shim: RECV_CLOSE_ON_SERVER failed: %s\n",
            grpc_call_error_to_string(error));
    atomic_store(&call->cancelled, 1);
    call_grpc_release(call);
  }
}

// Caller holds call->mutex and has moved the state to CALL_RESPONDED.
static void call_start_response_batch(wgrpc_call *call, int status_code,
                                      const char *message,
                                      const uint8_t *response,
                                      size_t response_len,
                                      const uint8_t *status_details,
                                      size_t status_details_len) {
  grpc_op ops[3];
  memset(ops, 0, sizeof(ops));
  size_t op_count = 0;

  ops[op_count].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[op_count].data.send_initial_metadata.count = 0;
  op_count++;

  if (status_code == WGRPC_STATUS_OK && response != NULL) {
    grpc_slice slice =
        response_len > 0
            ? grpc_slice_from_copied_buffer((const char *)response,
                                            response_len)
            : grpc_empty_slice();
    call->response = grpc_raw_byte_buffer_create(&slice, 1);
    grpc_slice_unref(slice);
    ops[op_count].op = GRPC_OP_SEND_MESSAGE;
    ops[op_count].data.send_message.send_message = call->response;
    op_count++;
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
  ops[op_count].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
  ops[op_count].data.send_status_from_server.status =
      (grpc_status_code)status_code;
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
    fprintf(stderr, "wgrpc_shim: response batch failed: %s\n",
            grpc_call_error_to_string(error));
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
  // Read before the batch starts: its completion may free the gRPC side.
  wgrpc_server *server = call->server;
  bool counted = call->handed_to_application;
  call_start_response_batch(call, status_code, message, response,
                            response_len, status_details, status_details_len);
  if (counted) {
    // Still under call->mutex: shutdown cannot free the server while this
    // call is not orphaned.
    lock(&server->mutex);
    server->calls_unanswered -= 1;
    pthread_cond_broadcast(&server->changed);
    unlock(&server->mutex);
  }
  unlock(&call->mutex);
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
    error = grpc_server_request_registered_call(
        server->server, server->registered_methods[slot->method_index],
        &slot->call, &slot->deadline, &slot->request_metadata, &slot->payload,
        server->cq, server->cq, &slot->tag);
  } else {
    grpc_call_details_init(&slot->details);
    error = grpc_server_request_call(server->server, &slot->call,
                                     &slot->details, &slot->request_metadata,
                                     server->cq, server->cq, &slot->tag);
  }
  if (error != GRPC_CALL_OK) {
    fprintf(stderr, "wgrpc_shim: posting a request failed: %s\n",
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
  // The array is ours; its entries belong to the call.
  grpc_metadata_array_destroy(&slot->request_metadata);

  if (success && accepted != NULL) {
    bool registered = slot->method_index >= 0;
    gpr_timespec deadline =
        registered ? slot->deadline : slot->details.deadline;
    bool hand_to_application = false;
    wgrpc_call *call = call_create(server, accepted, deadline, registered,
                                   &hand_to_application);
    call_start_close_batch(call);
    if (!registered) {
      char message[WGRPC_ERROR_MESSAGE_BYTES_MAX];
      snprintf(message, sizeof(message), "Method not found: %.*s",
               (int)GRPC_SLICE_LENGTH(slot->details.method),
               (const char *)GRPC_SLICE_START_PTR(slot->details.method));
      call_answer_internally(call, WGRPC_STATUS_UNIMPLEMENTED, message);
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
  } else if (accepted != NULL) {
    grpc_call_unref(accepted);
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
    case TAG_CALL_CLOSED: {
      wgrpc_call *call = tag->owner;
      if (call->close_cancelled != 0 || event.success == 0) {
        atomic_store(&call->cancelled, 1);
      }
      call_grpc_release(call);
      break;
    }
    case TAG_CALL_RESPONDED:
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

// Frees whatever part of the server exists; used by a failed create (the
// server never started) and at the end of shutdown (everything drained).
static void server_free(wgrpc_server *server) {
  if (server->server != NULL) {
    grpc_server_destroy(server->server);
  }
  if (server->cq != NULL) {
    grpc_completion_queue_shutdown(server->cq);
    while (grpc_completion_queue_next(server->cq,
                                      gpr_inf_future(GPR_CLOCK_MONOTONIC),
                                      NULL)
               .type != GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(server->cq);
  }
  pthread_cond_destroy(&server->changed);
  pthread_mutex_destroy(&server->mutex);
  free(server->registered_methods);
  free(server->slots);
  free(server);
}

wgrpc_server *wgrpc_server_create(const char *listen_address,
                                  const char *const *methods,
                                  int method_count,
                                  wgrpc_request_callback callback,
                                  void *user_ctx, char *error,
                                  size_t error_capacity) {
  set_error(error, error_capacity, "");
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

  // SO_REUSEPORT would let a second server silently share a busy port.
  grpc_arg arguments[1];
  arguments[0].type = GRPC_ARG_INTEGER;
  arguments[0].key = GRPC_ARG_ALLOW_REUSEPORT;
  arguments[0].value.integer = 0;
  grpc_channel_args channel_args = {1, arguments};
  server->server = grpc_server_create(&channel_args, NULL);
  server->cq = grpc_completion_queue_create_for_next(NULL);
  grpc_server_register_completion_queue(server->server, server->cq, NULL);

  server->registered_methods =
      calloc((size_t)method_count + 1, sizeof(void *));
  WGRPC_ASSERT(server->registered_methods != NULL, "out of memory");
  for (int i = 0; i < method_count; i++) {
    if (methods[i] == NULL || methods[i][0] != '/') {
      set_error(error, error_capacity, "method %d is not a path", i);
      server_free(server);
      return NULL;
    }
    server->registered_methods[i] = grpc_server_register_method(
        server->server, methods[i], NULL,
        GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
    if (server->registered_methods[i] == NULL) {
      set_error(error, error_capacity, "cannot register method %s",
                methods[i]);
      server_free(server);
      return NULL;
    }
  }

  grpc_server_credentials *credentials = server_credentials_create();
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
      if (call->handed_to_application) {
        lock(&server->mutex);
        server->calls_unanswered -= 1;
        unlock(&server->mutex);
      }
      call_grpc_release(call); // the response batch that will never run
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
  while (server->calls_unanswered > 0) {
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
  server_free(server);
}
