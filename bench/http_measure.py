#!/usr/bin/env python3
"""Measurements for bench/http_compare.sh that a shell cannot make well.

  http_measure.py tree PID...
      PID and all its descendants (from /proc), one per line.
  http_measure.py sample OUT PID...
      Every 50 ms until SIGTERM, appends "EPOCH_US CPU_TICKS" to OUT: the
      utime+stime (fields 14 and 15 of /proc/PID/stat, all threads) summed
      over the PIDs. A PID that has exited counts as 0 from then on.
  http_measure.py report LOGFILE SAMPLES
      From h2load's --log-file (start time in microseconds since the epoch,
      status, microseconds to the end of the response) and the samples:
      "requests=N non2xx=N p50_ms=X p99_ms=X cpu_s=X cpu_per_1000=X
      window_s=X". The window is h2load's measured phase only (its log
      leaves out the warm-up): from the first request's start to the last
      response's end. The CPU is the samples' count interpolated at both
      ends of that window, so warm-up and shutdown are not counted.
  http_measure.py conns PATH N PID...
      Memory per keep-alive connection: the VmRSS summed over the PIDs
      before, then N connections to the Unix socket PATH that each make one
      GET and read the whole response and stay open, then VmRSS again;
      prints "kib_per_conn=X rss_before_kib=X rss_after_kib=X". Every
      connection is closed before it returns, whatever happens.
"""

import os
import signal
import socket
import sys
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def children_map():
    kids = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: split after it.
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(name))
    return kids


def tree(pids):
    kids = children_map()
    out, todo = [], list(pids)
    while todo:
        p = todo.pop()
        if p not in out:
            out.append(p)
            todo.extend(kids.get(p, []))
    return out


def cpu_ticks(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return int(fields[11]) + int(fields[12])


def rss_kib(pids):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def sample(out_path, pids):
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    last = {}
    with open(out_path, "w") as out:
        while True:
            # The sample after SIGTERM is written too: the last one is
            # then later than anything the caller waited for.
            done = bool(stop)
            for p in pids:
                t = cpu_ticks(p)
                if t is not None:
                    last[p] = t
            out.write(f"{time.time_ns() // 1000} {sum(last.values())}\n")
            out.flush()
            if done:
                return
            time.sleep(0.05)


def interpolate(samples, t):
    if t <= samples[0][0]:
        return samples[0][1]
    for (t0, c0), (t1, c1) in zip(samples, samples[1:]):
        if t0 <= t <= t1:
            return c0 + (c1 - c0) * (t - t0) / (t1 - t0) if t1 > t0 else c1
    return samples[-1][1]


def percentile(sorted_values, q):
    i = min(len(sorted_values) - 1, max(0, int(q * len(sorted_values) + 0.5) - 1))
    return sorted_values[i]


def report(log_path, samples_path):
    starts, ends, lat, non2xx = [], [], [], 0
    with open(log_path) as f:
        for line in f:
            parts = line.split()
            if len(parts) < 3:
                continue
            start, status, dur = int(parts[0]), int(parts[1]), int(parts[2])
            starts.append(start)
            ends.append(start + dur)
            lat.append(dur)
            if not 200 <= status < 300:
                non2xx += 1
    if not lat:
        sys.exit(f"http_measure: no requests in {log_path}")
    lat.sort()
    samples = []
    with open(samples_path) as f:
        for line in f:
            t, c = line.split()
            samples.append((int(t), int(c)))
    t0, t1 = min(starts), max(ends)
    if len(samples) < 2 or samples[0][0] > t0 or samples[-1][0] < t1:
        sys.exit(f"http_measure: the CPU samples ({samples[0][0] if samples else '-'} to "
                 f"{samples[-1][0] if samples else '-'}) do not cover the measured window "
                 f"({t0} to {t1})")
    cpu_s = (interpolate(samples, t1) - interpolate(samples, t0)) / CLK_TCK
    n = len(lat)
    print(f"requests={n} non2xx={non2xx} p50_ms={percentile(lat, 0.50) / 1000:.3f} "
          f"p99_ms={percentile(lat, 0.99) / 1000:.3f} cpu_s={cpu_s:.2f} "
          f"cpu_per_1000={cpu_s / n * 1000:.4f} window_s={(t1 - t0) / 1e6:.2f}")


def read_response(s):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            raise OSError("connection closed before the response headers")
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    length = None
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length is None:
        raise OSError("response without Content-Length")
    while len(rest) < length:
        chunk = s.recv(4096)
        if not chunk:
            raise OSError("connection closed in the response body")
        rest += chunk
    status_line = head.split(b"\r\n")[0]
    if not status_line.startswith(b"HTTP/1.1 200"):
        raise OSError(f"unexpected status line {status_line!r}")


def conns(path, n, pids):
    before = rss_kib(pids)
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            socks.append(s)
            s.settimeout(30)
            s.connect(path)
            s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            read_response(s)
        after = rss_kib(pids)
    finally:
        for s in socks:
            s.close()
    print(f"kib_per_conn={(after - before) / n:.2f} rss_before_kib={before} rss_after_kib={after}")


def main(argv):
    if len(argv) >= 2 and argv[1] == "tree":
        print("\n".join(str(p) for p in tree([int(p) for p in argv[2:]])))
    elif len(argv) >= 4 and argv[1] == "sample":
        sample(argv[2], [int(p) for p in argv[3:]])
    elif len(argv) == 4 and argv[1] == "report":
        report(argv[2], argv[3])
    elif len(argv) >= 5 and argv[1] == "conns":
        conns(argv[2], int(argv[3]), [int(p) for p in argv[4:]])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
