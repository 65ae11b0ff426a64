// Repeated-call leak check of the gRPC core shim (server and client sides),
// run under valgrind by scripts/leak-check: every call's slices, byte
// buffers, metadata and call objects must be freed, whatever way it ends.
// The server's streaming path (read, send, finish, on_close) is driven by
// unary client calls to a method registered as streaming: one that echoes,
// one that reads to the end and fails with details, one that never answers
// and is ended by the client's deadline.
//
// With a certificate directory (scripts/dev-certs), the same runs over
// mutual TLS: every echo must see the client's identity in its call context,
// and the server's certificate is reloaded halfway (the old material freed).
//
//   shim_leak CALLS [CERT_DIR]   -> exit 0 when every call got the answer it should
#include "wgrpc_shim.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { METHOD_ECHO = 0, METHOD_FAIL = 1, METHOD_STREAM = 2, CALLERS = 8, CALL_TIMEOUT_MS = 5000 };
enum { SLOW_TIMEOUT_MS = 500 };

static const uint8_t kBody[32] = {1, 2, 3, 4};
// Longer than a slice holds inline (23 bytes): gRPC core then hands the
// details to the client in the call's own memory, which is freed with the
// call; read after its last unref, valgrind sees an invalid read.
static const uint8_t kDetails[] = {
    8, 9, 18, 117,
    'a', 'b', 'c', 'a', 'b', 'c', 'a', 'b', 'c', 'a', 'b', 'c',
    'a', 'b', 'c', 'a', 'b', 'c', 'a', 'b', 'c', 'a', 'b', 'c',
    'a', 'b', 'c', 'a', 'b', 'c', 'a', 'b', 'c', 'a', 'b', 'c',
    'a', 'b', 'c', 'a', 'b', 'c', 'a', 'b', 'c', 'a', 'b', 'c',
    'a', 'b', 'c', 'a', 'b', 'c', 'a', 'b', 'c', 'a', 'b', 'c',
    'a', 'b', 'c', 'a', 'b', 'c', 'a', 'b', 'c', 'a', 'b', 'c',
    'a', 'b', 'c', 'a', 'b', 'c', 'a', 'b', 'c', 'a', 'b', 'c',
    'a', 'b', 'c', 'a', 'b', 'c', 'a', 'b', 'c', 'a', 'b', 'c',
    'a', 'b', 'c', 'a', 'b', 'c', 'a', 'b', 'c', 'a', 'b', 'c',
    'a', 'b', 'c', 'a', 'b', 'c', 'a', 'b', 'c',
};

static wgrpc_channel *g_channel;
static const char *g_expected_identity;  // mutual TLS: what every echo must see
static atomic_int g_to_start;  // echo calls still to start (closed loop)
static atomic_int g_echo_ok, g_fail_ok, g_unknown_ok, g_other;
static atomic_int g_stream_echo_ok, g_stream_fail_ok, g_stream_slow_ok;
// Streaming calls the server saw start, and saw end. A slow call's deadline
// may pass before it reaches the server (under valgrind it often does), so
// the two must match, not equal the calls sent.
static atomic_int g_stream_started, g_stream_closed;

// --- the streaming handler ---------------------------------------------------
// One per streaming call; freed when its last callback ran (close, and each
// read or send in flight hold a reference).
// Every callback of a call runs on the server's completion-queue thread, one
// at a time, so `mode` and `finished` need no atomics.
typedef struct {
  wgrpc_call *call;
  atomic_int refs;
  char mode;      // 'o' echo, 'e' error after end of stream, 's' slow: answered only by the deadline
  int finished;   // finish + release done: `call` must not be used again
} stream_ctx;

static void stream_unref(stream_ctx *ctx) {
  if (atomic_fetch_sub(&ctx->refs, 1) == 1) free(ctx);
}

static void stream_finish(stream_ctx *ctx, int status) {
  if (ctx->finished) return;
  ctx->finished = 1;
  if (status == 0)
    wgrpc_call_finish(ctx->call, 0, NULL, NULL, 0);
  else
    wgrpc_call_finish(ctx->call, status, "refused", kDetails, sizeof kDetails);
  wgrpc_call_release(ctx->call);
}

static void stream_sent(void *raw, int ok) {
  stream_ctx *ctx = raw;
  (void)ok;
  stream_finish(ctx, 0);
  stream_unref(ctx);
}

static void stream_sent_many(void *raw, size_t sent) {
  stream_sent(raw, sent == 1);
}

