// Formatting of response heads: the reason phrases, the Date header's value
// (formatted once per second per OS thread), and the pieces a connection
// appends to its output buffer.
#ifndef RKT_WEB_INTERNAL_HTTP_FORMAT_H_
#define RKT_WEB_INTERNAL_HTTP_FORMAT_H_

#include <cstddef>
#include <string>
#include <string_view>

namespace rkt::web::internal {

// "Sun, 06 Nov 1994 08:49:37 GMT" for the current second (RFC 9110's
// IMF-fixdate). The view stays valid until the next call on this OS thread.
std::string_view http_date_now();

// Appends "HTTP/1.1 <status> <reason>\r\n"; an empty `reason` picks the
// standard phrase.
void append_status_line(std::string& out, int status, std::string_view reason);
// Appends "<name>: <value>\r\n".
void append_header(std::string& out, std::string_view name, std::string_view value);
// Appends the decimal digits of n.
void append_decimal(std::string& out, std::size_t n);
// Appends "<hex size>\r\n", a chunk's size line.
void append_chunk_size(std::string& out, std::size_t n);

// ASCII case-insensitive equality (field names, tokens).
bool equals_ignore_case(std::string_view a, std::string_view b);
// Whether a comma-separated field value lists `token` (case-insensitive).
bool has_token(std::string_view value, std::string_view token);
// Whether s holds CR, LF or NUL (a header that would split the response).
bool has_line_break(std::string_view s);

}  // namespace rkt::web::internal

#endif  // RKT_WEB_INTERNAL_HTTP_FORMAT_H_
