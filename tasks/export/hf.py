"""The model and tokenizer out as a Hugging Face directory: `LlamaForCausalLM` + `tokenizer.json`.

Our GPT is a Llama: pre-norm RMSNorm, rotary embeddings in the two-halves (rotate_half) layout,
SwiGLU, no biases; only the fused projections are split (qkv -> q, k, v; gate_up -> gate, up).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch

from model.chat import END
from model.gpt import GPT
from model.packing import BOS_ID, EOS_ID, UNK_ID
from model.trainer import load_model
from tasks.export.config import ExportConfig
from tasks.stage import StageInput


def hf_tokenizer(model_file: str):
    """A `PreTrainedTokenizerFast` encoding exactly as our SentencePiece model does, built by
    transformers' own converter from the model's settings (normalizer, dummy prefix, byte fallback,
    user-defined pieces kept whole)."""
    from sentencepiece import sentencepiece_model_pb2
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import SpmConverter

    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(Path(model_file).read_bytes())
    vocab = {piece.piece: i for i, piece in enumerate(proto.pieces)}
    backend = SpmConverter.build_tokenizer_from_spm_proto(proto, vocab)
    if backend is None:
        raise ValueError(f"{model_file}: a SentencePiece model of a type transformers cannot convert")
    pieces = [p.piece for p in proto.pieces]
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token=pieces[UNK_ID], eos_token=pieces[EOS_ID], bos_token=pieces[BOS_ID],
        model_max_length=int(1e9), clean_up_tokenization_spaces=False,
    )  # fmt: skip


def llama_state_dict(model: GPT) -> dict[str, torch.Tensor]:
    c = model.cfg
    state = {"model.embed_tokens.weight": model.embed.weight, "model.norm.weight": model.norm.weight}
    if not c.tie_embeddings:
        state["lm_head.weight"] = model.head.weight
    for i, block in enumerate(model.blocks):
        q, k, v = block.attn.qkv.weight.split(c.n_embd, dim=0)
        gate, up = block.mlp.gate_up.weight.chunk(2, dim=0)
        prefix = f"model.layers.{i}"
        state |= {
            f"{prefix}.input_layernorm.weight": block.norm1.weight,
            f"{prefix}.post_attention_layernorm.weight": block.norm2.weight,
            f"{prefix}.self_attn.q_proj.weight": q, f"{prefix}.self_attn.k_proj.weight": k,
            f"{prefix}.self_attn.v_proj.weight": v, f"{prefix}.self_attn.o_proj.weight": block.attn.proj.weight,
            f"{prefix}.mlp.gate_proj.weight": gate, f"{prefix}.mlp.up_proj.weight": up,
            f"{prefix}.mlp.down_proj.weight": block.mlp.down.weight,
        }  # fmt: skip
    return {name: t.detach().contiguous() for name, t in state.items()}


def llama_config(model: GPT):
    from transformers import LlamaConfig

    c = model.cfg
    return LlamaConfig(
        vocab_size=c.vocab_size, hidden_size=c.n_embd, intermediate_size=model.blocks[0].mlp.down.in_features,
        num_hidden_layers=c.n_layer, num_attention_heads=c.n_head, num_key_value_heads=c.n_head,
        max_position_embeddings=c.seq_len, rms_norm_eps=model.norm.eps, rope_theta=c.rope_base,
        rope_parameters={"rope_type": "default", "rope_theta": c.rope_base},
        tie_word_embeddings=c.tie_embeddings, attention_bias=False, mlp_bias=False, hidden_act="silu",
        bos_token_id=BOS_ID, eos_token_id=EOS_ID, pad_token_id=None, torch_dtype="float32",
    )  # fmt: skip


def to_llama(model: GPT):
    """The same weights in transformers' `LlamaForCausalLM` (a strict load: nothing left out)."""
    from transformers import LlamaForCausalLM

    hf = LlamaForCausalLM(llama_config(model))
    missing, unexpected = hf.load_state_dict(llama_state_dict(model), strict=False)
    missing = [m for m in missing if not (model.cfg.tie_embeddings and m == "lm_head.weight")]
    if missing or unexpected:
        raise ValueError(f"Llama mapping incomplete: missing {missing}, unexpected {unexpected}")
    if model.cfg.tie_embeddings:
        hf.tie_weights()
    return hf.eval()


def with_chat_template(tokenizer, chat_file: str):
    """The tokenizer with the chat tokens at our ids (appended after its pieces, or its own) and our template:
    `apply_chat_template` then gives exactly the ids sft trained on."""
    from tokenizers import AddedToken

    chat = json.loads(Path(chat_file).read_text())
    appended = sorted((i, t) for t, i in chat["ids"].items() if i >= chat["base_size"])
    if [i for i, _ in appended] != list(range(len(tokenizer), len(tokenizer) + len(appended))):
        raise ValueError(f"chat token ids {appended} do not follow the tokenizer's {len(tokenizer)} pieces")
    for _, token in appended:  # one at a time: the ids are assigned in this order
        tokenizer.add_tokens([AddedToken(token, special=True, normalized=False)], special_tokens=True)
    if (got := {t: tokenizer.convert_tokens_to_ids(t) for t in chat["ids"]}) != chat["ids"]:
        raise ValueError(f"the exported tokenizer gives the chat tokens {got}, not {chat['ids']}")
    tokenizer.chat_template = chat["template"]
    return tokenizer


def export_hf(inputs: dict[str, StageInput], cfg: ExportConfig, out: Path) -> list[Path]:
    """`--stage train` (or a chat model: `sft`, `dpo`): model + tokenizer; `--stage tokenize`: the tokenizer
    alone. A chat model's tokenizer carries the chat tokens and template, and its generation config
    stops at `<|end|>`. Saved under `_state/` first, then each file renamed into the export directory."""
    temp = out / "_state" / f"hf-{os.getpid()}"
    shutil.rmtree(temp, ignore_errors=True)
    tokenizer = hf_tokenizer(inputs["tokenize"].file("tokenizer"))
    chat_files = inputs[cfg.stage].files("chat") if cfg.stage != "tokenize" else []
    if chat_files:
        tokenizer = with_chat_template(tokenizer, chat_files[0])
    tokenizer.save_pretrained(temp)
    if chat_files:  # also where loaders before transformers 4.43's chat_template.jinja look for it
        config = json.loads((temp / "tokenizer_config.json").read_text())
        (temp / "tokenizer_config.json").write_text(json.dumps({**config, "chat_template": tokenizer.chat_template},
                                                               indent=2, ensure_ascii=False))  # fmt: skip
    if cfg.stage != "tokenize":
        hf = to_llama(load_model(inputs[cfg.stage].file("model")))
        if chat_files:
            hf.generation_config.eos_token_id = [EOS_ID, tokenizer.convert_tokens_to_ids(END)]
        hf.save_pretrained(temp, safe_serialization=True)
    files = []
    for f in sorted(temp.iterdir()):
        os.replace(f, out / f.name)
        files.append(out / f.name)
    temp.rmdir()
    return files
