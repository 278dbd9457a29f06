// passed_fds: recvmsg with room for descriptors, and the sets an fd input
// port keeps until a receiver takes them.
#include "ports/internal/passed_fds.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace rkt::internal {

void passed_fds::arrived(uint64_t pos, msghdr& msg) {
  std::vector<int> fds;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const std::size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    const std::size_t at = fds.size();
    fds.resize(at + n);
    std::memcpy(fds.data() + at, CMSG_DATA(c), n * sizeof(int));
  }
  if ((msg.msg_flags & MSG_CTRUNC) != 0) {
    for (int fd : fds) ::close(fd);
    sets_.push_back(set{pos, {}, true, fds.size()});
    return;
  }
  if (fds.empty()) return;
  held_ += fds.size();
  sets_.push_back(set{pos, std::move(fds)});
}

passed_fds::take_result passed_fds::take(uint64_t head, std::size_t buffered,
                                         std::size_t max_bytes, std::size_t max_fds) {
  take_result r;
  // At most the bytes before sets_[from]'s position (none when that set
  // is pending at the read position): a receive never carries two sets.
  auto bytes_before = [&](std::size_t from) {
    std::size_t limit = std::min(buffered, max_bytes);
    if (from < sets_.size()) {
      const uint64_t next = sets_[from].pos;
      limit = std::min<uint64_t>(limit, next > head ? next - head : 0);
    }
    return limit;
  };
  if (max_fds == 0 || !pending_at(head)) {
    // No set is delivered: bytes up to the first set after the read
    // position (sets pending at it stay pending).
    std::size_t first_after = 0;
    while (first_after < sets_.size() && sets_[first_after].pos <= head) ++first_after;
    r.bytes = bytes_before(first_after);
    return r;
  }
  set& s = sets_.front();
  if (s.lost) {
    r.lost = true;
    r.lost_count = s.lost_count;
    sets_.pop_front();
    return r;
  }
  const std::size_t k = std::min(max_fds, s.fds.size());
  r.fds.assign(s.fds.begin(), s.fds.begin() + static_cast<std::ptrdiff_t>(k));
  s.fds.erase(s.fds.begin(), s.fds.begin() + static_cast<std::ptrdiff_t>(k));
  held_ -= k;
  // The rest of a set larger than max_fds stays pending, for the next
  // receive.
  if (s.fds.empty()) {
    sets_.pop_front();
    r.bytes = bytes_before(0);
  } else {
    r.bytes = bytes_before(1);
  }
  return r;
}

void passed_fds::close_all() noexcept {
  for (set& s : sets_) {
    for (int fd : s.fds) ::close(fd);
  }
  sets_.clear();
  held_ = 0;
}

}  // namespace rkt::internal
