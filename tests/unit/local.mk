# One Criterion program per runtime subsystem.
CRITERION_TESTS = tests/unit/test_base tests/unit/test_tensor tests/unit/test_cpu_kernels \
	tests/unit/test_models tests/unit/test_safetensors tests/unit/test_block_pool \
	tests/unit/test_scheduler tests/unit/test_sampler tests/unit/test_engine tests/unit/test_swap \
	tests/unit/test_tokenizer tests/unit/test_chat_template tests/unit/test_registry \
	tests/unit/test_model_api tests/unit/test_jinja_sort \
	tests/unit/test_corrupt_files tests/unit/test_settings tests/unit/test_metrics \
	tests/unit/test_ini tests/unit/test_reload tests/unit/test_log tests/unit/test_spec \
	tests/unit/test_batch_defaults tests/unit/test_model_shard tests/unit/test_quant \
	tests/unit/test_quant_load \
	tests/unit/test_oai_parsers \
	tests/unit/test_grammar tests/unit/test_engine_guided tests/unit/test_engine_bad_words \
	tests/unit/test_pooling tests/unit/test_profile tests/unit/test_kv_fp8 \
	tests/unit/test_ktrace tests/unit/test_stream_plan
# The runner's step hook (`pagoda bench throughput --profile-ops`).
CRITERION_TESTS += tests/unit/test_step_hook
# The activation arena's two ends.
CRITERION_TESTS += tests/unit/test_arena
tests_unit_test_arena_SOURCES = %reldir%/test_arena.c
tests_unit_test_arena_CPPFLAGS = $(TEST_CPPFLAGS)
tests_unit_test_arena_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_arena_LDFLAGS = $(TEST_LINKFLAGS)
tests_unit_test_arena_LDADD = $(TEST_LDADD)
check_PROGRAMS += $(CRITERION_TESTS) tests/unit/test_engine_tsan
tests_unit_test_base_SOURCES = %reldir%/test_base.c
tests_unit_test_base_CPPFLAGS = $(TEST_CPPFLAGS)
tests_unit_test_base_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_base_LDFLAGS = $(TEST_LINKFLAGS)
tests_unit_test_base_LDADD = $(TEST_LDADD)
tests_unit_test_tensor_SOURCES = %reldir%/test_tensor.c
tests_unit_test_tensor_CPPFLAGS = $(TEST_CPPFLAGS)
tests_unit_test_tensor_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_tensor_LDFLAGS = $(TEST_LINKFLAGS)
tests_unit_test_tensor_LDADD = $(TEST_LDADD)
tests_unit_test_cpu_kernels_SOURCES = %reldir%/test_cpu_kernels.c
tests_unit_test_cpu_kernels_CPPFLAGS = $(TEST_CPPFLAGS)
tests_unit_test_cpu_kernels_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_cpu_kernels_LDFLAGS = $(TEST_LINKFLAGS)
tests_unit_test_cpu_kernels_LDADD = $(TEST_LDADD)
tests_unit_test_models_SOURCES = %reldir%/test_models.c
tests_unit_test_models_CPPFLAGS = $(TEST_CPPFLAGS)
tests_unit_test_models_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_models_LDFLAGS = $(TEST_LINKFLAGS)
tests_unit_test_models_LDADD = $(TEST_LDADD)
tests_unit_test_safetensors_SOURCES = %reldir%/test_safetensors.c
tests_unit_test_safetensors_CPPFLAGS = $(TEST_CPPFLAGS)
tests_unit_test_safetensors_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_safetensors_LDFLAGS = $(TEST_LINKFLAGS)
tests_unit_test_safetensors_LDADD = $(TEST_LDADD)
tests_unit_test_block_pool_SOURCES = %reldir%/test_block_pool.c
tests_unit_test_block_pool_CPPFLAGS = $(TEST_CPPFLAGS)
tests_unit_test_block_pool_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_block_pool_LDFLAGS = $(TEST_LINKFLAGS)
tests_unit_test_block_pool_LDADD = $(TEST_LDADD)
tests_unit_test_scheduler_SOURCES = %reldir%/test_scheduler.c
tests_unit_test_scheduler_CPPFLAGS = $(TEST_CPPFLAGS)
tests_unit_test_scheduler_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_scheduler_LDFLAGS = $(TEST_LINKFLAGS)
tests_unit_test_scheduler_LDADD = $(TEST_LDADD)
tests_unit_test_sampler_SOURCES = %reldir%/test_sampler.c
tests_unit_test_sampler_CPPFLAGS = $(TEST_CPPFLAGS)
tests_unit_test_sampler_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_sampler_LDFLAGS = $(TEST_LINKFLAGS)
tests_unit_test_sampler_LDADD = $(TEST_LDADD)
tests_unit_test_batch_defaults_SOURCES = %reldir%/test_batch_defaults.c
tests_unit_test_batch_defaults_CPPFLAGS = $(TEST_CPPFLAGS)
tests_unit_test_batch_defaults_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_batch_defaults_LDFLAGS = $(TEST_LINKFLAGS)
tests_unit_test_batch_defaults_LDADD = $(TEST_LDADD)
tests_unit_test_spec_SOURCES = %reldir%/test_spec.c
tests_unit_test_spec_CPPFLAGS = $(TEST_CPPFLAGS)
tests_unit_test_spec_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_spec_LDFLAGS = $(TEST_LINKFLAGS)
tests_unit_test_spec_LDADD = $(TEST_LDADD)
tests_unit_test_swap_SOURCES = %reldir%/test_swap.c
tests_unit_test_swap_CPPFLAGS = $(TEST_CPPFLAGS)
tests_unit_test_swap_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_swap_LDFLAGS = $(TEST_LINKFLAGS)
tests_unit_test_swap_LDADD = $(TEST_LDADD)
tests_unit_test_engine_SOURCES = %reldir%/test_engine.c
tests_unit_test_engine_CPPFLAGS = $(TEST_CPPFLAGS)
tests_unit_test_engine_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_engine_LDFLAGS = $(TEST_LINKFLAGS)
tests_unit_test_engine_LDADD = $(TEST_LDADD)
tests_unit_test_tokenizer_SOURCES = %reldir%/test_tokenizer.c
tests_unit_test_tokenizer_CPPFLAGS = $(TEST_CPPFLAGS)
tests_unit_test_tokenizer_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_tokenizer_LDFLAGS = $(TEST_LINKFLAGS)
tests_unit_test_tokenizer_LDADD = $(TEST_LDADD)
tests_unit_test_chat_template_SOURCES = %reldir%/test_chat_template.c
tests_unit_test_chat_template_CPPFLAGS = $(TEST_CPPFLAGS)
tests_unit_test_chat_template_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_chat_template_LDFLAGS = $(TEST_LINKFLAGS)
tests_unit_test_chat_template_LDADD = $(TEST_LDADD)
tests_unit_test_registry_SOURCES = %reldir%/test_registry.c
tests_unit_test_registry_CPPFLAGS = $(TEST_CPPFLAGS)
tests_unit_test_registry_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_registry_LDFLAGS = $(TEST_LINKFLAGS)
tests_unit_test_registry_LDADD = $(TEST_LDADD)
tests_unit_test_model_api_SOURCES = %reldir%/test_model_api.c
tests_unit_test_model_api_CPPFLAGS = $(TEST_CPPFLAGS)
tests_unit_test_model_api_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_model_api_LDFLAGS = $(TEST_LINKFLAGS)
tests_unit_test_model_api_LDADD = $(TEST_LDADD)
tests_unit_test_model_shard_SOURCES = %reldir%/test_model_shard.c
tests_unit_test_model_shard_CPPFLAGS = $(TEST_CPPFLAGS)
tests_unit_test_model_shard_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_model_shard_LDFLAGS = $(TEST_LINKFLAGS)
tests_unit_test_model_shard_LDADD = $(TEST_LDADD)
tests_unit_test_jinja_sort_SOURCES = %reldir%/test_jinja_sort.c
tests_unit_test_jinja_sort_CPPFLAGS = $(TEST_CPPFLAGS)
tests_unit_test_jinja_sort_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_jinja_sort_LDFLAGS = $(TEST_LINKFLAGS)
tests_unit_test_jinja_sort_LDADD = $(TEST_LDADD)
tests_unit_test_corrupt_files_SOURCES = %reldir%/test_corrupt_files.c
tests_unit_test_corrupt_files_CPPFLAGS = $(TEST_CPPFLAGS)
tests_unit_test_corrupt_files_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_corrupt_files_LDFLAGS = $(TEST_LINKFLAGS)
tests_unit_test_corrupt_files_LDADD = $(TEST_LDADD)
tests_unit_test_settings_SOURCES = %reldir%/test_settings.c
tests_unit_test_settings_CPPFLAGS = $(TEST_CPPFLAGS)
tests_unit_test_settings_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_settings_LDFLAGS = $(TEST_LINKFLAGS)
tests_unit_test_settings_LDADD = $(TEST_LDADD)
tests_unit_test_metrics_SOURCES = %reldir%/test_metrics.c
tests_unit_test_metrics_CPPFLAGS = $(TEST_CPPFLAGS)
tests_unit_test_metrics_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_metrics_LDFLAGS = $(TEST_LINKFLAGS)
tests_unit_test_metrics_LDADD = $(TEST_LDADD)
# The engine under many threads without Criterion, so that it also runs under TSan.
tests_unit_test_engine_tsan_SOURCES = %reldir%/test_engine_tsan.c
tests_unit_test_engine_tsan_CPPFLAGS = $(TEST_CPPFLAGS)
tests_unit_test_engine_tsan_CFLAGS = $(AM_CFLAGS)
tests_unit_test_engine_tsan_LDFLAGS = $(TEST_LINKFLAGS)
tests_unit_test_engine_tsan_LDADD = runtime/libpagoda-private.la -lpthread -lm
tests_unit_test_ini_SOURCES = %reldir%/test_ini.c
tests_unit_test_ini_CPPFLAGS = $(TEST_CPPFLAGS)
tests_unit_test_ini_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_ini_LDFLAGS = $(TEST_LINKFLAGS)
tests_unit_test_ini_LDADD = $(TEST_LDADD)
tests_unit_test_reload_SOURCES = %reldir%/test_reload.c
tests_unit_test_reload_CPPFLAGS = $(TEST_CPPFLAGS)
tests_unit_test_reload_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_reload_LDFLAGS = $(TEST_LINKFLAGS)
tests_unit_test_reload_LDADD = $(TEST_LDADD)
tests_unit_test_kv_fp8_SOURCES = %reldir%/test_kv_fp8.c
tests_unit_test_kv_fp8_CPPFLAGS = $(TEST_CPPFLAGS)
tests_unit_test_kv_fp8_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_kv_fp8_LDFLAGS = $(TEST_LINKFLAGS)
tests_unit_test_kv_fp8_LDADD = $(TEST_LDADD)
tests_unit_test_log_SOURCES = %reldir%/test_log.c
tests_unit_test_log_CPPFLAGS = $(TEST_CPPFLAGS)
tests_unit_test_log_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_log_LDFLAGS = $(TEST_LINKFLAGS)
tests_unit_test_log_LDADD = $(TEST_LDADD)
tests_unit_test_quant_SOURCES = %reldir%/test_quant.c plugins/quant/gptq/gptq_convert.c \
	plugins/quant/awq/awq_convert.c plugins/quant/common/qcommon.c
