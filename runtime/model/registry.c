/* The plugin registry: opens plugins with dlopen, checks their descriptors against the ABI
 * (include/pagoda/plugin.h), and indexes them by kind, name and claimed architecture. */
#include <pagoda/registry.h>
#include "runtime/base/mem.h"
#include <pagoda/frontend.h>
#include <pagoda/log.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifndef PGD_PLUGIN_INSTALL_DIR
#error "PGD_PLUGIN_INSTALL_DIR is defined by Makefile.am"
#endif

/* The first version of each struct a plugin hands the host ends with the field named
 * here. Later versions only append fields, so these stay the smallest struct_size the host
 * can read, whatever sizeof the struct becomes: never change them when a field is added. */
#define FIRST_SIZE(type, last_field) (offsetof(type, last_field) + sizeof(((type *)0)->last_field))
#define DESCRIPTOR_V1_SIZE FIRST_SIZE(struct pgd_plugin, ops)          /* ABI 1 */
#define ARCH_OPS_V1_SIZE FIRST_SIZE(struct pgd_arch_ops, destroy)      /* ABI 2 */
#define QUANT_OPS_V1_SIZE FIRST_SIZE(struct pgd_quant_ops, release)    /* ABI 2 */
#define FRONTEND_OPS_V1_SIZE FIRST_SIZE(struct pgd_frontend_ops, destroy) /* ABI 1 */

/* Room for one refusal message (a path, a dlerror text and a sentence). */
#define MSG_MAX 1536

struct reg_plugin {
    const struct pgd_plugin *desc; /* static storage in the plugin; valid while handle is open */
    void *handle;                  /* from dlopen; dlclosed by pgd_registry_destroy */
    char *path;                    /* owned: the path as given or as the scan built it */
    char *real;                    /* owned: realpath(path), recognises one file seen twice */
    char *dir;                     /* owned: realpath of the directory scanned, NULL for load_file */
};

struct reg_refusal {
    char *path;                    /* owned */
    char *why;                     /* owned: the whole message, which names the file */
};

struct pgd_registry {
    struct reg_plugin *plugins;    /* owned, [n_plugins], in load order */
    size_t n_plugins, cap_plugins;
    struct reg_refusal *refused;   /* owned, [n_refused], in the order they were refused */
    size_t n_refused, cap_refused;
    char *build_dirs;              /* owned, colon-separated, or NULL */
    char *searched;                /* owned, colon-separated; never NULL */
    bool keep_mapped;              /* PAGODA_NO_DLCLOSE: never dlclose */
};

const char *pgd_plugin_kind_str(enum pgd_plugin_kind kind)
{
    switch (kind) {
    case PGD_PLUGIN_ARCH: return "architecture";
    case PGD_PLUGIN_QUANT: return "quant";
    case PGD_PLUGIN_FRONTEND: return "frontend";
    }
    return "unknown";
}

/* dir + "/" + name, without doubling a trailing slash. Returned string owned by the caller. */
static char *join_path(const char *dir, const char *name)
{
    size_t dl = strlen(dir), nl = strlen(name);
    bool slash = dl > 0 && dir[dl - 1] == '/';
    char *p = malloc(dl + nl + 2);
    if (p)
        snprintf(p, dl + nl + 2, "%s%s%s", dir, slash ? "" : "/", name);
    return p;
}

static void unload(const struct pgd_registry *reg, void *handle)
{
    if (!reg->keep_mapped)
        dlclose(handle);
}

enum pgd_status pgd_registry_create(struct pgd_registry **out, char *err, size_t errlen)
{
    if (!out)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "pgd_registry_create: out is NULL");
    *out = NULL;
    struct pgd_registry *reg = calloc(1, sizeof *reg);
    if (!reg || !(reg->searched = strdup(""))) {
        free(reg);
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "plugin registry: out of memory");
    }
    const char *nd = getenv("PAGODA_NO_DLCLOSE");
    reg->keep_mapped = nd && nd[0] && strcmp(nd, "0") != 0;
    *out = reg;
    return PGD_OK;
}

