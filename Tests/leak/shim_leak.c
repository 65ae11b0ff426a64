// Repeated-call leak check of the gRPC core shim (server and client sides),
// run under valgrind by scripts/leak-check: every call's slices, byte
// buffers, metadata and call objects must be freed, whatever way it ends.
//
//   shim_leak CALLS   -> exit 0 when every call got the answer it should
#include "wgrpc_shim.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { METHOD_ECHO = 0, METHOD_FAIL = 1, CALLERS = 8, CALL_TIMEOUT_MS = 5000 };

static const uint8_t kBody[32] = {1, 2, 3, 4};
static const uint8_t kDetails[] = {8, 9, 18, 3, 'a', 'b', 'c'};

static wgrpc_channel *g_channel;
static atomic_int g_to_start;  // echo calls still to start (closed loop)
static atomic_int g_echo_ok, g_fail_ok, g_unknown_ok, g_other;

static void on_request(void *ctx, wgrpc_call *call, int method_index, const uint8_t *request, size_t len) {
  (void)ctx;
  if (method_index == METHOD_ECHO) {
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

int main(int argc, char **argv) {
  int calls = argc > 1 ? atoi(argv[1]) : 1000;
  const char *methods[] = {"/leak.Test/Echo", "/leak.Test/Fail"};
  char error[256];
  wgrpc_server *server = wgrpc_server_create("127.0.0.1:0", methods, 2, on_request, NULL, error, sizeof error);
  if (!server) {
    fprintf(stderr, "server: %s\n", error);
    return 1;
  }
  char target[64];
  snprintf(target, sizeof target, "127.0.0.1:%d", wgrpc_server_port(server));
  g_channel = wgrpc_channel_create(target, 2, error, sizeof error);
  if (!g_channel) {
    fprintf(stderr, "channel: %s\n", error);
    return 1;
  }

  atomic_store(&g_to_start, calls);
  for (int i = 0; i < CALLERS; i++) start_echo();
  int fails = calls / 10;
  for (int i = 0; i < fails; i++) {
    wgrpc_client_call_unary(g_channel, "/leak.Test/Fail", NULL, 0, CALL_TIMEOUT_MS, on_fail, NULL);
    wgrpc_client_call_unary(g_channel, "/leak.Nope/Missing", kBody, sizeof kBody, CALL_TIMEOUT_MS, on_unknown, NULL);
  }
  for (int waited_ms = 0; waited_ms < 120000; waited_ms += 10) {
    if (atomic_load(&g_echo_ok) + atomic_load(&g_other) >= calls && atomic_load(&g_fail_ok) >= fails &&
        atomic_load(&g_unknown_ok) >= fails)
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

  printf("echo ok %d/%d, fail ok %d/%d, unknown ok %d/%d, other %d\n", atomic_load(&g_echo_ok), calls,
         atomic_load(&g_fail_ok), fails, atomic_load(&g_unknown_ok), fails, atomic_load(&g_other));
  return atomic_load(&g_echo_ok) == calls && atomic_load(&g_fail_ok) == fails && atomic_load(&g_unknown_ok) == fails &&
                 atomic_load(&g_other) == 0
             ? 0
             : 2;
}
