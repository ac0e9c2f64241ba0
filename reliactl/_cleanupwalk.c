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
 * decides it. A batch never opens, follows or enters anything: its only calls on names are
 * fstatat(AT_SYMLINK_NOFOLLOW) and unlinkat, both relative to the directory's fd. walk()
 * (below) is the directory recursion of reliactl.cleanup's walk in C: it opens each
 * subdirectory as the Python walk's enter() does (openat relative to the parent's fd,
 * O_NOFOLLOW|O_DIRECTORY, checked against the listed inode and device) and lists it with the
 * same batches. The GIL is
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
#include <sys/sysmacros.h>
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
    struct Walk *walk; /* walk() is running: batch() queues subdirectories in its frame */
    /* The lock table's inode set as a C hash set (see lockset_build): built once per set
     * object, i.e. once per read of /proc/locks, not once per batch. */
    PyObject *lk_set;             /* owned: the set the keys were built from; NULL: none */
    unsigned long long *lk_keys;  /* lk_cap (dev, ino) pairs, open addressing; ino 0 = empty */
    size_t lk_cap;                /* a power of two */
} Lister;

/* A subdirectory listed and not yet entered: what the Python walk keeps of its lstat. */
typedef struct {
    char *name; /* PyMem_RawMalloc'd */
    unsigned long long ino, dev;
    unsigned long uid;
    struct timespec atim, mtim;
    double age; /* the directory age rule's time */
} PendingDir;

/* One directory on the current path of walk() (the Python walk's _Frame). */
typedef struct {
    int fd;         /* closed when the frame is left (the root's is the caller's) */
    int shared;     /* others may write to it */
    int noatime;    /* opened O_NOATIME */
    size_t rel_len; /* its path below the root is walk->rel[0:rel_len] */
    PendingDir self; /* its name in the parent and the lstat listed there */
    long long total, gone;
    PendingDir *pending;
    size_t npending, cap;
    PyObject *rel_obj; /* its rel as str, made at the first callback that needs it */
} Frame;

typedef struct Walk {
    PyObject *walker; /* borrowed: the Python _Walker (callbacks, its lock table) */
    PyObject *table;  /* owned: walker.locks, re-read after each callback that may change it */
    Frame *frames;
    int depth, max_depth;
    Py_ssize_t limit; /* entries a batch reads at most: the items handed back stay bounded */
    unsigned long euid;
    int restore, dir_age_code;
    int have_mnt;                /* the kernel gave the root's mount id (statx, Linux >= 5.8) */
    unsigned long long root_mnt; /* every directory entered must be on this mount */
    char *rel;
    size_t rel_cap;
    long long scanned, files, symlinks, dirs, nbytes, kept, listed_dirs;
    PyObject *nbytes_spill, *kept_spill; /* owned: the part of nbytes/kept past a long long */
    Frame *cur; /* the directory batch() is reading */
} Walk;

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
    int keyed; /* the Lister's lk_keys hold exactly inodes' members: look up in C */
    Lister *owner;
} TableView;

static size_t
lockset_slot(unsigned long long dev, unsigned long long ino, size_t cap)
{
    unsigned long long h = (ino ^ (dev * 0x9E3779B97F4A7C15ULL)) * 0xBF58476D1CE4E5B9ULL;
    return (size_t)(h >> 32) & (cap - 1);
}

static void
lockset_clear(Lister *self)
{
    Py_CLEAR(self->lk_set);
    PyMem_RawFree(self->lk_keys);
    self->lk_keys = NULL;
    self->lk_cap = 0;
}

/* The set's (dev, ino) pairs as a C hash set on the Lister, so that each old regular file
 * is looked up without building a (dev, ino) tuple of two ints and hashing it (~0.1-0.2 us
 * a removed file whenever any process on the machine holds a lock; issue 21, seventh
 * session). Built once per set object: _LockTable.refresh() makes a new frozenset per
 * read. 1 built, 0 not usable here (a member that is not a pair of ints in 64 bits, or an
 * inode 0: the caller asks the set itself, as before), -1 error. */
