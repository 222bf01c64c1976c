// Hugging Face 4.47's beam and greedy search rules (src/models/repair/beam.h) on controlled
// logits: hand-built cases where a setting changes the winner, and equality with an independent
// reference (tests/models/t5_reference.py beam-table: HF's own algorithm in numpy float64) on
// random tables.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <map>
#include <random>

#include "capforge/io.h"
#include "models/repair/beam.h"
#include "support/fixtures.h"
#include "support/process.h"

namespace fs = std::filesystem;
using namespace capforge;
using namespace capforge::repair;

namespace {

// A scripted "model": the probabilities of the next token given the generated prefix. Tokens not
// listed share what is left (at least 1e-6 each). Logits = log(p): log_softmax gives them back.
using Script = std::function<std::map<int, double>(const std::vector<int>& prefix)>;

std::vector<float> logits_of(const std::map<int, double>& probs, int V) {
  double left = 1;
  for (auto& [t, p] : probs) left -= p;
  int rest = V - (int)probs.size();
  double other = rest > 0 ? std::max(left / rest, 1e-6) : 0;
  std::vector<float> l((size_t)V);
  for (int t = 0; t < V; ++t) {
    auto it = probs.find(t);
    l[(size_t)t] = (float)std::log(it != probs.end() ? it->second : other);
  }
  return l;
}

struct BeamRun {
  std::vector<int> tokens;
  double score = 0;
  int steps = 0;
};

// Drives BeamSearch like an engine: each beam's logits from its own prefix.
BeamRun run_beam(BeamConfig cfg, const Script& model, int V, std::vector<int> prompt = {}) {
  BeamSearch bs(cfg, std::move(prompt));
  std::vector<std::vector<int>> beams((size_t)cfg.num_beams);
  while (!bs.done()) {
    std::vector<std::vector<float>> rows;
    for (auto& b : beams) rows.push_back(logits_of(model(b), V));
    std::vector<const float*> ptr;
    for (auto& r : rows) ptr.push_back(r.data());
    auto next = bs.step(ptr, V);
    if (bs.done()) break;
    std::vector<std::vector<int>> nb;
    for (size_t j = 0; j < next.parent.size(); ++j) {
      nb.push_back(beams[(size_t)next.parent[j]]);
      nb.back().push_back(next.token[j]);
    }
    beams = nb;
  }
  auto r = bs.result();
  return {r.tokens, r.score, bs.steps()};
}

BeamConfig config(double lp, EarlyStopping es, int max_new, double rep = 1.0, int beams = 2) {
  BeamConfig c;
  c.num_beams = beams;
  c.length_penalty = lp;
  c.early_stopping = es;
  c.repetition_penalty = rep;
  c.max_new_tokens = max_new;
  c.eos = {0};
  return c;
}

bool starts(const std::vector<int>& p, std::vector<int> q) {
  return p.size() >= q.size() && std::equal(q.begin(), q.end(), p.begin());
}

}  // namespace

// Step 1: EOS (p .5) finishes [] with log .5; [1] (p .45) then EOS (p .8) finishes [1] with sum
// log .45 + log .8 = -1.022 over 2 tokens. lp 0.5: -0.723 < -0.693, [] wins; lp 1: -0.511 wins.
TEST(RepairBeam, LengthPenaltyChangesTheWinner) {
  Script m = [](const std::vector<int>& p) -> std::map<int, double> {
    if (p.empty()) return {{0, .5}, {1, .45}, {2, .04}};
    if (p == std::vector<int>{1}) return {{0, .8}};
    return {{0, .97}};
  };
  auto half = run_beam(config(0.5, EarlyStopping::yes, 5), m, 5);
  auto one = run_beam(config(1.0, EarlyStopping::yes, 5), m, 5);
  EXPECT_EQ(half.tokens, std::vector<int>{});
  EXPECT_NEAR(half.score, std::log(.5), 1e-4);
  EXPECT_EQ(one.tokens, std::vector<int>{1});
  EXPECT_NEAR(one.score, (std::log(.45) + std::log(.8)) / 2, 1e-4);
}