void pgd_registry_destroy(struct pgd_registry *reg)
{
    if (!reg)
        return;
    /* Unload in reverse order: a later plugin may use what an earlier one set up. */
    for (size_t i = reg->n_plugins; i-- > 0;) {
        struct reg_plugin *p = &reg->plugins[i];
        unload(reg, p->handle);
        free(p->path);
        free(p->real);
        free(p->dir);
    }
    for (size_t i = 0; i < reg->n_refused; i++) {
        free(reg->refused[i].path);
        free(reg->refused[i].why);
    }
    free(reg->plugins);
    free(reg->refused);
    free(reg->build_dirs);
    free(reg->searched);
    free(reg);
}

/* ---- validation ---------------------------------------------------------------------- */

/* Refuses a vtable whose struct_size stops before the end of the struct's first version;
 * nothing else of the vtable is read before this passes. */
static enum pgd_status check_ops_size(const char *path, const struct pgd_plugin *d,
                                      const char *type, uint32_t size, size_t first_size,
                                      char *err, size_t errlen)
{
    if (size >= first_size)
        return PGD_OK;
    return pgd_errf(err, errlen, PGD_ERR_ABI,
                    "%s: %s plugin '%s': struct %s has struct_size %" PRIu32 " bytes, smaller "
                    "than the %zu bytes of its first version: set .struct_size = sizeof(struct "
                    "%s) and rebuild the plugin against this pagoda",
                    path, pgd_plugin_kind_str(d->kind), d->name, type, size, first_size, type);
}

/* Refuses a NULL, empty or empty-entry list of claimed names (architectures, methods). */
static enum pgd_status check_claims(const char *path, const struct pgd_plugin *d,
                                    const char *const *list, const char *what,
                                    char *err, size_t errlen)
{
    if (!list || !list[0])
        return pgd_errf(err, errlen, PGD_ERR_PLUGIN,
                        "%s: %s plugin '%s' claims no %s (its %s list is NULL or empty)",
                        path, pgd_plugin_kind_str(d->kind), d->name, what, what);
    for (size_t i = 0; list[i]; i++)
        if (!list[i][0])
            return pgd_errf(err, errlen, PGD_ERR_PLUGIN,
                            "%s: %s plugin '%s' claims an empty %s name (entry %zu)", path,
                            pgd_plugin_kind_str(d->kind), d->name, what, i);
    return PGD_OK;
}

/* One function a vtable must have: its name, and whether the plugin's vtable has it. */
struct required_fn {
    const char *name;
    bool present;
};

/* Refuses a vtable (struct `type`) missing any of req[n], naming the missing ones and
 * every required one. */
static enum pgd_status check_required(const char *path, const struct pgd_plugin *d,
                                      const char *type, const struct required_fn *req,
                                      size_t n, char *err, size_t errlen)
{
    char missing[160] = "", needs[160] = "";
    for (size_t i = 0; i < n; i++) {
        size_t ml = strlen(missing), nl = strlen(needs);
        if (!req[i].present)
            snprintf(missing + ml, sizeof missing - ml, "%s%s", ml ? ", " : "", req[i].name);
        snprintf(needs + nl, sizeof needs - nl, "%s%s", i == 0 ? "" : i + 1 < n ? ", " : " and ",
                 req[i].name);
    }
    if (!missing[0])
        return PGD_OK;
    return pgd_errf(err, errlen, PGD_ERR_PLUGIN,
                    "%s: %s plugin '%s' has no %s in its vtable (struct %s needs %s)", path,
                    pgd_plugin_kind_str(d->kind), d->name, missing, type, needs);
}

#define N_REQUIRED(req) (sizeof(req) / sizeof((req)[0]))

