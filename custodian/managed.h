// The one interface through which a custodian knows what it manages. Green
// threads, fd ports, listeners, connections and custodian boxes implement
// it; the custodian special-cases none of them.
#ifndef RKT_CUSTODIAN_MANAGED_H_
#define RKT_CUSTODIAN_MANAGED_H_

#include <string>

namespace rkt {

class managed_resource {
 public:
  virtual ~managed_resource() = default;

  // Closes or kills the resource because its custodian is shutting down.
  // Must not block (a port does not wait for a flush to a peer that does
  // not read); may run on any OS thread; called at most once.
  virtual void shut_down_by_custodian() noexcept = 0;

  // What it is, for listings and messages ("thread", "input port", ...).
  virtual std::string describe() const = 0;

  // Whether custodian::managed_list shows it (Racket leaves custodian boxes
  // out).
  virtual bool listed() const { return true; }
};

}  // namespace rkt

#endif  // RKT_CUSTODIAN_MANAGED_H_