static void stream_read(void *raw, const uint8_t *message, size_t len) {
  stream_ctx *ctx = raw;
  if (ctx->finished) {
    stream_unref(ctx);
    return;
  }
  if (ctx->mode == 0) ctx->mode = (message && len > 0) ? (char)message[0] : 'o';
  if (ctx->mode == 'o' && message) {
    atomic_fetch_add(&ctx->refs, 1);
    // Every other echo goes through the queued send (a queue of one).
    static atomic_int echoes;
    int started = atomic_fetch_add(&echoes, 1) % 2 == 0
                      ? wgrpc_call_send_message(ctx->call, message, len, stream_sent, ctx)
                      : wgrpc_call_send_messages(ctx->call, &message, &len, 1, stream_sent_many, ctx);
    if (started != 0) {
      stream_unref(ctx);
      stream_finish(ctx, 0);
    }
  } else if (ctx->mode == 'e' && message) {
    // Read again: the client has half-closed, so this one ends the stream.
    atomic_fetch_add(&ctx->refs, 1);
    if (wgrpc_call_read_message(ctx->call, stream_read, ctx) != 0) {
      stream_unref(ctx);
      stream_finish(ctx, 9);
    }
  } else if (ctx->mode == 'e' || (ctx->mode == 'o' && !message)) {
    stream_finish(ctx, 9);
  }
  // 's': nothing; the close callback finishes the call.
  stream_unref(ctx);
}

static void stream_closed(void *raw) {
  stream_ctx *ctx = raw;
  atomic_fetch_add(&g_stream_closed, 1);
  if (ctx->mode == 's') stream_finish(ctx, 0);  // a no-op answer: the call is already over
  stream_unref(ctx);
}

static void start_stream(wgrpc_call *call) {
  atomic_fetch_add(&g_stream_started, 1);
  stream_ctx *ctx = calloc(1, sizeof *ctx);
  ctx->call = call;
  atomic_store(&ctx->refs, 2);  // close + the read below
  if (wgrpc_call_read_message(call, stream_read, ctx) != 0) {
    stream_unref(ctx);
    stream_finish(ctx, 13);
  }
  if (!wgrpc_call_on_close(call, stream_closed, ctx)) {
    // Already over (a slow call's deadline can pass before it is served):
    // answer (a no-op) and let go now; the read in flight sees `finished`.
    atomic_fetch_add(&g_stream_closed, 1);
    stream_finish(ctx, 0);
    stream_unref(ctx);
  }
}

static void on_request(void *ctx, wgrpc_call *call, int method_index, const uint8_t *request, size_t len) {
  (void)ctx;
  if (method_index == METHOD_STREAM) {
    start_stream(call);
    return;
  }
  if (method_index == METHOD_ECHO) {
    wgrpc_call_context context;
    wgrpc_call_get_context(call, &context);
    int identified = g_expected_identity == NULL
                         ? context.identity == NULL
                         : context.identity_len == strlen(g_expected_identity) &&
                               memcmp(context.identity, g_expected_identity, context.identity_len) == 0;
    if (!identified || context.peer_len == 0) atomic_fetch_add(&g_other, 1);
    wgrpc_call_respond(call, 0, NULL, request ? request : kBody, request ? len : 0, NULL, 0);
  } else {
    wgrpc_call_respond(call, 9, "refused", NULL, 0, kDetails, sizeof kDetails);
  }
  wgrpc_call_release(call);
}

static void on_echo(void *ctx, int status, const uint8_t *response, size_t len, const uint8_t *details,
                    size_t details_len);

static void start_echo(void) {
  if (atomic_fetch_sub(&g_to_start, 1) <= 0) return;
  if (wgrpc_client_call_unary(g_channel, "/leak.Test/Echo", kBody, sizeof kBody, CALL_TIMEOUT_MS, on_echo, NULL) != 0)
    atomic_fetch_add(&g_other, 1);
}

static void on_echo(void *ctx, int status, const uint8_t *response, size_t len, const uint8_t *details,
                    size_t details_len) {
  (void)ctx, (void)details, (void)details_len;
  if (status == 0 && len == sizeof kBody && memcmp(response, kBody, len) == 0)
    atomic_fetch_add(&g_echo_ok, 1);
  else
    atomic_fetch_add(&g_other, 1);
  start_echo();  // the next call starts from the completion callback
}

