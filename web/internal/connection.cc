// The connection loop: parse with llhttp, route the body, call the handler,
// write the response, repeat while the connection is kept alive.
#include "web/internal/connection.h"

#include <errno.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <exception>
#include <span>
#include <string_view>
#include <utility>

#include "absl/time/clock.h"
#include "evt/exn.h"
#include "evt/sync.h"
#include "ports/pipe.h"
#include "web/internal/http_format.h"
#include "web/internal/server_state.h"

namespace rkt::web::internal {
namespace {

// A Content-Length body up to this size is read into memory before the
// handler runs; a longer or chunked one streams through a pipe this big.
constexpr uint64_t kInMemoryBody = 64 * 1024;
constexpr std::size_t kPipeLimit = 64 * 1024;
// Output waiting for a write goes out once it passes this size.
constexpr std::size_t kOutputHighWater = 64 * 1024;
// After an answer that closes the connection, what the client still sends
// is read and dropped for at most this long (or this many bytes), so that
// closing with unread input does not reset the connection before the
// client has read the answer.
constexpr absl::Duration kLinger = absl::Seconds(2);
constexpr std::size_t kLingerBytes = 1024 * 1024;

connection& self(llhttp_t* p) { return *static_cast<connection*>(p->data); }

// Errors that mean the client went away (Racket's list: EPIPE and
// ECONNRESET).
bool client_went_away(const exn_fail& e) {
  if (const auto* n = dynamic_cast<const exn_fail_network*>(&e)) {
    const int err = n->error_number();
    return err == EPIPE || err == ECONNRESET || err == ECONNABORTED || err == ETIMEDOUT;
  }
  if (const auto* f = dynamic_cast<const exn_fail_filesystem*>(&e)) {
    const int err = f->error_number();
    return err == EPIPE || err == ECONNRESET;
  }
  return false;
}

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  return s;
}

}  // namespace

const llhttp_settings_t connection::kSettings = [] {
  llhttp_settings_t s;
  llhttp_settings_init(&s);
  s.on_message_begin = &connection::on_message_begin;
  s.on_url = &connection::on_url;
  s.on_header_field = &connection::on_header_field;
  s.on_header_field_complete = &connection::on_header_field_complete;
  s.on_header_value = &connection::on_header_value;
  s.on_header_value_complete = &connection::on_header_value_complete;
  s.on_headers_complete = &connection::on_headers_complete;
  s.on_body = &connection::on_body;
  s.on_message_complete = &connection::on_message_complete;
  return s;
}();

connection::connection(std::shared_ptr<server_state> server, worker_state& worker,
                       custodian cust, input_port in, output_port out)
    : server_(std::move(server)),
      worker_(worker),
      cust_(std::move(cust)),
      in_(std::move(in)),
      out_(std::move(out)),
      buf_(new char[kMinBuffer]) {
  timer_.owner = this;
  req_.server_thread_ = worker_.index;
  llhttp_init(&parser_, HTTP_REQUEST, &kSettings);
  parser_.data = this;
}

connection::~connection() {
  timer_list::unlink(timer_);
}

void connection::serve() {
  try {
    run();
  } catch (const exn_fail& e) {
    // A connection whose custodian is shut down (by a stop() from another
    // OS thread, say) is being killed: what fails meanwhile is not news.
    if (!client_went_away(e) && !in_.closed() && !out_.closed() && !cust_.is_shut_down()) {
      server_->log(std::string("connection: ") + e.what());
    }
  } catch (const std::exception& e) {
    server_->log(std::string("connection: ") + e.what());
  }
  in_.close();
  try {
    out_.close();
  } catch (const exn_fail&) {
  }
}

void connection::run() {
  // Responses are formatted into out_buf_ and written whole.
  out_.set_buffer_mode(buffer_mode::none);
  {
    const tcp_address_info a = server_->unit_->addresses(in_);
    req_.client_ip_ = a.remote_host;
    req_.client_port_ = a.remote_port;
  }
  for (;;) {
    begin_request();
    int st = parse_until(head_done_);
    if (st == kClose) return;
    if (st != 0) {
      send_error(st);
      return;
    }
    st = read_body_then_handle();
    if (st == kClose) return;
    if (st == kCloseAfter || (st == 0 && server_->draining_.load())) {
      close_after_response();
      return;
    }
    if (st != 0) {
      send_error(st);
      return;
    }
  }
}