/* Each kind's vtable: its size first (nothing else is read when it is short), then its
 * required functions, then the names it claims. */
static enum pgd_status check_arch_ops(const char *path, const struct pgd_plugin *d,
                                      char *err, size_t errlen)
{
    const struct pgd_arch_ops *a = d->arch;
    enum pgd_status st = check_ops_size(path, d, "pgd_arch_ops", a->struct_size,
                                        ARCH_OPS_V1_SIZE, err, errlen);
    if (st)
        return st;
    const struct required_fn req[] = {
        { "load", a->load }, { "forward", a->forward }, { "destroy", a->destroy },
    };
    if ((st = check_required(path, d, "pgd_arch_ops", req, N_REQUIRED(req), err, errlen)))
        return st;
    return check_claims(path, d, a->architectures, "architectures", err, errlen);
}

static enum pgd_status check_quant_ops(const char *path, const struct pgd_plugin *d,
                                       char *err, size_t errlen)
{
    const struct pgd_quant_ops *q = d->quant;
    enum pgd_status st = check_ops_size(path, d, "pgd_quant_ops", q->struct_size,
                                        QUANT_OPS_V1_SIZE, err, errlen);
    if (st)
        return st;
    const struct required_fn req[] = {
        { "configure", q->configure }, { "is_quantized", q->is_quantized },
        { "load_linear", q->load_linear }, { "linear", q->linear },
        { "free_linear", q->free_linear }, { "release", q->release },
    };
    if ((st = check_required(path, d, "pgd_quant_ops", req, N_REQUIRED(req), err, errlen)))
        return st;
    return check_claims(path, d, q->methods, "quantization methods", err, errlen);
}

static enum pgd_status check_frontend_ops(const char *path, const struct pgd_plugin *d,
                                          char *err, size_t errlen)
{
    const struct pgd_frontend_ops *o = d->frontend;
    enum pgd_status st = check_ops_size(path, d, "pgd_frontend_ops", o->struct_size,
                                        FRONTEND_OPS_V1_SIZE, err, errlen);
    if (st)
        return st;
    const struct required_fn req[] = {
        { "create", o->create }, { "address", o->address }, { "attach", o->attach },
        { "shutdown", o->shutdown }, { "destroy", o->destroy },
    };
    return check_required(path, d, "pgd_frontend_ops", req, N_REQUIRED(req), err, errlen);
}

/* Checks everything a descriptor must be, whoever else is loaded. */
static enum pgd_status check_descriptor(const char *path, const struct pgd_plugin *d,
                                        char *err, size_t errlen)
{
    if (!d)
        return pgd_errf(err, errlen, PGD_ERR_PLUGIN,
                        "%s: %s() returned NULL: the plugin declined to load", path,
                        PGD_PLUGIN_ENTRY);
    if (d->abi_version != PGD_ABI_VERSION)
        return pgd_errf(err, errlen, PGD_ERR_ABI,
                        "%s: built for plugin ABI version %" PRIu32 ", but this pagoda has "
                        "plugin ABI version %u: rebuild the plugin against this pagoda",
                        path, d->abi_version, PGD_ABI_VERSION);
    if (d->struct_size < DESCRIPTOR_V1_SIZE)
        return pgd_errf(err, errlen, PGD_ERR_ABI,
                        "%s: descriptor struct_size is %" PRIu32 " bytes, smaller than the "
                        "%zu bytes of the first struct pgd_plugin", path, d->struct_size,
                        (size_t)DESCRIPTOR_V1_SIZE);
    switch (d->kind) {
    case PGD_PLUGIN_ARCH:
    case PGD_PLUGIN_QUANT:
    case PGD_PLUGIN_FRONTEND:
        break;
    default:
        return pgd_errf(err, errlen, PGD_ERR_PLUGIN,
                        "%s: unknown plugin kind %d (known: %d architecture, %d quant, "
                        "%d frontend)", path, (int)d->kind, PGD_PLUGIN_ARCH, PGD_PLUGIN_QUANT,
                        PGD_PLUGIN_FRONTEND);
    }
    if (!d->name || !d->name[0])
        return pgd_errf(err, errlen, PGD_ERR_PLUGIN, "%s: the %s plugin's descriptor has %s name",
                        path, pgd_plugin_kind_str(d->kind), d->name ? "an empty" : "a NULL");
    if (!d->ops)
        return pgd_errf(err, errlen, PGD_ERR_PLUGIN, "%s: %s plugin '%s' has a NULL vtable",
                        path, pgd_plugin_kind_str(d->kind), d->name);
    switch (d->kind) {
    case PGD_PLUGIN_ARCH: return check_arch_ops(path, d, err, errlen);
    case PGD_PLUGIN_QUANT: return check_quant_ops(path, d, err, errlen);
    case PGD_PLUGIN_FRONTEND: return check_frontend_ops(path, d, err, errlen);
    }
    return PGD_OK;
}

