#lang racket/base
;; Racket peer of the HTTP benchmark (bench/http_compare.sh): Racket 8.7's
;; web server on a Unix socket, through make-unix-socket-tcp@.
;;
;;   raco make hello.rkt && racket hello.rkt SOCKET_PATH
;;
;; The command line of //examples:hello_web: unlinks a stale SOCKET_PATH,
;; prints "listening on SOCKET_PATH" once serve has confirmed the listener
;; (backlog: serve's max-waiting, 511), answers every request with 200
;; text/plain "Hello, World!\n" (14 bytes, Content-Length), and on SIGINT or
;; SIGTERM (both arrive as breaks) removes SOCKET_PATH and exits 0.
(require racket/async-channel
         racket/unix-socket-tcp-unit
         web-server/web-server
         web-server/http
         web-server/dispatchers/dispatch-lift)

(define path
  (let ([args (current-command-line-arguments)])
    (unless (= (vector-length args) 1)
      (eprintf "usage: racket hello.rkt SOCKET_PATH\n")
      (exit 2))
    (vector-ref args 0)))

(define body (list #"Hello, World!\n"))

(define (hello req)
  (response/full 200 #"OK" (current-seconds) #"text/plain" '() body))

(with-handlers ([exn:fail:filesystem? void]) (delete-file path))

;; serve puts the listener's port, or the exception that stopped it, on the
;; confirmation channel.
(define confirm (make-async-channel))
(define stop
  (serve #:dispatch (make hello)
         #:tcp@ (make-unix-socket-tcp@ path)
         #:confirmation-channel confirm))
(let ([r (async-channel-get confirm)])
  (when (exn? r)
    (eprintf "hello.rkt: ~a\n" (exn-message r))
    (exit 1)))
(printf "listening on ~a\n" path)
(flush-output)

(with-handlers ([exn:break? (lambda (e)
                              (stop)
                              (with-handlers ([exn:fail:filesystem? void])
                                (delete-file path))
                              (exit 0))])
  (sync never-evt))
