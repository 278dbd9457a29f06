// unix_socket_send_fds / unix_socket_receive_fds_evt (SCM_RIGHTS): a
// descriptor sent is usable by the receiver and close-on-exec there; the
// ports' buffered bytes keep their place in the stream; received
// descriptors belong to the custodian until taken; too many descriptors is
// an error that leaks none; ports not over a Unix socket are refused.
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "custodian/custodian.h"
#include "evt/exn.h"
#include "evt/semaphore.h"
#include "evt/sync.h"
#include "gtest/gtest.h"
#include "ports/fd_port.h"
#include "ports/pipe.h"
#include "socket/tcp.h"
#include "socket/unix_socket.h"
#include "socket/unix_socket_fds.h"
#include "tests/testing/fd_leak_check.h"
#include "tests/testing/green_threads.h"
#include "tests/testing/port_helpers.h"
#include "tests/testing/unix_socket_helpers.h"

namespace {

using rkt::test::accept_bounded;
using rkt::test::conn;
using rkt::test::fd_open;
using rkt::test::raised;
using rkt::test::sync_within;

class UnixSocketFdsTest : public rkt::test::clean_test {
 protected:
  void SetUp() override {
    clean_test::SetUp();
    const std::string name = rkt::test::unique_abstract("fds");
    listener_.emplace(rkt::unix_socket_listen(rkt::unix_socket_abstract_name(name)));
    client_.emplace(rkt::unix_socket_connect(rkt::unix_socket_abstract_name(name)));
    server_.emplace(accept_bounded(*listener_));
    ASSERT_EQ(::pipe2(pipe_, O_CLOEXEC), 0);
  }
  void TearDown() override {
    client_->close();
    server_->close();
    rkt::unix_socket_close_listener(*listener_);
    client_.reset();
    server_.reset();
    listener_.reset();
    ::close(pipe_[0]);
    ::close(pipe_[1]);
    rkt::yield();
    clean_test::TearDown();
  }

  const conn& client() const { return *client_; }
  const conn& server() const { return *server_; }
  int pipe_read() const { return pipe_[0]; }
  int pipe_write() const { return pipe_[1]; }

  rkt::unix_socket_message receive(std::size_t max_bytes = 4096, std::size_t max_fds = 16) {
    rkt::or_eof<rkt::unix_socket_message> m =
        sync_within(rkt::unix_socket_receive_fds_evt(server().in, max_bytes, max_fds));
    EXPECT_TRUE(m.has_value()) << "EOF";
    return m.value_or(rkt::unix_socket_message{});
  }

