// The baseline of the Unix-socket echo benchmark (docs/PERFORMANCE.md):
// a hand-written single-threaded, edge-triggered epoll echo
// server in C. bench/echo_compare.sh runs it and the rkt, Go and Racket
// servers under the same load generator (bench/echo_load.cc).
//
//   epoll_echo SOCKET_PATH
//
// Unlinks a stale SOCKET_PATH, echoes every byte each client sends, and on
// SIGINT or SIGTERM removes SOCKET_PATH and exits 0.
//
// It is meant to be hard to beat, so it does what a tuned server does:
// EPOLLOUT is asked for only while a write is incomplete (a standing
// edge-triggered EPOLLOUT would wake the loop each time a client drains its
// echo), and a short read counts as having drained the socket (below).
//
// Invariants:
// - Every descriptor is non-blocking and registered edge-triggered, so each
//   handler runs until EAGAIN or until it knows no data is left.
// - A connection holds at most one buffer of unsent data (out_off..out_len);
//   while any is held it reads nothing, so a client that does not read its
//   echo is stopped by its own socket buffer, not by our memory.
// - conn_service() leaves a connection in one of two states: waiting for
//   input (nothing pending, EPOLLIN only) or waiting for output (pending
//   data, EPOLLIN|EPOLLOUT).

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

// One allocation per connection, buffer included: about 4 KiB each, the
// figure docs/PERFORMANCE.md quotes for this server.
enum { kConnSize = 4096 };

struct conn {
  int fd;
  uint32_t out_off;   // next byte of buf to write
  uint32_t out_len;   // end of the unsent bytes in buf; 0 = nothing pending
  uint32_t want_out;  // EPOLLOUT is currently registered
  char buf[kConnSize - 4 * sizeof(uint32_t)];
};

// Tags for epoll_event.data.ptr that are not connections.
static char listener_tag, signal_tag;

static const char *socket_path;
static int epfd;

static void die(const char *what) {
  fprintf(stderr, "epoll_echo: %s: %s\n", what, strerror(errno));
  exit(1);
}

static void conn_close(struct conn *c) {
  // close() alone would leave the registration if the descriptor were
  // shared; it is not, but EPOLL_CTL_DEL first keeps that true by
  // construction rather than by accident.
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

// Writes the pending bytes. Returns 1 when none are left, 0 when the socket
// is full (EPOLLOUT is then registered), -1 on error.
static int conn_flush(struct conn *c) {
  while (c->out_off < c->out_len) {
    ssize_t n = write(c->fd, c->buf + c->out_off, c->out_len - c->out_off);
    if (n > 0) {
      c->out_off += (uint32_t)n;
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && errno == EAGAIN) {
      return conn_set_out(c, 1) < 0 ? -1 : 0;
    } else {
      return -1;
    }
  }
  c->out_off = c->out_len = 0;
  return conn_set_out(c, 0) < 0 ? -1 : 1;
}

// Moves data until the connection would block. Returns -1 when it must be
// closed (peer closed, error).
static int conn_service(struct conn *c) {
  for (;;) {
    int r = conn_flush(c);
    if (r <= 0) return r;
    ssize_t n = read(c->fd, c->buf, sizeof c->buf);
    if (n > 0) {
      c->out_len = (uint32_t)n;
      r = conn_flush(c);
      if (r <= 0) return r;
      // A Unix stream read returns less than asked only when the receive
      // queue was empty (unix_stream_read_generic stops there), and data
      // queued later raises a new edge. So a short read ends the handler
      // without the read that would only return EAGAIN, as nginx and
      // tokio do.
      if ((size_t)n < sizeof c->buf) return 0;
    } else if (n == 0) {
      return -1;
    } else if (errno == EAGAIN) {
      return 0;
    } else if (errno != EINTR) {
      return -1;
    }
  }
}

// Accepts until the backlog is empty. When out of descriptors it frees the
// reserve, accepts one connection and closes it at once, so the backlog
// still drains (with edge triggering, a backlog left non-empty would raise
// no further event) and the loop never spins on EMFILE.
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
      // ENOBUFS, ENOMEM, or EMFILE with no reserve left: the listener
      // stays registered and the next connection retries.
      fprintf(stderr, "epoll_echo: accept: %s\n", strerror(errno));
      return;
    }
    struct conn *c = malloc(sizeof *c);
    if (c == NULL) {
      close(fd);
      continue;
    }
    c->fd = fd;
    c->out_off = c->out_len = c->want_out = 0;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET,
                             .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
      close(fd);
      free(c);
      continue;
    }
    // Data may have arrived before the registration: edge triggering
    // reports it anyway (EPOLL_CTL_ADD checks readiness), so no read here.
  }
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: epoll_echo SOCKET_PATH\n");
    return 2;
  }
  socket_path = argv[1];
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if (strlen(socket_path) >= sizeof addr.sun_path) {
    fprintf(stderr, "epoll_echo: socket path too long: %s\n", socket_path);
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
  if (listen(lfd, SOMAXCONN) < 0) die("listen");

  epfd = epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) die("epoll_create1");
  struct epoll_event ev = {.events = EPOLLIN | EPOLLET,
                           .data.ptr = &listener_tag};
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev) < 0) die("epoll_ctl listener");
  ev = (struct epoll_event){.events = EPOLLIN, .data.ptr = &signal_tag};
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, sfd, &ev) < 0) die("epoll_ctl signalfd");

  struct epoll_event events[256];
  for (;;) {
    int n = epoll_wait(epfd, events, 256, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait");
    }
    for (int i = 0; i < n; i++) {
      void *p = events[i].data.ptr;
      if (p == &listener_tag) {
        accept_all(lfd, &reserve);
      } else if (p == &signal_tag) {
        unlink(socket_path);
        return 0;
      } else if (conn_service(p) < 0) {
        conn_close(p);
      }
    }
  }
}
