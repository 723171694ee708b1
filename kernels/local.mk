# The kernels, compiled into libpagoda: kernels/cpu is the readable reference every CUDA
# kernel is tested against; kernels/cuda is built when configure finds nvcc.
include %reldir%/cpu/local.mk
if HAVE_CUDA
include %reldir%/cuda/local.mk
endif