void connection::begin_request() {
  req_.reset();
  started_ = head_done_ = message_done_ = false;
  keep_alive_ = expect_continue_ = false;
  callback_status_ = 0;
  in_field_ = pending_field_ = false;
  body_seen_ = 0;
  body_sink_.reset();
  body_status_ = 0;
  response_bytes_sent_ = false;
  worker_.set_deadline(*this, worker_.reading_);
}

// Runs the parser, reading as needed, until `done`. Returns 0, an HTTP
// status to answer with, or kClose.
int connection::parse_until(const bool& done) {
  while (!done) {
    if (begin_ == end_ && !need_execute_) {
      const int st = fill();
      if (st != 0) return st;
      continue;
    }
    execute();
    if (callback_status_ != 0) return callback_status_;
    if (!pending_body_.empty()) {
      // Parks while the pipe is full; dropped once the handler is done.
      for (std::string_view piece : pending_body_) body_sink_->write_bytes(piece);
      pending_body_.clear();
    }
  }
  return 0;
}

void connection::execute() {
  need_execute_ = false;
  const char* start = buf_.get() + begin_;
  const llhttp_errno_t err = llhttp_execute(&parser_, start, end_ - begin_);
  if (err == HPE_OK) {
    begin_ = end_;
    return;
  }
  if (err == HPE_PAUSED) {
    begin_ += static_cast<std::size_t>(llhttp_get_error_pos(&parser_) - start);
    llhttp_resume(&parser_);
    need_execute_ = true;
    return;
  }
  if (callback_status_ == 0) {
    // An HTTP/2 preface is not answered in HTTP/1.1: just close.
    callback_status_ = err == HPE_PAUSED_H2_UPGRADE ? kClose : 400;
  }
}

// Writes pending output, then reads more input into the (empty) buffer.
int connection::fill() {
  flush_output();
  // While draining, a connection about to wait for a new request closes
  // instead, like the idle ones the manager closed when the drain began
  // (it may have been busy writing then).
  if (!started_ && server_->draining_.load()) return kClose;
  // end_ is still the size of the last read; one that filled the buffer
  // means bytes are streaming in.
  if (end_ == buf_size_ && buf_size_ < kMaxBuffer) {
    buf_size_ *= 2;
    buf_.reset(new char[buf_size_]);
  }
  begin_ = end_ = 0;
  or_eof<std::size_t> n;
  waiting_idle_ = !started_;
  try {
    n = in_.read_bytes_avail(std::span<char>(buf_.get(), buf_size_));
  } catch (const exn_fail& e) {
    waiting_idle_ = false;
    if (timed_out_) return started_ ? 408 : kClose;
    throw;
  }
  waiting_idle_ = false;
  if (!n) {
    // The client closed its side: between requests that ends the
    // connection; within one, the request is malformed.
    return started_ ? 400 : kClose;
  }
  end_ = *n;
  return 0;
}

void connection::flush_output() {
  if (out_buf_.empty()) return;
  out_.write_bytes(out_buf_);
  out_buf_.clear();
}

void connection::on_read_deadline() {
  if (waiting_idle_ || timed_out_) {
    cust_.shutdown_all();
    return;
  }
  timed_out_ = true;
  worker_.set_deadline(*this, worker_.reading_);
  in_.close();
}

// The head is parsed: route the body, call the handler, send the response.
// Returns 0 to go on with the next request, kCloseAfter to close after the
// response, kClose to close at once, or an error status to answer with.
int connection::read_body_then_handle() {
  const bool chunked = (parser_.flags & F_CHUNKED) != 0;
  const uint64_t length = chunked ? 0 : parser_.content_length;
  const bool has_body = chunked || length > 0;
  std::optional<rkt::thread> feeder;
  if (has_body && expect_continue_ && (chunked || end_ - begin_ < length)) {
    out_buf_.append("HTTP/1.1 100 Continue\r\n\r\n");
    flush_output();
  }
  if (!has_body || (!chunked && length <= kInMemoryBody)) {
    const int st = parse_until(message_done_);
    if (st != 0) return st;
    worker_.set_deadline(*this, worker_.responding_);
  } else {
    flush_output();
    auto [body_in, body_out] = make_pipe(kPipeLimit, "request body", "request body");
    req_.body_.emplace(body_in);
    body_sink_.emplace(body_out);
    feeder.emplace([this] { feed_body(); }, thread_options{.name = "http body"});
  }

  std::optional<response> resp;
  try {
    resp.emplace(server_->handler_(req_));
  } catch (const thread_killed&) {
    throw;
  } catch (const std::exception& e) {
    log_handler_error(e.what());
  } catch (...) {
    log_handler_error("a non-standard exception");
  }

  if (feeder) {
    // What the handler left unread is dropped; the feeder reads to the end
    // of the message (or fails).
    req_.body_->close();
    sync(feeder->dead_evt());
    if (body_status_ != 0) return body_status_;
    worker_.set_deadline(*this, worker_.responding_);
  }
  if (!resp) {
    send_error(500);
    return kClose;
  }
  try {
    return send_response(*resp) ? 0 : kCloseAfter;
  } catch (const exn_fail_contract& e) {
    // A header that would split the response.
    if (response_bytes_sent_) throw;
    log_handler_error(e.what());
    send_error(500);
    return kClose;
  }
}

