// fd ports over AF_UNIX stream sockets keep the descriptors a peer passes
// with SCM_RIGHTS (ports/fd_port.h, "Descriptors passed over a Unix-domain
// socket"): a port read takes the bytes and leaves the descriptors with the
// port, close-on-exec; fd_port_take_passed hands them out one message's
// set at a time; the port's close closes those it holds. The sender here
// is a raw socket, so these tests need nothing from socket/.
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "ports/fd_port.h"
#include "ports/port.h"
#include "tests/testing/fd_leak_check.h"
#include "tests/testing/green_threads.h"
#include "tests/testing/port_helpers.h"

namespace {

using rkt::test::arrives;
using rkt::test::sync_within;

// A socketpair: a raw end that sends, and ports over the other.
class PassedFdsTest : public rkt::test::clean_test {
 protected:
  void SetUp() override {
    clean_test::SetUp();
    int s[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s), 0);
    raw_ = s[0];
    ports_.emplace(rkt::make_fd_ports(s[1], "pair"));
    ASSERT_EQ(::pipe2(pipe_, O_CLOEXEC), 0);
  }
  void TearDown() override {
    ports_->close();
    ports_.reset();
    ::close(raw_);
    ::close(pipe_[0]);
    ::close(pipe_[1]);
    clean_test::TearDown();
  }

  // One sendmsg of `bytes` with `fds`.
  void send(const std::string& bytes, const std::vector<int>& fds) const {
    iovec iov{const_cast<char*>(bytes.data()), bytes.size()};
    std::vector<char> control(CMSG_SPACE(sizeof(int) * fds.size()));
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
    ASSERT_EQ(::sendmsg(raw_, &msg, MSG_NOSIGNAL), static_cast<ssize_t>(bytes.size()))
        << std::strerror(errno);
  }

  const rkt::input_port& in() const { return ports_->in; }
  int pipe_read() const { return pipe_[0]; }
  int pipe_write() const { return pipe_[1]; }

 private:
  int raw_ = -1;
  std::optional<rkt::test::conn> ports_;
  int pipe_[2] = {-1, -1};
};

ino_t inode(int fd) {
  struct stat st {};
  EXPECT_EQ(::fstat(fd, &st), 0) << std::strerror(errno);
  return st.st_ino;
}

TEST_F(PassedFdsTest, AReadLeavesTheDescriptorsWithThePort) {
  send("hello", {pipe_write()});
  EXPECT_EQ(arrives(in(), 5), "hello");
  EXPECT_EQ(rkt::fd_port_passed_held(in()), 1u);
  std::optional<rkt::fd_port_passed> t = rkt::fd_port_take_passed(in(), 4096, 16);
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->bytes, "");
  ASSERT_EQ(t->fds.size(), 1u);
  EXPECT_EQ(inode(t->fds[0]), inode(pipe_write()));
  EXPECT_EQ(::fcntl(t->fds[0], F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
  ::close(t->fds[0]);
  EXPECT_FALSE(rkt::fd_port_take_passed(in(), 4096, 16).has_value());
}

TEST_F(PassedFdsTest, ATakeStopsBeforeTheNextSet) {
  send("ab", {pipe_write()});
  send("cd", {pipe_read()});
  EXPECT_EQ(sync_within(rkt::peek_bytes_evt(4, 0, in())).value_or("<EOF>"), "abcd");
  std::optional<rkt::fd_port_passed> first = rkt::fd_port_take_passed(in(), 4096, 16);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->bytes, "ab");
  ASSERT_EQ(first->fds.size(), 1u);
  EXPECT_EQ(inode(first->fds[0]), inode(pipe_write()));
  ::close(first->fds[0]);
  std::optional<rkt::fd_port_passed> second = rkt::fd_port_take_passed(in(), 4096, 16);
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->bytes, "cd");
  ASSERT_EQ(second->fds.size(), 1u);
  EXPECT_EQ(inode(second->fds[0]), inode(pipe_read()));
  ::close(second->fds[0]);
}

TEST_F(PassedFdsTest, ClosingThePortClosesWhatItHolds) {
  rkt::test::fd_leak_check fds;
  send("x", {pipe_write(), pipe_read()});
  EXPECT_EQ(arrives(in(), 1), "x");
  EXPECT_EQ(fds.leaked().size(), 2u);
  in().close();
  EXPECT_TRUE(fds.leaked().empty()) << rkt::test::fd_leak_check::describe(fds.leaked());
}

}  // namespace
