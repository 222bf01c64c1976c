"""T5 GGUFs as llama.cpp's convert_hf_to_gguf.py writes them (arch "t5"), to and from tools/demo-models/t5.py
and Hugging Face state dicts, with llama.cpp's gguf-py (~/.cache/capforge/deps/llama.cpp/gguf-py)."""
import sys
from pathlib import Path

import numpy as np
import torch

import t5


def gguf_module(llama_dir):
    sys.path.insert(0, str(Path(llama_dir) / "gguf-py"))
    import gguf
    return gguf


def round_f16(model):
    """The shipped weights: matrices through f16 (as in the GGUF), norms kept f32."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 2:
                p.copy_(p.half().float())


def export_gguf(model, cfg, vocab_gguf, path, llama_dir, name="capforge demo caption repairer"):
    """convert_hf_to_gguf.py's T5Model output: its keys, tensor names (TensorNameMap) and types
    (f16 matrices, f32 1-D tensors); tokenizer.* keys copied from the vocab GGUF."""
    gguf = gguf_module(llama_dir)
    arch = gguf.MODEL_ARCH.T5
    w = gguf.GGUFWriter(str(path), gguf.MODEL_ARCH_NAMES[arch])
    w.add_type(gguf.GGUFType.MODEL)
    w.add_name(name)
    w.add_context_length(512)
    w.add_embedding_length(cfg.d_model)
    w.add_feed_forward_length(cfg.d_ff)
    w.add_block_count(cfg.num_layers)
    w.add_decoder_block_count(cfg.num_decoder_layers)
    w.add_head_count(cfg.num_heads)
    w.add_key_length(cfg.d_kv)
    w.add_value_length(cfg.d_kv)
    w.add_layer_norm_eps(cfg.layer_norm_epsilon)
    w.add_relative_attn_buckets_count(cfg.relative_attention_num_buckets)
    w.add_layer_norm_rms_eps(cfg.layer_norm_epsilon)
    w.add_decoder_start_token_id(cfg.decoder_start_token_id)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    r = gguf.GGUFReader(str(vocab_gguf))
    for f in r.fields.values():
        if not f.name.startswith("tokenizer."):
            continue
        vtype = f.types[0]
        if vtype == gguf.GGUFValueType.ARRAY:
            sub = f.types[-1]
            if sub == gguf.GGUFValueType.STRING:
                val = [bytes(f.parts[i]) for i in f.data]
            else:
                val = [f.parts[i].tolist()[0] for i in f.data]
            w.add_key_value(f.name, val, vtype, sub_type=sub)
        elif vtype == gguf.GGUFValueType.STRING:
            w.add_key_value(f.name, bytes(f.parts[-1]).decode(), vtype)
        else:
            w.add_key_value(f.name, f.parts[-1].tolist()[0], vtype)
    names = gguf.get_tensor_name_map(arch, max(cfg.num_layers, cfg.num_decoder_layers))
    for hf, t in model.state_dict().items():
        new = names.get_name(hf, try_suffixes=(".weight",))
        assert new, hf
        a = t.detach().float().numpy()
        w.add_tensor(new, a if a.ndim <= 1 or new.endswith("_norm.weight") else a.astype(np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def read_gguf(path, llama_dir):
    """A T5 GGUF as (t5.T5Config, {HF tensor name: f32 torch tensor}); F32, F16 and quantized
    tensors (dequantized by gguf-py). Tied (no output.weight): no lm_head.weight."""
    gguf = gguf_module(llama_dir)
    r = gguf.GGUFReader(str(path))
    kv = {f.name: f.contents() for f in r.fields.values() if not f.name.startswith("tokenizer.")}
    if kv.get("general.architecture") != "t5":
        raise ValueError(f"{path}: not a t5 GGUF")
    tensors = {t.name: t for t in r.tensors}
    cfg = t5.T5Config(vocab_size=len(r.fields["tokenizer.ggml.tokens"].data), d_model=kv["t5.embedding_length"],
                      d_kv=kv["t5.attention.key_length"], d_ff=kv["t5.feed_forward_length"],
                      num_layers=kv["t5.block_count"], num_decoder_layers=kv.get("t5.decoder_block_count",
                                                                                 kv["t5.block_count"]),
                      num_heads=kv["t5.attention.head_count"],
                      layer_norm_epsilon=kv.get("t5.attention.layer_norm_rms_epsilon", 1e-6),
                      relative_attention_num_buckets=kv.get("t5.attention.relative_buckets_count", 32),
                      tie_word_embeddings="output.weight" not in tensors,
                      gated_gelu="enc.blk.0.ffn_gate.weight" in tensors,
                      decoder_start_token_id=kv.get("t5.decoder_start_token_id", 0))
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.T5, max(cfg.num_layers, cfg.num_decoder_layers))
    sd = {}
    for hf, p in t5.T5(t5.T5Config(**{**cfg.__dict__, "vocab_size": 1})).state_dict().items():
        t = tensors[names.get_name(hf, try_suffixes=(".weight",))]
        shape = [int(x) for x in reversed(t.shape)]
        a = gguf.quants.dequantize(t.data, t.tensor_type) if t.tensor_type not in (
            gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16) else t.data
        sd[hf] = torch.from_numpy(np.asarray(a, dtype=np.float32).reshape(shape).copy())
    if not cfg.tie_word_embeddings:
        t = tensors["output.weight"]
        a = gguf.quants.dequantize(t.data, t.tensor_type)
        sd["lm_head.weight"] = torch.from_numpy(np.asarray(a, dtype=np.float32).reshape(
            [int(x) for x in reversed(t.shape)]).copy())
    return cfg, sd


def load_gguf(path, llama_dir):
    """A T5 GGUF as a t5.T5 (eval mode, f32)."""
    cfg, sd = read_gguf(path, llama_dir)
    model = t5.T5(cfg)
    model.load_state_dict(sd)
    return model.eval()
