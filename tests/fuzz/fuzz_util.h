/* fuzz_util.h - shared helpers of the libFuzzer targets in tests/fuzz (header-only: each
 * target is one translation unit linked alone with libFuzzer).
 *
 * FUZZ_CHECK aborts with the failed property, so libFuzzer saves the input as a crash.
 * fuzz_file_path gives bytes a path (a memfd under /proc/self/fd) for the readers that only
 * take a path. fuzz_utf8_valid is an oracle written apart from the tokenizer's own checks.
 */
#ifndef CINDER_FUZZ_UTIL_H
#define CINDER_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#define FUZZ_CHECK(cond)                                                                     \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #cond);      \
            abort();                                                                         \
        }                                                                                    \
    } while (0)

/* Strict UTF-8 (RFC 3629: shortest form, no surrogates, at most U+10FFFF). */
static inline int fuzz_utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        if (!len || i + len > n)
            return 0;
        uint32_t cp = len == 1 ? c : c & (0x7F >> len);
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min_cp[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += len;
    }
    return 1;
}

/* Holds DATA in a memory file; writes its /proc path into PATH. Returns the descriptor
 * (close it when done) or -1. */
static inline int fuzz_file_path(const uint8_t *data, size_t n, char *path, size_t n_path)
{
    int fd = memfd_create("fuzz", MFD_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t off = 0;
    while (off < n) {
        ssize_t w = write(fd, data + off, n - off);
        if (w <= 0) {
            close(fd);
            return -1;
        }
        off += (size_t)w;
    }
    snprintf(path, n_path, "/proc/self/fd/%d", fd);
    return fd;
}

#endif
