/* reliactl._cleanupwalk: cleanup's per-entry loop in C (optional; docs/DESIGN.md, "walk in C").
 *
 * One Lister serves a whole walk (its buffer and the walk's constants are set up once);
 * list(fd, ...) starts each directory. It reads (getdents64, on the caller's fd) one
 * directory that reliactl.cleanup has already opened safely (by a directory fd, O_NOFOLLOW,
 * checked against the listed inode) and decides its plain entries:
 * a subdirectory goes back to Python with its lstat (the walk opens it, or not, as before);
 * a regular file or symlink on the root's filesystem is judged by age and, if old, removed
 * with unlinkat relative to that fd -- a regular file only when the cleanup's lock table
 * (the same Python _LockTable object, re-read through its refresh() when stale) does not
 * list its inode, and, in a directory others may write to, only when an lstat just before
 * the unlink still finds the very file that was listed (inode, device, ctime). Everything
 * else (special files, other filesystems, a regular file with no lock table,
 * every failure) goes back to Python in the batch's list, where the rule-by-rule code
 * decides it. Nothing is ever opened, followed or entered here: the only calls on names are
 * fstatat(AT_SYMLINK_NOFOLLOW) and unlinkat, both relative to the directory's fd. The GIL is
 * held throughout (a batch is short; cleanup.py uses this only on local filesystems, and
 * signals are checked every SIGNAL_EVERY entries). A batch stops after `limit` entries, so memory stays
 * flat whatever the directory's size. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* What getdents64(2) writes: records of variable length, each name NUL-terminated. */
