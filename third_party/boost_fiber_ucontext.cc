// Definition needed by Boost.Context 1.74's ucontext backend
// (<boost/context/fiber_ucontext.hpp>, selected by BOOST_USE_UCONTEXT), which
// declares fiber_activation_record::current() and
// fiber_activation_record_initializer but leaves their definitions to
// Boost's compiled library. Debian's libboost_context is built for fcontext
// and leaves them out, so they are reproduced here (Boost Software License
// 1.0). Only compiled under --define=boost_context=ucontext_asan.
#include <boost/context/fiber.hpp>

#if !defined(BOOST_USE_UCONTEXT)
#error "boost_fiber_ucontext.cc is only for BOOST_USE_UCONTEXT builds"
#endif

namespace boost::context::detail {

// This thread's running context; zero-initialized, set up on first use.
thread_local fiber_activation_record* current_rec;

// Creates the record of the thread's own (main) context and frees it at
// thread exit. Only one instance per thread, from current() below.
fiber_activation_record_initializer::fiber_activation_record_initializer() noexcept {
  current_rec = new fiber_activation_record();
}

fiber_activation_record_initializer::~fiber_activation_record_initializer() {
  BOOST_ASSERT(current_rec->is_main_context());
  delete current_rec;
}

fiber_activation_record*& fiber_activation_record::current() noexcept {
  thread_local static fiber_activation_record_initializer initializer;
  return current_rec;
}

}  // namespace boost::context::detail