static int
lockset_build(Lister *self, PyObject *inodes)
{
    if (self->lk_set == inodes)
        return 1;
    lockset_clear(self);
    if (!PyAnySet_CheckExact(inodes))
        return 0;
    Py_ssize_t n = PySet_GET_SIZE(inodes);
    size_t cap = 16;
    while (cap < (size_t)n * 2 + 1) {
        if (cap > ((size_t)PY_SSIZE_T_MAX / 4) / sizeof(unsigned long long)) {
            PyErr_NoMemory();
            return -1;
        }
        cap *= 2;
    }
    unsigned long long *keys = PyMem_RawCalloc(cap * 2, sizeof(unsigned long long));
    if (keys == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    PyObject *it = PyObject_GetIter(inodes), *item;
    if (it == NULL) {
        PyMem_RawFree(keys);
        return -1;
    }
    while ((item = PyIter_Next(it)) != NULL) {
        unsigned long long dev = 0, ino = 0;
        if (PyTuple_CheckExact(item) && PyTuple_GET_SIZE(item) == 2) {
            dev = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(item, 0));
            if (!PyErr_Occurred())
                ino = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(item, 1));
        }
        Py_DECREF(item);
        if (PyErr_Occurred() || ino == 0 || ino == (unsigned long long)-1) {
            /* not a pair of ints in 64 bits (or inode 0): the set itself decides, as before */
            PyErr_Clear();
            Py_DECREF(it);
            PyMem_RawFree(keys);
            return 0;
        }
        size_t i = lockset_slot(dev, ino, cap);
        while (keys[2 * i + 1] != 0 && !(keys[2 * i] == dev && keys[2 * i + 1] == ino))
            i = (i + 1) & (cap - 1);
        keys[2 * i] = dev;
        keys[2 * i + 1] = ino;
    }
    Py_DECREF(it);
    if (PyErr_Occurred()) { /* the iteration itself failed */
        PyMem_RawFree(keys);
        return -1;
    }
    self->lk_keys = keys;
    self->lk_cap = cap;
    self->lk_set = Py_NewRef(inodes);
    return 1;
}

static int
lockset_has(const Lister *self, unsigned long long dev, unsigned long long ino)
{
    size_t cap = self->lk_cap;
    for (size_t i = lockset_slot(dev, ino, cap);; i = (i + 1) & (cap - 1)) {
        if (self->lk_keys[2 * i + 1] == 0)
            return 0;
        if (self->lk_keys[2 * i] == dev && self->lk_keys[2 * i + 1] == ino)
            return 1;
    }
}

static int
table_load(TableView *view)
{
    Py_CLEAR(view->inodes);
    view->keyed = 0;
    if (get_double(view->table, "read_at", &view->read_at) < 0 ||
        get_double(view->table, "ttl", &view->ttl) < 0)
        return -1;
    view->inodes = PyObject_GetAttrString(view->table, "inodes");
    if (view->inodes == NULL)
        return -1;
    view->empty = PyAnySet_CheckExact(view->inodes) && PySet_GET_SIZE(view->inodes) == 0;
    if (!view->empty) {
        int built = lockset_build(view->owner, view->inodes);
        if (built < 0)
            return -1;
        view->keyed = built;
    }
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
    if (view->keyed) /* ino 0 is never a file's: it marks an empty slot */
        return st->st_ino != 0 &&
               lockset_has(view->owner, (unsigned long long)st->st_dev,
                           (unsigned long long)st->st_ino);
    PyObject *key = Py_BuildValue("(KK)", (unsigned long long)st->st_dev,
                                  (unsigned long long)st->st_ino);
    if (key == NULL)
        return -1;
    int held = PySequence_Contains(view->inodes, key);
    Py_DECREF(key);
    return held;
}

