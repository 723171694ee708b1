# Tensor parallelism's communicator: MPI on the host (always built; without MPI it refuses
# with a message), NCCL on CUDA devices when configure found it.
runtime_libpagoda_private_la_SOURCES += %reldir%/comm.c %reldir%/comm.h %reldir%/comm_nccl.h
if HAVE_NCCL
runtime_libpagoda_private_la_SOURCES += %reldir%/comm_nccl.c
endif
runtime_libpagoda_private_la_CFLAGS += $(MPI_CFLAGS)
runtime_libpagoda_private_la_LIBADD += $(MPI_LIBS) $(NCCL_LIBS)
