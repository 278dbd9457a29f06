// Go peer of the Unix-socket echo benchmark (bench/echo_compare.sh): the
// idiomatic server, one goroutine per connection, standard library only.
//
//	go run echo.go SOCKET_PATH
//
// Unlinks a stale SOCKET_PATH; on SIGINT or SIGTERM removes it and exits 0.
// Each connection has a 4 KiB buffer, as in bench/epoll_echo.c (io.Copy
// would allocate 32 KiB per connection).
package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func serve(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: echo SOCKET_PATH")
		os.Exit(2)
	}
	path := os.Args[1]
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		fmt.Fprintln(os.Stderr, "echo:", err)
		os.Exit(1)
	}
	// A listener made by Listen unlinks its socket file on Close.
	ln, err := net.Listen("unix", path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "echo:", err)
		os.Exit(1)
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-stop
		ln.Close()
		os.Exit(0)
	}()
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			select {} // the signal goroutine exits the process
		}
		if err != nil {
			// EMFILE and the like: back off as net/http's Server does,
			// rather than spin.
			if backoff == 0 {
				backoff = 5 * time.Millisecond
			} else if backoff < time.Second {
				backoff *= 2
			}
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		go serve(c)
	}
}