/* Keeps the libpagoda.so a plugin links mapped until the process ends (RTLD_NODELETE on
 * the copy already loaded). A program that links the runtime itself (the pagoda tool and
 * the tests link runtime/libpagoda-private.la with -export-dynamic) maps libpagoda.so only as
 * its plugins' dependency, so the last plugin's dlclose would unload it: its destructors
 * run (the CUDA runtime unregisters its kernels) and the next engine's plugins map it
 * afresh, where the CUDA kernels no longer load (cuLibraryLoadData: invalid argument). So
 * a CPU engine then a CUDA engine in one process failed unless PAGODA_NO_DLCLOSE was set.
 * Plugins themselves still unload. The library is found as the object that defines
 * pgd_errf in the plugin's dependencies (dlsym on the handle searches only those); a plugin
 * that does not link libpagoda.so has nothing to pin. */
static void pin_host_library(void *plugin, const char *real)
{
    void *sym = dlsym(plugin, "pgd_errf");
    Dl_info lib;
    /* real: the plugin as dlopen'ed, which names it in dladdr's answer when it defines
     * pgd_errf itself (a plugin with the runtime linked in: nothing else to pin). */
    if (!sym || !dladdr(sym, &lib) || !lib.dli_fname || !strcmp(lib.dli_fname, real))
        return;
    void *h = dlopen(lib.dli_fname, RTLD_LAZY | RTLD_NOLOAD | RTLD_NODELETE);
    if (!h) {
        PGD_DEBUG("%s: cannot keep %s mapped: %s", real, lib.dli_fname, dlerror());
        return;
    }
    dlclose(h); /* drops the reference dlopen took; RTLD_NODELETE stays */
}

/* dlopens real (the file at path), calls its entry and checks the descriptor. On success the
 * caller owns *handle; on failure nothing stays open (unless keep_mapped) but the
 * libpagoda.so it linked (pin_host_library). */
static enum pgd_status open_plugin(const struct pgd_registry *reg, const char *path,
                                   const char *real, void **handle,
                                   const struct pgd_plugin **desc, char *err, size_t errlen)
{
    dlerror();
    void *h = dlopen(real, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *why = dlerror();
        return pgd_errf(err, errlen, PGD_ERR_PLUGIN, "%s: not a loadable shared object: %s",
                        path, why ? why : "dlopen failed");
    }
    pin_host_library(h, real);
    dlerror();
    void *sym = dlsym(h, PGD_PLUGIN_ENTRY);
    if (!sym) {
        unload(reg, h);
        return pgd_errf(err, errlen, PGD_ERR_PLUGIN,
                        "%s: no %s symbol: not a pagoda plugin (a plugin exports "
                        "const struct pgd_plugin *%s(uint32_t host_abi))",
                        path, PGD_PLUGIN_ENTRY, PGD_PLUGIN_ENTRY);
    }
    pgd_plugin_init_fn init;
    memcpy(&init, &sym, sizeof init); /* POSIX: a data pointer from dlsym names a function */
    const struct pgd_plugin *d = init(PGD_ABI_VERSION);
    enum pgd_status st = check_descriptor(path, d, err, errlen);
    if (st != PGD_OK) {
        unload(reg, h);
        return st;
    }
    *handle = h;
    *desc = d;
    return PGD_OK;
}

