// owned_fd: a descriptor closed at scope exit unless released, for the
// steps between socket(2) and the ports that take it over, any of which may
// raise or park (and a parked thread may be killed).
#ifndef RKT_SOCKET_INTERNAL_OWNED_FD_H_
#define RKT_SOCKET_INTERNAL_OWNED_FD_H_

#include <unistd.h>

#include <utility>

namespace rkt::internal {

class owned_fd {
 public:
  explicit owned_fd(int fd) : fd_(fd) {}
  owned_fd(const owned_fd&) = delete;
  owned_fd& operator=(const owned_fd&) = delete;
  ~owned_fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

}  // namespace rkt::internal

#endif  // RKT_SOCKET_INTERNAL_OWNED_FD_H_
