/* json_util.h - small helpers around cJSON for the config and safetensors readers and the
 * HTTP API: read a whole file, parse a JSON file or an untrusted request body, and fetch typed
 * fields with defaults.
 */
#ifndef CINDER_JSON_UTIL_H
#define CINDER_JSON_UTIL_H

#include <stddef.h>
#include <cjson/cJSON.h>

/* Reads the whole file PATH into a NUL-terminated malloc'd buffer; *LEN gets its size.
 * NULL with a message in ERR on failure. */
char *file_read_all(const char *path, size_t *len, char *err, size_t n_err);

/* Parses the JSON file PATH. NULL with a message in ERR on failure. */
cJSON *json_read_file(const char *path, char *err, size_t n_err);

/* cJSON recurses once per nesting level and the HTTP handler threads have 100 KB stacks:
 * deeper bodies are refused before parsing. */
#define JSON_MAX_DEPTH 64

/* Parses an untrusted request body of LEN bytes: exactly one JSON value (only whitespace
 * after it), nested at most JSON_MAX_DEPTH deep, without NUL bytes or the escape \u0000 (a C
 * string would silently end there). NULL with a message for the client in ERR otherwise. */
cJSON *json_parse_body(const char *s, size_t len, char *err, size_t n_err);

/* Removes every member of object OBJ whose value is null (not recursively): an optional
 * field sent as null is then absent for every later check. Nothing when OBJ is no object. */
void json_drop_nulls(cJSON *obj);

/* S (a client's field name) made safe to quote in an error message: at most N - 1 bytes,
 * every byte outside printable ASCII as '?' (a name need not be valid UTF-8). Returns BUF. */
const char *json_safe_name(const char *s, char *buf, size_t n);

/* Integer field NAME of OBJ: DEF when absent or null; -1 (and ERR set) when not an integer. */
int json_get_int(const cJSON *obj, const char *name, long long def, long long *out,
                 char *err, size_t n_err);
/* Number field NAME of OBJ: DEF when absent or null; -1 (and ERR set) when not a number. */
int json_get_num(const cJSON *obj, const char *name, double def, double *out,
                 char *err, size_t n_err);

#endif