struct dirent64_rec {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

#define DENTS_BUF (32 * 1024) /* what glibc's readdir asks for; any name fits (NAME_MAX) */
#define SIGNAL_EVERY 256      /* entries between checks for a signal (Ctrl-C, SIGTERM) */

/* The sha256 of this file, given by hatch_build.py (-DCWALK_SRC_SHA="..."): reliactl/cleanup.py
 * does not use a module built from other source (a checkout updated without reinstalling). */
#ifndef CWALK_SRC_SHA
#define CWALK_SRC_SHA ""
#endif

/* What an item of a batch's list says (mirrored in reliactl/cleanup.py). */
enum {
    OUT_DEFER = 0,        /* not decided here: Python lstats it again and applies every rule */
    OUT_STAT_FAILED = 1,  /* value: errno of the lstat */
    OUT_LOCKED = 2,       /* old regular file whose inode is in the lock table: kept */
    OUT_CHANGED = 3,      /* shared directory: the name is now another file: kept */
    OUT_RECHECK_FAILED = 4, /* shared directory: the lstat before the unlink failed (errno) */
    OUT_UNLINK_FAILED = 5,  /* value: errno of unlinkat */
    OUT_REMOVED = 6,      /* removed (or would be, dry run); value 1 regular file, 0 symlink */
    OUT_TABLE_LOST = 7,   /* the lock table could not be re-read: Python decides it (probe) */
};

static PyObject *stat_result; /* os.stat_result, for the subdirectories handed back */

typedef struct {
    PyObject_HEAD
    char *buf; /* getdents64 records; NULL once closed */
    int fd;    /* the directory being read, set by list() (-1: none yet); the caller's fd,
                * never closed here */
    long pos, end; /* the unread records are buf[pos:end] */
    int shared;
    int dry_run;
    int age_code; /* 0 newest of mtime/atime/ctime, 1 mtime, 2 atime, 3 ctime */
    int report;   /* return each removal (an on_remove callback is waiting for it) */
    double cutoff;
    unsigned long long root_dev;
    int busy; /* a batch is running: Python it calls (the table's refresh) must not close,
               * re-initialise or re-enter this Lister, whose buf holds the names in use */
} Lister;

static double
seconds(struct timespec t)
{
    /* as os.stat_result's float times: sec + nsec * 1e-9 */
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static double
age_time(const struct stat *st, int code)
{
    double m = seconds(st->st_mtim), a = seconds(st->st_atim), c = seconds(st->st_ctim);
    switch (code) {
    case 1:
        return m;
    case 2:
        return a;
    case 3:
        return c;
    default: {
        double t = m > a ? m : a;
        return t > c ? t : c;
    }
    }
}

static int
get_double(PyObject *obj, const char *name, double *out)
{
    PyObject *v = PyObject_GetAttrString(obj, name);
    if (v == NULL)
        return -1;
    *out = PyFloat_AsDouble(v);
    Py_DECREF(v);
    return (*out == -1.0 && PyErr_Occurred()) ? -1 : 0;
}

/* What a batch knows of the lock table: its read time, ttl and inode set, taken from the
 * Python _LockTable once per batch and again after each refresh() (the only thing that
 * changes them while a batch runs: the GIL is held throughout, and refresh() is the only
 * Python that changes the table; signal handlers and finalizers may run, but nothing in
 * reliactl touches the table from them). Each removed file used to look all three up by name and build
 * its (dev, ino) key even when the set was empty (~0.3 us a file, issue 21 wave 3). */
typedef struct {
    PyObject *table; /* borrowed: the batch's argument */
    PyObject *inodes; /* owned; NULL until loaded */
    double read_at, ttl;
    int empty; /* inodes is an empty set or frozenset: nothing can be held */
} TableView;

static int
table_load(TableView *view)
{
    Py_CLEAR(view->inodes);
    if (get_double(view->table, "read_at", &view->read_at) < 0 ||
        get_double(view->table, "ttl", &view->ttl) < 0)
        return -1;
    view->inodes = PyObject_GetAttrString(view->table, "inodes");
    if (view->inodes == NULL)
        return -1;
    view->empty = PyAnySet_CheckExact(view->inodes) && PySet_GET_SIZE(view->inodes) == 0;
    return 0;
}

/* 1 held, 0 not held, -1 error (exception set), -2 the table could not be re-read. */
static int
table_held(TableView *view, const struct stat *st)
{
    struct timespec ts;
    double now;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    now = seconds(ts);
    if (view->inodes == NULL && table_load(view) < 0)
        return -1;
    if (now - view->read_at > view->ttl) {
        PyObject *r = PyObject_CallMethod(view->table, "refresh", "d", now);
        if (r == NULL) {
            if (PyErr_ExceptionMatches(PyExc_OSError) || PyErr_ExceptionMatches(PyExc_ValueError)) {
                PyErr_Clear();
                return -2;
            }
            return -1;
        }
        Py_DECREF(r);
        if (table_load(view) < 0) /* refresh() set new inodes and read_at */
            return -1;
    }
    if (view->empty)
        return 0;
    PyObject *key = Py_BuildValue("(KK)", (unsigned long long)st->st_dev,
                                  (unsigned long long)st->st_ino);
    if (key == NULL)
        return -1;
    int held = PySequence_Contains(view->inodes, key);
    Py_DECREF(key);
    return held;
}

static int
emit(PyObject *out, const char *name, int code, long long value, long long size, double t)
{
    PyObject *pyname = PyUnicode_DecodeFSDefault(name); /* as os.scandir's str names */
    if (pyname == NULL)
        return -1;
    PyObject *item = Py_BuildValue("(NiLLd)", pyname, code, value, size, t);
    if (item == NULL)
        return -1;
    int rc = PyList_Append(out, item);
    Py_DECREF(item);
    return rc;
}

/* A time in ns as os.stat_result's st_*_ns, or 0 when it does not fit in 64 bits (before
 * 1678 or after 2262: ext4, xfs bigtime and tmpfs store such times). */
static int
time_ns(struct timespec t, long long *out)
{
    long long ns;
    if (__builtin_mul_overflow((long long)t.tv_sec, 1000000000LL, &ns) ||
        __builtin_add_overflow(ns, (long long)t.tv_nsec, out))
        return 0;
    return 1;
}

/* (name, os.stat_result) of a subdirectory, as os.lstat would give (times as Python's).
 * Filled in place, as posixmodule.c fills its own (PyStructSequence_New): calling the type
 * with a tuple costs about a microsecond more a directory (issue 21, the deep tree).
 * 1 done, 0 its times do not fit in C's 64-bit ns (the caller defers it to Python, whose
 * integers are exact), -1 error. */
static int
emit_dir(PyObject *dirs, const char *name, const struct stat *st)
{
    long long atime_ns, mtime_ns, ctime_ns;
    if (!time_ns(st->st_atim, &atime_ns) || !time_ns(st->st_mtim, &mtime_ns) ||
        !time_ns(st->st_ctim, &ctime_ns))
        return 0;
    PyObject *result = PyStructSequence_New((PyTypeObject *)stat_result);
    if (result == NULL)
        return -1;
    PyObject *v[19] = {
        PyLong_FromUnsignedLong((unsigned long)st->st_mode),
        PyLong_FromUnsignedLongLong((unsigned long long)st->st_ino),
        PyLong_FromUnsignedLongLong((unsigned long long)st->st_dev),
        PyLong_FromUnsignedLongLong((unsigned long long)st->st_nlink),
        PyLong_FromUnsignedLong((unsigned long)st->st_uid),
        PyLong_FromUnsignedLong((unsigned long)st->st_gid),
        PyLong_FromLongLong((long long)st->st_size),
        PyLong_FromLongLong((long long)st->st_atim.tv_sec),
        PyLong_FromLongLong((long long)st->st_mtim.tv_sec),
        PyLong_FromLongLong((long long)st->st_ctim.tv_sec),
        PyFloat_FromDouble(seconds(st->st_atim)),
        PyFloat_FromDouble(seconds(st->st_mtim)),
        PyFloat_FromDouble(seconds(st->st_ctim)),
        PyLong_FromLongLong(atime_ns),
        PyLong_FromLongLong(mtime_ns),
        PyLong_FromLongLong(ctime_ns),
        PyLong_FromLong((long)st->st_blksize),
        PyLong_FromLongLong((long long)st->st_blocks),
        PyLong_FromUnsignedLongLong((unsigned long long)st->st_rdev),
    };
    /* Linux's os.stat_result has these 19 fields (checked at import); every item is set,
     * None for one that could not be made, so that the result's dealloc frees the rest. */
    int failed = 0;
    for (Py_ssize_t i = 0; i < 19; i++) {
        PyObject *item = v[i];
        if (item == NULL) {
            failed = 1;
            item = Py_NewRef(Py_None);
        }
        PyStructSequence_SET_ITEM(result, i, item);
    }
    if (failed) {
        Py_DECREF(result);
        return -1;
    }
    PyObject *pyname = PyUnicode_DecodeFSDefault(name);
    if (pyname == NULL) {
        Py_DECREF(result);
        return -1;
    }
    PyObject *item = Py_BuildValue("(NN)", pyname, result);
    if (item == NULL)
        return -1;
    int rc = PyList_Append(dirs, item);
    Py_DECREF(item);
    return rc < 0 ? -1 : 1;
}

static int
Lister_init(Lister *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"dry_run", "cutoff", "root_dev", "age_code", "report", NULL};
    int dry_run, age_code, report;
    double cutoff;
    unsigned long long root_dev;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "pdKip", kwlist, &dry_run, &cutoff, &root_dev,
                                     &age_code, &report))
        return -1;
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "Lister is in a batch");
        return -1;
    }
    if (self->buf != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Lister already initialised");
        return -1;
    }
    self->buf = PyMem_RawMalloc(DENTS_BUF);
    if (self->buf == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    self->fd = -1; /* list() gives the first directory */
    self->pos = self->end = 0;
    self->shared = 0;
    self->dry_run = dry_run;
    self->cutoff = cutoff;
    self->root_dev = root_dev;
    self->age_code = age_code;
    self->report = report;
    return 0;
}

