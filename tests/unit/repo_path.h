/* repo_path.h - for unit tests that read committed or fetched files: a path relative to the
 * repository root, found from the working directory or from the test binary's place
 * (build/test/ two levels below the root). */
#ifndef CINDER_TEST_REPO_PATH_H
#define CINDER_TEST_REPO_PATH_H

#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* REL under the repository root into OUT [n]: 0 when readable there, else -1. */
static int find_path(const char *rel, char *out, size_t n)
{
    snprintf(out, n, "%s", rel);
    if (access(out, R_OK) == 0)
        return 0;
    char exe[1024];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (k <= 0)
        return -1;
    exe[k] = 0;
    for (int up = 0; up < 3; up++) {
        char *s = strrchr(exe, '/');
        if (!s)
            return -1;
        *s = 0;
    }
    if (snprintf(out, n, "%s/%s", exe, rel) >= (int)n)
        return -1;
    return access(out, R_OK) == 0 ? 0 : -1;
}

#endif
