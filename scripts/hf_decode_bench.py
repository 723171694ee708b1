"""transformers' generate on a random-weight model of a config (the comparison for
`pagoda bench latency`): batch-1 greedy decode milliseconds per token after a 128-token
prompt, bf16 on the GPU, default (dynamic) KV cache and eager generate loop.
    python3 scripts/hf_decode_bench.py CONFIG.json [new_tokens]"""
import json, sys, time
import torch
from transformers import AutoConfig, AutoModelForCausalLM

cfg_path = sys.argv[1]
new = int(sys.argv[2]) if len(sys.argv) > 2 else 128
cfg = AutoConfig.from_pretrained(cfg_path.rsplit("/", 1)[0])
torch.manual_seed(0)
torch.set_default_dtype(torch.bfloat16)
with torch.device("cuda"):
    model = AutoModelForCausalLM.from_config(cfg).to(torch.bfloat16).eval()
prompt = torch.randint(0, cfg.vocab_size, (1, 128), device="cuda")

def run(n):
    torch.cuda.synchronize()
    t = time.perf_counter()
    with torch.no_grad():
        model.generate(prompt, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                       pad_token_id=0)
    torch.cuda.synchronize()
    return time.perf_counter() - t

run(8)                                    # warm-up
one = min(run(1) for _ in range(3))       # prefill + one token
full = min(run(new) for _ in range(2))
print(f"transformers {__import__('transformers').__version__}, torch {torch.__version__}")
print(f"batch 1, prompt 128: first token {one * 1e3:.1f} ms, decode "
      f"{(full - one) / (new - 1) * 1e3:.2f} ms/token over {new} tokens")