/* ---- loading ------------------------------------------------------------------------- */

static const struct reg_plugin *find_name(const struct pgd_registry *reg, const char *name)
{
    for (size_t i = 0; i < reg->n_plugins; i++)
        if (strcmp(reg->plugins[i].desc->name, name) == 0)
            return &reg->plugins[i];
    return NULL;
}

/* The names a plugin claims: an architecture plugin's architectures, a quant plugin's
 * methods; NULL for a kind that claims nothing. */
static const char *const *claims_of(const struct pgd_plugin *d)
{
    switch (d->kind) {
    case PGD_PLUGIN_ARCH: return d->arch->architectures;
    case PGD_PLUGIN_QUANT: return d->quant->methods;
    case PGD_PLUGIN_FRONTEND: break;
    }
    return NULL;
}

/* The first loaded plugin of kind that claims name. */
static const struct reg_plugin *find_claim(const struct pgd_registry *reg,
                                           enum pgd_plugin_kind kind, const char *name)
{
    for (size_t i = 0; i < reg->n_plugins; i++) {
        const struct pgd_plugin *d = reg->plugins[i].desc;
        if (d->kind != kind)
            continue;
        for (const char *const *a = claims_of(d); *a; a++)
            if (strcmp(*a, name) == 0)
                return &reg->plugins[i];
    }
    return NULL;
}

/* Loads path and adds it. dir is the realpath of the directory being scanned, or NULL for an
 * explicit pgd_registry_load_file. *skipped is set (and PGD_OK returned) when a scan meets a
 * file already loaded, or a name already taken by a plugin from another directory (the
 * earlier one wins). */
static enum pgd_status add_plugin(struct pgd_registry *reg, const char *path, const char *dir,
                                  bool *skipped, char *err, size_t errlen)
{
    *skipped = false;
    char *real = realpath(path, NULL);
    if (!real) {
        int e = errno;
        return pgd_errf(err, errlen,
                        e == ENOENT || e == ENOTDIR ? PGD_ERR_NOT_FOUND : PGD_ERR_IO,
                        "%s: %s", path, strerror(e));
    }
    if (dir)
        for (size_t i = 0; i < reg->n_plugins; i++)
            if (strcmp(reg->plugins[i].real, real) == 0) {
                PGD_DEBUG("%s: already loaded as %s", path, reg->plugins[i].path);
                free(real);
                *skipped = true;
                return PGD_OK;
            }

    void *h = NULL;
    const struct pgd_plugin *d = NULL;
    enum pgd_status st = open_plugin(reg, path, real, &h, &d, err, errlen);
    if (st != PGD_OK) {
        free(real);
        return st;
    }

    const struct reg_plugin *same = find_name(reg, d->name);
    if (same && dir && (!same->dir || strcmp(same->dir, dir) != 0)) {
        PGD_INFO("%s: plugin '%s' skipped: %s, earlier in the search path, has that name",
                 path, d->name, same->path);
        unload(reg, h);
        free(real);
        *skipped = true;
        return PGD_OK;
    }
    if (same) {
        if (strcmp(same->real, real) == 0)
            st = pgd_errf(err, errlen, PGD_ERR_PLUGIN, "%s: plugin '%s' is already loaded",
                          path, d->name);
        else
            st = pgd_errf(err, errlen, PGD_ERR_PLUGIN,
                          "%s: plugin name '%s' is already taken by %s", path, d->name,
                          same->path);
        unload(reg, h);
        free(real);
        return st;
    }

    struct reg_plugin p = { .desc = d, .handle = h, .path = strdup(path), .real = real,
                            .dir = dir ? strdup(dir) : NULL };
    if (!p.path || (dir && !p.dir) ||
        !pgd__array_reserve(reg->plugins, reg->cap_plugins, reg->n_plugins + 1)) {
        free(p.path);
        free(p.dir);
        free(real);
        unload(reg, h);
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "%s: out of memory while loading", path);
    }
    if (claims_of(d))
        for (const char *const *a = claims_of(d); *a; a++) {
            const struct reg_plugin *owner = find_claim(reg, d->kind, *a);
            if (owner)
                PGD_WARN("%s: plugin '%s' claims %s, which plugin '%s' (%s) already claims "
                         "and keeps", path, d->name, *a, owner->desc->name, owner->path);
        }
    reg->plugins[reg->n_plugins++] = p;
    PGD_DEBUG("loaded %s plugin '%s' %s from %s", pgd_plugin_kind_str(d->kind), d->name,
              d->version ? d->version : "", path);
    return PGD_OK;
}

