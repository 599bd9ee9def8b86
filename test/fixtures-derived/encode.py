"""PyLate's encode() on settings the PyLate fixtures do not show, computed with PyTorch +
transformers (the stack PyLate runs on) and the Rust tokenizers library. Run once, offline:
    python3 test/fixtures-derived/encode.py
Writes encode-cases.json beside this file; the test suite never needs Python.

Cases: prefix-free models (PyLate reserves no slot for an empty prefix: truncation to the full
length), query expansion off (queries like documents, no skiplist), attend_to_expansion_tokens on
(the whole query attended). Encode follows pylate/models/colbert.py: tokenize (the rules written
out in ../fixtures-tokenizer/generate.py), forward, every Dense layer, then the rows PyLate keeps
(documents: attended and not in the skiplist; expanded queries: all; other queries: attended),
each L2-normalised. Checked once: with each fixture's own settings this pipeline reproduces the
PyLate fixtures' input_ids exactly and their embeddings within 2.4e-7.
"""
import importlib.util
import json
from pathlib import Path

import torch
import transformers

HERE = Path(__file__).parent
FIXTURES = HERE.parent / "fixtures"


def load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


derived = load("derived_generate", HERE / "generate.py")
tokenization = load("tokenizer_generate", HERE.parent / "fixtures-tokenizer" / "generate.py")

# name → (fixture, settings over the fixture's own)
CASES = {
    "xlmr-noprefix": ("xlmr-tiny-colbert", {"query_prefix": "", "document_prefix": ""}),
    "modernbert-noprefix": ("modernbert-tiny-colbert", {"query_prefix": "", "document_prefix": ""}),
    "bert-expansion-off": ("bert-tiny-colbert", {"do_query_expansion": False}),
    "bert-attend-expansion": ("bert-tiny-colbert", {"attend_to_expansion_tokens": True}),
}


def texts_for(fixture):
    exp = json.loads((FIXTURES / fixture / "expected.json").read_text())
    fuzz = json.loads((HERE.parent / "fixtures-tokenizer" / "expected.json").read_text())["texts"]
    # The fixture's own texts, then random multilingual ones, long ones included (truncation).
    return [q["text"] for q in exp["queries"]], [d["text"] for d in exp["documents"]] + fuzz[16:40]


def main():
    out = {"torch": torch.__version__, "transformers": transformers.__version__, "cases": {}}
    for case, (fixture, overrides) in CASES.items():
        cfg = json.loads((FIXTURES / fixture / "expected.json").read_text())["pylate_config"]
        s = {**cfg, **overrides}
        model_dir = FIXTURES / fixture / "model"
        tok = tokenization.pylate_tokenizer(fixture, [s["query_prefix"], s["document_prefix"]])
        qid = tok.token_to_id(s["query_prefix"]) if s["query_prefix"] else None
        did = tok.token_to_id(s["document_prefix"]) if s["document_prefix"] else None
        model = transformers.AutoModel.from_pretrained(str(model_dir), attn_implementation="sdpa").eval()
        tok_model = json.loads((model_dir / "tokenizer.json").read_text())["model"]
        unk = tok_model["unk_id"] if tok_model.get("unk_id") is not None else tok.token_to_id(tok_model.get("unk_token") or "")
        skiplist = {tok.token_to_id(w) if tok.token_to_id(w) is not None else unk for w in s["skiplist_words"]}
        queries, documents = texts_for(fixture)

        def encode(text, is_query):
            expand = is_query and s["do_query_expansion"]
            t = tokenization.pylate_ids(
                tok, text, qid if is_query else did, s["query_length"] if is_query else s["document_length"], False, cfg["mask_token_id"] if expand else None
            )
            ids = torch.tensor([t["ids"]])
            mask = torch.tensor([t["mask"]])
            if is_query and s["attend_to_expansion_tokens"]:
                mask = torch.ones_like(mask)
            kwargs = {"input_ids": ids, "attention_mask": mask}
            if cfg["uses_token_type_ids"]:
                kwargs["token_type_ids"] = torch.zeros_like(ids)
            with torch.no_grad():
                h = model(**kwargs).last_hidden_state.float()
                y = derived.dense_forward(model_dir, h)[0]
            if expand:
                keep = torch.ones(ids.shape[1], dtype=torch.bool)
            elif is_query:
                keep = mask[0].bool()
            else:
                keep = mask[0].bool() & torch.tensor([i not in skiplist for i in t["ids"]])
            rows = torch.nn.functional.normalize(y[keep], p=2, dim=1)
            return {"text": text, "input_ids": t["ids"], "embeddings": [[float(f"{v:.7g}") for v in r] for r in rows.tolist()]}

        out["cases"][case] = {
            "fixture": fixture,
            "settings": overrides,
            "queries": [encode(q, True) for q in queries],
            "documents": [encode(d, False) for d in documents],
        }
    (HERE / "encode-cases.json").write_text(json.dumps(out, separators=(",", ":")))


if __name__ == "__main__":
    main()
