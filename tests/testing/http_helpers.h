// Helpers for the web server's suites: an HTTP/1.1 response read from a
// port with every read bounded, and a fixture that serves on a Unix socket
// or on TCP port 0, with one or more server threads, and connects raw
// clients to it.
#ifndef RKT_TESTS_TESTING_HTTP_HELPERS_H_
#define RKT_TESTS_TESTING_HTTP_HELPERS_H_

#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "evt/sync.h"
#include "ports/port.h"
#include "socket/tcp_unit.h"
#include "tests/testing/green_threads.h"
#include "tests/testing/port_helpers.h"
#include "tests/testing/sync_within.h"
#include "web/server.h"

namespace rkt::test {

struct http_response {
  int status = 0;
  std::string reason;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool eof = false;  // the connection closed before a status line came

  // The first field named `name` (ASCII case-insensitive).
  std::optional<std::string> header(std::string_view name) const {
    for (const auto& [n, v] : headers) {
      if (n.size() == name.size() &&
          std::equal(n.begin(), n.end(), name.begin(),
                     [](char a, char b) { return std::tolower(a) == std::tolower(b); })) {
        return v;
      }
    }
    return std::nullopt;
  }
};

// One line without its CRLF, or nullopt at EOF; bounded.
inline std::optional<std::string> read_crlf_line(const rkt::input_port& in) {
  return sync_within(rkt::read_line_evt(in, rkt::line_mode::return_linefeed));
}

// Reads one response. `head_request`: the request was HEAD (no body).
inline http_response read_response(const rkt::input_port& in, bool head_request = false) {
  http_response r;
  std::optional<std::string> line = read_crlf_line(in);
  if (!line) {
    r.eof = true;
    return r;
  }
  // "HTTP/1.1 200 OK"
  EXPECT_EQ(line->substr(0, 9), "HTTP/1.1 ") << *line;
  r.status = std::atoi(line->substr(9, 3).c_str());
  r.reason = line->size() > 13 ? line->substr(13) : "";
  for (;;) {
    std::optional<std::string> h = read_crlf_line(in);
    if (!h || h->empty()) break;
    const std::size_t colon = h->find(':');
    std::string value = colon == std::string::npos ? "" : h->substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.erase(0, 1);
    r.headers.emplace_back(h->substr(0, colon), value);
  }
  if (head_request || r.status / 100 == 1 || r.status == 204 || r.status == 304) return r;
  if (r.header("Transfer-Encoding") == "chunked") {
    for (;;) {
      std::optional<std::string> size_line = read_crlf_line(in);
      if (!size_line) {
        ADD_FAILURE() << "EOF inside a chunked body";
        return r;
      }
      const std::size_t size = std::strtoul(size_line->c_str(), nullptr, 16);
      if (size == 0) {
        while (std::optional<std::string> t = read_crlf_line(in)) {
          if (t->empty()) break;
        }
        return r;
      }
      r.body += sync_within(rkt::read_bytes_evt(size, in)).value_or("");
      EXPECT_EQ(read_crlf_line(in), std::optional<std::string>(""));
    }
  }
  if (std::optional<std::string> cl = r.header("Content-Length")) {
    const std::size_t n = std::strtoul(cl->c_str(), nullptr, 10);
    if (n > 0) r.body = sync_within(rkt::read_bytes_evt(n, in)).value_or("");
    return r;
  }
  r.body = read_to_eof(in);
  return r;
}

// Which transport a web suite runs over.
enum class transport_kind { unix_socket, tcp };

inline std::string transport_name(const ::testing::TestParamInfo<transport_kind>& info) {
  return info.param == transport_kind::unix_socket ? "Unix" : "Tcp";
}

// A web suite's parameter: the transport and options.threads.
struct web_setup {
  transport_kind transport;
  std::size_t threads;
};

// "Unix1Thread", "Tcp2Threads", ...
inline std::string web_setup_name(const ::testing::TestParamInfo<web_setup>& info) {
  return std::string(info.param.transport == transport_kind::unix_socket ? "Unix" : "Tcp") +
         std::to_string(info.param.threads) + (info.param.threads == 1 ? "Thread" : "Threads");
}

// Both transports, with 1 and 2 server threads.
inline auto all_web_setups() {
  return ::testing::Values(web_setup{transport_kind::unix_socket, 1},
                           web_setup{transport_kind::unix_socket, 2},
                           web_setup{transport_kind::tcp, 1}, web_setup{transport_kind::tcp, 2});
}

// The server's log lines, appended from any OS thread.
class log_lines {
 public:
  void add(std::string_view line) {
    std::lock_guard<std::mutex> g(mu_);
    lines_.emplace_back(line);
  }
  std::vector<std::string> get() const {
    std::lock_guard<std::mutex> g(mu_);
    return lines_;
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::string> lines_;
};

// Serves on a Unix socket in a fresh directory, or on TCP 127.0.0.1 port
// 0, with the parameter's number of server threads; collects the server's
// log lines; stops the server at the end of the test and waits for its OS
// threads to end, after which the test must leave no thread and no
// descriptor behind.
class web_test : public clean_test,
                 public ::testing::WithParamInterface<web_setup> {
 protected:
  void TearDown() override {
    if (server_) {
      server_->stop();
      sync_within(server_->finished_evt());
    }
    server_.reset();
    clean_test::TearDown();
  }

  transport_kind transport() const { return GetParam().transport; }
  std::size_t threads() const { return GetParam().threads; }

  // Starts serving `h`; `adjust` edits the options first.
  void start(rkt::web::handler h,
             const std::function<void(rkt::web::options&)>& adjust = nullptr) {
    rkt::web::options o;
    o.threads = threads();
    if (transport() == transport_kind::unix_socket) {
      unit_ = rkt::make_unix_socket_tcp_unit(dir_.file("s"));
      o.transport = unit_;
    } else {
      unit_ = rkt::tcp_unit_tcp();
      o.transport = unit_;
      o.port = 0;
      o.listen_ip = "127.0.0.1";
    }
    o.log = [log = log_](std::string_view line) { log->add(line); };
    if (adjust) adjust(o);
    server_.emplace(rkt::web::serve(std::move(h), std::move(o)));
  }

  // A raw client connection to the server.
  conn connect() {
    const uint16_t port = server_->local_port();
    return conn(on_green_thread([&] { return unit_->connect("127.0.0.1", port); }));
  }

  // Sends `bytes` and flushes.
  static void send(const conn& c, std::string_view bytes) {
    c.out.write_bytes(bytes);
    c.out.flush();
  }

  std::vector<std::string> log() const { return log_->get(); }
  std::string socket_path() const { return dir_.file("s"); }

  temp_dir dir_{"rkt_web"};
  std::shared_ptr<rkt::tcp_unit> unit_;
  std::optional<rkt::web::server> server_;
  std::shared_ptr<log_lines> log_ = std::make_shared<log_lines>();
};

}  // namespace rkt::test

#endif  // RKT_TESTS_TESTING_HTTP_HELPERS_H_
