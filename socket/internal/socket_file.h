// The socket file of a Unix listener on a filesystem path: binding it with
// an exact mode, replacing a stale one, and removing it when the listener
// closes (unix_socket_listen_options in socket/unix_socket.h says what each
// promises).
#ifndef RKT_SOCKET_INTERNAL_SOCKET_FILE_H_
#define RKT_SOCKET_INTERNAL_SOCKET_FILE_H_

#include <sys/types.h>

#include <string>

#include "socket/unix_socket.h"

namespace rkt::internal {

// Which file a path named when it was bound.
struct socket_file_id {
  dev_t dev = 0;
  ino_t ino = 0;
};

// Binds `fd` (a new AF_UNIX stream socket) to `name` (the absolute,
// checked form of `path`) and makes it listen with `backlog`, applying
// options.mode and options.replace_stale. Returns the identity of the file
// it bound. Raises exn_fail_network in the house shape ("<who>: <what>",
// path, errno); leaves no temporary file behind either way; `fd` stays the
// caller's.
socket_file_id bind_socket_file(int fd, const std::string& name, const unix_socket_path& path,
                                int backlog, const unix_socket_listen_options& options,
                                const char* who);

// Removes `name` if it is still a socket file with identity `id`. Between
// the check and the unlink another process could put its own file there;
// only a process that can write the directory can, and it would be racing
// a listener it saw closing.
void remove_socket_file_if_same(const std::string& name, socket_file_id id) noexcept;

}  // namespace rkt::internal

#endif  // RKT_SOCKET_INTERNAL_SOCKET_FILE_H_
