/* reliactl's contain shim: runner._shim for reliactl.runner.Contained, as an executable.
 *
 * Contained starts it with posix_spawn (a vfork: no copy of reliactl, no Python in the new
 * process) as
 *     _containshim PROGRAM [ARG...]
 * with fd 0 the program's stdin, fds 1 and 2 its output pipe, fd 3 the report pipe and fd 4
 * the lifeline, and every signal blocked. It does what _shim does for Contained
 * (docs/DESIGN.md section 7): a session of its own, child subreaper, every descriptor above
 * 4 closed, every signal but SIGKILL/SIGSTOP/SIGCHLD ignored; it starts PROGRAM with
 * posix_spawn (PATH searched as execvp does, /bin/sh for ENOEXEC; signals at their defaults
 * except what reliactl ignored other than SIGPIPE/SIGXFSZ, an empty mask) and reports on
 * fd 3: "S<wait status>" when PROGRAM exits, "T<signal>" when it stops, "E<errno> <why>"
 * when it cannot be started. It reaps PROGRAM and every orphan reparented to it and exits 0
 * once none is left; lifeline EOF SIGKILLs every process under it, "L" leaves them.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CSHIM_SRC_SHA
#define CSHIM_SRC_SHA "unknown"
#endif
/* reliactl reads this to refuse an executable built from other source (hatch_build.py). */
__attribute__((used)) const char containshim_source[] = "RELIACTL_CONTAINSHIM_SHA256=" CSHIM_SRC_SHA;

extern char **environ;
enum { REPORT = 3, LIFE = 4, FIRST_CLOSED = 5 };

static void say(const char *fmt, ...) {
    char line[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if (n > (int)sizeof line - 2) {
        n = (int)sizeof line - 2;
        line[n++] = '\n';
    }
    for (int off = 0; off < n;) {
        ssize_t w = write(REPORT, line + off, (size_t)(n - off));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return;
        off += (int)w;
    }
}

static void close_fds_from(int low) {
#ifdef SYS_close_range
    if (syscall(SYS_close_range, (unsigned)low, ~0U, 0) == 0) return;
#endif
    DIR *dir = opendir("/proc/self/fd");
    if (dir == NULL) {
        for (int fd = low; fd < (1 << 20); fd++) close(fd);
        return;
    }
    int mine = dirfd(dir);
    int *fds = NULL;
    size_t n = 0, cap = 0;
    struct dirent *ent;
    while ((ent = readdir(dir)) != NULL) {
        int fd = atoi(ent->d_name);
        if (fd < low || fd == mine || ent->d_name[0] < '0' || ent->d_name[0] > '9') continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            int *more = realloc(fds, cap * sizeof *fds);
            if (more == NULL) break;
            fds = more;
        }
        fds[n++] = fd;
    }
    closedir(dir);
    for (size_t i = 0; i < n; i++) close(fds[i]);
    free(fds);
}

/* ------------------------------------------------------------------ starting the program */

static int spawn_one(pid_t *pid, const char *path, char *const argv[], const posix_spawnattr_t *attr) {
    int err = posix_spawn(pid, path, NULL, attr, argv, environ);
    if (err == ENOEXEC) {
        int argc = 0;
        while (argv[argc] != NULL) argc++;
        char **sh = calloc((size_t)argc + 2, sizeof *sh);
        if (sh == NULL) return ENOMEM;
        sh[0] = "sh";
        sh[1] = (char *)path;
        for (int i = 1; i < argc; i++) sh[i + 1] = argv[i];
        err = posix_spawn(pid, "/bin/sh", NULL, attr, sh, environ);
        free(sh);
    }
    return err;
}

/* execvp's rule (runner._failed): the error to keep, and whether to search on. */
static int failed(int saved, int err, int *search_on) {
    if (err == ENOENT || err == ENOTDIR || err == ENAMETOOLONG) {
        *search_on = 1;
        return saved ? saved : err;
    }
    *search_on = (err == EACCES || err == EISDIR);
    return err;
}

/* runner._spawn_command: the pid, or 0 with *why set to the errno to report. */
static pid_t spawn_program(char *const argv[], const posix_spawnattr_t *attr, int *why) {
    const char *program = argv[0];
    pid_t pid = 0;
    if (program[0] == '\0') {
        *why = ENOENT;
        return 0;
    }
    if (strchr(program, '/') != NULL) {
        int err = spawn_one(&pid, program, argv, attr);
        *why = err;
        return err ? 0 : pid;
    }
    const char *path = getenv("PATH");
    if (path == NULL) path = "/bin:/usr/bin"; /* os.defpath */
    int many = strchr(path, ':') != NULL;
    size_t plen = strlen(program);
    int saved = 0;
    for (const char *dir = path;;) {
        const char *end = strchrnul(dir, ':');
        size_t dlen = (size_t)(end - dir);
        char *candidate = malloc(dlen + plen + 3);
        if (candidate == NULL) {
            *why = ENOMEM;
            return 0;
        }
        if (dlen == 0) {
            strcpy(candidate, "./");
        } else {
            memcpy(candidate, dir, dlen);
            candidate[dlen] = '\0';
            if (dir[dlen - 1] != '/') strcat(candidate, "/");
        }
        strcat(candidate, program);
        int search_on = 1, skip = 0;
        struct stat st;
        if (many && stat(candidate, &st) != 0 && (errno == ENOENT || errno == ENOTDIR)) {
            if (!saved) saved = errno; /* not there: one stat instead of a whole clone */
            skip = 1;
        }
        if (!skip) {
            int err = spawn_one(&pid, candidate, argv, attr);
            if (err == 0) {
                free(candidate);
                return pid;
            }
            saved = failed(saved, err, &search_on);
        }
        free(candidate);
        if (!search_on || *end == '\0') break;
        dir = end + 1;
    }
    *why = saved ? saved : ENOENT;
    return 0;
}

