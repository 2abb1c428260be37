/* The selection-log fast path in C: one pass over a chunk of plain rows (no quotes, no blank lines,
 * no header, one width), validating each row as rows.check() would and counting it as the Python
 * path (Tally._stage) does, so a row costs tens of nanoseconds instead of microseconds.
 *
 * The chunk is a str, or UTF-8 bytes as they were read (any bytes-like object): a reader that hands
 * over its block saves decoding it, which in a virtual machine costs more than this whole pass
 * (a new page for every 4 KiB of text).
 *
 * fold(chunk, fallback_column, sketch, tally) returns None whenever anything is not plainly valid: a field
 * outside the strict number grammar, a bad row, a ragged chunk, a -0 duration, a quote or a carriage
 * return anywhere, bytes that are not UTF-8. The caller then reads the chunk in Python, which rejects
 * exactly the bad rows with their line numbers. So this file only ever decides the easy case, and
 * tests hold its result equal to the Python fold's.
 *
 * On success it has added the chunk to the tally's dicts (selections, pairs, confidence_sum,
 * score_sum, duration_sum, fallbacks, and durations, or sketch when `sketch`) as Tally._add_chunk adds
 * a chunk that the Python path counted on its own, so the float sums are the same to the last bit;
 * and it returns (first timestamp, last timestamp, rows, rows that carried the fallback column).
 * Nothing is added before the whole chunk has been read and found plainly valid. A report's tally is
 * folded into directly; the exporter's, which renames label values, budgets series and buckets
 * durations, has the chunk folded into an empty tally and maps and adds that (Tally.add_plain). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define SCORE_LIMIT 1e6
#define DURATION_LIMIT_MS 1e7
#define TINY 1e-6
#define MAX_NUMBER 64

typedef struct { const char *p; Py_ssize_t n; } span;

typedef struct {
    span cat, model, gpu;
    int primary;
    uint64_t hash;
    Py_ssize_t rows, fallbacks;
    double confidence, score, duration;
} key_entry;

typedef struct {
    span cat;
    int64_t value;  /* the duration's bits, or its sketch bucket */
    uint64_t hash;
    Py_ssize_t rows;
} duration_entry;

/* The hash of a chunk's keys and strings: eight bytes a step, where FNV's byte-serial multiply was a
 * sixth of the whole pass. Only one call's tables use it, so it need not be stable anywhere else. */
static uint64_t mix(uint64_t h, const char *p, Py_ssize_t n) {
    const uint64_t k = 0x9E3779B97F4A7C15ULL;
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * k;
        h ^= h >> 32;
    }
    uint64_t w = (uint64_t)n << 56;
    for (Py_ssize_t i = 0; i < n; i++) w |= (uint64_t)(unsigned char)p[i] << (8 * i);
    h = (h ^ w) * k;
    return h ^ (h >> 29);
}

static int same(span a, span b) { return a.n == b.n && memcmp(a.p, b.p, (size_t)a.n) == 0; }

static int is_digit(char c) { return c >= '0' && c <= '9'; }

/* YYYY-MM-DD HH:MM:SS with the ranges of rows.TIMESTAMP, ASCII digits only. */
static int timestamp_ok(span s) {
    const char *t = s.p;
    if (s.n != 19) return 0;
    for (int i = 0; i < 19; i++) {
        if (i == 4 || i == 7) { if (t[i] != '-') return 0; }
        else if (i == 10) { if (t[i] != ' ') return 0; }
        else if (i == 13 || i == 16) { if (t[i] != ':') return 0; }
        else if (!is_digit(t[i])) return 0;
    }
    int month = (t[5] - '0') * 10 + (t[6] - '0'), day = (t[8] - '0') * 10 + (t[9] - '0');
    int hour = (t[11] - '0') * 10 + (t[12] - '0');
    return month >= 1 && month <= 12 && day >= 1 && day <= 31 && hour <= 23 && t[14] <= '5' && t[17] <= '5';
}

