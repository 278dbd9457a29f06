// How sync shares its choice among ready events (evt/sync.cc, "the poll
// order"): a choice nested directly in a choice is spliced into it, and any
// other event there (a guard, nack guard, poll guard, wrap, handle or
// replace, whatever it holds) counts as one event of that choice. Each
// expected share is what Racket 8.7 gives for the same program, e.g.
//   (sync (guard-evt (λ () (choice-evt A B))) C)  ; C 1/2, A and B 1/4 each
// with A, B, C always ready.
//
// Each case runs kTrials syncs and accepts a count within kSigmas standard
// deviations of the binomial mean: loose enough never to fail by chance
// (the odds are below 1e-8 per count), tight enough to tell 1/2 from 1/3.
#include <cmath>
#include <functional>
#include <map>
#include <string>

#include "absl/time/time.h"
#include "evt/evt.h"
#include "evt/sync.h"
#include "gtest/gtest.h"
#include "tests/testing/green_threads.h"

namespace {

constexpr int kTrials = 4000;
constexpr double kSigmas = 6.0;

class EvtSyncFairnessTest : public rkt::test::clean_test {};

const rkt::evt<char> A = rkt::always_evt('A');
const rkt::evt<char> B = rkt::always_evt('B');
const rkt::evt<char> C = rkt::always_evt('C');
const rkt::evt<char> D = rkt::always_evt('D');

// Runs `one_sync` kTrials times and checks each result's share.
void expect_shares(const std::function<char()>& one_sync,
                   const std::map<char, double>& expected) {
  std::map<char, int> counts;
  for (int i = 0; i < kTrials; ++i) ++counts[one_sync()];
  for (const auto& [name, count] : counts) {
    EXPECT_TRUE(expected.contains(name)) << name << " won " << count << " times";
  }
  for (const auto& [name, p] : expected) {
    const double mean = kTrials * p;
    const double sigma = std::sqrt(kTrials * p * (1 - p));
    EXPECT_NEAR(counts[name], mean, kSigmas * sigma)
        << name << " should win " << p << " of " << kTrials << " syncs";
  }
}

TEST_F(EvtSyncFairnessTest, NestedChoiceIsSplicedIntoItsParent) {
  expect_shares([] { return rkt::sync(rkt::choice_evt(A, B), C); },
                {{'A', 1.0 / 3}, {'B', 1.0 / 3}, {'C', 1.0 / 3}});
  expect_shares([] { return rkt::sync(rkt::choice_evt(rkt::choice_evt(A, B), C), D); },
                {{'A', 0.25}, {'B', 0.25}, {'C', 0.25}, {'D', 0.25}});
}

TEST_F(EvtSyncFairnessTest, GuardReturningAChoiceCountsAsOneEvent) {
  const auto g = rkt::guard_evt([] { return rkt::choice_evt(A, B); });
  expect_shares([&] { return rkt::sync(g, C); }, {{'A', 0.25}, {'B', 0.25}, {'C', 0.5}});
  // The same when the choice is the sync's only argument.
  expect_shares([&] { return rkt::sync(rkt::choice_evt(g, C)); },
                {{'A', 0.25}, {'B', 0.25}, {'C', 0.5}});
  // And for a poll.
  expect_shares([&] { return *rkt::sync_timeout(absl::ZeroDuration(), g, C); },
                {{'A', 0.25}, {'B', 0.25}, {'C', 0.5}});
}

TEST_F(EvtSyncFairnessTest, GuardReturningAPlainEventIsJustThatEvent) {
  const auto g = rkt::guard_evt([] { return A; });
  expect_shares([&] { return rkt::sync(g, B, C); },
                {{'A', 1.0 / 3}, {'B', 1.0 / 3}, {'C', 1.0 / 3}});
}

TEST_F(EvtSyncFairnessTest, GuardKeepsItsShareWhenPartOfItsChoiceIsNotReady) {
  const auto g = rkt::guard_evt([] { return rkt::choice_evt(A, rkt::never_evt_of<char>()); });
  expect_shares([&] { return rkt::sync(g, C); }, {{'A', 0.5}, {'C', 0.5}});
}

TEST_F(EvtSyncFairnessTest, NackAndPollGuardsReturningAChoiceCountAsOneEvent) {
  const auto n = rkt::nack_guard_evt([](const rkt::evt<void>&) { return rkt::choice_evt(A, B); });
  expect_shares([&] { return rkt::sync(n, C); }, {{'A', 0.25}, {'B', 0.25}, {'C', 0.5}});
  const auto p = rkt::poll_guard_evt([](bool) { return rkt::choice_evt(A, B); });
  expect_shares([&] { return rkt::sync(p, C); }, {{'A', 0.25}, {'B', 0.25}, {'C', 0.5}});
}

TEST_F(EvtSyncFairnessTest, WrapOrHandleOfAChoiceCountsAsOneEvent) {
  const auto same = [](char c) { return c; };
  expect_shares([&] { return rkt::sync(rkt::wrap_evt(rkt::choice_evt(A, B), same), C); },
                {{'A', 0.25}, {'B', 0.25}, {'C', 0.5}});
  expect_shares([&] { return rkt::sync(rkt::handle_evt(rkt::choice_evt(A, B), same), C); },
                {{'A', 0.25}, {'B', 0.25}, {'C', 0.5}});
  // Choices nested directly inside the wrapped one are spliced into it.
  expect_shares(
      [&] {
        return rkt::sync(rkt::wrap_evt(rkt::choice_evt(A, rkt::choice_evt(B, D)), same), C);
      },
      {{'A', 1.0 / 6}, {'B', 1.0 / 6}, {'C', 0.5}, {'D', 1.0 / 6}});
}

TEST_F(EvtSyncFairnessTest, GuardsNestedInGuardsEachCountAsOneEvent) {
  const auto gg = rkt::guard_evt([] { return rkt::guard_evt([] { return rkt::choice_evt(A, B); }); });
  expect_shares([&] { return rkt::sync(gg, C); }, {{'A', 0.25}, {'B', 0.25}, {'C', 0.5}});
  const auto inner = rkt::guard_evt([] { return rkt::choice_evt(A, B); });
  const auto outer = rkt::guard_evt([inner] { return rkt::choice_evt(inner, D); });
  expect_shares([&] { return rkt::sync(outer, C); },
                {{'A', 0.125}, {'B', 0.125}, {'C', 0.5}, {'D', 0.25}});
}

TEST_F(EvtSyncFairnessTest, ReplaceCountsAsOneEventAndSoDoesItsReplacement) {
  const auto again = [](char c) { return rkt::always_evt(c); };
  // The replace's share goes to its inner choice, whose events split it.
  expect_shares([&] { return rkt::sync(rkt::replace_evt(rkt::choice_evt(A, B), again), C); },
                {{'A', 0.25}, {'B', 0.25}, {'C', 0.5}});
  // A replacement that is a choice takes the replace's place in the order:
  // it is polled first in the round after the replace committed.
  const auto to_choice = [](char) { return rkt::choice_evt(A, B); };
  expect_shares(
      [&] { return rkt::sync(rkt::replace_evt(rkt::always_evt('x'), to_choice), C); },
      {{'A', 0.25}, {'B', 0.25}, {'C', 0.5}});
}

}  // namespace
