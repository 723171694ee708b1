# The CUDA backend's tests: each kernel against its CPU twin, the fixtures on the GPU. The
# programs exist in every build; without a GPU they exit 77 (SKIP). `make check-gpu` runs
# them and fails when they skip.
GPU_TEST_BINS = tests/gpu/test_cuda_kernels tests/gpu/test_cuda_models tests/gpu/test_cuda_engine tests/gpu/test_cuda_sample \
	tests/gpu/test_cuda_attention tests/gpu/test_cuda_glu tests/gpu/test_cuda_quant \
	tests/gpu/test_cuda_pooling tests/gpu/test_cuda_profile
check_PROGRAMS += $(GPU_TEST_BINS)
tests_gpu_test_cuda_kernels_SOURCES = %reldir%/test_cuda_kernels.c
tests_gpu_test_cuda_kernels_CPPFLAGS = $(TEST_CPPFLAGS)
tests_gpu_test_cuda_kernels_CFLAGS = $(TEST_CFLAGS)
tests_gpu_test_cuda_kernels_LDFLAGS = $(TEST_LINKFLAGS)
tests_gpu_test_cuda_kernels_LDADD = $(TEST_LDADD)
tests_gpu_test_cuda_models_SOURCES = %reldir%/test_cuda_models.c
tests_gpu_test_cuda_models_CPPFLAGS = $(TEST_CPPFLAGS)
tests_gpu_test_cuda_models_CFLAGS = $(TEST_CFLAGS)
tests_gpu_test_cuda_models_LDFLAGS = $(TEST_LINKFLAGS)
tests_gpu_test_cuda_models_LDADD = $(TEST_LDADD)
tests_gpu_test_cuda_engine_SOURCES = %reldir%/test_cuda_engine.c
tests_gpu_test_cuda_engine_CPPFLAGS = $(TEST_CPPFLAGS)
tests_gpu_test_cuda_engine_CFLAGS = $(TEST_CFLAGS)
tests_gpu_test_cuda_engine_LDFLAGS = $(TEST_LINKFLAGS)
tests_gpu_test_cuda_engine_LDADD = $(TEST_LDADD)
tests_gpu_test_cuda_sample_SOURCES = %reldir%/test_cuda_sample.c
tests_gpu_test_cuda_sample_CPPFLAGS = $(TEST_CPPFLAGS)
tests_gpu_test_cuda_sample_CFLAGS = $(TEST_CFLAGS) $(PCRE2_CFLAGS)
tests_gpu_test_cuda_sample_LDFLAGS = $(TEST_LINKFLAGS)
tests_gpu_test_cuda_sample_LDADD = $(TEST_LDADD) $(PCRE2_LIBS)
tests_gpu_test_cuda_attention_SOURCES = %reldir%/test_cuda_attention.c
tests_gpu_test_cuda_attention_CPPFLAGS = $(TEST_CPPFLAGS)
tests_gpu_test_cuda_attention_CFLAGS = $(TEST_CFLAGS)
tests_gpu_test_cuda_attention_LDFLAGS = $(TEST_LINKFLAGS)
tests_gpu_test_cuda_attention_LDADD = $(TEST_LDADD)
tests_gpu_test_cuda_glu_SOURCES = %reldir%/test_cuda_glu.c
tests_gpu_test_cuda_glu_CPPFLAGS = $(TEST_CPPFLAGS)
tests_gpu_test_cuda_glu_CFLAGS = $(TEST_CFLAGS)
tests_gpu_test_cuda_glu_LDFLAGS = $(TEST_LINKFLAGS)
tests_gpu_test_cuda_glu_LDADD = $(TEST_LDADD)
tests_gpu_test_cuda_quant_SOURCES = %reldir%/test_cuda_quant.c
tests_gpu_test_cuda_quant_CPPFLAGS = $(TEST_CPPFLAGS)
tests_gpu_test_cuda_quant_CFLAGS = $(TEST_CFLAGS)
tests_gpu_test_cuda_quant_LDFLAGS = $(TEST_LINKFLAGS)
tests_gpu_test_cuda_quant_LDADD = $(TEST_LDADD)
tests_gpu_test_cuda_pooling_SOURCES = %reldir%/test_cuda_pooling.c
tests_gpu_test_cuda_pooling_CPPFLAGS = $(TEST_CPPFLAGS)
tests_gpu_test_cuda_pooling_CFLAGS = $(TEST_CFLAGS)
tests_gpu_test_cuda_pooling_LDFLAGS = $(TEST_LINKFLAGS)
tests_gpu_test_cuda_pooling_LDADD = $(TEST_LDADD)
check-gpu: $(GPU_TEST_BINS) $(plugin_LTLIBRARIES)
	@for t in $(GPU_TEST_BINS); do \
	  echo "== $$t"; rc=0; PAGODA_LOG=warn ./$$t || rc=$$?; \
	  if [ $$rc -eq 77 ]; then echo "$$t skipped: check-gpu needs a CUDA device"; exit 1; fi; \
	  if [ $$rc -ne 0 ]; then echo "$$t failed ($$rc)"; exit 1; fi; \
	done
