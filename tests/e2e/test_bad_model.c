/* test_bad_model.c - broken model directories (issue 18, item 8), on real launches:
 *   a config.json that says 5 layers over a checkpoint of 6: the launch fails with a clear
 *     line naming the unexplained tensors (it served another model before);
 *   NaN weights: every request fails with a clear 500 / error event naming non-finite logits
 *     (it emitted token 0 forever before), the server stays up and nothing leaks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../common/safetensors.h"
#include "cluster.h"
#include "load.h"

static char g_dir[256];

/* A copy of the default model in a fresh directory (g_dir). */
static void copy_model(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/cinder-badmodel.XXXXXX");
    assert_non_null(mkdtemp(g_dir));
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cp models/stories15M/*.json models/stories15M/model.safetensors %s/",
             g_dir);
    assert_int_equal(system(cmd), 0);
}

static void remove_model(void)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0)
        printf("# cannot remove %s\n", g_dir);
}

/* Overwrites every element of tensor NAME (F32) in the copy with NaN. */
static void poison(const char *name)
{
    char path[512], err[256];
    snprintf(path, sizeof path, "%s/model.safetensors", g_dir);
    safetensors st;
    st_init(&st);
    assert_int_equal(st_add_file(&st, path, err, sizeof err), 0);
    const st_tensor *t = st_find(&st, name);
    assert_non_null(t);
    assert_int_equal(t->dtype, ST_F32);
    off_t off = (const char *)t->data - (const char *)st.maps[t->file];
    size_t n = t->n_bytes;
    st_free(&st);
    float *nan_data = malloc(n);
    for (size_t i = 0; i < n / 4; i++)
        nan_data[i] = NAN;
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, nan_data, n, off), (ssize_t)n);
    close(fd);
    free(nan_data);
}

static void test_config_fewer_layers(void **state)
{
    copy_model();
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "sed -i 's/\"num_hidden_layers\": 6/\"num_hidden_layers\": 5/' "
             "%s/config.json && grep -q '\"num_hidden_layers\": 5' %s/config.json", g_dir, g_dir);
    assert_int_equal(system(cmd), 0);
    cluster c;
    char extra[512];
    snprintf(extra, sizeof extra, "--model-dir %s", g_dir);
    assert_int_equal(cluster_start(&c, extra), -1);   /* refused at start */
    snprintf(cmd, sizeof cmd, "grep -q 'model.layers.5.*does not explain\\|does not explain.*"
             "model.layers.5' %s/holder.log", c.run_dir);   /* the holder loads the weights */
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "rm -rf %s", c.run_dir);
    assert_int_equal(system(cmd), 0);
    remove_model();
}

static void test_nan_weights(void **state)
{
    copy_model();
    poison("model.norm.weight");   /* every logit NaN */
    cluster c;
    char extra[512];
    snprintf(extra, sizeof extra, "--model-dir %s", g_dir);
    assert_int_equal(cluster_start(&c, extra), 0);
    load_job jobs[4];
    for (int i = 0; i < 4; i++)
        jobs[i] = (load_job){.prompt = "Once upon a time", .max_new = 50, .stream = i % 2};
    load_run(&c, jobs, 4);
    for (int i = 0; i < 4; i++) {
        printf("# job %d: status %d: %s\n", i, jobs[i].status, jobs[i].error ? jobs[i].error : "");
        assert_int_equal(jobs[i].status, jobs[i].stream ? -2 : 500);
        assert_non_null(jobs[i].error);
        assert_non_null(strstr(jobs[i].error, "non-finite logits"));
    }
    load_free(jobs, 4);
    assert_int_equal(load_wait_reclaimed(&c), 0);
    cluster_stop(&c);
    remove_model();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_fewer_layers),
        cmocka_unit_test(test_nan_weights),
    };
    return cmocka_run_group_tests_name("e2e_bad_model", tests, NULL, NULL);
}