// The feeder: parses the rest of the message, whose on_body writes into the
// body pipe, and closes the pipe at the end.
void connection::feed_body() {
  int st = 0;
  try {
    st = parse_until(message_done_);
  } catch (const exn_fail&) {
    st = kClose;
  }
  body_status_ = st;
  body_sink_->close();
}

void connection::log_handler_error(const char* what) {
  server_->log(std::string("handler: ") + std::string(req_.method()) + " " + req_.target_ +
               ": " + what);
}

bool connection::send_response(response& resp) {
  const int status = resp.status;
  const bool head = std::strcmp(req_.method_, "HEAD") == 0;
  const bool no_body = (status >= 100 && status < 200) || status == 204 || status == 304;
  bool keep_alive = keep_alive_ && !server_->draining_.load();
  bool has_server = false, has_date = false;
  std::optional<std::string_view> given_length;
  for (const auto& [name, value] : resp.headers) {
    if (has_line_break(name) || has_line_break(value) || name.empty()) {
      throw exn_fail_contract("web: response header with a line break, a NUL or no name: " +
                              name);
    }
    if (equals_ignore_case(name, "Connection")) {
      if (has_token(value, "close")) keep_alive = false;
    } else if (equals_ignore_case(name, "Server")) {
      has_server = true;
    } else if (equals_ignore_case(name, "Date")) {
      has_date = true;
    } else if (equals_ignore_case(name, "Content-Length")) {
      given_length = value;
    }
  }
  if (has_line_break(resp.reason)) {
    throw exn_fail_contract("web: response reason with a line break: " + resp.reason);
  }

  const std::size_t head_start = out_buf_.size();
  append_status_line(out_buf_, status, resp.reason);
  if (!has_server) append_header(out_buf_, "Server", server_->opts_.server_name);
  if (!has_date) append_header(out_buf_, "Date", http_date_now());
  for (const auto& [name, value] : resp.headers) {
    if (equals_ignore_case(name, "Connection") || equals_ignore_case(name, "Transfer-Encoding") ||
        equals_ignore_case(name, "Content-Length")) {
      continue;
    }
    append_header(out_buf_, name, value);
  }
  if (resp.writer) return stream_response(resp, keep_alive, head_start);

  if (!no_body) {
    out_buf_.append("Content-Length: ");
    append_decimal(out_buf_, resp.body.size());
    out_buf_.append("\r\n");
  }
  if (!keep_alive) {
    out_buf_.append("Connection: close\r\n");
  } else if (req_.version_minor_ == 0) {
    out_buf_.append("Connection: keep-alive\r\n");
  }
  out_buf_.append("\r\n");
  if (!head && !no_body) {
    if (resp.body.size() >= kOutputHighWater) {
      flush_output();
      response_bytes_sent_ = true;
      out_.write_bytes(resp.body);
    } else {
      out_buf_.append(resp.body);
    }
  }
  if (out_buf_.size() >= kOutputHighWater) flush_output();
  return keep_alive;
}

