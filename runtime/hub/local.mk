# The Hugging Face hub client: `pagoda fetch`, the shared HF cache, hub ids wherever a model
# is named, and the model catalog (models/catalog.ini, installed into $(pkgdatadir)). It
# speaks HTTP through libcurl, checks LFS blobs with libcrypto's SHA-256 and reads the
# catalog with inih.
runtime_libpagoda_private_la_SOURCES += \
	%reldir%/hub.h %reldir%/http.h %reldir%/filter.h \
	%reldir%/config.c %reldir%/cache.c %reldir%/cache_scan.c %reldir%/http.c \
	%reldir%/api.c %reldir%/download.c %reldir%/progress.c %reldir%/filter.c \
	%reldir%/fetch.c %reldir%/resolve.c %reldir%/catalog.c
runtime_libpagoda_private_la_CFLAGS += $(CURL_CFLAGS) $(CRYPTO_CFLAGS) $(INIH_CFLAGS) \
	-DPGD_CATALOG_INSTALL_PATH='"$(pkgdatadir)/catalog.ini"' \
	-DPGD_CATALOG_SOURCE_PATH='"$(abs_top_srcdir)/models/catalog.ini"'
runtime_libpagoda_private_la_LIBADD += $(CURL_LIBS) $(CRYPTO_LIBS) $(INIH_LIBS)
dist_pkgdata_DATA = models/catalog.ini