/* ------------------------------------------------------------------ killing what is left */

typedef struct {
    pid_t pid;
    unsigned long long start;
} proc_t;

typedef struct {
    proc_t *items;
    size_t n, cap;
} procs_t;

static int push(procs_t *list, pid_t pid, unsigned long long start) {
    if (list->n == list->cap) {
        size_t cap = list->cap ? list->cap * 2 : 64;
        proc_t *more = realloc(list->items, cap * sizeof *more);
        if (more == NULL) return -1;
        list->items = more;
        list->cap = cap;
    }
    list->items[list->n].pid = pid;
    list->items[list->n].start = start;
    list->n++;
    return 0;
}

static int contains(const procs_t *list, pid_t pid, unsigned long long start) {
    for (size_t i = 0; i < list->n; i++)
        if (list->items[i].pid == pid && list->items[i].start == start) return 1;
    return 0;
}

/* (state, ppid, start time) of pid from /proc/<pid>/stat; -1 when it is gone. */
static int stat_of(pid_t pid, char *state, pid_t *ppid, unsigned long long *start) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (p == NULL) return -1;
    p++;
    int ppid_i = 0;
    if (sscanf(p, " %c %d", state, &ppid_i) != 2) return -1;
    *ppid = ppid_i;
    for (int field = 0; field < 19; field++) { /* the start time is the 20th field after ')' */
        p = strchr(p + 1, ' ');
        if (p == NULL) return -1;
    }
    *start = strtoull(p + 1, NULL, 10);
    return 0;
}

/* The children of pid (through /proc/<pid>/task/<tid>/children, else a scan of /proc). */
static void children_of(pid_t parent, procs_t *out) {
    char path[320]; /* /proc/<pid>/task/<d_name up to 255>/children */
    snprintf(path, sizeof path, "/proc/%d/task", (int)parent);
    DIR *tasks = opendir(path);
    if (tasks == NULL) return;
    struct dirent *ent;
    int scan = 0;
    while ((ent = readdir(tasks)) != NULL) {
        if (ent->d_name[0] < '0' || ent->d_name[0] > '9') continue;
        snprintf(path, sizeof path, "/proc/%d/task/%s/children", (int)parent, ent->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            snprintf(path, sizeof path, "/proc/%d/task/%s", (int)parent, ent->d_name);
            if (access(path, F_OK) == 0) scan = 1; /* no CONFIG_PROC_CHILDREN */
            continue;
        }
        char buf[8192];
        size_t len = 0;
        ssize_t n;
        while (len < sizeof buf - 1 && (n = read(fd, buf + len, sizeof buf - 1 - len)) > 0)
            len += (size_t)n;
        close(fd);
        buf[len] = '\0';
        for (char *p = buf, *end; *p; p = end) {
            long kid = strtol(p, &end, 10);
            if (end == p) break;
            push(out, (pid_t)kid, 0);
        }
    }
    closedir(tasks);
    if (!scan) return;
    DIR *proc = opendir("/proc");
    if (proc == NULL) return;
    while ((ent = readdir(proc)) != NULL) {
        if (ent->d_name[0] < '0' || ent->d_name[0] > '9') continue;
        char state;
        pid_t ppid;
        unsigned long long start;
        pid_t pid = (pid_t)atoi(ent->d_name);
        if (stat_of(pid, &state, &ppid, &start) == 0 && ppid == parent) push(out, pid, 0);
    }
    closedir(proc);
}

/* SIGKILL exactly this process: through a pidfd, after checking the pid was not reused. */
static void kill_exactly(pid_t pid, unsigned long long start) {
    int pidfd = -1;
#ifdef SYS_pidfd_open
    pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pidfd < 0 && errno == ESRCH) return;
#endif
    char state;
    pid_t ppid;
    unsigned long long now;
    if (stat_of(pid, &state, &ppid, &now) == 0 && now == start) {
#ifdef SYS_pidfd_send_signal
        if (pidfd >= 0) {
            syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
        } else
#endif
            kill(pid, SIGKILL);
    }
    if (pidfd >= 0) close(pidfd);
}

