"""Exact, fast tokenization for GPT-2 style byte-level BPE tokenizers, through ``tiktoken``.

Why our own code here: the rendering-parity core needs the ids of
``tokenizer(text, add_special_tokens=False)`` several times faster than Hugging Face
``tokenizers`` produces them. ``tiktoken`` (a maintained library) runs the same algorithm
faster but ships only OpenAI's vocabularies; this module builds a :class:`tiktoken.Encoding`
from the loaded tokenizer's own vocab, merges and added tokens at run time (nothing is
downloaded) and uses it only where it is *proven* to give the same ids:

1. **Structure** (:func:`fast_encoder_status` refuses anything else): no normalizer; the
   pre-tokenizer is ``ByteLevel(add_prefix_space=False, use_regex=True)``, whose split regex is
   GPT-2's (:data:`GPT2_PATTERN`, copied from ``tokenizers/src/pre_tokenizers/byte_level.rs``);
   the model is a plain ``BPE`` (no dropout, no subword prefix/suffix, no byte fallback);
   added tokens have no ``lstrip``/``rstrip``/``single_word`` and none is a prefix of another
   (``tokenizers`` matches them leftmost-longest, tiktoken leftmost-first: equal when no token
   is a prefix of another); no truncation or padding on the backend.
2. **Merges equal ranks** (:func:`_bpe_proof`). HF BPE repeatedly merges the adjacent pair with
   the lowest *merge* rank; tiktoken merges the adjacent pair whose *concatenation* has the
   lowest rank (both leftmost on ties). They agree on every input when (a) every merge yields a
   distinct token, (b) token ids increase with merge order (ids serve as ranks) and (c) every
   token is *self-reachable*: HF's own BPE on the token's bytes returns that token. Proof
   sketch: if tokens x, y are ever adjacent in an HF run, HF's run on the bytes of x+y alone
   passes through the state [x, y] (merges are local and happen in the same order); by (c)
   that run ends in the single token x+y when x+y is a token, and by (a) its last merge is the
   one merge producing x+y, so the pair rank HF uses equals the rank tiktoken uses; when x+y is
   no token neither merges. (c) also makes tiktoken's whole-piece shortcut agree with HF.
3. **Probe**: ids equal on a probe text (:data:`PROBE_TEXTS`: unicode, whitespace runs, digits,
   contractions, control-token text). Text holding a byte the vocab lacks (HF drops it, there
   is no ``unk``) or lone surrogates (tiktoken would replace them) is refused per text
   (``None``), and the caller uses the HF tokenizer for it.

Offsets for loss masks come from the byte lengths of the tokens (:attr:`FastEncoder.byte_len`):
byte-level BPE tokens concatenate to the UTF-8 bytes of the text exactly.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor

import numpy as np

# tokenizers 0.23 src/pre_tokenizers/byte_level.rs (the ByteLevel pre-tokenizer with use_regex=True)
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

# GPT2_PATTERN without its one look-ahead alternative ``\s+(?!\S)``: a pattern the regex crate
# runs without backtracking, 2-3x faster than GPT2_PATTERN in tiktoken. Exactly equal pieces
# once the text is cut inside every whitespace run of two or more characters followed by a
# non-space, before the run's last character (:data:`_WS_RUN`): there GPT2_PATTERN yields the run
# less its last character, then the last character alone or with the following word; everywhere
# else ``\s+(?!\S)`` and ``\s+`` match the same text (a run at the end, or one character).
FAST_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+"""
# \s of the regex crate and of Oniguruma: the Unicode White_Space characters (not Python's
# str.isspace, which adds U+001C..U+001F).
_WS = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_WS_RUN = re.compile(f"[{_WS}]{{2,}}(?=[^{_WS}])")
_PY_WS_RUN = re.compile(r"\s\s+")  # Python's \s: White_Space plus U+001C..U+001F
_NOT_WS = re.compile("[\x1c-\x1f]")
_WS_SET = frozenset("\t\n\x0b\x0c\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000"
                    + "".join(chr(c) for c in range(0x2000, 0x200B)))

