"""Writes the trained models in their published formats: a Hugging Face CLIP dir (safetensors)
and a LLaVA-style text GGUF + mmproj GGUF (gguf-py from the llama.cpp source)."""
import json
import struct
from pathlib import Path

import numpy as np

MEAN = [0.48145466, 0.4578275, 0.40821073]
STD = [0.26862954, 0.26130258, 0.27577711]


def write_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr)
        dtype = {"float16": "F16", "float32": "F32"}[str(arr.dtype)]
        b = arr.tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    """{name: numpy array} of a safetensors file (F16, F32; as write_safetensors writes)."""
    raw = Path(path).read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, v in header.items():
        if name == "__metadata__":
            continue
        dt = {"F16": np.float16, "F32": np.float32}[v["dtype"]]
        b, e = v["data_offsets"]
        out[name] = np.frombuffer(raw[8 + n + b:8 + n + e], dt).reshape(v["shape"]).copy()
    return out


def half(t):
    a = t.detach().float().numpy()
    return a.astype(np.float16) if a.ndim >= 2 else a.astype(np.float32)


def save_clip(model, cfg, tokenizer_dir, out):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: half(v) for k, v in model.state_dict().items()}
    tensors["logit_scale"] = model.logit_scale.detach().float().numpy().reshape(())
    write_safetensors(out / "model.safetensors", tensors)
    (out / "config.json").write_text(json.dumps(cfg, indent=2))
    s = cfg["vision_config"]["image_size"]
    (out / "preprocessor_config.json").write_text(json.dumps({
        "crop_size": {"height": s, "width": s}, "do_center_crop": True, "do_normalize": True, "do_resize": True,
        "image_mean": MEAN, "image_std": STD, "resample": 3, "size": {"shortest_edge": s}}, indent=2))
    for f in ("vocab.json", "merges.txt"):
        (out / f).write_bytes((Path(tokenizer_dir) / f).read_bytes())


def save_llava(cap, vocab, text_path, mmproj_path, gguf, chat_template, context=512):
    llm = cap.llm
    d = llm.tok.weight.shape[1]
    heads = llm.heads
    w = gguf.GGUFWriter(str(text_path), "llama")
    w.add_name("capforge demo captioner")
    w.add_context_length(context)
    w.add_embedding_length(d)
    w.add_block_count(len(llm.blocks))
    w.add_feed_forward_length(llm.blocks[0].up.weight.shape[0])
    w.add_head_count(heads)
    w.add_head_count_kv(heads)
    w.add_rope_dimension_count(d // heads)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(1)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")
    w.add_token_list(vocab.tokens)
    w.add_token_types(vocab.token_types())
    w.add_token_merges([f"{a} {b}" for a, b in vocab.merges])
    w.add_bos_token_id(vocab.special_ids["<|endoftext|>"])
    w.add_eos_token_id(vocab.special_ids["<|im_end|>"])
    w.add_add_bos_token(False)
    w.add_chat_template(chat_template)
    w.add_tensor("token_embd.weight", half(llm.tok.weight))
    for i, b in enumerate(llm.blocks):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", half(b.attn_norm))
        w.add_tensor(p + "ffn_norm.weight", half(b.ffn_norm))
        for n, m in (("attn_q", b.q), ("attn_k", b.k), ("attn_v", b.v), ("attn_output", b.o), ("ffn_gate", b.gate),
                     ("ffn_up", b.up), ("ffn_down", b.down)):
            w.add_tensor(p + n + ".weight", half(m.weight))
    w.add_tensor("output_norm.weight", half(llm.norm))
    w.add_tensor("output.weight", half(llm.out.weight))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    v = cap.vision
    sd = {k: t for k, t in v.state_dict().items()}
    D = v.embeddings.class_embedding.shape[0]
    P = v.embeddings.patch_embedding.weight.shape[-1]
    L = len(v.encoder.layers)
    npos = v.embeddings.position_embedding.weight.shape[0]
    m = gguf.GGUFWriter(str(mmproj_path), "clip")
    m.add_bool("clip.has_vision_encoder", True)
    m.add_string("clip.projector_type", "mlp")
    m.add_bool("clip.use_gelu", False)  # quick_gelu, as trained
    m.add_uint32("clip.vision.image_size", int(round((npos - 1) ** 0.5)) * P)
    m.add_uint32("clip.vision.patch_size", P)
    m.add_uint32("clip.vision.embedding_length", D)
    m.add_uint32("clip.vision.feed_forward_length", v.encoder.layers[0].mlp.fc1.weight.shape[0])
    m.add_uint32("clip.vision.block_count", L)
    m.add_uint32("clip.vision.attention.head_count", v.encoder.layers[0].heads)
    m.add_uint32("clip.vision.projection_dim", d)
    m.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-5)
    m.add_array("clip.vision.image_mean", MEAN)
    m.add_array("clip.vision.image_std", STD)
    m.add_array("clip.vision.feature_layer", [L])  # every block; no post-layernorm
    m.add_tensor("v.patch_embd.weight", half(sd["embeddings.patch_embedding.weight"]))
    m.add_tensor("v.class_embd", half(sd["embeddings.class_embedding"]))
    pos = sd["embeddings.position_embedding.weight"]
    m.add_tensor("v.position_embd.weight", half(torch_cat_last_first(pos)))  # class row last, as libmtmd
    m.add_tensor("v.pre_ln.weight", half(sd["pre_layrnorm.weight"]))
    m.add_tensor("v.pre_ln.bias", half(sd["pre_layrnorm.bias"]))
    for i in range(L):
        h = f"encoder.layers.{i}."
        for ours, theirs in (("attn_q", "self_attn.q_proj"), ("attn_k", "self_attn.k_proj"),
                             ("attn_v", "self_attn.v_proj"), ("attn_out", "self_attn.out_proj"),
                             ("ln1", "layer_norm1"), ("ln2", "layer_norm2"), ("ffn_up", "mlp.fc1"),
                             ("ffn_down", "mlp.fc2")):
            m.add_tensor(f"v.blk.{i}.{ours}.weight", half(sd[h + theirs + ".weight"]))
            m.add_tensor(f"v.blk.{i}.{ours}.bias", half(sd[h + theirs + ".bias"]))
    m.add_tensor("mm.0.weight", half(cap.mm0.weight))
    m.add_tensor("mm.0.bias", half(cap.mm0.bias))
    m.add_tensor("mm.2.weight", half(cap.mm2.weight))
    m.add_tensor("mm.2.bias", half(cap.mm2.bias))
    m.write_header_to_file()
    m.write_kv_data_to_file()
    m.write_tensors_to_file()
    m.close()


def torch_cat_last_first(pos):
    import torch

    return torch.cat([pos[1:], pos[:1]], 0)
