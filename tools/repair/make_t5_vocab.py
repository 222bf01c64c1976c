#!/usr/bin/env python3
"""Trains capforge's small T5-style SentencePiece vocabulary and writes it as a vocab-only GGUF.

Outputs (committed under tests/data/t5-vocab/):
  spiece.model    a SentencePiece UNIGRAM model with T5's conventions: <pad>=0, </s>=1, <unk>=2,
                  no BOS, nmt_nfkc normalisation (so a precompiled_charsmap exists), dummy prefix,
                  extra whitespace removed, no byte fallback (unknown characters become <unk>, as
                  in T5).
  t5-vocab.gguf   the same vocabulary in llama.cpp's "t5" tokenizer format, written key for key as
                  llama.cpp's convert_hf_to_gguf.py (conversion/t5.py, T5Model.set_vocab) writes a
                  T5 model's tokenizer, plus t5-small-like `t5.*` hyper-parameters so llama.cpp can
                  load it with vocab_only. No tensors.

Corpus: every caption of capforge's synthetic shapes data (src/synth/shapes.cpp's grammar, kept in
step with tools/demo-models/data.py), in the forms a caption repairer sees and writes (lower case
without a full stop, capitalised with one, with the rendered word), the synthetic alt-texts, and a
fixed list of general English sentences so capitals, digits, commas, apostrophes, quotes and a few
accented letters tokenise well. Training is deterministic: a fixed corpus order, one thread, no
sentence sampling, no shuffling.

Needs Debian's `spm_train` (package sentencepiece), python3-sentencepiece, python3-protobuf and
llama.cpp's gguf-py (--llama-cpp, default: capforge's pinned source in ~/.cache/capforge/deps).

Usage: tools/repair/make_t5_vocab.py [--out tests/data/t5-vocab] [--vocab-size 1000]
(--vocab-size is an upper bound: SentencePiece stops at 854 pieces on this corpus.)
Checked by tests/models/t5_tokenizer_test.cpp (llama.cpp's tokenizer == SentencePiece's).
"""
import argparse
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# The scene vocabulary of src/synth/shapes.cpp (keep in step with it and tools/demo-models/data.py).
COLOURS = ["red", "green", "blue", "yellow", "purple", "orange", "white", "black"]
KINDS = ["circle", "square", "triangle", "star"]
BACKGROUNDS = ["white", "black", "gray"]
POSITIONS = ["at the top left", "at the top", "at the top right", "on the left", "in the center", "on the right",
             "at the bottom left", "at the bottom", "at the bottom right"]
WORDS = ["SALE", "OPEN", "STOP", "FREE", "NEW", "HELLO", "CAT", "SUN"]