# Texts on which the fast encoder must give the HF ids before it is used: the cases where
# splitting and merging could plausibly differ (whitespace runs before words/newlines/end,
# contractions in both cases, digits, scripts with and without letters, combining marks,
# emoji with joiners, Unicode spaces, control characters the vocab has, control-token text).
PROBE_TEXTS = (
    "Hello world! It's 2024-06-01, isn't it? I'm, you're, we've, they'll, he'd. IT'S YOU'RE 'S",
    "  leading, trailing  \n\n\n  indented\n\tline\r\n\r\nend   ",
    "a  b   c    d\n \n  \n\t\t\tx \u00a0y\u2009z\u3000w\u2028v\u2029u\u0085t\u000bs\u000cr",
    "1234567890 3.14159 -42 +7 1,000,000 \u0661\u0662\u0663 \u00bd \u2460 \uff11\uff12",
    "na\u00efve caf\u00e9 e\u0301 \u00c5ngstr\u00f6m \u0130stanbul stra\u00dfe \u03a3\u03bf\u03c6\u03af\u03b1",
    "\u4f60\u597d\uff0c\u4e16\u754c\u3002\u3053\u3093\u306b\u3061\u306f \ud55c\uad6d\uc5b4 \u0645\u0631\u062d\u0628\u0627 "
    "\u05e9\u05dc\u05d5\u05dd \u0928\u092e\u0938\u094d\u0924\u0947 \u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35",
    "\U0001f600\U0001f468\u200d\U0001f469\u200d\U0001f467 \U0001f44d\U0001f3fd \u2764\ufe0f \U0001d54f\U0001d550 "
    "\U00020000\U0002a6d6 \ufffd \u200b\u200c\u200e",
    "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<|im_end|><|endoftext|> <|im_start|> x<|im_end|>y",
    "[INST] </s> <s> <|eot_id|> <|start_header_id|> <| im_start |> <|im_start <im_end> |>",
    "def f(x):\n    return x**2  # comment\n\n\nclass A:\n\tpass\n",
    "!!!??? ... --- *** ''' \"\"\" ``` ~~~ ### @@@ $$$ %%% ^^^ &&& ((())) [[[]]] {{{}}}",
    "\x01\x02\x03\x05\x07\x08\x0e\x1b\x7f \x80\x9f",
    "",
    " ",
    "\n",
    "x" * 300 + " " + "ab" * 150 + " " + "\u00e9" * 100,
)


def literal_alternation(tokens) -> re.Pattern | None:
    """A regex matching any of ``tokens`` (longest first at a position, i.e. leftmost-longest),
    with the alternatives grouped by their first character so that Python's ``re`` can skip
    ahead by that character (a plain alternation of 17 tokens scans several times slower)."""
    toks = sorted({t for t in tokens if t}, key=lambda t: (-len(t), t))
    if not toks:
        return None
    groups: dict[str, list[str]] = {}
    for t in toks:
        groups.setdefault(t[0], []).append(t[1:])
    alts = []
    for first, rests in groups.items():
        body = "|".join(re.escape(r) for r in rests)  # already longest first; "" (the bare char) last
        alts.append(re.escape(first) + (f"(?:{body})" if body else ""))
    return re.compile("|".join(alts))


