// rkt::web::response: what a handler returns (web/server.h). The body is
// either bytes, sent with a Content-Length, or a function that writes it to
// an output port as it goes (streaming): sent chunked to an HTTP/1.1 client
// when no Content-Length header is given, close-delimited to an HTTP/1.0
// one, and as is when the handler gives a Content-Length (whose value it
// must then write exactly, or the connection closes).
//
// The server adds Server and Date (unless given), Content-Length or
// Transfer-Encoding, and Connection; a handler's own Content-Length is kept
// only with a writer, and its Transfer-Encoding is never kept. A header
// name or value with CR, LF or NUL makes the response a 500.
#ifndef RKT_WEB_RESPONSE_H_
#define RKT_WEB_RESPONSE_H_

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "ports/port.h"

namespace rkt::web {

struct response {
  int status = 200;
  // Empty: the standard phrase for `status` (reason_phrase).
  std::string reason;
  std::vector<std::pair<std::string, std::string>> headers;
  // The body when `writer` is empty.
  std::string body;
  // Writes the body to the port it is given (streaming). It runs in a green
  // thread of the connection's custodian; what it writes goes out as it
  // writes, in pieces of up to 64 KiB. Not called for HEAD.
  std::function<void(const output_port&)> writer;

  // A response with `body` and Content-Type `content_type`.
  static response text(std::string body, int status = 200,
                       std::string content_type = "text/plain; charset=utf-8");
};

// "OK", "Not Found", ...; "Unknown" for a status without a standard phrase.
const char* reason_phrase(int status);

}  // namespace rkt::web

#endif  // RKT_WEB_RESPONSE_H_