static void
close_dir(Lister *self)
{
    PyMem_RawFree(self->buf); /* the fd is the caller's: left open */
    self->buf = NULL;
}

static PyObject *
Lister_close(Lister *self, PyObject *Py_UNUSED(ignored))
{
    if (self->busy) { /* called from the lock table's refresh, inside batch() */
        PyErr_SetString(PyExc_RuntimeError, "Lister is in a batch: cannot close it");
        return NULL;
    }
    close_dir(self);
    Py_RETURN_NONE;
}

static void
Lister_dealloc(Lister *self)
{
    close_dir(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* batch(limit, table)
 *   -> (listed, gone, files, symlinks, nbytes, kept, items, subdirs, end, read_errno)
 * table: the _LockTable, or None (then every old regular file goes back to Python). */
static PyObject *batch(Lister *self, Py_ssize_t limit, PyObject *table);

/* 0, or -1 with an exception: the Lister cannot run a batch now. */
static int
ready(Lister *self)
{
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError,
                        "Lister is in a batch: batch() and list() are not re-entrant");
        return -1;
    }
    if (self->buf == NULL) {
        PyErr_SetString(PyExc_ValueError, "Lister is closed");
        return -1;
    }
    return 0;
}

static PyObject *
Lister_batch(Lister *self, PyObject *args)
{
    Py_ssize_t limit;
    PyObject *table;
    if (!PyArg_ParseTuple(args, "nO", &limit, &table))
        return NULL;
    if (ready(self) < 0)
        return NULL;
    if (self->fd < 0) {
        PyErr_SetString(PyExc_ValueError, "Lister has no directory: call list() first");
        return NULL;
    }
    self->busy = 1;
    PyObject *result = batch(self, limit, table);
    self->busy = 0;
    return result;
}

/* list(fd, shared, limit, table): start reading the directory open on fd (shared: others
 * may write to it) and return its first batch. Whatever was left unread of the previous
 * directory is dropped. One call a directory instead of building a Lister (argument
 * parsing by keyword, a 32 KiB buffer allocated and freed) and closing it: issue 21, the
 * deep tree's per-directory cost. */
