"""transformers' generate on a random-weight model of a config (the comparison for
`pagoda bench latency`): batch-1 greedy decode milliseconds per token after a 128-token
prompt, bf16 on the GPU, default (dynamic) KV cache and eager generate loop.
    python3 scripts/hf_decode_bench.py CONFIG.json [new_tokens]
With --throughput B1,B2,...: batched offline throughput as `pagoda bench throughput`
measures it (128 random prompt tokens, 128 generated, greedy, no EOS stop), one generate
call per batch size after a warm-up; prints output tokens/s for each and the best.
    python3 scripts/hf_decode_bench.py CONFIG.json --throughput 32,64,128,256"""
import json, sys, time
import torch
from transformers import AutoConfig, AutoModelForCausalLM

cfg_path = sys.argv[1]
batches = None
if len(sys.argv) > 3 and sys.argv[2] == "--throughput":
    batches = [int(b) for b in sys.argv[3].split(",")]
new = int(sys.argv[2]) if len(sys.argv) > 2 and batches is None else 128
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

if batches is not None:
    print(f"transformers {__import__('transformers').__version__}, torch {torch.__version__}")
    best = (0, 0)
    for b in batches:
        prompts = torch.randint(0, cfg.vocab_size, (b, 128), device="cuda")
        mask = torch.ones_like(prompts)
        def gen(n):
            torch.cuda.synchronize()
            t = time.perf_counter()
            with torch.no_grad():
                out = model.generate(prompts, attention_mask=mask, max_new_tokens=n,
                                     min_new_tokens=n, do_sample=False, pad_token_id=0)
            torch.cuda.synchronize()
            assert out.shape == (b, 128 + n)
            return time.perf_counter() - t
        try:
            gen(4)                                # warm-up at this size
            t = gen(128)
        except torch.OutOfMemoryError:
            print(f"batch {b}: out of memory")
            break
        rate = b * 128 / t
        print(f"batch {b}: {b} requests of 128 in / 128 out in {t:.2f} s: {rate:.0f} output "
              f"tokens/s, {b / t:.2f} requests/s", flush=True)
        if rate > best[0]:
            best = (rate, b)
        torch.cuda.empty_cache()
    print(f"best: {best[0]:.0f} output tokens/s at batch {best[1]}")
    sys.exit(0)

run(8)                                    # warm-up
one = min(run(1) for _ in range(3))       # prefill + one token
full = min(run(new) for _ in range(2))
print(f"transformers {__import__('transformers').__version__}, torch {torch.__version__}")
print(f"batch 1, prompt 128: first token {one * 1e3:.1f} ms, decode "
      f"{(full - one) / (new - 1) * 1e3:.2f} ms/token over {new} tokens")
