// One HTTP/1.1 connection of a server: the loop that reads requests with
// llhttp, calls the handler, and writes the responses, run by the
// connection's green thread (server_state.cc spawns it).
//
// Reading: bytes go into a small buffer that grows while bytes stream in, and llhttp runs over them. It is
// paused at the end of each head (so that the body can be routed) and of
// each message (so that requests are served one at a time; a pipelined
// request stays in the buffer). A body that arrived with its head, or a
// Content-Length body of at most 64 KiB, is read into memory before the
// handler runs; a longer or chunked one is fed into a bounded pipe by a
// feeder green thread while the handler reads the pipe.
//
// Writing: response heads and small bodies are formatted into one output
// buffer, which goes out in one write when the connection has no more
// buffered input (before it would wait to read), so the responses to
// pipelined requests share a write. A streamed body (response::writer) is
// produced by a writer green thread into a bounded pipe and sent as it
// comes, chunked or not.
//
// Invariants: started_ is true once a byte of the current request has been
// parsed; message_done_ once it is complete. Everything here is touched
// only from green threads of the server thread that accepted the
// connection (its worker_state): this connection's thread, its feeder
// while the handler runs (the connection thread then touches only the
// request, through the handler), and that server thread's manager
// (on_read_deadline, idle, cust) while those are parked.
#ifndef RKT_WEB_INTERNAL_CONNECTION_H_
#define RKT_WEB_INTERNAL_CONNECTION_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "custodian/custodian.h"
#include "evt/thread.h"
#include "llhttp.h"
#include "ports/port.h"
#include "web/internal/timer_list.h"
#include "web/request.h"
#include "web/response.h"

namespace rkt::web::internal {

class server_state;
class worker_state;

class connection {
 public:
  // `worker`: the server thread whose accept loop took the connection (and
  // on whose OS thread it runs); its deadline lists hold this connection.
  connection(std::shared_ptr<server_state> server, worker_state& worker, custodian cust,
             input_port in, output_port out);
  ~connection();
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  // Serves requests until the connection ends; logs what is worth logging.
  // Throws only thread_killed.
  void serve();

  // For the server's manager. The request deadline passed: an idle
  // connection is shut down; one with a request begun gets a 408 (its
  // input is closed, waking the read) and the deadline once more to
  // finish; after that it is shut down.
  void on_read_deadline();
  // Parked waiting for a request of which nothing has arrived.
  bool idle() const { return waiting_idle_; }
  const custodian& cust() const { return cust_; }
  // This connection's place on the server's deadline lists.
  timer_node& timer() { return timer_; }

 private:
  // parse_until and fill results besides 0 (go on) and an HTTP status.
  static constexpr int kClose = -1;      // close without answering
  static constexpr int kCloseAfter = 1;  // close once the response is out

  void run();
  void begin_request();
  int parse_until(const bool& done);
  void execute();
  int fill();
  void flush_output();
  int read_body_then_handle();
  void feed_body();
  // Appends (or streams) the handler's response; false when the connection
  // must close after it.
  bool send_response(response& resp);
  bool stream_response(response& resp, bool keep_alive, std::size_t head_start);
  void send_error(int status);
  void close_after_response();
  void log_handler_error(const char* what);

  // llhttp callbacks; parser->data is the connection.
  static int on_message_begin(llhttp_t* p);
  static int on_url(llhttp_t* p, const char* at, std::size_t len);
  static int on_header_field(llhttp_t* p, const char* at, std::size_t len);
  static int on_header_field_complete(llhttp_t* p);
  static int on_header_value(llhttp_t* p, const char* at, std::size_t len);
  // Counts `len` more bytes of the current field (name and value together)
  // against the header limit (431 past it) and keeps them while in the head.
  int take_field_bytes(const char* at, std::size_t len);
  static int on_header_value_complete(llhttp_t* p);
  static int on_headers_complete(llhttp_t* p);
  static int on_body(llhttp_t* p, const char* at, std::size_t len);
  static int on_message_complete(llhttp_t* p);
  static const llhttp_settings_t kSettings;

  timer_node timer_;
  std::shared_ptr<server_state> server_;
  worker_state& worker_;
  custodian cust_;
  input_port in_;
  output_port out_;

  llhttp_t parser_;
  // The read buffer starts small, so an idle keep-alive connection holds
  // little, and doubles up to kMaxBuffer each time a read fills it (bytes
  // are streaming in). It is always empty when fill() reads into it.
  static constexpr std::size_t kMinBuffer = 1024;
  static constexpr std::size_t kMaxBuffer = 8 * 1024;
  std::unique_ptr<char[]> buf_;
  std::size_t buf_size_ = kMinBuffer;
  std::size_t begin_ = 0;  // unparsed bytes are [begin_, end_)
  std::size_t end_ = 0;
  bool need_execute_ = false;  // the parser was paused: run it even on no bytes
  std::string out_buf_;        // response bytes not yet written

  request req_;
  bool started_ = false;
  bool head_done_ = false;
  bool message_done_ = false;
  bool keep_alive_ = false;
  bool expect_continue_ = false;
  int callback_status_ = 0;   // the status a callback chose to fail with
  bool in_field_ = false;     // a field name is being accumulated
  bool pending_field_ = false;  // a field name is complete, its value not yet
  std::size_t field_size_ = 0;
  std::size_t name_at_ = 0, name_len_ = 0, value_at_ = 0;
  uint64_t body_seen_ = 0;

  // A streamed body: where on_body writes, the feeder, and how it ended.
  std::optional<output_port> body_sink_;
  std::vector<std::string_view> pending_body_;  // pieces of buf_ to write to it
  int body_status_ = 0;

  bool waiting_idle_ = false;
  bool timed_out_ = false;
  bool response_bytes_sent_ = false;
};

}  // namespace rkt::web::internal

#endif  // RKT_WEB_INTERNAL_CONNECTION_H_
