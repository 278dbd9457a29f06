"""Compiler flags for the project's own targets.

Every cc_library/cc_binary/cc_test in rkt passes `copts = RKT_COPTS` (plus any
target-specific flags). They are kept out of .bazelrc so that they do not apply
to external repositories such as @llhttp.

    load("//:copts.bzl", "RKT_COPTS")
    cc_test(name = "foo_test", srcs = ["foo_test.cc"], copts = RKT_COPTS, ...)
"""

RKT_COPTS = [
    "-Wall",
    "-Wextra",
    "-Werror",
    # Green-thread stacks sit next to one another with a guard region below
    # each (evt/internal/stack_pool.h). With this flag a frame or alloca
    # larger than a page touches each of its pages from the top down, so an
    # overflow faults in the guard whatever the frame's size, instead of
    # jumping over it into a neighbour's stack.
    "-fstack-clash-protection",
]