static int
emit(PyObject **outp, const char *name, int code, long long value, long long size, double t)
{
    if (*outp == NULL && (*outp = PyList_New(0)) == NULL) /* made at the first item */
        return -1;
    PyObject *pyname = PyUnicode_DecodeFSDefault(name); /* as os.scandir's str names */
    if (pyname == NULL)
        return -1;
    PyObject *item = Py_BuildValue("(NiLLd)", pyname, code, value, size, t);
    if (item == NULL)
        return -1;
    int rc = PyList_Append(*outp, item);
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
    lockset_clear(self);
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

/* What one batch counted (batch() returns them as its tuple's head). */
typedef struct {
    long long listed, gone, files, symlinks, nbytes, kept;
    int end, read_errno;
} Counts;

static int push_pending(Walk *w, const char *name, const struct stat *st);
static int call_removed(Walk *w, Frame *dir, const char *name, int kind, long long size,
                        double t);

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

/* One batch of the directory on self->fd: its counts in *c, the items handed back to
 * Python in *outp (a list made at the first), the subdirectories in dirs (list() and
 * batch()) or, inside walk(), queued in the walk's current frame. 0, or -1 with an
 * exception. */
static int
batch_core(Lister *self, Py_ssize_t limit, PyObject *table, Counts *c, PyObject **outp,
           PyObject *dirs)
{
    int dfd = self->fd;
    long long listed = 0, gone = 0, files = 0, symlinks = 0, nbytes = 0, kept = 0;
    int end = 0, read_errno = 0;
    TableView view = {table, NULL, 0.0, 0.0, 0, 0, self};
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
                /* a directory removed while it is read (a dead inode) says ENOENT: its
                 * end, as glibc's readdir (and so the Python walk's scandir) takes it */
                read_errno = n < 0 && errno != ENOENT ? errno : 0;
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
            if (emit(outp, name, OUT_STAT_FAILED, errno, 0, 0.0) < 0)
                goto error;
            continue;
        }
        if (S_ISDIR(st.st_mode)) { /* entered (or not) by walk() or the Python walk */
            if (self->walk != NULL) {
                if (push_pending(self->walk, name, &st) < 0)
                    goto error;
                continue;
            }
            int rc = emit_dir(dirs, name, &st);
            if (rc < 0 || (rc == 0 && emit(outp, name, OUT_DEFER, 0, 0, 0.0) < 0))
                goto error;
            continue;
        }
        int is_reg = S_ISREG(st.st_mode);
        if (!(is_reg || S_ISLNK(st.st_mode)) || (unsigned long long)st.st_dev != self->root_dev) {
            if (emit(outp, name, OUT_DEFER, 0, 0, 0.0) < 0)
                goto error;
            continue;
        }
        long long size = is_reg ? (long long)st.st_size : 0, sum;
        if (__builtin_add_overflow(kept, size, &sum) || __builtin_add_overflow(nbytes, size, &sum)) {
            /* the counters would overflow (huge sparse files): Python counts it exactly */
            if (emit(outp, name, OUT_DEFER, 0, 0, 0.0) < 0)
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
                if (emit(outp, name, OUT_DEFER, 0, 0, 0.0) < 0)
                    goto error;
                continue;
            }
            int held = table_held(&view, &st);
            if (held == -1)
                goto error;
            if (held == -2) { /* stop here: Python switches to the flock probe */
                if (emit(outp, name, OUT_TABLE_LOST, 0, 0, 0.0) < 0)
                    goto error;
                break;
            }
            if (held) {
                kept += size;
                if (emit(outp, name, OUT_LOCKED, 0, size, t) < 0)
                    goto error;
                continue;
            }
            if (self->shared) { /* someone else may have put another file under this name */
                struct stat again;
                if (fstatat(dfd, name, &again, AT_SYMLINK_NOFOLLOW) != 0) {
                    kept += size;
                    if (emit(outp, name, OUT_RECHECK_FAILED, errno, size, t) < 0)
                        goto error;
                    continue;
                }
                if (!S_ISREG(again.st_mode) || again.st_ino != st.st_ino ||
                    again.st_dev != st.st_dev || again.st_ctim.tv_sec != st.st_ctim.tv_sec ||
                    again.st_ctim.tv_nsec != st.st_ctim.tv_nsec) {
                    kept += size;
                    if (emit(outp, name, OUT_CHANGED, 0, size, t) < 0)
                        goto error;
                    continue;
                }
            }
        }
        if (!self->dry_run && unlinkat(dfd, name, 0) != 0) {
            kept += size;
            if (emit(outp, name, OUT_UNLINK_FAILED, errno, size, t) < 0)
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
            if (self->walk != NULL) {
                if (call_removed(self->walk, self->walk->cur, name, is_reg, size, t) < 0)
                    goto error;
                continue;
            }
            if (emit(outp, name, OUT_REMOVED, is_reg, size, t) < 0)
                goto error;
            break;
        }
    }
    Py_XDECREF(view.inodes);
    c->listed = listed;
    c->gone = gone;
    c->files = files;
    c->symlinks = symlinks;
    c->nbytes = nbytes;
    c->kept = kept;
    c->end = end;
    c->read_errno = read_errno;
    return 0;
error:
    Py_XDECREF(view.inodes);
    return -1;
}

static PyObject *
batch(Lister *self, Py_ssize_t limit, PyObject *table)
{
    Counts c;
    PyObject *out = NULL, *dirs = PyList_New(0);
    if (dirs == NULL)
        return NULL;
    if (batch_core(self, limit, table, &c, &out, dirs) < 0 ||
        (out == NULL && (out = PyList_New(0)) == NULL)) {
        Py_XDECREF(out);
        Py_DECREF(dirs);
        return NULL;
    }
    return Py_BuildValue("(LLLLLLNNii)", c.listed, c.gone, c.files, c.symlinks, c.nbytes, c.kept,
                         out, dirs, c.end, c.read_errno);
}

/* ------------------------------------------------------------------ walk(): the recursion
 *
 * The Python walk's loop (reliactl/cleanup.py, _Walker.run/enter/leave) over the whole tree:
 * a stack of frames, each directory opened relative to its parent's fd with the same flags
 * (O_NOFOLLOW|O_DIRECTORY|O_NONBLOCK|O_CLOEXEC, O_NOATIME where allowed, retried without it
 * on EPERM), fstat'ed and checked to be the listed inode and device, never entered on
 * another device or deeper than max_depth; after its entries its times are put back, and
 * it is removed (rmdir relative to the parent's fd) when emptied and old. Every rare
 * outcome goes back to the walker by callback with its path below the root, so skip
 * reasons, error messages and paths come from the one Python implementation:
 *   walker.c_event(code, rel, name, errno) -> entries gone (a vanished one counts)
 *   walker.c_items(fd, rel, shared, items) -> (gone, subdirectories) for a batch's items
 *   walker.c_removed(kind, rel, name, size, time) (only with an on_remove callback)
 * walk() knows no list of mount points: cleanup.py calls it only when mountinfo shows none
 * below the root (a mount on another device is still caught by st_dev, as in Python). */

