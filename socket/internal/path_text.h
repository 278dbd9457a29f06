// How a unix_socket_path reads in an error message (Racket's ~e), shared by
// unix_socket.cc and the Unix-socket tcp_unit, which both name paths.
#ifndef RKT_SOCKET_INTERNAL_PATH_TEXT_H_
#define RKT_SOCKET_INTERNAL_PATH_TEXT_H_

#include <string>

#include "socket/unix_socket.h"

namespace rkt::internal {

// A filesystem path as a Racket string ("\"/run/a.sock\"", control
// characters escaped); an abstract name as a Racket byte string
// ("#\"\\0name\"", non-printing bytes in octal).
std::string describe_unix_socket_path(const unix_socket_path& path);

}  // namespace rkt::internal

#endif  // RKT_SOCKET_INTERNAL_PATH_TEXT_H_
