// rkt::web::request: one HTTP/1.1 request as the server hands it to a
// handler (web/server.h): method, target split into path and query,
// version, header fields in arrival order, the client's address, and the
// body as an input port.
//
// A request is owned by its connection and reused for the next request on
// it: the string_views it returns stay valid only while the handler runs
// (copy what must outlive it).
#ifndef RKT_WEB_REQUEST_H_
#define RKT_WEB_REQUEST_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ports/port.h"

namespace rkt::web {
namespace internal {
class connection;
}  // namespace internal

class request {
 public:
  // "GET", "POST", ... as sent (llhttp accepts only known methods).
  std::string_view method() const { return method_; }
  // The request target as sent: "/a/b?x=1" (or "*", or an absolute URI).
  std::string_view target() const { return target_; }
  // The target up to the first '?', and what follows it ("" without one).
  std::string_view path() const;
  std::string_view query() const;
  int version_major() const { return version_major_; }
  int version_minor() const { return version_minor_; }

  // The value of the first field named `name`, compared without regard to
  // ASCII case; nullopt when there is none.
  std::optional<std::string_view> header(std::string_view name) const;
  // Every value of the fields named `name`, in arrival order.
  std::vector<std::string_view> header_values(std::string_view name) const;
  // Every field, in arrival order (repeated fields kept).
  std::size_t header_count() const { return fields_.size(); }
  std::pair<std::string_view, std::string_view> header_at(std::size_t i) const;

  // The client's address from the transport's addresses() ("127.0.0.1"
  // and port 0 on a Unix socket, as Racket's unit reports).
  const std::string& client_ip() const { return client_ip_; }
  uint16_t client_port() const { return client_port_; }

  // Which of the server's threads (0 .. options.threads - 1; 0 is the OS
  // thread that called serve()) accepted the connection and runs this
  // handler.
  std::size_t server_thread() const { return server_thread_; }

  // The body: reads stop at the end of the message (EOF), never past it.
  // A body that had arrived with the head is in memory; a longer or chunked
  // one streams from the connection as it is read (chunks decoded). A body
  // the handler leaves unread is read and dropped after it returns.
  const input_port& body() const;
  // Reads what is left of the body (at most the server's body limit).
  std::string read_body() const;

 private:
  friend class internal::connection;

  struct field {
    std::size_t name_at, name_len, value_at, value_len;
  };

  void reset();

  const char* method_ = "";
  std::string target_;
  int version_major_ = 1;
  int version_minor_ = 1;
  std::string raw_;             // field names and values, back to back
  std::vector<field> fields_;   // spans of raw_
  std::string client_ip_;
  uint16_t client_port_ = 0;
  std::size_t server_thread_ = 0;
  // The body port: set by the connection for a streamed body; made from
  // body_bytes_ on first use otherwise.
  mutable std::optional<input_port> body_;
  std::string body_bytes_;
};

}  // namespace rkt::web

#endif  // RKT_WEB_REQUEST_H_