tests_unit_test_quant_CPPFLAGS = $(TEST_CPPFLAGS)
tests_unit_test_quant_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_quant_LDFLAGS = $(TEST_LINKFLAGS)
tests_unit_test_quant_LDADD = $(TEST_LDADD)
# Random quantized layers and the compressed-tensors format.
tests_unit_test_quant_load_SOURCES = %reldir%/test_quant_load.c \
	plugins/quant/compressed_tensors/ct_convert.c plugins/quant/gptq/gptq_convert.c
tests_unit_test_quant_load_CPPFLAGS = $(TEST_CPPFLAGS)
tests_unit_test_quant_load_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_quant_load_LDFLAGS = $(TEST_LINKFLAGS)
tests_unit_test_quant_load_LDADD = $(TEST_LDADD)
# The OpenAI frontend's tool-call and reasoning parsers (plugin sources compiled in).
tests_unit_test_oai_parsers_SOURCES = %reldir%/test_oai_parsers.c \
	plugins/frontend/openai/parsers.c plugins/frontend/openai/parsers.h
tests_unit_test_oai_parsers_CPPFLAGS = $(TEST_CPPFLAGS)
tests_unit_test_oai_parsers_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_oai_parsers_LDFLAGS = $(TEST_LINKFLAGS)
tests_unit_test_oai_parsers_LDADD = $(TEST_LDADD)
tests_unit_test_grammar_SOURCES = %reldir%/test_grammar.c %reldir%/test_grammar_cases.h
tests_unit_test_grammar_CPPFLAGS = $(TEST_CPPFLAGS)
tests_unit_test_grammar_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_grammar_LDFLAGS = $(TEST_LINKFLAGS)
tests_unit_test_grammar_LDADD = $(TEST_LDADD)
tests_unit_test_engine_bad_words_SOURCES = %reldir%/test_engine_bad_words.c
tests_unit_test_engine_bad_words_CPPFLAGS = $(TEST_CPPFLAGS)
tests_unit_test_engine_bad_words_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_engine_bad_words_LDFLAGS = $(TEST_LINKFLAGS)
tests_unit_test_engine_bad_words_LDADD = $(TEST_LDADD)
tests_unit_test_engine_guided_SOURCES = %reldir%/test_engine_guided.c
tests_unit_test_engine_guided_CPPFLAGS = $(TEST_CPPFLAGS)
tests_unit_test_engine_guided_CFLAGS = $(TEST_CFLAGS) $(PCRE2_CFLAGS)
tests_unit_test_engine_guided_LDFLAGS = $(TEST_LINKFLAGS)
tests_unit_test_engine_guided_LDADD = $(TEST_LDADD) $(PCRE2_LIBS)
tests_unit_test_pooling_SOURCES = %reldir%/test_pooling.c
tests_unit_test_pooling_CPPFLAGS = $(TEST_CPPFLAGS)
tests_unit_test_pooling_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_pooling_LDFLAGS = $(TEST_LINKFLAGS)
tests_unit_test_pooling_LDADD = $(TEST_LDADD)
tests_unit_test_ktrace_SOURCES = %reldir%/test_ktrace.c $(KTRACE_TABLE_SOURCES)
tests_unit_test_ktrace_CPPFLAGS = $(TEST_CPPFLAGS)
tests_unit_test_ktrace_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_ktrace_LDFLAGS = $(TEST_LINKFLAGS)
tests_unit_test_ktrace_LDADD = $(TEST_LDADD)
# The streaming GEMVs' split: in libpagoda where CUDA is built, else compiled in here.
tests_unit_test_stream_plan_SOURCES = %reldir%/test_stream_plan.c
if !HAVE_CUDA
tests_unit_test_stream_plan_SOURCES += kernels/cuda/stream_plan.c kernels/cuda/stream_plan.h
endif
tests_unit_test_stream_plan_CPPFLAGS = $(TEST_CPPFLAGS)
tests_unit_test_stream_plan_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_stream_plan_LDFLAGS = $(TEST_LINKFLAGS)
tests_unit_test_stream_plan_LDADD = $(TEST_LDADD)
tests_unit_test_profile_SOURCES = %reldir%/test_profile.c
tests_unit_test_profile_CPPFLAGS = $(TEST_CPPFLAGS)
tests_unit_test_profile_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_profile_LDFLAGS = $(TEST_LINKFLAGS)
tests_unit_test_profile_LDADD = $(TEST_LDADD)
tests_unit_test_step_hook_SOURCES = %reldir%/test_step_hook.c
tests_unit_test_step_hook_CPPFLAGS = $(TEST_CPPFLAGS)
tests_unit_test_step_hook_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_step_hook_LDFLAGS = $(TEST_LINKFLAGS)
tests_unit_test_step_hook_LDADD = $(TEST_LDADD)
