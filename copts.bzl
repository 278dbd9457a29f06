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
]
