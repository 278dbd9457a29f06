// The README's ten-line web server: every request on /tmp/rkt-web.sock gets
// "Hello, World!". It removes what an earlier run left at the path; stop it
// with Ctrl-C. examples/hello_web.cc is the full version (signals, POST).
#include <filesystem>

#include "evt/sync.h"
#include "socket/tcp_unit.h"
#include "web/server.h"

int main() {
  std::filesystem::remove("/tmp/rkt-web.sock");
  rkt::web::server server = rkt::web::serve(
      [](rkt::web::request&) { return rkt::web::response::text("Hello, World!\n"); },
      {.transport = rkt::make_unix_socket_tcp_unit("/tmp/rkt-web.sock")});
  rkt::sync(server.stopped_evt());
}
