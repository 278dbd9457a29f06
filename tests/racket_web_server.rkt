#lang racket/base
;; Racket 8.7's own web server on a Unix socket, the peer of
;; tcp_unit_racket_peer_test: `racket racket_web_server.rkt PATH` serves
;; `serve #:tcp@ (make-unix-socket-tcp@ PATH)` until SIGTERM or SIGINT
;; (a break), then stops and removes the socket file. Each request gets
;; "<method> <uri>\n" back, with status 200, or 404 for a path under
;; /missing; response/full sends a Content-Length.
(require racket/unix-socket-tcp-unit
         net/url
         web-server/web-server
         web-server/http
         web-server/dispatchers/dispatch-lift)

(define path (vector-ref (current-command-line-arguments) 0))
(when (file-exists? path) (delete-file path))

(define (answer req)
  (define uri (url->string (request-uri req)))
  (define missing? (regexp-match? #rx"^/missing" uri))
  (response/full (if missing? 404 200)
                 (if missing? #"Not Found" #"OK")
                 (current-seconds)
                 #"text/plain"
                 '()
                 (list (request-method req) #" " (string->bytes/utf-8 uri) #"\n")))

(define stop (serve #:tcp@ (make-unix-socket-tcp@ path) #:dispatch (make answer)))

(with-handlers ([exn:break? (λ (_)
                              (stop)
                              (when (file-exists? path) (delete-file path)))])
  (sync never-evt))