enum pgd_status pgd_registry_load_file(struct pgd_registry *reg, const char *path,
                                       char *err, size_t errlen)
{
    if (!reg || !path || !path[0])
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG,
                        "pgd_registry_load_file: %s is NULL or empty", reg ? "path" : "reg");
    bool skipped;
    return add_plugin(reg, path, NULL, &skipped, err, errlen);
}

static void record_refusal(struct pgd_registry *reg, const char *path, const char *why)
{
    if (!pgd__array_reserve(reg->refused, reg->cap_refused, reg->n_refused + 1))
        return;
    struct reg_refusal r = { strdup(path), strdup(why) };
    if (!r.path || !r.why) {
        free(r.path);
        free(r.why);
        return;
    }
    reg->refused[reg->n_refused++] = r;
}

static bool already_refused(const struct pgd_registry *reg, const char *path)
{
    for (size_t i = 0; i < reg->n_refused; i++)
        if (strcmp(reg->refused[i].path, path) == 0)
            return true;
    return false;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool is_so_name(const char *name)
{
    size_t n = strlen(name);
    return n > 3 && strcmp(name + n - 3, ".so") == 0;
}

/* The *.so names in dir, sorted with strcmp (locale-independent). Returns the count, or -1
 * (logged) when dir cannot be read; *out (owned by the caller, each name too) on success. */
static long list_so_files(const char *dir, char ***out)
{
    *out = NULL;
    DIR *dp = opendir(dir);
    if (!dp) {
        if (errno == ENOENT || errno == ENOTDIR)
            PGD_DEBUG("plugin directory %s: %s", dir, strerror(errno));
        else
            PGD_WARN("plugin directory %s: %s", dir, strerror(errno));
        return -1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    bool oom = false;
    while (!oom && (de = readdir(dp)) != NULL) {
        if (!is_so_name(de->d_name))
            continue;
        char *copy = strdup(de->d_name);
        if (!copy || !pgd__array_reserve(names, cap, n + 1)) {
            free(copy);
            oom = true;
            break;
        }
        names[n++] = copy;
    }
    closedir(dp);
    if (oom) {
        PGD_WARN("plugin directory %s: out of memory while listing it", dir);
        for (size_t i = 0; i < n; i++)
            free(names[i]);
        free(names);
        return -1;
    }
    if (n > 1)
        qsort(names, n, sizeof *names, cmp_names);
    *out = names;
    return (long)n;
}

int pgd_registry_load_dir(struct pgd_registry *reg, const char *dir)
{
    if (!reg || !dir || !dir[0])
        return 0;
    char **names;
    long n = list_so_files(dir, &names);
    if (n < 0)
        return 0;
    char *rdir = realpath(dir, NULL);
    int loaded = 0;
    for (long i = 0; i < n; i++) {
        char *path = join_path(dir, names[i]);
        struct stat sb;
        if (path && stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) {
            char msg[MSG_MAX];
            bool skipped = false;
            enum pgd_status st = add_plugin(reg, path, rdir ? rdir : dir, &skipped, msg,
                                            sizeof msg);
            if (st == PGD_OK && !skipped)
                loaded++;
            else if (st != PGD_OK && !already_refused(reg, path)) {
                PGD_WARN("refused plugin %s", msg);
                record_refusal(reg, path, msg);
            }
        }
        free(path);
        free(names[i]);
    }
    free(names);
    free(rdir);
    return loaded;
}

enum pgd_status pgd_registry_set_build_dirs(struct pgd_registry *reg, const char *dirs,
                                            char *err, size_t errlen)
{
    if (!reg)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "pgd_registry_set_build_dirs: reg is NULL");
    char *copy = NULL;
    if (dirs && !(copy = strdup(dirs)))
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "plugin build dirs: out of memory");
    free(reg->build_dirs);
    reg->build_dirs = copy;
    return PGD_OK;
}