static void on_fail(void *ctx, int status, const uint8_t *response, size_t len, const uint8_t *details,
                    size_t details_len) {
  (void)ctx, (void)response, (void)len;
  if (status == 9 && details_len == sizeof kDetails && memcmp(details, kDetails, details_len) == 0)
    atomic_fetch_add(&g_fail_ok, 1);
  else
    atomic_fetch_add(&g_other, 1);
}

static void on_unknown(void *ctx, int status, const uint8_t *response, size_t len, const uint8_t *details,
                       size_t details_len) {
  (void)ctx, (void)response, (void)len, (void)details, (void)details_len;
  atomic_fetch_add(status == 12 ? &g_unknown_ok : &g_other, 1);
}

static void on_any(void *ctx, int status, const uint8_t *response, size_t len, const uint8_t *details,
                   size_t details_len) {
  (void)ctx, (void)status, (void)response, (void)len, (void)details, (void)details_len;
}

static const uint8_t kStreamEcho[64] = {'o', 1, 2, 3};  // over gRPC's inline slice size: heap slices
static const uint8_t kStreamFail[] = {'e', 4, 5};
static const uint8_t kStreamSlow[] = {'s'};

static void on_stream_echo(void *ctx, int status, const uint8_t *response, size_t len, const uint8_t *details,
                           size_t details_len) {
  (void)ctx, (void)details, (void)details_len;
  int ok = status == 0 && len == sizeof kStreamEcho && memcmp(response, kStreamEcho, len) == 0;
  atomic_fetch_add(ok ? &g_stream_echo_ok : &g_other, 1);
}

static void on_stream_fail(void *ctx, int status, const uint8_t *response, size_t len, const uint8_t *details,
                           size_t details_len) {
  (void)ctx, (void)response, (void)len;
  int ok = status == 9 && details_len == sizeof kDetails && memcmp(details, kDetails, details_len) == 0;
  atomic_fetch_add(ok ? &g_stream_fail_ok : &g_other, 1);
}

static void on_stream_slow(void *ctx, int status, const uint8_t *response, size_t len, const uint8_t *details,
                           size_t details_len) {
  (void)ctx, (void)response, (void)len, (void)details, (void)details_len;
  atomic_fetch_add(status == 4 ? &g_stream_slow_ok : &g_other, 1);  // DEADLINE_EXCEEDED
}

static char *read_file(const char *dir, const char *name) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *file = fopen(path, "rb");
  if (!file) {
    fprintf(stderr, "cannot read %s\n", path);
    exit(1);
  }
  char *text = calloc(1, 65536);
  size_t length = fread(text, 1, 65535, file);
  text[length] = '\0';
  fclose(file);
  return text;
}

