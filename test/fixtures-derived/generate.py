"""
Derived test checkpoints for cases the shared fixtures do not show, with the expected ONNX output
computed by PyTorch + transformers (the same stack PyLate runs on). Run once, offline:
    python3 test/fixtures-derived/generate.py
Needs torch, transformers and safetensors; the test suite itself never needs Python.
Each case: <case>/model/ (a checkpoint folder) and <case>/expected.json with `raw_batch`
(input_ids, attention_mask, optional token_type_ids, output = normalised [batch, seq, dim]).
"""
import json
import shutil
from pathlib import Path

import torch
import transformers
from safetensors.torch import load_file, save_file

HERE = Path(__file__).parent
FIXTURES = HERE.parent / "fixtures"
torch.manual_seed(0)


def copy_fixture(name, case):
    dst = HERE / case / "model"
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(FIXTURES / name / "model", dst)
    for p in dst.rglob("*"):
        p.chmod(0o644 if p.is_file() else 0o755)
    return dst


def edit_json(path, fn):
    data = json.loads(path.read_text())
    data = fn(data) or data
    path.write_text(json.dumps(data, indent=2))


def dense_forward(model_dir, x):
    modules = json.loads((model_dir / "modules.json").read_text())
    for m in modules:
        if not m["type"].endswith("Dense"):
            continue
        d = model_dir / m["path"]
        cfg = json.loads((d / "config.json").read_text())
        w = load_file(d / "model.safetensors")
        y = x @ w["linear.weight"].T
        if "linear.bias" in w:
            y = y + w["linear.bias"]
        act = cfg["activation_function"].split(".")[-1]
        y = {"Identity": lambda t: t, "Tanh": torch.tanh, "ReLU": torch.relu, "GELU": torch.nn.functional.gelu}[act](y)
        if cfg.get("use_residual"):
            y = y + (x @ w["residual.weight"].T if "residual.weight" in w else x)
        x = y
    return x