const char *pgd_registry_install_dir(void) { return PGD_PLUGIN_INSTALL_DIR; }

/* The search path as a list of directories: each colon-separated source in order, empty
 * entries dropped, a directory named twice (by realpath when it exists) kept once. */
struct dir_list {
    char **dirs;                   /* owned, [n], as written */
    char **keys;                   /* owned, [n], realpath or as written */
    size_t n, cap_dirs, cap_keys;
};

static bool dir_list_add(struct dir_list *l, const char *s, size_t len)
{
    char *d = strndup(s, len);
    if (!d)
        return false;
    char *key = realpath(d, NULL);
    if (!key)
        key = strdup(d);
    if (!key) {
        free(d);
        return false;
    }
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->keys[i], key) == 0) {
            free(d);
            free(key);
            return true;
        }
    if (!pgd__array_reserve(l->dirs, l->cap_dirs, l->n + 1) ||
        !pgd__array_reserve(l->keys, l->cap_keys, l->n + 1)) {
        free(d);
        free(key);
        return false;
    }
    l->dirs[l->n] = d;
    l->keys[l->n] = key;
    l->n++;
    return true;
}

static bool dir_list_add_all(struct dir_list *l, const char *colon_list)
{
    if (!colon_list)
        return true;
    const char *s = colon_list;
    for (;;) {
        const char *end = strchr(s, ':');
        size_t len = end ? (size_t)(end - s) : strlen(s);
        if (len > 0 && !dir_list_add(l, s, len))
            return false;
        if (!end)
            return true;
        s = end + 1;
    }
}

static void dir_list_free(struct dir_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->dirs[i]);
        free(l->keys[i]);
    }
    free(l->dirs);
    free(l->keys);
}

int pgd_registry_load_search_path(struct pgd_registry *reg, const char *extra_dirs)
{
    if (!reg)
        return 0;
    struct dir_list l = { 0 };
    const char *sources[] = { extra_dirs, getenv("PAGODA_PLUGIN_PATH"), reg->build_dirs,
                              PGD_PLUGIN_INSTALL_DIR };
    for (size_t i = 0; i < sizeof sources / sizeof sources[0]; i++)
        if (!dir_list_add_all(&l, sources[i])) {
            PGD_WARN("plugin search path: out of memory; searching only %zu directories", l.n);
            break;
        }
    size_t total = 1;
    for (size_t i = 0; i < l.n; i++)
        total += strlen(l.dirs[i]) + 1;
    char *searched = malloc(total);
    if (searched) {
        searched[0] = '\0';
        size_t pos = 0;
        for (size_t i = 0; i < l.n; i++)
            pos += (size_t)snprintf(searched + pos, total - pos, "%s%s", i ? ":" : "",
                                    l.dirs[i]);
        free(reg->searched);
        reg->searched = searched;
    }
    int loaded = 0;
    for (size_t i = 0; i < l.n; i++)
        loaded += pgd_registry_load_dir(reg, l.dirs[i]);
    dir_list_free(&l);
    return loaded;
}

