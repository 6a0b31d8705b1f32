// Loopback ports for tests that start servers or need a port with nothing listening.
#pragma once

namespace eventloom::testing {

// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, read, closed). Another
// process may take it before the caller uses it; tests accept that race.
int UnusedLoopbackPort();

}  // namespace eventloom::testing
