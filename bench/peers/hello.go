// Go peer of the HTTP benchmark (bench/http_compare.sh): net/http, as a Go
// programmer would write it, on a Unix socket, standard library only.
//
//	go build -o hello hello.go && ./hello SOCKET_PATH
//
// The command line of //examples:hello_web: unlinks a stale SOCKET_PATH,
// prints "listening on SOCKET_PATH" once it listens (backlog: somaxconn),
// answers every request with 200 text/plain "Hello, World!\n" (14 bytes,
// Content-Length), and on SIGINT or SIGTERM removes SOCKET_PATH and exits 0.
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
)

var body = []byte("Hello, World!\n")

func hello(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	w.Write(body)
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: hello SOCKET_PATH")
		os.Exit(2)
	}
	path := os.Args[1]
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		fmt.Fprintln(os.Stderr, "hello:", err)
		os.Exit(1)
	}
	// A listener made by Listen unlinks its socket file on Close.
	ln, err := net.Listen("unix", path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "hello:", err)
		os.Exit(1)
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-stop
		ln.Close()
		os.Exit(0)
	}()
	fmt.Printf("listening on %s\n", path) // stdout is unbuffered in Go
	http.Serve(ln, http.HandlerFunc(hello))
	select {} // Serve returns once the signal goroutine closed ln; it exits
}
