# The command line and the build's products: `pagoda bench throughput` on the CPU fixture
# (the report's counts and rates), `pagoda bench latency` in vLLM's form (its report), `pagoda bench grammar` (the mask times, the helpers'
# batch lines), `pagoda bench attention --mixed`'s cases refused before the GPU, `pagoda generate` given token ids without a usable
# tokenizer, `pagoda bench quant --fold-plans`' formats refused before the GPU, the export
# boundary of libpagoda.so and the plugins (nm -D), and the settings
# table: docs/CONFIG.md against `pagoda config --print-doc`, --help, refused flags, --device
# on a machine without a GPU; scripts/gpu_ab.sh and scripts/ncu_ab.py (the A/B of a kernel
# change in one device call) and scripts/gpu_variants.sh (switches tested and timed in one
# device call) on the CPU.
TOOL_SCRIPT_TESTS = %reldir%/test_bench_throughput.sh %reldir%/test_bench_profile_ops.sh %reldir%/test_bench_scheduler.sh %reldir%/test_generate_prompt_ids.sh \
	%reldir%/test_bench_spec.sh %reldir%/test_bench_grammar.sh %reldir%/test_gpu_ab.sh \
	%reldir%/test_export_boundary.sh %reldir%/test_config.sh %reldir%/test_bench_attention.sh \
	%reldir%/test_bench_latency_e2e.sh %reldir%/test_bench_quant.sh %reldir%/test_gpu_variants.sh
SCRIPT_TESTS += $(TOOL_SCRIPT_TESTS)
EXTRA_DIST += $(TOOL_SCRIPT_TESTS) tests/lib/harness.sh docs/CONFIG.md
# `pagoda bench serve` against `pagoda serve` on the CPU fixture (and a faulty fake server).
SCRIPT_TESTS += %reldir%/test_bench_serve.sh
EXTRA_DIST += %reldir%/test_bench_serve.sh
# The parts of `pagoda bench serve` that need no server (SSE parser, report, draws, the
# /metrics parser of the server steps section).
if HAVE_CRITERION
CRITERION_TESTS += tests/tools/test_bench_serve_units
check_PROGRAMS += tests/tools/test_bench_serve_units
tests_tools_test_bench_serve_units_SOURCES = %reldir%/test_bench_serve_units.c \
	runtime/base/sse.c runtime/base/mem.c tools/bench/serve/report.c \
	tools/bench/serve/server_steps.c tools/bench/bench_draw.c
tests_tools_test_bench_serve_units_CPPFLAGS = $(TEST_CPPFLAGS)
tests_tools_test_bench_serve_units_CFLAGS = $(TEST_CFLAGS) $(CURL_CFLAGS)
tests_tools_test_bench_serve_units_LDADD = $(CRITERION_LIBS) $(JANSSON_LIBS) -lm
endif
# The bench commands' list flags (--batch LIST): good lists, and each kind of bad one refused.
if HAVE_CRITERION
CRITERION_TESTS += tests/tools/test_bench_list
check_PROGRAMS += tests/tools/test_bench_list
tests_tools_test_bench_list_SOURCES = %reldir%/test_bench_list.c tools/bench/bench_list.c
tests_tools_test_bench_list_CPPFLAGS = $(TEST_CPPFLAGS)
tests_tools_test_bench_list_CFLAGS = $(TEST_CFLAGS)
tests_tools_test_bench_list_LDADD = $(CRITERION_LIBS)
endif
# Deployment INI files: examples/deploy/*.ini pass `pagoda config --check`; a bad file's
# problems with file:line; --config in `config --print` and `serve` (flag > file > default).
SCRIPT_TESTS += %reldir%/test_deploy_examples.sh
EXTRA_DIST += %reldir%/test_deploy_examples.sh examples/deploy/cpu.ini examples/deploy/gpu-8b.ini \
	examples/deploy/gpu-8b-gptq.ini examples/deploy/repl.ini
# The systemd unit (systemd-analyze verify, or a visible SKIP without it), the container
# file's stages and build commands (the README's), the Kubernetes manifests (PyYAML: the
# fields a GPU deployment needs, every name that ties them together, the ConfigMap's INI).
SCRIPT_TESTS += %reldir%/test_deploy_files.py
EXTRA_DIST += %reldir%/test_deploy_files.py examples/deploy/systemd/pagoda.service \
	examples/deploy/container/Containerfile examples/deploy/container/pagoda.ini \
	examples/deploy/k8s/configmap.yaml examples/deploy/k8s/deployment.yaml \
	examples/deploy/k8s/secret.yaml examples/deploy/k8s/service.yaml