/* runner.signal_job(os.getpid(), SIGKILL, group=os.getpid()): every process under us. */
static void kill_everything_under_us(void) {
    procs_t done = {0}, stack = {0}, kids = {0}, fresh = {0};
    for (int round = 0; round < 100; round++) { /* a fork bomb outrunning SIGKILL: bounded */
        fresh.n = stack.n = 0;
        procs_t seen = {0};
        push(&stack, getpid(), 0);
        push(&seen, getpid(), 0);
        while (stack.n > 0) {
            pid_t parent = stack.items[--stack.n].pid;
            kids.n = 0;
            children_of(parent, &kids);
            for (size_t i = 0; i < kids.n; i++) {
                pid_t kid = kids.items[i].pid;
                if (contains(&seen, kid, 0)) continue;
                push(&seen, kid, 0);
                char state;
                pid_t ppid;
                unsigned long long start;
                if (stat_of(kid, &state, &ppid, &start) != 0 || state == 'Z' || state == 'X')
                    continue;
                push(&stack, kid, 0);
                if (!contains(&done, kid, start)) push(&fresh, kid, start);
            }
        }
        free(seen.items);
        if (fresh.n == 0) break;
        for (size_t i = 0; i < fresh.n; i++) {
            push(&done, fresh.items[i].pid, fresh.items[i].start);
            kill_exactly(fresh.items[i].pid, fresh.items[i].start);
        }
    }
    free(done.items);
    free(stack.items);
    free(kids.items);
    free(fresh.items);
}

/* ------------------------------------------------------------------ the shim */

int main(int argc, char **argv) {
    if (argc < 2) return 125;
    sigset_t all, none, chld;
    sigfillset(&all);
    sigemptyset(&none);
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_SETMASK, &all, NULL); /* reliactl starts us so; kept until the loop */
    if (setsid() < 0) return 125;
    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    close_fds_from(FIRST_CLOSED);
    fcntl(REPORT, F_SETFD, FD_CLOEXEC);
    fcntl(LIFE, F_SETFD, FD_CLOEXEC);
    /* We outlive every signal sent to the group; the program gets reliactl's dispositions
     * back: ignored stays ignored, except SIGPIPE and SIGXFSZ that Python ignores itself. */
    sigset_t defaults;
    sigemptyset(&defaults);
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP || sig == SIGCHLD) continue;
        struct sigaction ignore, old;
        memset(&ignore, 0, sizeof ignore);
        ignore.sa_handler = SIG_IGN;
        sigemptyset(&ignore.sa_mask);
        if (sigaction(sig, &ignore, &old) != 0) continue; /* glibc's own, or not a signal */
        if (!(old.sa_handler == SIG_IGN && sig != SIGPIPE && sig != SIGXFSZ))
            sigaddset(&defaults, sig);
    }
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL; /* never SIG_IGN: children must stay for waitpid */
    sigaction(SIGCHLD, &dfl, NULL);
    int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd < 0) return 125;

    posix_spawnattr_t attr;
    if (posix_spawnattr_init(&attr) != 0) return 125;
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    int why = 0;
    pid_t pid = spawn_program(argv + 1, &attr, &why);
    posix_spawnattr_destroy(&attr);
    if (pid == 0) {
        say("E%d %s\n", why, strerror(why));
        _exit(0); /* no process of it was started: nothing to reap */
    }
    sigprocmask(SIG_SETMASK, &chld, NULL); /* SIGCHLD only through the signalfd */

    struct pollfd watched[2] = {{.fd = sfd, .events = POLLIN}, {.fd = LIFE, .events = POLLIN}};
    int nwatched = 2, command_done = 0;
    for (;;) {
        for (;;) { /* reap the program and every orphan reparented to us */
            int status;
            pid_t done = waitpid(-1, &status, WNOHANG | WUNTRACED);
            if (done < 0) {
                if (errno == EINTR) continue;
                _exit(errno == ECHILD ? 0 : 125); /* nobody left: it is over */
            }
            if (done == 0) break;
            if (done == pid && !command_done) {
                if (WIFSTOPPED(status)) {
                    say("T%d\n", WSTOPSIG(status));
                    continue;
                }
                say("S%d\n", status);
                command_done = 1;
            }
        }
        if (poll(watched, (nfds_t)nwatched, -1) < 0) {
            if (errno == EINTR) continue;
            _exit(125);
        }
        if (nwatched == 2 && watched[1].revents) {
            char word;
            ssize_t n = read(LIFE, &word, 1);
            if (n == 1 && word == 'L') _exit(0); /* reliactl leaves what is left running */
            if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
                nwatched = 1; /* reliactl is gone: so is everything it ran */
                kill_everything_under_us();
            }
        }
        if (watched[0].revents) {
            struct signalfd_siginfo info;
            while (read(sfd, &info, sizeof info) > 0) {
            }
        }
    }
}