static const double POW10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
                                1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* [+-]?(digits[.digits?]|.digits)([eE][+-]?digits)? : a form that Python's float() and strtod() read
 * to the same correctly rounded double. Anything else (spaces, underscores, inf, nan, hex) is left
 * to Python. Up to 15 significant digits and a power of ten within 1e22, the value is the digits as
 * an exact integer divided or multiplied by an exact power of ten: one correctly rounded operation,
 * so the same double strtod() gives (Clinger's fast path); beyond that, strtod() itself. */
static int number(span s, double *out) {
    char buf[MAX_NUMBER + 1];
    Py_ssize_t i = 0, n = s.n, digits = 0, fraction = 0, significant = 0;
    const char *p = s.p;
    uint64_t mantissa = 0;
    int negative = 0;
    long exp = 0;
    if (n == 0 || n > MAX_NUMBER) return 0;
    if (p[i] == '+' || p[i] == '-') negative = p[i++] == '-';
    for (; i < n && is_digit(p[i]); i++, digits++) {
        if (mantissa || p[i] != '0') significant++;
        mantissa = mantissa * 10 + (uint64_t)(p[i] - '0');
    }
    if (i < n && p[i] == '.') {
        for (i++; i < n && is_digit(p[i]); i++, digits++, fraction++) {
            if (mantissa || p[i] != '0') significant++;
            mantissa = mantissa * 10 + (uint64_t)(p[i] - '0');
        }
    }
    if (!digits) return 0;
    if (i < n && (p[i] == 'e' || p[i] == 'E')) {
        int eneg = 0, edigits = 0;
        i++;
        if (i < n && (p[i] == '+' || p[i] == '-')) eneg = p[i++] == '-';
        for (; i < n && is_digit(p[i]); i++, edigits++) if (exp < 100000) exp = exp * 10 + (p[i] - '0');
        if (!edigits) return 0;
        if (eneg) exp = -exp;
    }
    if (i != n) return 0;
    long power = exp - (long)fraction;
    if (significant <= 15 && power >= -22 && power <= 22) {
        double m = (double)mantissa;
        double v = power < 0 ? m / POW10[-power] : m * POW10[power];
        *out = negative ? -v : v;
        return 1;
    }
    memcpy(buf, p, (size_t)n);
    buf[n] = 0;
    *out = strtod(buf, NULL);
    return isfinite(*out);
}

static int gpu_ok(span s) {
    if (s.n > 6) return 0;
    for (Py_ssize_t i = 0; i < s.n; i++) if (!is_digit(s.p[i])) return 0;
    return 1;
}

/* Python strings for the few distinct categories, models and GPUs of a chunk, decoded once each. */
#define STRINGS 1024
typedef struct { span s; uint64_t hash; PyObject *obj; } string_entry;
typedef struct { string_entry e[STRINGS]; int n; } strings;

static PyObject *text(strings *t, span s) {
    uint64_t h = mix(14695981039346656037ULL, s.p, s.n);
    if (t->n < STRINGS / 2) {
        int i = (int)(h & (STRINGS - 1));
        while (t->e[i].obj && !(t->e[i].hash == h && same(t->e[i].s, s))) i = (i + 1) & (STRINGS - 1);
        if (!t->e[i].obj) {
            PyObject *o = PyUnicode_DecodeUTF8(s.p, s.n, "strict");
            if (!o) return NULL;
            /* The same object as the tally's keys already hold, so a dict lookup compares the key's
             * strings by identity, not character by character. */
            PyUnicode_InternInPlace(&o);
            t->e[i].s = s, t->e[i].hash = h, t->e[i].obj = o;
            t->n++;
        }
        Py_INCREF(t->e[i].obj);
        return t->e[i].obj;
    }
    return PyUnicode_DecodeUTF8(s.p, s.n, "strict");  /* a chunk of many distinct names: no cache */
}

static void strings_free(strings *t) {
    for (int i = 0; i < STRINGS; i++) Py_XDECREF(t->e[i].obj);
}

/* d[key] += v, a new int or float whose reference this takes (NULL: its constructor failed); a
 * missing key counts as 0, as Counter and defaultdict have it. */
static int add(PyObject *d, PyObject *key, PyObject *v) {
    if (!v) return -1;
    PyObject *old = PyDict_GetItemWithError(d, key);
    PyObject *sum = old ? PyNumber_Add(old, v) : PyErr_Occurred() ? NULL : (Py_INCREF(v), v);
    Py_DECREF(v);
    if (!sum) return -1;
    int rc = PyDict_SetItem(d, key, sum);
    Py_DECREF(sum);
    return rc;
}

/* The keys of a chunk grouped by one level: 3 (category, model, primary), 2 (category, model) or
 * 1 (category), in first-seen order. group[i] is key i's group; first[g] the first key of group g.
 * Returns the number of groups, or -1 when memory runs out. */
static Py_ssize_t level_groups(const key_entry *keys, Py_ssize_t n, int level, int32_t *group, Py_ssize_t *first) {
    Py_ssize_t cap = 16, groups = 0;
    while (cap < 2 * n) cap <<= 1;
    int32_t *slots = calloc((size_t)cap, sizeof *slots);
    if (!slots) return -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        const key_entry *e = &keys[i];
        uint64_t h = mix(14695981039346656037ULL, e->cat.p, e->cat.n);
        if (level >= 2) h = mix(h, e->model.p, e->model.n);
        if (level == 3) h ^= (uint64_t)e->primary;
        Py_ssize_t j = (Py_ssize_t)(h & (uint64_t)(cap - 1));
        for (;; j = (j + 1) & (cap - 1)) {
            if (!slots[j]) {
                first[groups] = i;
                slots[j] = (int32_t)++groups;
                break;
            }
            const key_entry *f = &keys[first[slots[j] - 1]];
            if (same(f->cat, e->cat) && (level < 2 || same(f->model, e->model)) &&
                (level < 3 || f->primary == e->primary))
                break;
        }
        group[i] = slots[j] - 1;
    }
    free(slots);
    return groups;
}