// Step 1 finishes [] (-0.693); step 2 finishes [2] (-1.104) while [1,3] (-1.492) continues:
// early_stopping true stops there with []. At step 3 [1,3]'s next token is uniform over 20 and a
// chain [1,3,x,5,5,5,5] of near-certain tokens then EOS follows: false stops at step 3 because the
// best candidate (-4.49) / 3 <= the worst kept score (-1.104), keeping []; "never" divides by
// max_new (8) instead, continues, and finds the chain: (-4.49 - ...) / 8 ~ -0.56 > -0.693.
TEST(RepairBeam, EarlyStoppingModesDiffer) {
  const int V = 20;
  Script m = [](const std::vector<int>& p) -> std::map<int, double> {
    if (p.empty()) return {{0, .5}, {1, .3}, {2, .2}};
    if (p == std::vector<int>{1}) return {{0, .25}, {3, .75}};
    if (p == std::vector<int>{2}) return {{0, .55}, {4, .45}};
    if (p == std::vector<int>{1, 3}) {
      std::map<int, double> u;
      for (int t = 0; t < V; ++t) u[t] = 1.0 / V;
      return u;
    }
    if (starts(p, {1, 3}) && p.size() < 7) return {{5, p[2] == 1 ? .999 : .998}};
    if (starts(p, {1, 3})) return {{0, .999}};
    return {};  // uniform
  };
  auto yes = run_beam(config(1.0, EarlyStopping::yes, 8), m, V);
  auto no = run_beam(config(1.0, EarlyStopping::no, 8), m, V);
  auto never = run_beam(config(1.0, EarlyStopping::never, 8), m, V);
  EXPECT_EQ(yes.tokens, std::vector<int>{});
  EXPECT_EQ(yes.steps, 2);
  EXPECT_EQ(no.tokens, std::vector<int>{});
  EXPECT_EQ(no.steps, 3);
  EXPECT_EQ(never.tokens, (std::vector<int>{1, 3, 1, 5, 5, 5, 5}));
  EXPECT_NEAR(never.score,
              (std::log(.3) + std::log(.75) + std::log(.05) + 4 * std::log(.999) + std::log(.999)) / 8, 1e-4);
}

// As above up to step 2, but [1,3] ends with EOS (p .9) at step 3: (-1.597) / 3 = -0.532 beats
// []'s -0.693. early_stopping true has stopped at step 2 (two hypotheses) and keeps [].
TEST(RepairBeam, EarlyStoppingTrueMissesALaterBetterHypothesis) {
  const int V = 20;
  Script m = [](const std::vector<int>& p) -> std::map<int, double> {
    if (p.empty()) return {{0, .5}, {1, .3}, {2, .2}};
    if (p == std::vector<int>{1}) return {{0, .25}, {3, .75}};
    if (p == std::vector<int>{2}) return {{0, .55}, {4, .45}};
    if (p == std::vector<int>{1, 3}) return {{0, .9}};
    return {};
  };
  EXPECT_EQ(run_beam(config(1.0, EarlyStopping::yes, 8), m, V).tokens, std::vector<int>{});
  EXPECT_EQ(run_beam(config(1.0, EarlyStopping::no, 8), m, V).tokens, (std::vector<int>{1, 3}));
  EXPECT_EQ(run_beam(config(1.0, EarlyStopping::never, 8), m, V).tokens, (std::vector<int>{1, 3}));
}

// Length penalty 0 (score = sum): at step 1 EOS has p .2 and rank 2 (after tokens 1 and 2): HF
// skips it, although [] (log .2 = -1.61) would beat every 2-token result (<= log .5 + log .4).
// With EOS at rank 1 (p .35 > token 2's .15) it is kept and wins.
TEST(RepairBeam, EosRankedBelowNumBeamsIsSkipped) {
  Script skipped = [](const std::vector<int>& p) -> std::map<int, double> {
    if (p.empty()) return {{1, .5}, {2, .3}, {0, .2}};
    return {{0, .1}, {3, .4}, {4, .3}};
  };
  Script kept = [](const std::vector<int>& p) -> std::map<int, double> {
    if (p.empty()) return {{1, .5}, {2, .15}, {0, .35}};
    return {{0, .1}, {3, .4}, {4, .3}};
  };
  auto s = run_beam(config(0.0, EarlyStopping::yes, 2), skipped, 6);
  EXPECT_EQ(s.tokens, (std::vector<int>{1, 3}));
  EXPECT_NEAR(s.score, std::log(.5) + std::log(.4), 1e-4);
  auto k = run_beam(config(0.0, EarlyStopping::yes, 2), kept, 6);
  EXPECT_EQ(k.tokens, std::vector<int>{});
  EXPECT_NEAR(k.score, std::log(.35), 1e-4);
}

