# Tensor parallelism over MPI on the CPU: the communicator's collectives against plain sums
# (test_comm), every fixture architecture split over the ranks against the whole model
# (test_tp_models: the shard slices, the logits and greedy tokens step by step), and
# `pagoda generate --tensor-parallel-size N` against the single-process output. The script
# runs each under `mpirun -np 2` and `-np 4`; it skips (77, visibly) when this build has
# no MPI or mpirun is missing.
if HAVE_MPI
check_PROGRAMS += tests/dist/test_comm tests/dist/test_tp_models
DIST_TEST_CFLAGS = $(AM_CFLAGS) $(MPI_CFLAGS) $(JANSSON_CFLAGS)
DIST_TEST_LDADD = runtime/libpagoda-private.la $(MPI_LIBS) $(JANSSON_LIBS) -lpthread -lm
tests_dist_test_comm_SOURCES = %reldir%/test_comm.c %reldir%/dist_check.h
tests_dist_test_comm_CPPFLAGS = $(TEST_CPPFLAGS)
tests_dist_test_comm_CFLAGS = $(DIST_TEST_CFLAGS)
tests_dist_test_comm_LDFLAGS = $(TEST_LINKFLAGS)
tests_dist_test_comm_LDADD = $(DIST_TEST_LDADD)
tests_dist_test_tp_models_SOURCES = %reldir%/test_tp_models.c %reldir%/dist_check.h \
	%reldir%/tp_fixture.c %reldir%/tp_fixture.h
tests_dist_test_tp_models_CPPFLAGS = $(TEST_CPPFLAGS)
tests_dist_test_tp_models_CFLAGS = $(DIST_TEST_CFLAGS)
tests_dist_test_tp_models_LDFLAGS = $(TEST_LINKFLAGS)
tests_dist_test_tp_models_LDADD = $(DIST_TEST_LDADD)
endif
SCRIPT_TESTS += %reldir%/test_dist.sh
EXTRA_DIST += %reldir%/test_dist.sh %reldir%/lsan_openmpi.supp
