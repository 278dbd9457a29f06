// unix_socket_peer_credentials (SO_PEERCRED): the peer of a connection made
// in this process is this process, the peer of one made by a child is that
// child, and ports that are not over a Unix socket are refused.
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "evt/exn.h"
#include "gtest/gtest.h"
#include "ports/fd_port.h"
#include "ports/pipe.h"
#include "socket/tcp.h"
#include "socket/unix_socket.h"
#include "tests/testing/green_threads.h"
#include "tests/testing/port_helpers.h"
#include "tests/testing/spawned_child.h"
#include "tests/testing/unix_socket_helpers.h"

namespace {

using rkt::test::accept_bounded;
using rkt::test::conn;

class UnixSocketCredentialsTest : public rkt::test::clean_test {
 protected:
  void TearDown() override {
    rkt::yield();
    clean_test::TearDown();
  }
};

void expect_this_process(const rkt::unix_socket_credentials& c) {
  EXPECT_EQ(c.pid, getpid());
  EXPECT_EQ(c.uid, getuid());
  EXPECT_EQ(c.gid, getgid());
}

TEST_F(UnixSocketCredentialsTest, BothEndsInThisProcessSeeThisProcess) {
  const std::string name = rkt::test::unique_abstract("creds");
  rkt::unix_socket_listener l =
      rkt::unix_socket_listen(rkt::unix_socket_abstract_name(name));
  conn client(rkt::unix_socket_connect(rkt::unix_socket_abstract_name(name)));
  conn server = accept_bounded(l);
  expect_this_process(rkt::unix_socket_peer_credentials(server.in));
  expect_this_process(rkt::unix_socket_peer_credentials(server.out));
  expect_this_process(rkt::unix_socket_peer_credentials(client.in));
  client.close();
  server.close();
  rkt::unix_socket_close_listener(l);
}

// socat connects and, its input being /dev/null, closes at once: the
// credentials were recorded at connect, so they outlive the peer.
TEST_F(UnixSocketCredentialsTest, APeerInAChildProcessIsThatChild) {
  const std::string name = rkt::test::unique_abstract("creds-child");
  rkt::unix_socket_listener l =
      rkt::unix_socket_listen(rkt::unix_socket_abstract_name(name));
  rkt::test::spawned_child socat(
      {.argv = {"socat", "-u", "OPEN:/dev/null", "ABSTRACT-CONNECT:" + name.substr(1)},
       .fds = {},
       .env = {}});
  conn server = accept_bounded(l);
  const rkt::unix_socket_credentials c = rkt::unix_socket_peer_credentials(server.in);
  EXPECT_EQ(c.pid, socat.pid());
  EXPECT_NE(c.pid, getpid());
  EXPECT_EQ(c.uid, getuid());
  EXPECT_EQ(c.gid, getgid());
  const std::optional<int> status = socat.wait();
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << "status " << *status;
  server.close();
  rkt::unix_socket_close_listener(l);
}

TEST_F(UnixSocketCredentialsTest, PortsNotOverAUnixSocketAreRefused) {
  auto [pin, pout] = rkt::make_pipe();
  EXPECT_THROW(rkt::unix_socket_peer_credentials(pin), rkt::exn_fail_contract);
  EXPECT_THROW(rkt::unix_socket_peer_credentials(pout), rkt::exn_fail_contract);

  rkt::tcp_listener l = rkt::tcp_listen(0, 4, true, "127.0.0.1");
  conn client(rkt::tcp_connect("127.0.0.1", rkt::tcp_addresses(l).local_port));
  try {
    rkt::unix_socket_peer_credentials(client.in);
    ADD_FAILURE() << "a TCP port was accepted";
  } catch (const rkt::exn_fail_contract& e) {
    EXPECT_NE(std::string(e.what()).find("expected: a Unix-socket port"), std::string::npos)
        << e.what();
  }
  client.close();
  rkt::tcp_close(l);
}

TEST_F(UnixSocketCredentialsTest, AClosedPortRaisesANetworkErrorWithEbadf) {
  const std::string name = rkt::test::unique_abstract("creds-closed");
  rkt::unix_socket_listener l =
      rkt::unix_socket_listen(rkt::unix_socket_abstract_name(name));
  conn client(rkt::unix_socket_connect(rkt::unix_socket_abstract_name(name)));
  conn server = accept_bounded(l);
  client.close();
  try {
    rkt::unix_socket_peer_credentials(client.in);
    ADD_FAILURE() << "a closed port was accepted";
  } catch (const rkt::exn_fail_network& e) {
    EXPECT_EQ(e.error_number(), EBADF) << e.what();
  }
  server.close();
  rkt::unix_socket_close_listener(l);
}

}  // namespace
