# The CUDA kernels: one .cu per op family, each with a C entry point in kernels.h. nvcc
# turns them into libtool objects (build-aux/cudalt.sh). One file a line, so that adding a
# kernel is a one-line change.
CUDA_HDRS = \
	%reldir%/kernels.h \
	%reldir%/common.cuh \
	%reldir%/act.cuh \
	%reldir%/gemv.cuh \
	%reldir%/attention_decode.cuh \
	%reldir%/attention_internal.cuh \
	%reldir%/cp_async.cuh \
	%reldir%/kv_fp8.cuh \
	%reldir%/gemm_tune.cuh \
	%reldir%/quant.cuh \
	%reldir%/stream_plan.h \
	%reldir%/quant_wq.cuh \
	%reldir%/quant_wq_gemm.cuh \
	%reldir%/quant_mma.cuh \
	%reldir%/sm90.cuh \
	%reldir%/sample.cuh \
	%reldir%/gemm_wgmma.cuh
CUDA_SRCS = \
	%reldir%/device.cu \
	%reldir%/linear.cu \
	%reldir%/gemm_tune.cu \
	%reldir%/gemm_wgmma.cu \
	%reldir%/prof.cu \
	%reldir%/norm.cu \
	%reldir%/embed.cu \
	%reldir%/act.cu \
	%reldir%/rope.cu \
	%reldir%/attention.cu \
	%reldir%/attention_decode.cu \
	%reldir%/attention_decode_mma.cu \
	%reldir%/attention_decode_plan.cu \
	%reldir%/attention_mma.cu \
	%reldir%/attention_wgmma.cu \
	%reldir%/sample.cu \
	%reldir%/sample_plain.cu \
	%reldir%/graph.cu \
	%reldir%/glu.cu \
	%reldir%/quant_lt.cu \
	%reldir%/quant_wq.cu \
	%reldir%/quant_wq_mma.cu \
	%reldir%/quant_wq_gemv.cu \
	%reldir%/quant_wq_sgemv.cu \
	%reldir%/quant_wq_sgemv2.cu \
	%reldir%/quant_wq_gemm.cu \
	%reldir%/quant_wq_fold.cu \
	%reldir%/quant_wq_fold_tune.cu \
	%reldir%/quant_fp8.cu \
	%reldir%/quant_fp8_mma.cu \
	%reldir%/quant_fp8_gemv.cu \
	%reldir%/quant_fp8_dec.cu \
	%reldir%/quant_bench.cu \
	%reldir%/kv_swap.cu
# plain C: the streaming GEMVs' split, tested on the CPU (tests/unit/test_stream_plan.c)
CUDA_C_SRCS = %reldir%/stream_plan.c
runtime_libpagoda_private_la_SOURCES += $(CUDA_HDRS) $(CUDA_SRCS) $(CUDA_C_SRCS)

NVCCFLAGS = -O3 -std=c++17 $(NVCC_GENCODE) -I$(top_srcdir)/include -I$(top_builddir)/include \
	-I$(top_srcdir) -I$(top_builddir) --expt-relaxed-constexpr
.cu.lo:
	$(AM_V_GEN)$(SHELL) $(top_srcdir)/build-aux/cudalt.sh $@ $(NVCC) $(NVCCFLAGS) -c $<

# quant_wq_gemm.cu's Hopper kernel uses wgmma, which only the sm_90a target has: that file's
# 90 is built as 90a (the same devices; the other architectures as they are).
wq_gemm_comma = ,
%reldir%/quant_wq_gemm.lo: %reldir%/quant_wq_gemm.cu
	$(AM_V_GEN)$(SHELL) $(top_srcdir)/build-aux/cudalt.sh $@ $(NVCC) \
	$(subst compute_90$(wq_gemm_comma)code=sm_90,compute_90a$(wq_gemm_comma)code=sm_90a,$(NVCCFLAGS)) -c $<

# quant_wq_fold.cu likewise (wgmma): its 90 is built as 90a.
%reldir%/quant_wq_fold.lo: %reldir%/quant_wq_fold.cu
	$(AM_V_GEN)$(SHELL) $(top_srcdir)/build-aux/cudalt.sh $@ $(NVCC) \
	$(subst compute_90$(wq_gemm_comma)code=sm_90,compute_90a$(wq_gemm_comma)code=sm_90a,$(NVCCFLAGS)) -c $<

# gemm_wgmma.cu likewise (wgmma): its 90 is built as 90a.
%reldir%/gemm_wgmma.lo: %reldir%/gemm_wgmma.cu
	$(AM_V_GEN)$(SHELL) $(top_srcdir)/build-aux/cudalt.sh $@ $(NVCC) \
	$(subst compute_90$(wq_gemm_comma)code=sm_90,compute_90a$(wq_gemm_comma)code=sm_90a,$(NVCCFLAGS)) -c $<

# attention_wgmma.cu likewise (wgmma): its 90 is built as 90a.
%reldir%/attention_wgmma.lo: %reldir%/attention_wgmma.cu
	$(AM_V_GEN)$(SHELL) $(top_srcdir)/build-aux/cudalt.sh $@ $(NVCC) \
	$(subst compute_90$(wq_gemm_comma)code=sm_90,compute_90a$(wq_gemm_comma)code=sm_90a,$(NVCCFLAGS)) -c $<

# nvcc objects get no automatic header dependencies: each depends on every kernel header
# (a header change rebuilds all kernels; simpler than a list per object that drifts).
CUDA_LOS = $(CUDA_SRCS:.cu=.lo)
$(CUDA_LOS): $(CUDA_HDRS:%=$(top_srcdir)/%) \
	$(top_srcdir)/include/pagoda/tensor.h $(top_srcdir)/include/pagoda/ops.h \
	$(top_srcdir)/include/pagoda/quant.h $(top_srcdir)/runtime/sample/philox.h
