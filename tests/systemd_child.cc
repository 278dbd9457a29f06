// The child process of systemd_listeners_test: takes the listeners its
// parent passed by the LISTEN_* protocol and reports them on stdout, one
// line each ("listener NAME unix|tcp cloexec|inheritable"), then "env
// unset" or "env kept". With "serve", it then accepts one connection on
// each listener, through make_inherited_tcp_unit, and writes the
// listener's name to it. An error prints "error: <message>" and exits 3.
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <variant>

#include "evt/exn.h"
#include "ports/port.h"
#include "socket/systemd_listeners.h"
#include "socket/tcp_unit.h"

int main(int argc, char** argv) {
  const bool serve = argc > 1 && std::strcmp(argv[1], "serve") == 0;
  try {
    std::vector<rkt::systemd_listener> ls = rkt::systemd_listeners();
    for (const rkt::systemd_listener& l : ls) {
      const bool cloexec = (::fcntl(l.fd, F_GETFD) & FD_CLOEXEC) != 0;
      std::printf("listener %s %s %s\n", l.name.c_str(),
                  std::holds_alternative<rkt::unix_socket_listener>(l.listener) ? "unix" : "tcp",
                  cloexec ? "cloexec" : "inheritable");
    }
    const bool unset = std::getenv("LISTEN_PID") == nullptr &&
                       std::getenv("LISTEN_FDS") == nullptr &&
                       std::getenv("LISTEN_FDNAMES") == nullptr;
    std::printf("env %s\n", unset ? "unset" : "kept");
    std::fflush(stdout);
    if (serve) {
      for (const rkt::systemd_listener& l : ls) {
        std::shared_ptr<rkt::tcp_unit> unit = rkt::make_inherited_tcp_unit(l);
        rkt::tcp_unit_listener listener = unit->listen(0, 4, true, std::nullopt);
        auto [in, out] = unit->accept(listener);
        out.write_bytes(l.name);
        out.close();
        in.close();
        unit->close(listener);
      }
    }
  } catch (const rkt::exn_fail& e) {
    std::printf("error: %s\n", e.what());
    return 3;
  }
  return 0;
}
