/* prom.c - one sample out of Prometheus text (see prom.h). */
#include "prom.h"

#include <stdlib.h>
#include <string.h>

double prom_value(const char *text, const char *name, const char *labels)
{
    size_t n = strlen(name);
    for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        if (strncmp(l, name, n) || (l[n] != ' ' && l[n] != '{'))
            continue;
        const char *v = l + n, *eol = strchr(l, '\n');
        if (*v == '{') {
            const char *end = strchr(v, '}');
            if (!end || (eol && end > eol))
                continue;
            if (labels && *labels) {
                const char *hit = strstr(v, labels);
                if (!hit || hit > end || (hit[-1] != '{' && hit[-1] != ','))
                    continue;
            }
            v = end + 1;
        } else if (labels && *labels) {
            continue;
        }
        return atof(v);
    }
    return -1;
}
