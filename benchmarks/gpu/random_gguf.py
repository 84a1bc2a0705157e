#!/usr/bin/env python3
"""Write a GGUF with the Qwen2.5-0.5B-Instruct shape and random F16 weights.

The tokenizer (gpt2/qwen2 BPE, 151936 tokens, merges, chat template) is copied from a vocab-only
Qwen2 GGUF (llama.cpp's models/ggml-vocab-qwen2.gguf). Weights are N(0, std) so that the output
distribution is close to uniform over the vocabulary: sampling then essentially never picks an
end-of-generation token, and every request runs to max_tokens (what a throughput test wants).

usage: random_gguf.py VOCAB_GGUF OUT_GGUF [--layers 24 --hidden 896 ...]  (gguf-py on PYTHONPATH)
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from gguf import GGUFReader, GGUFWriter, LlamaFileType


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("vocab")
    p.add_argument("out")
    p.add_argument("--layers", type=int, default=24)
    p.add_argument("--hidden", type=int, default=896)
    p.add_argument("--heads", type=int, default=14)
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--ffn", type=int, default=4864)
    p.add_argument("--ctx", type=int, default=32768)
    p.add_argument("--std", type=float, default=0.02)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    t0 = time.time()

    r = GGUFReader(a.vocab)
    f = r.fields
    tokens = f["tokenizer.ggml.tokens"].contents()
    types = [int(x) for x in f["tokenizer.ggml.token_type"].contents()]
    merges = f["tokenizer.ggml.merges"].contents()
    vocab = len(tokens)

    w = GGUFWriter(a.out, "qwen2")
    w.add_name("qwen2.5-0.5b-shaped-random")
    w.add_context_length(a.ctx)
    w.add_embedding_length(a.hidden)
    w.add_block_count(a.layers)
    w.add_feed_forward_length(a.ffn)
    w.add_head_count(a.heads)
    w.add_head_count_kv(a.kv_heads)
    w.add_rope_freq_base(1_000_000.0)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_file_type(LlamaFileType.MOSTLY_F16)
    w.add_tokenizer_model(f["tokenizer.ggml.model"].contents())
    w.add_tokenizer_pre(f["tokenizer.ggml.pre"].contents())
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_eos_token_id(
        151645 if vocab > 151645 else int(f["tokenizer.ggml.eos_token_id"].contents())
    )  # <|im_end|>
    w.add_pad_token_id(int(f["tokenizer.ggml.padding_token_id"].contents()))
    w.add_bos_token_id(int(f["tokenizer.ggml.bos_token_id"].contents()))
    w.add_add_bos_token(False)
    if "tokenizer.chat_template" in f:
        w.add_chat_template(f["tokenizer.chat_template"].contents())

    rng = np.random.default_rng(a.seed)
    H, D = a.hidden, a.hidden // a.heads
    KV = a.kv_heads * D

    def rand(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape, dtype=np.float32) * a.std).astype(np.float16)

    def ones(n: int) -> np.ndarray:
        return np.ones(n, dtype=np.float32)

    def zeros(n: int) -> np.ndarray:
        return np.zeros(n, dtype=np.float32)

    n_params = 0

    def add(name: str, t: np.ndarray) -> None:
        nonlocal n_params
        n_params += t.size
        w.add_tensor(name, t)

    # numpy shape is (out, in); gguf-py reverses it to ggml's (ne0=in, ne1=out)
    add("token_embd.weight", rand(vocab, H))  # tied: no output.weight
    add("output_norm.weight", ones(H))
    for i in range(a.layers):
        b = f"blk.{i}."
        add(b + "attn_norm.weight", ones(H))
        add(b + "attn_q.weight", rand(H, H))
        add(b + "attn_q.bias", zeros(H))
        add(b + "attn_k.weight", rand(KV, H))
        add(b + "attn_k.bias", zeros(KV))
        add(b + "attn_v.weight", rand(KV, H))
        add(b + "attn_v.bias", zeros(KV))
        add(b + "attn_output.weight", rand(H, H))
        add(b + "ffn_norm.weight", ones(H))
        add(b + "ffn_gate.weight", rand(a.ffn, H))
        add(b + "ffn_up.weight", rand(a.ffn, H))
        add(b + "ffn_down.weight", rand(H, a.ffn))

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(
        f"wrote {a.out}: vocab {vocab}, {n_params / 1e6:.1f}M parameters, {time.time() - t0:.1f}s", flush=True
    )


if __name__ == "__main__":
    main()