static PyObject *
Lister_list(Lister *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "list(fd, shared, limit, table) takes 4 arguments");
        return NULL;
    }
    long fd = PyLong_AsLong(args[0]);
    if (fd == -1 && PyErr_Occurred())
        return NULL;
    if (fd < 0 || fd > INT_MAX) {
        PyErr_SetString(PyExc_ValueError, "list(): not a file descriptor");
        return NULL;
    }
    int shared = PyObject_IsTrue(args[1]);
    if (shared < 0)
        return NULL;
    Py_ssize_t limit = PyLong_AsSsize_t(args[2]);
    if (limit == -1 && PyErr_Occurred())
        return NULL;
    if (ready(self) < 0)
        return NULL;
    /* The walk opened it just now and never read it (enter, open_root): no rewind, one
     * syscall a directory less. An fd already read would list only what is left, so less
     * would be removed, never more. */
    self->fd = (int)fd;
    self->shared = shared;
    self->pos = self->end = 0;
    self->busy = 1;
    PyObject *result = batch(self, limit, args[3]);
    self->busy = 0;
    return result;
}

static PyObject *
batch(Lister *self, Py_ssize_t limit, PyObject *table)
{
    int dfd = self->fd;
    long long listed = 0, gone = 0, files = 0, symlinks = 0, nbytes = 0, kept = 0;
    int end = 0, read_errno = 0;
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    PyObject *dirs = PyList_New(0);
    if (dirs == NULL) {
        Py_DECREF(out);
        return NULL;
    }
    TableView view = {table, NULL, 0.0, 0.0, 0};
    while (listed < limit) {
        if (listed % SIGNAL_EVERY == SIGNAL_EVERY - 1 && PyErr_CheckSignals() < 0)
            goto error; /* a handler raised (KeyboardInterrupt): stop at once */
        if (self->pos >= self->end) {
            long n;
            do
                n = syscall(SYS_getdents64, dfd, self->buf, DENTS_BUF);
            while (n < 0 && errno == EINTR);
            if (n <= 0) {
                end = 1;
                read_errno = n < 0 ? errno : 0;
                break;
            }
            self->pos = 0;
            self->end = n;
        }
        struct dirent64_rec *de = (struct dirent64_rec *)(self->buf + self->pos);
        const long name_at = (long)offsetof(struct dirent64_rec, d_name);
        long left = self->end - self->pos;
        long reclen = left > name_at ? (long)de->d_reclen : 0;
        if (reclen <= name_at || reclen > left ||
            memchr(de->d_name, '\0', (size_t)(reclen - name_at)) == NULL) {
            /* a record the kernel cannot have written: stop reading, as on a read error
             * (the directory is then never "emptied", so never removed) */
            self->pos = self->end = 0;
            end = 1;
            read_errno = EIO;
            break;
        }
        self->pos += reclen;
        const char *name = de->d_name;
        if (name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0')))
            continue;
        listed++;
        struct stat st;
        if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
            if (emit(out, name, OUT_STAT_FAILED, errno, 0, 0.0) < 0)
                goto error;
            continue;
        }
        if (S_ISDIR(st.st_mode)) { /* entered (or not) by the Python walk */
            int rc = emit_dir(dirs, name, &st);
            if (rc < 0 || (rc == 0 && emit(out, name, OUT_DEFER, 0, 0, 0.0) < 0))
                goto error;
            continue;
        }
        int is_reg = S_ISREG(st.st_mode);
        if (!(is_reg || S_ISLNK(st.st_mode)) || (unsigned long long)st.st_dev != self->root_dev) {
            if (emit(out, name, OUT_DEFER, 0, 0, 0.0) < 0)
                goto error;
            continue;
        }
        long long size = is_reg ? (long long)st.st_size : 0, sum;
        if (__builtin_add_overflow(kept, size, &sum) || __builtin_add_overflow(nbytes, size, &sum)) {
            /* the counters would overflow (huge sparse files): Python counts it exactly */
            if (emit(out, name, OUT_DEFER, 0, 0, 0.0) < 0)
                goto error;
            continue;
        }
        double t = age_time(&st, self->age_code);
        if (t > self->cutoff) {
            kept += size;
            continue;
        }
        if (is_reg) {
            if (table == Py_None) {
                if (emit(out, name, OUT_DEFER, 0, 0, 0.0) < 0)
                    goto error;
                continue;
            }
            int held = table_held(&view, &st);
            if (held == -1)
                goto error;
            if (held == -2) { /* stop here: Python switches to the flock probe */
                if (emit(out, name, OUT_TABLE_LOST, 0, 0, 0.0) < 0)
                    goto error;
                break;
            }
            if (held) {
                kept += size;
                if (emit(out, name, OUT_LOCKED, 0, size, t) < 0)
                    goto error;
                continue;
            }
            if (self->shared) { /* someone else may have put another file under this name */
                struct stat again;
                if (fstatat(dfd, name, &again, AT_SYMLINK_NOFOLLOW) != 0) {
                    kept += size;
                    if (emit(out, name, OUT_RECHECK_FAILED, errno, size, t) < 0)
                        goto error;
                    continue;
                }
                if (!S_ISREG(again.st_mode) || again.st_ino != st.st_ino ||
                    again.st_dev != st.st_dev || again.st_ctim.tv_sec != st.st_ctim.tv_sec ||
                    again.st_ctim.tv_nsec != st.st_ctim.tv_nsec) {
                    kept += size;
                    if (emit(out, name, OUT_CHANGED, 0, size, t) < 0)
                        goto error;
                    continue;
                }
            }
        }
        if (!self->dry_run && unlinkat(dfd, name, 0) != 0) {
            kept += size;
            if (emit(out, name, OUT_UNLINK_FAILED, errno, size, t) < 0)
                goto error;
            continue;
        }
        gone++;
        if (is_reg) {
            files++;
            nbytes += size;
        }
        else {
            symlinks++;
        }
        if (self->report) { /* the callback sees each removal as it happens */
            if (emit(out, name, OUT_REMOVED, is_reg, size, t) < 0)
                goto error;
            break;
        }
    }
    Py_XDECREF(view.inodes);
    return Py_BuildValue("(LLLLLLNNii)", listed, gone, files, symlinks, nbytes, kept, out, dirs,
                         end, read_errno);
error:
    Py_XDECREF(view.inodes);
    Py_DECREF(out);
    Py_DECREF(dirs);
    return NULL;
}

