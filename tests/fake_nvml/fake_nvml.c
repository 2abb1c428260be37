/* A fake libnvidia-ml.so.1 for tests: pynvml loads it through LD_LIBRARY_PATH (or an earlier CDLL of
 * its absolute path) and our NVML backend runs against it unchanged.
 *
 * Its GPUs come from the scenario file named by FAKE_NVML_SCENARIO, one `key=value` a line:
 *   init_error=9                     nvmlInitWithFlags returns this code
 *   driver_version=550.54.15         cuda_driver_version=12040
 *   gpu_count=2
 *   gpu.0.name=...  gpu.0.util_gpu=45  ...      a field absent from the file reads NOT_SUPPORTED
 *   gpu.0.fail.nvmlDeviceGetPowerUsage=999      that call on that GPU returns the code
 *   gpu.1.lost=1                                every call on GPU 1 returns GPU_IS_LOST
 *   event.0=1:79                                an XID event (GPU 1, XID 79), delivered once, in order
 *   gpu.0.mig_max=7  gpu.0.mig.2.uuid=MIG-...  gpu.0.mig.2.name=... MIG 1g.10gb  gpu.0.mig.2.gi=9
 *   gpu.0.mig.2.ci=0  gpu.0.mig.2.memory_total=...  gpu.0.mig.2.memory_used=...
 *                                               a MIG instance in slot 2; a slot without a uuid is empty
 *   gpu.0.processes=3  gpu.0.proc.1.pid=4242  gpu.0.proc.1.used=na  gpu.0.proc.1.sm=30  gpu.0.proc.1.gi=7
 *                                               compute processes and their samples (see below)
 * The file is re-read whenever its size or mtime changes, so a test can change a GPU between reads. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <pthread.h>

/* -DOLD_DRIVER builds the library as a driver from before the versioned entry points: each _v2/_v3
   function below is exported under its unversioned name only, as older drivers did. */
#ifdef OLD_DRIVER
#define V(name, version) name
#else
#define V(name, version) name##version
#endif

typedef int nvmlReturn_t;
enum { OK = 0, UNINIT = 1, INVALID = 2, NOT_SUPPORTED = 3, INSUFFICIENT_SIZE = 7, TIMEOUT = 10,
       GPU_IS_LOST = 15, UNKNOWN = 999 };
#define MAXGPU 64
#define MAXKV 4096
#define MAXEV 256

#define MAXMIG 8
typedef struct { int index, mig; } device_t; /* mig: the instance's slot, -1 for a whole GPU */
static device_t devices[MAXGPU];
#ifndef OLD_DRIVER
static device_t mig_devices[MAXGPU][MAXMIG];
#endif
/* Readers take `cur` once; a reload builds a new table and swaps the pointer. Old tables are never
 * freed: the XID thread may still be reading one, and a test reloads only a few times. */
