// run_echo_load: one green thread per connection, joined at the deadline.
#include "examples/echo_client.h"

#include <string>

#include "absl/time/clock.h"

#include "evt/exn.h"
#include "evt/thread.h"
#include "ports/port.h"

namespace rkt::examples {
namespace {

// One connection's ping-pong until `deadline`, each latency into `samples`.
void ping_pong(const unix_socket_path& path, std::vector<int64_t>& samples, absl::Time deadline,
               std::size_t message_size) {
  auto [in, out] = unix_socket_connect(path);
  const std::string ping(message_size, 'p');
  while (absl::Now() < deadline) {
    const absl::Time sent = absl::Now();
    out.write_bytes(ping);
    out.flush();
    or_eof<std::string> pong = in.read_bytes(message_size);
    if (!pong || *pong != ping) throw exn_fail("echo: the server answered wrongly");
    samples.push_back(absl::ToInt64Nanoseconds(absl::Now() - sent));
  }
  out.close();
  in.close();
}

}  // namespace

echo_load_result run_echo_load(const unix_socket_path& path, int connections,
                               absl::Duration duration, std::size_t message_size) {
  echo_load_result result;
  result.connections = connections;
  std::vector<std::vector<int64_t>> per_connection(static_cast<std::size_t>(connections));
  const absl::Time start = absl::Now();
  const absl::Time deadline = start + duration;
  std::vector<rkt::thread> clients;
  clients.reserve(per_connection.size());
  for (auto& samples : per_connection) {
    clients.emplace_back([&path, &samples, &result, deadline, message_size] {
      try {
        ping_pong(path, samples, deadline, message_size);
      } catch (const exn_fail& e) {
        if (result.error.empty()) result.error = e.what();
      }
    });
  }
  for (const rkt::thread& t : clients) t.wait();
  result.elapsed = absl::Now() - start;
  for (const auto& samples : per_connection) {
    result.round_trips += samples.size();
    result.latencies_ns.insert(result.latencies_ns.end(), samples.begin(), samples.end());
  }
  return result;
}

}  // namespace rkt::examples
