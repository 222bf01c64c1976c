// Several prompts per run: --prompt NAME=TEXT, per-prompt decoding flags (--prompt-opt
// NAME:FLAG=VALUE, or --FLAG@NAME VALUE), a prompts file, and recap-v2's conditioned prompt.
#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "cli/captioner_options.h"
#include "cli/common.h"
#include "models/prompt_template.h"

namespace capforge::cli {

namespace fs = std::filesystem;

namespace {

const std::set<std::string> kPerPromptFlags = {
    "response-prefix", "candidates",  "greedy",         "temperature",    "top-k",
    "top-p",           "min-p",       "min-new-tokens", "max-new-tokens", "repetition-penalty",
    "no-repeat-ngram", "harvest-eos", "force-eos"};
const char* kPerPromptHint =
    "per-prompt flags: response-prefix, candidates, greedy, temperature, top-k, top-p, min-p, "
    "min-new-tokens, "
    "max-new-tokens, repetition-penalty, no-repeat-ngram, harvest-eos, force-eos";

std::string lower(std::string s) {
  for (auto& c : s) c = (char)std::tolower((unsigned char)c);
  return s;
}

// "NAME=TEXT" -> {NAME, TEXT}; anything else (or "=TEXT") is unnamed.
std::pair<std::string, std::string> split_named(const std::string& spec) {
  size_t eq = spec.find('=');
  if (eq != std::string::npos && is_prompt_name(spec.substr(0, eq)))
    return {spec.substr(0, eq), spec.substr(eq + 1)};
  if (eq == 0) return {"", spec.substr(1)};
  return {"", spec};
}

// A YAML document as JSON: mappings (in file order), sequences, and every scalar as a string (a
// flag's value is text either way: `greedy: true` and {"greedy": true} both give greedy=true).
Json yaml_to_json(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Map: {
      Json o = Json::object();
      for (const auto& kv : n) o[kv.first.as<std::string>()] = yaml_to_json(kv.second);
      return o;
    }
    case YAML::NodeType::Sequence: {
      Json a = Json::array();
      for (const auto& x : n) a.push_back(yaml_to_json(x));
      return a;
    }
    case YAML::NodeType::Scalar:
      return n.as<std::string>();
    default:
      return nullptr;
  }
}

// A prompts file (.yaml/.yml: YAML, else JSON) as JSON; discarded when it does not parse.
Json parse_prompts_file(const std::string& path) {
  std::ifstream f(path);
  if (!f) return Json(Json::value_t::discarded);
  std::string ext = fs::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  if (ext != ".yaml" && ext != ".yml") return Json::parse(f, nullptr, false);
  try {
    return yaml_to_json(YAML::Load(f));
  } catch (const YAML::Exception& e) {
    throw UsageError(fmt::format("--prompts {}: not valid YAML: {}", path, e.what()));
  }
}

// A prompts file's entries appended to `specs` and `opts`.
void read_prompts_file(const std::string& path, std::vector<std::string>& specs,
                       std::vector<std::string>& opts) {
  Json j = parse_prompts_file(path);
  const std::string shape =
      "a list of {name: NAME, prompt: TEXT, FLAG: VALUE...} or a mapping {NAME: {prompt: TEXT, ...}}, "
      "in JSON (or YAML for a .yaml/.yml file)";
  if (j.is_discarded() || !(j.is_array() || j.is_object()))
    throw UsageError("--prompts " + path + " is not " + shape);
  std::vector<std::pair<std::string, Json>> entries;
  if (j.is_object()) {
    for (auto& [name, v] : j.items()) entries.push_back({name, v});
  } else {
    for (auto& v : j) {
      if (!v.is_object() || !v.contains("name") || !v["name"].is_string())
        throw UsageError(fmt::format("--prompts {}: every entry needs a \"name\"", path), shape);
      entries.push_back({v["name"].get<std::string>(), v});
    }
  }
  for (auto& [name, v] : entries) {
    if (!v.is_object() || !v.contains("prompt") || !v["prompt"].is_string())
      throw UsageError(fmt::format("--prompts {}: prompt '{}' needs a \"prompt\" string", path, name), shape);
    if (!is_prompt_name(name))
      throw UsageError(fmt::format(
          "--prompts {}: prompt name '{}' must be a letter then letters, digits or _", path, name));
    specs.push_back(name + "=" + v["prompt"].get<std::string>());
    for (auto& [key, val] : v.items()) {
      if (key == "name" || key == "prompt") continue;
      std::string flag = key;
      std::replace(flag.begin(), flag.end(), '_', '-');
      std::string value;
      if (val.is_array()) {
        for (auto& x : val)
          value += (value.empty() ? "" : ",") + (x.is_string() ? x.get<std::string>() : x.dump());
      } else {
        value = val.is_string() ? val.get<std::string>() : val.dump();
      }
      opts.push_back(name + ":" + flag + "=" + value);
    }
  }
}

}  // namespace

