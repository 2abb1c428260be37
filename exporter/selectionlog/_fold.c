/* The selection-log fast path in C: one pass over a chunk of plain rows (no quotes, no blank lines,
 * no header, one width), validating each row as rows.check() would and grouping it as Tally._fold
 * does, so a row costs tens of nanoseconds instead of microseconds.
 *
 * fold(text, fallback_column, sketch, tally) returns None whenever anything is not plainly valid: a field
 * outside the strict number grammar, a bad row, a ragged chunk, a -0 duration. The caller then reads
 * the chunk in Python, which rejects exactly the bad rows with their line numbers. So this file only
 * ever decides the easy case, and tests hold its result equal to the Python fold's.
 *
 * On success it has added the chunk to the tally's dicts (selections, pairs, confidence_sum,
 * score_sum, duration_sum, fallbacks, and durations, or sketch when `sketch`), key by key in the
 * order Tally._fold adds them, so the float sums are the same to the last bit; and it returns
 * (first timestamp, last timestamp, rows, rows that carried the fallback column). Nothing is added
 * before the whole chunk has been read and found plainly valid. */
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
    Py_ssize_t rows, extended, fallbacks;
    double confidence, score, duration;
} key_entry;

typedef struct {
    span cat;
    int64_t value;  /* the duration's bits, or its sketch bucket */
    uint64_t hash;
    Py_ssize_t rows;
} duration_entry;