 private:
  std::optional<rkt::unix_socket_listener> listener_;
  std::optional<conn> client_;
  std::optional<conn> server_;
  int pipe_[2] = {-1, -1};
};

// Which file a descriptor names (device and inode).
std::pair<dev_t, ino_t> file_id(int fd) {
  struct stat st {};
  EXPECT_EQ(::fstat(fd, &st), 0) << fd << ": " << std::strerror(errno);
  return {st.st_dev, st.st_ino};
}

bool close_on_exec(int fd) { return (::fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0; }

// Writing `text` to `fd` shows up at the test pipe's read end.
void expect_reaches_pipe(int fd, int pipe_read, const std::string& text) {
  ASSERT_EQ(::write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  std::string got(text.size(), '\0');
  ASSERT_EQ(::read(pipe_read, got.data(), got.size()), static_cast<ssize_t>(text.size()));
  EXPECT_EQ(got, text);
}

TEST_F(UnixSocketFdsTest, ADescriptorSentIsUsableAndCloseOnExecAtTheReceiver) {
  rkt::unix_socket_send_fds(client().out, "hello", {pipe_write()});
  rkt::unix_socket_message m = receive();
  EXPECT_EQ(m.bytes, "hello");
  ASSERT_EQ(m.fds.size(), 1u);
  const int fd = m.fds.peek()[0];
  EXPECT_NE(fd, pipe_write());
  EXPECT_EQ(::fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
  expect_reaches_pipe(fd, pipe_read(), "z");
  std::vector<int> mine = m.fds.take();
  ASSERT_EQ(mine.size(), 1u);
  EXPECT_EQ(m.fds.size(), 0u);
  EXPECT_TRUE(fd_open(mine[0]));
  ::close(mine[0]);
}

TEST_F(UnixSocketFdsTest, SeveralDescriptorsArriveInOrder) {
  const int a = ::fcntl(pipe_write(), F_DUPFD_CLOEXEC, 0);
  const int b = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  rkt::unix_socket_send_fds(client().out, "3", {pipe_write(), a, b});
  ::close(a);
  ::close(b);
  rkt::unix_socket_message m = receive();
  EXPECT_EQ(m.bytes, "3");
  const std::vector<int> got = m.fds.peek();
  ASSERT_EQ(got.size(), 3u);
  expect_reaches_pipe(got[0], pipe_read(), "x");
  expect_reaches_pipe(got[1], pipe_read(), "y");
  m.fds.close();
  EXPECT_FALSE(fd_open(got[0]));
  EXPECT_FALSE(fd_open(got[2]));
}

TEST_F(UnixSocketFdsTest, BytesWithoutDescriptorsAreReceivedToo) {
  client().out.write_bytes("plain");
  client().out.flush();
  rkt::unix_socket_message m = receive();
  EXPECT_EQ(m.bytes, "plain");
  EXPECT_EQ(m.fds.size(), 0u);
}

// The port read "abc" into its buffer and delivered "a": a receive
// delivers "bc" before anything from the socket.
TEST_F(UnixSocketFdsTest, BytesThePortHasBufferedComeFirstWithoutDescriptors) {
  client().out.write_bytes("abc");
  client().out.flush();
  EXPECT_EQ(rkt::test::arrives(server().in, 1), "a");
  EXPECT_EQ(rkt::fd_port_buffered(server().in), 2u);
  rkt::unix_socket_send_fds(client().out, "X", {pipe_write()});
  rkt::unix_socket_message first = receive();
  EXPECT_EQ(first.bytes, "bc");
  EXPECT_EQ(first.fds.size(), 0u);
  rkt::unix_socket_message second = receive();
  EXPECT_EQ(second.bytes, "X");
  ASSERT_EQ(second.fds.size(), 1u);
  expect_reaches_pipe(second.fds.peek()[0], pipe_read(), "q");
}

TEST_F(UnixSocketFdsTest, BufferedBytesAreDeliveredAtMostMaxBytesAtATime) {
  client().out.write_bytes("abcdef");
  client().out.flush();
  EXPECT_EQ(rkt::test::arrives(server().in, 1), "a");
  EXPECT_EQ(receive(2).bytes, "bc");
  EXPECT_EQ(receive(10).bytes, "def");
}

// Bytes written through the port and not flushed go before the bytes that
// carry the descriptors.
TEST_F(UnixSocketFdsTest, UnflushedOutputGoesFirst) {
  client().out.write_bytes("ab");
  rkt::unix_socket_send_fds(client().out, "X", {pipe_write()});
  rkt::unix_socket_message m = receive();
  EXPECT_EQ(m.bytes, "abX");
  EXPECT_EQ(m.fds.size(), 1u);
}

// A message with more descriptors than max_fds: the receive takes
// max_fds of them, in order, and the next receive the rest (no bytes are
// left to go with them).
TEST_F(UnixSocketFdsTest, MoreDescriptorsThanMaxFdsAreDeliveredByTheNextReceive) {
  const int null_fd = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  ASSERT_GE(null_fd, 0);
  rkt::unix_socket_send_fds(client().out, "4", {pipe_write(), null_fd, pipe_read(), null_fd});
  rkt::unix_socket_message first = receive(4096, 3);
  EXPECT_EQ(first.bytes, "4");
  const std::vector<int> a = first.fds.peek();
  ASSERT_EQ(a.size(), 3u);
  EXPECT_EQ(file_id(a[0]), file_id(pipe_write()));
  EXPECT_EQ(file_id(a[1]), file_id(null_fd));
  EXPECT_EQ(file_id(a[2]), file_id(pipe_read()));
  EXPECT_EQ(rkt::fd_port_passed_held(server().in), 1u);
  rkt::unix_socket_message rest = receive(4096, 3);
  EXPECT_EQ(rest.bytes, "");
  ASSERT_EQ(rest.fds.size(), 1u);
  EXPECT_EQ(file_id(rest.fds.peek()[0]), file_id(null_fd));
  EXPECT_TRUE(close_on_exec(rest.fds.peek()[0]));
  ::close(null_fd);
  // The connection goes on.
  rkt::unix_socket_send_fds(client().out, "1", {pipe_write()});
  rkt::unix_socket_message next = receive();
  EXPECT_EQ(next.bytes, "1");
  EXPECT_EQ(next.fds.size(), 1u);
}

// max_fds 0 receives bytes only; the descriptors stay pending for a
// receive that takes them.
TEST_F(UnixSocketFdsTest, MaxFdsZeroLeavesTheDescriptorsPending) {
  rkt::unix_socket_send_fds(client().out, "12", {pipe_write()});
  rkt::unix_socket_message bytes_only = receive(1, 0);
  EXPECT_EQ(bytes_only.bytes, "1");
  EXPECT_EQ(bytes_only.fds.size(), 0u);
  EXPECT_EQ(rkt::fd_port_passed_held(server().in), 1u);
  rkt::unix_socket_message m = receive();
  EXPECT_EQ(m.bytes, "2");
  ASSERT_EQ(m.fds.size(), 1u);
  EXPECT_EQ(file_id(m.fds.peek()[0]), file_id(pipe_write()));
}

TEST_F(UnixSocketFdsTest, TheCustodianClosesDescriptorsNotTaken) {
  rkt::custodian c = rkt::make_custodian();
  rkt::evt<rkt::or_eof<rkt::unix_socket_message>> e = [&] {
    rkt::custodian_scope in(c);
    return rkt::unix_socket_receive_fds_evt(server().in);
  }();
  rkt::unix_socket_send_fds(client().out, "a", {pipe_write()});
  rkt::or_eof<rkt::unix_socket_message> kept = sync_within(e);
  ASSERT_TRUE(kept.has_value());
  rkt::unix_socket_send_fds(client().out, "b", {pipe_write()});
  rkt::or_eof<rkt::unix_socket_message> taken = sync_within(e);
  ASSERT_TRUE(taken.has_value());
  const int kept_fd = kept->fds.peek().at(0);
  const std::vector<int> mine = taken->fds.take();
  ASSERT_EQ(mine.size(), 1u);
  c.shutdown_all();
  EXPECT_FALSE(fd_open(kept_fd));
  EXPECT_EQ(kept->fds.size(), 0u);
  EXPECT_TRUE(fd_open(mine[0]));
  ::close(mine[0]);
}

TEST_F(UnixSocketFdsTest, AReceiveUnderAShutDownCustodianRaisesWithoutReading) {
  rkt::custodian c = rkt::make_custodian();
  rkt::evt<rkt::or_eof<rkt::unix_socket_message>> e = [&] {
    rkt::custodian_scope in(c);
    return rkt::unix_socket_receive_fds_evt(server().in);
  }();
  c.shutdown_all();
  rkt::unix_socket_send_fds(client().out, "a", {pipe_write()});
  EXPECT_TRUE(raised<rkt::exn_fail_contract>([&] { sync_within(e); }));
  rkt::unix_socket_message m = receive();  // nothing was read: it is all still there
  EXPECT_EQ(m.bytes, "a");
  EXPECT_EQ(m.fds.size(), 1u);
}

TEST_F(UnixSocketFdsTest, DroppingTheMessageClosesItsDescriptors) {
  rkt::unix_socket_send_fds(client().out, "a", {pipe_write()});
  int fd;
  {
    rkt::unix_socket_message m = receive();
    fd = m.fds.peek().at(0);
    EXPECT_TRUE(fd_open(fd));
  }
  EXPECT_FALSE(fd_open(fd));
}

TEST_F(UnixSocketFdsTest, TheEventReceivesOnlyWhenChosen) {
  rkt::evt<rkt::or_eof<rkt::unix_socket_message>> e =
      rkt::unix_socket_receive_fds_evt(server().in);
  EXPECT_FALSE(rkt::sync_timeout(absl::Milliseconds(20), e).has_value());
  rkt::unix_socket_send_fds(client().out, "late", {pipe_write()});
  // The bytes are in the socket once the send returns: a poll sees them.
  std::optional<rkt::or_eof<rkt::unix_socket_message>> polled =
      rkt::sync_timeout(absl::ZeroDuration(), e);
  ASSERT_TRUE(polled.has_value());
  ASSERT_TRUE(polled->has_value());
  EXPECT_EQ((*polled)->bytes, "late");
  EXPECT_EQ((*polled)->fds.size(), 1u);
}

TEST_F(UnixSocketFdsTest, EofOnceThePeerCloses) {
  client().out.close();
  rkt::or_eof<rkt::unix_socket_message> m =
      sync_within(rkt::unix_socket_receive_fds_evt(server().in));
  EXPECT_FALSE(m.has_value());
}

// The socket fills (1 MiB through the port, nobody reading), so the send
// parks; the receiver takes everything with receives, and the descriptor
// arrives with the byte it was sent with.
TEST_F(UnixSocketFdsTest, ASendParksWhileTheSocketIsFull) {
  const std::string big = rkt::test::pattern(1 << 20);
  rkt::test::scoped_thread writer([&] {
    client().out.write_bytes(big);
    rkt::unix_socket_send_fds(client().out, "X", {pipe_write()});
    rkt::unix_socket_send_fds(client().out, rkt::test::pattern(300000, 7), {pipe_write()});
  });
  const std::string tail = rkt::test::pattern(300000, 7);
  std::string got;
  std::vector<std::size_t> fd_offsets;
  while (got.size() < big.size() + 1 + tail.size()) {
    rkt::unix_socket_message m = receive(65536);
    if (m.bytes.empty()) break;
    if (m.fds.size() > 0) {
      fd_offsets.push_back(got.size());
      EXPECT_EQ(m.fds.size(), 1u);
    }
    got += m.bytes;
  }
  writer.join();
  ASSERT_EQ(got.size(), big.size() + 1 + tail.size());
  EXPECT_TRUE(got.compare(0, big.size(), big) == 0);
  EXPECT_EQ(got[big.size()], 'X');
  EXPECT_TRUE(got.compare(big.size() + 1, tail.size(), tail) == 0);
  // Each descriptor came with a read that began at or before its first
  // byte and took it.
  ASSERT_EQ(fd_offsets.size(), 2u);
  EXPECT_LE(fd_offsets[0], big.size());
  EXPECT_LE(fd_offsets[1], big.size() + 1);
}

// The socket is filled to EAGAIN first, so the sendmsg cannot go at once:
// the send parks until the receiver makes room, then the descriptor
// arrives with its byte.
TEST_F(UnixSocketFdsTest, ASendIntoAFullSocketParksUntilThereIsRoom) {
  const int fd = rkt::fd_port_descriptor(client().out);
  const std::string chunk(65536, 'f');
  std::size_t filled = 0;
  for (;;) {
    const ssize_t n = ::send(fd, chunk.data(), chunk.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0) {
      ASSERT_EQ(errno, EAGAIN) << std::strerror(errno);
      break;
    }
    filled += static_cast<std::size_t>(n);
  }
  rkt::semaphore sent;
  rkt::test::scoped_thread writer([&] {
    rkt::unix_socket_send_fds(client().out, "X", {pipe_write()});
    sent.post();
  });
  rkt::yield();
  EXPECT_TRUE(writer.running()) << "the send did not wait for room";
  std::string got;
  std::size_t fds = 0;
  while (got.size() < filled + 1) {
    rkt::unix_socket_message m = receive(65536);
    if (m.bytes.empty()) break;
    fds += m.fds.size();
    got += m.bytes;
  }
  rkt::test::sync_within(sent);
  writer.join();
  ASSERT_EQ(got.size(), filled + 1);
  EXPECT_EQ(got.back(), 'X');
  EXPECT_EQ(got.find_first_not_of('f'), filled);
  EXPECT_EQ(fds, 1u);
}

TEST_F(UnixSocketFdsTest, PortsNotOverAUnixSocketAndBadArgumentsAreRefused) {
  auto [pin, pout] = rkt::make_pipe();
  EXPECT_TRUE(raised<rkt::exn_fail_contract>([&] { rkt::unix_socket_receive_fds_evt(pin); }));
  EXPECT_TRUE(raised<rkt::exn_fail_contract>(
      [&] { rkt::unix_socket_send_fds(pout, "x", {pipe_write()}); }));
  rkt::tcp_listener l = rkt::tcp_listen(0, 4, true, "127.0.0.1");
  conn tcp(rkt::tcp_connect("127.0.0.1", rkt::tcp_addresses(l).local_port));
  auto e = raised<rkt::exn_fail_contract>([&] { rkt::unix_socket_receive_fds_evt(tcp.in); });
  ASSERT_TRUE(e);
  EXPECT_NE(std::string(e->what()).find("expected: a Unix-socket port"), std::string::npos);
  tcp.close();
  rkt::tcp_close(l);

  EXPECT_TRUE(raised<rkt::exn_fail_contract>(
      [&] { rkt::unix_socket_send_fds(client().out, "", {pipe_write()}); }));
  EXPECT_TRUE(
      raised<rkt::exn_fail_contract>([&] { rkt::unix_socket_send_fds(client().out, "x", {-1}); }));
  std::vector<int> too_many(rkt::unix_socket_max_fds + 1, pipe_write());
  EXPECT_TRUE(raised<rkt::exn_fail_contract>(
      [&] { rkt::unix_socket_send_fds(client().out, "x", too_many); }));
  EXPECT_TRUE(raised<rkt::exn_fail_contract>(
      [&] { rkt::unix_socket_receive_fds_evt(server().in, 0); }));
  EXPECT_TRUE(raised<rkt::exn_fail_contract>(
      [&] { rkt::unix_socket_receive_fds_evt(server().in, 1, rkt::unix_socket_max_fds + 1); }));
  // A descriptor that is not open: the send fails with EBADF.
  auto bad = raised<rkt::exn_fail_network>(
      [&] { rkt::unix_socket_send_fds(client().out, "x", {1000000}); });
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->error_number(), EBADF);
}

TEST_F(UnixSocketFdsTest, ClosedPortsRaiseEbadf) {
  client().close();
  auto e = raised<rkt::exn_fail_network>(
      [&] { rkt::unix_socket_send_fds(client().out, "x", {pipe_write()}); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->error_number(), EBADF);
  auto e2 = raised<rkt::exn_fail_network>([&] { rkt::unix_socket_receive_fds_evt(client().in); });
  ASSERT_TRUE(e2);
  EXPECT_EQ(e2->error_number(), EBADF);
}

// --- Descriptors whose bytes a port read takes are kept by the port. ---

// read_bytes takes the first bytes of a message with descriptors: they
// stay with the port, and the next receive delivers them with the rest of
// the bytes.
TEST_F(UnixSocketFdsTest, ReadBytesThroughThePortKeepsTheDescriptorsForTheNextReceive) {
  const int null_fd = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  ASSERT_GE(null_fd, 0);
  rkt::unix_socket_send_fds(client().out, "abcd", {pipe_write(), null_fd});
  EXPECT_EQ(rkt::test::arrives(server().in, 2), "ab");
  EXPECT_EQ(rkt::fd_port_passed_held(server().in), 2u);
  rkt::unix_socket_message m = receive();
  EXPECT_EQ(m.bytes, "cd");
  const std::vector<int> got = m.fds.peek();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(file_id(got[0]), file_id(pipe_write()));
  EXPECT_EQ(file_id(got[1]), file_id(null_fd));
  EXPECT_TRUE(close_on_exec(got[0]));
  EXPECT_TRUE(close_on_exec(got[1]));
  expect_reaches_pipe(got[0], pipe_read(), "w");
  EXPECT_EQ(rkt::fd_port_passed_held(server().in), 0u);
  ::close(null_fd);
}

// A protocol reads a request line through the port, then receives the
// descriptor the line came with: all its bytes were read, so the receive
// delivers the descriptor with no bytes, at once.
TEST_F(UnixSocketFdsTest, ReadLineThenReceiveGetsTheLinesDescriptor) {
  rkt::unix_socket_send_fds(client().out, "open log\n", {pipe_write()});
  EXPECT_EQ(sync_within(rkt::read_line_evt(server().in)).value_or("<EOF>"), "open log");
  rkt::unix_socket_message m = receive();
  EXPECT_EQ(m.bytes, "");
  ASSERT_EQ(m.fds.size(), 1u);
  EXPECT_EQ(file_id(m.fds.peek()[0]), file_id(pipe_write()));
  EXPECT_TRUE(close_on_exec(m.fds.peek()[0]));
  // Then plain bytes, with nothing pending: a receive waits for them.
  client().out.write_bytes("next");
  client().out.flush();
  rkt::unix_socket_message after = receive();
  EXPECT_EQ(after.bytes, "next");
  EXPECT_EQ(after.fds.size(), 0u);
}

// A peek leaves the bytes, so the descriptors stay attached to them.
TEST_F(UnixSocketFdsTest, APeekTakesNothing) {
  rkt::unix_socket_send_fds(client().out, "xy", {pipe_write()});
  EXPECT_EQ(sync_within(rkt::peek_bytes_evt(2, 0, server().in)).value_or("<EOF>"), "xy");
  rkt::unix_socket_message m = receive();
  EXPECT_EQ(m.bytes, "xy");
  ASSERT_EQ(m.fds.size(), 1u);
  EXPECT_EQ(file_id(m.fds.peek()[0]), file_id(pipe_write()));
}

// Two messages with descriptors, both in the port's buffer (a peek of
// both made it read twice): two receives, each with its own descriptors.
TEST_F(UnixSocketFdsTest, TwoBufferedMessagesAreTwoReceives) {
  const int null_fd = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  ASSERT_GE(null_fd, 0);
  rkt::unix_socket_send_fds(client().out, "one", {pipe_write()});
  rkt::unix_socket_send_fds(client().out, "two", {null_fd, pipe_read()});
  ::close(null_fd);
  EXPECT_EQ(sync_within(rkt::peek_bytes_evt(6, 0, server().in)).value_or("<EOF>"), "onetwo");
  EXPECT_EQ(rkt::fd_port_buffered(server().in), 6u);
  EXPECT_EQ(rkt::fd_port_passed_held(server().in), 3u);
  rkt::unix_socket_message first = receive();
  EXPECT_EQ(first.bytes, "one");
  ASSERT_EQ(first.fds.size(), 1u);
  EXPECT_EQ(file_id(first.fds.peek()[0]), file_id(pipe_write()));
  rkt::unix_socket_message second = receive();
  EXPECT_EQ(second.bytes, "two");
  const std::vector<int> got = second.fds.peek();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_NE(file_id(got[0]), file_id(pipe_write()));
  EXPECT_EQ(file_id(got[1]), file_id(pipe_read()));
}

// Both messages' bytes read through the port: their descriptors are
// delivered one message's at a time, never merged.
TEST_F(UnixSocketFdsTest, PendingDescriptorsOfTwoMessagesAreTwoReceives) {
  rkt::unix_socket_send_fds(client().out, "one", {pipe_write()});
  rkt::unix_socket_send_fds(client().out, "two", {pipe_read()});
  EXPECT_EQ(rkt::test::arrives(server().in, 6), "onetwo");
  rkt::unix_socket_message first = receive();
  EXPECT_EQ(first.bytes, "");
  ASSERT_EQ(first.fds.size(), 1u);
  EXPECT_EQ(file_id(first.fds.peek()[0]), file_id(pipe_write()));
  rkt::unix_socket_message second = receive();
  EXPECT_EQ(second.bytes, "");
  ASSERT_EQ(second.fds.size(), 1u);
  EXPECT_EQ(file_id(second.fds.peek()[0]), file_id(pipe_read()));
  EXPECT_EQ(rkt::fd_port_passed_held(server().in), 0u);
}

// The port holds the descriptors of bytes it read; its close closes them.
TEST_F(UnixSocketFdsTest, ClosingThePortClosesTheDescriptorsItHolds) {
  const std::size_t before = rkt::test::fd_leak_check::snapshot().size();
  rkt::unix_socket_send_fds(client().out, "ab", {pipe_write(), pipe_read()});
  EXPECT_EQ(rkt::test::arrives(server().in, 1), "a");
  EXPECT_EQ(rkt::fd_port_passed_held(server().in), 2u);
  EXPECT_EQ(rkt::test::fd_leak_check::snapshot().size(), before + 2);
  server().in.close();
  EXPECT_EQ(rkt::fd_port_passed_held(server().in), 0u);
  EXPECT_EQ(rkt::test::fd_leak_check::snapshot().size(), before);
}

// So does the shutdown of the custodian that manages the port.
TEST_F(UnixSocketFdsTest, TheCustodianOfThePortClosesTheDescriptorsItHolds) {
  const std::string name = rkt::test::unique_abstract("fds-custodian");
  rkt::unix_socket_listener l = rkt::unix_socket_listen(rkt::unix_socket_abstract_name(name));
  conn peer(rkt::unix_socket_connect(rkt::unix_socket_abstract_name(name)));
  rkt::custodian c = rkt::make_custodian();
  std::optional<conn> mine;
  {
    rkt::custodian_scope in(c);
    mine.emplace(accept_bounded(l));
  }
  rkt::unix_socket_close_listener(l);
  const std::size_t before = rkt::test::fd_leak_check::snapshot().size();
  rkt::unix_socket_send_fds(peer.out, "a", {pipe_write()});
  EXPECT_EQ(rkt::test::arrives(mine->in, 1), "a");
  EXPECT_EQ(rkt::fd_port_passed_held(mine->in), 1u);
  EXPECT_EQ(rkt::test::fd_leak_check::snapshot().size(), before + 1);
  c.shutdown_all();
  EXPECT_TRUE(mine->in.closed());
  // The kept descriptor and the connection's own are closed.
  EXPECT_EQ(rkt::test::fd_leak_check::snapshot().size(), before - 1);
  peer.close();
  mine.reset();
}

// A read the kernel truncates (no free descriptor number: RLIMIT_NOFILE
// reached) closes what arrived and keeps the bytes; the receive that
// reaches them raises EMSGSIZE, and the next one delivers the bytes.
TEST_F(UnixSocketFdsTest, ATruncatedReadKeepsItsBytesAndTheReceiveRaises) {
  rkt::unix_socket_send_fds(client().out, "ab", {pipe_write(), pipe_read()});
  rlimit old{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &old), 0);
  const int lowest_free = ::fcntl(0, F_DUPFD_CLOEXEC, 0);
  ASSERT_GE(lowest_free, 0);
  ::close(lowest_free);
  rlimit low = old;
  low.rlim_cur = static_cast<rlim_t>(lowest_free);  // no number left
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
  const rkt::or_eof<std::string> peeked =
      rkt::sync_timeout(absl::Seconds(10), rkt::peek_bytes_evt(2, 0, server().in))
          .value_or(std::string("<timeout>"));
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &old), 0);
  EXPECT_EQ(peeked.value_or("<EOF>"), "ab");
  EXPECT_EQ(rkt::fd_port_passed_held(server().in), 0u);
  auto e = raised<rkt::exn_fail_network>([&] { receive(); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->error_number(), EMSGSIZE) << e->what();
  const std::string m = e->what();
  EXPECT_NE(m.find("unix_socket_receive_fds_evt: descriptors were lost"), std::string::npos)
      << m;
  EXPECT_NE(m.find("\n  port: unix-socket"), std::string::npos) << m;
  rkt::unix_socket_message next = receive();
  EXPECT_EQ(next.bytes, "ab");
  EXPECT_EQ(next.fds.size(), 0u);
}

// A socketpair made into ports by make_fd_ports keeps descriptors too
// (the port finds out the socket is AF_UNIX itself).
TEST_F(UnixSocketFdsTest, MakeFdPortsOverAUnixSocketpairKeepsDescriptors) {
  int s[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s), 0);
  conn a(rkt::make_fd_ports(s[0], "pair-a"));
  conn b(rkt::make_fd_ports(s[1], "pair-b"));
  rkt::unix_socket_send_fds(a.out, "hi\n", {pipe_write()});
  EXPECT_EQ(sync_within(rkt::read_line_evt(b.in)).value_or("<EOF>"), "hi");
  rkt::or_eof<rkt::unix_socket_message> m =
      sync_within(rkt::unix_socket_receive_fds_evt(b.in));
  ASSERT_TRUE(m.has_value());
  ASSERT_EQ(m->fds.size(), 1u);
  EXPECT_EQ(file_id(m->fds.peek()[0]), file_id(pipe_write()));
  a.close();
  b.close();
}

}  // namespace