/* Add the grouped chunk to the tally's dicts as Tally._add_chunk adds a chunk counted on its own:
 * rows by key; the float sums first summed over the chunk's keys, in first-seen order, for each
 * (category, model, primary), (category, model) and category, then each added once. So the sums are
 * the Python path's to the last bit, and the same whether the chunk is added to a report's tally here
 * or to an empty one that the exporter's tally then maps and adds. Returns 0, or -1 with an
 * exception set. */
static int apply(PyObject *tally, key_entry *keys, Py_ssize_t nkeys, duration_entry *durs, Py_ssize_t ndurs,
                        int sketch) {
    static const char *names[] = {"selections", "pairs", "confidence_sum", "score_sum", "duration_sum",
                                  "fallbacks", "durations", "sketch"};
    PyObject *d[8] = {NULL};
    int rc = -1;
    Py_ssize_t n = nkeys > 0 ? nkeys : 1;
    strings *cache = calloc(1, sizeof *cache);
    int32_t *group = malloc(3 * (size_t)n * sizeof *group);
    Py_ssize_t *first = malloc(3 * (size_t)n * sizeof *first), *rows = calloc((size_t)n, sizeof *rows),
               *fallbacks = calloc((size_t)n, sizeof *fallbacks), ngroups[3];
    double *sums = calloc(3 * (size_t)n, sizeof *sums);  /* confidence by level 3, score by 2, duration by 1 */
    if (!cache || !group || !first || !rows || !fallbacks || !sums) { PyErr_NoMemory(); goto done; }
    for (int level = 3; level >= 1; level--) {
        ngroups[3 - level] = level_groups(keys, nkeys, level, group + (3 - level) * n, first + (3 - level) * n);
        if (ngroups[3 - level] < 0) { PyErr_NoMemory(); goto done; }
    }
    int32_t *g3 = group, *g2 = group + n, *g1 = group + 2 * n;
    for (Py_ssize_t i = 0; i < nkeys; i++) {
        sums[g3[i]] += keys[i].confidence;
        sums[n + g2[i]] += keys[i].score;
        sums[2 * n + g1[i]] += keys[i].duration;
        rows[g2[i]] += keys[i].rows;
        fallbacks[g2[i]] += keys[i].fallbacks;
    }
    for (int i = 0; i < 8; i++) {
        d[i] = PyObject_GetAttrString(tally, names[i]);
        if (!d[i]) goto done;
    }
    PyObject *into = sketch ? d[7] : d[6];
    if (!PyDict_Check(into)) { PyErr_SetString(PyExc_TypeError, "tally durations are not a dict"); goto done; }
    for (int i = 0; i < 7; i++)
        if (!PyDict_Check(d[i])) { PyErr_SetString(PyExc_TypeError, "tally counts are not dicts"); goto done; }
    rc = 0;
    for (Py_ssize_t i = 0; i < nkeys && !rc; i++) {
        key_entry *e = &keys[i];
        PyObject *c = text(cache, e->cat), *m = c ? text(cache, e->model) : NULL, *g = m ? text(cache, e->gpu) : NULL;
        PyObject *key = g ? PyTuple_Pack(4, c, m, e->primary ? Py_True : Py_False, g) : NULL;
        if (!key || add(d[0], key, PyLong_FromSsize_t(e->rows))) rc = -1;
        Py_XDECREF(c); Py_XDECREF(m); Py_XDECREF(g); Py_XDECREF(key);
    }
    for (int level = 3; level >= 1 && !rc; level--) {
        Py_ssize_t *firsts = first + (3 - level) * n;
        for (Py_ssize_t j = 0; j < ngroups[3 - level] && !rc; j++) {
            key_entry *e = &keys[firsts[j]];
            PyObject *c = text(cache, e->cat), *m = c && level >= 2 ? text(cache, e->model) : NULL, *key;
            if (level == 3) key = m ? PyTuple_Pack(3, c, m, e->primary ? Py_True : Py_False) : NULL;
            else if (level == 2) key = m ? PyTuple_Pack(2, c, m) : NULL;
            else key = c ? Py_NewRef(c) : NULL;
            if (!key || (level == 3 && add(d[2], key, PyFloat_FromDouble(sums[j]))) ||
                (level == 2 && (add(d[1], key, PyLong_FromSsize_t(rows[j])) ||
                                add(d[3], key, PyFloat_FromDouble(sums[n + j])) ||
                                (fallbacks[j] && add(d[5], key, PyLong_FromSsize_t(fallbacks[j]))))) ||
                (level == 1 && add(d[4], key, PyFloat_FromDouble(sums[2 * n + j]))))
                rc = -1;
            Py_XDECREF(c); Py_XDECREF(m); Py_XDECREF(key);
        }
    }
    for (Py_ssize_t i = 0; i < ndurs && !rc; i++) {
        duration_entry *e = &durs[i];
        PyObject *value;
        if (sketch) {
            value = PyLong_FromLongLong(e->value);
        } else {
            double v;
            memcpy(&v, &e->value, sizeof v);
            value = PyFloat_FromDouble(v);
        }
        PyObject *c = value ? text(cache, e->cat) : NULL, *key = c ? PyTuple_Pack(2, c, value) : NULL;
        if (!key || add(into, key, PyLong_FromSsize_t(e->rows))) rc = -1;
        Py_XDECREF(value); Py_XDECREF(c); Py_XDECREF(key);
    }
done:
    for (int i = 0; i < 8; i++) Py_XDECREF(d[i]);
    if (cache) strings_free(cache);
    free(cache), free(group), free(first), free(rows), free(fallbacks), free(sums);
    return rc;
}

