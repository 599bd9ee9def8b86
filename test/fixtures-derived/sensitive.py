"""Sensitive variants of the fixtures: the tiny random weights keep activations near zero, where
details vanish (erf GELU vs its tanh approximation, LayerNorm eps, RoPE thetas, the sliding window
all move the output by less than the parity tolerance). Scaling the attention projections and the
feed-forward input weights makes activations O(1), so each detail moves the output clearly.

Run once, offline (torch, transformers, safetensors):
    python3 test/fixtures-derived/sensitive.py
Each case: <case>/model/ and <case>/expected.json (raw_batch output computed by PyTorch +
transformers, as generate.py does). It also writes sensitive-mutations.json: for each detail, the
config edit that gets it wrong and how far PyTorch itself moves with that edit (checked here to be
at least 10x the parity tolerance, so the test's mutation controls can only pass on a real miss).
"""
import importlib.util
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

HERE = Path(__file__).parent
spec = importlib.util.spec_from_file_location("derived_generate", HERE / "generate.py")
g = importlib.util.module_from_spec(spec)
spec.loader.exec_module(g)

TOLERANCE = 2e-6
SCALE = 12.0

# fixture, case, tensor-name fragments to scale, config edits for the case itself
CASES = {
    "bert-sensitive": ("bert-tiny-colbert", ["attention.self.query", "attention.self.key", "attention.self.value", "intermediate.dense"], {}),
    "bert-sensitive-gelu-new": ("bert-tiny-colbert", ["attention.self.query", "attention.self.key", "attention.self.value", "intermediate.dense"], {"hidden_act": "gelu_new"}),
    "xlmr-sensitive": ("xlmr-tiny-colbert", ["attention.self.query", "attention.self.key", "attention.self.value", "intermediate.dense"], {}),
    "modernbert-sensitive": ("modernbert-tiny-colbert", ["attn.Wqkv", "mlp.Wi"], {"local_attention": 8}),
}

# case → [(what, config edit that gets the detail wrong)]
MUTATIONS = {
    "bert-sensitive": [
        ("hidden_act gelu (erf) read as gelu_new", {"hidden_act": "gelu_new"}),
        ("hidden_act gelu read as gelu_pytorch_tanh", {"hidden_act": "gelu_pytorch_tanh"}),
        ("layer_norm_eps 1e-12 read as 1e-5", {"layer_norm_eps": 1e-5}),
    ],
    "bert-sensitive-gelu-new": [("hidden_act gelu_new read as gelu (erf)", {"hidden_act": "gelu"})],
    "xlmr-sensitive": [
        ("layer_norm_eps 1e-12 read as 1e-5", {"layer_norm_eps": 1e-5}),
        ("hidden_act gelu read as gelu_new", {"hidden_act": "gelu_new"}),
    ],
    "modernbert-sensitive": [
        ("global_rope_theta halved", {"global_rope_theta": None}),
        ("local_rope_theta doubled", {"local_rope_theta": None}),
        ("local_attention window 8 read as 16", {"local_attention": 16}),
        ("norm_eps 1e-5 read as 1e-12", {"norm_eps": 1e-12}),
    ],
}


def scale_weights(model_dir, fragments):
    path = model_dir / "model.safetensors"
    w = load_file(path)
    for k in w:
        if any(f in k for f in fragments) and k.endswith("weight"):
            w[k] = w[k] * SCALE
    save_file(w, path)


def output_for(model_dir, fixture, token_types):
    raw = json.loads((g.FIXTURES / fixture / "expected.json").read_text())["raw_batch"]
    model = g.transformers.AutoModel.from_pretrained(str(model_dir), attn_implementation="sdpa").eval()
    kwargs = {"input_ids": torch.tensor(raw["input_ids"]), "attention_mask": torch.tensor(raw["attention_mask"])}
    if "token_type_ids" in raw and token_types:
        kwargs["token_type_ids"] = torch.tensor(raw["token_type_ids"])
    with torch.no_grad():
        h = model(**kwargs).last_hidden_state.float()
        return torch.nn.functional.normalize(g.dense_forward(model_dir, h), p=2, dim=-1), torch.tensor(raw["attention_mask"])


def main():
    report = {"tolerance": TOLERANCE, "cases": {}}
    for case, (fixture, fragments, edits) in CASES.items():
        d = g.copy_fixture(fixture, case)
        scale_weights(d, fragments)
        if edits:
            g.edit_json(d / "config.json", lambda c: c.update(edits))
        g.expected_for(case, fixture, d)
        right, mask = output_for(d, fixture, True)
        config = json.loads((d / "config.json").read_text())
        rows = []
        for what, edit in MUTATIONS[case]:
            edit = dict(edit)
            for k, v in edit.items():
                if v is None:  # thetas: a value relative to the case's own
                    edit[k] = config[k] / 2 if k == "global_rope_theta" else config[k] * 2
            wrong_dir = HERE / case / "mutant"
            import shutil

            shutil.copytree(d, wrong_dir)
            g.edit_json(wrong_dir / "config.json", lambda c: c.update(edit))
            wrong, _ = output_for(wrong_dir, fixture, True)
            shutil.rmtree(wrong_dir)
            moved = ((wrong - right).abs().amax(-1) * mask).max().item()
            assert moved >= 10 * TOLERANCE, f"{case}: {what} moves the output by only {moved}"
            rows.append({"what": what, "config": edit, "pytorch_moves_by": moved})
            print(f"{case}: {what}: PyTorch output moves by {moved:.2e}")
        report["cases"][case] = {"fixture": fixture, "scaled": fragments, "scale": SCALE, "mutations": rows}
    (HERE / "sensitive-mutations.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
