#!/usr/bin/python3
"""bench/repair's report: the results of bench/repair/run as a markdown table, the ratios against the
goals and the output equality. usage: report.py WORK MODELS N CLI_N THREADS"""
import functools
import json
import os
import sys
from pathlib import Path

work, models = Path(sys.argv[1]), Path(sys.argv[2])
n, cli_n, threads = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
rows = [json.loads(line) for line in (work / "results.jsonl").read_text().splitlines()]


for r in rows:
    r.setdefault("captions", r.get("r", {}).get("captions"))


def rate(r):
    return r["r"]["captions_per_s"] if r["side"] == "torch" else r["captions"] / r["full"]["wall"]


def rate_loaded(r):
    """captions/s with the model loaded: capforge's summary seconds (read, repair, write), the peer's
    generate() time (its timer never covered the load)"""
    if r["side"] == "torch":
        return r["r"]["captions_per_s"]
    return r["captions"] / r["work"] if r.get("work") else None


def encode_share(r):
    if r["side"] == "torch":
        return f"{r['r']['stages']['encode'] / r['r']['seconds']:.0%} (timed encoder)"
    if r["side"] == "capforge":
        return f"{r['one']['wall'] / r['full']['wall']:.0%} (1-token run: load, I/O, encode, 1 step)"
    return ""


best_torch = {}
for r in rows:
    if r["side"] == "torch" and (r["mode"] not in best_torch or rate(r) > rate(best_torch[r["mode"]])):
        best_torch[r["mode"]] = r
impl = next((r["r"] for r in rows if r["side"] == "torch"), None)
if impl:
    who = (f"Hugging Face transformers {impl['transformers']} T5ForConditionalGeneration.generate()"
           if impl["impl"] == "hf" else "tools/demo-models/t5.py (HF semantics, not HF's code)")
    print(f"\ntorch peer: {who}, torch {impl['torch']}, batches of {impl['batch']}")
print(f"t5-base v1.0 shape, random weights; {n} captions ({cli_n} for the CLI), {threads} threads; max new tokens "
      "ceil(1.5 x caption tokens) + 8\n")
