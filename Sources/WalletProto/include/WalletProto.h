// Umbrella header for the protoc-c output (generated files beside it).
#include "wallet_v1_wallet.pb-c.h"
#include "google_rpc_status.pb-c.h"
#include "google_rpc_error_details.pb-c.h"
#include "google_protobuf_any.pb-c.h"
#include "grpc_health_v1_health.pb-c.h"
#include "grpc_reflection_v1_reflection.pb-c.h"
#include "wallet_descriptor_set.h"