/* What each byte means to the row scanner: most are plain field text; a comma or newline ends a
 * field; a quote or a carriage return sends the chunk to Python (csv quoting, CRLF); a byte above
 * 127 is part of a multi-byte character, which is checked once for the whole chunk. */
enum { PLAIN, SEPARATOR, REFUSED, HIGH };
static unsigned char CLASS[256];

/* A chunk's bytes, borrowed without a copy: a str's UTF-8, or a bytes-like object's buffer. */
typedef struct { Py_buffer view; int is_buffer; const char *p; Py_ssize_t n; } input;

static int input_get(input *in, PyObject *obj) {
    in->is_buffer = 0;
    if (PyUnicode_Check(obj)) {
        in->p = PyUnicode_AsUTF8AndSize(obj, &in->n);
        return in->p ? 0 : -1;
    }
    if (PyObject_GetBuffer(obj, &in->view, PyBUF_SIMPLE) < 0) return -1;
    in->is_buffer = 1, in->p = in->view.buf, in->n = in->view.len;
    return 0;
}

static void input_release(input *in) {
    if (in->is_buffer) PyBuffer_Release(&in->view);
}

/* Whether bytes that hold a byte above 127 are UTF-8 as Python's strict decoder has it (a str's
 * always are). 1 yes, 0 no (the caller declines), -1 with an exception set. */
static int utf8_ok(const input *in) {
    PyObject *decoded = PyUnicode_DecodeUTF8(in->p, in->n, "strict");
    if (decoded) {
        Py_DECREF(decoded);
        return 1;
    }
    if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) return -1;
    PyErr_Clear();
    return 0;
}

/* One chunk's rows grouped by key (and by duration, or row by row), in first-seen order. Entries
 * are kept dense and found through tables of indices (+1; 0 is empty): a chunk touches memory for
 * the keys it has, not for every line it might have had. In a virtual machine each new page costs
 * microseconds, more than parsing a row. */