typedef struct { int n; char *k[MAXKV], *v[MAXKV]; } table_t;
static table_t empty, *volatile cur = &empty;
static int initialized, delivered, registered[MAXGPU];
static long long loaded_mtime = -1, loaded_size = -1;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static void load(void) {
    const char *path = getenv("FAKE_NVML_SCENARIO");
    struct stat st;
    if (!path || stat(path, &st) != 0) return;
    long long mt = (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
    if (mt == loaded_mtime && st.st_size == loaded_size) return;
    FILE *f = fopen(path, "r");
    if (!f) return;
    table_t *t = calloc(1, sizeof *t);
    char line[1024];
    while (fgets(line, sizeof line, f) && t->n < MAXKV) {
        line[strcspn(line, "\r\n")] = 0;
        char *eq = strchr(line, '=');
        if (!eq || line[0] == '#') continue;
        *eq = 0;
        t->k[t->n] = strdup(line);
        t->v[t->n] = strdup(eq + 1);
        t->n++;
    }
    fclose(f);
    __sync_synchronize();
    cur = t;
    loaded_mtime = mt;
    loaded_size = st.st_size;
}

static const char *get(const char *key) {
    table_t *t = cur;
    for (int i = 0; i < t->n; i++) if (strcmp(t->k[i], key) == 0) return t->v[i];
    return NULL;
}

static const char *gget(int gpu, const char *key) {
    char k[256];
    snprintf(k, sizeof k, "gpu.%d.%s", gpu, key);
    return get(k);
}

/* A field of what the handle names: the GPU's own, or its MIG instance's (gpu.N.mig.SLOT.key). */
static const char *hget(void *h, const char *key) {
    const device_t *d = h;
    if (d->mig < 0) return gget(d->index, key);
    char k[160];
    snprintf(k, sizeof k, "mig.%d.%s", d->mig, key);
    return gget(d->index, k);
}

static nvmlReturn_t hstr(void *h, const char *key, char *buf, unsigned int len) {
    const char *v = hget(h, key);
    if (!v) return NOT_SUPPORTED;
    if (strlen(v) + 1 > len) return INSUFFICIENT_SIZE;
    strcpy(buf, v);
    return OK;
}

static nvmlReturn_t hull(void *h, const char *key, unsigned long long *out) {
    const char *v = hget(h, key);
    if (!v) return NOT_SUPPORTED;
    *out = strtoull(v, NULL, 10);
    return OK;
}

static int gpu_count(void) {
    const char *v = get("gpu_count");
    return v ? atoi(v) : 0;
}

/* Common prologue of a device call: the error to return, or OK. */
static nvmlReturn_t check(void *dev, const char *fn) {
    if (!initialized) return UNINIT;
    if (!dev) return INVALID;
    int g = ((device_t *)dev)->index;
    const char *lost = gget(g, "lost");
    if (lost && atoi(lost)) return GPU_IS_LOST;
    char k[160];
    snprintf(k, sizeof k, "fail.%s", fn);
    const char *code = gget(g, k);
    return code ? atoi(code) : OK;
}

#define DEV(h) (((device_t *)(h))->index)
#define PRE(h) nvmlReturn_t _r = check(h, __func__); if (_r) return _r; int g = DEV(h);

static nvmlReturn_t uint_field(int g, const char *key, unsigned int *out) {
    const char *v = gget(g, key);
    if (!v) return NOT_SUPPORTED;
    *out = (unsigned int)strtoul(v, NULL, 10);
    return OK;
}

static nvmlReturn_t ull_field(int g, const char *key, unsigned long long *out) {
    const char *v = gget(g, key);
    if (!v) return NOT_SUPPORTED;
    *out = strtoull(v, NULL, 10);
    return OK;
}

static nvmlReturn_t str_field(int g, const char *key, char *buf, unsigned int len) {
    const char *v = gget(g, key);
    if (!v) return NOT_SUPPORTED;
    if (strlen(v) + 1 > len) return INSUFFICIENT_SIZE;
    strcpy(buf, v);
    return OK;
}

nvmlReturn_t nvmlInitWithFlags(unsigned int flags) {
    (void)flags;
    pthread_mutex_lock(&mu);
    load();
    const char *e = get("init_error");
    int err = e ? atoi(e) : 0;
    if (!err && initialized++ == 0) {  /* a fresh start: events count from the scenario's first again */
        delivered = 0;
        memset(registered, 0, sizeof registered);
    }
    pthread_mutex_unlock(&mu);
    return err;
}
nvmlReturn_t V(nvmlInit, _v2)(void) { return nvmlInitWithFlags(0); }
nvmlReturn_t nvmlShutdown(void) { if (initialized) initialized--; return OK; }

const char *nvmlErrorString(nvmlReturn_t r) {
    switch (r) {
    case OK: return "Success";
    case NOT_SUPPORTED: return "Not Supported";
    case GPU_IS_LOST: return "GPU is lost";
    case TIMEOUT: return "Timeout";
    default: return "Unknown Error";
    }
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *buf, unsigned int len) {
    const char *v = get("driver_version");
    if (!v) return NOT_SUPPORTED;
    snprintf(buf, len, "%s", v);
    return OK;
}
nvmlReturn_t nvmlSystemGetCudaDriverVersion(int *v) {
    const char *s = get("cuda_driver_version");
    if (!s) return NOT_SUPPORTED;
    *v = atoi(s);
    return OK;
}
#ifndef OLD_DRIVER
nvmlReturn_t nvmlSystemGetCudaDriverVersion_v2(int *v) { return nvmlSystemGetCudaDriverVersion(v); }
#endif

nvmlReturn_t V(nvmlDeviceGetCount, _v2)(unsigned int *n) {
    if (!initialized) return UNINIT;
    pthread_mutex_lock(&mu);
    load();
    const char *reported = get("reported_gpu_count"); /* what a broken driver might say */
    pthread_mutex_unlock(&mu);
    *n = reported ? (unsigned int)strtoul(reported, NULL, 10) : (unsigned int)gpu_count();
    return OK;
}
nvmlReturn_t V(nvmlDeviceGetHandleByIndex, _v2)(unsigned int i, void **h) {
    if (!initialized) return UNINIT;
    pthread_mutex_lock(&mu);
    load();
    pthread_mutex_unlock(&mu);
    if ((int)i >= gpu_count() || i >= MAXGPU) return INVALID;
    devices[i].index = (int)i;
    devices[i].mig = -1;
    *h = &devices[i];
    return check(&devices[i], "nvmlDeviceGetHandleByIndex");
}
nvmlReturn_t nvmlDeviceGetIndex(void *h, unsigned int *i) { PRE(h) *i = g; return OK; }
nvmlReturn_t nvmlDeviceGetName(void *h, char *b, unsigned int n) { PRE(h) (void)g; return hstr(h, "name", b, n); }
nvmlReturn_t nvmlDeviceGetUUID(void *h, char *b, unsigned int n) { PRE(h) (void)g; return hstr(h, "uuid", b, n); }

#ifndef OLD_DRIVER /* drivers before MIG (R450) have none of these */
nvmlReturn_t nvmlDeviceGetMaxMigDeviceCount(void *h, unsigned int *n) {
    PRE(h)
    if (((device_t *)h)->mig >= 0) return INVALID;
    return uint_field(g, "mig_max", n);
}
nvmlReturn_t nvmlDeviceGetMigDeviceHandleByIndex(void *h, unsigned int i, void **mig) {
    PRE(h)
    unsigned int max;
    if (((device_t *)h)->mig >= 0 || uint_field(g, "mig_max", &max) || i >= max || i >= MAXMIG) return INVALID;
    char k[64];
    snprintf(k, sizeof k, "mig.%u.uuid", i);
    if (!gget(g, k)) return 6; /* NOT_FOUND: an empty slot */
    mig_devices[g][i].index = g;
    mig_devices[g][i].mig = (int)i;
    *mig = &mig_devices[g][i];
    return OK;
}
static nvmlReturn_t instance_id(void *h, const char *key, unsigned int *id) {
    if (((device_t *)h)->mig < 0) return INVALID;
    const char *v = hget(h, key);
    if (!v) return NOT_SUPPORTED;
    *id = (unsigned int)strtoul(v, NULL, 10);
    return OK;
}
nvmlReturn_t nvmlDeviceGetGpuInstanceId(void *h, unsigned int *id) { PRE(h) (void)g; return instance_id(h, "gi", id); }
nvmlReturn_t nvmlDeviceGetComputeInstanceId(void *h, unsigned int *id) { PRE(h) (void)g; return instance_id(h, "ci", id); }
#endif
nvmlReturn_t nvmlDeviceGetSerial(void *h, char *b, unsigned int n) { PRE(h) return str_field(g, "serial", b, n); }
nvmlReturn_t nvmlDeviceGetMinorNumber(void *h, unsigned int *n) { PRE(h) return uint_field(g, "minor", n); }
nvmlReturn_t nvmlDeviceGetVbiosVersion(void *h, char *b, unsigned int n) { PRE(h) return str_field(g, "vbios", b, n); }

typedef struct {
    char busIdLegacy[16];
    unsigned int domain, bus, device, pciDeviceId, pciSubSystemId;
    char busId[32];
} pci_t;
nvmlReturn_t V(nvmlDeviceGetPciInfo, _v3)(void *h, pci_t *p) {
    PRE(h)
    memset(p, 0, sizeof *p);
    return str_field(g, "pci_bus_id", p->busId, sizeof p->busId);
}

nvmlReturn_t nvmlDeviceGetMigMode(void *h, unsigned int *cur, unsigned int *pend) {
    PRE(h)
    nvmlReturn_t r = uint_field(g, "mig_mode", cur);
    if (!r) *pend = *cur;
    return r;
}

typedef struct { unsigned int gpu, memory; } util_t;
nvmlReturn_t nvmlDeviceGetUtilizationRates(void *h, util_t *u) {
    PRE(h)
    nvmlReturn_t r = uint_field(g, "util_gpu", &u->gpu);
    return r ? r : uint_field(g, "util_memory", &u->memory);
}
nvmlReturn_t nvmlDeviceGetEncoderUtilization(void *h, unsigned int *u, unsigned int *p) {
    PRE(h) *p = 1000000; return uint_field(g, "util_encoder", u);
}
nvmlReturn_t nvmlDeviceGetDecoderUtilization(void *h, unsigned int *u, unsigned int *p) {
    PRE(h) *p = 1000000; return uint_field(g, "util_decoder", u);
}

typedef struct { unsigned long long total, free, used; } mem_t;
typedef struct { unsigned int version; unsigned long long total, reserved, free, used; } mem2_t;
nvmlReturn_t nvmlDeviceGetMemoryInfo(void *h, mem_t *m) {
    PRE(h) (void)g;
    nvmlReturn_t r = hull(h, "memory_total", &m->total);
    if (!r) r = hull(h, "memory_used", &m->used);
    if (!r) m->free = m->total - m->used;
    return r;
}
#ifndef OLD_DRIVER
nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(void *h, mem2_t *m) {
    PRE(h)
    nvmlReturn_t r = ull_field(g, "memory_reserved", &m->reserved);
    if (!r) r = ull_field(g, "memory_total", &m->total);
    if (!r) r = ull_field(g, "memory_used", &m->used);
    if (!r) m->free = m->total - m->used - m->reserved;
    return r;
}
#endif

nvmlReturn_t nvmlDeviceGetTemperature(void *h, int sensor, unsigned int *t) {
    PRE(h) (void)sensor; return uint_field(g, "temperature", t);
}

typedef struct {
    unsigned int fieldId, scopeId;
    long long timestamp, latencyUsec;
    int valueType;
    nvmlReturn_t nvmlReturn;
    union { double d; unsigned int ui; unsigned long ul; unsigned long long ull; long long sll; } value;
} field_t;
nvmlReturn_t nvmlDeviceGetFieldValues(void *h, int n, field_t *v) {
    PRE(h)
    for (int i = 0; i < n; i++) {
        v[i].nvmlReturn = NOT_SUPPORTED;
        if (v[i].fieldId == 82 && uint_field(g, "memory_temperature", &v[i].value.ui) == OK) {
            v[i].valueType = 1; /* NVML_VALUE_TYPE_UNSIGNED_INT */
            v[i].nvmlReturn = OK;
        }
    }
    return OK;
}

nvmlReturn_t nvmlDeviceGetPowerUsage(void *h, unsigned int *mw) { PRE(h) return uint_field(g, "power_mw", mw); }
nvmlReturn_t nvmlDeviceGetPowerManagementLimit(void *h, unsigned int *mw) { PRE(h) return uint_field(g, "power_limit_mw", mw); }
nvmlReturn_t nvmlDeviceGetEnforcedPowerLimit(void *h, unsigned int *mw) { PRE(h) return uint_field(g, "enforced_power_limit_mw", mw); }
nvmlReturn_t nvmlDeviceGetTotalEnergyConsumption(void *h, unsigned long long *mj) { PRE(h) return ull_field(g, "energy_mj", mj); }

static const char *clock_names[] = {"graphics", "sm", "memory", "video"};
nvmlReturn_t nvmlDeviceGetClockInfo(void *h, int type, unsigned int *mhz) {
    PRE(h)
    if (type < 0 || type > 3) return INVALID;
    char k[64];
    snprintf(k, sizeof k, "clock_%s", clock_names[type]);
    return uint_field(g, k, mhz);
}
nvmlReturn_t nvmlDeviceGetMaxClockInfo(void *h, int type, unsigned int *mhz) {
    PRE(h)
    if (type < 0 || type > 3) return INVALID;
    char k[64];
    snprintf(k, sizeof k, "max_clock_%s", clock_names[type]);
    return uint_field(g, k, mhz);
}
nvmlReturn_t nvmlDeviceGetFanSpeed(void *h, unsigned int *s) { PRE(h) return uint_field(g, "fan", s); }
nvmlReturn_t nvmlDeviceGetPerformanceState(void *h, int *p) { PRE(h) return uint_field(g, "pstate", (unsigned int *)p); }
nvmlReturn_t nvmlDeviceGetCurrentClocksEventReasons(void *h, unsigned long long *r) { PRE(h) return ull_field(g, "clock_events", r); }

nvmlReturn_t nvmlDeviceGetTotalEccErrors(void *h, int errorType, int counterType, unsigned long long *n) {
    PRE(h)
    char k[64];
    snprintf(k, sizeof k, "ecc_%s_%s", counterType ? "aggregate" : "volatile",
             errorType ? "uncorrected" : "corrected");
    return ull_field(g, k, n);
}
nvmlReturn_t nvmlDeviceGetRetiredPages(void *h, int cause, unsigned int *count, unsigned long long *addrs) {
    PRE(h)
    unsigned int n;
    nvmlReturn_t r = uint_field(g, cause ? "retired_pages_dbe" : "retired_pages_sbe", &n);
    if (r) return r;
    if (!addrs) { *count = n; return n ? INSUFFICIENT_SIZE : OK; }
    if (*count < n) { *count = n; return INSUFFICIENT_SIZE; }
    for (unsigned int i = 0; i < n; i++) addrs[i] = 0x1000ULL * (i + 1);
    *count = n;
    return OK;
}
nvmlReturn_t nvmlDeviceGetRetiredPagesPendingStatus(void *h, int *p) { PRE(h) return uint_field(g, "retired_pages_pending", (unsigned int *)p); }
nvmlReturn_t nvmlDeviceGetRemappedRows(void *h, unsigned int *c, unsigned int *u, unsigned int *p, unsigned int *f) {
    PRE(h)
    nvmlReturn_t r = uint_field(g, "remapped_corrected", c);
    if (!r) r = uint_field(g, "remapped_uncorrected", u);
    if (!r) r = uint_field(g, "remap_pending", p);
    if (!r) r = uint_field(g, "remap_failure", f);
    return r;
}
nvmlReturn_t nvmlDeviceGetCurrPcieLinkGeneration(void *h, unsigned int *v) { PRE(h) return uint_field(g, "pcie_gen", v); }
nvmlReturn_t nvmlDeviceGetCurrPcieLinkWidth(void *h, unsigned int *v) { PRE(h) return uint_field(g, "pcie_width", v); }
nvmlReturn_t nvmlDeviceGetPcieReplayCounter(void *h, unsigned int *v) { PRE(h) return uint_field(g, "pcie_replays", v); }

/* Process i of a GPU: gpu.N.proc.I.pid (default 1000+i), .used in bytes (default 1 GiB; "na": the
   driver does not say), .gi and .ci (default: none, outside MIG), .sm (percent; no samples without it). */
static const char *pget(int g, unsigned int i, const char *key) {
    char k[64];
    snprintf(k, sizeof k, "proc.%u.%s", i, key);
    return gget(g, k);
}
static unsigned int pvalue(int g, unsigned int i, const char *key, unsigned int otherwise) {
    const char *v = pget(g, i, key);
    return v ? (unsigned int)strtoul(v, NULL, 10) : otherwise;
}

/* The process list in the layout each driver generation has: _v3 (R510 on) and the unversioned
   v1 of drivers before R470, without MIG instance ids. Each needs the caller's array large enough. */
typedef struct { unsigned int pid; unsigned long long used; unsigned int gi, ci; } proc_t;
typedef struct { unsigned int pid; unsigned long long used; } proc_v1_t;
static nvmlReturn_t processes(const char *fn, void *h, unsigned int *count, void *out, size_t size) {
    nvmlReturn_t r0 = check(h, fn);
    if (r0) return r0;
    int g = DEV(h);
    unsigned int n;
    nvmlReturn_t r = uint_field(g, "processes", &n);
    if (r) return r;
    if (n == 0) { *count = 0; return OK; }
    if (!out || *count < n) { *count = n; return INSUFFICIENT_SIZE; }
    for (unsigned int i = 0; i < n; i++) {
        const char *used = pget(g, i, "used");
        proc_t p = {pvalue(g, i, "pid", 1000 + i),
                    !used ? 1ULL << 30 : strcmp(used, "na") == 0 ? ~0ULL : strtoull(used, NULL, 10),
                    pvalue(g, i, "gi", 0xFFFFFFFF), pvalue(g, i, "ci", 0xFFFFFFFF)};
        memcpy((char *)out + i * size, &p, size);  /* v1 is v3's first two fields */
    }
    *count = n;
    return OK;
}
#ifdef OLD_DRIVER
nvmlReturn_t nvmlDeviceGetComputeRunningProcesses(void *h, unsigned int *count, proc_v1_t *procs) {
    return processes(__func__, h, count, procs, sizeof *procs);
}
#else
nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(void *h, unsigned int *count, proc_t *procs) {
    return processes(__func__, h, count, procs, sizeof *procs);
}
#endif

#ifndef OLD_DRIVER
/* Samples newer than lastSeen: each process with .sm has one, stamped gpu.N.sample_time (microseconds;
   default 1700000000000000), so a second read with that stamp finds none (NOT_FOUND), as when idle. */
typedef struct { unsigned int pid; unsigned long long ts; unsigned int sm, mem, enc, dec; } sample_t;
nvmlReturn_t nvmlDeviceGetProcessUtilization(void *h, sample_t *samples, unsigned int *count, unsigned long long lastSeen) {
    PRE(h)
    unsigned int mig = 0, n = 0;
    if (uint_field(g, "mig_mode", &mig) == OK && mig) return NOT_SUPPORTED;
    const char *stamp = gget(g, "sample_time");
    unsigned long long ts = stamp ? strtoull(stamp, NULL, 10) : 1700000000000000ULL;
    if (uint_field(g, "processes", &n)) return NOT_SUPPORTED;
    unsigned int have = 0;
    for (unsigned int i = 0; i < n; i++) if (pget(g, i, "sm") && ts > lastSeen) have++;
    if (have == 0) return 6; /* NOT_FOUND: no samples since lastSeen */
    if (!samples || *count < have) { *count = have; return INSUFFICIENT_SIZE; }
    unsigned int k = 0;
    for (unsigned int i = 0; i < n; i++) {
        if (!pget(g, i, "sm")) continue;
        samples[k].pid = pvalue(g, i, "pid", 1000 + i);
        samples[k].ts = ts;
        samples[k].sm = pvalue(g, i, "sm", 0);
        samples[k].mem = samples[k].enc = samples[k].dec = 0;
        k++;
    }
    *count = k;
    return OK;
}
#endif

#ifndef OLD_DRIVER /* drivers before GPM (R520) have none of these */
/* GPM. gpu.N.gpm=1: the GPU has it. gpu.N.gpm.<metricId>=<value> (percent or MiB/s, as NVML reports)
   for the GPU, gpu.N.mig.SLOT.gpm.<metricId> for a MIG instance; a metric without a value answers
   NOT_SUPPORTED inside a good answer, and gpu.N[.mig.SLOT].gpm_fail.<metricId>=<code> fails it. The
   values are constant rates, so any window gives them. Live samples are counted: FAKE_NVML_LEDGER
   names a file that holds their number after every allocation and free. */
typedef struct { int gpu, slot; unsigned long long seq; } gpm_sample_t; /* slot -1: the whole GPU */
static int live_samples;
static unsigned long long gpm_seq;
static void ledger(int delta) {
    pthread_mutex_lock(&mu);
    live_samples += delta;
    const char *path = getenv("FAKE_NVML_LEDGER");
    FILE *f = path ? fopen(path, "w") : NULL;
    if (f) { fprintf(f, "%d\n", live_samples); fclose(f); }
    pthread_mutex_unlock(&mu);
}
typedef struct { unsigned int version, supported; } gpm_support_t;
nvmlReturn_t nvmlGpmQueryDeviceSupport(void *h, gpm_support_t *s) {
    PRE(h)
    if (s->version != 1) return 25; /* ARGUMENT_VERSION_MISMATCH */
    const char *v = gget(g, "gpm");
    s->supported = v && atoi(v);
    return OK;
}
nvmlReturn_t nvmlGpmSampleAlloc(gpm_sample_t **out) {
    if (!initialized) return UNINIT;
    if (!out) return INVALID;
    *out = calloc(1, sizeof **out);
    (*out)->gpu = -1;
    ledger(1);
    return OK;
}
nvmlReturn_t nvmlGpmSampleFree(gpm_sample_t *sample) {
    if (!sample) return INVALID;
    free(sample);
    ledger(-1);
    return OK;
}
static nvmlReturn_t gpm_take(const char *fn, void *h, int slot, gpm_sample_t *sample) {
    nvmlReturn_t r = check(h, fn);
    if (r) return r;
    int g = DEV(h);
    const char *v = gget(g, "gpm");
    if (!v || !atoi(v)) return NOT_SUPPORTED;
    if (!sample) return INVALID;
    sample->gpu = g;
    sample->slot = slot;
    sample->seq = __sync_add_and_fetch(&gpm_seq, 1);
    return OK;
}
nvmlReturn_t nvmlGpmSampleGet(void *h, gpm_sample_t *sample) {
    unsigned int mig = 0;
    if (h && uint_field(DEV(h), "mig_mode", &mig) == OK && mig) return NOT_SUPPORTED; /* per instance there */
    return gpm_take(__func__, h, -1, sample);
}
nvmlReturn_t nvmlGpmMigSampleGet(void *h, unsigned int gi, gpm_sample_t *sample) {
    if (!h) return INVALID;
    for (int slot = 0; slot < MAXMIG; slot++) {
        char k[64];
        snprintf(k, sizeof k, "mig.%d.gi", slot);
        const char *v = gget(DEV(h), k);
        if (v && strtoul(v, NULL, 10) == gi) return gpm_take(__func__, h, slot, sample);
    }
    return 6; /* NOT_FOUND: no such GPU instance */
}
typedef struct { char *shortName, *longName, *unit; } metric_info_t;
typedef struct { unsigned int metricId; nvmlReturn_t nvmlReturn; double value; metric_info_t info; } gpm_metric_t;
typedef struct {
    unsigned int version, numMetrics;
    gpm_sample_t *sample1, *sample2;
    gpm_metric_t metrics[477];
} gpm_get_t;
nvmlReturn_t nvmlGpmMetricsGet(gpm_get_t *m) {
    if (!initialized) return UNINIT;
    if (!m) return INVALID;
    if (m->version != 1) return 25;
    gpm_sample_t *a = m->sample1, *b = m->sample2;
    if (m->numMetrics > 477 || !a || !b || a->gpu < 0 || a->gpu != b->gpu || a->slot != b->slot || b->seq <= a->seq)
        return INVALID; /* not two samples of one device, in order */
    for (unsigned int i = 0; i < m->numMetrics; i++) {
        char k[80], f[80];
        if (a->slot < 0) {
            snprintf(k, sizeof k, "gpm.%u", m->metrics[i].metricId);
            snprintf(f, sizeof f, "gpm_fail.%u", m->metrics[i].metricId);
        } else {
            snprintf(k, sizeof k, "mig.%d.gpm.%u", a->slot, m->metrics[i].metricId);
            snprintf(f, sizeof f, "mig.%d.gpm_fail.%u", a->slot, m->metrics[i].metricId);
        }
        const char *v = gget(a->gpu, k), *fail = gget(a->gpu, f);
        m->metrics[i].nvmlReturn = fail ? atoi(fail) : v ? OK : NOT_SUPPORTED;
        m->metrics[i].value = v && !fail ? strtod(v, NULL) : 0.0;
    }
    return OK;
}
#endif

/* XID events. One event set is enough for the backend; events carry the registered device. */
typedef struct { void *device; unsigned long long eventType, eventData; unsigned int gi, ci; } event_t;
nvmlReturn_t nvmlEventSetCreate(void **set) { if (!initialized) return UNINIT; *set = (void *)1; return OK; }
nvmlReturn_t nvmlEventSetFree(void *set) { (void)set; return OK; }
nvmlReturn_t nvmlDeviceRegisterEvents(void *h, unsigned long long types, void *set) {
    PRE(h) (void)set;
    if (gget(g, "no_events")) return NOT_SUPPORTED;
    if (types & 0x8) registered[g] = 1;
    return OK;
}
nvmlReturn_t V(nvmlEventSetWait, _v2)(void *set, event_t *data, unsigned int timeout_ms) {
    (void)set;
    if (!initialized) return UNINIT;
    /* A real driver blocks in the kernel; this polls the scenario file, every 50 ms so that a fleet
       of exporters on the fake (tools/fleet.py) does not measure the fake's own wake-ups. */
    struct timespec step = {0, 50 * 1000000L};
    for (unsigned int waited = 0;; waited += 50) {
        pthread_mutex_lock(&mu);
        load();
        char k[32];
        snprintf(k, sizeof k, "event.%d", delivered);
        const char *ev = get(k);
        int gpu = -1, xid = 0;
        if (ev && sscanf(ev, "%d:%d", &gpu, &xid) == 2) delivered++;
        pthread_mutex_unlock(&mu);
        if (gpu >= 0 && gpu < MAXGPU && registered[gpu]) {
            devices[gpu].index = gpu;
            devices[gpu].mig = -1;
            data->device = &devices[gpu];
            data->eventType = 0x8;
            data->eventData = (unsigned long long)xid;
            data->gi = data->ci = 0xFFFFFFFF;
            return OK;
        }
        if (gpu >= 0) continue; /* an event for an unregistered GPU is dropped, as NVML would */
        if (waited >= timeout_ms) return TIMEOUT;
        nanosleep(&step, NULL);
    }
}
