"""Seeded random multilingual texts and the token ids PyLate gives them, per fixture.

Run once (Python 3 with `tokenizers` 0.23, the Rust library PyLate and NextPlaid run):
    python3 test/fixtures-tokenizer/generate.py
It writes expected.json beside this file; the tests read it and need no Python.

PyLate's tokenize, written out with the Rust library: sentence-transformers strips the text
(Python str.strip) and lower-cases it when do_lower_case; the tokenizer (the source tokenizer.json
with each non-empty prefix added as a normal, normalized token, as transformers' add_tokens does)
encodes it with special tokens, truncated to length - 1 (to length when the prefix is empty);
the prefix id goes in at position 1; expanded queries are padded with the mask id to the length,
attention 0 there.
"""
import json
import os
import random

from tokenizers import AddedToken, Tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "fixtures")
SEED = 20261129
N_TEXTS = 160

# Pieces of many scripts and of the characters where tokenizers' notions of text differ.
WORDS = [
    "retrieval", "late", "interaction", "ColBERT", "PLAID", "token", "Paris", "naïve", "café", "Straße",
    "東京", "北京大学", "日本語のテキスト", "한국어", "국", "ス", "カタカナ", "中文分词测试",
    "العربية", "مرحبا بالعالم", "हिन्दी", "नमस्ते", "ไทย", "Ελληνικά", "ΣΑΣ", "русский", "עברית",
    "👩‍👩‍👧‍👦", "👍🏽", "🏳️‍🌈", "❤️", "🇫🇷", "e\u0301", "a\u0308\u0323", "Ａｂｃ１２３", "ｶﾀｶﾅ", "ﬁ", "Å", "Ⅻ",
    "x²", "½", "İstanbul", "ǅ", "ß", "ŉ", "[MASK]", "<mask>", "[Q] ", "[D] ", "[unused0]", "[UNK]",
    "don't", "e-mail", "U.S.A.", "3.14", "$100", "#tag", "@user", "http://x.y/z?a=1", "...", "—", "«»",
]
ODD = [
    "\ufeff", "\u200b", "\u200c", "\u200d", "\u2060", "\u00ad", "\u0085", "\u001c", "\u001d", "\u001e", "\u001f",
    "\u0000", "\u0001", "\u0007", "\u007f", "\u0009", "\u000b", "\u000c", "\r\n", "\n", "\u00a0", "\u1680",
    "\u2003", "\u2028", "\u2029", "\u202f", "\u3000", "\u180e", "\ud7ff", "\ue000", "\U0001f600", "\u0301",
]
FIXED = [
    "", " ", "\ufeff", "\u0085", "\u001c a \u001f", "\ufeff leading BOM", "trailing BOM \ufeff", "국 \ufeff ス",
    "\u00a0nbsp\u00a0", "\u3000全角\u3000", "zero\u200bwidth\u200djoin", "[MASK] [MASK]", "ends with [MASK]",
    "ΣΑΣ ΟΔΟΣ", "İI ı", "\t\n tabs \r\n",
]


def random_text(rng: random.Random) -> str:
    n = rng.choice([1, 2, 3, 5, 8, 13, 40, 120, 250])
    parts = []
    for _ in range(n):
        r = rng.random()
        if r < 0.6:
            parts.append(rng.choice(WORDS))
        elif r < 0.85:
            parts.append(rng.choice(ODD))
        else:
            parts.append("".join(chr(rng.randint(0x20, 0x2FFF)) for _ in range(rng.randint(1, 4))).replace("\ud800", ""))
        parts.append(rng.choice([" ", " ", " ", "", "  ", "\u00a0", "\n"]))
    text = "".join(parts)
    # Surrogate code points cannot be encoded as UTF-8 (nor sent as JSON text).
    return "".join(c for c in text if not 0xD800 <= ord(c) < 0xE000)


def pylate_tokenizer(fixture: str, prefixes: list[str]) -> Tokenizer:
    tok = Tokenizer.from_file(os.path.join(FIXTURES, fixture, "model", "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    vocab = tok.get_vocab(with_added_tokens=True)
    new = [p for p in prefixes if p and p not in vocab]
    for p in dict.fromkeys(new):
        tok.add_tokens([AddedToken(p, single_word=False, lstrip=False, rstrip=False, normalized=True, special=False)])
    return tok


def pylate_ids(tok: Tokenizer, text: str, prefix_id, length: int, lower: bool, query_pad) -> dict:
    text = text.strip()
    if lower:
        text = text.lower()
    tok.enable_truncation(length - 1 if prefix_id is not None else length)
    enc = tok.encode(text, add_special_tokens=True)
    tok.no_truncation()
    ids = list(enc.ids)
    if prefix_id is not None:
        ids.insert(1, prefix_id)
    mask = [1] * len(ids)
    if query_pad is not None:
        while len(ids) < length:
            ids.append(query_pad)
            mask.append(0)
    return {"ids": ids, "mask": mask}


# name → (fixture, prefixes or None for the fixture's own, do_lower_case)
CASES = {
    "bert-tiny-colbert": ("bert-tiny-colbert", None, False),
    "modernbert-tiny-colbert": ("modernbert-tiny-colbert", None, False),
    "stanford-colbert-tiny": ("stanford-colbert-tiny", None, False),
    "xlmr-tiny-colbert": ("xlmr-tiny-colbert", None, False),
    "bert-tiny-colbert+lower": ("bert-tiny-colbert", None, True),
    "xlmr-tiny-colbert+noprefix": ("xlmr-tiny-colbert", ("", ""), False),
    "modernbert-tiny-colbert+noprefix": ("modernbert-tiny-colbert", ("", ""), False),
}


def main() -> None:
    rng = random.Random(SEED)
    texts = FIXED + [random_text(rng) for _ in range(N_TEXTS - len(FIXED))]
    out = {"seed": SEED, "texts": texts, "cases": {}}
    for name, (fixture, prefixes, lower) in CASES.items():
        with open(os.path.join(FIXTURES, fixture, "expected.json")) as f:
            cfg = json.load(f)["pylate_config"]
        qp, dp = prefixes if prefixes else (cfg["query_prefix"], cfg["document_prefix"])
        tok = pylate_tokenizer(fixture, [qp, dp])
        qid = tok.token_to_id(qp) if qp else None
        did = tok.token_to_id(dp) if dp else None
        if not prefixes:
            assert (qid, did) == (cfg["query_prefix_id"], cfg["document_prefix_id"]), (name, qid, did)
        mask_id = cfg["mask_token_id"]
        case = {
            "fixture": fixture,
            "query_prefix": qp,
            "document_prefix": dp,
            "do_lower_case": lower,
            "queries": [pylate_ids(tok, t, qid, cfg["query_length"], lower, mask_id) for t in texts],
            "documents": [pylate_ids(tok, t, did, cfg["document_length"], lower, None) for t in texts],
        }
        out["cases"][name] = case
    with open(os.path.join(HERE, "expected.json"), "w") as f:
        json.dump(out, f, ensure_ascii=True, separators=(",", ":"))


if __name__ == "__main__":
    main()
