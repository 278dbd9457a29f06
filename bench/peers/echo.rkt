#lang racket/base
;; Racket peer of the Unix-socket echo benchmark (bench/echo_compare.sh):
;; racket/unix-socket with one Racket thread per connection.
;;
;;   racket echo.rkt SOCKET_PATH
;;
;; Unlinks a stale SOCKET_PATH; on SIGINT or SIGTERM (both arrive as breaks
;; in the main thread) removes it and exits 0. Each connection has a 4 KiB
;; buffer, as in bench/epoll_echo.c.
(require racket/unix-socket)

(define path
  (let ([args (current-command-line-arguments)])
    (unless (= (vector-length args) 1)
      (eprintf "usage: racket echo.rkt SOCKET_PATH\n")
      (exit 2))
    (vector-ref args 0)))

(define (serve in out)
  (define buf (make-bytes 4096))
  (with-handlers ([exn:fail? void])
    (let loop ()
      (define n (read-bytes-avail! buf in))
      (unless (eof-object? n)
        (write-bytes buf out 0 n)
        (flush-output out)
        (loop))))
  (close-input-port in)
  (with-handlers ([exn:fail? void]) (close-output-port out)))

(with-handlers ([exn:fail:filesystem? void]) (delete-file path))
;; The default backlog is 4; the C and Go servers use SOMAXCONN.
(define listener (unix-socket-listen path 4096))

(with-handlers ([exn:break? (lambda (e)
                              (unix-socket-close-listener listener)
                              (with-handlers ([exn:fail:filesystem? void])
                                (delete-file path))
                              (exit 0))])
  (let accept-loop ()
    (define-values (in out) (unix-socket-accept listener))
    (thread (lambda () (serve in out)))
    (accept-loop)))