# General English: punctuation, capitals, digits, apostrophes, quotes, a few accents.
ENGLISH = """\
A photo of a dog running on the beach at sunset.
Two children are playing football in a park, while their parents watch.
The old man's hat is red; his coat is brown.
A close-up of a cup of coffee on a wooden table.
There are 3 cats and 12 birds in the picture.
It's a sunny day in New York City, and the streets are busy.
"Welcome home," says the sign above the door.
A woman holding an umbrella walks down a rainy street.
What a beautiful view of the mountains!
Is this the best pizza in town?
The train leaves at 7:45 a.m. and arrives at 10:30 p.m.
A bowl of fruit: apples, bananas, oranges and grapes.
The cafe serves a great creme brulee, says a food critic.
Cafe, naive, resume and fiance are words borrowed from French: café, naïve, résumé, fiancé.
A group of people standing in front of a large building.
A vintage car parked next to a brick wall.
Black and white photograph of a city skyline at night.
The kids' toys are scattered across the floor.
Don't forget to bring your passport, ticket and phone.
In 2019, about 1,500 people visited the museum each day.
An aerial view of a river flowing through a green valley.
The price is $25.99 (tax included), or 20% off for members.
A red double-decker bus drives past Big Ben in London.
Hello, world! This is a test sentence with UPPER CASE words.
A cat sleeping on a windowsill in the afternoon sun.
Fresh vegetables for sale at a farmers' market.
A man in a blue shirt is riding a bicycle down the road.
Two glasses of wine on a table by the sea.
Snow-covered trees in a quiet forest.
A plate of spaghetti with tomato sauce and basil.
The logo of the company is a yellow star inside a circle.
An illustration of a rocket flying to the moon.
She said: "I'll be there at 5 o'clock."
A wooden sign that reads "OPEN" hangs on the door.
Abstract painting with red, blue and yellow squares.
A dog wearing sunglasses, sitting in a car.
Happy birthday! A cake with 10 candles.
A yellow triangle, a green square and a blue circle on a white background.
Icons of a star, a heart and a house, drawn in black lines.
The word "STOP" is written on a red octagon.
Stock photo of a businessman talking on the phone.
Free vector clipart of an orange star, PNG format.
High quality wallpaper with geometric shapes.
A sticker shaped like a purple heart.
The quick brown fox jumps over the lazy dog.
Jumping over puddles, the boy laughs; his sister follows him.
A map of Europe with Paris, Berlin, Madrid and Rome marked.
Close-up of a flower with pink petals and a bee.
A poster for a concert on Friday, June 14th.
Numbers 0 1 2 3 4 5 6 7 8 9 and 100, 250, 1000.
A pair of shoes next to a bed.
People waiting at a bus stop in the rain.
A lighthouse on a rocky coast under a cloudy sky.
Colourful balloons floating in a bright blue sky.
A chef prepares sushi in a restaurant's kitchen.
The book's cover shows a white rabbit and a clock.
A small boat on a calm lake, with hills in the background.
"""

# Everyday caption words, combined below into simple sentences (more pieces for general text).
NOUNS = """man woman child boy girl baby dog cat horse bird cow sheep bear elephant giraffe zebra fish duck
car truck bus train plane boat bicycle motorcycle street road bridge river lake sea beach mountain hill
forest tree flower grass garden park field sky cloud sun moon rain snow house building church tower
window door wall roof kitchen table chair bed sofa lamp clock book phone computer screen camera bag
bottle glass cup plate bowl knife fork spoon pizza sandwich cake bread apple banana orange carrot
shirt dress hat shoe jacket umbrella ball kite game team player crowd market shop city town village
road sign light fire water stone sand wood paper picture painting drawing poster logo icon pattern
shape line letter word number person people family friend student teacher doctor soldier farmer
airport station stadium museum library hospital school office factory restaurant hotel garage
festival wedding concert party meeting journey holiday weekend morning evening afternoon night
guitar piano violin drum microphone keyboard television radio refrigerator oven microwave sink
mirror curtain carpet pillow blanket basket candle vase statue fountain bench fence gate path
island desert valley canyon volcano glacier waterfall ocean harbour coast cliff cave meadow jungle
tiger lion monkey rabbit squirrel fox wolf deer mouse turtle frog snake butterfly spider eagle owl
strawberry tomato potato onion cheese chocolate cookie coffee tea juice soup salad burger noodle
skateboard surfboard snowboard helmet glove scarf jeans sweater backpack wallet necklace ring
engineer artist musician dancer chef pilot nurse police firefighter tourist athlete scientist""".split()
ADJECTIVES = """big small large little tall short long old young new happy sad bright dark colourful
beautiful pretty quiet busy empty full wet dry hot cold warm sunny cloudy snowy green brown pink
golden silver wooden metal plastic round flat open closed modern ancient famous simple strange
crowded peaceful delicious fresh frozen shiny dusty muddy narrow wide heavy light soft hard smooth
rough huge tiny giant elegant funny serious friendly dangerous curious sleepy hungry tired
traditional international professional historic rural urban tropical vintage digital electric""".split()
VERBS = """sits stands walks runs jumps flies swims plays eats drinks reads writes holds carries looks
waits sleeps rides drives smiles laughs talks sings dances climbs falls grows shines hangs lies
watches paints builds cooks catches throws kicks pushes pulls opens closes crosses enters leaves
follows chases touches cleans washes repairs explores celebrates gathers""".split()
PLACES = ["near the", "in front of the", "behind the", "next to the", "under the", "above the", "inside the",
          "outside the", "beside the", "across from the", "on top of the", "far from the"]