enum { /* what a c_event call says (mirrored in reliactl/cleanup.py) */
    EV_OPEN_FAILED = 1,  /* errno of the directory's openat */
    EV_OTHER_FS = 2,     /* a subdirectory on another device: not entered */
    EV_TOO_DEEP = 3,     /* deeper than max_depth: not entered */
    EV_CHANGED = 4,      /* opened, and not the inode listed: not entered */
    EV_READ_FAILED = 5,  /* errno of getdents64 (name ""; rel is the directory's own) */
    EV_RMDIR_FAILED = 6, /* errno of the rmdir of an emptied directory */
    EV_OTHER_MOUNT = 7,  /* opened, on the root's device but another mount (a bind mount) */
};
enum { KIND_SYMLINK = 0, KIND_FILE = 1, KIND_DIR = 2 };

static double
dir_age(const struct timespec *atim, const struct timespec *mtim, const struct timespec *ctim,
        int code)
{
    /* A directory's ctime changes when it is cleaned: "newest" leaves it out (as tmpfiles). */
    double m = seconds(*mtim), a = seconds(*atim);
    switch (code) {
    case 1:
        return m;
    case 2:
        return a;
    case 3:
        return seconds(*ctim);
    default:
        return m > a ? m : a;
    }
}

static int
pending_add(Frame *f, PendingDir *p)
{
    if (f->npending == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 8;
        PendingDir *grown = PyMem_RawRealloc(f->pending, cap * sizeof(PendingDir));
        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        f->pending = grown;
        f->cap = cap;
    }
    f->pending[f->npending++] = *p;
    return 0;
}

static char *
copy_name(const char *name, size_t len)
{
    char *copy = PyMem_RawMalloc(len + 1);
    if (copy == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    memcpy(copy, name, len);
    copy[len] = '\0';
    return copy;
}

static int
push_pending(Walk *w, const char *name, const struct stat *st)
{
    PendingDir p;
    p.name = copy_name(name, strlen(name));
    if (p.name == NULL)
        return -1;
    p.ino = (unsigned long long)st->st_ino;
    p.dev = (unsigned long long)st->st_dev;
    p.uid = (unsigned long)st->st_uid;
    p.atim = st->st_atim;
    p.mtim = st->st_mtim;
    p.age = dir_age(&st->st_atim, &st->st_mtim, &st->st_ctim, w->dir_age_code);
    if (pending_add(w->cur, &p) < 0) {
        PyMem_RawFree(p.name);
        return -1;
    }
    return 0;
}

/* A time from an os.stat_result's st_*_ns (a Python int, any size) as a timespec. */
static int
timespec_of(PyObject *ns, struct timespec *out)
{
    PyObject *billion = PyLong_FromLong(1000000000L);
    if (billion == NULL)
        return -1;
    PyObject *qr = PyNumber_Divmod(ns, billion);
    Py_DECREF(billion);
    if (qr == NULL)
        return -1;
    long long sec = PyLong_AsLongLong(PyTuple_GET_ITEM(qr, 0));
    long nsec = PyLong_AsLong(PyTuple_GET_ITEM(qr, 1));
    Py_DECREF(qr);
    if (PyErr_Occurred())
        return -1;
    out->tv_sec = (time_t)sec;
    out->tv_nsec = nsec;
    return 0;
}

/* A (name, os.stat_result) the walker queued (an entry it judged a directory on a fresh
 * lstat) as a pending directory of f. */
static int
pending_from_python(Walk *w, Frame *f, PyObject *pair)
{
    PyObject *name, *st;
    if (!PyTuple_Check(pair)) {
        PyErr_SetString(PyExc_TypeError, "c_items: a subdirectory is not a (name, stat) tuple");
        return -1;
    }
    if (!PyArg_ParseTuple(pair, "UO", &name, &st))
        return -1;
    if (!PyObject_TypeCheck(st, (PyTypeObject *)stat_result)) {
        PyErr_SetString(PyExc_TypeError, "c_items: a subdirectory without its os.stat_result");
        return -1;
    }
    PendingDir p;
    struct timespec ctim;
    p.ino = PyLong_AsUnsignedLongLong(PyStructSequence_GET_ITEM(st, 1));
    p.dev = PyLong_AsUnsignedLongLong(PyStructSequence_GET_ITEM(st, 2));
    p.uid = PyLong_AsUnsignedLong(PyStructSequence_GET_ITEM(st, 4));
    if (PyErr_Occurred() || timespec_of(PyStructSequence_GET_ITEM(st, 13), &p.atim) < 0 ||
        timespec_of(PyStructSequence_GET_ITEM(st, 14), &p.mtim) < 0 ||
        timespec_of(PyStructSequence_GET_ITEM(st, 15), &ctim) < 0)
        return -1;
    /* the age as the Python walk's dir_time: from the float st_*time fields */
    double a = PyFloat_AsDouble(PyStructSequence_GET_ITEM(st, 10));
    double m = PyFloat_AsDouble(PyStructSequence_GET_ITEM(st, 11));
    double c = PyFloat_AsDouble(PyStructSequence_GET_ITEM(st, 12));
    if (PyErr_Occurred())
        return -1;
    switch (w->dir_age_code) {
    case 1:
        p.age = m;
        break;
    case 2:
        p.age = a;
        break;
    case 3:
        p.age = c;
        break;
    default:
        p.age = m > a ? m : a;
    }
    PyObject *encoded = PyUnicode_EncodeFSDefault(name);
    if (encoded == NULL)
        return -1;
    p.name = copy_name(PyBytes_AS_STRING(encoded), (size_t)PyBytes_GET_SIZE(encoded));
    Py_DECREF(encoded);
    if (p.name == NULL)
        return -1;
    if (pending_add(f, &p) < 0) {
        PyMem_RawFree(p.name);
        return -1;
    }
    return 0;
}

/* The frame's path below the root as str (borrowed; made once a frame). */
static PyObject *
frame_rel(Walk *w, Frame *f)
{
    if (f->rel_obj == NULL)
        f->rel_obj = PyUnicode_DecodeFSDefaultAndSize(f->rel_len ? w->rel : "",
                                                      (Py_ssize_t)f->rel_len);
    return f->rel_obj;
}

/* walker.c_event(code, rel of dir, name, err): entries gone, or -1 with an exception. */
static long long
call_event(Walk *w, Frame *dir, int code, const char *name, int err)
{
    PyObject *rel = frame_rel(w, dir);
    if (rel == NULL)
        return -1;
    PyObject *pyname = PyUnicode_DecodeFSDefault(name);
    if (pyname == NULL)
        return -1;
    PyObject *r = PyObject_CallMethod(w->walker, "c_event", "iONi", code, rel, pyname, err);
    if (r == NULL)
        return -1;
    long long gone = PyLong_AsLongLong(r);
    Py_DECREF(r);
    if (gone < 0) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "c_event returned a negative count");
        return -1;
    }
    return gone;
}