class FastEncoder:
    """A tiktoken ``Encoding`` proven equivalent to one HF byte-level BPE tokenizer.

    Attributes:
        encoding: the ``tiktoken.Encoding`` (ranks are the HF token ids; :data:`FAST_PATTERN`).
        byte_len: ``numpy`` int64 array, UTF-8 byte length of each token id (0 for ids it never emits).
        n_vocab: ids below this are real; larger ones stand for bytes the vocab lacks.
        threads: worker threads for :meth:`encode_many` (``os.sched_getaffinity``).
    """

    def __init__(self, encoding, byte_len: np.ndarray, n_vocab: int, digest: str, specials: dict[str, int]):
        self.encoding = encoding
        self.byte_len = byte_len
        self.n_vocab = n_vocab
        self.digest = digest
        self.specials = specials
        self._allowed = encoding.special_tokens_set
        self._special_rx = literal_alternation(specials)
        self._special_last = frozenset(t[-1] for t in specials)
        self._special_first = frozenset(t[0] for t in specials)
        # tiktoken's Rust core: raises UnicodeEncodeError on lone surrogates (the public encode()
        # would silently replace them) and takes the allowed added tokens as a set.
        self._core = encoding._core_bpe
        self.threads = max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)

    def is_boundary(self, text: str, p: int) -> bool:
        """True when no token of ``text`` can cross character position ``p`` (a sufficient test):
        the text's ends, next to an added token, a non-space before whitespace, or whitespace other
        than a plain space before a non-space (GPT-2's split never joins those)."""
        if p <= 0 or p >= len(text):
            return True
        a, b = text[p - 1], text[p]
        a_ws, b_ws = a in _WS_SET, b in _WS_SET
        if (not a_ws and b_ws) or (a_ws and a != " " and not b_ws):
            return True
        rx = self._special_rx
        if rx is None:
            return False
        if rx.match(text, p):
            return True
        if a in self._special_last:
            return any(text.startswith(t, p - len(t)) for t in self.specials if len(t) <= p)
        return False

    def _ws_cuts(self, text: str) -> list[int]:
        """Cut points of :data:`FAST_PATTERN`: before the last character of every whitespace run of
        two or more characters followed by a non-space that starts no added token."""
        found = list(_PY_WS_RUN.finditer(text))
        if not found:
            return []
        if any(_NOT_WS.search(m.group()) for m in found):  # U+001C..U+001F: Python whitespace, not Unicode
            runs = [m.end() for m in _WS_RUN.finditer(text)]
        else:
            runs = [m.end() for m in found]
        n, rx, first = len(text), self._special_rx, self._special_first
        return [e - 1 for e in runs if e < n and not (text[e] in first and rx.match(text, e))]

    def encode(self, text: str, cuts: list[int] = ()) -> tuple[list[int], list[int] | None] | None:
        """``(ids, counts)``: ``ids`` equal ``tokenizer(text, add_special_tokens=False)["input_ids"]``
        and ``counts[k]`` is the number of tokens before character position ``cuts[k]`` (sorted
        positions that pass :meth:`is_boundary`; ``counts`` is None when a cut falls inside an
        added token). None when this text must go to the HF tokenizer (a byte the vocab lacks,
        which HF drops; a lone surrogate, which tiktoken would replace).

        Added tokens are found here (longest first, as HF's leftmost-longest matcher: no added
        token is a prefix of another) and the text between them is encoded with
        ``encode_ordinary``, cut at :meth:`_ws_cuts` and at ``cuts``: tiktoken's own matching of
        added tokens converts the allowed set on every call, which costs more than the encoding."""
        enc, specials = self._core.encode_ordinary, self.specials
        events = [(m.start(), 0, m.end(), specials[m.group()]) for m in self._special_rx.finditer(text)] \
            if self._special_rx is not None else []
        ws = self._ws_cuts(text)
        if ws or cuts:
            events += [(p, -1, p, None) for p in ws]
            events += [(p, -2, p, None) for p in cuts]  # a cut before an added token at the same place
            events.sort()
        ids: list[int] = []
        counts: list[int] | None = []
        prev = 0
        try:
            for pos, kind, end, tid in events:
                if pos < prev:  # a cut inside an added token
                    if kind == -2:
                        counts = None
                    continue
                if pos > prev:
                    ids += enc(text[prev:pos])
                    prev = pos
                if kind == 0:
                    ids.append(tid)
                    prev = end
                elif kind == -2 and counts is not None:
                    counts.append(len(ids))
            if prev < len(text):
                ids += enc(text[prev:] if prev else text)
        except UnicodeEncodeError:
            return None
        if ids and max(ids) >= self.n_vocab:
            return None
        return ids, counts

    def encode_chunk(self, items: list[tuple[str, list[int]]]) -> list[tuple[list[int], list[int]] | None]:
        """:meth:`encode` over ``(text, cuts)`` pairs, in the calling thread (tiktoken releases
        the GIL while it encodes)."""
        enc = self.encode
        return [enc(t, c) for t, c in items]

    def encode_many(self, texts: list[str]) -> list[list[int] | None]:
        """The ids of many texts (None where :meth:`encode` refuses one), over :attr:`threads` threads."""
        items = [(t, ()) for t in texts]
        if self.threads <= 1 or len(items) < 64:
            res = self.encode_chunk(items)
        else:
            step = -(-len(items) // self.threads)
            with ThreadPoolExecutor(self.threads) as ex:
                res = [r for part in ex.map(self.encode_chunk, [items[i:i + step] for i in range(0, len(items), step)])
                       for r in part]
        return [r[0] if r is not None else None for r in res]


_bytes_to_unicode_cache: dict | None = None


def _unicode_to_bytes() -> dict[str, int]:
    """GPT-2's byte <-> printable-character table (``bytes_to_unicode`` in openai/gpt-2
    ``encoder.py``; the same table as ``tokenizers`` ByteLevel), inverted: char -> byte."""
    global _bytes_to_unicode_cache
    if _bytes_to_unicode_cache is None:
        bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\u00a1"), ord("\u00ac") + 1)) \
            + list(range(ord("\u00ae"), ord("\u00ff") + 1))
        cs = bs[:]
        n = 0
        for b in range(256):
            if b not in bs:
                bs.append(b)
                cs.append(256 + n)
                n += 1
        _bytes_to_unicode_cache = {chr(c): b for b, c in zip(bs, cs)}
    return _bytes_to_unicode_cache


def _structure_problem(cfg: dict, backend) -> str | None:
    """Why this tokenizer is not a plain GPT-2 style byte-level BPE (None when it is)."""
    if cfg.get("normalizer") is not None:
        return "the tokenizer has a normalizer"
    pre = cfg.get("pre_tokenizer") or {}
    if pre.get("type") != "ByteLevel" or pre.get("add_prefix_space") or not pre.get("use_regex", True):
        return f"pre-tokenizer {pre.get('type')} is not ByteLevel(add_prefix_space=False, use_regex=True)"
    model = cfg.get("model") or {}
    if model.get("type") != "BPE":
        return f"model {model.get('type')} is not BPE"
    if model.get("dropout") or model.get("continuing_subword_prefix") or model.get("end_of_word_suffix") \
            or model.get("byte_fallback"):
        return "BPE with dropout, subword prefix/suffix or byte fallback"
    if cfg.get("truncation") or cfg.get("padding") or getattr(backend, "truncation", None) \
            or getattr(backend, "padding", None):
        return "the backend tokenizer truncates or pads"
    if getattr(backend, "encode_special_tokens", False):
        return "the backend splits special tokens (encode_special_tokens)"
    added = cfg.get("added_tokens") or []
    for a in added:
        if a.get("lstrip") or a.get("rstrip") or a.get("single_word") or not a.get("content"):
            return f"added token {a.get('content')!r} strips or matches single words"
        if a.get("normalized") and not a.get("special") and cfg.get("normalizer") is not None:
            return "normalized added tokens"
    contents = [a["content"] for a in added]
    for x in contents:
        for y in contents:
            if x != y and y.startswith(x):
                return f"added token {x!r} is a prefix of {y!r}"
    return None


def _bpe_proof(cfg: dict, model_obj) -> tuple[dict[bytes, int] | None, str | None]:
    """Mergeable ranks (token bytes -> HF id) when conditions (a)-(c) of the module docstring
    hold, else ``(None, reason)``. (c) is checked with HF's own BPE model over every token."""
    from tokenizers import Tokenizer

    u2b = _unicode_to_bytes()
    model = cfg["model"]
    vocab: dict[str, int] = model["vocab"]
    added = {a["content"] for a in cfg.get("added_tokens") or []}
    table = {ord(ch): b for ch, b in u2b.items()}
    tb = {}
    for t in vocab:
        if t in added:
            continue
        raw = t.translate(table)  # byte-level characters -> chr(byte)
        try:
            tb[t] = raw.encode("latin-1")
        except UnicodeEncodeError:
            return None, f"vocab token {t!r} is not byte-level (characters outside GPT-2's byte table)"
    ranks: dict[bytes, int] = {}
    for t, by in tb.items():
        if by in ranks:
            return None, f"two vocab entries with the same bytes ({t!r})"
        ranks[by] = vocab[t]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    last, produced = -1, set()
    for a, b in merges:
        if a not in tb or b not in tb:
            return None, f"merge ({a!r}, {b!r}) names a token outside the vocab"
        t = tb[a] + tb[b]
        i = ranks.get(t)
        if i is None:
            return None, f"merge ({a!r}, {b!r}) yields no vocab token"
        if t in produced:
            return None, f"two merges yield {t!r} (condition a)"
        if i <= last:
            return None, "token ids do not increase with merge order (condition b)"
        produced.add(t)
        last = i
    for by in ranks:
        if len(by) > 1 and by not in produced:
            return None, f"token {by!r} is produced by no merge"
    # (c) self-reachability with HF's own BPE: a bare tokenizer (no normalizer, no
    # pre-tokenizer, no added tokens) over each token's byte-level string, in one Rust batch.
    bare_tok = Tokenizer(model_obj)
    names = [t for t in tb if len(tb[t]) > 1]
    got = bare_tok.encode(names, is_pretokenized=True, add_special_tokens=False).ids  # one word per token
    want = [vocab[t] for t in names]
    if got != want:
        bad = next((t for t, g, w in zip(names, got, want) if g != w), names[-1])
        return None, f"token {bad!r} is not reachable by its own merges (condition c)"
    return ranks, None


_PROOFS: dict[str, tuple[dict | None, str | None]] = {}
_ENCODERS: dict = {}
_LOCK = threading.Lock()


def fast_encoder_status(tokenizer, build: bool = True) -> tuple[FastEncoder | None, str]:
    """``(encoder, "ok")`` when the tiktoken path is proven equal for ``tokenizer`` (a
    transformers fast tokenizer), else ``(None, reason)``. Built once per tokenizer state
    (cached by the tokenizer object, its backend and its length; the proof by the SHA-256 of
    the backend's serialized form). Building takes about a second for a 49K vocabulary; with
    ``build=False`` only a cached result is returned (``(None, "not built")`` otherwise)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None, "not a fast (Rust-backed) tokenizer"
    key = (id(tokenizer), id(backend), len(tokenizer))
    with _LOCK:
        hit = _ENCODERS.get(key)
        if hit is not None and hit[0]() is tokenizer and hit[1]() is backend:
            enc, why = hit[2], hit[3]
            # settings that change without changing the length are re-checked each time
            if enc is not None and (backend.truncation or backend.padding
                                    or getattr(backend, "encode_special_tokens", False)):
                return None, "the backend tokenizer truncates, pads or splits special tokens"
            return enc, why
        if not build:
            return None, "not built"
        enc, why = _build(tokenizer, backend)
        try:
            while len(_ENCODERS) >= 4:  # a few tokenizers (training and serving) without rebuilding
                _ENCODERS.pop(next(iter(_ENCODERS)))
            _ENCODERS[key] = (weakref.ref(tokenizer), weakref.ref(backend), enc, why)
        except TypeError:  # not weak-referenceable: do not cache
            pass
        return enc, why


def fast_encoder(tokenizer, build: bool = True) -> FastEncoder | None:
    """The proven :class:`FastEncoder` for ``tokenizer``, or None (see :func:`fast_encoder_status`)."""
    return fast_encoder_status(tokenizer, build)[0]


def _build(tokenizer, backend) -> tuple[FastEncoder | None, str]:
    try:
        import tiktoken
    except ImportError:
        return None, "tiktoken is not installed"
    text = backend.to_str()
    cfg = json.loads(text)
    why = _structure_problem(cfg, backend)
    if why:
        return None, why
    digest = hashlib.sha256(text.encode()).hexdigest()
    if digest not in _PROOFS:
        while len(_PROOFS) >= 4:
            _PROOFS.pop(next(iter(_PROOFS)))
        _PROOFS[digest] = _bpe_proof(cfg, backend.model)
    ranks, why = _PROOFS[digest]
    if ranks is None:
        return None, why
    ranks = dict(ranks)
    n_vocab = max(max(ranks.values()), max((a["id"] for a in cfg.get("added_tokens") or []), default=0)) + 1
    for b in range(256):  # bytes the vocab lacks: ids past the vocab, refused per text by encode()
        ranks.setdefault(bytes([b]), n_vocab + b)
    specials = {a["content"]: a["id"] for a in cfg.get("added_tokens") or []}
    if set(specials.values()) & set(ranks.values()):
        return None, "an added token shares its id with a vocab token"
    encoding = tiktoken.Encoding(f"wb-{digest[:12]}", pat_str=FAST_PATTERN, mergeable_ranks=ranks,
                                 special_tokens=specials)
    byte_len = np.zeros(max(max(ranks.values()), max(specials.values(), default=0)) + 1, dtype=np.int64)
    for by, i in ranks.items():
        byte_len[i] = len(by)
    for s, i in specials.items():
        byte_len[i] = len(s.encode("utf-8"))
    fe = FastEncoder(encoding, byte_len, n_vocab, digest, specials)
    for probe in PROBE_TEXTS:
        want = backend.encode(probe, add_special_tokens=False).ids
        got = fe.encode(probe)
        if got is None or got[0] != want:
            return None, f"probe mismatch on {probe[:40]!r}"
    return fe, "ok"