print("| side | weights / compute | mode | setting | captions | captions/s | vs torch best (same mode) | "
      "captions/s, model loaded | vs torch best | encode share | others' load |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for r in rows:
    bt = best_torch.get(r["mode"])
    vs = f"{rate(r) / rate(bt):.2f}x" if bt else ""
    loaded = rate_loaded(r)
    vs_loaded = f"{loaded / rate(bt):.2f}x" if bt and loaded and r["side"] == "capforge" else ""
    loaded = f"{loaded:.2f}" if loaded and r["side"] == "capforge" else ""
    name = r["dtype"]
    if r["side"] == "torch":
        name = {"bf16": "bf16 autocast", "qint8": "qint8 (quantize_dynamic)"}.get(name, name)
    mode = "greedy" if r["mode"] == "greedy" else "2 beams, rep. penalty 2.5"
    mark = " (best)" if r is bt else ""
    print(f"| {r['side']} | {name} | {mode} | {r['setting']}{mark} | {r['captions']} | {rate(r):.2f} | {vs} | "
          f"{loaded} | {vs_loaded} | {encode_share(r)} | {r['full']['others']:.2f} |")
print("(others' load: the CPU the rest of the machine used meanwhile, in cores on average; above ~0.1 the run "
      "shared its cores)")

print()
cf = [r for r in rows if r["side"] == "capforge"]
for mode in dict.fromkeys(r["mode"] for r in cf):
    top = max((r for r in cf if r["mode"] == mode), key=rate)
    if mode in best_torch:
        bt = best_torch[mode]
        print(f"{mode}: capforge's best ({top['dtype']}) / torch's best ({bt['dtype']}, {bt['setting']}): "
              f"**{rate(top) / rate(bt):.2f}x** (goal >= 2x)")
        loaded = [r for r in cf if r["mode"] == mode and rate_loaded(r)]
        if loaded:
            tl = max(loaded, key=rate_loaded)
            print(f"{mode}, the model loaded on both sides: capforge's best ({tl['dtype']}) / torch's best: "
                  f"**{rate_loaded(tl) / rate(bt):.2f}x**")
        fp32 = [r for r in rows if r["side"] == "torch" and r["mode"] == mode and r["dtype"] == "fp32"]
        for dt in ("f32", "f16"):
            same = [r for r in cf if r["mode"] == mode and r["dtype"] == dt and "ggml" in r["setting"]]
            if fp32 and same:
                f, c = max(fp32, key=rate), same[0]
                extra = f", {rate_loaded(c) / rate(f):.2f}x model loaded" if rate_loaded(c) else ""
                print(f"{mode}: capforge {dt} / torch fp32's best ({f['setting']}; f32 arithmetic on both): "
                      f"**{rate(c) / rate(f):.2f}x**{extra}")
    cli = [r for r in rows if r["side"] == "cli" and r["mode"] == mode]
    if cli:
        f16 = [r for r in cf if r["mode"] == mode and r["dtype"] == "f16"]
        same = f16[0] if f16 else top
        print(f"{mode}: capforge {same['dtype']} / llama-completion per caption (f16): "
              f"**{rate(same) / rate(cli[0]):.2f}x** (goal >= 5x); capforge's best ({top['dtype']}): "
              f"{rate(top) / rate(cli[0]):.2f}x")


def llama_detok(ids, tokens, types):
    """capforge's detokenize: control/unknown dropped, llama.cpp's UGM token_to_piece (user-defined as
    is, normal with U+2581 -> space, bytes, unused nothing), the first kept token's leading space
    removed, whitespace stripped."""
    out, first = b"", True
    for t in ids:
        ty = types[t]
        if ty in (2, 3):
            continue
        if ty == 4:
            piece = tokens[t]
        elif ty == 1:
            piece = tokens[t].replace("\u2581".encode(), b" ")
        elif ty == 6:
            piece = bytes([int(tokens[t][3:5], 16)])
        else:
            piece = b""
        if first and piece.startswith(b" "):
            piece = piece[1:]
        first = False
        out += piece
    return out.decode("utf-8", errors="replace").strip(" \t\r\n")


@functools.lru_cache(maxsize=None)
def read_vocab(path):
    sys.path.insert(0, os.path.expanduser("~/.cache/capforge/deps/llama.cpp/gguf-py"))
    import gguf
    r = gguf.GGUFReader(str(path))
    f = r.fields["tokenizer.ggml.tokens"]
    tokens = [bytes(f.parts[i]) for i in f.data]
    f = r.fields["tokenizer.ggml.token_type"]
    return tokens, [int(f.parts[i][0]) for i in f.data]


def capforge_text(row):
    """The repaired text; a failed repair (the model returned nothing, noted) is the empty text."""
    return row["caption"] if row["status"] in ("repaired", "unchanged") else ""


eq_torch = work / "torch-f32-greedy.jsonl"
for eq_cf in sorted(work.glob("texts-*-f32-greedy.jsonl")):
    if not eq_torch.exists():
        break
    engine = eq_cf.name.split("-")[1]
    tokens, types = read_vocab(models / "t5-base-v1_0-f32.gguf")
    ours = [capforge_text(json.loads(line)) for line in eq_cf.read_text().splitlines()]
    theirs = [json.loads(line) for line in eq_torch.read_text().splitlines()]
    same, shown = 0, 0
    for o, t in zip(ours, theirs):
        text = llama_detok(t["ids"], tokens, types)
        same += o == text
        if o != text and shown < 3:
            shown += 1
            print(f"  DIFFERENT: {t['caption']!r}: capforge {o!r} vs torch {text!r}")
    eos = sum(1 for t in theirs if t["ids"] and t["ids"][-1] == 1)
    print(f"\ngreedy f32 (capforge --repair-engine {engine}, f32 weights + f32 caches, vs torch fp32): "
          f"**{same} of {len(ours)}** outputs identical ({eos} of {len(theirs)} ended with </s> before the limit)")


# every greedy run against the f32 reference (torch fp32's texts): how many outputs each reduced
# precision changes, capforge's and the peer's alike
if eq_torch.exists():
    tokens, types = read_vocab(models / "t5-base-v1_0-f32.gguf")
    ref = [llama_detok(json.loads(line)["ids"], tokens, types) for line in eq_torch.read_text().splitlines()]
    print("\ngreedy outputs identical to torch fp32's (the f32 reference), per run:")
    for f in sorted(work.glob("texts-*-greedy.jsonl")):
        if "-f32-greedy" in f.name:
            continue
        ours = [capforge_text(json.loads(line)) for line in f.read_text().splitlines()]
        print(f"- capforge {f.name[len('texts-'):-len('-greedy.jsonl')]}: {sum(o == t for o, t in zip(ours, ref))} of {len(ref)}")
    for f in sorted(work.glob("torch-*-greedy.jsonl")):
        if f.name == eq_torch.name:
            continue
        theirs = [llama_detok(json.loads(line)["ids"], tokens, types) for line in f.read_text().splitlines()]
        print(f"- torch {f.name[len('torch-'):-len('-greedy.jsonl')]}: {sum(o == t for o, t in zip(theirs, ref))} of {len(ref)}")


# capforge's f16 weights in f32 arithmetic (panels) against torch fp32 on the same f16 weights (the
# peer's fp32 runs load the f16 file): an equality check for the weights users download
torch_f16 = sorted(work.glob("torch-fp32-*-greedy.jsonl"))
for f in sorted(work.glob("texts-ggml-f16-greedy.jsonl")):
    if not torch_f16:
        break
    tokens, types = read_vocab(models / "t5-base-v1_0-f32.gguf")
    ours = [capforge_text(json.loads(line)) for line in f.read_text().splitlines()]
    theirs = [llama_detok(json.loads(line)["ids"], tokens, types) for line in torch_f16[0].read_text().splitlines()]
    print(f"\ngreedy f16 (capforge --repair-engine ggml, f16 weights in f32 arithmetic, vs torch "
          f"fp32 on the same f16 weights): **{sum(o == t for o, t in zip(ours, theirs))} of {len(ours)}** outputs identical")


def cli_texts(path):
    return [json.loads(line).removesuffix("[end of text]").strip() for line in path.read_text().splitlines()]


checks = [(dt, f"texts-{eng}-{dt}-greedy.jsonl", cli_file, eng) for eng in ("ggml", "llama")
          for dt, cli_file in (("f16", "cli-texts.jsonl"), ("f32", "cli-texts-f32.jsonl"))]
for dt, cf_file, cli_file, engine in checks:
    if not (work / cli_file).exists() or not (work / cf_file).exists():
        continue
    ours = [capforge_text(json.loads(line)) for line in (work / cf_file).read_text().splitlines()]
    theirs = cli_texts(work / cli_file)
    same = sum(o == t for o, t in zip(ours, theirs))
    kv = ("f16 KV on both" if engine == "llama" else "capforge f32 caches, the CLI's f16 KV") if dt == "f16" \
        else "capforge f32 KV, the CLI's f16 KV"
    print(f"greedy {dt} weights (capforge --repair-engine {engine}, all captions in one run, vs llama-completion per caption; {kv}): "
          f"{same} of {len(theirs)} outputs identical")
    for o, t in [(o, t) for o, t in zip(ours, theirs) if o != t][:2]:
        print(f"  DIFFERENT: capforge {o!r} vs cli {t!r}")