typedef struct {
    key_entry *keys;
    duration_entry *durs;        /* (category, duration or sketch bucket) -> rows */
    int32_t *key_slots, *dur_slots;
    Py_ssize_t nkeys, ndurs, count, extended;
    span first, last;
    int high;                    /* a byte above 127 was seen */
} chunk;

static void chunk_free(chunk *ch) {
    free(ch->keys), free(ch->durs), free(ch->key_slots), free(ch->dur_slots);
}

/* The next byte at or after `c` that is not plain field text (a separator, a refused or a high
 * byte), eight bytes a step where it can (little-endian machines): the byte scan was a third of the
 * pass. The chunk ends with a newline, so one is always found before `end`. */
#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL
static inline uint64_t zero_bytes(uint64_t x) { return (x - ONES) & ~x & HIGHS; }

static const char *special(const char *c, const char *end) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    for (; end - c >= 8; c += 8) {
        uint64_t w;
        memcpy(&w, c, 8);
        /* The lowest flagged byte is exact: a borrow only ever flags bytes above a real match. */
        uint64_t m = zero_bytes(w ^ (ONES * ',')) | zero_bytes(w ^ (ONES * '\n')) | zero_bytes(w ^ (ONES * '"')) |
                     zero_bytes(w ^ (ONES * '\r')) | (w & HIGHS);
        if (m) return c + (__builtin_ctzll(m) >> 3);
    }
#endif
    while (CLASS[(unsigned char)*c] == PLAIN) c++;
    return c;
}

/* Read a chunk of whole lines into a zeroed `ch`: 1 when every row is plainly valid, 0 when any is not (the caller
 * declines), -1 with an exception set when memory runs out. */
static int chunk_read(chunk *ch, const char *buf, Py_ssize_t size, Py_ssize_t fallback_col, int sketch) {
    if (size == 0 || buf[size - 1] != '\n' || buf[0] == '\n') return 0;
    /* A blank line is declined here, before anything is allocated per line: a block of them cost more with
     * the kernel than without it. */
    Py_ssize_t lines = 0;
    for (const char *q = buf; (q = memchr(q, '\n', (size_t)(buf + size - q))); q++) {
        lines++;
        if (q + 1 < buf + size && q[1] == '\n') return 0;
    }
    if (lines > INT32_MAX / 4) return 0;
    Py_ssize_t cap = 16;
    while (cap < 2 * lines) cap <<= 1;
    ch->keys = malloc((size_t)lines * sizeof *ch->keys);
    ch->key_slots = calloc((size_t)cap, sizeof *ch->key_slots);
    ch->durs = malloc((size_t)lines * sizeof *ch->durs);
    ch->dur_slots = calloc((size_t)cap, sizeof *ch->dur_slots);
    if (!ch->keys || !ch->key_slots || !ch->durs || !ch->dur_slots) {
        PyErr_NoMemory();
        return -1;
    }

    const double inv_log_gamma = 1 / log((1 + 0.01) / (1 - 0.01));
    Py_ssize_t width = -1;
    const char *line = buf, *end = buf + size;
    while (line < end) {
        span f[9];
        Py_ssize_t nf = 0;
        const char *start = line, *nl;
        span fb = {NULL, -1};
        for (const char *c = line;; c++) {
            c = special(c, end);
            unsigned char kind = CLASS[(unsigned char)*c];
            if (kind == HIGH) { ch->high = 1; continue; }
            if (kind == REFUSED) return 0;
            span s = {start, c - start};  /* ended by a comma or the newline */
            if (nf < 8) f[nf] = s;
            if (nf == fallback_col) fb = s;
            nf++;
            start = c + 1;
            if (*c == '\n') { nl = c; break; }
        }
        if (width < 0) width = nf;
        if (nf != width || nf < 8) return 0;
        double conf, score, dur;
        if (!timestamp_ok(f[0]) || !f[1].n || !f[2].n || !number(f[4], &conf) || !number(f[5], &score) ||
            !gpu_ok(f[6]) || !number(f[7], &dur))
            return 0;
        int primary;
        if (f[3].n == 4 && memcmp(f[3].p, "true", 4) == 0) primary = 1;
        else if (f[3].n == 5 && memcmp(f[3].p, "false", 5) == 0) primary = 0;
        else return 0;
        if (conf < 0 || conf > 1 || fabs(score) > SCORE_LIMIT || dur < 0 || dur > DURATION_LIMIT_MS) return 0;
        if (dur == 0 && signbit(dur)) return 0;  /* -0.0: Python merges it with 0.0 under the first-seen key */

        uint64_t hc = mix(14695981039346656037ULL, f[1].p, f[1].n);
        uint64_t h = mix(mix(hc, f[2].p, f[2].n), f[6].p, f[6].n) ^ (uint64_t)primary;
        Py_ssize_t i = (Py_ssize_t)(h & (uint64_t)(cap - 1));
        key_entry *e;
        while ((e = ch->key_slots[i] ? &ch->keys[ch->key_slots[i] - 1] : NULL) &&
               !(e->hash == h && e->primary == primary && same(e->cat, f[1]) && same(e->model, f[2]) &&
                 same(e->gpu, f[6])))
            i = (i + 1) & (cap - 1);
        if (!e) {
            e = &ch->keys[ch->nkeys];
            *e = (key_entry){.hash = h, .cat = f[1], .model = f[2], .gpu = f[6], .primary = primary};
            ch->key_slots[i] = (int32_t)++ch->nkeys;
        }
        e->rows++;
        e->confidence += conf;
        e->score += score;
        e->duration += dur;
        if (fb.n >= 0) {
            ch->extended++;
            if (fb.n == 4 && memcmp(fb.p, "true", 4) == 0) e->fallbacks++;
        }

        int64_t value;
        if (sketch) value = (int64_t)ceil(log(fmax(dur, TINY)) * inv_log_gamma);
        else memcpy(&value, &dur, sizeof value);
        uint64_t dh = hc ^ ((uint64_t)value * 0x9E3779B97F4A7C15ULL);
        Py_ssize_t j = (Py_ssize_t)(dh & (uint64_t)(cap - 1));
        duration_entry *d;
        while ((d = ch->dur_slots[j] ? &ch->durs[ch->dur_slots[j] - 1] : NULL) &&
               !(d->hash == dh && d->value == value && same(d->cat, f[1])))
            j = (j + 1) & (cap - 1);
        if (!d) {
            d = &ch->durs[ch->ndurs];
            *d = (duration_entry){.hash = dh, .value = value, .cat = f[1]};
            ch->dur_slots[j] = (int32_t)++ch->ndurs;
        }
        d->rows++;

        if (!ch->first.p || memcmp(f[0].p, ch->first.p, 19) < 0) ch->first = f[0];
        if (!ch->last.p || memcmp(f[0].p, ch->last.p, 19) > 0) ch->last = f[0];
        ch->count++;
        line = nl + 1;
    }
    return 1;
}

