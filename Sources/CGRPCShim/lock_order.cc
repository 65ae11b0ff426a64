// gRPC core's locks are absl::Mutex. Debian builds abseil without NDEBUG, so
// by default every lock and unlock also maintains a process-wide lock-order
// graph for deadlock detection: a debugging aid that upstream release builds
// (NDEBUG) never pay for, measured here at about 2% of the machine's CPU
// under load (GraphCycles::GetId and friends). The shim turns it off once,
// before grpc_init. bench/cpp_echo does the same, so the C++ reference and
// ours run gRPC core alike.
#include <absl/synchronization/mutex.h>

// Declared in wgrpc_shim.c, its only caller.
extern "C" void wgrpc_skip_lock_order_tracking(void) {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
}
