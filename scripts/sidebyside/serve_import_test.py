#!/usr/bin/env python3
"""Checks, on a machine WITHOUT a GPU, that vLLM's OpenAI server runs from the kit plus
serve.tar.xz: every module `python3 -m vllm.entrypoints.openai.api_server` imports loads, the
exact command line vllm_serve.sh passes parses and validates, the engine config it implies
builds, and the FastAPI app builds with the routes `pagoda bench serve` calls.

  PYTHONPATH=SITE LD_LIBRARY_PATH=STUBDIR python3 serve_import_test.py \\
      --kit-recipe ../shared/vllm-kit -- --model DIR --load-format dummy ...

SITE: the kit's parts and serve.tar.xz unpacked into one folder. The interpreter needs what the
kit's import_test.py needs (CPython 3.12, torch 2.11.0 and the GPU machine's other packages, a
stub libcuda.so.1 on LD_LIBRARY_PATH); this script borrows that test's way of forcing vLLM's
platform to CUDA sm_90 (--kit-recipe: the folder holding import_test.py). The server arguments
after `--` are vllm_serve.sh's (`vllm_serve.sh --print-server-args MODEL_DIR` prints them).
Prints one line per check and 'serve import test: N passed, N failed'.
"""
import argparse
import importlib
import os
import sys
import traceback

# The server's own modules and the packages serve.tar.xz adds (their import names).
MODULES = ["uvicorn", "watchfiles", "multipart", "jmespath", "model_hosting_container_standards",
           "vllm.entrypoints.launcher", "vllm.entrypoints.openai.api_server",
           "vllm.entrypoints.serve.sagemaker.api_router", "vllm.entrypoints.serve.utils.ssl"]
# What `pagoda bench serve` and vllm_serve.sh call on the server.
ROUTES = ["/health", "/v1/models", "/v1/completions", "/v1/chat/completions", "/tokenize"]

passed, failed = [], []


def check(name, fn):
    try:
        r = fn()
        passed.append(name)
        print(f"ok    {name}{'' if r is None else ': ' + str(r)}", flush=True)
        return r
    except BaseException as e:  # noqa: BLE001 -- a failed import can raise anything
        failed.append(name)
        print(f"FAIL  {name}: {e!r}", flush=True)
        traceback.print_exc(limit=6)
        return None


def parse_server_args(argv):
    from vllm.entrypoints.openai.cli_args import make_arg_parser, validate_parsed_serve_args
    from vllm.utils.argparse_utils import FlexibleArgumentParser
    args = make_arg_parser(FlexibleArgumentParser()).parse_args(argv)
    validate_parsed_serve_args(args)
    return args


def engine_config(args):
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.usage.usage_lib import UsageContext
    vc = AsyncEngineArgs.from_cli_args(args).create_engine_config(UsageContext.OPENAI_API_SERVER)
    sc, mc = vc.scheduler_config, vc.model_config
    return (f"max_num_seqs {sc.max_num_seqs}, max_num_batched_tokens {sc.max_num_batched_tokens}, "
            f"max_model_len {mc.max_model_len}, quantization {mc.quantization}, "
            f"tokenizer {'skipped' if mc.skip_tokenizer_init else mc.tokenizer}")


def app_routes(args, built):
    from vllm.entrypoints.openai.api_server import build_app
    built["app"] = build_app(args, ("generate",))
    paths = {getattr(r, "path", None) for r in built["app"].routes}
    missing = [r for r in ROUTES if r not in paths]
    assert not missing, f"routes missing: {missing}"
    return f"{len(paths)} routes, {', '.join(ROUTES)} among them"


def uvicorn_config(built):
    import uvicorn
    assert "app" in built, "no app to serve"
    cfg = uvicorn.Config(built["app"], host="127.0.0.1", port=0, log_level="warning")
    cfg.load()  # resolves the HTTP protocol, websocket and lifespan classes
    return (f"uvicorn {uvicorn.__version__}: http {cfg.http_protocol_class.__name__}, "
            f"ws {getattr(cfg.ws_protocol_class, '__name__', None)}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kit-recipe", required=True, help="folder with the kit's import_test.py")
    p.add_argument("server_args", nargs=argparse.REMAINDER, help="-- then vLLM server arguments")
    a = p.parse_args()
    server_argv = a.server_args[1:] if a.server_args[:1] == ["--"] else a.server_args
    if not server_argv:
        p.error("give the server's arguments after --")
    for k, v in {"VLLM_USE_FLASHINFER_SAMPLER": "0", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                 "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}.items():
        os.environ.setdefault(k, v)
    sys.path.insert(0, os.path.abspath(a.kit_recipe))
    import import_test  # the kit's: force_cuda_platform()

    check("import vllm.platforms; force CUDA sm_90", import_test.force_cuda_platform)
    for m in MODULES:
        check(f"import {m}", lambda m=m: importlib.import_module(m) and None)
    args = check("server command line parses and validates", lambda: parse_server_args(server_argv))
    if args is not None:
        built = {}
        check("AsyncEngineArgs.from_cli_args(...).create_engine_config()", lambda: engine_config(args))
        check("build_app(args, ('generate',)) has the routes pagoda bench serve calls",
              lambda: app_routes(args, built))
        check("uvicorn.Config(app).load()", lambda: uvicorn_config(built))
    print(f"serve import test: {len(passed)} passed, {len(failed)} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