// A body from resp.writer, run in a green thread of its own that writes
// into a bounded pipe; what comes out of the pipe is sent as it comes.
bool connection::stream_response(response& resp, bool keep_alive, std::size_t head_start) {
  const bool head = std::strcmp(req_.method_, "HEAD") == 0;
  const int status = resp.status;
  const bool no_body = (status >= 100 && status < 200) || status == 204 || status == 304;
  std::optional<uint64_t> length;
  for (const auto& [name, value] : resp.headers) {
    if (!equals_ignore_case(name, "Content-Length")) continue;
    const std::string_view v = trim_ows(value);
    uint64_t n = 0;
    const auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (ec != std::errc() || ptr != v.data() + v.size()) {
      throw exn_fail_contract("web: response Content-Length is not a number: " + value);
    }
    length = n;
  }
  const bool chunked = !length && !head && !no_body && req_.version_minor_ >= 1;
  if (!length && !chunked && !head && !no_body) keep_alive = false;  // close-delimited
  if (length) {
    out_buf_.append("Content-Length: ");
    append_decimal(out_buf_, *length);
    out_buf_.append("\r\n");
  }
  if (chunked) out_buf_.append("Transfer-Encoding: chunked\r\n");
  if (!keep_alive) {
    out_buf_.append("Connection: close\r\n");
  } else if (req_.version_minor_ == 0) {
    out_buf_.append("Connection: keep-alive\r\n");
  }
  out_buf_.append("\r\n");
  if (head || no_body) return keep_alive;

  // The writer's outcome, shared with its thread, which may outlive this
  // frame by a little when the connection fails (it is killed below).
  struct outcome {
    bool failed = false;
    std::string what;
  };
  auto result = std::make_shared<outcome>();
  auto [pipe_in, pipe_out] = make_pipe(kPipeLimit, "response body", "response body");
  rkt::thread writer(
      [result, pipe_out = pipe_out, write = std::move(resp.writer)] {
        try {
          write(pipe_out);
        } catch (const thread_killed&) {
          throw;
        } catch (const std::exception& e) {
          result->failed = true;
          result->what = e.what();
        } catch (...) {
          result->failed = true;
          result->what = "a non-standard exception";
        }
        pipe_out.close();
      },
      thread_options{.name = "http response writer"});
  struct stop_writer {
    const input_port& in;
    const rkt::thread& t;
    ~stop_writer() {
      in.close();
      try {
        if (t.running()) t.kill();
      } catch (const exn_fail&) {
      }
    }
  } stop{pipe_in, writer};

  uint64_t sent = 0;
  bool overflow = false;
  char chunk[16 * 1024];
  while (or_eof<std::size_t> n = pipe_in.read_bytes_avail(chunk)) {
    std::size_t take = *n;
    if (length && sent + take > *length) take = static_cast<std::size_t>(*length - sent);
    if (chunked) append_chunk_size(out_buf_, take);
    out_buf_.append(chunk, take);
    if (chunked) out_buf_.append("\r\n");
    sent += take;
    flush_output();
    response_bytes_sent_ = true;
    if (take < *n) {
      overflow = true;
      break;
    }
  }
  if (result->failed || overflow) {
    if (overflow) result->what = "wrote more body bytes than its Content-Length";
    log_handler_error(result->what.c_str());
    if (!response_bytes_sent_) {
      out_buf_.resize(head_start);
      send_error(500);
      return false;
    }
    // Part of the body is out: the client sees it cut short.
    return false;
  }
  if (length && sent != *length) {
    server_->log("handler: " + std::string(req_.method()) + " " + req_.target_ + ": wrote " +
                 std::to_string(sent) + " of " + std::to_string(*length) +
                 " body bytes declared by Content-Length");
    return false;
  }
  if (chunked) out_buf_.append("0\r\n\r\n");
  return keep_alive;
}

// Answers with `status` and closes (kClose: just closes).
void connection::send_error(int status) {
  if (status == kClose) return;
  if (!response_bytes_sent_) {
    const char* reason = reason_phrase(status);
    append_status_line(out_buf_, status, reason);
    append_header(out_buf_, "Server", server_->opts_.server_name);
    append_header(out_buf_, "Date", http_date_now());
    append_header(out_buf_, "Content-Type", "text/plain; charset=utf-8");
    out_buf_.append("Content-Length: ");
    append_decimal(out_buf_, std::strlen(reason) + 1);
    out_buf_.append("\r\nConnection: close\r\n\r\n");
    out_buf_.append(reason);
    out_buf_.push_back('\n');
  }
  close_after_response();
}

void connection::close_after_response() {
  flush_output();
  out_.close();
  if (in_.closed()) return;
  // Linger: read and drop until the client closes, bounded.
  const absl::Time until = absl::Now() + kLinger;
  std::size_t dropped = 0;
  while (dropped < kLingerBytes) {
    std::optional<or_eof<std::size_t>> r = sync_deadline(
        until, read_bytes_avail_evt(std::span<char>(buf_.get(), buf_size_), in_));
    if (!r || !*r) break;
    dropped += **r;
  }
}

// --- llhttp callbacks. A nonzero callback_status_ with -1 makes llhttp
// stop with an error, answered with that status.