std::vector<std::string> rewrite_prompt_flags(int argc, char** argv) {
  std::vector<std::string> out;
  bool rest = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--") rest = true;
    size_t at = a.find('@'), eq = a.find('=');
    if (rest || a.rfind("--", 0) != 0 || at == std::string::npos || (eq != std::string::npos && eq < at)) {
      out.push_back(a);
      continue;
    }
    std::string flag = a.substr(2, at - 2);
    std::string name = a.substr(at + 1, eq == std::string::npos ? std::string::npos : eq - at - 1);
    if (!kPerPromptFlags.count(flag) || !is_prompt_name(name)) {  // e.g. the value of another option
      out.push_back(a);
      continue;
    }
    std::string opt = name + ":" + flag;
    if (eq != std::string::npos)
      opt += "=" + a.substr(eq + 1);
    else if (flag != "greedy" && i + 1 < argc && std::string(argv[i + 1]).rfind("--", 0) != 0)
      opt += "=" + std::string(argv[++i]);
    out.push_back("--prompt-opt");
    out.push_back(opt);
  }
  return out;
}

void add_condition_prompt(CaptionerCli& c) {
  for (auto& spec : c.prompts)
    if (split_named(spec).first == "condition") return;
  c.preset_prompts.push_back(
      "condition=Here is the image's original alt-text, which may be noisy or wrong: \"{org_caption}\". "
      "Please "
      "generate a detailed caption of this image. Keep the names, places and facts of the alt-text that the "
      "image supports, and be as descriptive as possible.");
  for (const char* o : {"condition:greedy=false", "condition:top-k=50", "condition:temperature=1",
                        "condition:top-p=1", "condition:candidates=1"})
    c.preset_prompt_opts.push_back(o);
}

void build_prompts(CaptionerCli& c) {
  std::vector<std::pair<std::string, std::string>> list;  // name, text
  std::vector<std::string> specs = c.prompts, opts = c.preset_prompt_opts;
  opts.insert(opts.end(), c.prompt_opts.begin(), c.prompt_opts.end());
  if (specs.empty()) list.push_back({c.params.prompt_name, c.params.prompt});  // the default or preset's
  if (!c.prompts_file.empty()) {
    std::vector<std::string> file_opts;
    read_prompts_file(c.prompts_file, specs, file_opts);
    opts.insert(opts.begin() + (long)c.preset_prompt_opts.size(), file_opts.begin(), file_opts.end());
  }
  for (auto& spec : c.preset_prompts) {  // a prompt the user named so already replaces the preset's
    bool given = false;
    for (auto& s : specs) given |= split_named(s).first == split_named(spec).first;
    if (!given) specs.push_back(spec);
  }
  std::set<std::string> names, folded;  // folded: column names ignore case (DuckDB identifiers)
  for (auto& spec : specs) {
    auto [name, text] = split_named(spec);
    if (!list.empty() && name.empty())
      throw UsageError(fmt::format("--prompt '{}' has no name: only the first prompt may be unnamed", spec),
                       "name it: --prompt NAME=TEXT (NAME becomes its columns: caption_NAME, ...)");
    list.push_back({name, text});
  }
  for (auto& [name, text] : list) {
    names.insert(name);
    if (!name.empty() && !folded.insert(lower(name)).second)
      throw UsageError("two prompts are named " + name + " (names ignore case: they become column names)");
    try {
      PromptTemplate{text};
    } catch (const std::invalid_argument& e) {
      throw UsageError(fmt::format("--prompt {}: {}", name.empty() ? text : name, e.what()));
    }
  }
  std::map<std::string, std::vector<std::string>> args;  // prompt name -> its flags as arguments
  for (auto& o : opts) {
    size_t colon = o.find(':');
    std::string name = o.substr(0, colon == std::string::npos ? 0 : colon);
    if (colon == std::string::npos || !names.count(name))
      throw UsageError(fmt::format("--prompt-opt {}: {}", o,
                                   colon == std::string::npos ? "expected NAME:FLAG[=VALUE]"
                                                              : "no prompt is named " + name),
                       "give the prompt first: --prompt NAME=TEXT; then --prompt-opt NAME:FLAG=VALUE or "
                       "--FLAG@NAME VALUE");
    args[name].push_back("--" + o.substr(colon + 1));
  }
  const CaptionerCli base = c;
  std::vector<PromptParams> prompts;
  for (auto& [name, text] : list) {
    CaptionerCli pc = base;
    if (auto it = args.find(name); it != args.end()) {
      CLI::App scratch{"options of prompt " + name};
      add_decoding_options(&scratch, pc);
      std::vector<std::string> rev(it->second.rbegin(), it->second.rend());
      try {
        scratch.parse(rev);
      } catch (const CLI::ParseError& e) {
        throw UsageError(fmt::format("prompt {}: {}", name, e.what()), kPerPromptHint);
      }
    }
    fill_schedule(pc);
    const CaptionerParams& q = pc.params;
    prompts.push_back(
        {name, text, q.response_prefix, q.candidates, q.sampling, q.schedule, q.harvest_eos, q.force_eos});
  }
  set_prompts(c.params, prompts);
}

}  // namespace capforge::cli