def expected_for(case, fixture, model_dir, backbone_dir=None, token_types=True):
    raw = json.loads((FIXTURES / fixture / "expected.json").read_text())["raw_batch"]
    backbone_dir = backbone_dir or model_dir
    model = transformers.AutoModel.from_pretrained(str(backbone_dir), attn_implementation="sdpa").eval()
    ids = torch.tensor(raw["input_ids"])
    mask = torch.tensor(raw["attention_mask"])
    kwargs = {"input_ids": ids, "attention_mask": mask}
    if "token_type_ids" in raw and token_types:
        kwargs["token_type_ids"] = torch.tensor(raw["token_type_ids"])
    with torch.no_grad():
        h = model(**kwargs).last_hidden_state.float()
        out = torch.nn.functional.normalize(dense_forward(model_dir, h), p=2, dim=-1)
    batch = {k: raw[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in raw and (token_types or k != "token_type_ids")}
    batch["output"] = [[[float(f"{v:.7g}") for v in row] for row in seq] for seq in out.tolist()]
    (HERE / case / "expected.json").write_text(json.dumps({"fixture": case, "derived_from": fixture, "raw_batch": batch}))


def random_backbone(case, config):
    """The BERT fixture's tokenizer, Dense and settings around a freshly initialised backbone."""
    d = copy_fixture("bert-tiny-colbert", case)
    d.joinpath("model.safetensors").unlink()
    transformers.AutoModel.from_config(config).save_pretrained(str(d))
    return d



def main():
    # 1. BERT with the tanh-approximated GELU.
    d = copy_fixture("bert-tiny-colbert", "bert-gelu-new")
    edit_json(d / "config.json", lambda c: c.update(hidden_act="gelu_new"))
    expected_for("bert-gelu-new", "bert-tiny-colbert", d)

    # 2. ModernBERT, newer config spelling (layer_types + rope_parameters), irregular layer pattern,
    #    distinct thetas and a narrower window than the fixture.
    d = copy_fixture("modernbert-tiny-colbert", "modernbert-layer-types")
    def v5(c):
        for k in ("global_attn_every_n_layers", "global_rope_theta", "local_rope_theta"):
            c.pop(k, None)
        c["layer_types"] = ["full_attention", "sliding_attention", "sliding_attention", "full_attention"]
        c["rope_parameters"] = {
            "full_attention": {"rope_type": "default", "rope_theta": 80000.0},
            "sliding_attention": {"rope_type": "default", "rope_theta": 5000.0},
        }
        c["local_attention"] = 8
    edit_json(d / "config.json", v5)
    expected_for("modernbert-layer-types", "modernbert-tiny-colbert", d)

    # 3. ModernBERT, older spelling with global_attn_every_n_layers=3 and its own thetas.
    d = copy_fixture("modernbert-tiny-colbert", "modernbert-every-3")
    edit_json(d / "config.json", lambda c: c.update(global_attn_every_n_layers=3, local_attention=6, global_rope_theta=20000.0, local_rope_theta=500.0))
    expected_for("modernbert-every-3", "modernbert-tiny-colbert", d)

    # 4. Three Dense layers: the fixture's, then 16→8 with bias, Tanh and a residual projection, then
    #    8→8 with bias, ReLU and an identity residual.
    d = copy_fixture("bert-tiny-colbert", "bert-three-dense")
    modules = json.loads((d / "modules.json").read_text())
    for idx, (inf, outf, act) in ((2, (16, 8, "torch.nn.modules.activation.Tanh")), (3, (8, 8, "torch.nn.modules.activation.ReLU"))):
        path = d / f"{idx}_Dense"
        path.mkdir()
        cfg = {"in_features": inf, "out_features": outf, "bias": True, "activation_function": act, "use_residual": True}
        (path / "config.json").write_text(json.dumps(cfg, indent=2))
        tensors = {"linear.weight": torch.randn(outf, inf) * 0.5, "linear.bias": torch.randn(outf) * 0.1}
        if inf != outf:
            tensors["residual.weight"] = torch.randn(outf, inf) * 0.5
        save_file(tensors, path / "model.safetensors")
        modules.append({"idx": idx, "name": str(idx), "path": f"{idx}_Dense", "type": "pylate.models.Dense.Dense"})
    (d / "modules.json").write_text(json.dumps(modules, indent=2))
    expected_for("bert-three-dense", "bert-tiny-colbert", d)

    # 5. XLM-R with its backbone weights stored as bfloat16 (the expected output uses the bf16 values).
    d = copy_fixture("xlmr-tiny-colbert", "xlmr-bf16")
    w = load_file(d / "model.safetensors")
    save_file({k: v.to(torch.bfloat16) for k, v in w.items()}, d / "model.safetensors")
    edit_json(d / "config.json", lambda c: c.update(dtype="bfloat16"))
    ref = HERE / "xlmr-bf16" / "reference"
    shutil.copytree(d, ref)
    save_file({k: v.to(torch.bfloat16).float() for k, v in w.items()}, ref / "model.safetensors")
    edit_json(ref / "config.json", lambda c: c.update(dtype="float32"))
    expected_for("xlmr-bf16", "xlmr-tiny-colbert", d, ref)
    shutil.rmtree(ref)

    # 6. DistilBERT (no token types, other module names).
    torch.manual_seed(6)
    d = random_backbone("distilbert-tiny", transformers.DistilBertConfig(vocab_size=3002, dim=32, n_heads=2, n_layers=2, hidden_dim=64, max_position_embeddings=512))
    expected_for("distilbert-tiny", "bert-tiny-colbert", d, token_types=False)

    # 7. ELECTRA with embedding_size 16 < hidden 32 (embeddings_project).
    torch.manual_seed(7)
    d = random_backbone("electra-tiny", transformers.ElectraConfig(vocab_size=3002, embedding_size=16, hidden_size=32, num_attention_heads=2, num_hidden_layers=2, intermediate_size=64))
    expected_for("electra-tiny", "bert-tiny-colbert", d)
    print("transformers", transformers.__version__, "torch", torch.__version__)


if __name__ == "__main__":
    main()