static uint64_t fnv(uint64_t h, const char *p, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++) h = (h ^ (unsigned char)p[i]) * 1099511628211ULL;
    return h;
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
    uint64_t h = fnv(14695981039346656037ULL, s.p, s.n);
    if (t->n < STRINGS / 2) {
        int i = (int)(h & (STRINGS - 1));
        while (t->e[i].obj && !(t->e[i].hash == h && same(t->e[i].s, s))) i = (i + 1) & (STRINGS - 1);
        if (!t->e[i].obj) {
            PyObject *o = PyUnicode_DecodeUTF8(s.p, s.n, "strict");
            if (!o) return NULL;
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

/* Fold the grouped chunk into the tally's dicts, key by key in first-seen order: the order, and so
 * the float sums, of Tally._fold. Returns the rows that carried the fallback column, or -1. */
static Py_ssize_t apply(PyObject *tally, key_entry *keys, Py_ssize_t nkeys, duration_entry *durs, Py_ssize_t ndurs,
                        int sketch) {
    static const char *names[] = {"selections", "pairs", "confidence_sum", "score_sum", "duration_sum",
                                  "fallbacks", "durations", "sketch"};
    PyObject *d[8] = {NULL};
    Py_ssize_t extended = -1;
    strings *cache = calloc(1, sizeof *cache);
    if (!cache) { PyErr_NoMemory(); return -1; }
    for (int i = 0; i < 8; i++) {
        d[i] = PyObject_GetAttrString(tally, names[i]);
        if (!d[i]) goto done;
    }
    PyObject *into = sketch ? d[7] : d[6];
    if (!PyDict_Check(into)) { PyErr_SetString(PyExc_TypeError, "tally durations are not a dict"); goto done; }
    for (int i = 0; i < 7; i++)
        if (!PyDict_Check(d[i])) { PyErr_SetString(PyExc_TypeError, "tally counts are not dicts"); goto done; }
    extended = 0;
    for (Py_ssize_t i = 0; i < nkeys && extended >= 0; i++) {
        key_entry *e = &keys[i];
        PyObject *c = text(cache, e->cat), *m = text(cache, e->model), *g = text(cache, e->gpu);
        PyObject *p = e->primary ? Py_True : Py_False;
        PyObject *key = (c && m && g) ? PyTuple_Pack(4, c, m, p, g) : NULL;
        PyObject *pair = key ? PyTuple_Pack(2, c, m) : NULL, *key3 = pair ? PyTuple_Pack(3, c, m, p) : NULL;
        if (!key3 || add(d[0], key, PyLong_FromSsize_t(e->rows)) || add(d[1], pair, PyLong_FromSsize_t(e->rows)) ||
            add(d[2], key3, PyFloat_FromDouble(e->confidence)) || add(d[3], pair, PyFloat_FromDouble(e->score)) ||
            add(d[4], c, PyFloat_FromDouble(e->duration)) ||
            (e->fallbacks && add(d[5], pair, PyLong_FromSsize_t(e->fallbacks))))
            extended = -1;
        else
            extended += e->extended;
        Py_XDECREF(c); Py_XDECREF(m); Py_XDECREF(g); Py_XDECREF(key); Py_XDECREF(pair); Py_XDECREF(key3);
    }
    for (Py_ssize_t i = 0; i < ndurs && extended >= 0; i++) {
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
        if (!key || add(into, key, PyLong_FromSsize_t(e->rows))) extended = -1;
        Py_XDECREF(value); Py_XDECREF(c); Py_XDECREF(key);
    }
done:
    for (int i = 0; i < 8; i++) Py_XDECREF(d[i]);
    strings_free(cache);
    free(cache);
    return extended;
}

static PyObject *fold(PyObject *self, PyObject *args) {
    PyObject *str, *tally;
    Py_ssize_t fallback_col;
    int sketch;
    (void)self;
    if (!PyArg_ParseTuple(args, "UnpO", &str, &fallback_col, &sketch, &tally)) return NULL;
    Py_ssize_t size;
    const char *buf = PyUnicode_AsUTF8AndSize(str, &size);
    if (!buf) return NULL;
    if (size == 0 || buf[size - 1] != '\n') Py_RETURN_NONE;
    Py_ssize_t lines = 0;
    for (const char *q = buf; (q = memchr(q, '\n', (size_t)(buf + size - q))); q++) lines++;

    if (lines > INT32_MAX / 4) Py_RETURN_NONE;
    /* Entries are kept dense, in first-seen order, and found through tables of indices (+1; 0 is
     * empty): a chunk touches memory for the keys it has, not for every line it might have had. In a
     * virtual machine each new page costs microseconds, more than parsing a row. */
    Py_ssize_t cap = 16;
    while (cap < 2 * lines) cap <<= 1;
    key_entry *keys = malloc((size_t)lines * sizeof *keys);
    duration_entry *durs = malloc((size_t)lines * sizeof *durs);
    int32_t *key_slots = calloc((size_t)cap, sizeof *key_slots), *dur_slots = calloc((size_t)cap, sizeof *dur_slots);
    PyObject *out = NULL;
    if (!keys || !durs || !key_slots || !dur_slots) { PyErr_NoMemory(); goto done; }

    const double inv_log_gamma = 1 / log((1 + 0.01) / (1 - 0.01));
    Py_ssize_t width = -1, nkeys = 0, ndurs = 0, count = 0;
    span first = {NULL, 0}, last = {NULL, 0};
    const char *line = buf, *end = buf + size;
    while (line < end) {
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        span f[9];
        Py_ssize_t nf = 0;
        const char *start = line;
        span fb = {NULL, -1};
        for (const char *c = line;; c++) {
            if (c == nl || *c == ',') {
                span s = {start, c - start};
                if (nf < 8) f[nf] = s;
                if (nf == fallback_col) fb = s;
                nf++;
                start = c + 1;
                if (c == nl) break;
            }
        }
        if (width < 0) width = nf;
        if (nf != width || nf < 8) goto bail;
        double conf, score, dur;
        if (!timestamp_ok(f[0]) || !f[1].n || !f[2].n || !number(f[4], &conf) || !number(f[5], &score) ||
            !gpu_ok(f[6]) || !number(f[7], &dur))
            goto bail;
        int primary;
        if (f[3].n == 4 && memcmp(f[3].p, "true", 4) == 0) primary = 1;
        else if (f[3].n == 5 && memcmp(f[3].p, "false", 5) == 0) primary = 0;
        else goto bail;
        if (conf < 0 || conf > 1 || fabs(score) > SCORE_LIMIT || dur < 0 || dur > DURATION_LIMIT_MS) goto bail;
        if (dur == 0 && signbit(dur)) goto bail;  /* -0.0: Python merges it with 0.0 under the first-seen key */

        uint64_t h = fnv(fnv(fnv(fnv(14695981039346656037ULL, f[1].p, f[1].n) * 31, f[2].p, f[2].n) * 31,
                             f[6].p, f[6].n), primary ? "t" : "f", 1);
        Py_ssize_t i = (Py_ssize_t)(h & (uint64_t)(cap - 1));
        key_entry *e;
        while ((e = key_slots[i] ? &keys[key_slots[i] - 1] : NULL) &&
               !(e->hash == h && e->primary == primary && same(e->cat, f[1]) && same(e->model, f[2]) &&
                 same(e->gpu, f[6])))
            i = (i + 1) & (cap - 1);
        if (!e) {
            e = &keys[nkeys];
            *e = (key_entry){.hash = h, .cat = f[1], .model = f[2], .gpu = f[6], .primary = primary};
            key_slots[i] = (int32_t)++nkeys;
        }
        e->rows++;
        e->confidence += conf;
        e->score += score;
        e->duration += dur;
        if (fb.n >= 0) {
            e->extended++;
            if (fb.n == 4 && memcmp(fb.p, "true", 4) == 0) e->fallbacks++;
        }

        int64_t value;
        if (sketch) value = (int64_t)ceil(log(fmax(dur, TINY)) * inv_log_gamma);
        else memcpy(&value, &dur, sizeof value);
        uint64_t dh = fnv(14695981039346656037ULL, f[1].p, f[1].n) ^ ((uint64_t)value * 0x9E3779B97F4A7C15ULL);
        Py_ssize_t j = (Py_ssize_t)(dh & (uint64_t)(cap - 1));
        duration_entry *d;
        while ((d = dur_slots[j] ? &durs[dur_slots[j] - 1] : NULL) &&
               !(d->hash == dh && d->value == value && same(d->cat, f[1])))
            j = (j + 1) & (cap - 1);
        if (!d) {
            d = &durs[ndurs];
            *d = (duration_entry){.hash = dh, .value = value, .cat = f[1]};
            dur_slots[j] = (int32_t)++ndurs;
        }
        d->rows++;

        if (!first.p || memcmp(f[0].p, first.p, 19) < 0) first = f[0];
        if (!last.p || memcmp(f[0].p, last.p, 19) > 0) last = f[0];
        count++;
        line = nl + 1;
    }
    Py_ssize_t extended = apply(tally, keys, nkeys, durs, ndurs, sketch);
    if (extended >= 0) out = Py_BuildValue("(NNnn)", PyUnicode_DecodeUTF8(first.p, first.n, "strict"),
                                           PyUnicode_DecodeUTF8(last.p, last.n, "strict"), count, extended);
    goto done;
bail:
    out = Py_None;
    Py_INCREF(out);
done:
    free(keys);
    free(durs);
    free(key_slots);
    free(dur_slots);
    return out;
}

static PyMethodDef methods[] = {
    {"fold", fold, METH_VARARGS, "Add a chunk of plain selection-log rows to a tally; None when any is not plainly valid."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_fold", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__fold(void) { return PyModule_Create(&module); }
