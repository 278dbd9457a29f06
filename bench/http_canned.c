// The baseline of the HTTP benchmark (bench/http_compare.sh): a minimal
// single-threaded epoll server in C that answers every request with one
// canned response. It parses nothing: a request ends where "\r\n\r\n" is
// seen, so it is the ceiling no real HTTP server can pass, not a server.
//
//   http_canned [SOCKET_PATH]      (default: http_canned.sock)
//
// The command-line contract is //examples:hello_web's, so that the harness
// and the peer tests (tests/web_*_test.sh) run either binary: it unlinks a
// stale SOCKET_PATH, listens there with backlog 511, prints exactly one
// line "listening on SOCKET_PATH" to stdout (flushed) once it listens,
// answers each request with 200 text/plain "Hello, World!\n" (14 bytes,
// Content-Length, keep-alive), and on SIGINT or SIGTERM removes SOCKET_PATH
// and exits 0.
// Unlike hello_web it does NOT echo the body of POST/PUT (a body is
// skipped only by accident, when it holds no "\r\n\r\n"), and it answers
// HEAD with a body too; the peer tests skip those cases for this binary.
//
// Invariants:
// - Every descriptor is non-blocking and registered edge-triggered, so each
//   handler runs until EAGAIN (or a short read; see conn_service).
// - A connection owes `owed` responses, the first of them sent up to
//   `sent` bytes. Responses are generated at write time, so a connection
//   holds no output buffer; it stops reading while more than kMaxOwed are
//   owed, so a client that pipelines without reading is stopped by its own
//   socket buffer, not by our memory.
// - conn_service() leaves a connection either waiting for input (nothing
//   owed, EPOLLIN only) or waiting for output (EPOLLIN|EPOLLOUT).

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static const char kResponse[] =
    "HTTP/1.1 200 OK\r\n"
    "Content-Type: text/plain\r\n"
    "Content-Length: 14\r\n"
    "\r\n"
    "Hello, World!\n";
enum { kResponseLen = sizeof kResponse - 1 };

// Responses written by one send(): enough for any pipelining depth a load
// generator uses, small enough for the stack.
enum { kBatch = 64, kMaxOwed = 4096 };

struct conn {
  int fd;
  uint32_t matched;   // bytes of "\r\n\r\n" matched at the end of the input
  uint32_t want_out;  // EPOLLOUT is currently registered
  uint32_t sent;      // bytes of the first owed response already sent
  uint64_t owed;      // responses not yet fully sent
};

// Tags for epoll_event.data.ptr that are not connections.
static char listener_tag, signal_tag;

static const char *socket_path;
static int epfd;
// One read buffer for all connections: the server is single-threaded and
// keeps nothing of the input but `matched`.
static char inbuf[16384];

static void die(const char *what) {
  fprintf(stderr, "http_canned: %s: %s\n", what, strerror(errno));
  exit(1);
}

static void conn_close(struct conn *c) {
  epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  free(c);
}

static int conn_set_out(struct conn *c, int on) {
  if ((uint32_t)on == c->want_out) return 0;
  struct epoll_event ev = {
      .events = EPOLLIN | EPOLLRDHUP | EPOLLET | (on ? EPOLLOUT : 0),
      .data.ptr = c,
  };
  if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0) return -1;
  c->want_out = (uint32_t)on;
  return 0;
}

// Counts the requests that end in buf[0..n), carrying the partial match of
// the terminator across reads.
static uint64_t count_request_ends(struct conn *c, const char *buf, size_t n) {
  static const char term[4] = {'\r', '\n', '\r', '\n'};
  uint64_t ends = 0;
  uint32_t m = c->matched;
  for (size_t i = 0; i < n; i++) {
    if (buf[i] == term[m]) {
      if (++m == 4) {
        ends++;
        m = 0;
      }
    } else {
      m = (buf[i] == '\r') ? 1 : 0;
    }
  }
  c->matched = m;
  return ends;
}

// Sends the owed responses. Returns 1 when none are left, 0 when the socket
// is full (EPOLLOUT is then registered), -1 on error.
static int conn_flush(struct conn *c) {
  static char out[kBatch * kResponseLen];
  static int out_ready;
  if (!out_ready) {
    for (int i = 0; i < kBatch; i++) memcpy(out + i * kResponseLen, kResponse, kResponseLen);
    out_ready = 1;
  }
  while (c->owed > 0) {
    uint64_t k = c->owed < kBatch ? c->owed : kBatch;
    size_t len = (size_t)k * kResponseLen - c->sent;
    // MSG_NOSIGNAL: a client that closes mid-response gives EPIPE, not a
    // SIGPIPE that would end the server.
    ssize_t n = send(c->fd, out + c->sent, len, MSG_NOSIGNAL);
    if (n > 0) {
      uint64_t total = (uint64_t)c->sent + (uint64_t)n;
      c->owed -= total / kResponseLen;
      c->sent = (uint32_t)(total % kResponseLen);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && errno == EAGAIN) {
      return conn_set_out(c, 1) < 0 ? -1 : 0;
    } else {
      return -1;
    }
  }
  return conn_set_out(c, 0) < 0 ? -1 : 1;
}