const char *pgd_registry_search_path(const struct pgd_registry *reg)
{
    return reg ? reg->searched : "";
}

/* ---- queries ------------------------------------------------------------------------- */

size_t pgd_registry_count(const struct pgd_registry *reg) { return reg ? reg->n_plugins : 0; }

const struct pgd_plugin *pgd_registry_at(const struct pgd_registry *reg, size_t i,
                                         const char **path)
{
    PGD_ASSERT(reg && i < reg->n_plugins);
    if (path)
        *path = reg->plugins[i].path;
    return reg->plugins[i].desc;
}

size_t pgd_registry_refused_count(const struct pgd_registry *reg)
{
    return reg ? reg->n_refused : 0;
}

void pgd_registry_refused_at(const struct pgd_registry *reg, size_t i, const char **path,
                             const char **why)
{
    PGD_ASSERT(reg && i < reg->n_refused);
    if (path)
        *path = reg->refused[i].path;
    if (why)
        *why = reg->refused[i].why;
}

const struct pgd_plugin *pgd_registry_find(const struct pgd_registry *reg,
                                           enum pgd_plugin_kind kind, const char *name)
{
    if (!reg || !name)
        return NULL;
    const struct reg_plugin *p = find_name(reg, name);
    return p && p->desc->kind == kind ? p->desc : NULL;
}

const struct pgd_plugin *pgd_registry_find_arch(const struct pgd_registry *reg,
                                                const char *hf_architecture)
{
    if (!reg || !hf_architecture)
        return NULL;
    const struct reg_plugin *p = find_claim(reg, PGD_PLUGIN_ARCH, hf_architecture);
    return p ? p->desc : NULL;
}

const struct pgd_plugin *pgd_registry_find_quant(const struct pgd_registry *reg,
                                                 const char *quant_method)
{
    if (!reg || !quant_method)
        return NULL;
    const struct reg_plugin *p = find_claim(reg, PGD_PLUGIN_QUANT, quant_method);
    return p ? p->desc : NULL;
}

/* Writes every name the plugins of kind claim, once each, in load order, into buf. */
static void list_claims(const struct pgd_registry *reg, enum pgd_plugin_kind kind, char *buf,
                        size_t buflen)
{
    if (!buf || buflen == 0)
        return;
    buf[0] = '\0';
    size_t pos = 0;
    bool any = false;
    for (size_t i = 0; reg && i < reg->n_plugins; i++) {
        const struct pgd_plugin *d = reg->plugins[i].desc;
        if (d->kind != kind)
            continue;
        const char *const *claims = claims_of(d);
        for (const char *const *a = claims; *a; a++) {
            if (find_claim(reg, kind, *a) != &reg->plugins[i])
                continue; /* listed with the plugin that claimed it first */
            bool seen = false;
            for (const char *const *b = claims; b != a && !seen; b++)
                seen = strcmp(*b, *a) == 0;
            if (seen)
                continue;
            if (pos < buflen) {
                int w = snprintf(buf + pos, buflen - pos, "%s%s", any ? ", " : "", *a);
                pos += w > 0 ? (size_t)w : 0;
            }
            any = true;
        }
    }
    if (!any)
        snprintf(buf, buflen, "(none)");
}

void pgd_registry_list_archs(const struct pgd_registry *reg, char *buf, size_t buflen)
{
    list_claims(reg, PGD_PLUGIN_ARCH, buf, buflen);
}

void pgd_registry_list_quant_methods(const struct pgd_registry *reg, char *buf, size_t buflen)
{
    list_claims(reg, PGD_PLUGIN_QUANT, buf, buflen);
}