int connection::on_message_begin(llhttp_t* p) {
  self(p).started_ = true;
  return 0;
}

int connection::on_url(llhttp_t* p, const char* at, std::size_t len) {
  connection& c = self(p);
  if (c.req_.target_.size() + len > c.server_->opts_.limits.request_line) {
    c.callback_status_ = 414;
    return -1;
  }
  c.req_.target_.append(at, len);
  return 0;
}

int connection::on_header_field(llhttp_t* p, const char* at, std::size_t len) {
  connection& c = self(p);
  if (!c.in_field_) {
    if (c.pending_field_ && on_header_value_complete(p) != 0) return -1;
    c.in_field_ = true;
    c.field_size_ = 0;
    c.name_at_ = c.req_.raw_.size();
  }
  return c.take_field_bytes(at, len);
}

int connection::take_field_bytes(const char* at, std::size_t len) {
  field_size_ += len;
  if (field_size_ > server_->opts_.limits.header) {
    callback_status_ = 431;
    return -1;
  }
  // Trailer fields (after the head) are checked but not kept: the handler
  // may be reading the fields already.
  if (!head_done_) req_.raw_.append(at, len);
  return 0;
}

int connection::on_header_field_complete(llhttp_t* p) {
  connection& c = self(p);
  c.in_field_ = false;
  c.pending_field_ = true;
  c.name_len_ = c.req_.raw_.size() - c.name_at_;
  c.value_at_ = c.req_.raw_.size();
  return 0;
}

int connection::on_header_value(llhttp_t* p, const char* at, std::size_t len) {
  return self(p).take_field_bytes(at, len);
}

int connection::on_header_value_complete(llhttp_t* p) {
  connection& c = self(p);
  if (!c.pending_field_) return 0;
  c.pending_field_ = false;
  if (c.head_done_) return 0;
  if (c.req_.fields_.size() >= c.server_->opts_.limits.header_count) {
    c.callback_status_ = 431;
    return -1;
  }
  std::size_t value_len = c.req_.raw_.size() - c.value_at_;
  while (value_len > 0 && (c.req_.raw_[c.value_at_ + value_len - 1] == ' ' ||
                           c.req_.raw_[c.value_at_ + value_len - 1] == '\t')) {
    --value_len;
  }
  c.req_.fields_.push_back({c.name_at_, c.name_len_, c.value_at_, value_len});
  return 0;
}

int connection::on_headers_complete(llhttp_t* p) {
  connection& c = self(p);
  if (c.pending_field_ && on_header_value_complete(p) != 0) return -1;
  c.head_done_ = true;
  c.keep_alive_ = llhttp_should_keep_alive(p) != 0;
  c.req_.method_ = llhttp_method_name(static_cast<llhttp_method_t>(p->method));
  c.req_.version_major_ = p->http_major;
  c.req_.version_minor_ = p->http_minor;
  if (p->method == HTTP_CONNECT) {
    c.callback_status_ = 405;
    return -1;
  }
  // Upgrade is not offered: the request is served as an ordinary one.
  p->upgrade = 0;
  if ((p->flags & F_CONTENT_LENGTH) != 0 && p->content_length > c.server_->opts_.limits.body) {
    c.callback_status_ = 413;
    return -1;
  }
  if (p->http_major == 1 && p->http_minor >= 1) {
    if (std::optional<std::string_view> expect = c.req_.header("Expect")) {
      c.expect_continue_ = equals_ignore_case(trim_ows(*expect), "100-continue");
    }
  }
  return HPE_PAUSED;
}

int connection::on_body(llhttp_t* p, const char* at, std::size_t len) {
  connection& c = self(p);
  c.body_seen_ += len;
  if (c.body_seen_ > c.server_->opts_.limits.body) {
    c.callback_status_ = 413;
    return -1;
  }
  if (c.body_sink_) {
    // Written to the pipe once llhttp has returned: a write may park, and
    // nothing may unwind through llhttp's C frames. The piece stays in
    // buf_ until the next fill, which comes after the write.
    c.pending_body_.emplace_back(at, len);
  } else {
    c.req_.body_bytes_.append(at, len);
  }
  return 0;
}

int connection::on_message_complete(llhttp_t* p) {
  connection& c = self(p);
  c.message_done_ = true;
  c.keep_alive_ = llhttp_should_keep_alive(p) != 0;
  return HPE_PAUSED;
}

}  // namespace rkt::web::internal