static int
call_removed(Walk *w, Frame *dir, const char *name, int kind, long long size, double t)
{
    PyObject *rel = frame_rel(w, dir);
    if (rel == NULL)
        return -1;
    PyObject *pyname = PyUnicode_DecodeFSDefault(name);
    if (pyname == NULL)
        return -1;
    PyObject *r = PyObject_CallMethod(w->walker, "c_removed", "iONLd", kind, rel, pyname, size, t);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* walker.locks, re-read after a callback that may have dropped it (the table lost). */
static int
reload_table(Walk *w)
{
    PyObject *table = PyObject_GetAttrString(w->walker, "locks");
    if (table == NULL)
        return -1;
    Py_XSETREF(w->table, table);
    return 0;
}

/* Give a batch's items to walker.c_items; add what it returns to the frame. */
static int
call_items(Walk *w, Frame *f, PyObject *items)
{
    PyObject *rel = frame_rel(w, f);
    if (rel == NULL)
        return -1;
    PyObject *r = PyObject_CallMethod(w->walker, "c_items", "iOiO", f->fd, rel, f->shared, items);
    if (r == NULL)
        return -1;
    long long gone;
    PyObject *subdirs;
    if (!PyTuple_Check(r)) {
        PyErr_SetString(PyExc_TypeError, "c_items must return a (gone, subdirs) tuple");
        Py_DECREF(r);
        return -1;
    }
    if (!PyArg_ParseTuple(r, "LO!", &gone, &PyList_Type, &subdirs)) {
        Py_DECREF(r);
        return -1;
    }
    f->gone += gone;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(subdirs); i++) {
        if (pending_from_python(w, f, PyList_GET_ITEM(subdirs, i)) < 0) {
            Py_DECREF(r);
            return -1;
        }
    }
    Py_DECREF(r);
    return reload_table(w);
}

/* Add v to a walk's byte total: where the long long would overflow (huge sparse files in
 * several directories), the total so far moves into a Python int, so the walk's totals are
 * exact, as the Python walk's. */
static int
add_total(long long *acc, PyObject **spill, long long v)
{
    long long sum;
    if (!__builtin_add_overflow(*acc, v, &sum)) {
        *acc = sum;
        return 0;
    }
    PyObject *part = PyLong_FromLongLong(*acc);
    if (part == NULL)
        return -1;
    PyObject *total = *spill != NULL ? PyNumber_Add(*spill, part) : Py_NewRef(part);
    Py_DECREF(part);
    if (total == NULL)
        return -1;
    Py_XSETREF(*spill, total);
    *acc = v;
    return 0;
}