def captions():
    """All synthetic captions: 1 shape with a position, 2 or 3 shapes (left to right) without."""
    def obj(c, k):
        return ("an " if c == "orange" else "a ") + c + " " + k

    out = []
    for bg in BACKGROUNDS:
        objs = [(c, k) for c in COLOURS if c != bg for k in KINDS]
        for (c, k), where in itertools.product(objs, POSITIONS):
            out.append(f"{obj(c, k)} {where} on a {bg} background")
        for a, b in itertools.product(objs, objs):
            out.append(f"{obj(*a)} and {obj(*b)} on a {bg} background")
        # three shapes: a deterministic, spread-out sample (every pair already appears above)
        for i, (a, b, c) in enumerate(itertools.product(objs, objs, objs)):
            if i % 97 == 0:
                out.append(f"{obj(*a)}, {obj(*b)} and {obj(*c)} on a {bg} background")
    return out


def corpus_lines():
    caps = captions()
    lines = []
    for i, c in enumerate(caps):
        if i % 3 == 0:
            c = c + f' with the word "{WORDS[i % len(WORDS)]}"'
        lines.append(c)
        if i % 2 == 0:
            lines.append(c[0].upper() + c[1:] + ".")
    for i, (c, k) in enumerate(itertools.product(COLOURS, KINDS)):
        lines += [f"{c} {k} clipart", f"free {k} vector {c} png", f"stock photo {c} {k} on {BACKGROUNDS[i % 3]}",
                  f"IMG_{1000 + 277 * i % 9000}.JPG"]
    lines += [f"{bg} shapes wallpaper" for bg in BACKGROUNDS]
    for i in range(6000):  # a fixed pseudo-random walk through the word lists
        adj, noun = ADJECTIVES[i * 7 % len(ADJECTIVES)], NOUNS[i * 13 % len(NOUNS)]
        verb, place = VERBS[i * 5 % len(VERBS)], PLACES[i * 3 % len(PLACES)]
        noun2 = NOUNS[(i * 31 + 11) % len(NOUNS)]
        if i % 3 == 0:
            noun2 = ADJECTIVES[(i * 11 + 5) % len(ADJECTIVES)] + " " + noun2
        art = "An" if adj[0] in "aeiou" else "A"
        count = f"{2 + i % 9} {noun}s" if i % 4 == 0 else f"{art} {adj} {noun}"
        verb = verb[:-1] if i % 4 == 0 else verb
        end = "." if i % 5 else "!"
        lines.append(f"{count} {verb} {place} {noun2}{end}" if i % 2 else f"{count}, {verb} {place} {noun2}{end}")
    english = [s for s in ENGLISH.splitlines() if s.strip()]
    lines += english * 20  # weight general English against the (large, repetitive) caption set
    # SentencePiece seeds its unigram vocabulary with the substrings that branch in a suffix array
    # of the corpus. A word always followed by a space ("and" in captions) never branches, so it
    # would never become a piece: list every word once on its own line as well.
    lines += sorted({w for line in lines for w in line.split()} | set(WORDS))
    return lines


