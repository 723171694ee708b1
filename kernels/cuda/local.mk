# The CUDA kernels: one .cu per op family, each with a C entry point in kernels.h. nvcc
# turns them into libtool objects (build-aux/cudalt.sh).
runtime_libpagoda_private_la_SOURCES += \
	%reldir%/kernels.h %reldir%/common.cuh %reldir%/act.cuh %reldir%/gemv.cuh \
	%reldir%/attention_decode.cuh %reldir%/attention_internal.cuh \
	%reldir%/device.cu %reldir%/linear.cu %reldir%/norm.cu %reldir%/embed.cu \
	%reldir%/act.cu %reldir%/rope.cu %reldir%/attention.cu %reldir%/attention_decode.cu \
	%reldir%/attention_mma.cu %reldir%/sample.cu %reldir%/graph.cu %reldir%/glu.cu \
	%reldir%/quant.cuh %reldir%/quant_wq.cuh %reldir%/quant_lt.cu %reldir%/quant_wq.cu \
	%reldir%/quant_wq_mma.cu %reldir%/quant_wq_gemm.cu %reldir%/quant_mma.cuh \
	%reldir%/quant_fp8.cu %reldir%/quant_fp8_mma.cu \
	%reldir%/quant_bench.cu

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

# nvcc objects get no automatic header dependencies: each depends on the shared headers.
CUDA_LOS = %reldir%/device.lo %reldir%/linear.lo %reldir%/norm.lo %reldir%/embed.lo \
	%reldir%/act.lo %reldir%/rope.lo %reldir%/attention.lo %reldir%/attention_decode.lo \
	%reldir%/attention_mma.lo %reldir%/sample.lo %reldir%/graph.lo %reldir%/glu.lo \
	%reldir%/quant_lt.lo %reldir%/quant_wq.lo %reldir%/quant_wq_mma.lo %reldir%/quant_fp8.lo \
	%reldir%/quant_fp8_mma.lo %reldir%/quant_bench.lo %reldir%/quant_wq_gemm.lo
$(CUDA_LOS): $(top_srcdir)/%reldir%/common.cuh $(top_srcdir)/%reldir%/kernels.h \
	$(top_srcdir)/include/pagoda/tensor.h $(top_srcdir)/include/pagoda/ops.h \
	$(top_srcdir)/include/pagoda/quant.h
%reldir%/sample.lo: $(top_srcdir)/runtime/sample/philox.h
%reldir%/attention.lo %reldir%/attention_decode.lo %reldir%/attention_mma.lo: \
	$(top_srcdir)/%reldir%/attention_decode.cuh $(top_srcdir)/%reldir%/attention_internal.cuh
%reldir%/linear.lo %reldir%/glu.lo: $(top_srcdir)/%reldir%/gemv.cuh
%reldir%/quant_lt.lo %reldir%/quant_wq.lo %reldir%/quant_wq_mma.lo %reldir%/quant_fp8.lo \
	%reldir%/quant_fp8_mma.lo %reldir%/quant_bench.lo %reldir%/quant_wq_gemm.lo: $(top_srcdir)/%reldir%/quant.cuh $(top_srcdir)/%reldir%/gemv.cuh
%reldir%/quant_wq.lo %reldir%/quant_wq_mma.lo %reldir%/quant_wq_gemm.lo: $(top_srcdir)/%reldir%/quant_wq.cuh
%reldir%/quant_wq_mma.lo %reldir%/quant_wq_gemm.lo: $(top_srcdir)/%reldir%/quant_mma.cuh
%reldir%/act.lo %reldir%/glu.lo: $(top_srcdir)/%reldir%/act.cuh