/* A byte total as a Python int: its spill plus what is left in the long long. */
static PyObject *
total_of(long long acc, PyObject *spill)
{
    PyObject *part = PyLong_FromLongLong(acc);
    if (part == NULL || spill == NULL)
        return part;
    PyObject *total = PyNumber_Add(spill, part);
    Py_DECREF(part);
    return total;
}

/* Read and decide every entry of the directory of frame f. */
static int
list_frame(Lister *self, Walk *w, Frame *f)
{
    self->fd = f->fd;
    self->shared = f->shared;
    self->pos = self->end = 0;
    w->cur = f;
    w->listed_dirs++;
    if (PyErr_CheckSignals() < 0) /* a long walk of small directories: Ctrl-C stops it */
        return -1;
    for (;;) {
        Counts c;
        PyObject *items = NULL;
        if (batch_core(self, w->limit, w->table, &c, &items, NULL) < 0) {
            Py_XDECREF(items);
            return -1;
        }
        w->scanned += c.listed;
        f->total += c.listed;
        f->gone += c.gone;
        w->files += c.files;
        w->symlinks += c.symlinks;
        if (add_total(&w->nbytes, &w->nbytes_spill, c.nbytes) < 0 ||
            add_total(&w->kept, &w->kept_spill, c.kept) < 0) {
            Py_XDECREF(items);
            return -1;
        }
        if (items != NULL) {
            int rc = call_items(w, f, items);
            Py_DECREF(items);
            if (rc < 0)
                return -1;
        }
        if (c.read_errno) {
            if (call_event(w, f, EV_READ_FAILED, "", c.read_errno) < 0)
                return -1;
            f->total += 1; /* unknown contents: never "emptied" */
        }
        if (c.end)
            return 0;
    }
}

/* Take the path of the frame about to be pushed: rel of parent + "/" + name. */
static int
rel_push(Walk *w, Frame *parent, const char *name, size_t *out_len)
{
    size_t len = strlen(name), at = parent->rel_len;
    size_t need = at + (at ? 1 : 0) + len;
    if (need + 1 > w->rel_cap) {
        size_t cap = w->rel_cap ? w->rel_cap : 256;
        while (cap < need + 1)
            cap *= 2;
        char *grown = PyMem_RawRealloc(w->rel, cap);
        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        w->rel = grown;
        w->rel_cap = cap;
    }
    if (at)
        w->rel[at++] = '/';
    memcpy(w->rel + at, name, len);
    *out_len = need;
    return 0;
}

static int
shared_dir(unsigned long mode, unsigned long uid, unsigned long euid)
{
    /* may someone other than this user (or root) change its entries? (_shared) */
    return (mode & 022) || (uid != 0 && uid != euid);
}

/* What enter() and walk() need of an open directory: one statx (the fstat it replaces, plus
 * the mount id: a bind mount of the same filesystem has the root's st_dev, only its mount id
 * tells it apart). has_mnt is 0 where the kernel does not give it (before Linux 5.8); where
 * statx itself is missing (ENOSYS, a seccomp filter) it is an fstat. 0, or -1 with errno. */
typedef struct {
    unsigned long long ino, dev, mnt;
    unsigned long mode, uid;
    int has_mnt;
} DirId;

static int
dir_id(int fd, DirId *id)
{
    struct statx sx;
    if (statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS | STATX_MNT_ID,
              &sx) == 0) {
        id->ino = (unsigned long long)sx.stx_ino;
        id->dev = (unsigned long long)makedev(sx.stx_dev_major, sx.stx_dev_minor);
        id->mode = sx.stx_mode;
        id->uid = sx.stx_uid;
        id->has_mnt = (sx.stx_mask & STATX_MNT_ID) != 0;
        id->mnt = id->has_mnt ? (unsigned long long)sx.stx_mnt_id : 0;
        return 0;
    }
    if (errno != ENOSYS && errno != EPERM)
        return -1;
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -1;
    id->ino = (unsigned long long)st.st_ino;
    id->dev = (unsigned long long)st.st_dev;
    id->mode = st.st_mode;
    id->uid = st.st_uid;
    id->has_mnt = 0;
    id->mnt = 0;
    return 0;
}

/* Enter pending directory p of the top frame: 1 pushed, 0 not entered, -1 error. The frame
 * takes p's name when pushed; otherwise the caller frees it. */
