#lang racket/base
;; Racket 8.7's HTTP client against an HTTP server on a Unix socket, for
;; tests/web_racket_client_test.sh: http-conn-open over the ports of
;; unix-socket-connect (the #:ssl? tunnel form, (list #f in out
;; close-output-port)), then several requests on that one connection. The
;; connection is opened without auto-reconnect, so a request that
;; succeeds after the first went over the same connection.
;;
;;   racket web_racket_client.rkt SOCKET_PATH KIND
;;
;; KIND "canned" (the C baseline: GETs only) or "full" (hello_web: also a
;; POST whose body comes back). Prints one "ok:" line per request; exits 1
;; with a message on the first wrong answer.
(require net/http-client
         racket/port
         racket/unix-socket)

(define-values (path kind)
  (let ([args (current-command-line-arguments)])
    (unless (and (= (vector-length args) 2)
                 (member (vector-ref args 1) '("canned" "full")))
      (eprintf "usage: racket web_racket_client.rkt SOCKET_PATH canned|full\n")
      (exit 2))
    (values (vector-ref args 0) (vector-ref args 1))))

(define (fail fmt . args)
  (eprintf "FAIL: ~a\n" (apply format fmt args))
  (exit 1))

(define-values (in out) (unix-socket-connect path))
(define hc (http-conn-open "localhost" #:ssl? (list #f in out close-output-port)))

;; Sends one request on hc and checks a 200 with body `expected`.
(define (request! method uri data expected)
  (define-values (status headers body-in)
    (http-conn-sendrecv! hc uri #:version #"1.1" #:method method #:data data))
  (define body (port->bytes body-in))
  (unless (regexp-match? #rx#"^HTTP/1\\.1 200 " status)
    (fail "~a ~a: status ~s" method uri status))
  (unless (equal? body expected)
    (fail "~a ~a: body ~s, expected ~s" method uri body expected))
  (unless (http-conn-live? hc)
    (fail "~a ~a: the connection is no longer live" method uri))
  (printf "ok: ~a ~a -> ~a, ~a body bytes\n" method uri status (bytes-length body)))

(define hello #"Hello, World!\n")
(request! #"GET" "/first" #f hello)
(request! #"GET" "/second?x=1" #f hello)
(if (equal? kind "full")
    (request! #"POST" "/echo" #"a body from Racket" #"a body from Racket")
    (printf "SKIP: POST echo needs hello_web (the canned baseline does not echo)\n"))
(http-conn-close! hc)