int main(int argc, char **argv) {
  int calls = argc > 1 ? atoi(argv[1]) : 1000;
  const char *cert_dir = argc > 2 ? argv[2] : NULL;
  const char *methods[] = {"/leak.Test/Echo", "/leak.Test/Fail", "/leak.Test/Stream"};
  const int kinds[] = {WGRPC_METHOD_UNARY, WGRPC_METHOD_UNARY, WGRPC_METHOD_STREAMING};
  char error[256];
  // A limit above the check's burst (it opens ~500 calls at once on a new
  // connection, before the client has the server's SETTINGS).
  wgrpc_server_options options = {.max_concurrent_streams = 300, .max_connection_idle_ms = 60000};
  char *ca = NULL, *server_cert = NULL, *server_key = NULL, *client_cert = NULL, *client_key = NULL;
  if (cert_dir) {
    ca = read_file(cert_dir, "ca.pem");
    server_cert = read_file(cert_dir, "server.pem");
    server_key = read_file(cert_dir, "server.key");
    client_cert = read_file(cert_dir, "game-service.pem");
    client_key = read_file(cert_dir, "game-service.key");
    options.tls = wgrpc_tls_create(server_cert, server_key, ca, error, sizeof error);
    if (!options.tls) {
      fprintf(stderr, "tls: %s\n", error);
      return 1;
    }
    // A key that is not the certificate's is refused, and leaks nothing.
    if (wgrpc_tls_reload(options.tls, server_cert, client_key, ca, error, sizeof error) != 0) {
      fprintf(stderr, "tls: a mismatched key was staged\n");
      return 1;
    }
    g_expected_identity = "spiffe://casino/game-service";
  }
  wgrpc_server *server = wgrpc_server_create_with_options("127.0.0.1:0", methods, kinds, 3, &options, on_request,
                                                          NULL, error, sizeof error);
  if (!server) {
    fprintf(stderr, "server: %s\n", error);
    return 1;
  }
  char target[64];
  snprintf(target, sizeof target, "127.0.0.1:%d", wgrpc_server_port(server));
  wgrpc_channel_tls channel_tls = {ca, client_cert, client_key, NULL};
  g_channel = wgrpc_channel_create_secure(target, 2, cert_dir ? &channel_tls : NULL, error, sizeof error);
  if (!g_channel) {
    fprintf(stderr, "channel: %s\n", error);
    return 1;
  }

  atomic_store(&g_to_start, calls);
  for (int i = 0; i < CALLERS; i++) start_echo();
  if (options.tls) {
    // The same material again: staged, served to the next connection, and
    // the previous copy freed.
    if (wgrpc_tls_reload(options.tls, server_cert, server_key, ca, error, sizeof error) != 1) {
      fprintf(stderr, "tls reload: %s\n", error);
      return 1;
    }
  }
  int fails = calls / 10;
  for (int i = 0; i < fails; i++) {
    wgrpc_client_call_unary(g_channel, "/leak.Test/Fail", NULL, 0, CALL_TIMEOUT_MS, on_fail, NULL);
    wgrpc_client_call_unary(g_channel, "/leak.Nope/Missing", kBody, sizeof kBody, CALL_TIMEOUT_MS, on_unknown, NULL);
  }
  int streams = calls / 10;
  for (int i = 0; i < streams; i++) {
    wgrpc_client_call_unary(g_channel, "/leak.Test/Stream", kStreamEcho, sizeof kStreamEcho, CALL_TIMEOUT_MS,
                            on_stream_echo, NULL);
    wgrpc_client_call_unary(g_channel, "/leak.Test/Stream", kStreamFail, sizeof kStreamFail, CALL_TIMEOUT_MS,
                            on_stream_fail, NULL);
    wgrpc_client_call_unary(g_channel, "/leak.Test/Stream", kStreamSlow, sizeof kStreamSlow, SLOW_TIMEOUT_MS,
                            on_stream_slow, NULL);
  }
  for (int waited_ms = 0; waited_ms < 120000; waited_ms += 10) {
    if (atomic_load(&g_echo_ok) + atomic_load(&g_other) >= calls && atomic_load(&g_fail_ok) >= fails &&
        atomic_load(&g_unknown_ok) >= fails && atomic_load(&g_stream_echo_ok) >= streams &&
        atomic_load(&g_stream_fail_ok) >= streams && atomic_load(&g_stream_slow_ok) >= streams &&
        atomic_load(&g_stream_closed) == atomic_load(&g_stream_started))
      break;
    usleep(10000);
  }
  // Calls still in flight when the channel shuts down are cancelled, and
  // their memory must be freed too.
  for (int i = 0; i < 20; i++)
    wgrpc_client_call_unary(g_channel, "/leak.Test/Echo", kBody, sizeof kBody, CALL_TIMEOUT_MS, on_any, NULL);
  wgrpc_channel_shutdown(g_channel);
  wgrpc_channel_destroy(g_channel);
  wgrpc_server_shutdown(server, 1000);
  wgrpc_tls_release(options.tls);
  free(ca), free(server_cert), free(server_key), free(client_cert), free(client_key);

  printf("echo ok %d/%d, fail ok %d/%d, unknown ok %d/%d, stream echo %d/%d fail %d/%d deadline %d/%d closed %d/%d, "
         "other %d\n",
         atomic_load(&g_echo_ok), calls, atomic_load(&g_fail_ok), fails, atomic_load(&g_unknown_ok), fails,
         atomic_load(&g_stream_echo_ok), streams, atomic_load(&g_stream_fail_ok), streams,
         atomic_load(&g_stream_slow_ok), streams, atomic_load(&g_stream_closed), atomic_load(&g_stream_started),
         atomic_load(&g_other));
  return atomic_load(&g_echo_ok) == calls && atomic_load(&g_fail_ok) == fails && atomic_load(&g_unknown_ok) == fails &&
                 atomic_load(&g_stream_echo_ok) == streams && atomic_load(&g_stream_fail_ok) == streams &&
                 atomic_load(&g_stream_slow_ok) == streams && atomic_load(&g_stream_started) >= 2 * streams &&
                 atomic_load(&g_stream_closed) == atomic_load(&g_stream_started) &&
                 atomic_load(&g_other) == 0
             ? 0
             : 2;
}