/* chunk_read over a str or bytes-like object, which stays borrowed in `in` until input_release. */
static int chunk_read_input(chunk *ch, input *in, PyObject *obj, Py_ssize_t fallback_col, int sketch) {
    *ch = (chunk){0};
    if (input_get(in, obj) < 0) return -1;
    int got = chunk_read(ch, in->p, in->n, fallback_col, sketch);
    return got > 0 && ch->high && in->is_buffer ? utf8_ok(in) : got;
}

static PyObject *fold(PyObject *self, PyObject *args) {
    PyObject *obj, *tally, *out = NULL;
    Py_ssize_t fallback_col;
    int sketch;
    chunk ch;
    input in;
    (void)self;
    if (!PyArg_ParseTuple(args, "OnpO", &obj, &fallback_col, &sketch, &tally)) return NULL;
    int got = chunk_read_input(&ch, &in, obj, fallback_col, sketch);
    if (got > 0 && apply(tally, ch.keys, ch.nkeys, ch.durs, ch.ndurs, sketch) == 0)
        out = Py_BuildValue("(NNnn)", PyUnicode_DecodeUTF8(ch.first.p, ch.first.n, "strict"),
                            PyUnicode_DecodeUTF8(ch.last.p, ch.last.n, "strict"), ch.count, ch.extended);
    else if (got == 0)
        out = Py_NewRef(Py_None);
    chunk_free(&ch);
    input_release(&in);
    return out;
}

static PyMethodDef methods[] = {
    {"fold", fold, METH_VARARGS, "Add a chunk of plain selection-log rows to a tally; None when any is not plainly valid."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_fold", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__fold(void) {
    for (int c = 128; c < 256; c++) CLASS[c] = HIGH;
    CLASS[','] = CLASS['\n'] = SEPARATOR;
    CLASS['"'] = CLASS['\r'] = REFUSED;
    return PyModule_Create(&module);
}