// Reads and answers until the connection would block. Returns -1 when it
// must be closed (peer closed, error).
static int conn_service(struct conn *c) {
  for (;;) {
    int r = conn_flush(c);
    if (r < 0) return -1;
    if (c->owed > kMaxOwed) return 0;  // EPOLLOUT is registered: resume there
    ssize_t n = read(c->fd, inbuf, sizeof inbuf);
    if (n > 0) {
      c->owed += count_request_ends(c, inbuf, (size_t)n);
      r = conn_flush(c);
      if (r < 0) return -1;
      // A Unix stream read returns less than asked only when the receive
      // queue was empty, and data queued later raises a new edge.
      if (r == 1 && (size_t)n < sizeof inbuf) return 0;
      if (r == 0) return 0;
    } else if (n == 0) {
      return -1;
    } else if (errno == EAGAIN) {
      return 0;
    } else if (errno != EINTR) {
      return -1;
    }
  }
}

// Accepts until the backlog is empty. On EMFILE the listener stays
// registered edge-triggered with a non-empty backlog, so the reserve
// descriptor is spent to accept and drop one connection.
static void accept_all(int lfd, int *reserve) {
  for (;;) {
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EAGAIN) return;
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if ((errno == EMFILE || errno == ENFILE) && *reserve >= 0) {
        close(*reserve);
        fd = accept(lfd, NULL, NULL);
        if (fd >= 0) close(fd);
        *reserve = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0 && errno == EAGAIN) return;
        continue;
      }
      fprintf(stderr, "http_canned: accept: %s\n", strerror(errno));
      return;
    }
    struct conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
      close(fd);
      continue;
    }
    c->fd = fd;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
      close(fd);
      free(c);
    }
  }
}

int main(int argc, char **argv) {
  if (argc > 2) {
    fprintf(stderr, "usage: http_canned [SOCKET_PATH]\n");
    return 2;
  }
  socket_path = argc == 2 ? argv[1] : "http_canned.sock";
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if (socket_path[0] == '\0' || strlen(socket_path) >= sizeof addr.sun_path) {
    fprintf(stderr, "http_canned: socket path empty or longer than %zu bytes: %s\n",
            sizeof addr.sun_path - 1, socket_path);
    return 2;
  }
  strcpy(addr.sun_path, socket_path);

  signal(SIGPIPE, SIG_IGN);
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  if (sigprocmask(SIG_BLOCK, &stop, NULL) < 0) die("sigprocmask");
  int sfd = signalfd(-1, &stop, SFD_NONBLOCK | SFD_CLOEXEC);
  if (sfd < 0) die("signalfd");

  int reserve = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (reserve < 0) die("open /dev/null");

  int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (lfd < 0) die("socket");
  if (unlink(socket_path) < 0 && errno != ENOENT) die("unlink stale socket");
  if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind");
  // 511, as Racket's serve and nginx: a Unix listener with a full backlog
  // refuses a non-blocking connect at once (EAGAIN).
  if (listen(lfd, 511) < 0) die("listen");

  epfd = epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) die("epoll_create1");
  struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.ptr = &listener_tag};
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev) < 0) die("epoll_ctl listener");
  ev = (struct epoll_event){.events = EPOLLIN, .data.ptr = &signal_tag};
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, sfd, &ev) < 0) die("epoll_ctl signalfd");

  printf("listening on %s\n", socket_path);
  fflush(stdout);

  struct epoll_event events[256];
  for (;;) {
    int n = epoll_wait(epfd, events, 256, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait");
    }
    for (int i = 0; i < n; i++) {
      void *tag = events[i].data.ptr;
      if (tag == &signal_tag) {
        // Connections are left to the kernel: exit closes them.
        unlink(socket_path);
        return 0;
      }
      if (tag == &listener_tag) {
        accept_all(lfd, &reserve);
        continue;
      }
      struct conn *c = tag;
      if ((events[i].events & (EPOLLERR | EPOLLHUP)) || conn_service(c) < 0) {
        conn_close(c);
      }
    }
  }
}