static int
enter(Walk *w, PendingDir *p)
{
    Frame *parent = &w->frames[w->depth - 1];
    long long gone;
    if (p->dev != w->frames[0].self.dev) /* the root's (walk() checks it is root_dev) */
        return call_event(w, parent, EV_OTHER_FS, p->name, 0) < 0 ? -1 : 0;
    if (w->depth > w->max_depth)
        return call_event(w, parent, EV_TOO_DEEP, p->name, 0) < 0 ? -1 : 0;
    int noatime = O_NOATIME != 0 && (w->euid == 0 || w->euid == p->uid);
    const int flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK;
    int fd;
    do
        fd = openat(parent->fd, p->name, noatime ? flags | O_NOATIME : flags);
    while (fd < 0 && errno == EINTR);
    if (fd < 0 && noatime && errno == EPERM) {
        noatime = 0; /* root without CAP_FOWNER: read it as anyone would */
        do
            fd = openat(parent->fd, p->name, flags);
        while (fd < 0 && errno == EINTR);
    }
    if (fd < 0) {
        gone = call_event(w, parent, EV_OPEN_FAILED, p->name, errno);
        if (gone < 0)
            return -1;
        parent->gone += gone;
        return 0;
    }
    DirId now;
    if (dir_id(fd, &now) != 0) {
        PyErr_SetFromErrno(PyExc_OSError); /* as the Python walk's os.fstat */
        close(fd);
        return -1;
    }
    if (now.ino != p->ino || now.dev != p->dev) {
        close(fd); /* swapped for another directory (or a mount) since it was listed */
        return call_event(w, parent, EV_CHANGED, p->name, 0) < 0 ? -1 : 0;
    }
    if (w->have_mnt && now.has_mnt && now.mnt != w->root_mnt) {
        close(fd); /* a bind mount (same device) made after the mount table was read */
        return call_event(w, parent, EV_OTHER_MOUNT, p->name, 0) < 0 ? -1 : 0;
    }
    size_t rel_len;
    if (rel_push(w, parent, p->name, &rel_len) < 0) {
        close(fd);
        return -1;
    }
    Frame *f = &w->frames[w->depth++];
    memset(f, 0, sizeof(*f));
    f->fd = fd;
    f->shared = shared_dir(now.mode, now.uid, w->euid);
    f->noatime = noatime;
    f->rel_len = rel_len;
    f->self = *p;
    return 1;
}

/* Put a directory's times back (_Walker.restore_times); failures are harmless. */
static void
restore_times(Lister *self, Frame *f)
{
    if (f->noatime && (self->dry_run || !f->gone))
        return; /* read without touching its atime and nothing removed: times unchanged */
    if (self->dry_run || !f->gone) {
        struct stat cur;
        if (fstat(f->fd, &cur) != 0)
            return;
        if (cur.st_atim.tv_sec == f->self.atim.tv_sec &&
            cur.st_atim.tv_nsec == f->self.atim.tv_nsec &&
            cur.st_mtim.tv_sec == f->self.mtim.tv_sec && cur.st_mtim.tv_nsec == f->self.mtim.tv_nsec)
            return;
    }
    struct timespec ts[2] = {f->self.atim, f->self.mtim};
    (void)futimens(f->fd, ts);
}

static void
frame_free(Frame *f)
{
    for (size_t i = 0; i < f->npending; i++)
        PyMem_RawFree(f->pending[i].name);
    PyMem_RawFree(f->pending);
    f->pending = NULL;
    f->npending = f->cap = 0;
    PyMem_RawFree(f->self.name);
    f->self.name = NULL;
    Py_CLEAR(f->rel_obj);
}

/* Leave the top frame (_Walker.leave): it is popped (its fd closed) before any callback. */
static int
leave(Lister *self, Walk *w)
{
    Frame *f = &w->frames[--w->depth];
    Frame *parent = w->depth ? &w->frames[w->depth - 1] : NULL;
    int rc = 0;
    if (w->restore)
        restore_times(self, f);
    if (parent == NULL) {
        frame_free(f); /* the root's fd is the caller's */
        return 0;
    }
    close(f->fd);
    f->fd = -1;
    if (f->gone < f->total || f->self.age > self->cutoff)
        goto done;
    if (!self->dry_run) {
        /* the name must still be the directory entered: one renamed away and replaced by
         * another (empty, young) directory is not removed in its place */
        struct stat cur;
        if (fstatat(parent->fd, f->self.name, &cur, AT_SYMLINK_NOFOLLOW) != 0) {
            long long gone = call_event(w, parent, EV_RMDIR_FAILED, f->self.name, errno);
            if (gone < 0)
                rc = -1;
            else
                parent->gone += gone;
            goto done;
        }
        if ((unsigned long long)cur.st_ino != f->self.ino ||
            (unsigned long long)cur.st_dev != f->self.dev) {
            rc = call_event(w, parent, EV_CHANGED, f->self.name, 0) < 0 ? -1 : 0;
            goto done;
        }
    }
    if (!self->dry_run && unlinkat(parent->fd, f->self.name, AT_REMOVEDIR) != 0) {
        long long gone = call_event(w, parent, EV_RMDIR_FAILED, f->self.name, errno);
        if (gone < 0)
            rc = -1;
        else
            parent->gone += gone;
        goto done;
    }
    parent->gone++;
    w->dirs++;
    if (self->report)
        rc = call_removed(w, parent, f->self.name, KIND_DIR, 0, f->self.age);
done:
    frame_free(f);
    return rc;
}

