// The constant events: always_evt() and never_evt().
#include "evt/evt.h"

namespace rkt {

evt<void> always_evt() {
  static const evt<void> e(make_node<internal::always_node<void>>());
  return e;
}

evt<void> never_evt() {
  static const evt<void> e(make_node<internal::never_node<void>>());
  return e;
}

}  // namespace rkt