// Raw logits -0.1 (token 1) and -0.3 (token 2), token 1 in the decoder's prompt, penalty 2.5.
// On raw logits (greedy) token 1 stays ahead (-0.25 > -0.3); on log-probs (beam search: -0.628 vs
// -0.828) it falls behind (-1.57): the winner changes to [2].
TEST(RepairBeam, RepetitionPenaltyActsOnLogProbs) {
  const int V = 5;
  auto model = [&](const std::vector<int>& p) {
    std::vector<float> l(V, -10.f);
    if (p.empty()) {
      l[0] = -3, l[1] = -0.1f, l[2] = -0.3f;
    } else {
      l.assign(V, 0.f);
      l[0] = 5;
    }
    return l;
  };
  auto run = [&](double rep) {
    BeamSearch bs(config(1.0, EarlyStopping::yes, 5, rep), {1});
    std::vector<std::vector<int>> beams(2);
    while (!bs.done()) {
      std::vector<std::vector<float>> rows;
      for (auto& b : beams) rows.push_back(model(b));
      auto next = bs.step({rows[0].data(), rows[1].data()}, V);
      if (bs.done()) break;
      std::vector<std::vector<int>> nb;
      for (size_t j = 0; j < 2; ++j)
        nb.push_back(beams[(size_t)next.parent[j]]), nb.back().push_back(next.token[j]);
      beams = nb;
    }
    return bs.result();
  };
  EXPECT_EQ(run(1.0).tokens, std::vector<int>{1});
  auto r = run(2.5);
  EXPECT_EQ(r.tokens, std::vector<int>{2});
  std::vector<float> root = model({});
  double lse = std::log(std::exp(-3.) + std::exp(-.1) + std::exp(-.3) + 2 * std::exp(-10.));
  EXPECT_NEAR(r.score, (-0.3 - lse + (5 - std::log(std::exp(5.) + 4))) / 2, 1e-4);
  // greedy: the penalty on raw logits keeps token 1
  EXPECT_EQ(greedy_pick(root.data(), V, {1}, 2.5), 1);
  EXPECT_EQ(greedy_pick(root.data(), V, {}, 1.0), 1);
}

TEST(RepairBeam, GreedyPickPenaltyAndTies) {
  std::vector<float> l = {0.f, 2.0f, 1.9f, 1.9f};
  EXPECT_EQ(greedy_pick(l.data(), 4, {}, 2.5), 1);
  EXPECT_EQ(greedy_pick(l.data(), 4, {1}, 2.5), 2);     // 2.0 / 2.5 = 0.8 < 1.9; tie 2/3: lowest
  EXPECT_EQ(greedy_pick(l.data(), 4, {1, 2}, 2.5), 3);  // duplicates count once
  EXPECT_NEAR(log_prob(l.data(), 4, 1), 2.0 - std::log(1 + std::exp(2.) + 2 * std::exp(1.9)), 1e-4);
}

// NaN logits count as -inf (defined behaviour; the engine reports such rows per caption first).
TEST(RepairBeam, NanLogitsCountAsMinusInfinity) {
  const float nan = std::nanf(""), inf = INFINITY;
  std::vector<float> l = {nan, 2.0f, nan, 1.0f}, m = {-inf, 2.0f, -inf, 1.0f};
  EXPECT_EQ(greedy_pick(l.data(), 4, {}, 1.0), 1);
  EXPECT_EQ(greedy_pick(l.data(), 4, {1}, 4.0), 3);  // 2 / 4 < 1
  EXPECT_DOUBLE_EQ(log_prob(l.data(), 4, 1), log_prob(m.data(), 4, 1));
  EXPECT_EQ(log_prob(l.data(), 4, 0), -INFINITY);
  std::vector<float> all_nan(4, nan), with_inf = {0.f, inf, 1.f, 0.f};
  EXPECT_EQ(log_prob(all_nan.data(), 4, 2), -INFINITY);
  EXPECT_EQ(log_prob(with_inf.data(), 4, 1), 0.0);
  EXPECT_EQ(log_prob(with_inf.data(), 4, 2), -INFINITY);
  EXPECT_EQ(greedy_pick(all_nan.data(), 4, {}, 1.0), 0);
  // beam search: the same steps and result as with -inf in NaN's place; all-NaN rows end cleanly
  BeamConfig cfg;
  cfg.num_beams = 2;
  cfg.max_new_tokens = 3;
  cfg.eos = {0};
  auto search = [&](const std::vector<float>& row) {
    BeamSearch b(cfg, {});
    std::vector<std::vector<int>> steps;
    while (!b.done()) {
      auto st = b.step({row.data(), row.data()}, 4);
      steps.push_back(st.token);
    }
    return std::pair{steps, b.result()};
  };
  std::vector<float> beam_l = {nan, 2.0f, 1.5f, nan}, beam_m = {-inf, 2.0f, 1.5f, -inf};
  auto [s1, r1] = search(beam_l);
  auto [s2, r2] = search(beam_m);
  EXPECT_EQ(s1, s2);
  EXPECT_EQ(r1.tokens, r2.tokens);
  EXPECT_DOUBLE_EQ(r1.score, r2.score);
  EXPECT_TRUE(std::isfinite(r1.score));
  auto [s3, r3] = search(all_nan);
  EXPECT_LE(s3.size(), 3u);  // ends (-inf ties: lowest index first, EOS 0 makes hypotheses)
  EXPECT_EQ(r3.score, -INFINITY);
}