/* walk(root_fd, root_st, walker, max_depth, euid, restore, dir_age_code, limit)
 *   -> (scanned, files, symlinks, dirs, nbytes, kept, directories listed) */
static PyObject *
Lister_walk(Lister *self, PyObject *args)
{
    int root_fd, max_depth, restore, dir_age_code;
    unsigned long euid;
    Py_ssize_t limit;
    PyObject *root_st, *walker;
    if (!PyArg_ParseTuple(args, "iOOikpin", &root_fd, &root_st, &walker, &max_depth, &euid,
                          &restore, &dir_age_code, &limit))
        return NULL;
    if (limit < 1) {
        PyErr_SetString(PyExc_ValueError, "walk(): limit must be positive");
        return NULL;
    }
    if (ready(self) < 0)
        return NULL;
    if (max_depth < 0 || max_depth > 100000) {
        PyErr_SetString(PyExc_ValueError, "walk(): max_depth out of range");
        return NULL;
    }
    Walk w;
    memset(&w, 0, sizeof(w));
    w.walker = walker;
    w.max_depth = max_depth;
    w.euid = euid;
    w.restore = restore;
    w.dir_age_code = dir_age_code;
    w.limit = limit;
    /* one frame a level: the root plus max_depth below it */
    w.frames = PyMem_RawCalloc((size_t)max_depth + 1, sizeof(Frame));
    if (w.frames == NULL)
        return PyErr_NoMemory();
    PyObject *result = NULL;
    Frame *root = &w.frames[0];
    root->fd = root_fd;
    DirId st;
    if (dir_id(root_fd, &st) != 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        goto out;
    }
    /* the root's times as the caller took them (its "pre", put back as the Python walk does) */
    if (!PyObject_TypeCheck(root_st, (PyTypeObject *)stat_result)) {
        PyErr_SetString(PyExc_TypeError, "walk(): root_st must be an os.stat_result");
        goto out;
    }
    if (timespec_of(PyStructSequence_GET_ITEM(root_st, 13), &root->self.atim) < 0 ||
        timespec_of(PyStructSequence_GET_ITEM(root_st, 14), &root->self.mtim) < 0)
        goto out;
    root->self.dev = st.dev;
    root->self.ino = st.ino;
    w.have_mnt = st.has_mnt;
    w.root_mnt = st.mnt;
    if (root->self.dev != self->root_dev) {
        PyErr_SetString(PyExc_ValueError, "walk(): root_fd is not on the Lister's root_dev");
        goto out;
    }
    root->shared = shared_dir(st.mode, st.uid, euid);
    w.depth = 1;
    if (reload_table(&w) < 0)
        goto out;
    self->busy = 1;
    self->walk = &w;
    if (list_frame(self, &w, root) < 0)
        goto out;
    while (w.depth > 0) {
        Frame *top = &w.frames[w.depth - 1];
        if (top->npending) {
            PendingDir p = top->pending[--top->npending];
            int rc = enter(&w, &p);
            if (rc <= 0)
                PyMem_RawFree(p.name);
            if (rc < 0)
                goto out;
            if (rc > 0 && list_frame(self, &w, &w.frames[w.depth - 1]) < 0)
                goto out;
            continue;
        }
        if (leave(self, &w) < 0)
            goto out;
    }
    PyObject *nbytes = total_of(w.nbytes, w.nbytes_spill);
    PyObject *kept = nbytes != NULL ? total_of(w.kept, w.kept_spill) : NULL;
    if (kept == NULL) {
        Py_XDECREF(nbytes);
        goto out;
    }
    result = Py_BuildValue("(LLLLNNL)", w.scanned, w.files, w.symlinks, w.dirs, nbytes, kept,
                           w.listed_dirs);
out:
    /* an exception (Ctrl-C, a callback's): close what is open below the root, as the Python
     * walk's finally does (no times are put back) */
    for (int i = w.depth - 1; i >= 0; i--) {
        if (i > 0 && w.frames[i].fd >= 0)
            close(w.frames[i].fd);
        frame_free(&w.frames[i]);
    }
    PyMem_RawFree(w.frames);
    PyMem_RawFree(w.rel);
    Py_XDECREF(w.table);
    Py_XDECREF(w.nbytes_spill);
    Py_XDECREF(w.kept_spill);
    self->walk = NULL;
    self->busy = 0;
    self->fd = -1;
    return result;
}

static PyMethodDef Lister_methods[] = {
    {"walk", (PyCFunction)Lister_walk, METH_VARARGS,
     "walk(root_fd, root_st, walker, max_depth, euid, restore, dir_age_code, limit) -> (scanned,"
     " files,"
     " symlinks, dirs, nbytes, kept, directories listed): the whole tree below root_fd"},
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
    if (PyModule_AddIntConstant(m, "API", 4) < 0 ||
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
