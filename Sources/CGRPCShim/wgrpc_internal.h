// Shared between the shim's C files; not part of the module's API.

#ifndef WGRPC_INTERNAL_H
#define WGRPC_INTERNAL_H

#include "wgrpc_shim.h"

#include <grpc/grpc_security.h>

// Server credentials that take their certificates from `tls` on every new
// connection. They do not retain `tls`: the server that uses them holds a
// reference (wgrpc_tls_retain) until grpc_server_destroy has run.
grpc_server_credentials *wgrpc_tls_server_credentials(wgrpc_tls *tls);

void wgrpc_tls_retain(wgrpc_tls *tls);

#endif // WGRPC_INTERNAL_H
