# The paged KV cache: block pool, prefix cache, kv manager, the cache's device memory, the
# host swap pool and swapping a sequence's blocks to it.
runtime_libpagoda_private_la_SOURCES += \
	%reldir%/block_pool.c %reldir%/block_pool.h %reldir%/kv_cache.c %reldir%/kv_cache.h \
	%reldir%/kv_manager.c %reldir%/kv_manager.h %reldir%/prefix_cache.c \
	%reldir%/prefix_cache.h %reldir%/swap_pool.c %reldir%/swap_pool.h %reldir%/kv_swap.c
