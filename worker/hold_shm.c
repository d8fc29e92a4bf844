/* hold_shm.c - the CPU holder's shared-memory region (see hold.h): created private to this
 * user, and mapped only when it still is. */
#include "hold.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* FD is this user's, mode 0600 at most, BYTES long (0: any length); 0 or -1 with ERR. */
static int check_owner(int fd, const char *name, size_t bytes, char *err, size_t n_err)
{
    struct stat s;
    if (fstat(fd, &s) != 0) {
        snprintf(err, n_err, "stat %s: %s", name, strerror(errno));
        return -1;
    }
    if (s.st_uid != geteuid() || (s.st_mode & 077)) {
        snprintf(err, n_err, "refusing shared memory %s: owned by uid %u with mode %03o (want "
                 "uid %u, 0600)", name, (unsigned)s.st_uid, (unsigned)(s.st_mode & 0777),
                 (unsigned)geteuid());
        return -1;
    }
    if (bytes && (size_t)s.st_size != bytes) {
        snprintf(err, n_err, "shared memory %s holds %lld bytes, %zu expected", name,
                 (long long)s.st_size, bytes);
        return -1;
    }
    return 0;
}

static void *map_fd(int fd, const char *name, size_t bytes, char *err, size_t n_err)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        snprintf(err, n_err, "mmap %s (%zu MB): %s", name, bytes >> 20, strerror(errno));
        return NULL;
    }
    return p;
}

void *hold_shm_create(const char *name, size_t bytes, char *err, size_t n_err)
{
    int fd = shm_open(name, O_RDWR, 0);
    if (fd >= 0) {   /* left by a holder that was killed: ours to replace, nobody else's */
        int rc = check_owner(fd, name, 0, err, n_err);
        close(fd);
        if (rc < 0)
            return NULL;
        shm_unlink(name);
    }
    fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0600);
    if (fd < 0) {
        snprintf(err, n_err, "create shared memory %s: %s", name, strerror(errno));
        return NULL;
    }
    void *p = NULL;
    if (ftruncate(fd, (off_t)bytes) != 0)
        snprintf(err, n_err, "size shared memory %s to %zu MB: %s", name, bytes >> 20, strerror(errno));
    else
        p = map_fd(fd, name, bytes, err, n_err);
    close(fd);
    if (!p)
        shm_unlink(name);
    return p;
}

void *hold_shm_map(const char *name, size_t bytes, char *err, size_t n_err)
{
    int fd = shm_open(name, O_RDWR, 0);
    if (fd < 0) {
        snprintf(err, n_err, "open shared memory %s: %s", name, strerror(errno));
        return NULL;
    }
    void *p = check_owner(fd, name, bytes, err, n_err) < 0 ? NULL : map_fd(fd, name, bytes, err, n_err);
    close(fd);
    return p;
}