TEST(RepairBeam, ParsesEarlyStopping) {
  EXPECT_EQ(parse_early_stopping("true"), EarlyStopping::yes);
  EXPECT_EQ(parse_early_stopping("false"), EarlyStopping::no);
  EXPECT_EQ(parse_early_stopping("never"), EarlyStopping::never);
  EXPECT_THROW(parse_early_stopping("sometimes"), std::invalid_argument);
}

// ---- equality with t5_reference.py beam-table (HF's algorithm in numpy float64) ----

namespace {

struct Table {
  int V = 8, eos = 1, start = 0;
  // steps[k][last token] (key -1: any)
  std::vector<std::map<int, std::vector<float>>> steps;

  const std::vector<float>& at(int k, int last) const {
    auto& s = steps[(size_t)std::min<int>(k, (int)steps.size() - 1)];
    auto it = s.find(last);
    return it != s.end() ? it->second : s.at(-1);
  }
  Json json() const {
    Json j = {{"vocab", V}, {"eos", eos}, {"start", start}, {"steps", Json::array()}};
    for (auto& s : steps) {
      Json o = Json::object();
      for (auto& [k, v] : s) o[k < 0 ? "*" : std::to_string(k)] = v;
      j["steps"].push_back(o);
    }
    return j;
  }
};

Table random_table(uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.f, 0.7f);  // flat enough that the settings change results
  Table t;
  for (int k = 0; k < 7; ++k) {
    std::map<int, std::vector<float>> s;
    for (int key = -1; key < t.V; ++key) {
      std::vector<float> l((size_t)t.V);
      for (auto& x : l) x = n(rng);
      l[(size_t)t.eos] += 0.3f * (float)k - 0.5f;  // EOS grows likelier with length
      s[key] = l;
    }
    t.steps.push_back(s);
  }
  return t;
}

// Our BeamSearch over the table (beams > 1) or greedy (beams == 1); ids without EOS.
BeamRun ours(const Table& t, const BeamConfig& cfg) {
  if (cfg.num_beams == 1) {
    BeamRun r;
    std::vector<int> hist = {t.start};
    int last = t.start;
    for (int k = 0; k < cfg.max_new_tokens; ++k) {
      const auto& l = t.at(k, last);
      int tok = greedy_pick(l.data(), t.V, hist, cfg.repetition_penalty);
      r.score += log_prob(l.data(), t.V, tok);
      if (tok == t.eos) break;
      r.tokens.push_back(tok);
      hist.push_back(tok);
      last = tok;
    }
    return r;
  }
  BeamSearch bs(cfg, {t.start});
  std::vector<int> last((size_t)cfg.num_beams, t.start);
  int k = 0;
  while (!bs.done()) {
    std::vector<const float*> rows;
    for (int b : last) rows.push_back(t.at(k, b).data());
    auto next = bs.step(rows, t.V);
    ++k;
    if (bs.done()) break;
    last = next.token;
  }
  auto r = bs.result();
  return {r.tokens, r.score, bs.steps()};
}

}  // namespace

