// rkt::web::serve: an HTTP/1.1 server on any tcp_unit (socket/tcp_unit.h),
// after Racket's web-server `serve`, with the HTTP/1.1 parts Racket lacks.
//
//   auto server = rkt::web::serve(
//       [](rkt::web::request& req) { return rkt::web::response::text("Hello, World!\n"); },
//       {.transport = rkt::make_unix_socket_tcp_unit("/tmp/hello.sock")});
//   rkt::sync(server.stopped_evt());
//
// Structure (as Racket's): every green thread and port of the server lives
// under the server's custodian, which serve() makes under the current one.
// An accept loop takes connections; each gets a custodian of its own under
// the server's and one green thread that reads its requests, calls the
// handler and writes the responses. The handler runs in that connection's
// green thread, so a handler that blocks blocks only its connection (and
// the requests pipelined behind it). A connection ends by shutting its
// custodian down, which also closes what the handler made under it.
//
// Threads: with options.threads == 1 (the default) all of the server's
// green threads run on the OS thread that called serve(), and no other OS
// thread is made. With threads == n > 1, serve() also starts n - 1 OS
// threads; each of the n server threads runs its own accept loop and
// manager, all on the one listener and under the one custodian, and serves
// every connection it accepts on itself for the connection's whole life
// (request::server_thread() says which). The handler is then called from
// several OS threads at once: it must be thread-safe (rkt's channels,
// semaphores and custodians are; plain shared variables are not). The log
// function is called from several OS threads too, one call at a time.
// stop() and drain() end every server thread; finished_evt() is ready once
// the extra OS threads have exited. Stop the server and sync on
// finished_evt() before the process exits.
//
// HTTP: keep-alive and pipelining (responses in request order; responses to
// requests that arrived together go out in one write), Content-Length and
// chunked request bodies, chunked responses when the length is unknown,
// Expect: 100-continue (the 100 goes out once the head is read, or a 413
// without reading a body declared too long), HEAD, Date and Server headers,
// Connection: close both ways, HTTP/1.0 (keep-alive only when asked for;
// close-delimited instead of chunked). Parsing is llhttp's, in strict mode.
// Upgrade headers are ignored; CONNECT gets a 405 and an HTTP/2 preface a
// close.
//
// Where Racket closes a connection silently, this server answers first and
// then closes: 400 for a malformed request, 414 for a request target over
// the line limit, 431 for a header field too large or too many, 413 for a
// body too large, 408 when a request that has begun is not complete in
// time. An idle keep-alive connection past its timeout just closes, as in
// Racket.
//
// Timeouts: one deadline per connection, as Racket's timer manager keeps,
// all watched by one manager green thread per server thread. It is set to
// `request_timeout` when a request begins to be awaited (the idle
// keep-alive timeout and the budget for reading the whole request), and to
// `response_timeout` once the request is read (the budget for the handler
// and for sending the response). When the response deadline passes the
// connection's custodian is shut down.
//
// Errors: a handler that throws gets a 500 if no byte of its response was
// sent, else the connection closes; either way one line goes to the log and
// the server goes on. A client that goes away (EPIPE, ECONNRESET, a closed
// port) costs only its connection and is not logged. An exn_fail_network
// from accept is logged ("Connection error: ...") and the loop goes on; any
// other exception ends the accept loop (as Racket's listener thread ends),
// is logged, and closes the listener; the connections already open go on
// until stop().
#ifndef RKT_WEB_SERVER_H_
#define RKT_WEB_SERVER_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/time/time.h"
#include "custodian/custodian.h"
#include "evt/evt.h"
#include "evt/semaphore.h"
#include "socket/tcp_unit.h"
#include "web/request.h"
#include "web/response.h"

namespace rkt::web {

// Called in the connection's green thread for each request.
using handler = std::function<response(request&)>;

struct limits {
  std::size_t request_line = 8 * 1024;  // the request target, in bytes
  std::size_t header = 8 * 1024;        // each field's name and value together
  std::size_t header_count = 100;
  std::size_t body = 1024 * 1024;
};

struct options {
  // The transport; nullptr means tcp_unit_tcp() on `port`.
  std::shared_ptr<tcp_unit> transport = nullptr;
  uint16_t port = 80;  // 0 picks a free port (see server::local_port)
  std::optional<std::string> listen_ip = std::nullopt;
  int max_waiting = 511;  // the listen backlog
  // Accepting pauses while this many connections are open (on all server
  // threads together; exact, also with several threads).
  std::size_t max_concurrent = 10000;
  absl::Duration request_timeout = absl::Seconds(60);
  absl::Duration response_timeout = absl::Seconds(60);
  struct limits limits = {};
  // One call per log line (no newline); default: the line and "\n" to stderr.
  // With threads > 1 it is called from several OS threads, one call at a
  // time.
  std::function<void(std::string_view)> log = nullptr;
  // The Server header's value.
  std::string server_name = "rkt";
  // Server threads (see "Threads" above): 1 serves on the caller's OS
  // thread only; n > 1 adds n - 1 OS threads. 0 raises exn_fail_contract.
  // max_concurrent counts the connections of all threads together.
  std::size_t threads = 1;
  // Called on each server thread's OS thread, with its index, before that
  // thread's accept loop starts (for index 0, in serve() on the caller):
  // for CPU affinity, thread-local set-up, and the like. An exception from
  // it stops the server and serve() raises it.
  std::function<void(std::size_t thread_index)> on_thread_start = nullptr;
};

namespace internal {
class server_state;
}  // namespace internal

// A handle on a running server. Copies share the server; dropping every
// handle does not stop it (as Racket's stop thunk). Methods may be called
// from any green thread of any OS thread.
class server {
 public:
  // Racket's stop: shuts the server's custodian down. Open connections
  // close at once (in-flight handlers are killed); the listener closes; a
  // Unix socket file stays. Idempotent.
  void stop() const;
  // Stops accepting (the listener closes) and closes idle keep-alive
  // connections at once; requests in progress finish and their responses
  // carry Connection: close. Returns when every connection has ended, or
  // at `deadline`, then stop()s.
  void drain(absl::Time deadline) const;
  // Ready once stop() (or a shutdown of a custodian above the server's)
  // has begun; its shutdown closes every port at once.
  evt<void> stopped_evt() const;
  bool stopped() const;
  // Ready once the server has stopped and every OS thread it started has
  // exited (its green threads dead, its descriptors closed). With threads
  // == 1 it is stopped_evt(). The green threads of server thread 0 die
  // when the serve() caller's OS thread next runs them (at once if stop()
  // was called there).
  evt<void> finished_evt() const;

  // The listener's address: with TCP port 0, the port the kernel picked.
  // (The Unix-socket unit reports "127.0.0.1" and 1.)
  const std::string& local_ip() const;
  uint16_t local_port() const;

  // The server's custodian.
  const custodian& server_custodian() const;

  explicit server(std::shared_ptr<internal::server_state> st);

 private:
  std::shared_ptr<internal::server_state> st_;
};

// Listens on `opts.transport` and serves `h` on it from green threads of the
// calling OS thread (they run whenever the caller syncs) and, with
// opts.threads > 1, of the OS threads it starts; returns once every server
// thread is serving. An error from listen (a path in use, a port taken) or
// from starting a server thread is raised here.
server serve(handler h, options opts = {});

}  // namespace rkt::web

#endif  // RKT_WEB_SERVER_H_