.PHONY: check-gpu
# The quantized fixtures on the GPU (the quant plugins on the CUDA kernels).
GPU_TEST_BINS += tests/gpu/test_cuda_quant_models
tests_gpu_test_cuda_quant_models_SOURCES = %reldir%/test_cuda_quant_models.c
tests_gpu_test_cuda_quant_models_CPPFLAGS = $(TEST_CPPFLAGS)
tests_gpu_test_cuda_quant_models_CFLAGS = $(TEST_CFLAGS)
tests_gpu_test_cuda_quant_models_LDFLAGS = $(TEST_LINKFLAGS)
tests_gpu_test_cuda_quant_models_LDADD = $(TEST_LDADD)
tests_gpu_test_cuda_profile_SOURCES = %reldir%/test_cuda_profile.c
tests_gpu_test_cuda_profile_CPPFLAGS = $(TEST_CPPFLAGS)
tests_gpu_test_cuda_profile_CFLAGS = $(TEST_CFLAGS)
tests_gpu_test_cuda_profile_LDFLAGS = $(TEST_LINKFLAGS)
tests_gpu_test_cuda_profile_LDADD = $(TEST_LDADD)
# The NCCL communicator on one GPU: its collectives captured in a CUDA graph and replayed
# (a build without NCCL has nothing to test there: no program, so check-gpu does not skip).
if HAVE_NCCL
GPU_TEST_BINS += tests/gpu/test_cuda_comm
endif
tests_gpu_test_cuda_comm_SOURCES = %reldir%/test_cuda_comm.c
tests_gpu_test_cuda_comm_CPPFLAGS = $(TEST_CPPFLAGS)
tests_gpu_test_cuda_comm_CFLAGS = $(TEST_CFLAGS)
tests_gpu_test_cuda_comm_LDFLAGS = $(TEST_LINKFLAGS)
tests_gpu_test_cuda_comm_LDADD = $(TEST_LDADD)
# Tensor parallelism on several GPUs of one host (mpirun, NCCL): `make check-gpu-tp` on a
# machine with 2 or more GPUs (it fails when it skips, as check-gpu does).
EXTRA_DIST += %reldir%/test_cuda_tp.sh
check-gpu-tp: all
	@rc=0; PGD_BUILDDIR=$(abs_top_builddir) PGD_SRCDIR=$(abs_top_srcdir) \
	  $(abs_top_srcdir)/tests/gpu/test_cuda_tp.sh || rc=$$?; \
	if [ $$rc -eq 77 ]; then echo "check-gpu-tp skipped: it needs MPI, mpirun and 2+ GPUs"; exit 1; fi; \
	exit $$rc
.PHONY: check-gpu-tp
# Our own Hopper GEMM (kernels/cuda/gemm_wgmma.cu) against the CPU linear and cuBLASLt.
GPU_TEST_BINS += tests/gpu/test_cuda_gemm
tests_gpu_test_cuda_gemm_SOURCES = %reldir%/test_cuda_gemm.c
tests_gpu_test_cuda_gemm_CPPFLAGS = $(TEST_CPPFLAGS)
tests_gpu_test_cuda_gemm_CFLAGS = $(TEST_CFLAGS)
tests_gpu_test_cuda_gemm_LDFLAGS = $(TEST_LINKFLAGS)
tests_gpu_test_cuda_gemm_LDADD = $(TEST_LDADD)