TEST(RepairBeam, EqualsHuggingFaceReferenceOnRandomTables) {
  const std::string& py = test::numpy_python();
  if (py.empty()) GTEST_SKIP() << "no python3 with numpy";
  const std::string script = CAPFORGE_TEST_SRC "/models/t5_reference.py";
  if (!fs::exists(script)) GTEST_SKIP() << "no " << script;
  test::TempDir dir;
  int compared = 0;
  for (uint32_t seed : {1u, 2u, 3u, 4u}) {
    Table t = random_table(seed);
    const std::string path = dir / ("table" + std::to_string(seed) + ".json");
    test::write_file(path, t.json().dump());
    for (const char* mode : {"greedy-table", "beam-table"}) {
      // every setting in one python run (one request per line)
      std::vector<BeamConfig> cfgs;
      std::string requests;
      for (int beams : {1, 2, 3, 4})
        for (double lp : {0.5, 1.0, 2.0})
          for (const char* es : {"true", "false", "never"})
            for (double rep : {1.0, 2.5}) {
              if ((beams == 1) != (std::string(mode) == "greedy-table")) continue;
              if (beams == 1 && (lp != 1.0 || std::string(es) != "true")) continue;  // greedy ignores them
              BeamConfig cfg = config(lp, parse_early_stopping(es), 6, rep, beams);
              cfg.eos = {t.eos};
              cfgs.push_back(cfg);
              requests += Json{{"num_beams", beams},
                               {"length_penalty", lp},
                               {"early_stopping", es},
                               {"repetition_penalty", rep},
                               {"max_new", 6}}
                              .dump() +
                          "\n";
            }
      const std::string req_path = dir / "requests.jsonl";
      test::write_file(req_path, requests);
      auto r = test::run_process({py, script, mode, path, "--requests", req_path});
      ASSERT_EQ(r.exit_code, 0) << r.err;
      std::vector<Json> refs = test::json_lines(r.out);
      ASSERT_EQ(refs.size(), cfgs.size()) << "t5_reference.py must answer one line per request: " << r.out;
      for (size_t i = 0; i < cfgs.size(); ++i) {
        const BeamConfig& cfg = cfgs[i];
        const Json& ref = refs[i];
        std::vector<int> ids = ref["ids"].get<std::vector<int>>();
        if (!ids.empty() && ids.back() == t.eos) ids.pop_back();
        BeamRun got = ours(t, cfg);
        std::string what = "seed " + std::to_string(seed) + " beams " + std::to_string(cfg.num_beams) +
                           " lp " + std::to_string(cfg.length_penalty) + " es " +
                           std::to_string((int)cfg.early_stopping) + " rep " +
                           std::to_string(cfg.repetition_penalty);
        EXPECT_EQ(got.tokens, ids) << what;
        double want = cfg.num_beams == 1 ? ref["sum_logprobs"].get<double>() : ref["score"].get<double>();
        EXPECT_NEAR(got.score, want, 1e-9 * std::max(1.0, std::abs(want))) << what;
        ++compared;
      }
    }
  }
  EXPECT_EQ(compared, 4 * (3 * 3 * 3 * 2 + 2));
}

// Vocabulary-sized rows (the vectorised paths: 16 and 8 lanes, with a ragged tail): log_sum_exp
// within 1e-12 of a long double sum, greedy_pick the first maximum, NaN ignored, whatever the
// position of the winner or the row's length.
TEST(RepairBeam, LongRowsMatchAScalarReference) {
  std::mt19937 rng(7);
  std::normal_distribution<float> d(0.f, 4.f);
  for (int n : {1, 15, 16, 17, 1000, 32128, 32131}) {
    std::vector<float> l((size_t)n);
    for (float& v : l) v = d(rng);
    if (n > 20) l[(size_t)n / 3] = NAN, l[(size_t)n - 2] = -INFINITY;
    long double mx = -INFINITY;
    for (float v : l)
      if (!std::isnan(v)) mx = std::max(mx, (long double)v);
    long double sum = 0;
    for (float v : l)
      if (!std::isnan(v)) sum += std::exp((long double)v - mx);
    EXPECT_NEAR(log_sum_exp(l.data(), n), (double)(mx + std::log(sum)), 1e-12) << n;
    // the maximum twice, the later one last in the row: the lower id wins
    const int at = n / 2;
    l[(size_t)at] = 100.f;
    l[(size_t)n - 1] = 100.f;
    EXPECT_EQ(greedy_pick(l.data(), n, {}, 1.0), at) << n;
    EXPECT_EQ(greedy_pick(l.data(), n, {at}, 1.0), at) << n;  // penalty 1 changes nothing
    if (n > 1) EXPECT_EQ(greedy_pick(l.data(), n, {at}, 2.0), n - 1) << n;
  }
}
