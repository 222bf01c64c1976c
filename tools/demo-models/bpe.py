"""A small GPT-2-style byte-level BPE vocabulary for the demo captioner, and a tokenizer that does
what llama.cpp's BPE tokenizer does with tokenizer.ggml.pre = "gpt-2": special tokens split out
first, the GPT-2 pre-tokenizer regex, bytes mapped to printable symbols, then the lowest-ranked
merge (leftmost on ties) applied one at a time."""
import regex

PRE = regex.compile(r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)")
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


BYTE = bytes_to_unicode()


def pretokens(text):
    """Pieces of `text` between special tokens, as llama.cpp splits them (unmatched text kept)."""
    out, pos = [], 0
    for m in PRE.finditer(text):
        if m.start() > pos:
            out.append(text[pos:m.start()])
        out.append(m.group())
        pos = m.end()
    if pos < len(text):
        out.append(text[pos:])
    return out


def encode_piece(piece):
    return "".join(BYTE[b] for b in piece.encode("utf-8"))


class Vocab:
    def __init__(self, corpus, whole_words=False):
        """Bytes, then merges that build every pre-token of `corpus` into one token, then specials.
        The merges of one pre-token can split another (the lowest-ranked merge wins, so " red" may
        encode as " " + "red" when "red" was built first); whole_words=True appends merges until each
        pre-token of `corpus` encodes as one token (a merge added last only acts when no other does,
        so no other word's encoding changes but to get shorter)."""
        self.tokens = [BYTE[b] for b in sorted(BYTE)]
        self.merges = []
        ranks = {}
        known = set(self.tokens)
        words = sorted({encode_piece(p) for text in corpus for part in self.split_special(text)
                        if part not in SPECIALS for p in pretokens(part)})
        for w in words:
            cur = w[0]
            for ch in w[1:]:
                pair = (cur, ch)
                if pair not in ranks:
                    ranks[pair] = len(self.merges)
                    self.merges.append(pair)
                cur += ch
                if cur not in known:
                    known.add(cur)
                    self.tokens.append(cur)
        self.ranks = ranks
        while whole_words:
            added = False
            for w in words:
                syms = self.bpe(w)
                if len(syms) > 1:  # every prefix of a word is a token: so is syms[0] + syms[1]
                    ranks[(syms[0], syms[1])] = len(self.merges)
                    self.merges.append((syms[0], syms[1]))
                    added = True
            whole_words = added
        self.special_ids = {}
        for s in SPECIALS:
            self.special_ids[s] = len(self.tokens)
            self.tokens.append(s)
        self.ids = {t: i for i, t in enumerate(self.tokens)}

    @staticmethod
    def split_special(text):
        parts = [text]
        for s in SPECIALS:
            nxt = []
            for p in parts:
                if p in SPECIALS:
                    nxt.append(p)
                    continue
                chunks = p.split(s)
                for i, c in enumerate(chunks):
                    if i:
                        nxt.append(s)
                    if c:
                        nxt.append(c)
            parts = nxt
        return parts

    def bpe(self, symbols):
        symbols = list(symbols)
        while len(symbols) > 1:
            best = None
            for i in range(len(symbols) - 1):
                r = self.ranks.get((symbols[i], symbols[i + 1]))
                if r is not None and (best is None or r < best[0]):
                    best = (r, i)
            if best is None:
                break
            i = best[1]
            symbols[i:i + 2] = [symbols[i] + symbols[i + 1]]
        return symbols

    def encode(self, text, special=True):
        """Token ids of `text`; any UTF-8 text encodes (a piece no merge covers stays bytes).
        special=False: text that looks like a special token is plain text (as llama.cpp's
        parse_special=false, which capforge uses for filled-in alt-texts)."""
        ids = []
        for part in self.split_special(text) if special else [text]:
            if special and part in SPECIALS:
                ids.append(self.special_ids[part])
                continue
            for p in pretokens(part):
                ids.extend(self.ids[s] for s in self.bpe(encode_piece(p)))
        return ids

    def token_types(self):
        return [3 if t in SPECIALS else 1 for t in self.tokens]  # CONTROL for specials, NORMAL otherwise