static PyMethodDef Lister_methods[] = {
    {"list", (PyCFunction)(void (*)(void))Lister_list, METH_FASTCALL,
     "list(fd, shared, limit, table) -> the first batch of the directory open on fd"},
    {"batch", (PyCFunction)Lister_batch, METH_VARARGS,
     "batch(limit, table) -> (listed, gone, files, symlinks, nbytes, kept, items, subdirs, end,"
     " errno)"},
    {"close", (PyCFunction)Lister_close, METH_NOARGS, "Free the buffer (the fds are the caller's)."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ListerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "reliactl._cleanupwalk.Lister",
    .tp_basicsize = sizeof(Lister),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A cleanup walk's directories, each decided in batches.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Lister_init,
    .tp_dealloc = (destructor)Lister_dealloc,
    .tp_methods = Lister_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "reliactl._cleanupwalk",
    "cleanup's per-entry loop in C (see reliactl/cleanup.py).", -1, NULL,
};

PyMODINIT_FUNC
PyInit__cleanupwalk(void)
{
    if (PyType_Ready(&ListerType) < 0)
        return NULL;
    if (stat_result == NULL) {
        PyObject *os = PyImport_ImportModule("os");
        if (os == NULL)
            return NULL;
        stat_result = PyObject_GetAttrString(os, "stat_result");
        Py_DECREF(os);
        if (stat_result == NULL)
            return NULL;
        PyObject *n = PyObject_GetAttrString(stat_result, "n_fields");
        if (n == NULL)
            return NULL;
        Py_ssize_t stat_fields = PyLong_AsSsize_t(n);
        Py_DECREF(n);
        if (stat_fields == -1 && PyErr_Occurred())
            return NULL;
        /* The layout filled by emit_dir is Linux's (posixmodule.c's stat_result_fields):
         * anything else and this build refuses to load, so cleanup walks in Python. */
        if (stat_fields != 19 || !PyType_Check(stat_result)) {
            Py_CLEAR(stat_result);
            PyErr_SetString(PyExc_ImportError, "os.stat_result is not Linux's 19 fields");
            return NULL;
        }
    }
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    /* reliactl/cleanup.py uses the module only when this is the version it was written
     * for: a stale build (a checkout updated without reinstalling) is never called. */
    if (PyModule_AddIntConstant(m, "API", 2) < 0 ||
        PyModule_AddStringConstant(m, "SOURCE_SHA256", CWALK_SRC_SHA) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&ListerType);
    if (PyModule_AddObject(m, "Lister", (PyObject *)&ListerType) < 0) {
        Py_DECREF(&ListerType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