def train(workdir, vocab_size):
    """Trains workdir/spiece.model from workdir/corpus.txt (relative paths: the model records them)."""
    spm_train = shutil.which("spm_train")
    if not spm_train:
        sys.exit("spm_train not found: install Debian's `sentencepiece` package")
    # hard_vocab_limit=false: vocab_size is an upper bound (this corpus gives 854 pieces)
    r = subprocess.run([spm_train, "--input=corpus.txt", "--model_prefix=spiece", "--model_type=unigram",
                        f"--vocab_size={vocab_size}", "--pad_id=0", "--pad_piece=<pad>", "--eos_id=1",
                        "--eos_piece=</s>", "--unk_id=2", "--unk_piece=<unk>", "--bos_id=-1",
                        "--normalization_rule_name=nmt_nfkc", "--character_coverage=1.0", "--num_threads=1",
                        "--input_sentence_size=0", "--shuffle_input_sentence=false", "--byte_fallback=false",
                        "--hard_vocab_limit=false"], capture_output=True, text=True, cwd=workdir)
    if r.returncode:
        sys.exit("spm_train failed:\n" + r.stderr[-3000:])


def write_gguf(model_path, out_path, llama_cpp):
    """Writes the tokenizer exactly as conversion/t5.py's T5Model.set_vocab does."""
    sys.path.insert(0, str(Path(llama_cpp) / "gguf-py"))
    os.environ["PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION"] = "python"
    import gguf
    from sentencepiece import SentencePieceProcessor
    from sentencepiece import sentencepiece_model_pb2 as model

    proto = model.ModelProto()
    proto.ParseFromString(Path(model_path).read_bytes())
    assert proto.trainer_spec.model_type == 1  # UNIGRAM
    sp = SentencePieceProcessor()
    sp.LoadFromFile(str(model_path))
    tokens, scores, types = [], [], []
    T = gguf.TokenType
    for i in range(sp.vocab_size()):
        tokens.append(sp.IdToPiece(i).encode("utf-8"))
        scores.append(sp.GetScore(i))
        types.append(T.UNKNOWN if sp.IsUnknown(i) else T.CONTROL if sp.IsControl(i) else
                     T.UNUSED if sp.IsUnused(i) else T.BYTE if sp.IsByte(i) else T.NORMAL)

    w = gguf.GGUFWriter(str(out_path), "t5")
    w.add_name("capforge t5 test vocab")
    # t5-small's sizes, so llama.cpp can load this file with vocab_only (no tensors are written)
    w.add_context_length(512)
    w.add_embedding_length(512)
    w.add_feed_forward_length(2048)
    w.add_block_count(6)
    w.add_head_count(8)
    w.add_key_length(64)
    w.add_value_length(64)
    w.add_layer_norm_eps(1e-6)
    w.add_relative_attn_buckets_count(32)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_decoder_start_token_id(0)
    w.add_file_type(0)
    w.add_tokenizer_model("t5")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_add_space_prefix(proto.normalizer_spec.add_dummy_prefix)
    w.add_remove_extra_whitespaces(proto.normalizer_spec.remove_extra_whitespaces)
    assert proto.normalizer_spec.precompiled_charsmap, "nmt_nfkc should give a precompiled_charsmap"
    w.add_precompiled_charsmap(proto.normalizer_spec.precompiled_charsmap)
    # what gguf.SpecialVocab writes for a T5 checkpoint (special_tokens_map + tokenizer_config)
    w.add_eos_token_id(1)
    w.add_unk_token_id(2)
    w.add_pad_token_id(0)
    w.add_add_bos_token(False)
    w.add_add_eos_token(True)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    here = Path(__file__).resolve().parents[2]
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(here / "tests/data/t5-vocab"))
    ap.add_argument("--vocab-size", type=int, default=1000)
    ap.add_argument("--llama-cpp", default=os.path.expanduser("~/.cache/capforge/deps/llama.cpp"))
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.txt"
        corpus.write_text("\n".join(corpus_lines()) + "\n", encoding="utf-8")
        train(tmp, a.vocab_size)
        shutil.copyfile(Path(tmp) / "spiece.model", out / "spiece.model")
    write_gguf(out / "spiece.model", out / "t5-vocab.gguf", a.llama_cpp)
    for f in ("spiece.model", "t5-vocab.gguf"):
        print(f"{out / f}: {(out / f).stat().st_size} bytes")


if __name__ == "__main__":
    main()
